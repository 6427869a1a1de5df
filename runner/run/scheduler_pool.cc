#include "runner/run/scheduler_pool.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "runner/step/netns.h"

namespace netplay {

bool run_attempt(Attempt& a, StepServices* services) {
  StepContext ctx;
  ctx.services = services;
  ctx.deadline = a.deadline;
  ctx.cancelled = &a.cancelled;
  ctx.interrupt = a.interrupt;
  ctx.stop_requested = &a.stop_requested;
  ctx.netns = a.netns;
  ctx.step_id = a.step_id;
  ctx.attempt = a.number;
  ctx.expected_facts = a.expected_facts;
  a.started = Clock::now();
  bool deferred = a.step && a.step->spec().signals_ready && a.mark_begun;
  if (deferred) ctx.on_ready = a.mark_begun;
  else a.begun = true;

  std::optional<NetnsScope> scope;
  if (!a.netns.empty() && a.netns != "host") {
    auto entered = NetnsScope::enter(a.netns);
    if (!entered) {
      a.out = StepOutput::error(entered.error());
      a.finished = Clock::now();
      return thread_netns_home_ok();
    }
    scope.emplace(std::move(*entered));
  }
  try {
    a.out = a.step->run(ctx, a.params);
  } catch (const std::exception& e) {
    a.out = StepOutput::error(std::string("internal error: ") + e.what());
  } catch (...) {
    a.out = StepOutput::error("internal error: unknown exception");
  }
  bool home = scope ? scope->leave() : true;
  a.finished = Clock::now();
  return home && thread_netns_home_ok();
}

struct WorkerPool::Shared {
  mutable std::mutex m;
  std::condition_variable work_cv;
  std::condition_variable done_cv;
  std::deque<std::shared_ptr<Attempt>> queue;
  std::vector<std::shared_ptr<Attempt>> done;
  std::map<unsigned long, std::thread> threads;
  std::vector<unsigned long> exited;  // retired threads waiting to be joined
  unsigned long next_id = 1;
  size_t idle = 0;  // workers blocked in work_cv.wait
  bool stopping = false;
  bool begun = false;  // an attempt began since the last wait(): dependents may be ready
  StepServices* services = nullptr;
};

namespace {

void worker_main(std::shared_ptr<WorkerPool::Shared> s, unsigned long id);

}  // namespace

WorkerPool::WorkerPool(StepServices* services) : s_(std::make_shared<Shared>()) {
  s_->services = services;
}

WorkerPool::~WorkerPool() {
  std::map<unsigned long, std::thread> threads;
  {
    std::lock_guard lock(s_->m);
    s_->stopping = true;
    threads.swap(s_->threads);
    for (const auto& a : s_->queue) a->cancelled = true;
  }
  s_->work_cv.notify_all();
  for (auto& [id, t] : threads)
    if (t.joinable()) t.join();
}

namespace {

void reap_locked(WorkerPool::Shared& s, std::vector<std::thread>& out) {
  for (unsigned long id : s.exited) {
    auto it = s.threads.find(id);
    if (it == s.threads.end()) continue;
    out.push_back(std::move(it->second));
    s.threads.erase(it);
  }
  s.exited.clear();
}

void worker_main(std::shared_ptr<WorkerPool::Shared> s, unsigned long id) {
  std::unique_lock lock(s->m);
  for (;;) {
    while (s->queue.empty() && !s->stopping) {
      ++s->idle;
      s->work_cv.wait(lock);
      --s->idle;
    }
    if (s->queue.empty()) return;  // stopping
    std::shared_ptr<Attempt> a = std::move(s->queue.front());
    s->queue.pop_front();
    a->worker = id;
    if (a->step && a->step->spec().signals_ready) {
      // Begun when the step says it is ready (a capture listening), or when it returns.
      Attempt* raw = a.get();
      a->mark_begun = [s, raw] {
        std::lock_guard l(s->m);
        if (raw->begun) return;
        raw->begun = true;
        s->begun = true;
        s->done_cv.notify_one();
      };
    } else {
      a->begun = true;  // set here, under the lock, so that the wake-up below sees it
      s->begun = true;
      s->done_cv.notify_one();
    }
    lock.unlock();
    bool home_ok = run_attempt(*a, s->services);
    lock.lock();
    a->begun = true;
    a->mark_begun = nullptr;
    a->completed = true;
    if (a->abandoned) return;  // already detached and forgotten by the pool
    s->done.push_back(std::move(a));
    s->done_cv.notify_one();
    if (!home_ok) {
      // A thread whose namespace is unknown must never run another step.
      s->exited.push_back(id);
      return;
    }
  }
}

}  // namespace

void WorkerPool::submit(std::shared_ptr<Attempt> a) {
  std::vector<std::thread> reaped;
  {
    std::lock_guard lock(s_->m);
    reap_locked(*s_, reaped);
    s_->queue.push_back(std::move(a));
    if (s_->idle < s_->queue.size()) {
      unsigned long id = s_->next_id++;
      s_->threads.emplace(id, std::thread(worker_main, s_, id));
    }
  }
  s_->work_cv.notify_one();
  for (auto& t : reaped) t.join();
}

std::vector<std::shared_ptr<Attempt>> WorkerPool::wait(Clock::time_point until) {
  std::vector<std::shared_ptr<Attempt>> out;
  std::unique_lock lock(s_->m);
  s_->done_cv.wait_until(lock, until, [&] { return !s_->done.empty() || s_->begun; });
  s_->begun = false;
  out.swap(s_->done);
  return out;
}

bool WorkerPool::abandon(const std::shared_ptr<Attempt>& a) {
  std::lock_guard lock(s_->m);
  if (a->completed) return false;
  a->abandoned = true;
  if (a->worker == 0) {
    std::erase(s_->queue, a);
    return true;
  }
  auto it = s_->threads.find(a->worker);
  if (it != s_->threads.end()) {
    it->second.detach();
    s_->threads.erase(it);
  }
  return true;
}

size_t WorkerPool::threads() const {
  std::lock_guard lock(s_->m);
  return s_->threads.size();
}

}  // namespace netplay
