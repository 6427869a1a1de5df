/// Command-line parsing (CLI11), the table of verbs and the small commands: validate, list,
/// describe, schema. `run` lives in cli_run.cc.

#include "runner/cli/cli.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>

#include "netplay_version.h"
#include "runner/cli/cli_internal.h"
#include "runner/load/loader.h"
#include "runner/load/schema.h"
#include "runner/step/params.h"

namespace netplay {
namespace cli {

void put(std::FILE* f, const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), f);
  std::fflush(f);
}

int usage_error(const CliIo& io, const std::string& message) {
  // Messages quote what users typed and files held: one line, no raw control bytes.
  put(io.err, "netplay: " + printable(message) + "\n");
  return 2;
}

namespace {

constexpr const char* kRunFooter = R"(Outputs:
  --output FORMAT[=FILE] may be repeated; FORMAT is text, json, junit or markdown. With FILE
  a regular file is written atomically (temp file + rename; a symlink's target is replaced),
  a FIFO, /dev/null or a terminal is written through; anything else is refused before the
  run. Without FILE (or with FILE '-') the report goes to stdout. With no --output at all,
  and whenever no report goes to stdout, the text report is printed on stdout.
  Progress: live (spinner, elapsed time) above the text report when stdout is a terminal
  showing it. Otherwise stdout holds exactly the report(s) and progress goes to stderr: live
  if stderr is a terminal, else one plain line per finished step. -q shows no progress, only
  findings and the summary line; -v adds the facts of every step. Color only on a terminal,
  never with --no-color or when NO_COLOR is set.

Exit codes (whatever the output format):
  0 nothing failed (warnings allowed)   1 a step failed or a fail finding matched
  2 invalid playbook or usage           3 steps errored but none failed
  130 interrupted: Ctrl-C/SIGTERM stops new steps, cancels running ones and still writes
      every requested (partial) report; a second Ctrl-C kills child processes and exits now.
  A run that cannot stop by itself (Lua stuck inside a C function past its limits) is ended
  by a watchdog that still writes every report, with "stopped" saying why (exit 3, or 130
  after Ctrl-C). What playbooks can and cannot do: docs/security.md.)";

/// "run, validate, list, describe or schema": the verbs of the table below.
std::string joined_verbs(std::string_view last_sep);

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

/// CLI11's wording, made one line and pointed at the flag or argument it is about.
std::string parse_error_message(const CLI::ParseError& e, const std::string& command) {
  std::string what = one_line(e.what());
  std::string name = e.get_name();
  std::string where = command.empty() ? "netplay" : "netplay " + command;
  // CLI11 names a subcommand's extras error after the subcommand: match the wording.
  if (name == "ExtrasError" || what.starts_with("The following argument")) {
    auto colon = what.find(": ");
    std::string args = colon == std::string::npos ? what : what.substr(colon + 2);
    bool flag = !args.empty() && args[0] == '-';
    return fmt::format("{} '{}' (see '{} --help')", flag ? "unknown option" : "unexpected argument",
                       args, where);
  }
  if (name == "RequiredError" && what.find("subcommand") != std::string::npos)
    return fmt::format("a command is required: {} (see 'netplay --help')", joined_verbs(" or "));
  return fmt::format("{} (see '{} --help')", what, where);
}

/// What the verbs' arguments are parsed into; each verb's setup binds its own part.
struct VerbArgs {
  RunArgs run;
  std::vector<std::string> playbooks;  // validate
  std::string step;                    // describe
  DecodeArgs decode;
};

/// One `netplay VERB`. The table below is the only place verbs are named: the subcommands,
/// the listing in `netplay --help` and the "did you mean" for a mistyped verb come from it.
struct Verb {
  std::string_view name;
  std::string_view summary;  // one line
  void (*setup)(CLI::App& cmd, VerbArgs& args);
  int (*handler)(const VerbArgs& args, const CliIo& io);
};

void setup_run(CLI::App& cmd, VerbArgs& args) {
  RunArgs& ra = args.run;
  cmd.add_option("PLAYBOOK", ra.playbook, "Playbook file (YAML)")->required();
  cmd.add_option("--set", ra.sets, "Set an input: NAME=VALUE (repeatable; wins over --vars)")
      ->type_name("NAME=VALUE");
  cmd.add_option("--vars", ra.vars, "Inputs from a YAML/JSON file of NAME: VALUE (repeatable)")
      ->type_name("FILE");
  cmd.add_option("--output,-o", ra.outputs,
                 "Report: text|json|junit|markdown, optionally =FILE (repeatable)")
      ->type_name("FORMAT[=FILE]");
  cmd.add_option("--only", ra.only, "Run only these step ids (and what they need)")
      ->delimiter(',')
      ->type_name("ID,...");
  cmd.add_option("--jobs,-j", ra.jobs, "Steps run concurrently, 1..64 (default 4)")
      ->type_name("N");
  cmd.add_option("--timeout", ra.timeout, "Global deadline for the whole run, e.g. 30s, 2m")
      ->type_name("DURATION");
  cmd.add_flag("--fail-fast", ra.fail_fast, "Start no new step after the first failure");
  auto* q = cmd.add_flag("--quiet,-q", ra.quiet, "Only the findings and the summary line");
  auto* v = cmd.add_flag("--verbose,-v", ra.verbose, "Show the facts of every step");
  q->excludes(v);
  cmd.add_flag("--no-color", ra.no_color, "No ANSI colors (also: NO_COLOR=1)");
  cmd.footer(kRunFooter);
}

int handle_run(const VerbArgs& args, const CliIo& io) { return run_command(args.run, io); }

void setup_validate(CLI::App& cmd, VerbArgs& args) {
  cmd.add_option("PLAYBOOK", args.playbooks, "Playbook files")->required();
  cmd.footer("Exit code: 0 when every file is valid, 2 otherwise.");
}

int handle_validate(const VerbArgs& args, const CliIo& io) {
  int rc = 0;
  for (const auto& f : args.playbooks) {
    auto pb = load_playbook(f);
    if (!pb) {
      for (const auto& d : pb.error()) put(io.err, d.str() + "\n");
      rc = 2;
      continue;
    }
    size_t n = pb->steps.size();
    put(io.out, fmt::format("{}: ok ({} step{})\n", f, n, n == 1 ? "" : "s"));
  }
  return rc;
}

void no_args(CLI::App&, VerbArgs&) {}

int handle_list(const VerbArgs&, const CliIo& io) {
  auto steps = Registry::instance().all();
  size_t w = 0;
  for (const Step* s : steps) w = std::max(w, s->spec().name.size());
  std::string out;
  for (const Step* s : steps)
    out += fmt::format("{:<{}}  {}\n", s->spec().name, w, s->spec().summary);
  put(io.out, out);
  return 0;
}

void setup_describe(CLI::App& cmd, VerbArgs& args) {
  cmd.add_option("STEP", args.step, "Step name, e.g. sysctl")->required();
}

int handle_describe(const VerbArgs& args, const CliIo& io) {
  const Step* step = Registry::instance().find(args.step);
  if (!step) {
    std::string near = did_you_mean(args.step, Registry::instance().names());
    std::string hint = near.empty() ? std::string(" ('netplay list' shows every step)")
                                    : fmt::format(" (did you mean '{}'?)", near);
    return usage_error(io, fmt::format("unknown step '{}'{}", args.step, hint));
  }
  put(io.out, describe_step(step->spec()));
  return 0;
}

void setup_decode_verb(CLI::App& cmd, VerbArgs& args) { setup_decode(cmd, args.decode); }

int handle_decode(const VerbArgs& args, const CliIo& io) {
  return decode_command(args.decode, io);
}

int handle_schema(const VerbArgs&, const CliIo& io) {
  put(io.out, playbook_schema().dump(2) + "\n");
  return 0;
}

/// Every verb, in the order `netplay --help` lists them.
constexpr Verb kVerbs[] = {
    {"run", "Run a playbook and report the verdict", setup_run, handle_run},
    {"validate", "Check playbooks; every error as file:line:col: message on stderr",
     setup_validate, handle_validate},
    {"list", "List the built-in steps", no_args, handle_list},
    {"describe", "Show a step's params, facts and an example", setup_describe, handle_describe},
    {"schema", "Print the playbook JSON Schema", no_args, handle_schema},
    {"decode", "Decode a pcap/pcapng file: tcpdump-like lines, per-frame fields or VXLAN facts",
     setup_decode_verb, handle_decode},
};

std::vector<std::string> verb_names() {
  std::vector<std::string> names;
  for (const auto& v : kVerbs) names.emplace_back(v.name);
  return names;
}

/// "run, validate, list, describe or schema" (last_sep " or ") or with ", " throughout.
std::string joined_verbs(std::string_view last_sep) {
  auto names = verb_names();
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? last_sep : ", ";
    out += names[i];
  }
  return out;
}

