/// Plan and Session: one immutable Plan, many runs that share nothing mutable; steps run
/// inline with one job; typed verdicts; the step contract's registry and exclusive params.

#include "runner/run/session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <thread>

#include "runner/cli/cli.h"
#include "runner/load/loader.h"
#include "runner/step/params.h"

namespace netplay {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

std::string thread_name() {
  std::ostringstream s;
  s << std::this_thread::get_id();
  return s.str();
}

/// Reports its params as facts, the thread it ran on, and the status/message it is told.
class EchoStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "test.session_echo",
        .summary = "test: echo",
        .params = {{.name = "value", .type = ValueType::kAny},
                   {.name = "status", .type = ValueType::kString, .default_value = "pass"},
                   {.name = "message", .type = ValueType::kString, .default_value = ""},
                   {.name = "wait", .type = ValueType::kDuration, .default_value = "0s"},
                   {.name = "a", .type = ValueType::kString},
                   {.name = "b", .type = ValueType::kString},
                   {.name = "all", .type = ValueType::kBool, .default_value = false}},
        .facts = {{"value", "any", ""}, {"thread", "string", ""}, {"wait_ms", "number", ""}},
        .exclusive = {{"a", "b", "all"}},
    };
    return s;
  }
  StepOutput run(StepContext& ctx, const Params& p) const override {
    auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(p.duration("wait"));
    while (Clock::now() < until && !ctx.should_stop() && !ctx.expired())
      std::this_thread::sleep_for(1ms);
    StepOutput out;
    out.status = parse_status(p.str("status")).value_or(Status::kError);
    out.message = p.str("message");
    out.facts["value"] = p.raw("value");
    out.facts["thread"] = thread_name();
    out.facts["wait_ms"] = p.duration("wait").count();
    if (ctx.is_cancelled()) return StepOutput::error("cancelled");
    return out;
  }
};

const Step* echo() {
  static const bool added = Registry::instance().add(std::make_unique<EchoStep>()).has_value();
  EXPECT_TRUE(added);
  return Registry::instance().find("test.session_echo");
}

Plan load(const std::string& body) {
  echo();
  auto pb = load_playbook_text(
      "apiVersion: netplay/v1\nkind: Playbook\nmetadata: {name: t}\n" + body, "t.yaml");
  if (!pb) {
    std::string all;
    for (const auto& d : pb.error()) all += d.str() + "\n";
    ADD_FAILURE() << all;
    return Plan{};
  }
  return std::move(*pb);
}

RunReport run(const Plan& plan, RunOptions opts = {}, const std::atomic<bool>* interrupt = nullptr) {
  static const std::atomic<bool> never{false};
  Session session(plan, std::move(opts));
  return session.run(nullptr, interrupt ? *interrupt : never);
}

const StepResult& result(const RunReport& r, const std::string& id) {
  for (const auto& s : r.steps)
    if (s.id == id) return s;
  static StepResult none;
  ADD_FAILURE() << "no result for step " << id;
  return none;
}

/// A hook that counts its calls in a script global: a second run that saw the first one's
/// global would fail.
constexpr char kCounting[] = R"~(inputs: {who: {type: string, default: x}}
steps:
  - id: a
    uses: test.session_echo
    with: {value: "{{ inputs.who }}"}
    hooks:
      after: |
        calls = (calls or 0) + 1
        if calls > 1 then netplay.fail('saw a global of another run: ' .. calls) end
)~";

TEST(Session, TwoRunsOfOnePlanShareNothing) {
  const Plan plan = load(kCounting);
  RunOptions one, two;
  one.inputs = {{"who", "first"}};
  two.inputs = {{"who", "second"}};
  RunReport r1 = run(plan, one);
  RunReport r2 = run(plan, two);
  EXPECT_EQ(result(r1, "a").status, Status::kPass) << result(r1, "a").message;
  EXPECT_EQ(result(r2, "a").status, Status::kPass) << result(r2, "a").message;
  EXPECT_EQ(result(r1, "a").facts["value"], "first");
  EXPECT_EQ(result(r2, "a").facts["value"], "second");
}

