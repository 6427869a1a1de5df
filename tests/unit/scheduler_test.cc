/// The scheduler against test-only steps registered here (sleep, facts, flaky, throw),
/// on playbooks built directly in C++: no loader, no YAML.

#include "runner/run/session.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "netplay_version.h"
#include "runner/run/scheduler_eval.h"
#include "runner/run/scheduler_pool.h"

namespace netplay {
namespace {

using namespace std::chrono_literals;

struct Interval {
  Clock::time_point start, end;
};

std::mutex g_mu;
std::map<std::string, Interval> g_intervals;  // step id -> when its last attempt ran
std::map<std::string, int> g_calls;           // flaky key -> calls so far

/// Named one-way gates: a test or a step opens one, steps and tests wait for it. Ordering
/// is asserted through these, never through how long something took.
class Gates {
 public:
  void open(const std::string& name) {
    {
      std::lock_guard lock(mu_);
      open_.insert(name);
    }
    cv_.notify_all();
  }
  bool is_open(const std::string& name) {
    std::lock_guard lock(mu_);
    return open_.contains(name);
  }
  /// Waits until `name` opens, `give_up()` holds (checked every few ms) or `limit` passed;
  /// true when the gate opened. The limit only keeps a broken build from hanging.
  template <class GiveUp>
  bool wait(const std::string& name, GiveUp give_up, Clock::duration limit = 30s) {
    auto until = Clock::now() + limit;
    std::unique_lock lock(mu_);
    while (!open_.contains(name)) {
      if (give_up() || Clock::now() >= until) return false;
      cv_.wait_for(lock, 2ms);
    }
    return true;
  }
  bool wait(const std::string& name) {
    return wait(name, [] { return false; });
  }
  void reset() {
    std::lock_guard lock(mu_);
    open_.clear();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> open_;
};
Gates g_gates;

/// Sleeps `ms`, in slices, stopping early on cancel or stop request (unless told to ignore
/// them, to exercise abandonment). With `gate`, it waits for that gate instead, `ms` being
/// only a limit. Opens the gates "started:ID" and "finished:ID".
class SleepStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "test.sleep",
        .summary = "test: sleep",
        .params = {{.name = "ms", .type = ValueType::kInt, .default_value = 1000},
                   {.name = "deaf", .type = ValueType::kBool, .default_value = false},
                   {.name = "gate", .type = ValueType::kString}},
        .supports_background = true,
    };
    return s;
  }
  StepOutput run(StepContext& ctx, const Params& p) const override {
    auto start = Clock::now();
    g_gates.open("started:" + ctx.step_id);
    auto limit = std::chrono::milliseconds(p.integer("ms"));
    bool deaf = p.boolean("deaf");
    bool stopped = false;
    auto should_stop = [&] {
      if (!deaf && ctx.should_stop()) stopped = true;
      return stopped;
    };
    bool gate_opened = false;
    if (p.has("gate")) {
      gate_opened = g_gates.wait(p.str("gate"), should_stop, limit);
    } else {
      while (Clock::now() < start + limit && !should_stop()) std::this_thread::sleep_for(2ms);
    }
    {
      std::lock_guard lock(g_mu);
      g_intervals[ctx.step_id] = {start, Clock::now()};
    }
    g_gates.open("finished:" + ctx.step_id);
    if (ctx.is_cancelled() && !deaf) return StepOutput::error("cancelled");
    StepOutput out;
    out.facts["stopped"] = stopped;
    if (p.has("gate")) out.facts["gate_opened"] = gate_opened;
    out.message = stopped ? "stopped" : "slept";
    return out;
  }
};

/// Returns the facts, status and message it is given.
class FactsStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "test.facts",
        .summary = "test: facts",
        .params = {{.name = "facts", .type = ValueType::kMap, .default_value = json::object()},
                   {.name = "status", .type = ValueType::kString, .default_value = "pass"},
                   {.name = "message", .type = ValueType::kString, .default_value = ""},
                   {.name = "count", .type = ValueType::kInt}},
    };
    return s;
  }
  StepOutput run(StepContext& ctx, const Params& p) const override {
    StepOutput out;
    out.status = parse_status(p.str("status")).value_or(Status::kError);
    out.message = p.str("message");
    out.facts = p.raw("facts");
    out.facts["netns"] = ctx.netns;
    if (p.has("count")) out.facts["count"] = p.integer("count");
    out.evidence.push_back("evidence of " + ctx.step_id);
    return out;
  }
};

/// Fails its first `fails` calls (per key), then passes.
class FlakyStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "test.flaky",
        .summary = "test: flaky",
        .params = {{.name = "key", .type = ValueType::kString, .required = true},
                   {.name = "fails", .type = ValueType::kInt, .default_value = 1}},
    };
    return s;
  }
  StepOutput run(StepContext&, const Params& p) const override {
    int n;
    {
      std::lock_guard lock(g_mu);
      n = ++g_calls[p.str("key")];
    }
    if (n <= p.integer("fails")) return StepOutput::fail("flaked on call " + std::to_string(n));
    StepOutput out;
    out.facts["calls"] = n;
    return out;
  }
};

class ThrowStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{.name = "test.throw", .summary = "test: throws"};
    return s;
  }
  StepOutput run(StepContext&, const Params&) const override { throw std::runtime_error("boom"); }
};