/// The verbs as `netplay --help` lists them, after its options.
std::string verbs_listing() {
  size_t w = 0;
  for (const auto& v : kVerbs) w = std::max(w, v.name.size());
  std::string out = "Commands:\n";
  for (const auto& v : kVerbs) out += fmt::format("  {:<{}}  {}\n", v.name, w, v.summary);
  out += "\n'netplay COMMAND --help' shows a command's arguments and options.";
  return out;
}

}  // namespace
}  // namespace cli

std::expected<OutputTarget, std::string> parse_output_target(std::string_view spec) {
  auto eq = spec.find('=');
  std::string_view fmt_name = spec.substr(0, eq);
  auto f = parse_format(fmt_name);
  if (!f) return std::unexpected(f.error());
  OutputTarget t{*f, ""};
  if (eq != std::string_view::npos) {
    t.path = std::string(spec.substr(eq + 1));
    if (t.path.empty())
      return std::unexpected(
          fmt::format("'{}': missing file name after '=' (use {} for stdout)", spec, fmt_name));
    if (t.path == "-") t.path.clear();
  }
  return t;
}

std::string describe_step(const StepSpec& s) {
  std::string out = fmt::format("{} - {}\n", s.name, s.summary);
  if (!s.description.empty()) out += "\n" + s.description + "\n";
  out += "\nParams:\n";
  if (s.params.empty()) out += "  (none)\n";
  for (const auto& p : s.params) {
    std::string type(to_string(p.type));
    if (p.type == ValueType::kList) {
      type += fmt::format(" of {}", to_string(p.item_type));
      if (p.scalar_as_list) type += fmt::format(" (or one {})", to_string(p.item_type));
    }
    std::vector<std::string> attrs{type};
    if (p.required) attrs.push_back("required");
    if (!p.default_value.is_null()) attrs.push_back("default: " + describe_value(p.default_value));
    if (p.min || p.max) attrs.push_back(range_text(p));
    if (!p.choices.empty()) {
      std::string c = "one of: ";
      for (size_t i = 0; i < p.choices.size(); ++i) c += (i ? ", " : "") + p.choices[i];
      attrs.push_back(c);
    }
    std::string joined;
    for (size_t i = 0; i < attrs.size(); ++i) joined += (i ? ", " : "") + attrs[i];
    out += fmt::format("  {} ({})\n", p.name, joined);
    if (!p.doc.empty()) out += fmt::format("      {}\n", p.doc);
  }
  for (const auto& group : s.one_of)
    out += fmt::format("  At least one of: {}\n", fmt::join(group, ", "));
  for (const auto& group : s.exclusive)
    out += fmt::format("  At most one of: {}\n", fmt::join(group, ", "));
  out += "\nFacts:\n";
  if (s.facts.empty()) out += "  (none)\n";
  for (const auto& f : s.facts) {
    out += fmt::format("  {} ({})\n", f.name, f.type);
    if (!f.doc.empty()) out += fmt::format("      {}\n", f.doc);
  }
  out += fmt::format("\nPrivileges: {}\n", s.privileges.empty() ? "none" : s.privileges);
  out += fmt::format("Changes state: {}\n", s.changes_state ? "yes" : "no");
  out += fmt::format("Background: {}\n",
                     s.supports_background ? "supported (background: true)" : "not supported");
  if (!s.example.empty()) {
    out += "\nExample:\n";
    std::string ex = s.example;
    size_t pos = 0;
    while (pos < ex.size()) {
      size_t e = ex.find('\n', pos);
      if (e == std::string::npos) e = ex.size();
      out += "  " + ex.substr(pos, e - pos) + "\n";
      pos = e + 1;
    }
  }
  return out;
}