TEST(Session, RunsOfOnePlanInParallel) {
  const Plan plan = load(kCounting);
  std::vector<RunReport> reports(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < reports.size(); ++i) {
    threads.emplace_back([&, i] {
      RunOptions o;
      o.inputs = {{"who", "run" + std::to_string(i)}};
      reports[i] = run(plan, o);
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < reports.size(); ++i) {
    EXPECT_EQ(result(reports[i], "a").status, Status::kPass) << result(reports[i], "a").message;
    EXPECT_EQ(result(reports[i], "a").facts["value"], "run" + std::to_string(i));
  }
}

TEST(Session, ValidationRunsNoScriptIntoARun) {
  // The loader compiles every expression; nothing of that reaches a run's Lua state.
  const Plan plan = load(R"~(steps:
  - id: a
    uses: test.session_echo
    when: "rawget(_G, 'leak') == nil"
)~");
  EXPECT_EQ(plan.exprs.size(), 1u);
  EXPECT_EQ(result(run(plan), "a").status, Status::kPass);
}

TEST(Session, GraphIsBuiltOnceAtLoad) {
  const Plan plan = load(R"~(steps:
  - id: a
    uses: test.session_echo
  - id: b
    uses: test.session_echo
    needs: [a]
  - id: c
    uses: test.session_echo
    when: "steps.b.status == 'pass'"
)~");
  ASSERT_EQ(plan.graph.size(), 3u);
  EXPECT_EQ(plan.graph[1].needs, std::vector<size_t>{0});
  EXPECT_EQ(plan.graph[0].needed_by, std::vector<size_t>{1});
  EXPECT_EQ(plan.graph[2].refs, std::vector<size_t>{1});
  EXPECT_TRUE(plan.graph[2].needs.empty());
}

TEST(Session, LiteralDurationsStayCanonical) {
  const Plan plan = load(R"~(inputs: {w: {type: duration, default: 20ms}}
steps:
  - id: literal
    uses: test.session_echo
    with: {wait: 250ms}
  - id: templated
    uses: test.session_echo
    with: {wait: "{{ inputs.w }}"}
)~");
  // Milliseconds since load time; never turned back into text.
  EXPECT_EQ(plan.steps[0].with["wait"], json(250.0));
  RunOptions o;
  o.inputs = {{"w", "20ms"}};  // as resolve_inputs hands a duration input over
  RunReport r = run(plan, o);
  EXPECT_EQ(result(r, "literal").facts["wait_ms"], json(250.0));
  EXPECT_EQ(result(r, "templated").facts["wait_ms"], json(20.0));
}

TEST(Session, OneJobRunsStepsInlineOnTheCallingThread) {
  const Plan plan = load(R"~(steps:
  - {id: a, uses: test.session_echo}
  - {id: b, uses: test.session_echo}
)~");
  RunOptions inline_opts;
  inline_opts.jobs = 1;
  RunReport r = run(plan, inline_opts);
  EXPECT_EQ(result(r, "a").facts["thread"], thread_name());
  EXPECT_EQ(result(r, "b").facts["thread"], thread_name());
  RunOptions pooled;
  pooled.jobs = 2;
  r = run(plan, pooled);
  EXPECT_NE(result(r, "a").facts["thread"], thread_name());
}

TEST(Session, InlineStepHonoursItsTimeout) {
  const Plan plan = load(R"~(steps:
  - id: slow
    uses: test.session_echo
    timeout: 50ms
    with: {wait: 30s}
  - {id: next, uses: test.session_echo}
)~");
  RunOptions o;
  o.jobs = 1;
  RunReport r = run(plan, o);
  EXPECT_EQ(result(r, "slow").status, Status::kError);
  EXPECT_EQ(result(r, "slow").message, "timed out after 50ms");
  EXPECT_EQ(result(r, "next").status, Status::kPass);
}

TEST(Session, InlineStepSeesCtrlC) {
  const Plan plan = load(R"~(steps:
  - id: slow
    uses: test.session_echo
    timeout: 60s
    with: {wait: 60s}
  - {id: next, uses: test.session_echo}
)~");
  RunOptions o;
  o.jobs = 1;
  std::atomic<bool> interrupt{false};
  std::thread t([&] {
    std::this_thread::sleep_for(100ms);
    interrupt = true;
  });
  RunReport r = run(plan, o, &interrupt);
  t.join();
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(result(r, "slow").status, Status::kError);
  EXPECT_EQ(result(r, "slow").message, "interrupted");
  EXPECT_EQ(result(r, "next").status, Status::kSkip);
  EXPECT_EQ(exit_code(r), 130);
}

TEST(Session, InlineRunHonoursTheGlobalTimeout) {
  const Plan plan = load(R"~(steps:
  - id: slow
    uses: test.session_echo
    timeout: 60s
    with: {wait: 60s}
  - {id: next, uses: test.session_echo}
)~");
  RunOptions o;
  o.jobs = 1;
  o.global_timeout = Millis(100);
  RunReport r = run(plan, o);
  EXPECT_EQ(result(r, "slow").status, Status::kError);
  EXPECT_EQ(result(r, "slow").message, "run timed out after 100ms");
  EXPECT_EQ(result(r, "next").status, Status::kSkip);
  EXPECT_EQ(result(r, "next").message, "not run: global timeout");
}

TEST(Session, StatusesAreTypedNotReadFromText) {
  const Plan plan = load(R"~(steps:
  - id: text_error
    uses: test.session_echo
    hooks: {after: "error('fail: route missing', 0)"}
  - id: table_error
    uses: test.session_echo
    hooks: {after: "error({code = 7})"}
  - id: real_verdict
    uses: test.session_echo
    hooks: {after: "netplay.warn('slow')"}
  - id: message_like_status
    uses: test.session_echo
    with: {message: "fail: this is only a message"}
  - id: skip_text
    uses: test.session_echo
    hooks: {before: "error('skip: not really', 0)"}
)~");
  RunReport r = run(plan);
  EXPECT_EQ(result(r, "text_error").status, Status::kError);
  EXPECT_EQ(result(r, "text_error").message, "hook error: fail: route missing");
  EXPECT_EQ(result(r, "table_error").status, Status::kError);
  EXPECT_EQ(result(r, "table_error").message, R"~(hook error: error object {"code":7})~");
  EXPECT_EQ(result(r, "real_verdict").status, Status::kWarn);
  EXPECT_EQ(result(r, "real_verdict").message, "slow");
  EXPECT_EQ(result(r, "message_like_status").status, Status::kPass);
  EXPECT_EQ(result(r, "message_like_status").message, "fail: this is only a message");
  EXPECT_EQ(result(r, "skip_text").status, Status::kError);
}

TEST(StepContract, RegistryRefusesADuplicateName) {
  echo();
  auto again = Registry::instance().add(std::make_unique<EchoStep>());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), "step 'test.session_echo' is already registered");
}