/// What the steps below did, in order (guarded by g_mu).
std::vector<std::string> g_events;
void note(std::string event) {
  std::lock_guard lock(g_mu);
  g_events.push_back(std::move(event));
}

/// A progress sink that counts the scheduler's ticks and records the steps it started, both
/// readable from step threads: a step can wait until the scheduler has been round its loop.
class TickProgress : public Progress {
 public:
  void on_start(const StepResult& s) override {
    std::lock_guard lock(mu_);
    started_.push_back(s.id);
  }
  void on_finish(const StepResult&) override {}
  void on_tick() override {
    {
      std::lock_guard lock(mu_);
      ++ticks_;
    }
    cv_.notify_all();
  }
  std::vector<std::string> started() const {
    std::lock_guard lock(mu_);
    return started_;
  }
  /// Waits for `n` more ticks (each a later pass of the scheduler's loop than the last)
  /// unless the step is asked to stop; the limit only keeps a broken build from hanging.
  bool wait_ticks(int n, const StepContext& ctx) {
    std::unique_lock lock(mu_);
    const int target = ticks_ + n;
    const auto limit = Clock::now() + 30s;
    while (ticks_ < target) {
      if (ctx.should_stop() || Clock::now() >= limit) return false;
      cv_.wait_for(lock, 5ms);
    }
    return true;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int ticks_ = 0;
  std::vector<std::string> started_;
};
TickProgress* g_ticks = nullptr;

/// A background step that says when it is ready, as a capture does once it listens: it
/// notes "ID:listening", lets the scheduler go round its loop `ticks` times (so that a
/// dependent started too early would have been started by then), notes which steps had
/// started when it called ctx.ready(), then runs until it is asked to stop. With `error`
/// it returns that error at once, never ready (a capture that could not open).
class ReadyStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "test.ready",
        .summary = "test: signals ready",
        .params = {{.name = "ticks", .type = ValueType::kInt, .default_value = 2},
                   {.name = "error", .type = ValueType::kString}},
        .supports_background = true,
        .signals_ready = true,
    };
    return s;
  }
  StepOutput run(StepContext& ctx, const Params& p) const override {
    if (p.has("error")) return StepOutput::error(p.str("error"));  // never ready
    note(ctx.step_id + ":listening");
    bool waited = g_ticks && g_ticks->wait_ticks(static_cast<int>(p.integer("ticks")), ctx);
    std::string started;
    if (g_ticks)
      for (const auto& id : g_ticks->started()) started += (started.empty() ? "" : ",") + id;
    note(ctx.step_id + ":ready, started " + started);
    ctx.ready();
    g_gates.wait("never", [&] { return ctx.should_stop(); });
    note(ctx.step_id + ":stopped");
    StepOutput out;
    out.facts["waited"] = waited;
    out.facts["stopped"] = ctx.should_stop();
    return out;
  }
};

/// Notes "ID:run".
class NoteStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{.name = "test.note", .summary = "test: notes that it ran"};
    return s;
  }
  StepOutput run(StepContext& ctx, const Params&) const override {
    note(ctx.step_id + ":run");
    return {};
  }
};

void register_fakes() {
  static bool once = [] {
    auto& r = Registry::instance();
    return r.add(std::make_unique<SleepStep>()).has_value() &&
           r.add(std::make_unique<ReadyStep>()).has_value() &&
           r.add(std::make_unique<NoteStep>()).has_value() &&
           r.add(std::make_unique<FactsStep>()).has_value() &&
           r.add(std::make_unique<FlakyStep>()).has_value() &&
           r.add(std::make_unique<ThrowStep>()).has_value();
  }();
  ASSERT_TRUE(once) << "test steps registered twice";
}

class NullProgress : public Progress {
 public:
  void on_start(const StepResult& s) override { started.push_back(s.id); }
  void on_finish(const StepResult& r) override {
    finished.push_back(r.id);
    g_gates.open("progress-finished:" + r.id);
  }
  void on_tick() override {
    ++ticks;
    g_gates.open("tick");
  }
  std::vector<std::string> started, finished;
  int ticks = 0;
};

/// Builds plans step by step; expressions are checked in a scratch engine and added to
/// the plan as sources, as the loader does. pb() links the graph.
class Builder {
 public:
  Builder() {
    register_fakes();
    g_gates.reset();
    pb_.name = "test";
    pb_.file = "test.yaml";
  }
  StepDef& step(const std::string& id, const std::string& uses, json with = json::object()) {
    StepDef d;
    d.id = id;
    d.uses = uses;
    d.step = Registry::instance().find(uses);
    d.with = std::move(with);
    pb_.steps.push_back(std::move(d));
    return pb_.steps.back();
  }
  Expr expr(const std::string& src) { return add(ExprKind::kExpr, src); }
  Expr tmpl(const std::string& src) { return add(ExprKind::kTemplate, src); }
  Expr chunk(const std::string& src) { return add(ExprKind::kChunk, src); }
  Plan& pb() {
    link_graph(pb_);
    return pb_;
  }

 private:
  Expr add(ExprKind kind, const std::string& src) {
    auto id = scratch_.compile({kind, src});
    EXPECT_TRUE(id.has_value()) << src << ": " << (id ? "" : id.error());
    return pb_.add_expr(kind, src, src);
  }
  ExprEngine scratch_;
  Plan pb_;
};

