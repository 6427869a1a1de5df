/// The loader against test-only steps registered here (fake.probe, fake.watch, fake.pick),
/// so these tests do not move when real steps change. Every message is compared whole,
/// with its line and column.

#include "runner/load/loader.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runner/base/yaml.h"
#include "runner/step/params.h"
#include "runner/base/sha256.h"

namespace netplay {
namespace {

class FakeProbe : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "fake.probe",
        .summary = "test: a probe with typed params",
        .params = {{.name = "target", .type = ValueType::kIp, .required = true},
                   {.name = "count", .type = ValueType::kInt, .default_value = 3},
                   {.name = "interval", .type = ValueType::kDuration, .default_value = "1s"},
                   {.name = "mode",
                    .type = ValueType::kString,
                    .default_value = "icmp",
                    .choices = {"icmp", "udp"}},
                   {.name = "ports", .type = ValueType::kList, .item_type = ValueType::kPort},
                   {.name = "extra", .type = ValueType::kAny}},
        .facts = {{"loss_pct", "number", "loss"},
                  {"rtt_avg_ms", "number", "rtt"},
                  {"entries", "list", "entries"},
                  {"state", "string", "state"}},
    };
    return s;
  }
  StepOutput run(StepContext&, const Params&) const override { return {}; }
};

class FakeWatch : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "fake.watch",
        .summary = "test: a background observer",
        .params = {{.name = "wait", .type = ValueType::kDuration, .default_value = 2000}},
        .supports_background = true};
    return s;
  }
  StepOutput run(StepContext&, const Params&) const override { return {}; }
};

class FakePick : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{.name = "fake.pick",
                            .summary = "test: one of name or index",
                            .params = {{.name = "name", .type = ValueType::kString},
                                       {.name = "index", .type = ValueType::kInt}},
                            .one_of = {{"name", "index"}}};
    return s;
  }
  StepOutput run(StepContext&, const Params&) const override { return {}; }
};

NETPLAY_REGISTER_STEP(FakeProbe);
NETPLAY_REGISTER_STEP(FakeWatch);
NETPLAY_REGISTER_STEP(FakePick);

const char* kHeader =
    "apiVersion: netplay/v1\n"
    "kind: Playbook\n"
    "metadata: {name: t}\n";

/// Loads a playbook expected to be invalid; returns its messages as printed.
std::vector<std::string> errors_of(const std::string& text) {
  auto pb = load_playbook_text(text, "pb.yaml");
  std::vector<std::string> out;
  if (pb) {
    ADD_FAILURE() << "expected errors, the playbook loaded";
    return out;
  }
  for (const auto& d : pb.error()) out.push_back(d.str());
  return out;
}

Plan load_ok(const std::string& text) {
  auto pb = load_playbook_text(text, "pb.yaml");
  if (!pb) {
    std::string all;
    for (const auto& d : pb.error()) all += d.str() + "\n";
    ADD_FAILURE() << "unexpected errors:\n" << all;
    return {};
  }
  return std::move(*pb);
}

using Msgs = std::vector<std::string>;

