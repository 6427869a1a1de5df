#include "runner/report/reporters.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/unit/support/cli_run.h"

namespace netplay {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

/// A run with one step of every status, a finding, and hostile bytes in the evidence.
RunReport sample_report() {
  RunReport r;
  r.version = "0.1.0";
  r.playbook_name = "overlay-connectivity";
  r.playbook_title = "Silk overlay: packets won't flow";
  r.playbook_file = "playbooks/overlay.yaml";
  r.playbook_sha256 = std::string(64, 'a');
  r.inputs = json{{"vtep_port", 4789}, {"cell_netns", "cell1"}};
  r.started_at = "2024-05-01T03:00:00Z";
  r.duration_ms = 123.456789;

  StepResult pass;
  pass.id = "underlay";
  pass.uses = "ping";
  pass.netns = "cell1";
  pass.status = Status::kPass;
  pass.message = "3/3 replies";
  pass.facts = json{{"loss_pct", 0}, {"rtt_avg_ms", 0.21}};
  pass.duration_ms = 0.4;
  pass.attempts = 1;
  pass.expectations.push_back({"loss_pct", "eq", 0, 0, true, ""});

  StepResult fail;
  fail.id = "vtep";
  fail.uses = "vxlan.vtep";
  fail.netns = "host";
  fail.status = Status::kFail;
  fail.message = "dstport: expected 4789, got 8472";
  fail.facts = json{{"dstport", 8472}, {"gbp", true}};
  fail.expectations.push_back(
      {"dstport", "eq", 4789, 8472, false, "dstport: expected 4789, got 8472"});
  fail.expectations.push_back({"gbp", "eq", true, true, true, ""});
  fail.evidence = {"link <silk-vtep> & \"dstport\" 'x'", std::string("bell\x01here\x1b[0m"),
                   std::string("bad utf8 \xff\xfe end")};
  fail.duration_ms = 1.25;
  fail.attempts = 2;

  StepResult warn;
  warn.id = "mtu";
  warn.uses = "link";
  warn.status = Status::kWarn;
  warn.message = "mtu: expected 1450, got 1500";
  warn.duration_ms = 0.2;
  warn.attempts = 1;

  StepResult skip;
  skip.id = "overlay";
  skip.uses = "ping";
  skip.status = Status::kSkip;
  skip.message = "needs vtep, which failed";

  StepResult err;
  err.id = "capture";
  err.uses = "capture";
  err.status = Status::kError;
  err.message = "cannot enter netns 'nosuch': No such file or directory";
  err.duration_ms = 3;
  err.attempts = 1;

  r.steps = {pass, fail, warn, skip, err};
  r.findings.push_back({"vtep-port-mismatch",
                        "The VTEP uses UDP 8472 | not 4789",
                        {"Set vtep_port to 8472", "Check the NSX settings"},
                        {"https://example.org/silk"}});
  r.status = r.overall();
  return r;
}

/// A healthy run whose findings are a warning and a note, given least severe first.
RunReport soft_findings_report() {
  RunReport r;
  r.playbook_name = "soft";
  StepResult ok;
  ok.id = "mtu";
  ok.uses = "link";
  ok.status = Status::kPass;
  ok.message = "mtu 1500";
  r.steps = {ok};
  r.findings.push_back({.id = "offload-on",
                        .finding = "Checksum offload is on (the default)",
                        .severity = Severity::kInfo});
  r.findings.push_back({.id = "mtu-high",
                        .finding = "The MTU leaves no room for VXLAN",
                        .next = {"Lower the MTU to 1450"},
                        .severity = Severity::kWarn});
  return r;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ParseFormat, KnownAndUnknown) {
  EXPECT_EQ(parse_format("text").value(), Format::kText);
  EXPECT_EQ(parse_format("json").value(), Format::kJson);
  EXPECT_EQ(parse_format("junit").value(), Format::kJunit);
  EXPECT_EQ(parse_format("markdown").value(), Format::kMarkdown);
  auto bad = parse_format("jsno");
  ASSERT_FALSE(bad.has_value());
  EXPECT_THAT(bad.error(), HasSubstr("unknown format 'jsno'"));
  EXPECT_THAT(bad.error(), HasSubstr("did you mean 'json'"));
}

TEST(JsonReport, HasEveryContractField) {
  auto r = sample_report();
  std::string out = render(r, Format::kJson, {});
  json j = json::parse(out);  // throws (test fails) when not valid JSON
  for (const char* k : {"netplay", "playbook", "inputs", "started_at", "duration_ms", "status",
                        "summary", "steps", "findings", "interrupted"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["netplay"], "0.1.0");
  EXPECT_EQ(j["playbook"]["name"], "overlay-connectivity");
  EXPECT_EQ(j["playbook"]["file"], "playbooks/overlay.yaml");
  EXPECT_EQ(j["playbook"]["sha256"], std::string(64, 'a'));
  EXPECT_EQ(j["inputs"]["vtep_port"], 4789);
  EXPECT_EQ(j["started_at"], "2024-05-01T03:00:00Z");
  EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 123.457);
  EXPECT_EQ(j["status"], "fail");
  EXPECT_EQ(j["interrupted"], false);
  EXPECT_EQ(j["summary"], (json{{"pass", 1}, {"fail", 1}, {"warn", 1}, {"skip", 1}, {"error", 1}}));
  ASSERT_EQ(j["steps"].size(), 5u);
  const json& s = j["steps"][1];
  for (const char* k : {"id", "uses", "netns", "status", "message", "duration_ms", "attempts",
                        "facts", "expectations", "evidence"})
    EXPECT_TRUE(s.contains(k)) << k;
  EXPECT_EQ(s["id"], "vtep");
  EXPECT_EQ(s["status"], "fail");
  EXPECT_EQ(s["attempts"], 2);
  EXPECT_EQ(s["facts"]["dstport"], 8472);
  ASSERT_EQ(s["expectations"].size(), 2u);
  const json& e = s["expectations"][0];
  EXPECT_EQ(e["fact"], "dstport");
  EXPECT_EQ(e["matcher"], "eq");
  EXPECT_EQ(e["expected"], 4789);
  EXPECT_EQ(e["actual"], 8472);
  EXPECT_EQ(e["ok"], false);
  EXPECT_EQ(s["evidence"].size(), 3u);
  // Invalid UTF-8 in step output is replaced, not a reason to lose the report.
  EXPECT_THAT(s["evidence"][2].get<std::string>(), HasSubstr("\xEF\xBF\xBD"));
  ASSERT_EQ(j["findings"].size(), 1u);
  const json& f = j["findings"][0];
  EXPECT_EQ(f["id"], "vtep-port-mismatch");
  EXPECT_EQ(f["severity"], "fail");
  EXPECT_EQ(f["next"].size(), 2u);
  EXPECT_EQ(f["references"][0], "https://example.org/silk");
}

TEST(JsonReport, InterruptedAndEmpty) {
  RunReport r;
  r.interrupted = true;
  json j = json::parse(render(r, Format::kJson, {}));
  EXPECT_EQ(j["interrupted"], true);
  EXPECT_EQ(j["status"], "error");  // an interrupted run never reads as a pass
  EXPECT_TRUE(j["steps"].is_array());
  EXPECT_TRUE(j["findings"].is_array());
  EXPECT_TRUE(j["inputs"].is_object());
}

TEST(JunitReport, CountsAndCases) {
  std::string x = render(sample_report(), Format::kJunit, {});
  EXPECT_THAT(x, HasSubstr("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
  // 5 steps + 1 finding; the finding counts as a failure.
  EXPECT_THAT(x, HasSubstr("<testsuite name=\"overlay-connectivity\" tests=\"6\" failures=\"2\" "
                           "errors=\"1\" skipped=\"1\" time=\"0.123\""));
  EXPECT_THAT(x, HasSubstr("<testcase classname=\"netplay.overlay-connectivity\" name=\"underlay\" "
                           "time=\"0.000\""));
  EXPECT_THAT(x, HasSubstr("<failure message=\"dstport: expected 4789, got 8472\" type=\"fail\">"));
  EXPECT_THAT(x, HasSubstr("<error message=\"cannot enter netns &apos;nosuch&apos;"));
  EXPECT_THAT(x, HasSubstr("<skipped message=\"needs vtep, which failed\"/>"));
  EXPECT_THAT(x, HasSubstr("<system-out>warning: mtu: expected 1450, got 1500"));
  EXPECT_THAT(
      x, HasSubstr(
             "classname=\"netplay.overlay-connectivity.diagnosis\" name=\"vtep-port-mismatch\""));
}

TEST(JunitReport, EscapesMarkupAndControlCharacters) {
  std::string x = render(sample_report(), Format::kJunit, {});
  EXPECT_THAT(x, HasSubstr("link &lt;silk-vtep&gt; &amp; \"dstport\" 'x'"));
  EXPECT_THAT(x, HasSubstr("bell\\x01here\\x1b[0m"));
  EXPECT_THAT(x, Not(HasSubstr("\x01")));
  EXPECT_THAT(x, Not(HasSubstr("\x1b")));
  EXPECT_THAT(x, Not(HasSubstr("\xff")));
  // Attribute values keep their newlines as character references.
  RunReport r;
  r.playbook_name = "p";
  StepResult s;
  s.id = "a\"b";
  s.status = Status::kFail;
  s.message = "line1\nline2 <x>";
  r.steps = {s};
  std::string y = render(r, Format::kJunit, {});
  EXPECT_THAT(y, HasSubstr("name=\"a&quot;b\""));
  EXPECT_THAT(y, HasSubstr("message=\"line1&#10;line2 &lt;x&gt;\""));
}

TEST(JunitReport, ValidatesAgainstSchema) {
  fs::path dir = fs::temp_directory_path() / ("np-junit-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (bool interrupted : {false, true}) {
    auto r = sample_report();
    r.interrupted = interrupted;
    fs::path file = dir / "report.xml";
    ASSERT_TRUE(write_file_atomic(file, render(r, Format::kJunit, {})).has_value());
    std::string cmd = "xmllint --noout --schema " NETPLAY_TEST_DATA "/junit.xsd " + file.string() +
                      " 2>" + (dir / "err").string();
    EXPECT_EQ(std::system(cmd.c_str()), 0) << read(dir / "err");
  }
  fs::path soft = dir / "soft.xml";
  ASSERT_TRUE(
      write_file_atomic(soft, render(soft_findings_report(), Format::kJunit, {})).has_value());
  std::string soft_cmd = "xmllint --noout --schema " NETPLAY_TEST_DATA "/junit.xsd " +
                         soft.string() + " 2>" + (dir / "err").string();
  EXPECT_EQ(std::system(soft_cmd.c_str()), 0) << read(dir / "err");
  RunReport empty;
  fs::path file = dir / "empty.xml";
  ASSERT_TRUE(write_file_atomic(file, render(empty, Format::kJunit, {})).has_value());
  std::string cmd =
      "xmllint --noout --schema " NETPLAY_TEST_DATA "/junit.xsd " + file.string() + " 2>/dev/null";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  fs::remove_all(dir);
}

TEST(MarkdownReport, Structure) {
  std::string md = render(sample_report(), Format::kMarkdown, {});
  EXPECT_EQ(md.rfind("# netplay: Silk overlay: packets won't flow - FAIL\n", 0), 0u) << md;
  auto findings = md.find("## Findings");
  auto steps = md.find("## Steps");
  auto details = md.find("## Details");
  ASSERT_NE(findings, std::string::npos);
  ASSERT_NE(steps, std::string::npos);
  ASSERT_NE(details, std::string::npos);
  EXPECT_LT(findings, steps);
  EXPECT_LT(steps, details);
  EXPECT_THAT(md, HasSubstr("- **vtep-port-mismatch** (fail): The VTEP uses UDP 8472 \\| not 4789"));
  EXPECT_THAT(md, HasSubstr("| Status | Step | Uses | Netns | Duration | Message |"));
  EXPECT_THAT(md, HasSubstr("| **FAIL** | `vtep` | `vxlan.vtep` | host | 1.2 ms | dstport: "
                            "expected 4789, got 8472 |"));
  EXPECT_THAT(md, HasSubstr("```json\n{\n  \"dstport\": 8472,"));
  EXPECT_THAT(md, HasSubstr("- dstport: expected 4789, got 8472\n"));
  // Passing steps get no details section.
  EXPECT_THAT(md, Not(HasSubstr("`underlay` (ping)")));
}

TEST(TextReport, FindingsFirstThenTableThenVerdict) {
  std::string t = render(sample_report(), Format::kText, {});
  auto finding = t.find("FINDING (fail) vtep-port-mismatch: The VTEP uses UDP 8472 | not 4789\n");
  auto table = t.find("STATUS  STEP");
  ASSERT_NE(finding, std::string::npos) << t;
  ASSERT_NE(table, std::string::npos) << t;
  EXPECT_LT(finding, table);
  EXPECT_THAT(t, HasSubstr("  next: Set vtep_port to 8472\n"));
  EXPECT_THAT(t, HasSubstr("  see: https://example.org/silk\n"));
  EXPECT_THAT(t, HasSubstr("FAIL    vtep"));
  EXPECT_THAT(t, HasSubstr("        unmet: dstport: expected 4789, got 8472\n"));
  EXPECT_THAT(t, HasSubstr("        | link <silk-vtep> & \"dstport\" 'x'\n"));
  EXPECT_THAT(t, HasSubstr("        dstport: 8472\n"));  // facts of a failing step
  EXPECT_THAT(t, Not(HasSubstr("rtt_avg_ms")));          // but not of passing ones
  EXPECT_THAT(t, Not(HasSubstr("\033[")));
  EXPECT_THAT(t, HasSubstr("        | bell\\x01here\\x1b[0m\n"));
  std::string last = t.substr(t.rfind('\n', t.size() - 2) + 1);
  EXPECT_EQ(last,
            "netplay: FAIL - 1 passed, 1 failed, 1 warning, 1 skipped, 1 error, 1 finding in "
            "123 ms\n");
}

TEST(TextReport, ColorQuietVerbose) {
  auto r = sample_report();
  EXPECT_THAT(render(r, Format::kText, {.color = true}), HasSubstr("\033[1;31mFAIL\033[0m"));
  std::string q = render(r, Format::kText, {.quiet = true});
  EXPECT_THAT(q, Not(HasSubstr("STATUS")));
  EXPECT_THAT(q, HasSubstr("FINDING (fail) vtep-port-mismatch"));
  EXPECT_THAT(q, HasSubstr("netplay: FAIL - "));
  std::string v = render(r, Format::kText, {.verbose = true});
  EXPECT_THAT(v, HasSubstr("        rtt_avg_ms: 0.21\n"));
  r.interrupted = true;
  EXPECT_THAT(render(r, Format::kText, {}), HasSubstr("netplay: INTERRUPTED - "));
}

TEST(FindingSeverity, TextListsMostSevereFirstWithTheSeverity) {
  RunReport r = soft_findings_report();
  r.findings.push_back({.id = "vtep-down", .finding = "silk-vtep is down"});
  std::string t = render(r, Format::kText, {});
  auto fail = t.find("FINDING (fail) vtep-down: silk-vtep is down\n");
  auto warn = t.find("FINDING (warn) mtu-high: The MTU leaves no room for VXLAN\n"
                     "  next: Lower the MTU to 1450\n");
  auto info = t.find("FINDING (info) offload-on: Checksum offload is on (the default)\n");
  ASSERT_NE(fail, std::string::npos) << t;
  ASSERT_NE(warn, std::string::npos) << t;
  ASSERT_NE(info, std::string::npos) << t;
  EXPECT_LT(fail, warn);
  EXPECT_LT(warn, info);
  EXPECT_THAT(t, HasSubstr("netplay: FAIL - "));
  std::string colored = render(r, Format::kText, {.color = true});
  EXPECT_THAT(colored, HasSubstr("\033[1;31mFINDING (fail)\033[0m vtep-down"));
  EXPECT_THAT(colored, HasSubstr("\033[33mFINDING (warn)\033[0m mtu-high"));
}

TEST(FindingSeverity, AWarningIsShownAndTheRunWarns) {
  RunReport r = soft_findings_report();
  EXPECT_EQ(r.overall(), Status::kWarn);
  EXPECT_EQ(exit_code(r), 0);
  std::string t = render(r, Format::kText, {.quiet = true});
  EXPECT_THAT(t, HasSubstr("FINDING (warn) mtu-high"));
  EXPECT_THAT(t, HasSubstr("netplay: WARN - 1 passed, 0 failed, 0 warnings, 0 skipped, 0 errors, "
                           "2 findings in "));
  json j = json::parse(render(r, Format::kJson, {}));
  EXPECT_EQ(j["status"], "warn");
  EXPECT_EQ(j["exit_code"], 0);
  ASSERT_EQ(j["findings"].size(), 2u);
  EXPECT_EQ(j["findings"][0]["id"], "mtu-high");  // most severe first here too
  EXPECT_EQ(j["findings"][0]["severity"], "warn");
  EXPECT_EQ(j["findings"][1]["severity"], "info");
  std::string md = render(r, Format::kMarkdown, {});
  EXPECT_EQ(md.rfind("# netplay: soft - WARN\n", 0), 0u) << md;
  EXPECT_LT(md.find("- **mtu-high** (warn): The MTU"), md.find("- **offload-on** (info): "));
  // JUnit: only a failing finding is a failure; the others pass and say what they are.
  std::string x = render(r, Format::kJunit, {});
  EXPECT_THAT(x, HasSubstr("tests=\"3\" failures=\"0\" errors=\"0\" skipped=\"0\""));
  EXPECT_THAT(x, HasSubstr("name=\"mtu-high\" time=\"0.000\">\n      <system-out>warning: The MTU"));
  EXPECT_THAT(x, HasSubstr("name=\"offload-on\" time=\"0.000\">\n      <system-out>info: "));
  EXPECT_THAT(x, Not(HasSubstr("type=\"finding\"")));
}

TEST(AtomicWrite, ReplacesAndLeavesNoTempFile) {
  fs::path dir = fs::temp_directory_path() / ("np-atomic-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::path file = dir / "report.json";
  { std::ofstream(file) << "old content that is longer than the new one"; }
  ASSERT_TRUE(write_file_atomic(file.string(), "new").has_value());
  EXPECT_EQ(read(file), "new");
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++n;
    EXPECT_EQ(e.path().filename(), "report.json");
  }
  EXPECT_EQ(n, 1u);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);

  auto bad = write_file_atomic((dir / "missing" / "r.json").string(), "x");
  ASSERT_FALSE(bad.has_value());
  EXPECT_THAT(bad.error(), HasSubstr("missing/r.json"));
  // Renaming onto a directory fails and the temp file is removed.
  fs::create_directories(dir / "adir");
  EXPECT_FALSE(write_file_atomic((dir / "adir").string(), "x").has_value());
  n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  EXPECT_EQ(n, 2u);
  fs::remove_all(dir);
}

TEST(Progress, PlainLinePerFinishedStep) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  auto p = make_text_progress(f, false, false);
  StepResult def;
  def.id = "underlay";
  def.uses = "ping";
  def.netns = "host";
  p->on_start(def);
  p->on_tick();
  p->on_finish(sample_report().steps[0]);
  p.reset();
  EXPECT_EQ(drain(f), "[pass] underlay  0.4 ms  3/3 replies\n");
  std::fclose(f);
}

TEST(Progress, LiveRedrawsAndClears) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  auto p = make_text_progress(f, true, false);
  StepResult a, b;
  a.id = "underlay";
  a.uses = "ping";
  a.netns = "cell1";
  b.id = "vtep";
  b.uses = "vxlan.vtep";
  b.netns = "host";
  p->on_start(a);
  p->on_start(b);
  p->on_tick();
  p->on_finish(sample_report().steps[0]);
  p.reset();
  std::string out = drain(f);
  EXPECT_THAT(out, HasSubstr("underlay (ping @ cell1)"));
  EXPECT_THAT(out, HasSubstr("vtep (vxlan.vtep)"));
  EXPECT_THAT(out, HasSubstr("\r\033[1A\033[J"));  // two live lines erased
  EXPECT_THAT(out, HasSubstr("pass  underlay  0.4 ms  3/3 replies\n"));
  // Ends with the live area erased: nothing of it left after the last clear.
  EXPECT_EQ(out.substr(out.size() - 4), "\r\033[J");
  std::fclose(f);
}

}  // namespace
}  // namespace netplay