RunReport run(const Plan& pb, RunOptions opts = {}, Progress* progress = nullptr,
              const std::atomic<bool>* interrupt = nullptr) {
  static const std::atomic<bool> never{false};
  Session session(pb, std::move(opts));
  return session.run(progress, interrupt ? *interrupt : never);
}

const StepResult& result(const RunReport& r, const std::string& id) {
  for (const auto& s : r.steps)
    if (s.id == id) return s;
  static StepResult none;
  ADD_FAILURE() << "no result for step " << id;
  return none;
}

TEST(Scheduler, IndependentStepsOverlap) {
  Builder b;
  // Each waits until the other has started: only steps that run at once both get through.
  b.step("a", "test.sleep", {{"ms", 30000}, {"gate", "started:b"}});
  b.step("b", "test.sleep", {{"ms", 30000}, {"gate", "started:a"}});
  RunOptions opts;
  opts.jobs = 2;
  RunReport r = run(b.pb(), opts);
  ASSERT_EQ(r.steps.size(), 2u);
  EXPECT_EQ(result(r, "a").status, Status::kPass);
  EXPECT_EQ(result(r, "b").status, Status::kPass);
  EXPECT_EQ(result(r, "a").facts["gate_opened"], true);
  EXPECT_EQ(result(r, "b").facts["gate_opened"], true);
  std::lock_guard lock(g_mu);
  Interval a = g_intervals["a"], c = g_intervals["b"];
  EXPECT_LT(a.start, c.end);
  EXPECT_LT(c.start, a.end);
  EXPECT_EQ(r.status, Status::kPass);
  EXPECT_EQ(r.version, NETPLAY_VERSION);
  EXPECT_EQ(r.playbook_name, "test");
  EXPECT_EQ(r.started_at.size(), 24u) << r.started_at;  // 2024-01-02T03:04:05.678Z
  EXPECT_EQ(r.started_at.back(), 'Z');
}

TEST(Scheduler, OneJobRunsOneAtATime) {
  Builder b;
  b.step("one_a", "test.sleep", {{"ms", 100}});
  b.step("one_b", "test.sleep", {{"ms", 100}});
  RunOptions opts;
  opts.jobs = 1;
  RunReport r = run(b.pb(), opts);
  EXPECT_EQ(r.status, Status::kPass);
  std::lock_guard lock(g_mu);
  EXPECT_LE(g_intervals["one_a"].end, g_intervals["one_b"].start);
}

TEST(Scheduler, NeedsOrderHolds) {
  Builder b;
  b.step("later", "test.sleep", {{"ms", 50}}).needs = {"first"};
  b.step("first", "test.sleep", {{"ms", 150}});
  NullProgress progress;
  RunReport r = run(b.pb(), {}, &progress);
  EXPECT_EQ(r.status, Status::kPass);
  ASSERT_EQ(r.steps.size(), 2u);
  EXPECT_EQ(r.steps[0].id, "later");  // report keeps playbook order
  std::lock_guard lock(g_mu);
  EXPECT_LE(g_intervals["first"].end, g_intervals["later"].start);
  EXPECT_EQ(progress.started, (std::vector<std::string>{"first", "later"}));
}

TEST(Scheduler, ExpressionReferenceOrdersButDoesNotSkip) {
  Builder b;
  b.step("probe", "test.facts", {{"status", "fail"}, {"message", "probe failed"}});
  auto& reader = b.step("reader", "test.facts");
  reader.with["facts"] = {{"seen", "x"}};
  reader.with_templates.push_back(
      {json::json_pointer("/facts/seen"), b.tmpl("{{ steps.probe.status }}")});
  RunReport r = run(b.pb());
  EXPECT_EQ(result(r, "probe").status, Status::kFail);
  EXPECT_EQ(result(r, "reader").status, Status::kPass);
  EXPECT_EQ(result(r, "reader").facts["seen"], "fail");
}

TEST(Scheduler, WhenFalseSkipsWithReason) {
  Builder b;
  auto& s = b.step("gated", "test.facts");
  s.when = b.expr("inputs.mode == 'deep'");
  RunOptions opts;
  opts.inputs = {{"mode", "quick"}};
  RunReport r = run(b.pb(), opts);
  EXPECT_EQ(result(r, "gated").status, Status::kSkip);
  EXPECT_EQ(result(r, "gated").message, "when: inputs.mode == 'deep' is false");
  EXPECT_EQ(result(r, "gated").attempts, 0);
}

TEST(Scheduler, DependentsOfAFailureAreSkipped) {
  Builder b;
  b.step("underlay", "test.facts", {{"status", "fail"}, {"message", "no route"}});
  b.step("overlay", "test.facts").needs = {"underlay"};
  b.step("app", "test.facts").needs = {"overlay"};
  b.step("other", "test.facts");
  RunReport r = run(b.pb());
  EXPECT_EQ(result(r, "underlay").status, Status::kFail);
  EXPECT_EQ(result(r, "underlay").message, "no route");
  EXPECT_EQ(result(r, "overlay").status, Status::kSkip);
  EXPECT_EQ(result(r, "overlay").message, "needs 'underlay', which failed");
  EXPECT_EQ(result(r, "app").message, "needs 'overlay', which was skipped");
  EXPECT_EQ(result(r, "other").status, Status::kPass);
  EXPECT_EQ(r.status, Status::kFail);
}

