/// exec: run a command inside the step's network namespace and report what it did.

#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "runner/step/services.h"
#include "runner/step/step.h"

namespace netplay {
namespace {

/// Quotes one argument for display the way a POSIX shell would read it back.
std::string shell_quote(const std::string& a) {
  if (!a.empty() && std::all_of(a.begin(), a.end(), [](unsigned char c) {
        return std::isalnum(c) || std::strchr("_-./:=@%+,", c);
      }))
    return a;
  std::string q = "'";
  for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string command_line(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += shell_quote(a);
  }
  return s;
}

/// Output may be any bytes; facts must be valid UTF-8 to be dumped as JSON. Invalid
/// sequences become U+FFFD (nlohmann's own replacement, round-tripped).
std::string trim_one_newline(std::string s) {
  if (!s.empty() && s.back() == '\n') s.pop_back();
  if (!s.empty() && s.back() == '\r') s.pop_back();
  return s;
}

size_t count_lines(const std::string& s) {
  if (s.empty()) return 0;
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')) + (s.back() == '\n' ? 0 : 1);
}

std::vector<std::string> last_lines(const std::string& s, size_t n) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find('\n', start);
    if (end == std::string::npos) end = s.size();
    lines.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  if (lines.size() > n) lines.erase(lines.begin(), lines.end() - static_cast<long>(n));
  return lines;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string signal_name(int sig) {
  const char* d = ::sigabbrev_np(sig);
  return d ? fmt::format("SIG{}", d) : fmt::format("signal {}", sig);
}

/// The budget measured at start is a hair under the configured timeout (4.998s for 5s).
Millis round_for_humans(Millis d) {
  double step = d.count() >= 1000 ? 100 : 10;
  return Millis(std::round(d.count() / step) * step);
}

class ExecStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "exec",
        .summary = "Run a command in the step's network namespace and report its output",
        .description =
            "Runs a program (no shell: `argv` is the command and its arguments, one list "
            "element per argument, so a template value can never add or split arguments) "
            "or, with `shell: true`, the string `cmd` via /bin/sh -c. In `cmd` every `{{ }}` "
            "value is quoted for the shell as one word of literal text: with name `$(reboot)`, "
            "`echo {{ inputs.name }}` runs `echo '$(reboot)'`. To paste shell syntax on purpose "
            "(a pipeline, several options held in one input), mark the value: "
            "`{{ netplay.raw(inputs.filter) }}` goes in as it is, so only use it on values "
            "the playbook controls. The command runs in the "
            "step's network namespace with stdin from `stdin` (or /dev/null), in its own "
            "process group: on timeout or interruption the whole group gets SIGTERM, then "
            "SIGKILL.\n\n"
            "A non-zero exit code fails the step (message `exit code 2: <first line of "
            "stderr>`), unless the playbook judges the exit code itself: when `expect:` names "
            "`exit_code` and `check` is not given, the expectation alone decides "
            "(`expect: {exit_code: 3}` passes on 3 and fails on anything else). `check: false` "
            "never fails on the exit code, `check: true` always does. A missing "
            "command or a timeout is an error; the output gathered until then is still "
            "reported. stdout and stderr facts have one trailing newline removed, so "
            "`echo ok` gives stdout 'ok'. In the background (`background: true`) the command "
            "is stopped when the steps that need it are done, and the step passes with what "
            "it gathered.",
        .params = {{.name = "argv",
                    .type = ValueType::kList,
                    .doc = "The command and its arguments, one element per argument; the command "
                           "is looked up in PATH when it has no '/'"},
                   {.name = "cmd",
                    .type = ValueType::kString,
                    .doc = "A shell command line, run as /bin/sh -c CMD; only with shell: true. "
                           "Template values are quoted as single words; netplay.raw(v) opts out",
                    .shell_command = true},
                   {.name = "shell",
                    .type = ValueType::kBool,
                    .doc = "Run `cmd` through /bin/sh",
                    .default_value = false},
                   {.name = "env",
                    .type = ValueType::kMap,
                    .doc = "Environment variables added to the inherited environment"},
                   {.name = "cwd", .type = ValueType::kString, .doc = "Working directory"},
                   {.name = "stdin", .type = ValueType::kString, .doc = "Data written to stdin"},
                   {.name = "json",
                    .type = ValueType::kBool,
                    .doc = "Parse stdout as JSON into fact `json`; unparsable output is an error",
                    .default_value = false},
                   {.name = "check",
                    .type = ValueType::kBool,
                    .doc = "Fail the step when the exit code is not 0. Not given: yes, unless "
                           "`expect:` names exit_code (then the expectation decides)"},
                   {.name = "max_output",
                    .type = ValueType::kInt,
                    .doc = "Bytes kept per stream (stdout, stderr); the rest is dropped and "
                           "`truncated` set",
                    .default_value = 1 << 20,
                    .min = 0,
                    .max = 16 << 20}},
        .facts = {{"exit_code", "int", "Exit status; absent when killed by a signal"},
                  {"signal", "int", "The signal that ended the command, when one did"},
                  {"stdout", "string", "Standard output, one trailing newline removed"},
                  {"stderr", "string", "Standard error, one trailing newline removed"},
                  {"lines", "int", "Number of stdout lines"},
                  {"json", "any", "stdout parsed as JSON (with json: true)"},
                  {"duration_ms", "number", "Wall time of the command"},
                  {"timed_out", "bool", "The step's timeout ended the command"},
                  {"truncated", "bool", "Output went past max_output and was cut"}},
        .one_of = {{"argv", "cmd"}},
        .exclusive = {{"argv", "cmd"}},
        .changes_state = true,  // whatever the command does: netplay cannot tell
        .supports_background = true,
        .example =
            "- id: routes\n  uses: exec\n  netns: \"{{ inputs.cell_netns }}\"\n"
            "  with: {argv: [ip, -j, route, show], json: true}\n"
            "  expect: {json: {len: {gt: 0}}}\n"
            "- id: curl_status\n  uses: exec\n"
            "  with: {cmd: \"curl -s -o /dev/null -w '%{http_code}' http://10.255.9.3:8080/\","
            " shell: true, check: false}\n"
            "  expect: {stdout: '200'}\n"
            "- id: no_stale_vtep\n  uses: exec\n"
            "  with: {argv: [grep, -q, silk-vtep, /proc/net/dev]}\n"
            "  expect: {exit_code: 1}  # grep found no match; no check: false needed\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    ProcessSpec ps;
    bool shell = p.boolean("shell", false);
    if (p.has("cmd")) {
      if (!shell)
        return StepOutput::error(
            "cmd needs shell: true (or use argv: a list with one element per argument)");
      ps.argv = {"/bin/sh", "-c", p.str("cmd")};
    } else if (p.has("argv")) {
      if (shell) return StepOutput::error("shell: true takes cmd (a string), not argv");
      ps.argv = p.strings("argv");
      if (ps.argv.empty() || ps.argv[0].empty()) return StepOutput::error("argv is empty");
    } else {
      return StepOutput::error("give argv (a list) or cmd (with shell: true)");
    }
    if (p.raw("env").is_object()) {
      for (const auto& [k, v] : p.raw("env").items())
        ps.env[k] = v.is_string() ? v.get<std::string>() : v.dump();
    }
    ps.cwd = p.str("cwd");
    ps.stdin_data = p.str("stdin");
    // check_params holds it to 0..16 MiB (the spec's min and max).
    ps.max_output = static_cast<size_t>(p.integer("max_output", 1 << 20));

