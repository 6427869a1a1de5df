#pragma once
/// The scheduler's worker threads. A worker takes one attempt at a time, enters its network
/// namespace, runs the step and hands the attempt back. Threads are created lazily (never
/// one per step) and reused; a thread that could not return to its namespace, or whose
/// attempt was abandoned after a timeout, retires and the next submit spawns a fresh one.
/// Workers are only ever spawned from the scheduler thread, which stays in the host
/// namespace: a new thread inherits its creator's network namespace.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runner/base/core.h"
#include "runner/step/step.h"

namespace netplay {

/// One run of one step (or on_fail collector). Shared by the scheduler and a worker so an
/// abandoned attempt stays alive until its step finally returns.
struct Attempt {
  // Set by the scheduler before submit, read-only afterwards.
  size_t node = 0;
  int collector = -1;  // index into StepDef::on_fail; -1: the step itself
  const Step* step = nullptr;
  Params params;
  std::string netns = "host";
  std::string step_id;
  int number = 1;
  std::vector<std::string> expected_facts;  // see StepContext::expected_facts
  Clock::time_point deadline = Clock::time_point::max();
  std::atomic<bool> cancelled{false};
  std::atomic<bool> stop_requested{false};
  const std::atomic<bool>* interrupt = nullptr;  // the run's Ctrl-C flag
  std::atomic<bool> begun{false};  // a worker (or the scheduler thread) has started it
  /// For a step that signals_ready: marks it begun (and wakes the scheduler) when the step
  /// calls ctx.ready(); set by the worker that runs it.
  std::function<void()> mark_begun;

  // Written by the worker; visible to the scheduler once returned by WorkerPool::wait().
  StepOutput out;
  Clock::time_point started{};
  Clock::time_point finished{};

  // Scheduler thread only.
  bool timed_out = false;

  // Guarded by the pool's mutex.
  unsigned long worker = 0;  // 0: still queued
  bool completed = false;
  bool abandoned = false;
};

/// Runs one attempt on the calling thread with `services` (null: the real ones): netns in,
/// step, netns out; never throws. Returns false when the thread could not get back to its
/// namespace (it must retire).
bool run_attempt(Attempt& a, StepServices* services = nullptr);

class WorkerPool {
 public:
  /// Steps get `services` in their StepContext (null: the real ones).
  explicit WorkerPool(StepServices* services = nullptr);
  /// Joins every worker; threads still running an abandoned attempt are detached (they
  /// hold what they need and exit when the step returns).
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  /// Queues an attempt; spawns a worker when none is idle. The scheduler bounds how many
  /// attempts run at once, so the pool never grows past that.
  void submit(std::shared_ptr<Attempt> a);
  /// Waits until some attempt completes, one begins on a worker, or `until` passes;
  /// returns the completed ones.
  std::vector<std::shared_ptr<Attempt>> wait(Clock::time_point until);
  /// Gives up on an attempt whose step ignores cancellation. False when it completed in
  /// the meantime (its completion is then returned by wait()).
  bool abandon(const std::shared_ptr<Attempt>& a);
  /// Threads currently alive (for tests).
  size_t threads() const;

  struct Shared;  // queue, completions and threads; outlives the pool while workers run

 private:
  std::shared_ptr<Shared> s_;
};

}  // namespace netplay