TEST(Loader, LoadsAFullPlaybook) {
  const std::string text = std::string(kHeader) + R"(inputs:
  remote: {type: ip, required: true, description: the far end}
  port: {type: port, default: "4789"}
  wait: {type: duration, default: 2s}
  count: {default: 5}
env: [HOME]
steps:
  - id: underlay
    title: Ping it
    uses: fake.probe
    netns: "{{ inputs.remote }}"
    with: {target: "{{ inputs.remote }}", count: "3", interval: 250ms, ports: [80, "{{ inputs.port }}"]}
    expect: {loss_pct: 0, rtt_avg_ms: {lt: "{{ inputs.count }}"}}
    timeout: 5s
    retries: 2
    retry_delay: 0.5
    severity: warn
    hooks: {before: "return inputs.count > 1", after: "steps.underlay.facts.loss_pct == 0"}
    on_fail:
      - {uses: fake.pick, with: {index: 2}}
      - uses: fake.probe
        with: {target: 10.0.0.1}
  - id: watch
    uses: fake.watch
    background: true
    netns: blue
    needs: underlay
    when: steps.underlay.status == 'pass'
diagnosis:
  - id: lost
    when: steps.underlay.status == 'fail'
    finding: "Cannot reach {{ inputs.remote }}"
    next: ["Check routes", "Port {{ inputs.port }}"]
    references: [https://example.invalid/doc]
  - when: "true"
    finding: plain
)";
  Plan pb = load_ok(text);
  EXPECT_EQ(pb.name, "t");
  EXPECT_EQ(pb.sha256, sha256_hex(text));
  ASSERT_EQ(pb.inputs.size(), 4u);
  EXPECT_EQ(pb.inputs[0].type, ValueType::kIp);
  EXPECT_TRUE(pb.inputs[0].required);
  EXPECT_EQ(pb.inputs[0].description, "the far end");
  EXPECT_EQ(pb.inputs[1].default_value, json(4789));
  EXPECT_EQ(pb.inputs[2].default_value, json(2000.0));
  EXPECT_EQ(pb.inputs[3].type, ValueType::kInt);  // inferred from the default
  EXPECT_EQ(pb.env_allow, std::vector<std::string>{"HOME"});
  ASSERT_EQ(pb.steps.size(), 2u);

  const StepDef& u = pb.steps[0];
  EXPECT_EQ(u.id, "underlay");
  EXPECT_EQ(u.title, "Ping it");
  ASSERT_NE(u.step, nullptr);
  EXPECT_EQ(u.step->spec().name, "fake.probe");
  EXPECT_EQ(u.pos.line, 11);
  EXPECT_EQ(u.pos.col, 5);
  EXPECT_TRUE(u.netns_tmpl);
  EXPECT_EQ(u.netns, "{{ inputs.remote }}");
  EXPECT_EQ(u.with["count"], json(3));
  EXPECT_EQ(u.with["interval"], json(250.0));  // canonical since load: milliseconds
  EXPECT_EQ(u.with["target"], json("{{ inputs.remote }}"));
  EXPECT_FALSE(u.with.contains("mode"));  // defaults are applied at run time
  {
    // What the scheduler does once templates are resolved: only what the templates
    // produced is coerced; the literals are canonical already and stay as they are.
    json with = u.with;
    with["target"] = "10.1.2.3";
    with["ports"][1] = "4789";
    std::vector<std::string> fresh = {"target", "ports"};
    auto params = finalize_params(u.step->spec(), with, &fresh);
    ASSERT_TRUE(params) << params.error();
    EXPECT_EQ(*params, json::parse(R"({"target": "10.1.2.3", "count": 3, "interval": 250.0,
                                      "mode": "icmp", "ports": [80, 4789]})"));
  }
  ASSERT_EQ(u.with_templates.size(), 2u);
  EXPECT_EQ(u.with_templates[0].ptr.to_string(), "/target");
  EXPECT_EQ(u.with_templates[1].ptr.to_string(), "/ports/1");
  EXPECT_EQ(u.with_templates[1].tmpl.pos.line, 15);
  EXPECT_GE(u.with_templates[1].tmpl.id, 0);
  EXPECT_EQ(u.with_pos.at("count").line, 15);
  EXPECT_EQ(u.with_pos.at("count").col, 50);
  ASSERT_EQ(u.expect_templates.size(), 1u);
  EXPECT_EQ(u.expect_templates[0].ptr.to_string(), "/rtt_avg_ms/lt");
  EXPECT_EQ(u.expect["loss_pct"], json(0));
  EXPECT_EQ(u.timeout.count(), 5000);
  EXPECT_EQ(u.retries, 2);
  EXPECT_EQ(u.retry_delay.count(), 500);
  EXPECT_TRUE(u.warn_only);
  EXPECT_TRUE(u.hook_before);
  EXPECT_TRUE(u.hook_after);  // a bare expression is accepted as its value
  ASSERT_EQ(u.on_fail.size(), 2u);
  EXPECT_EQ(u.on_fail[0].id, "underlay.on_fail[0]");
  EXPECT_EQ(u.on_fail[1].id, "underlay.on_fail[1]");
  EXPECT_EQ(u.on_fail[0].with["index"], json(2));

  const StepDef& w = pb.steps[1];
  EXPECT_TRUE(w.background);
  EXPECT_EQ(w.netns, "blue");
  EXPECT_FALSE(w.netns_tmpl);
  EXPECT_EQ(w.needs, std::vector<std::string>{"underlay"});
  EXPECT_TRUE(w.when);
  EXPECT_EQ(w.timeout.count(), 10000);  // the default

  ASSERT_EQ(pb.diagnosis.size(), 2u);
  EXPECT_EQ(pb.diagnosis[0].id, "lost");
  EXPECT_EQ(pb.diagnosis[0].next.size(), 2u);
  EXPECT_EQ(pb.diagnosis[0].references.size(), 1u);
  EXPECT_EQ(pb.diagnosis[1].id, "diagnosis[1]");
  EXPECT_TRUE(pb.diagnosis[1].finding);

  // The plan holds sources, not Lua state: a fresh engine compiles them all, and ids match.
  ExprEngine lua;
  auto compiled = lua.compile_all(pb.exprs);
  ASSERT_TRUE(compiled) << compiled.error();
  lua.set_inputs({{"remote", "10.1.2.3"}, {"port", 4789}, {"count", 5}});
  auto finding = lua.eval(pb.diagnosis[0].finding.id);
  ASSERT_TRUE(finding) << finding.error().message;
  EXPECT_EQ(*finding, json("Cannot reach 10.1.2.3"));
  auto plain = lua.eval(pb.diagnosis[1].finding.id);
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(*plain, json("plain"));
}