    std::string shown = p.has("cmd") ? p.str("cmd") : command_line(ps.argv);
    Millis budget = ctx.remaining();
    auto r = ctx.processes().run(ps, ctx);
    if (!r) {
      auto o = StepOutput::error(r.error());
      o.evidence.push_back("$ " + shown);
      return o;
    }

    StepOutput out;
    out.evidence.push_back("$ " + shown);
    auto& f = out.facts;
    if (r->exit_code) f["exit_code"] = *r->exit_code;
    if (r->term_signal) f["signal"] = r->term_signal;
    f["stdout"] = valid_utf8(trim_one_newline(r->out));
    f["stderr"] = valid_utf8(trim_one_newline(r->err));
    f["lines"] = count_lines(r->out);
    f["duration_ms"] = std::round(r->duration.count() * 1000) / 1000;
    f["timed_out"] = r->timed_out;
    f["truncated"] = r->truncated;

    std::string parse_error;
    if (p.boolean("json", false)) {
      try {
        f["json"] = json::parse(r->out);
      } catch (const json::parse_error& e) {
        // what() is "[json.exception.parse_error.101] parse error at line 1, column 5: ...".
        std::string what = e.what();
        size_t tag_end = what.find("] ");
        parse_error = "stdout is not JSON: " +
                      (tag_end == std::string::npos ? what : what.substr(tag_end + 2));
      }
    }

    auto tail = [&](const std::string& s) {
      for (auto& l : last_lines(s, 10)) out.evidence.push_back("  " + valid_utf8(l));
    };

    if (r->cancelled) {
      if (ctx.is_cancelled()) {
        out.status = Status::kError;
        out.message = fmt::format("cancelled after {} ms", std::lround(r->duration.count()));
      } else {
        // A background step ended by the runner: what it gathered is the result.
        out.message = fmt::format("stopped after {} ms", std::lround(r->duration.count()));
      }
      return out;
    }
    if (r->timed_out) {
      out.status = Status::kError;
      out.message = fmt::format("timed out after {}", format_duration(round_for_humans(budget)));
      tail(r->err.empty() ? r->out : r->err);
      return out;
    }
    // Not given: the playbook's own judgement of exit_code replaces the default check.
    bool check = p.has("check") ? p.boolean("check") : !ctx.expects("exit_code");
    if (check) {
      if (!r->exit_code) {
        out.status = Status::kFail;
        out.message = fmt::format("killed by {}", signal_name(r->term_signal));
        tail(r->err);
      } else if (*r->exit_code != 0) {
        out.status = Status::kFail;
        std::string why = first_line(trim_one_newline(r->err));
        out.message = why.empty() ? fmt::format("exit code {}", *r->exit_code)
                                  : fmt::format("exit code {}: {}", *r->exit_code, valid_utf8(why));
        tail(r->err.empty() ? r->out : r->err);
      }
    }
    if (out.status == Status::kPass && !parse_error.empty()) {
      out.status = Status::kError;
      out.message = parse_error;
      tail(r->out);
    }
    if (out.message.empty()) {
      out.message = r->exit_code ? fmt::format("exit code {}", *r->exit_code)
                                 : fmt::format("killed by {}", signal_name(r->term_signal));
    }
    return out;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(ExecStep);
}  // namespace netplay