TEST(Scheduler, TemplatesAndParamsAreResolved) {
  Builder b;
  auto& s = b.step("t", "test.facts", {{"count", "x"}});
  s.with_templates.push_back({json::json_pointer("/count"), b.tmpl("{{ inputs.n }}")});
  s.netns_tmpl = b.tmpl("{{ inputs.ns }}");
  RunOptions opts;
  opts.inputs = {{"n", "42"}, {"ns", "host"}};
  RunReport r = run(b.pb(), opts);
  const auto& t = result(r, "t");
  EXPECT_EQ(t.status, Status::kPass) << t.message;
  EXPECT_EQ(t.facts["count"], 42);  // "42" coerced to an integer
  EXPECT_EQ(t.netns, "host");
}

TEST(Scheduler, ATemplatedNamespaceThatComesOutEmptyIsAnError) {
  // An empty value must not quietly mean the host's namespace.
  Builder b;
  b.step("t", "test.facts").netns_tmpl = b.tmpl("{{ inputs.ns }}");
  RunOptions opts;
  opts.inputs = {{"ns", ""}};
  RunReport r = run(b.pb(), opts);
  EXPECT_EQ(result(r, "t").status, Status::kError);
  EXPECT_EQ(result(r, "t").message,
            "netns: the template gave an empty namespace name (write host for the host's "
            "namespace)");
}

TEST(Scheduler, ParamTypeErrorNamesTheParam) {
  // Literal params are checked at load time; what a template produces, at run time.
  Builder b;
  auto& s = b.step("bad", "test.facts", {{"count", "{{ inputs.n }}"}});
  s.with_templates.push_back({json::json_pointer("/count"), b.tmpl("{{ inputs.n }}")});
  RunOptions opts;
  opts.inputs = {{"n", "three"}};
  RunReport r = run(b.pb(), opts);
  EXPECT_EQ(result(r, "bad").status, Status::kError);
  EXPECT_NE(result(r, "bad").message.find("count"), std::string::npos) << result(r, "bad").message;
}

TEST(Scheduler, TimeoutFiresPromptly) {
  Builder b;
  b.step("slow", "test.sleep", {{"ms", 30000}, {"gate", "never"}}).timeout = Millis(200);
  RunReport r = run(b.pb());
  EXPECT_EQ(result(r, "slow").status, Status::kError);
  EXPECT_EQ(result(r, "slow").message, "timed out after 200ms");
}

/// Workers (jobs > 1) can give up on a step that ignores its deadline and cancellation;
/// with one job steps run inline, where every built-in step's deadlines must hold.
TEST(Scheduler, DeafStepIsAbandonedAndCapacityReplaced) {
  Builder b;
  // The deaf steps ignore cancellation and return only when the test releases them; they
  // take both slots, so `next` runs only in a slot freed by abandoning one.
  b.step("deaf", "test.sleep", {{"ms", 30000}, {"deaf", true}, {"gate", "release-deaf"}})
      .timeout = Millis(100);
  b.step("deaf2", "test.sleep", {{"ms", 30000}, {"deaf", true}, {"gate", "release-deaf"}})
      .timeout = Millis(100);
  b.step("next", "test.sleep", {{"ms", 50}});
  auto& after = b.step("after", "test.facts");
  after.needs = {"next"};
  RunOptions opts;
  opts.jobs = 2;
  RunReport r = run(b.pb(), opts);
  EXPECT_FALSE(g_gates.is_open("finished:deaf"));  // the run did not wait for them
  EXPECT_FALSE(g_gates.is_open("finished:deaf2"));
  EXPECT_EQ(result(r, "deaf").status, Status::kError);
  EXPECT_EQ(result(r, "deaf").message, "timed out after 100ms");
  EXPECT_EQ(result(r, "next").status, Status::kPass);
  EXPECT_EQ(result(r, "after").status, Status::kPass);
  g_gates.open("release-deaf");
  EXPECT_TRUE(g_gates.wait("finished:deaf"));  // the abandoned threads end before exit
  EXPECT_TRUE(g_gates.wait("finished:deaf2"));
}

TEST(Scheduler, RetriesCountAttempts) {
  Builder b;
  auto& s = b.step("flaky", "test.flaky", {{"key", "retry-ok"}, {"fails", 2}});
  s.retries = 2;
  s.retry_delay = Millis(10);
  RunReport r = run(b.pb());
  EXPECT_EQ(result(r, "flaky").status, Status::kPass) << result(r, "flaky").message;
  EXPECT_EQ(result(r, "flaky").attempts, 3);
  EXPECT_EQ(result(r, "flaky").facts["calls"], 3);
}

TEST(Scheduler, RetriesExhausted) {
  Builder b;
  auto& s = b.step("flaky", "test.flaky", {{"key", "retry-exhausted"}, {"fails", 5}});
  s.retries = 1;
  s.retry_delay = Millis(10);
  RunReport r = run(b.pb());
  EXPECT_EQ(result(r, "flaky").status, Status::kFail);
  EXPECT_EQ(result(r, "flaky").attempts, 2);
  EXPECT_EQ(result(r, "flaky").message, "flaked on call 2");
}