TEST(Loader, YamlSyntaxErrorHasPositionAndNoPrefix) {
  EXPECT_EQ(errors_of(std::string(kHeader) + "steps: [a\nb: 1\n"),
            Msgs{"pb.yaml:5:2: end of sequence flow not found"});
}

TEST(Loader, TopLevelChecks) {
  EXPECT_EQ(
      errors_of("apiVersion: netplay/v2\nkind: Playbok\nmetadata: {name: Bad_Name, titel: x}\n"
                "stpes: []\n"),
      (Msgs{"pb.yaml:1:1: steps is required (a list of steps)",
            "pb.yaml:1:13: apiVersion: expected 'netplay/v1', got 'netplay/v2'",
            "pb.yaml:2:7: kind: expected 'Playbook', got 'Playbok'",
            "pb.yaml:3:18: metadata.name: 'Bad_Name' must match [a-z0-9-]+",
            "pb.yaml:3:28: unknown key 'titel' (did you mean 'title'?)",
            "pb.yaml:4:1: unknown key 'stpes' (did you mean 'steps'?)"}));
  EXPECT_EQ(errors_of(""), Msgs{"pb.yaml:1:1: empty playbook: expected apiVersion, kind, metadata "
                                "and steps"});
  EXPECT_EQ(errors_of("steps: []\n"),
            (Msgs{"pb.yaml:1:1: apiVersion is required (apiVersion: netplay/v1)",
                  "pb.yaml:1:1: kind is required (kind: Playbook)",
                  "pb.yaml:1:1: metadata is required (metadata: {name: ...})"}));
}

TEST(Loader, UnknownStepSuggestsTheClosest) {
  EXPECT_EQ(errors_of(std::string(kHeader) + "steps:\n  - id: a\n    uses: fake.prob\n"),
            Msgs{"pb.yaml:6:11: unknown step 'fake.prob' (did you mean 'fake.probe'?)"});
}

TEST(Loader, ParamChecks) {
  const std::string text = std::string(kHeader) + R"(steps:
  - id: a
    uses: fake.probe
    with: {target: 10.0.0.300, cout: 3, count: three, mode: icpm, ports: [80, 70000]}
  - id: b
    uses: fake.probe
  - id: c
    uses: fake.pick
    with: {}
  - id: d
    uses: fake.probe
    with:
      target: "{{ inputs.nope }}"
      interval: soon
)";
  EXPECT_EQ(errors_of(text),
            (Msgs{"pb.yaml:7:20: with.target: expected an IP address, got '10.0.0.300'",
                  "pb.yaml:7:32: with.cout: unknown param of 'fake.probe' (did you mean 'count'?)",
                  "pb.yaml:7:48: with.count: expected an integer, got 'three'",
                  "pb.yaml:7:61: with.mode: expected one of [icmp, udp], got 'icpm' (did you mean "
                  "'icmp'?)",
                  "pb.yaml:7:74: with.ports.1: expected a port (0-65535), got 70000",
                  "pb.yaml:9:11: with.target: missing (required by 'fake.probe')",
                  "pb.yaml:12:11: with: one of name, index is required by 'fake.pick'",
                  "pb.yaml:16:15: with.target: unknown input 'nope'",
                  "pb.yaml:17:17: with.interval: expected a duration such as 500ms, 5s or 2m, got "
                  "'soon'"}));
}

