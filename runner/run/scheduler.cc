/// The scheduler: one thread (the caller's) owns the step graph and every call into the
/// session's Lua state; a pool of worker threads runs the steps inside their namespaces.
/// The scheduler thread sleeps on the pool's condition variable, waking for completions,
/// deadlines and a ~100 ms tick (progress, Ctrl-C, the global timeout); it never
/// busy-waits. With one job, steps run inline on the scheduler thread instead: a handoff
/// to a worker costs two thread wake-ups per step, which a single job cannot overlap.

#include "runner/run/scheduler.h"

#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <map>

#include "netplay_version.h"
#include "runner/step/services.h"
#include "runner/run/scheduler_eval.h"
#include "runner/run/scheduler_pool.h"

namespace netplay {
namespace {

constexpr auto kTick = std::chrono::milliseconds(100);
/// How long a step whose attempt timed out may take to notice its cancelled flag before
/// the attempt is abandoned (and its thread replaced).
constexpr auto kTimeoutGrace = std::chrono::milliseconds(200);
/// How long running steps get to return after Ctrl-C or the global timeout.
constexpr auto kStopGrace = std::chrono::milliseconds(1000);
constexpr size_t kCollectorFactsMax = 2000;

enum class Phase { kWaiting, kRetryWait, kRunning, kDone };
enum class StopReason { kNone, kInterrupt, kGlobalTimeout, kNamespaceLost };

struct Node {
  const StepDef* def = nullptr;
  std::vector<size_t> needs;      // hard edges: skipped if one of these did not pass
  std::vector<size_t> refs;       // read via expressions: wait for them, whatever the status
  std::vector<size_t> needed_by;  // reverse of `needs`, for stopping background steps
  Phase phase = Phase::kWaiting;
  StepResult result;
  PreparedStep prep;
  std::shared_ptr<Attempt> attempt;  // the one running now (step or collector)
  bool started = false;
  bool stop_requested = false;
  Clock::time_point first_start{};
  Clock::time_point retry_at{};
  size_t next_collector = 0;
};

std::string rfc3339_utc(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - secs).count();
  time_t tt = std::chrono::system_clock::to_time_t(secs);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<Millis>(b - a).count();
}

std::string_view failed_verb(Status s) {
  switch (s) {
    case Status::kFail:
      return "failed";
    case Status::kError:
      return "errored";
    default:
      return "was skipped";
  }
}

class Run {
 public:
  Run(const Session& session, ExprEngine* lua, Progress* progress,
      const std::atomic<bool>& interrupt)
      : pb_(session.plan()),
        opts_(session.options()),
        progress_(progress),
        interrupt_(interrupt),
        engine_(lua),
        monitor_(session.monitor()),
        jobs_(std::max(1, opts_.jobs)),
        services_(opts_.services ? *opts_.services : system_services()),
        pool_(&services_) {}

  RunReport execute();

 private:
  void build_graph();
  bool dispatch(Clock::time_point now);
  void start_attempt(size_t i, Clock::time_point now);
  void launch(std::shared_ptr<Attempt> a, bool background);
  bool stop_pending() const;
  void start_collectors(size_t i);
  void on_complete(const std::shared_ptr<Attempt>& a, bool abandoned);
  void complete_collector(Node& n, const Attempt& a, bool abandoned);
  void finish(size_t i, Status status, std::string message);
  void finish(size_t i);
  void check_timeouts(Clock::time_point now);
  void stop_background(Clock::time_point now, bool idle);
  void begin_stop(StopReason r, Clock::time_point now);
  std::string stop_message() const;
  Clock::time_point next_wake(Clock::time_point now) const;
  RunReport header() const;
  bool capacity(const Node& n) const { return n.def->background || busy_ < jobs_; }

  const Plan& pb_;
  const RunOptions& opts_;
  Progress* progress_;
  const std::atomic<bool>& interrupt_;
  ExprEngine* engine_;
  RunMonitor& monitor_;
  const int jobs_;

