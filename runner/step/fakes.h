#pragma once
/// Fakes of the step services for unit tests: a step's run() on canned answers, without
/// root, namespaces, child processes or waiting. They honour deadline and cancellation the
/// way the real services do (checked against the fake clock), so those paths are testable.
///
///   FakeServices fakes;
///   fakes.fake_processes.answer({.exit_code = 0, .out = "ok\n"});
///   StepContext ctx;
///   ctx.services = &fakes;
///   auto out = step->run(ctx, params);

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "runner/step/services.h"

namespace netplay {

/// Time that moves only when told to. now() starts at the real steady time of construction
/// (so deadlines a scheduler computed from the real clock stay meaningful), wall_now() at
/// 2024-01-02T03:04:05Z.
class FakeClock : public StepClock {
 public:
  Clock::time_point now() const override;
  std::chrono::system_clock::time_point wall_now() const override;
  void advance(Millis d);

  static constexpr long long kWallStartSeconds = 1704164645;

 private:
  const Clock::time_point start_ = Clock::now();
  std::atomic<Clock::rep> elapsed_{0};  // since start_, in Clock ticks
};

/// Answers every run with a canned result (or a handler's), and records what was asked.
class FakeProcessRunner : public ProcessRunner {
 public:
  using Handler = std::function<std::expected<ProcessResult, std::string>(const ProcessSpec&,
                                                                          const StepContext&)>;
  /// Every run gets `result`.
  void answer(ProcessResult result);
  /// Every run gets what `h` returns (e.g. by argv).
  void answer(Handler h);
  /// Every run fails to start with `error` ("no such command 'x'").
  void fail_to_start(std::string error);

  /// Runs after the deadline or a stop request end as the real runner would end them:
  /// killed (SIGTERM), timed_out or cancelled set, with the canned output gathered so far.
  std::expected<ProcessResult, std::string> run(const ProcessSpec& spec,
                                                const StepContext& ctx) override;
  void kill_all() override;

  std::vector<ProcessSpec> runs() const;
  int kill_all_calls() const;

 private:
  mutable std::mutex m_;
  Handler handler_;
  std::vector<ProcessSpec> runs_;
  int kill_all_calls_ = 0;
};

class FakeServices : public StepServices {
 public:
  ProcessRunner& processes() override { return fake_processes; }
  StepClock& clock() override { return fake_clock; }

  FakeProcessRunner fake_processes;
  FakeClock fake_clock;
};

}  // namespace netplay