TEST(Loader, ExpectChecks) {
  const std::string text = std::string(kHeader) + R"(steps:
  - id: a
    uses: fake.probe
    with: {target: 10.0.0.1}
    expect:
      los_pct: 0
      entries.0.dst: 10.0.0.2
      rtt_avg_ms: {greater: 5}
      state: {matches: "("}
)";
  auto errs = errors_of(text);
  ASSERT_EQ(errs.size(), 3u);
  EXPECT_EQ(errs[0],
            "pb.yaml:9:7: expect.los_pct: unknown fact of 'fake.probe' (did you mean "
            "'loss_pct'?)");
  EXPECT_EQ(errs[1].substr(0, 62),
            "pb.yaml:11:19: expect.rtt_avg_ms: unknown matcher 'greater' (m");
  EXPECT_EQ(errs[2].rfind("pb.yaml:12:14: expect.state: matches: invalid regex '(': ", 0), 0u)
      << errs[2];
}

TEST(Loader, NeedsUnknownAndCycles) {
  const std::string text = std::string(kHeader) + R"(steps:
  - id: a
    uses: fake.watch
    needs: [c]
  - id: b
    uses: fake.watch
    needs: [a, xyz]
  - id: c
    uses: fake.watch
    needs: [b]
  - id: d
    uses: fake.watch
    needs: d
)";
  EXPECT_EQ(errors_of(text), (Msgs{"pb.yaml:7:13: needs cycle: a -> c -> b -> a",
                                   "pb.yaml:10:16: needs: unknown step id 'xyz'",
                                   "pb.yaml:16:12: needs cycle: d -> d"}));
}

TEST(Loader, ReferencesOrderStepsAndTakePartInCycles) {
  const std::string text = std::string(kHeader) + R"(steps:
  - id: a
    uses: fake.watch
    when: steps.b.status == 'pass'
    hooks: {after: "return steps.a.status == 'pass'"}
  - id: b
    uses: fake.watch
    needs: [a]
    on_fail:
      - {uses: fake.probe, with: {target: "{{ steps.c.facts.ip }}"}}
  - id: c
    uses: fake.watch
    needs: [b]
diagnosis:
  - when: steps.a.status == 'fail'
    finding: x
)";
  // A step may read its own result in a hook; the diagnosis orders nothing.
  EXPECT_EQ(errors_of(text),
            (Msgs{"pb.yaml:7:11: dependency cycle: a -> b -> a (a steps.X reference orders steps "
                  "like needs)",
                  "pb.yaml:13:43: dependency cycle: b -> c -> b (a steps.X reference orders "
                  "steps like needs)"}));
}

TEST(Loader, TemplatesInAShellCommandAreShellTemplates) {
  Plan pb = load_ok(std::string(kHeader) +
                    "inputs: {name: {type: string, default: x}}\n"
                    "steps:\n"
                    "  - id: a\n"
                    "    uses: exec\n"
                    "    with: {cmd: 'echo {{ inputs.name }}', shell: true,\n"
                    "           env: {N: '{{ inputs.name }}'}}\n");
  ASSERT_EQ(pb.steps.size(), 1u);
  std::map<std::string, ExprKind> kinds;
  for (const auto& slot : pb.steps[0].with_templates)
    kinds[slot.ptr.to_string()] = pb.exprs[static_cast<size_t>(slot.tmpl.id)].kind;
  EXPECT_EQ(kinds["/cmd"], ExprKind::kShellTemplate);
  EXPECT_EQ(kinds["/env/N"], ExprKind::kTemplate);
}

TEST(Loader, AssignmentInAnExpressionGetsAHint) {
  EXPECT_EQ(errors_of(std::string(kHeader) +
                      "steps:\n  - id: a\n    uses: fake.watch\n    when: steps.a.status = 'x'\n"),
            Msgs{"pb.yaml:7:11: when: ')' expected near '=' (compare with ==)"});
}

TEST(Loader, ExpressionsAreCompiledAndReferencesChecked) {
  const std::string text = std::string(kHeader) + R"(inputs:
  count: {type: int, default: 3}
steps:
  - id: vtep
    uses: fake.watch
  - id: b
    uses: fake.watch
    when: steps.vtep.status = 'pass'
  - id: c
    uses: fake.watch
    when: "steps.vtpe.status == 'pass' and inputs.cuont > 2"
    hooks: {before: "if then", after: "return steps['nope'] ~= nil"}
diagnosis:
  - id: d
    when: steps.vtep.status == 'fail'
    finding: "bad {{ steps.vtep.facts. }}"
)";
  auto errs = errors_of(text);
  ASSERT_EQ(errs.size(), 6u) << ::testing::PrintToString(errs);
  EXPECT_EQ(errs[0].rfind("pb.yaml:11:11: when: ", 0), 0u) << errs[0];
  EXPECT_NE(errs[0].find("near '='"), std::string::npos) << errs[0];
  EXPECT_EQ(errs[1], "pb.yaml:14:11: when: unknown input 'cuont' (did you mean 'count'?)");
  EXPECT_EQ(errs[2], "pb.yaml:14:11: when: unknown step id 'vtpe' (did you mean 'vtep'?)");
  EXPECT_EQ(errs[3].rfind("pb.yaml:15:21: hooks.before: ", 0), 0u) << errs[3];
  EXPECT_EQ(errs[4], "pb.yaml:15:39: hooks.after: unknown step id 'nope'");
  EXPECT_EQ(errs[5].rfind("pb.yaml:19:14: finding: ", 0), 0u) << errs[5];
}

