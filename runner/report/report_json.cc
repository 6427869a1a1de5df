/// The JSON report: the contract's shape (PLAYBOOK-FORMAT.md), which CI pipelines parse.
/// Fields are only ever added here, never renamed.

#include <cmath>

#include "runner/report/reporters_internal.h"

namespace netplay::reporters {
namespace {

/// Durations to the microsecond: more digits are noise and make diffs unreadable.
double round_ms(double ms) { return std::round(ms * 1000.0) / 1000.0; }

json strings(const std::vector<std::string>& v) {
  json a = json::array();
  for (const auto& s : v) a.push_back(s);
  return a;
}

json step_json(const StepResult& s) {
  json j;
  j["id"] = s.id;
  if (!s.title.empty()) j["title"] = s.title;
  j["uses"] = s.uses;
  j["netns"] = s.netns;
  j["status"] = to_string(s.status);
  j["message"] = s.message;
  j["started_ms"] = round_ms(s.started_ms);
  j["duration_ms"] = round_ms(s.duration_ms);
  j["attempts"] = s.attempts;
  j["background"] = s.background;
  j["facts"] = s.facts.is_null() ? json::object() : s.facts;
  json ex = json::array();
  for (const auto& e : s.expectations) {
    json x;
    x["fact"] = e.fact;
    x["matcher"] = e.matcher;
    x["expected"] = e.expected;
    x["actual"] = e.actual;
    x["ok"] = e.ok;
    if (!e.message.empty()) x["message"] = e.message;
    ex.push_back(std::move(x));
  }
  j["expectations"] = std::move(ex);
  j["evidence"] = strings(s.evidence);
  return j;
}

}  // namespace

std::string render_json(const RunReport& r) {
  json j;
  j["netplay"] = r.version;
  json pb;
  pb["name"] = r.playbook_name;
  if (!r.playbook_title.empty()) pb["title"] = r.playbook_title;
  pb["file"] = r.playbook_file;
  pb["sha256"] = r.playbook_sha256;
  j["playbook"] = std::move(pb);
  j["inputs"] = r.inputs.is_null() ? json::object() : r.inputs;
  j["started_at"] = r.started_at;
  j["duration_ms"] = round_ms(r.duration_ms);
  j["status"] = to_string(r.overall());
  j["interrupted"] = r.interrupted;
  if (!r.stopped.empty()) j["stopped"] = r.stopped;
  j["exit_code"] = exit_code(r);
  json sum;
  auto counts = r.summary();
  for (Status st : {Status::kPass, Status::kFail, Status::kWarn, Status::kSkip, Status::kError})
    sum[std::string(to_string(st))] = counts[st];
  j["summary"] = std::move(sum);
  json steps = json::array();
  for (const auto& s : r.steps) steps.push_back(step_json(s));
  j["steps"] = std::move(steps);
  json findings = json::array();
  for (const Finding* f : findings_by_severity(r)) {
    json x;
    x["id"] = f->id;
    x["severity"] = to_string(f->severity);
    x["finding"] = f->finding;
    x["next"] = strings(f->next);
    x["references"] = strings(f->references);
    findings.push_back(std::move(x));
  }
  j["findings"] = std::move(findings);
  // Step output may hold any bytes; replace what is not UTF-8 rather than fail the report.
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace netplay::reporters