TEST(StepContract, ExclusiveParamsAreCheckedAtLoadTime) {
  echo();
  auto pb = load_playbook_text(R"~(apiVersion: netplay/v1
kind: Playbook
metadata: {name: t}
steps:
  - id: both
    uses: test.session_echo
    with: {a: x, b: y}
  - id: flag
    uses: test.session_echo
    with: {a: x, all: true}
  - id: flag_off
    uses: test.session_echo
    with: {a: x, all: false}
)~",
                               "t.yaml");
  ASSERT_FALSE(pb);
  std::vector<std::string> msgs;
  for (const auto& d : pb.error()) msgs.push_back(d.str());
  EXPECT_EQ(msgs, (std::vector<std::string>{
                      "t.yaml:7:11: with: a and b cannot be combined ('test.session_echo' takes at "
                      "most one of a, b, all)",
                      "t.yaml:10:11: with: a and all cannot be combined ('test.session_echo' takes "
                      "at most one of a, b, all)"}));
}

TEST(StepContract, BuiltInStepsDeclareTheirExclusiveParams) {
  auto pb = load_playbook_text(R"~(apiVersion: netplay/v1
kind: Playbook
metadata: {name: t}
steps:
  - id: both
    uses: exec
    with: {argv: ["true"], cmd: "true", shell: true}
  - id: paths
    uses: file
    with: {path: /etc/hostname, json_path: /a, yaml_path: a}
)~",
                               "t.yaml");
  ASSERT_FALSE(pb);
  std::vector<std::string> msgs;
  for (const auto& d : pb.error()) msgs.push_back(d.str());
  EXPECT_EQ(msgs, (std::vector<std::string>{
                      "t.yaml:7:11: with: argv and cmd cannot be combined ('exec' takes at most "
                      "one of argv, cmd)",
                      "t.yaml:10:11: with: json_path and yaml_path cannot be combined ('file' "
                      "takes at most one of json_path, yaml_path)"}));
  EXPECT_THAT(describe_step(Registry::instance().find("exec")->spec()),
              HasSubstr("At most one of: argv, cmd"));
}

