#include "runner/base/result.h"

#include <algorithm>

namespace netplay {

std::map<Status, int> RunReport::summary() const {
  std::map<Status, int> s{{Status::kPass, 0}, {Status::kFail, 0}, {Status::kWarn, 0},
                          {Status::kSkip, 0}, {Status::kError, 0}};
  for (const auto& st : steps) ++s[st.status];
  return s;
}

Status RunReport::overall() const {
  auto s = summary();
  auto found = [&](Severity sev) {
    return std::any_of(findings.begin(), findings.end(),
                       [&](const Finding& f) { return f.severity == sev; });
  };
  if (s[Status::kFail] > 0 || found(Severity::kFail)) return Status::kFail;
  // An interrupted run did not check everything: it never reads as a pass.
  if (s[Status::kError] > 0 || found(Severity::kError) || interrupted || !stopped.empty())
    return Status::kError;
  if (s[Status::kWarn] > 0 || found(Severity::kWarn)) return Status::kWarn;
  return Status::kPass;
}

int exit_code(const RunReport& r) {
  if (r.interrupted) return 130;
  switch (r.overall()) {
    case Status::kFail: return 1;
    case Status::kError: return 3;
    default: return 0;
  }
}

}  // namespace netplay
