#include "runner/step/fakes.h"

#include <signal.h>

#include <fmt/format.h>

namespace netplay {

// ---- FakeClock ----

Clock::time_point FakeClock::now() const { return start_ + Clock::duration(elapsed_.load()); }

std::chrono::system_clock::time_point FakeClock::wall_now() const {
  return std::chrono::system_clock::time_point(std::chrono::seconds(kWallStartSeconds)) +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             Clock::duration(elapsed_.load()));
}

void FakeClock::advance(Millis d) {
  elapsed_ += std::chrono::duration_cast<Clock::duration>(d).count();
}

// ---- FakeProcessRunner ----

void FakeProcessRunner::answer(ProcessResult result) {
  answer([result](const ProcessSpec&, const StepContext&) { return result; });
}

void FakeProcessRunner::answer(Handler h) {
  std::lock_guard lock(m_);
  handler_ = std::move(h);
}

void FakeProcessRunner::fail_to_start(std::string error) {
  answer([error](const ProcessSpec&, const StepContext&)
             -> std::expected<ProcessResult, std::string> { return std::unexpected(error); });
}

std::expected<ProcessResult, std::string> FakeProcessRunner::run(const ProcessSpec& spec,
                                                                 const StepContext& ctx) {
  Handler h;
  {
    std::lock_guard lock(m_);
    runs_.push_back(spec);
    h = handler_;
  }
  if (!h)
    return std::unexpected(fmt::format("fake process runner: no answer for '{}'",
                                       spec.argv.empty() ? "" : spec.argv[0]));
  auto r = h(spec, ctx);
  if (!r) return r;
  if (ctx.should_stop() || ctx.expired()) {
    // Killed before it finished: no exit code, the group got SIGTERM.
    (ctx.should_stop() ? r->cancelled : r->timed_out) = true;
    r->exit_code.reset();
    r->term_signal = SIGTERM;
  }
  return r;
}

void FakeProcessRunner::kill_all() {
  std::lock_guard lock(m_);
  ++kill_all_calls_;
}

std::vector<ProcessSpec> FakeProcessRunner::runs() const {
  std::lock_guard lock(m_);
  return runs_;
}

int FakeProcessRunner::kill_all_calls() const {
  std::lock_guard lock(m_);
  return kill_all_calls_;
}

}  // namespace netplay
