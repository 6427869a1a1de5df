#include "steps/net/netns_walk.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "runner/step/netns.h"
#include "steps/net/netns_scan.h"

namespace netplay::netns {
namespace {

using namespace std::chrono_literals;

/// Shared threads at most (fewer on fewer cores).
constexpr size_t kMaxHelpers = 4;
/// Fewer namespaces than this per thread are not worth handing over.
constexpr size_t kPerThread = 16;
/// How often a waiting caller looks at the step's cancellation and deadline.
constexpr auto kCheck = 20ms;

struct Walk {
  Walk(const std::vector<std::string>& p, const Visit& v, const EnterFailed& f,
       const StepContext& c)
      : paths(p), visit(v), failed(f), step(c) {}
  const std::vector<std::string>& paths;
  const Visit& visit;
  const EnterFailed& failed;
  const StepContext& step;
  std::atomic<bool> stop{false};  // no more visits start
  std::atomic<size_t> next{0};
  std::atomic<size_t> finished{0};
  // Guarded by the pool's mutex.
  size_t helpers_wanted = 0;
  size_t helpers_running = 0;

  bool exhausted() const { return stop.load() || next.load() >= paths.size(); }
  /// Stops the walk once the step is cancelled or out of time.
  bool check_step() {
    if (step.is_cancelled() || step.expired()) stop = true;
    return !stop.load();
  }
};

/// Visits namespaces of `w` on the calling thread, moving `scope` from one to the next,
/// until none is left or the walk stopped.
void work(Walk& w, NetnsScope& scope) {
  while (w.check_step()) {
    size_t i = w.next.fetch_add(1);
    if (i >= w.paths.size()) return;
    auto moved = scope.move_to(w.paths[i]);
    bool go = false;
    try {
      go = moved ? w.visit(i, w.step) : w.failed(i, moved.error());
    } catch (...) {
      go = false;  // never let an exception end a shared thread
    }
    if (!go) w.stop = true;
    w.finished.fetch_add(1);
  }
}

/// The threads shared by every walk of the process. They start in netplay's own namespace,
/// move wherever their visits take them, and go back home when there is nothing to do, so
/// an idle thread never keeps a deleted namespace alive.
class Pool {
 public:
  static Pool& shared() {
    static Pool* pool = new Pool();  // never destroyed: idle threads may outlive main()
    return *pool;
  }

  /// Asks up to `n` threads to help with `w`, starting threads as needed.
  void offer(const std::shared_ptr<Walk>& w, size_t n) {
    std::lock_guard lock(m_);
    w->helpers_wanted = n;
    walks_.push_back(w);
    size_t cap = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, kMaxHelpers);
    while (threads_ < cap && idle_ + threads_started_waiting_ < n) {
      ++threads_;
      ++threads_started_waiting_;
      std::thread([this] { run(); }).detach();
    }
    work_cv_.notify_all();
  }

  /// No more helpers for `w`; returns once none is running a visit of it, stopping the walk
  /// if the step is cancelled or out of time meanwhile.
  void withdraw(const std::shared_ptr<Walk>& w) {
    std::unique_lock lock(m_);
    std::erase(walks_, w);
    while (w->helpers_running > 0) {
      done_cv_.wait_for(lock, kCheck);
      w->check_step();
    }
  }

 private:
  Pool() = default;

  /// A walk that still wants help, or null.
  std::shared_ptr<Walk> pick_locked() {
    std::erase_if(walks_, [](const auto& w) { return w->exhausted(); });
    for (auto& w : walks_)
      if (w->helpers_running < w->helpers_wanted) return w;
    return nullptr;
  }

  void run() {
    bool home_ok = go_home_for_good();
    NetnsScope scope = NetnsScope::here();
    std::unique_lock lock(m_);
    --threads_started_waiting_;
    while (home_ok) {
      std::shared_ptr<Walk> w = pick_locked();
      if (!w) {
        lock.unlock();
        home_ok = scope.leave();  // back to netplay's namespace while idle
        lock.lock();
        if (!home_ok) break;
        if ((w = pick_locked()) == nullptr) {
          ++idle_;
          work_cv_.wait(lock);
          --idle_;
          continue;
        }
      }
      ++w->helpers_running;
      lock.unlock();
      work(*w, scope);
      lock.lock();
      --w->helpers_running;
      done_cv_.notify_all();
    }
    --threads_;  // lost its namespace: another thread takes its place when needed
  }

  /// A new thread inherits its creator's namespace (maybe a step's): start from netplay's.
  static bool go_home_for_good() {
    int fd = ::open(host_path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = ::setns(fd, CLONE_NEWNET) == 0;
    ::close(fd);
    return ok;
  }

  std::mutex m_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<std::shared_ptr<Walk>> walks_;
  size_t threads_ = 0;
  size_t threads_started_waiting_ = 0;  // started, not yet looking for work
  size_t idle_ = 0;
};

}  // namespace

bool walk(const std::vector<std::string>& paths, const Visit& visit, const EnterFailed& failed,
          const StepContext& ctx) {
  auto w = std::make_shared<Walk>(paths, visit, failed, ctx);
  size_t helpers = paths.size() / kPerThread;
  if (helpers > 1) Pool::shared().offer(w, std::min(helpers - 1, kMaxHelpers));
  bool home = true;
  {
    NetnsScope scope = NetnsScope::here();
    work(*w, scope);
    home = scope.leave();
  }
  if (!home) w->stop = true;
  Pool::shared().withdraw(w);
  return !w->stop.load() && w->finished.load() == paths.size();
}

}  // namespace netplay::netns