int run_cli(int argc, const char* const* argv, const CliIo& io) {
  using cli::put;
  CLI::App app{
      "Runs declarative network troubleshooting playbooks and reports a verdict, "
      "the evidence and a diagnosis.",
      "netplay"};
  app.set_version_flag("--version", "netplay " NETPLAY_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);

  cli::VerbArgs args;
  std::vector<std::pair<CLI::App*, const cli::Verb*>> commands;
  for (const auto& verb : cli::kVerbs) {
    CLI::App* cmd = app.add_subcommand(std::string(verb.name), std::string(verb.summary));
    cmd->group("");  // listed by the footer below, from the same table
    verb.setup(*cmd, args);
    commands.emplace_back(cmd, &verb);
  }
  app.footer(cli::verbs_listing());
  app.get_formatter()->label("SUBCOMMAND", "COMMAND");

  // CLI11 reports a mistyped command as "a subcommand is required": name it instead.
  if (argc > 1 && argv[1][0] != '-') {
    auto names = cli::verb_names();
    if (std::find(names.begin(), names.end(), argv[1]) == names.end()) {
      std::string near = did_you_mean(argv[1], names);
      return cli::usage_error(
          io, fmt::format("unknown command '{}'{}; commands: {}", argv[1],
                          near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near),
                          cli::joined_verbs(", ")));
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::string name = e.get_name();
    if (name == "CallForHelp" || name == "CallForAllHelp") {
      std::string help = app.help();
      if (!help.empty() && help.back() != '\n') help += '\n';
      put(io.out, help);
      return 0;
    }
    if (name == "CallForVersion") {
      put(io.out, std::string(e.what()) + "\n");
      return 0;
    }
    std::string command;
    auto subs = app.get_subcommands();
    if (!subs.empty()) command = subs.front()->get_name();
    return cli::usage_error(io, cli::parse_error_message(e, command));
  }

  for (const auto& [cmd, verb] : commands)
    if (*cmd) return verb->handler(args, io);
  return cli::usage_error(io, "a command is required (see 'netplay --help')");
}

}  // namespace netplay
