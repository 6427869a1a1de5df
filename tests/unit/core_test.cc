#include "runner/base/core.h"

#include <gtest/gtest.h>

namespace netplay {
namespace {

TEST(DidYouMean, SuggestsCloseNames) {
  std::vector<std::string> params{"key", "count", "interface", "sysctl", "vxlan.vtep"};
  EXPECT_EQ(did_you_mean("kye", params), "key");          // transposition is one edit
  EXPECT_EQ(did_you_mean("cout", params), "count");
  EXPECT_EQ(did_you_mean("cuont", params), "count");
  EXPECT_EQ(did_you_mean("sysctll", params), "sysctl");
  EXPECT_EQ(did_you_mean("vxlan.vtp", params), "vxlan.vtep");
  EXPECT_EQ(did_you_mean("interfce", params), "interface");
}

TEST(DidYouMean, StaysQuietForUnrelatedOrTinyWords) {
  std::vector<std::string> names{"a", "b", "key", "count"};
  EXPECT_EQ(did_you_mean("x", names), "");
  EXPECT_EQ(did_you_mean("zzzzzz", names), "");
  EXPECT_EQ(did_you_mean("destination", names), "");
}

TEST(Duration, ParsesAndFormats) {
  EXPECT_DOUBLE_EQ(parse_duration("250ms")->count(), 250);
  EXPECT_DOUBLE_EQ(parse_duration("1.5s")->count(), 1500);
  EXPECT_DOUBLE_EQ(parse_duration("2m")->count(), 120000);
  EXPECT_DOUBLE_EQ(parse_duration("5")->count(), 5000);
  EXPECT_FALSE(parse_duration("soon").has_value());
  EXPECT_FALSE(parse_duration("5 parsecs").has_value());
  EXPECT_EQ(format_duration(Millis(250)), "250ms");
  EXPECT_EQ(format_duration(Millis(5000)), "5s");
  EXPECT_EQ(format_duration(Millis(1500)), "1.5s");
  EXPECT_EQ(format_duration(Millis(120000)), "2m");
}

TEST(Diagnostic, FormatsFileLineColumn) {
  EXPECT_EQ((Diagnostic{"pb.yaml", {12, 7}, "boom"}.str()), "pb.yaml:12:7: boom");
  EXPECT_EQ((Diagnostic{"pb.yaml", {}, "boom"}.str()), "pb.yaml: boom");
}

}  // namespace
}  // namespace netplay

#include "runner/base/result.h"

namespace netplay {
namespace {

RunReport report_with(std::initializer_list<Status> statuses) {
  RunReport r;
  for (Status s : statuses) r.steps.push_back(StepResult{.status = s});
  return r;
}

TEST(RunReport, OverallStatusAndExitCode) {
  EXPECT_EQ(exit_code(report_with({Status::kPass, Status::kWarn, Status::kSkip})), 0);
  EXPECT_EQ(report_with({Status::kPass, Status::kWarn}).overall(), Status::kWarn);
  EXPECT_EQ(exit_code(report_with({Status::kPass, Status::kFail, Status::kError})), 1);
  EXPECT_EQ(exit_code(report_with({Status::kPass, Status::kError})), 3);
  RunReport finding = report_with({Status::kPass});
  finding.findings.push_back({.id = "x"});
  EXPECT_EQ(finding.overall(), Status::kFail);
  EXPECT_EQ(exit_code(finding), 1);
}

/// Only a `fail` finding fails the run; `warn` makes it at least warn and exits 0; `info`
/// changes nothing. Step statuses keep their weight next to findings.
TEST(RunReport, FindingSeverityDecidesItsWeight) {
  auto with_finding = [](std::initializer_list<Status> statuses, Severity sev) {
    RunReport r = report_with(statuses);
    r.findings.push_back({.id = "x", .severity = sev});
    return r;
  };
  RunReport fail = with_finding({Status::kPass}, Severity::kFail);
  EXPECT_EQ(fail.overall(), Status::kFail);
  EXPECT_EQ(exit_code(fail), 1);
  RunReport warn = with_finding({Status::kPass}, Severity::kWarn);
  EXPECT_EQ(warn.overall(), Status::kWarn);
  EXPECT_EQ(exit_code(warn), 0);
  RunReport info = with_finding({Status::kPass}, Severity::kInfo);
  EXPECT_EQ(info.overall(), Status::kPass);
  EXPECT_EQ(exit_code(info), 0);
  // A warn finding never hides what the steps say.
  RunReport failed_step = with_finding({Status::kFail}, Severity::kWarn);
  EXPECT_EQ(failed_step.overall(), Status::kFail);
  EXPECT_EQ(exit_code(failed_step), 1);
  RunReport errored = with_finding({Status::kError}, Severity::kWarn);
  EXPECT_EQ(errored.overall(), Status::kError);
  EXPECT_EQ(exit_code(errored), 3);
  RunReport warned_step = with_finding({Status::kWarn}, Severity::kInfo);
  EXPECT_EQ(warned_step.overall(), Status::kWarn);
  // One fail finding among softer ones still fails the run.
  RunReport mixed = with_finding({Status::kPass}, Severity::kInfo);
  mixed.findings.push_back({.id = "y", .severity = Severity::kWarn});
  EXPECT_EQ(mixed.overall(), Status::kWarn);
  mixed.findings.push_back({.id = "z"});
  EXPECT_EQ(mixed.overall(), Status::kFail);
  EXPECT_EQ(exit_code(mixed), 1);
}

TEST(Core, SeverityNames) {
  for (Severity s : {Severity::kFail, Severity::kWarn, Severity::kInfo})
    EXPECT_EQ(parse_severity(to_string(s)), s);
  EXPECT_EQ(to_string(Severity::kWarn), "warn");
  EXPECT_FALSE(parse_severity("warning").has_value());
}

TEST(RunReport, InterruptedRunIsNeverAPass) {
  RunReport r = report_with({Status::kPass, Status::kSkip});
  r.interrupted = true;
  EXPECT_EQ(r.overall(), Status::kError);
  EXPECT_EQ(exit_code(r), 130);
}

}  // namespace
}  // namespace netplay
