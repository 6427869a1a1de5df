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

TEST(RunReport, InterruptedRunIsNeverAPass) {
  RunReport r = report_with({Status::kPass, Status::kSkip});
  r.interrupted = true;
  EXPECT_EQ(r.overall(), Status::kError);
  EXPECT_EQ(exit_code(r), 130);
}

}  // namespace
}  // namespace netplay
