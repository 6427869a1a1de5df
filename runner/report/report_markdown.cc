/// The Markdown report: for pasting into an incident ticket. Findings first, most severe
/// first (they are what the reader came for), then the table of steps, then the details of what went wrong.

#include <fmt/format.h>

#include "runner/report/reporters_internal.h"

namespace netplay::reporters {
namespace {

/// A table cell: one line, pipes escaped so the table keeps its columns.
std::string cell(std::string_view raw) {
  std::string s = valid_utf8(raw);
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n')
      out += "<br>";
    else if (c == '\r')
      continue;
    else
      out += c;
  }
  return out;
}

/// A fenced block whose fence is longer than any backtick run inside it.
std::string fenced(std::string_view lang, std::string_view body) {
  size_t longest = 0, run = 0;
  for (char c : body) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  std::string fence(std::max<size_t>(3, longest + 1), '`');
  std::string b = valid_utf8(body);
  if (!b.empty() && b.back() != '\n') b += '\n';
  return fmt::format("{}{}\n{}{}\n", fence, lang, b, fence);
}

std::string status_word(Status s) {
  switch (s) {
    case Status::kPass: return "pass";
    case Status::kFail: return "**FAIL**";
    case Status::kWarn: return "*warn*";
    case Status::kSkip: return "skip";
    case Status::kError: return "**ERROR**";
  }
  return "";
}

}  // namespace

std::string render_markdown(const RunReport& r) {
  std::string out;
  std::string title = r.playbook_title.empty() ? r.playbook_name : r.playbook_title;
  out += fmt::format("# netplay: {} - {}\n\n", cell(title), verdict_word(r));
  out += fmt::format("**{}**\n\n", cell(summary_line(r)));
  out += fmt::format("- Playbook: `{}` (`{}`)\n", cell(r.playbook_name), cell(r.playbook_file));
  if (!r.started_at.empty()) out += fmt::format("- Started: {}\n", cell(r.started_at));
  out += fmt::format("- netplay {}\n", cell(r.version));
  if (r.inputs.is_object() && !r.inputs.empty()) {
    out += "- Inputs:";
    for (const auto& [k, v] : r.inputs.items())
      out += fmt::format(" `{}={}`", k, cell(fact_text(v)));
    out += "\n";
  }
  if (r.interrupted) out += "- **Interrupted**: the results below are partial.\n";
  if (!r.stopped.empty())
    out += fmt::format("- **Stopped**: {}; the results below are partial.\n", cell(r.stopped));
  out += "\n";

  if (!r.findings.empty()) {
    out += "## Findings\n\n";
    for (const Finding* f : findings_by_severity(r)) {
      out += fmt::format("- **{}** ({}): {}\n", cell(f->id), to_string(f->severity),
                         cell(f->finding));
      for (const auto& n : f->next) out += fmt::format("  - Next: {}\n", cell(n));
      for (const auto& ref : f->references) out += fmt::format("  - See: <{}>\n", cell(ref));
    }
    out += "\n";
  }

  out += "## Steps\n\n";
  out += "| Status | Step | Uses | Netns | Duration | Message |\n";
  out += "|---|---|---|---|---:|---|\n";
  for (const auto& s : r.steps) {
    out += fmt::format("| {} | `{}` | `{}` | {} | {} | {} |\n", status_word(s.status), cell(s.id),
                       cell(s.uses), cell(s.netns), format_ms(s.duration_ms), cell(s.message));
  }
  out += "\n";

  bool any = false;
  for (const auto& s : r.steps) {
    if (s.status != Status::kFail && s.status != Status::kError && s.status != Status::kWarn)
      continue;
    if (!any) out += "## Details\n\n";
    any = true;
    out += fmt::format("### {} `{}` ({})\n\n", status_word(s.status), cell(s.id), cell(s.uses));
    if (!s.title.empty()) out += cell(s.title) + "\n\n";
    if (!s.message.empty()) out += cell(s.message) + "\n\n";
    bool failed_header = false;
    for (const auto& e : s.expectations) {
      if (e.ok) continue;
      if (!failed_header) out += "Unmet expectations:\n\n";
      failed_header = true;
      out += fmt::format("- {}\n", cell(e.message.empty() ? e.fact : e.message));
    }
    if (failed_header) out += "\n";
    if (!s.evidence.empty()) {
      std::string ev;
      for (const auto& line : s.evidence) ev += line + "\n";
      out += "Evidence:\n\n" + fenced("", ev) + "\n";
    }
    if (s.facts.is_object() && !s.facts.empty()) {
      out += "Facts:\n\n" +
             fenced("json", s.facts.dump(2, ' ', false, json::error_handler_t::replace)) + "\n";
    }
  }
  return out;
}

}  // namespace netplay::reporters