TEST(Scheduler, ExceptionBecomesError) {
  Builder b;
  b.step("boom", "test.throw");
  RunReport r = run(b.pb());
  EXPECT_EQ(result(r, "boom").status, Status::kError);
  EXPECT_EQ(result(r, "boom").message, "internal error: boom");
}

TEST(Scheduler, GlobalTimeout) {
  Builder b;
  b.step("long", "test.sleep", {{"ms", 30000}, {"gate", "never"}});
  b.step("after", "test.facts").needs = {"long"};
  RunOptions opts;
  opts.global_timeout = Millis(300);
  RunReport r = run(b.pb(), opts);
  EXPECT_EQ(result(r, "long").status, Status::kError);
  EXPECT_EQ(result(r, "long").message, "run timed out after 300ms");
  EXPECT_EQ(result(r, "after").status, Status::kSkip);
  EXPECT_EQ(result(r, "after").message, "not run: global timeout");
  EXPECT_FALSE(r.interrupted);
}

TEST(Scheduler, FailFastStopsNewSteps) {
  Builder b;
  // Still running when `bad` has been judged a failure.
  b.step("running", "test.sleep", {{"ms", 30000}, {"gate", "progress-finished:bad"}});
  b.step("bad", "test.facts", {{"status", "fail"}});
  b.step("later", "test.facts").needs = {"running"};
  RunOptions opts;
  opts.jobs = 2;
  opts.fail_fast = true;
  NullProgress progress;
  RunReport r = run(b.pb(), opts, &progress);
  EXPECT_EQ(result(r, "running").status, Status::kPass);  // running ones finish
  EXPECT_EQ(result(r, "bad").status, Status::kFail);
  EXPECT_EQ(result(r, "later").status, Status::kSkip);
  EXPECT_EQ(result(r, "later").message, "not run: --fail-fast");
}

TEST(Scheduler, OnlySelectsStepsAndWhatTheyNeed) {
  Builder b;
  b.step("base", "test.facts");
  b.step("mid", "test.facts").needs = {"base"};
  b.step("top", "test.facts").needs = {"mid"};
  b.step("unrelated", "test.facts");
  RunOptions opts;
  opts.only = {"top"};
  RunReport r = run(b.pb(), opts);
  ASSERT_EQ(r.steps.size(), 3u);
  EXPECT_EQ(r.steps[0].id, "base");
  EXPECT_EQ(r.steps[2].id, "top");
  EXPECT_EQ(r.status, Status::kPass);
}

TEST(Scheduler, BackgroundStepStopsWhenDependentsFinish) {
  Builder b;
  auto& bg = b.step("capture", "test.sleep", {{"ms", 10000}});
  bg.background = true;
  bg.timeout = Millis(20000);
  b.step("probe", "test.sleep", {{"ms", 100}}).needs = {"capture"};
  RunOptions opts;
  opts.jobs = 1;  // the background step must not hold the only slot
  RunReport r = run(b.pb(), opts);
  EXPECT_EQ(result(r, "probe").status, Status::kPass);
  EXPECT_EQ(result(r, "capture").status, Status::kPass) << result(r, "capture").message;
  EXPECT_EQ(result(r, "capture").facts["stopped"], true);
  EXPECT_TRUE(result(r, "capture").background);
  std::lock_guard lock(g_mu);
  // The probe started once a worker ran the capture (the two step bodies then race by
  // microseconds), and the capture ran on until the probe was done.
  EXPECT_LE(g_intervals["capture"].start, g_intervals["probe"].end);
  EXPECT_GE(g_intervals["capture"].end, g_intervals["probe"].end);
}

TEST(Scheduler, DependentsOfASignalsReadyStepStartAfterItIsReady) {
  Builder b;
  {
    std::lock_guard lock(g_mu);
    g_events.clear();
  }
  auto& bg = b.step("listen", "test.ready", {{"ticks", 2}});
  bg.background = true;
  bg.timeout = Millis(60000);
  b.step("probe", "test.note").needs = {"listen"};
  TickProgress progress;
  g_ticks = &progress;
  RunOptions opts;
  opts.jobs = 2;
  RunReport r = run(b.pb(), opts, &progress);
  g_ticks = nullptr;
  EXPECT_EQ(r.status, Status::kPass);
  EXPECT_EQ(result(r, "probe").status, Status::kPass) << result(r, "probe").message;
  const auto& listen = result(r, "listen");
  EXPECT_EQ(listen.status, Status::kPass) << listen.message;
  EXPECT_EQ(listen.facts["waited"], true);   // the scheduler went round while it listened
  EXPECT_EQ(listen.facts["stopped"], true);  // and stopped it once the probe was done
  std::lock_guard lock(g_mu);
  // The probe had not been started when the background step said ready (though the
  // scheduler had passed its loop twice since the step began), ran after it, and the
  // background step ran on until the probe was done.
  EXPECT_EQ(g_events, (std::vector<std::string>{"listen:listening", "listen:ready, started listen",
                                                "probe:run", "listen:stopped"}));
  EXPECT_EQ(progress.started(), (std::vector<std::string>{"listen", "probe"}));
}