TEST(Loader, StepFieldChecks) {
  const std::string text = std::string(kHeader) + R"(steps:
  - id: Bad-Id
    uses: fake.probe
    with: {target: 10.0.0.1}
    timeout: forever
    retries: -1
    severity: fatal
    background: true
    neds: [x]
  - title: no id
  - id: a
    uses: fake.watch
    netns: "a/b"
    on_fail:
      - {uses: fake.watch, expect: {x: 1}}
  - id: a
    uses: fake.watch
)";
  EXPECT_EQ(
      errors_of(text),
      (Msgs{"pb.yaml:5:9: id: 'Bad-Id' must match [a-z0-9_]+",
            "pb.yaml:8:14: timeout: expected a duration such as 500ms, 5s or 2m, got 'forever'",
            "pb.yaml:9:14: retries: expected an integer >= 0, got -1",
            "pb.yaml:10:15: severity: expected one of [fail, warn], got 'fatal'",
            "pb.yaml:11:17: background: step 'fake.probe' cannot run in the background",
            "pb.yaml:12:5: unknown key 'neds' (did you mean 'needs'?)",
            "pb.yaml:13:5: step has no id (id: a name such as check_vtep)",
            "pb.yaml:13:5: step 'steps[1]' has no uses (the step to run, e.g. uses: sysctl)",
            "pb.yaml:16:12: netns: expected a network namespace (host, NAME, /path or "
            "pid:N), got 'a/b'",
            "pb.yaml:18:28: unknown key 'expect'",
            "pb.yaml:19:9: duplicate step id 'a' (first at line 14)"}));
}

TEST(Loader, DiagnosisSeverity) {
  const std::string rules = R"(steps:
  - {id: a, uses: fake.watch}
diagnosis:
  - {id: hard, when: "true", finding: x}
  - {id: soft, when: "true", finding: x, severity: warn}
  - {id: note, when: "true", finding: x, severity: info}
  - {id: loud, when: "true", finding: x, severity: fail}
)";
  Plan pb = load_ok(std::string(kHeader) + rules);
  ASSERT_EQ(pb.diagnosis.size(), 4u);
  EXPECT_EQ(pb.diagnosis[0].severity, Severity::kFail);  // the default
  EXPECT_EQ(pb.diagnosis[1].severity, Severity::kWarn);
  EXPECT_EQ(pb.diagnosis[2].severity, Severity::kInfo);
  EXPECT_EQ(pb.diagnosis[3].severity, Severity::kFail);

  const std::string bad = R"(steps:
  - {id: a, uses: fake.watch}
diagnosis:
  - {id: typo, when: "true", finding: x, severity: wran}
  - {id: other, when: "true", finding: x, severity: critical}
  - {id: listed, when: "true", finding: x, severity: [warn]}
  - {id: misspelt, when: "true", finding: x, severty: warn}
)";
  EXPECT_EQ(errors_of(std::string(kHeader) + bad),
            (Msgs{"pb.yaml:7:52: severity: expected one of [fail, warn, info], got 'wran' "
                  "(did you mean 'warn'?)",
                  "pb.yaml:8:53: severity: expected one of [fail, warn, info], got 'critical'",
                  "pb.yaml:9:54: severity: expected a string, got a list",
                  "pb.yaml:10:46: unknown key 'severty' (did you mean 'severity'?)"}));
}

TEST(Loader, DuplicateKeysAndUnquotedTemplates) {
  const std::string text = std::string(kHeader) + R"(steps:
  - id: a
    uses: fake.probe
    with: {target: {{ inputs.x }}}
    id: b
)";
  EXPECT_EQ(errors_of(text), (Msgs{"pb.yaml:7:21: a template must be quoted: \"{{ ... }}\"",
                                   "pb.yaml:8:5: duplicate key 'id' (first at line 5)"}));
}

