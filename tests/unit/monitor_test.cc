#include "runner/run/monitor.h"

#include <gtest/gtest.h>

namespace netplay {
namespace {

RunReport three_steps() {
  RunReport r;
  r.playbook_name = "p";
  for (const char* id : {"done", "running", "evaluating", "waiting"}) {
    StepResult s;
    s.id = id;
    r.steps.push_back(s);
  }
  return r;
}

TEST(RunMonitor, PartialReportSaysWhatHappenedToEachStep) {
  RunMonitor m;
  m.begin(three_steps(), Clock::now());
  StepResult done;
  done.id = "done";
  done.status = Status::kPass;
  done.message = "ok";
  m.started(0);
  m.finished(0, done);
  m.started(1);
  m.evaluating(2);
  RunReport r = m.partial("expression exceeded its time limit (2s)", false);
  ASSERT_EQ(r.steps.size(), 4u);
  EXPECT_EQ(r.steps[0].status, Status::kPass);
  EXPECT_EQ(r.steps[0].message, "ok");
  EXPECT_EQ(r.steps[1].status, Status::kError);
  EXPECT_EQ(r.steps[1].message, "not finished: expression exceeded its time limit (2s)");
  EXPECT_EQ(r.steps[2].status, Status::kError);
  EXPECT_EQ(r.steps[2].message, "expression exceeded its time limit (2s)");
  EXPECT_EQ(r.steps[3].status, Status::kSkip);
  EXPECT_EQ(r.steps[3].message, "not run: expression exceeded its time limit (2s)");
  EXPECT_EQ(r.stopped, "expression exceeded its time limit (2s)");
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(exit_code(r), 3);
  EXPECT_EQ(exit_code(m.partial("interrupted", true)), 130);
}

TEST(RunMonitor, AStoppedRunIsNeverAPass) {
  RunMonitor m;
  RunReport one;
  one.steps.push_back(StepResult{.id = "a"});
  m.begin(one, Clock::now());
  StepResult a;
  a.id = "a";
  a.status = Status::kPass;
  m.finished(0, a);
  m.evaluating(RunMonitor::kDiagnosis);  // stuck in the diagnosis, every step done
  RunReport r = m.partial("expression exceeded its time limit (2s)", false);
  EXPECT_EQ(r.steps[0].status, Status::kPass);
  EXPECT_EQ(r.status, Status::kError);
}

}  // namespace
}  // namespace netplay