TEST(Scheduler, ASignalsReadyStepThatEndsWithoutReadyReleasesItsDependents) {
  // A background step that signals_ready but returns before calling ready() (its capture
  // could not open) still lets the scheduler move on: its dependents are judged by how it
  // ended.
  Builder b;
  auto& bg = b.step("listen", "test.ready", {{"error", "no such interface"}});
  bg.background = true;
  b.step("probe", "test.note").needs = {"listen"};
  b.step("other", "test.note");
  RunReport r = run(b.pb());
  EXPECT_EQ(result(r, "listen").status, Status::kError);
  EXPECT_EQ(result(r, "probe").status, Status::kSkip);
  EXPECT_EQ(result(r, "probe").message, "needs 'listen', which errored");
  EXPECT_EQ(result(r, "other").status, Status::kPass);
}

TEST(Scheduler, BackgroundReaderWaitsForTheEnd) {
  Builder b;
  auto& bg = b.step("capture", "test.sleep", {{"ms", 10000}});
  bg.background = true;
  b.step("probe", "test.sleep", {{"ms", 50}});
  auto& reader = b.step("reader", "test.facts");
  reader.when = b.expr("steps.capture.facts.stopped == true");
  RunReport r = run(b.pb());
  EXPECT_EQ(result(r, "reader").status, Status::kPass) << result(r, "reader").message;
}

TEST(Scheduler, BackgroundNeededAndReadWaitsForItsFacts) {
  Builder b;
  auto& bg = b.step("capture", "test.sleep", {{"ms", 10000}});
  bg.background = true;
  auto& reader = b.step("reader", "test.facts");
  reader.needs = {"capture"};
  reader.when = b.expr("steps.capture.facts.stopped == true");
  RunReport r = run(b.pb());
  EXPECT_EQ(result(r, "capture").status, Status::kPass);
  EXPECT_EQ(result(r, "reader").status, Status::kPass) << result(r, "reader").message;
}

TEST(Scheduler, OnFailEvidenceIsAttached) {
  Builder b;
  auto& s = b.step("vtep", "test.facts", {{"facts", {{"dstport", 8472}}}});
  s.expect = {{"dstport", 4789}};
  StepDef c;
  c.id = "vtep.on_fail[0]";
  c.uses = "test.facts";
  c.step = Registry::instance().find("test.facts");
  c.with = {{"facts", {{"fdb", "aa:bb"}}}, {"message", "3 entries"}};
  s.on_fail.push_back(c);
  StepDef bad = c;
  bad.with = {{"status", "error"}, {"message", "no device"}};
  s.on_fail.push_back(bad);
  RunReport r = run(b.pb());
  const auto& v = result(r, "vtep");
  EXPECT_EQ(v.status, Status::kFail);
  EXPECT_EQ(v.message, "dstport: expected 4789, got 8472");
  std::string all;
  for (const auto& e : v.evidence) all += e + "\n";
  EXPECT_NE(all.find("on_fail test.facts: 3 entries"), std::string::npos) << all;
  EXPECT_NE(all.find("\"fdb\":\"aa:bb\""), std::string::npos) << all;
  EXPECT_NE(all.find("on_fail test.facts (error): no device"), std::string::npos) << all;
}

TEST(Scheduler, ExpectationsJudgeFactsWithSeverity) {
  Builder b;
  auto& ok = b.step("ok", "test.facts", {{"facts", {{"loss_pct", 0}}}});
  ok.expect = {{"loss_pct", 0}};
  auto& many = b.step("many", "test.facts", {{"facts", {{"a", 1}, {"b", 2}, {"c", 3}}}});
  many.expect = {{"a", 9}, {"b", 9}, {"c", 3}};
  auto& soft = b.step("soft", "test.facts", {{"facts", {{"a", 1}}}});
  soft.expect = {{"a", 2}};
  soft.warn_only = true;
  auto& tmpl = b.step("tmpl", "test.facts", {{"facts", {{"port", 4789}}}});
  tmpl.expect = {{"port", 0}};
  tmpl.expect_templates.push_back({json::json_pointer("/port"), b.tmpl("{{ inputs.port }}")});
  RunOptions opts;
  opts.inputs = {{"port", 4789}};
  RunReport r = run(b.pb(), opts);
  EXPECT_EQ(result(r, "ok").status, Status::kPass);
  EXPECT_EQ(result(r, "many").status, Status::kFail);
  EXPECT_EQ(result(r, "many").message, "a: expected 9, got 1 (+1 more)");
  EXPECT_EQ(result(r, "many").expectations.size(), 3u);
  EXPECT_EQ(result(r, "soft").status, Status::kWarn);
  EXPECT_EQ(result(r, "tmpl").status, Status::kPass) << result(r, "tmpl").message;
}