TEST(Loader, InputChecks) {
  const std::string text = std::string(kHeader) + R"(inputs:
  remote-ip: {type: ip}
  count: {type: integr, defualt: 3}
  port: {type: port, default: 70000}
  flag: yes
steps: []
)";
  auto errs = errors_of(text);
  ASSERT_EQ(errs.size(), 5u) << ::testing::PrintToString(errs);
  EXPECT_EQ(errs[0],
            "pb.yaml:5:3: input name 'remote-ip' must be a Lua identifier "
            "([A-Za-z_][A-Za-z0-9_]*)");
  EXPECT_EQ(errs[1].rfind("pb.yaml:6:17: inputs.count.type: unknown type 'integr'", 0), 0u)
      << errs[1];
  EXPECT_EQ(errs[2], "pb.yaml:6:25: unknown key 'defualt' (did you mean 'default'?)");
  EXPECT_EQ(errs[3], "pb.yaml:7:31: inputs.port.default: expected a port (0-65535), got 70000");
  EXPECT_EQ(errs[4],
            "pb.yaml:8:9: inputs.flag: expected a map such as {type: string, default: "
            "...}, got 'yes'");
}

TEST(Loader, AllErrorsOfAFileInFileOrder) {
  // Errors found in different passes (needs and references are checked last) still come
  // out sorted by position.
  const std::string text = std::string(kHeader) + R"(steps:
  - id: a
    uses: fake.watch
    needs: [zzz]
    when: steps.zzz.status == 'pass'
  - id: b
    uses: nope
  - id: c
    uses: fake.watch
    retries: many
)";
  EXPECT_EQ(errors_of(text),
            (Msgs{"pb.yaml:7:13: needs: unknown step id 'zzz'",
                  "pb.yaml:8:11: when: unknown step id 'zzz'", "pb.yaml:10:11: unknown step 'nope'",
                  "pb.yaml:13:14: retries: expected an integer, got 'many'"}));
}