  std::vector<Node> nodes_;
  std::vector<size_t> running_;  // nodes with an attempt in the pool
  size_t done_ = 0;
  size_t first_open_ = 0;  // nodes before this one are all done
  int busy_ = 0;           // running attempts of non-background steps
  bool fail_fast_tripped_ = false;
  bool awaiting_begin_ = false;  // a step waits for a background step to begin on a worker
  StopReason stop_ = StopReason::kNone;
  Clock::time_point run_start_{};
  Clock::time_point stop_deadline_{};
  std::optional<Clock::time_point> global_deadline_;
  StepServices& services_;
  WorkerPool pool_;
};

/// `only` keeps the selected steps and, transitively, what they `need`; every other step
/// is left out of the run and out of the report (a report lists what was looked at). The
/// edges come from the plan's graph, built once at load time.
void Run::build_graph() {
  const size_t count = pb_.steps.size();
  std::vector<bool> selected(count, opts_.only.empty());
  std::vector<size_t> stack;
  for (const auto& id : opts_.only)
    for (size_t i = 0; i < count; ++i)
      if (pb_.steps[i].id == id) stack.push_back(i);
  while (!stack.empty()) {
    size_t i = stack.back();
    stack.pop_back();
    if (selected[i]) continue;
    selected[i] = true;
    if (i < pb_.graph.size())
      for (size_t d : pb_.graph[i].needs) stack.push_back(d);
  }

  std::vector<size_t> node_of(count, SIZE_MAX);
  for (size_t i = 0; i < count; ++i) {
    if (!selected[i]) continue;
    node_of[i] = nodes_.size();
    Node n;
    n.def = &pb_.steps[i];
    n.result.id = n.def->id;
    n.result.title = n.def->title;
    n.result.uses = n.def->uses;
    n.result.netns = n.def->netns;
    n.result.background = n.def->background;
    nodes_.push_back(std::move(n));
  }
  for (size_t i = 0; i < count && i < pb_.graph.size(); ++i) {
    if (node_of[i] == SIZE_MAX) continue;
    Node& n = nodes_[node_of[i]];
    for (size_t d : pb_.graph[i].needs)
      if (node_of[d] != SIZE_MAX) n.needs.push_back(node_of[d]);
    for (size_t d : pb_.graph[i].refs)
      if (node_of[d] != SIZE_MAX) n.refs.push_back(node_of[d]);
  }
  for (size_t i = 0; i < nodes_.size(); ++i)
    for (size_t d : nodes_[i].needs) nodes_[d].needed_by.push_back(i);
}

/// One pass over the open steps in list order (the priority among ready steps): skips
/// what can no longer run and starts what is ready while workers are free.
bool Run::dispatch(Clock::time_point now) {
  bool changed = false;
  awaiting_begin_ = false;
  while (first_open_ < nodes_.size() && nodes_[first_open_].phase == Phase::kDone) ++first_open_;
  for (size_t i = first_open_; i < nodes_.size(); ++i) {
    if (stop_ != StopReason::kNone || (jobs_ == 1 && stop_pending())) break;
    Node& n = nodes_[i];
    if (n.phase == Phase::kRetryWait) {
      if (fail_fast_tripped_) {
        finish(i);  // keeps the previous attempt's verdict
        changed = true;
      } else if (now >= n.retry_at && capacity(n)) {
        start_attempt(i, now);
        changed = true;
      }
      continue;
    }
    if (n.phase != Phase::kWaiting) continue;
    if (fail_fast_tripped_) {
      finish(i, Status::kSkip, "not run: --fail-fast");
      changed = true;
      continue;
    }
    bool ready = true;
    const Node* blocker = nullptr;
    for (size_t d : n.needs) {
      const Node& dn = nodes_[d];
      if (dn.phase == Phase::kDone) {
        Status s = dn.result.status;
        if (s == Status::kFail || s == Status::kError || s == Status::kSkip) {
          blocker = &dn;
          break;
        }
      } else if (dn.def->background && dn.started) {
        // A background step counts as started for `needs` once a worker runs it, so that
        // what it observes (a capture) is under way before its dependents act.
        if (!(dn.attempt && dn.attempt->begun.load())) {
          ready = false;
          awaiting_begin_ = true;
        }
      } else {
        ready = false;
      }
    }
    if (blocker) {
      finish(i, Status::kSkip,
             fmt::format("needs '{}', which {}", blocker->def->id,
                         failed_verb(blocker->result.status)));
      changed = true;
      continue;
    }
    for (size_t d : n.refs)
      if (nodes_[d].phase != Phase::kDone) ready = false;
    if (!ready || !capacity(n)) continue;

    changed = true;
    if (!n.def->step) {
      finish(i, Status::kError, fmt::format("unknown step '{}'", n.def->uses));
      continue;
    }
    monitor_.evaluating(static_cast<int>(i));
    if (auto v = gate_step(engine_, *n.def)) {
      monitor_.evaluating(RunMonitor::kNone);
      finish(i, v->status, std::move(v->message));
      continue;
    }
    auto prep = prepare_step(engine_, *n.def, nullptr);
    monitor_.evaluating(RunMonitor::kNone);
    if (!prep) {
      finish(i, Status::kError, std::move(prep.error()));
      continue;
    }
    n.prep = std::move(*prep);
    n.result.netns = n.prep.netns;
    start_attempt(i, now);
  }
  return changed;
}

void Run::start_attempt(size_t i, Clock::time_point now) {
  Node& n = nodes_[i];
  auto a = std::make_shared<Attempt>();
  a->node = i;
  a->step = n.def->step;
  // Params are needed again only for a retry.
  a->params = Params(n.result.attempts < n.def->retries ? n.prep.params : std::move(n.prep.params));
  a->netns = n.prep.netns;
  a->step_id = n.def->id;
  a->number = n.result.attempts + 1;
  for (const auto& [fact, _] : n.def->expect.items()) a->expected_facts.push_back(fact);
  if (n.def->timeout.count() > 0)
    a->deadline = now + std::chrono::duration_cast<Clock::duration>(n.def->timeout);
  a->stop_requested = n.stop_requested;
  if (!n.started) {
    n.started = true;
    n.first_start = now;
    n.result.started_ms = ms_between(run_start_, now);
    monitor_.started(i);
    if (progress_) progress_->on_start(n.result);
  }
  n.phase = Phase::kRunning;
  n.attempt = a;
  running_.push_back(i);
  if (!n.def->background) ++busy_;
  launch(std::move(a), n.def->background);
}

/// Hands an attempt to a worker, or with one job runs it right here. An inline step gets
/// the same deadline and cancellation (Ctrl-C reaches it through `interrupt`); a step that
/// returns past its deadline is reported as timed out, as a worker's would be.
void Run::launch(std::shared_ptr<Attempt> a, bool background) {
  if (global_deadline_) a->deadline = std::min(a->deadline, *global_deadline_);
  a->interrupt = &interrupt_;
  if (jobs_ > 1 || background) {
    pool_.submit(std::move(a));
    return;
  }
  bool home = run_attempt(*a, &services_);
  Clock::time_point now = Clock::now();
  if (!home)
    begin_stop(StopReason::kNamespaceLost, now);
  else if (interrupt_.load())
    begin_stop(StopReason::kInterrupt, now);
  else if (global_deadline_ && now >= *global_deadline_)
    begin_stop(StopReason::kGlobalTimeout, now);
  if (stop_ == StopReason::kNone && now >= a->deadline) a->timed_out = true;
  on_complete(a, false);
}

/// With inline steps the loop that watches Ctrl-C and the global timeout is not running:
/// dispatch() asks this between steps.
bool Run::stop_pending() const {
  return interrupt_.load(std::memory_order_relaxed) ||
         (global_deadline_ && Clock::now() >= *global_deadline_);
}

/// Collectors run one after another in the parent's slot (and by default in its netns).
void Run::start_collectors(size_t i) {
  Node& n = nodes_[i];
  const auto& collectors = n.def->on_fail;
  while (n.next_collector < collectors.size() && stop_ == StopReason::kNone) {
    const StepDef& c = collectors[n.next_collector];
    auto line = [&](std::string_view status, const std::string& msg) {
      n.result.evidence.push_back(fmt::format("on_fail {} ({}): {}", c.uses, status, msg));
      ++n.next_collector;
    };
    monitor_.evaluating(static_cast<int>(i));
    if (auto v = gate_step(engine_, c)) {
      monitor_.evaluating(RunMonitor::kNone);
      line(to_string(v->status), v->message);
      continue;
    }
    auto prep = prepare_step(engine_, c, &n.prep.netns);
    monitor_.evaluating(RunMonitor::kNone);
    if (!prep) {
      line("error", prep.error());
      continue;
    }
    auto a = std::make_shared<Attempt>();
    a->node = i;
    a->collector = static_cast<int>(n.next_collector);
    a->step = c.step;
    a->params = Params(std::move(prep->params));
    a->netns = prep->netns;
    a->step_id = c.id.empty() ? fmt::format("{}.on_fail[{}]", n.def->id, n.next_collector) : c.id;
    Clock::time_point now = Clock::now();
    if (c.timeout.count() > 0)
      a->deadline = now + std::chrono::duration_cast<Clock::duration>(c.timeout);
    n.phase = Phase::kRunning;
    n.attempt = a;
    running_.push_back(i);
    if (!n.def->background) ++busy_;
    launch(std::move(a), n.def->background);
    return;
  }
  finish(i);
}

void Run::complete_collector(Node& n, const Attempt& a, bool abandoned) {
  const StepDef& c = n.def->on_fail[a.collector];
  ++n.next_collector;
  if (abandoned || a.timed_out) {
    n.result.evidence.push_back(
        fmt::format("on_fail {} (error): timed out after {}", c.uses, format_duration(c.timeout)));
    return;
  }
  if (a.out.status == Status::kPass)
    n.result.evidence.push_back(fmt::format("on_fail {}: {}", c.uses, a.out.message));
  else
    n.result.evidence.push_back(
        fmt::format("on_fail {} ({}): {}", c.uses, to_string(a.out.status), a.out.message));
  if (!a.out.facts.empty()) {
    std::string facts = a.out.facts.dump(-1, ' ', false, json::error_handler_t::replace);
    if (facts.size() > kCollectorFactsMax) {
      facts.resize(kCollectorFactsMax);
      facts += "... (truncated)";
    }
    n.result.evidence.push_back(std::move(facts));
  }
  for (const auto& e : a.out.evidence) n.result.evidence.push_back("  " + e);
}

void Run::on_complete(const std::shared_ptr<Attempt>& a, bool abandoned) {
  Node& n = nodes_[a->node];
  if (n.attempt != a) return;
  // A step sees Ctrl-C at once (StepContext::interrupt) and may return before this thread
  // noticed it: the run stops before the step is judged, as if it had noticed first.
  if (stop_ == StopReason::kNone && interrupt_.load()) begin_stop(StopReason::kInterrupt, Clock::now());
  n.attempt.reset();
  std::erase(running_, a->node);
  if (!n.def->background) --busy_;

  if (a->collector >= 0) {
    complete_collector(n, *a, abandoned);
    start_collectors(a->node);
    return;
  }
  n.result.attempts = a->number;
  // An abandoned attempt's output still belongs to its (running) worker: never read it.
  if (!abandoned) {
    n.result.facts = std::move(a->out.facts);
    n.result.evidence = std::move(a->out.evidence);
  } else {
    n.result.facts = json::object();
    n.result.evidence.clear();
  }
  n.result.expectations.clear();

  if (stop_ != StopReason::kNone) {
    if (!abandoned && !a->out.message.empty()) n.result.evidence.push_back(a->out.message);
    finish(a->node, Status::kError, stop_message());
    return;
  }
  Judgement j;
  if (abandoned || a->timed_out) {
    if (!abandoned && !a->out.message.empty()) n.result.evidence.push_back(a->out.message);
    j.status = Status::kError;
    j.message = fmt::format("timed out after {}", format_duration(n.def->timeout));
    j.retryable = true;
  } else {
    j = judge_attempt(*n.def, n.prep.expect_of(*n.def), a->out.status, std::move(a->out.message),
                      n.result.facts);
  }
  n.result.status = j.status;
  n.result.message = std::move(j.message);
  n.result.expectations = std::move(j.expectations);

  if (j.retryable && a->number <= n.def->retries && !n.stop_requested) {
    n.phase = Phase::kRetryWait;
    n.retry_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(n.def->retry_delay);
    return;
  }
  if (n.def->hook_after) {
    // The hook reads this step's own result through steps.<id>.
    if (engine_)
      engine_->set_step_result(n.def->id, n.result.status, n.result.message, n.result.facts);
    monitor_.evaluating(static_cast<int>(a->node));
    if (auto v = run_after_hook(engine_, *n.def)) {
      n.result.status = v->status;
      n.result.message = std::move(v->message);
    }
    monitor_.evaluating(RunMonitor::kNone);
  }
  if ((n.result.status == Status::kFail || n.result.status == Status::kError) &&
      !n.def->on_fail.empty()) {
    n.next_collector = 0;
    start_collectors(a->node);
    return;
  }
  finish(a->node);
}

void Run::finish(size_t i, Status status, std::string message) {
  nodes_[i].result.status = status;
  nodes_[i].result.message = std::move(message);
  finish(i);
}

void Run::finish(size_t i) {
  Node& n = nodes_[i];
  n.phase = Phase::kDone;
  ++done_;
  if (n.started) n.result.duration_ms = ms_between(n.first_start, Clock::now());
  if (engine_)
    engine_->set_step_result(n.def->id, n.result.status, n.result.message, n.result.facts);
  monitor_.finished(i, n.result);
  if (progress_) progress_->on_finish(n.result);
  if (opts_.fail_fast && n.result.status == Status::kFail) fail_fast_tripped_ = true;
}

void Run::check_timeouts(Clock::time_point now) {
  std::vector<std::shared_ptr<Attempt>> abandon;
  for (size_t i : running_) {
    const auto& a = nodes_[i].attempt;
    if (!a->timed_out) {
      if (now >= a->deadline) {
        a->timed_out = true;
        a->cancelled = true;
      }
    } else if (now >= a->deadline + kTimeoutGrace) {
      abandon.push_back(a);
    }
  }
  for (const auto& a : abandon)
    if (pool_.abandon(a)) on_complete(a, true);
}

/// A background step ends when every step that needs it has finished; when nothing else
/// can make progress (`idle`) every background step still running is asked to stop, which
/// also ends the run and frees steps that read a background step's facts.
void Run::stop_background(Clock::time_point, bool idle) {
  for (size_t i : running_) {
    Node& n = nodes_[i];
    if (!n.def->background || n.stop_requested) continue;
    bool stop = idle;
    if (!stop && !n.needed_by.empty()) {
      stop = std::all_of(n.needed_by.begin(), n.needed_by.end(),
                         [&](size_t d) { return nodes_[d].phase == Phase::kDone; });
    }
    if (!stop) continue;
    n.stop_requested = true;
    n.attempt->stop_requested = true;
  }
}

std::string Run::stop_message() const {
  if (stop_ == StopReason::kInterrupt) return "interrupted";
  if (stop_ == StopReason::kNamespaceLost)
    return "stopped: netplay could not return to its own network namespace";
  return fmt::format("run timed out after {}", format_duration(opts_.global_timeout));
}

void Run::begin_stop(StopReason r, Clock::time_point now) {
  stop_ = r;
  stop_deadline_ = now + kStopGrace;
  for (size_t i : running_) nodes_[i].attempt->cancelled = true;
  services_.processes().kill_all();
  std::string not_run = r == StopReason::kInterrupt       ? "not run: interrupted"
                        : r == StopReason::kGlobalTimeout ? "not run: global timeout"
                                                          : "not run: " + stop_message();
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& n = nodes_[i];
    if (n.phase == Phase::kWaiting)
      finish(i, Status::kSkip, not_run);
    else if (n.phase == Phase::kRetryWait)
      finish(i, Status::kError, stop_message());
  }
}