/// exec fails on a non-zero exit code by itself, unless `check` is not given and the
/// playbook's expect: judges exit_code: then the expectation alone decides.
TEST(Scheduler, ExecExitCodeExpectationReplacesTheDefaultCheck) {
  Builder b;
  auto exec = [&](const std::string& id, const std::string& cmd, json expect) -> StepDef& {
    auto& s = b.step(id, "exec", {{"cmd", cmd}, {"shell", true}});
    s.expect = std::move(expect);
    return s;
  };
  exec("three", "exit 3", {{"exit_code", 3}});
  exec("zero", "exit 0", {{"exit_code", 3}});
  exec("either", "exit 3", {{"exit_code", {{"one_of", {0, 3}}}}});
  exec("plain", "exit 3", json::object());
  exec("other_fact", "echo hi; exit 3", {{"stdout", "hi"}});
  exec("checked", "exit 3", {{"exit_code", 3}}).with["check"] = true;
  exec("unchecked", "exit 3", json::object()).with["check"] = false;
  RunReport r = run(b.pb());
  EXPECT_EQ(result(r, "three").status, Status::kPass) << result(r, "three").message;
  EXPECT_EQ(result(r, "three").message, "exit code 3");
  EXPECT_EQ(result(r, "zero").status, Status::kFail);
  EXPECT_EQ(result(r, "zero").message, "exit_code: expected 3, got 0");
  EXPECT_EQ(result(r, "either").status, Status::kPass) << result(r, "either").message;
  // Without an exit_code expectation (or with an explicit check: true) the default holds.
  EXPECT_EQ(result(r, "plain").status, Status::kFail);
  EXPECT_EQ(result(r, "plain").message, "exit code 3");
  EXPECT_EQ(result(r, "other_fact").status, Status::kFail);
  EXPECT_EQ(result(r, "checked").status, Status::kFail);
  EXPECT_EQ(result(r, "checked").message, "exit code 3");
  EXPECT_EQ(result(r, "unchecked").status, Status::kPass);
}

TEST(Scheduler, HooksDecide) {
  Builder b;
  b.step("skipped", "test.facts").hook_before = b.chunk("return false");
  b.step("failed", "test.facts").hook_after =
      b.chunk("if steps.failed.facts.netns == 'host' then netplay.fail('wrong place') end");
  b.step("broken", "test.facts").hook_after = b.chunk("error('oops')");
  RunReport r = run(b.pb());
  EXPECT_EQ(result(r, "skipped").status, Status::kSkip);
  EXPECT_EQ(result(r, "skipped").message, "skipped by before-hook");
  EXPECT_EQ(result(r, "failed").status, Status::kFail);
  EXPECT_EQ(result(r, "failed").message, "wrong place");
  EXPECT_EQ(result(r, "broken").status, Status::kError);
  EXPECT_NE(result(r, "broken").message.find("hook error: "), std::string::npos);
  EXPECT_NE(result(r, "broken").message.find("oops"), std::string::npos);
}

TEST(Scheduler, InterruptReturnsPartialReportQuickly) {
  Builder b;
  b.step("long", "test.sleep", {{"ms", 30000}, {"gate", "never"}});
  b.step("after", "test.facts").needs = {"long"};
  std::atomic<bool> interrupt{false};
  std::thread t([&] {
    g_gates.wait("started:long");
    interrupt = true;
  });
  RunReport r = run(b.pb(), {}, nullptr, &interrupt);
  t.join();
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(exit_code(r), 130);
  EXPECT_EQ(result(r, "long").status, Status::kError);
  EXPECT_EQ(result(r, "long").message, "interrupted");
  EXPECT_EQ(result(r, "after").status, Status::kSkip);
  EXPECT_EQ(result(r, "after").message, "not run: interrupted");
}

TEST(Scheduler, DiagnosisFindingIsRendered) {
  Builder b;
  b.step("overlay", "test.facts", {{"status", "fail"}});
  DiagnosisRule rule;
  rule.id = "vtep-port-blocked";
  rule.when = b.expr("steps.overlay.status == 'fail'");
  rule.finding = b.tmpl("UDP {{ inputs.port }} is dropped");
  rule.next.push_back(b.tmpl("Check the firewall for UDP {{ inputs.port }}"));
  rule.references = {"https://example.org/vxlan"};
  b.pb().diagnosis.push_back(rule);
  DiagnosisRule quiet;
  quiet.id = "quiet";
  quiet.when = b.expr("steps.overlay.status == 'pass'");
  b.pb().diagnosis.push_back(quiet);
  DiagnosisRule broken;
  broken.id = "broken";
  broken.when = b.expr("steps.nothing.facts.x > 1");
  b.pb().diagnosis.push_back(broken);
  DiagnosisRule soft;
  soft.id = "soft";
  soft.when = b.expr("steps.overlay.status == 'fail'");
  soft.finding = b.tmpl("a warning");
  soft.severity = Severity::kWarn;
  b.pb().diagnosis.push_back(soft);
  RunOptions opts;
  opts.inputs = {{"port", 4789}};
  RunReport r = run(b.pb(), opts);
  ASSERT_EQ(r.findings.size(), 2u);
  EXPECT_EQ(r.findings[0].id, "vtep-port-blocked");
  EXPECT_EQ(r.findings[0].severity, Severity::kFail);
  EXPECT_EQ(r.findings[0].finding, "UDP 4789 is dropped");
  EXPECT_EQ(r.findings[0].next, (std::vector<std::string>{"Check the firewall for UDP 4789"}));
  EXPECT_EQ(r.findings[0].references.size(), 1u);
  EXPECT_EQ(r.findings[1].id, "soft");
  EXPECT_EQ(r.findings[1].severity, Severity::kWarn);
}