TEST(Loader, HookFromAFileNextToThePlaybook) {
  auto dir =
      std::filesystem::temp_directory_path() / ("netplay-loader-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "check.lua") << "return steps.a.status == 'pass'\n";
  std::ofstream(dir / "bad.lua") << "return ((\n";
  const std::string pb_path = (dir / "pb.yaml").string();
  std::ofstream(pb_path)
      << kHeader
      << "steps:\n  - id: a\n    uses: fake.watch\n    hooks: {after: check.lua}\n"
         "  - id: b\n    uses: fake.watch\n    hooks: {after: bad.lua, before: "
         "missing.lua}\n";
  auto pb = load_playbook(pb_path);
  ASSERT_FALSE(pb);
  ASSERT_EQ(pb.error().size(), 2u);
  EXPECT_EQ(pb.error()[0].str().rfind(pb_path + ":10:20: hooks.after: bad.lua: ", 0), 0u)
      << pb.error()[0].str();
  EXPECT_EQ(pb.error()[1].str(), pb_path + ":10:37: hooks.before: cannot read Lua file '" +
                                     (dir / "missing.lua").string() + "'");
  std::filesystem::remove_all(dir);
}

TEST(Loader, UnreadableFile) {
  auto pb = load_playbook("/nonexistent/pb.yaml");
  ASSERT_FALSE(pb);
  EXPECT_EQ(pb.error()[0].str(), "/nonexistent/pb.yaml: cannot read: No such file or directory");
}

TEST(Loader, GoldenBrokenPlaybook) {
  const std::string dir = std::string(NETPLAY_TEST_DATA) + "/golden/validate/";
  std::ifstream in(dir + "broken.yaml"), want_in(dir + "broken.expected");
  ASSERT_TRUE(in && want_in) << "missing golden files in " << dir;
  std::stringstream text, want;
  text << in.rdbuf();
  want << want_in.rdbuf();
  auto pb = load_playbook_text(text.str(), "broken.yaml");
  ASSERT_FALSE(pb);
  std::string got;
  for (const auto& d : pb.error()) got += d.str() + "\n";
  EXPECT_EQ(got, want.str()) << "update " << dir << "broken.expected if the change is intended";
}

TEST(Loader, RecursiveAndExpandingAliasesAreRejected) {
  EXPECT_EQ(errors_of(std::string(kHeader) + "steps: &x [*x]\n"),
            Msgs{"pb.yaml:1:1: the document nests deeper than 64 levels (a recursive alias?)"});
  std::string laughs = std::string(kHeader) + "x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (int i = 1; i < 8; ++i)
    laughs +=
        fmt::format("x{}: &a{} [*a{}, *a{}, *a{}, *a{}, *a{}, *a{}, *a{}, *a{}, *a{}, *a{}]\n", i,
                    i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
  EXPECT_EQ(errors_of(laughs),
            Msgs{"pb.yaml:1:1: the document expands to more than 200000 values (aliases?)"});
}

TEST(Loader, EveryPrefixOfAPlaybookLoadsOrFailsWithPositions) {
  // Robustness: a playbook cut at any byte either loads or yields errors, never a crash.
  std::ifstream in(std::string(NETPLAY_TEST_DATA) + "/golden/validate/broken.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  ASSERT_GT(text.size(), 100u);
  for (size_t n = 0; n <= text.size(); n += 3) {
    auto pb = load_playbook_text(text.substr(0, n), "cut.yaml");
    if (pb) continue;
    for (const auto& d : pb.error()) {
      EXPECT_FALSE(d.message.empty());
      EXPECT_GE(d.pos.line, 1) << n << ": " << d.str();
    }
  }
}

TEST(Loader, ShippedPlaybooksAreValid) {
  const auto dir = std::filesystem::path(NETPLAY_TEST_DATA) / ".." / "playbooks";
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++n;
    auto pb = load_playbook(entry.path().string());
    std::string all;
    if (!pb)
      for (const auto& d : pb.error()) all += d.str() + "\n";
    EXPECT_TRUE(pb) << all;
  }
  EXPECT_GT(n, 0) << "no playbooks in " << dir;
}

TEST(Loader, ScalarsFollowTheCoreSchema) {
  auto conv = [](const std::string& s) { return yamlx::to_json(YAML::Load("v: " + s)["v"]); };
  EXPECT_EQ(conv("true"), json(true));
  EXPECT_EQ(conv("False"), json(false));
  EXPECT_EQ(conv("yes"), json("yes"));  // YAML 1.1 booleans are strings in the core schema
  EXPECT_EQ(conv("~"), json(nullptr));
  EXPECT_EQ(conv("null"), json(nullptr));
  EXPECT_EQ(conv(""), json(nullptr));
  EXPECT_EQ(conv("42"), json(42));
  EXPECT_EQ(conv("-7"), json(-7));
  EXPECT_EQ(conv("0x1F"), json(31));
  EXPECT_EQ(conv("0o17"), json(15));
  EXPECT_EQ(conv("1.5"), json(1.5));
  EXPECT_EQ(conv("1e3"), json(1000.0));
  EXPECT_EQ(conv("'42'"), json("42"));
  EXPECT_EQ(conv("\"true\""), json("true"));
  EXPECT_EQ(conv("!!str 5"), json("5"));
  EXPECT_EQ(conv("10.0.0.1"), json("10.0.0.1"));
  EXPECT_EQ(conv("5s"), json("5s"));
  EXPECT_EQ(conv("[1, a, {b: null}]"), json::parse(R"([1, "a", {"b": null}])"));
}

// --- inputs ---------------------------------------------------------------------------

class Inputs : public ::testing::Test {
 protected:
  void SetUp() override {
    pb_ = load_ok(std::string(kHeader) + R"(inputs:
  remote_underlay: {type: ip, required: true}
  count: {type: int, default: 3}
  wait: {type: duration, default: 1s}
  names: {type: list}
  opt: {type: string}
steps: []
)");
    vars_ = std::filesystem::temp_directory_path() /
            ("netplay-vars-" + std::to_string(getpid()) + ".yaml");
  }
  void TearDown() override { std::filesystem::remove(vars_); }
  void write_vars(const std::string& text) { std::ofstream(vars_) << text; }

  Plan pb_;
  std::filesystem::path vars_;
};

std::vector<std::string> strs(const std::vector<Diagnostic>& ds) {
  std::vector<std::string> out;
  for (const auto& d : ds) out.push_back(d.str());
  return out;
}

TEST_F(Inputs, DefaultsThenVarsThenSet) {
  write_vars("{\"count\": 5, \"remote_underlay\": \"10.0.0.1\", \"wait\": \"250ms\"}");
  auto v = resolve_inputs(pb_, {vars_.string()}, {"count=7", "names=a,b"});
  ASSERT_TRUE(v) << ::testing::PrintToString(strs(v.error()));
  EXPECT_EQ(*v, json::parse(R"({"remote_underlay": "10.0.0.1", "count": 7, "wait": "250ms",
                                "names": ["a", "b"], "opt": null})"));
  // A duration input handed to a duration param through a template keeps its value.
  const StepSpec& watch = Registry::instance().find("fake.watch")->spec();
  EXPECT_EQ(finalize_params(watch, {{"wait", (*v)["wait"]}})->at("wait"), json(250.0));
  v = resolve_inputs(pb_, {}, {"remote_underlay=::1", "wait=90"});
  ASSERT_TRUE(v);
  EXPECT_EQ((*v)["wait"], json("90s"));
}

TEST_F(Inputs, RequiredInputMissing) {
  auto v = resolve_inputs(pb_, {}, {});
  ASSERT_FALSE(v);
  EXPECT_EQ(strs(v.error()),
            Msgs{"input 'remote_underlay' is required (give it with --set remote_underlay=VALUE)"});
}

TEST_F(Inputs, SetErrorsNameTheFlag) {
  auto v = resolve_inputs(pb_, {}, {"remote_underlay=10.0.0.1", "count=three", "cuont=3", "junk"});
  ASSERT_FALSE(v);
  EXPECT_EQ(strs(v.error()), (Msgs{"--set count=three: expected an integer, got 'three'",
                                   "--set cuont=3: unknown input (did you mean 'count'?)",
                                   "--set junk: expected NAME=VALUE"}));
}

TEST_F(Inputs, VarsFileErrorsHavePositions) {
  write_vars("remote_underlay: 10.0.0.1\ncount: three\ncuont: 3\n");
  auto v = resolve_inputs(pb_, {vars_.string()}, {});
  ASSERT_FALSE(v);
  const std::string f = vars_.string();
  EXPECT_EQ(strs(v.error()), (Msgs{f + ":2:8: count: expected an integer, got 'three'",
                                   f + ":3:1: unknown input 'cuont' (did you mean 'count'?)"}));
  write_vars("a: [1\n");
  v = resolve_inputs(pb_, {vars_.string()}, {"remote_underlay=::1"});
  ASSERT_FALSE(v);
  EXPECT_EQ(strs(v.error()), Msgs{f + ":2:1: end of sequence flow not found"});
  v = resolve_inputs(pb_, {"/nonexistent/vars.yaml"}, {"remote_underlay=::1"});
  ASSERT_FALSE(v);
  EXPECT_EQ(strs(v.error()),
            Msgs{"/nonexistent/vars.yaml: cannot read: No such file or directory"});
}

// --- params ---------------------------------------------------------------------------

TEST(Params, FinalizeAppliesDefaultsAndCoerces) {
  const StepSpec& spec = Registry::instance().find("fake.probe")->spec();
  auto p = finalize_params(spec, {{"target", "10.0.0.1"}, {"count", "4"}});
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(
      *p, json::parse(R"({"target": "10.0.0.1", "count": 4, "interval": 1000.0, "mode": "icmp"})"));
  EXPECT_EQ(finalize_params(spec, {{"count", 4}}).error(),
            "with.target: missing (required by 'fake.probe')");
  EXPECT_EQ(finalize_params(spec, {{"target", "x"}}).error(),
            "with.target: expected an IP address, got 'x'");
  EXPECT_EQ(finalize_params(spec, {{"target", "::1"}, {"cuont", 1}}).error(),
            "with.cuont: unknown param of 'fake.probe' (did you mean 'count'?)");
  // A numeric default of a duration is already milliseconds.
  const StepSpec& watch = Registry::instance().find("fake.watch")->spec();
  EXPECT_EQ(finalize_params(watch, json::object())->at("wait"), json(2000));
  EXPECT_EQ(finalize_params(watch, {{"wait", 3}})->at("wait"), json(3000.0));
  const StepSpec& pick = Registry::instance().find("fake.pick")->spec();
  EXPECT_EQ(finalize_params(pick, json::object()).error(),
            "with: one of name, index is required by 'fake.pick'");
  EXPECT_TRUE(finalize_params(pick, {{"index", 1}}));
}

// --- sha256 ---------------------------------------------------------------------------

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1'000'000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // 55 and 56 bytes: the padding boundary.
  EXPECT_EQ(sha256_hex(std::string(55, 'a')),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(sha256_hex(std::string(56, 'a')),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
}

}  // namespace
}  // namespace netplay