Clock::time_point Run::next_wake(Clock::time_point now) const {
  Clock::time_point t = now + kTick;
  for (size_t i : running_) {
    const auto& a = nodes_[i].attempt;
    t = std::min(t, a->timed_out ? a->deadline + kTimeoutGrace : a->deadline);
  }
  for (size_t i = first_open_; i < nodes_.size(); ++i)
    if (nodes_[i].phase == Phase::kRetryWait) t = std::min(t, nodes_[i].retry_at);
  if (global_deadline_) t = std::min(t, *global_deadline_);
  if (stop_ != StopReason::kNone) t = std::min(t, stop_deadline_);
  return std::max(t, now);
}

RunReport Run::header() const {
  RunReport r;
  r.version = NETPLAY_VERSION;
  r.playbook_name = pb_.name;
  r.playbook_title = pb_.title;
  r.playbook_file = pb_.file;
  r.playbook_sha256 = pb_.sha256;
  r.inputs = opts_.inputs;
  return r;
}

RunReport Run::execute() {
  auto wall_start = std::chrono::system_clock::now();
  run_start_ = Clock::now();
  if (opts_.global_timeout.count() > 0)
    global_deadline_ =
        run_start_ + std::chrono::duration_cast<Clock::duration>(opts_.global_timeout);
  build_graph();
  if (engine_) {
    engine_->set_interrupt(&interrupt_);
    if (global_deadline_)
      engine_->set_run_deadline(*global_deadline_,
                                fmt::format("run timed out after {}",
                                            format_duration(opts_.global_timeout)));
  }
  {
    RunReport initial = header();
    initial.started_at = rfc3339_utc(wall_start);
    for (const auto& n : nodes_) initial.steps.push_back(n.result);
    monitor_.begin(std::move(initial), run_start_);
  }

  Clock::time_point last_tick = run_start_;
  for (;;) {
    Clock::time_point now = Clock::now();
    if (stop_ == StopReason::kNone) {
      if (interrupt_.load())
        begin_stop(StopReason::kInterrupt, now);
      else if (global_deadline_ && now >= *global_deadline_)
        begin_stop(StopReason::kGlobalTimeout, now);
    }
    bool changed = false;
    if (stop_ == StopReason::kNone) {
      check_timeouts(now);
      changed = dispatch(now);
      bool retrying = false;
      for (size_t i = first_open_; i < nodes_.size() && !retrying; ++i)
        retrying = nodes_[i].phase == Phase::kRetryWait;
      bool idle = !changed && busy_ == 0 && !retrying && !awaiting_begin_;
      stop_background(now, idle);
      if (done_ == nodes_.size() && running_.empty()) break;
      if (idle && running_.empty()) {
        // Nothing runs and nothing can start: the rest waits on itself.
        for (size_t i = first_open_; i < nodes_.size(); ++i)
          if (nodes_[i].phase == Phase::kWaiting)
            finish(i, Status::kSkip, "not run: dependency cycle");
        continue;
      }
    } else {
      if (running_.empty()) break;
      if (now >= stop_deadline_) {
        std::vector<std::shared_ptr<Attempt>> left;
        for (size_t i : running_) left.push_back(nodes_[i].attempt);
        for (const auto& a : left)
          if (pool_.abandon(a)) on_complete(a, true);
      }
    }
    if (progress_ && !running_.empty() && now - last_tick >= kTick) {
      progress_->on_tick();
      last_tick = now;
    }
    for (const auto& a : pool_.wait(changed ? now : next_wake(now))) on_complete(a, false);
  }

  RunReport report = header();
  report.started_at = rfc3339_utc(wall_start);
  report.interrupted = stop_ == StopReason::kInterrupt;
  report.steps.reserve(nodes_.size());
  for (auto& n : nodes_) report.steps.push_back(std::move(n.result));
  if (stop_ != StopReason::kInterrupt) {
    std::vector<std::string> ran;
    for (const auto& s : report.steps) ran.push_back(s.id);
    monitor_.evaluating(RunMonitor::kDiagnosis);
    report.findings = diagnose(engine_, pb_, &ran);
    monitor_.evaluating(RunMonitor::kNone);
  }
  report.duration_ms = ms_between(run_start_, Clock::now());
  report.status = report.overall();
  return report;
}

}  // namespace

RunReport schedule(const Session& session, ExprEngine* lua, Progress* progress,
                   const std::atomic<bool>& interrupt) {
  Run run(session, lua, progress, interrupt);
  return run.execute();
}

}  // namespace netplay
