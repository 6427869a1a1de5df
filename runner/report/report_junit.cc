/// The JUnit XML report: one <testsuite> per run, one <testcase> per step, and one testcase
/// per diagnosis finding: failing for a `fail` finding (it fails the run, so CI must show it
/// as a failure), passing with the finding as output for `warn` and `info`.
/// Validates against tests/junit.xsd.

#include <fmt/format.h>

#include "runner/report/reporters_internal.h"

namespace netplay::reporters {
namespace {

/// XML 1.0 escaping for text (attr = false) and attribute values (attr = true). Characters
/// XML 1.0 cannot carry at all (C0 controls other than tab/newline/CR, U+FFFE/U+FFFF) are
/// written as visible "\xNN" text rather than dropped, so the evidence stays honest.
std::string xml_escape(std::string_view raw, bool attr) {
  std::string s = valid_utf8(raw);
  std::string out;
  out.reserve(s.size() + 16);
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '&': out += "&amp;"; continue;
      case '<': out += "&lt;"; continue;
      case '>': out += "&gt;"; continue;
      case '"': out += attr ? "&quot;" : "\""; continue;
      case '\'': out += attr ? "&apos;" : "'"; continue;
      case '\t': out += attr ? "&#9;" : "\t"; continue;
      case '\n': out += attr ? "&#10;" : "\n"; continue;
      case '\r': out += "&#13;"; continue;
      default: break;
    }
    if (c < 0x20) {
      out += fmt::format("\\x{:02x}", c);
    } else if (c == 0xEF && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xBF &&
               (static_cast<unsigned char>(s[i + 2]) == 0xBE ||
                static_cast<unsigned char>(s[i + 2]) == 0xBF)) {
      out += "\xEF\xBF\xBD";
      i += 2;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string attr(std::string_view s) { return xml_escape(s, true); }
std::string text(std::string_view s) { return xml_escape(s, false); }

std::string seconds(double ms) { return fmt::format("{:.3f}", ms / 1000.0); }

/// What a failing/erroring/warning step carries: unmet expectations, evidence, facts.
std::string step_body(const StepResult& s) {
  std::string b;
  bool message_is_expectation = false;
  for (const auto& e : s.expectations) {
    if (e.ok) continue;
    b += "unmet: " + e.message + "\n";
    message_is_expectation |= e.message == s.message;
  }
  // The message attribute already says it; the body repeats it only when it adds to it.
  if (!s.message.empty() && !message_is_expectation) b = s.message + "\n" + b;
  if (!s.evidence.empty()) {
    b += "evidence:\n";
    for (const auto& ev : s.evidence) b += "  " + ev + "\n";
  }
  if (s.facts.is_object() && !s.facts.empty())
    b += "facts: " + s.facts.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  return b;
}

void property(std::string& out, std::string_view name, std::string_view value) {
  out += fmt::format("      <property name=\"{}\" value=\"{}\"/>\n", attr(name), attr(value));
}

}  // namespace

std::string render_junit(const RunReport& r) {
  auto counts = r.summary();
  int findings = static_cast<int>(r.findings.size());
  int tests = static_cast<int>(r.steps.size()) + findings;
  int failures = counts[Status::kFail] + count_findings(r, Severity::kFail);
  int errors = counts[Status::kError] + count_findings(r, Severity::kError);
  int skipped = counts[Status::kSkip];
  std::string suite_name = r.playbook_name.empty() ? "playbook" : r.playbook_name;
  std::string classname = "netplay." + suite_name;

  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += fmt::format(
      "<testsuites name=\"netplay\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" "
      "time=\"{}\">\n",
      tests, failures, errors, skipped, seconds(r.duration_ms));
  out += fmt::format(
      "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" "
      "time=\"{}\"",
      attr(suite_name), tests, failures, errors, skipped, seconds(r.duration_ms));
  if (!r.started_at.empty()) out += fmt::format(" timestamp=\"{}\"", attr(r.started_at));
  out += ">\n";

  out += "    <properties>\n";
  property(out, "netplay.version", r.version);
  property(out, "playbook.file", r.playbook_file);
  property(out, "playbook.sha256", r.playbook_sha256);
  if (!r.playbook_title.empty()) property(out, "playbook.title", r.playbook_title);
  property(out, "status", to_string(r.overall()));
  property(out, "interrupted", r.interrupted ? "true" : "false");
  if (!r.stopped.empty()) property(out, "stopped", r.stopped);
  if (r.inputs.is_object())
    for (const auto& [k, v] : r.inputs.items()) property(out, "input." + k, fact_text(v));
  out += "    </properties>\n";

  for (const auto& s : r.steps) {
    out += fmt::format("    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"", attr(classname),
                       attr(s.id), seconds(s.duration_ms));
    switch (s.status) {
      case Status::kPass:
        if (s.message.empty()) {
          out += "/>\n";
        } else {
          out += fmt::format(">\n      <system-out>{}</system-out>\n    </testcase>\n",
                             text(s.message + "\n"));
        }
        break;
      case Status::kWarn:
        // JUnit has no "warning": a warning passes, and says so where CI shows output.
        out += fmt::format(">\n      <system-out>{}</system-out>\n    </testcase>\n",
                           text("warning: " + step_body(s)));
        break;
      case Status::kSkip:
        out +=
            fmt::format(">\n      <skipped message=\"{}\"/>\n    </testcase>\n", attr(s.message));
        break;
      case Status::kFail:
        out += fmt::format(
            ">\n      <failure message=\"{}\" type=\"fail\">{}</failure>\n    </testcase>\n",
            attr(s.message), text(step_body(s)));
        break;
      case Status::kError:
        out += fmt::format(
            ">\n      <error message=\"{}\" type=\"error\">{}</error>\n    </testcase>\n",
            attr(s.message), text(step_body(s)));
        break;
    }
  }
  for (const Finding* f : findings_by_severity(r)) {
    std::string body = f->finding + "\n";
    for (const auto& n : f->next) body += "next: " + n + "\n";
    for (const auto& ref : f->references) body += "see: " + ref + "\n";
    out += fmt::format("    <testcase classname=\"{}.diagnosis\" name=\"{}\" time=\"0.000\">\n",
                       attr(classname), attr(f->id));
    if (f->severity == Severity::kFail) {
      out += fmt::format("      <failure message=\"{}\" type=\"finding\">{}</failure>\n",
                         attr(f->finding), text(body));
    } else if (f->severity == Severity::kError) {
      out += fmt::format("      <error message=\"{}\" type=\"diagnosis\">{}</error>\n",
                         attr(f->finding), text(body));
    } else {
      // Like a warning step: it passes, and says what it found where CI shows output.
      const char* word = f->severity == Severity::kWarn ? "warning: " : "info: ";
      out += fmt::format("      <system-out>{}</system-out>\n", text(word + body));
    }
    out += "    </testcase>\n";
  }
  out += "  </testsuite>\n</testsuites>\n";
  return out;
}

}  // namespace netplay::reporters