TEST(StepContract, ABoolInAGroupCountsOnlyWhenTrue) {
  const StepSpec& veth = Registry::instance().find("veth.peer")->spec();
  auto neither = finalize_params(veth, {{"all", false}});
  ASSERT_FALSE(neither);
  EXPECT_EQ(neither.error(), "with: one of interface, all is required by 'veth.peer'");
  auto both = finalize_params(veth, {{"all", true}, {"interface", "eth0"}});
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error(),
            "with: interface and all cannot be combined ('veth.peer' takes at most one of "
            "interface, all)");
  EXPECT_TRUE(finalize_params(veth, {{"all", false}, {"interface", "eth0"}}));
  EXPECT_TRUE(finalize_params(veth, {{"all", true}}));
  // At load time too, where the default (false) of `all` does not count.
  EXPECT_FALSE(check_params(veth, json::object(), true).problems.empty());
}

TEST(StepContract, ExclusiveParamsAreCheckedAgainAfterTemplates) {
  const StepSpec& spec = echo()->spec();
  std::vector<std::string> fresh = {"b"};
  auto p = finalize_params(spec, {{"a", "x"}, {"b", "y"}}, &fresh);
  ASSERT_FALSE(p);
  EXPECT_THAT(p.error(), HasSubstr("a and b cannot be combined"));
}

TEST(StepContract, OneCheckerForLoadAndRun) {
  const StepSpec& spec = echo()->spec();
  // Load time: templates are left for later and defaults are not filled in.
  CheckedParams at_load = check_params(spec, {{"wait", "{{ inputs.w }}"}, {"a", "x"}}, true);
  EXPECT_TRUE(at_load.problems.empty());
  EXPECT_EQ(at_load.values, (json{{"wait", "{{ inputs.w }}"}, {"a", "x"}}));
  // Run time: the same words for the same mistake.
  CheckedParams bad_load = check_params(spec, {{"wiat", 1}}, true);
  ASSERT_EQ(bad_load.problems.size(), 1u);
  auto bad_run = finalize_params(spec, {{"wiat", 1}});
  ASSERT_FALSE(bad_run);
  EXPECT_EQ(bad_load.problems[0].message, bad_run.error());
  EXPECT_EQ(bad_run.error(), "with.wiat: unknown param of 'test.session_echo' (did you mean 'wait'?)");
}

}  // namespace
}  // namespace netplay
