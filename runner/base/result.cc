#include "runner/base/result.h"

namespace netplay {

std::map<Status, int> RunReport::summary() const {
  std::map<Status, int> s{{Status::kPass, 0}, {Status::kFail, 0}, {Status::kWarn, 0},
                          {Status::kSkip, 0}, {Status::kError, 0}};
  for (const auto& st : steps) ++s[st.status];
  return s;
}

Status RunReport::overall() const {
  auto s = summary();
  if (s[Status::kFail] > 0 || !findings.empty()) return Status::kFail;
  // An interrupted run did not check everything: it never reads as a pass.
  if (s[Status::kError] > 0 || interrupted) return Status::kError;
  if (s[Status::kWarn] > 0) return Status::kWarn;
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