TEST(Diagnose, ARuleThatCannotBeEvaluatedIsAnErrorFinding) {
  Builder b;
  b.step("a", "test.facts");
  auto rule = [&](std::string id, std::string when, std::string finding,
                  Severity sev = Severity::kFail) {
    DiagnosisRule r;
    r.id = std::move(id);
    r.when = b.expr(when);
    r.finding = b.tmpl(finding);
    r.severity = sev;
    b.pb().diagnosis.push_back(r);
  };
  rule("typo", "steps.a.facts.nosuch.x == 1", "never");
  rule("lua-error", "error('boom')", "never", Severity::kInfo);
  rule("fine", "steps.a.status == 'pass'", "a is {{ steps.a.status }}", Severity::kInfo);
  rule("bad-text", "true", "value {{ steps.a.facts.nope.deeper }}", Severity::kWarn);
  rule("bad-fail", "true", "value {{ steps.a.facts.nope.deeper }}");
  rule("elsewhere", "steps.other.status == 'fail'", "never");
  ExprEngine engine;
  ASSERT_TRUE(engine.compile_all(b.pb().exprs));
  engine.set_step_result("a", Status::kPass, "ok", json::object());
  std::vector<std::string> ran = {"a"};  // `other` was left out of the run (--only)
  auto findings = diagnose(&engine, b.pb(), &ran);
  ASSERT_EQ(findings.size(), 5u);
  EXPECT_EQ(findings[0].id, "typo");
  EXPECT_EQ(findings[0].severity, Severity::kError);
  EXPECT_EQ(findings[0].finding,
            "diagnosis rule 'typo' could not be evaluated: when: attempt to index a nil value "
            "(field 'nosuch')");
  EXPECT_EQ(findings[1].id, "lua-error");
  EXPECT_EQ(findings[1].severity, Severity::kError);
  EXPECT_EQ(findings[1].finding, "diagnosis rule 'lua-error' could not be evaluated: when: boom");
  EXPECT_EQ(findings[2].finding, "a is pass");
  EXPECT_EQ(findings[2].severity, Severity::kInfo);
  EXPECT_EQ(findings[3].id, "bad-text");
  EXPECT_EQ(findings[3].severity, Severity::kError);  // warn, but broken: at least error
  EXPECT_EQ(findings[3].finding,
            "diagnosis rule 'bad-text' matched but its finding could not be rendered: attempt to "
            "index a nil value (field 'nope')");
  EXPECT_EQ(findings[4].severity, Severity::kFail);  // a matched fail rule stays fail
  // Without the list of steps in the run every rule is evaluated.
  EXPECT_EQ(diagnose(&engine, b.pb()).size(), 6u);

  RunReport r;
  r.findings = {findings[1]};
  EXPECT_EQ(r.overall(), Status::kError);
  EXPECT_EQ(exit_code(r), 3);
  r.findings.push_back(findings[4]);
  EXPECT_EQ(exit_code(r), 1);
}

TEST(Scheduler, MissingNamespaceIsAStepError) {
  Builder b;
  b.step("inside", "test.facts").netns = "np-no-such-namespace";
  RunReport r = run(b.pb());
  EXPECT_EQ(result(r, "inside").status, Status::kError);
  EXPECT_EQ(result(r, "inside").message,
            "network namespace 'np-no-such-namespace' not found (/run/netns/np-no-such-namespace)");
}

TEST(Scheduler, ProgressSeesEveryStep) {
  Builder b;
  b.step("a", "test.sleep", {{"ms", 30000}, {"gate", "tick"}});  // runs until a tick came
  b.step("b", "test.facts").needs = {"missing_dep_is_ignored"};
  NullProgress progress;
  RunReport r = run(b.pb(), {}, &progress);
  EXPECT_EQ(progress.finished.size(), 2u);
  EXPECT_GE(progress.ticks, 1);
}

/// Correctness at scale only: the overhead figure is measured by tests/bench/runner_bench.py.
TEST(Scheduler, FiveHundredStepsAllRunAndAreJudged) {
  Builder b;
  for (int i = 0; i < 500; ++i) {
    auto& s = b.step("s" + std::to_string(i), "test.facts", {{"facts", {{"v", i}}}});
    s.expect = {{"v", i}};
  }
  RunReport r = run(b.pb());
  EXPECT_EQ(r.status, Status::kPass);
  ASSERT_EQ(r.steps.size(), 500u);
  for (int i = 0; i < 500; ++i) {
    EXPECT_EQ(r.steps[i].id, "s" + std::to_string(i));
    ASSERT_EQ(r.steps[i].expectations.size(), 1u);
    EXPECT_TRUE(r.steps[i].expectations[0].ok);
  }
}

TEST(WorkerPool, ReusesThreads) {
  register_fakes();
  WorkerPool pool;
  const Step* step = Registry::instance().find("test.facts");
  for (int round = 0; round < 20; ++round) {
    auto a = std::make_shared<Attempt>();
    a->step = step;
    a->step_id = "p";
    a->params = Params(json{{"status", "pass"}, {"facts", json::object()}});
    pool.submit(a);
    // wait() also returns when an attempt begins; wait for the completion itself.
    std::vector<std::shared_ptr<Attempt>> done;
    for (auto until = Clock::now() + 5s; done.empty() && Clock::now() < until;)
      done = pool.wait(until);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0]->out.status, Status::kPass);
  }
  EXPECT_EQ(pool.threads(), 1u);
}

}  // namespace
}  // namespace netplay
