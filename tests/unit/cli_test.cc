#include "runner/cli/cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "netplay_version.h"
#include "tests/unit/support/cli_run.h"

namespace netplay {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
namespace fs = std::filesystem;

using Outcome = CliOutcome;

/// Runs the CLI in-process with stdout/stderr captured.
Outcome cli(std::vector<std::string> args, const std::atomic<bool>* interrupt = nullptr,
            bool tty = false, bool no_color_env = false, bool err_tty = false) {
  return run_cli_captured(std::move(args), {.interrupt = interrupt,
                                            .out_tty = tty,
                                            .err_tty = err_tty,
                                            .no_color_env = no_color_env});
}

/// The single stderr line of a usage error.
void expect_usage_error(const Outcome& o, const std::string& needle) {
  EXPECT_EQ(o.rc, 2) << o.err;
  EXPECT_THAT(o.err, StartsWith("netplay: "));
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  EXPECT_THAT(o.err, HasSubstr(needle));
  EXPECT_EQ(o.out, "");
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("np-cli-unit-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name) << content;
    return (path_ / name).string();
  }
  std::string path(const std::string& name) const { return (path_ / name).string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

constexpr const char* kHostPlaybook = R"(apiVersion: netplay/v1
kind: Playbook
metadata: {name: host-sysctl}
steps:
  - id: ostype
    uses: sysctl
    with: {key: kernel.ostype}
    expect: {value: Linux}
)";

TEST(OutputTarget, Parse) {
  auto t = parse_output_target("json");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->format, Format::kJson);
  EXPECT_EQ(t->path, "");
  t = parse_output_target("junit=out/report.xml");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->format, Format::kJunit);
  EXPECT_EQ(t->path, "out/report.xml");
  t = parse_output_target("markdown=-");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->path, "");  // '-' is stdout
  EXPECT_FALSE(parse_output_target("json="));
  EXPECT_FALSE(parse_output_target("=x.json"));
  auto bad = parse_output_target("xml=r.xml");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error(), HasSubstr("unknown format 'xml'"));
}

TEST(Describe, EverySpecPartIsShown) {
  StepSpec s{
      .name = "demo.step",
      .summary = "One line",
      .description = "A paragraph.",
      .params = {{.name = "mode",
                  .type = ValueType::kString,
                  .doc = "How",
                  .default_value = "fast",
                  .choices = {"fast", "slow"}},
                 {.name = "hosts",
                  .type = ValueType::kList,
                  .doc = "Targets",
                  .required = true,
                  .item_type = ValueType::kIp}},
      .facts = {{"count", "int", "How many"}},
      .one_of = {{"hosts", "mode"}},
      .privileges = "CAP_NET_RAW for raw sockets",
      .changes_state = true,
      .supports_background = true,
      .example = "- id: x\n  uses: demo.step\n",
  };
  std::string d = describe_step(s);
  EXPECT_THAT(d, StartsWith("demo.step - One line\n\nA paragraph.\n"));
  EXPECT_THAT(d, HasSubstr("  mode (string, default: 'fast', one of: fast, slow)\n      How\n"));
  EXPECT_THAT(d, HasSubstr("  hosts (list of ip, required)\n      Targets\n"));
  EXPECT_THAT(d, HasSubstr("At least one of: hosts, mode"));
  EXPECT_THAT(d, HasSubstr("  count (int)\n      How many\n"));
  EXPECT_THAT(d, HasSubstr("Privileges: CAP_NET_RAW for raw sockets\n"));
  EXPECT_THAT(d, HasSubstr("Changes state: yes\n"));
  EXPECT_THAT(d, HasSubstr("Background: supported"));
  EXPECT_THAT(d, HasSubstr("Example:\n  - id: x\n    uses: demo.step\n"));
}

TEST(Cli, VersionHelpListDescribeSchema) {
  auto v = cli({"--version"});
  EXPECT_EQ(v.rc, 0);
  EXPECT_EQ(v.out, "netplay " NETPLAY_VERSION "\n");
  auto h = cli({"run", "--help"});
  EXPECT_EQ(h.rc, 0);
  EXPECT_THAT(h.out, HasSubstr("--output"));
  EXPECT_THAT(h.out, HasSubstr("Exit codes"));
  auto l = cli({"list"});
  EXPECT_EQ(l.rc, 0);
  EXPECT_THAT(l.out, HasSubstr("\nsysctl "));
  auto d = cli({"describe", "sysctl"});
  EXPECT_EQ(d.rc, 0);
  EXPECT_THAT(d.out, HasSubstr("key (string, required)"));
  expect_usage_error(cli({"describe", "sysctll"}), "did you mean 'sysctl'");
  auto s = cli({"schema"});
  EXPECT_EQ(s.rc, 0);
  json schema = json::parse(s.out);
  EXPECT_TRUE(schema.is_object());
}

/// The verbs come from one table: `netplay --help` lists each with its one-line summary in
/// the table's order, every verb has its own help, and a mistyped verb gets "did you mean"
/// and the list of verbs.
TEST(Cli, VerbsComeFromOneTable) {
  auto h = cli({"--help"});
  EXPECT_EQ(h.rc, 0);
  size_t at = h.out.find("\nCommands:\n");
  ASSERT_NE(at, std::string::npos) << h.out;
  const std::vector<std::pair<std::string, std::string>> verbs = {
      {"run", "Run a playbook and report the verdict"},
      {"validate", "Check playbooks; every error as file:line:col: message on stderr"},
      {"list", "List the built-in steps"},
      {"describe", "Show a step's params, facts and an example"},
      {"schema", "Print the playbook JSON Schema"},
      {"decode",
       "Decode a pcap/pcapng file: tcpdump-like lines, per-frame fields or VXLAN facts"}};
  for (const auto& [name, summary] : verbs) {
    size_t line = h.out.find("\n  " + name + " ", at);
    ASSERT_NE(line, std::string::npos) << name << " not listed:\n" << h.out;
    std::string row = h.out.substr(line + 1, h.out.find('\n', line + 1) - line - 1);
    EXPECT_THAT(row, EndsWith("  " + summary));
    at = line + 1;  // listed in the table's order
    auto sub = cli({name, "--help"});
    EXPECT_EQ(sub.rc, 0) << name;
    EXPECT_THAT(sub.out, HasSubstr("Usage: netplay " + name)) << name;
  }
  EXPECT_THAT(h.out, Not(HasSubstr("Subcommands:")));  // listed once, from the table
  expect_usage_error(cli({"shcema"}),
                     "unknown command 'shcema' (did you mean 'schema'?); commands: run, "
                     "validate, list, describe, schema, decode\n");
  expect_usage_error(cli({"frobnicate"}), "unknown command 'frobnicate'; commands: run, ");
  expect_usage_error(cli({}), "a command is required: run, validate, list, describe, schema or decode");
}

TEST(Cli, UsageErrorsAreOneLine) {
  TempDir dir;
  std::string pb = dir.file("pb.yaml", kHostPlaybook);
  expect_usage_error(cli({}), "a command is required");
  expect_usage_error(cli({"rnu"}), "unknown command 'rnu' (did you mean 'run'?)");
  expect_usage_error(cli({"run"}), "PLAYBOOK is required");
  expect_usage_error(cli({"run", pb, "--jobs", "x"}),
                     "--jobs: expected an integer from 1 to 64, got 'x'");
  expect_usage_error(cli({"run", pb, "--jobs", "65"}), "--jobs");
  expect_usage_error(cli({"run", pb, "--jobs", "2x"}), "got '2x'");
  expect_usage_error(cli({"run", pb, "--timeout", "soon"}), "--timeout: ");
  expect_usage_error(cli({"run", pb, "--output", "yaml"}), "--output: unknown format 'yaml'");
  expect_usage_error(cli({"run", pb, "--output", "json=" + dir.path("no/r.json")}),
                     "does not exist");
  expect_usage_error(cli({"run", pb, "--set", "novalue"}),
                     "--set: expected NAME=VALUE, got 'novalue'");
  expect_usage_error(cli({"run", pb, "--set", "x=1"}), "--set x=1: unknown input");
  expect_usage_error(cli({"run", pb, "--only", "nope"}), "--only: no step 'nope'");
  expect_usage_error(cli({"run", pb, "--frob"}), "unknown option '--frob'");
  expect_usage_error(cli({"run", dir.path("missing.yaml")}), "missing.yaml");
}

TEST(Cli, ValidateReportsEveryFile) {
  TempDir dir;
  std::string good = dir.file("good.yaml", kHostPlaybook);
  std::string bad =
      dir.file("bad.yaml",
               "apiVersion: netplay/v1\nkind: Playbook\nmetadata: {name: b}\nsteps:\n"
               "  - {id: a, uses: sysctll}\n  - {id: b, uses: sysctl, with: {kye: x}}\n");
  auto o = cli({"validate", good, bad});
  EXPECT_EQ(o.rc, 2);
  EXPECT_EQ(o.out, good + ": ok (1 step)\n");
  EXPECT_THAT(o.err, HasSubstr(bad + ":5:"));
  EXPECT_THAT(o.err, HasSubstr(bad + ":6:"));
  auto ok = cli({"validate", good});
  EXPECT_EQ(ok.rc, 0);
  EXPECT_EQ(ok.err, "");
}

TEST(Cli, RunWritesEveryReportAndExitCodeFollowsTheResult) {
  TempDir dir;
  std::string pb = dir.file("pb.yaml", kHostPlaybook);
  auto o = cli({"run", pb, "--output", "json=" + dir.path("r.json"), "--output",
                "junit=" + dir.path("r.xml"), "--output", "markdown=" + dir.path("r.md")});
  EXPECT_EQ(o.rc, 0) << o.err;
  // No report on stdout, so the text report is printed there; progress went to stderr.
  EXPECT_THAT(o.out, StartsWith("playbook host-sysctl\n"));
  EXPECT_THAT(o.out, HasSubstr("netplay: PASS - 1 passed"));
  EXPECT_THAT(o.err, StartsWith("[pass] ostype"));
  std::ifstream in(dir.path("r.json"));
  json j = json::parse(in);
  EXPECT_EQ(j["status"], "pass");
  EXPECT_EQ(j["steps"][0]["facts"]["value"], "Linux");
  EXPECT_TRUE(fs::exists(dir.path("r.xml")));
  EXPECT_TRUE(fs::exists(dir.path("r.md")));

  // json on stdout: nothing else there; -q has no effect on it.
  auto js = cli({"run", pb, "--output", "json", "-q"});
  EXPECT_EQ(js.rc, 0);
  EXPECT_EQ(json::parse(js.out)["summary"]["pass"], 1);

  std::string f = dir.file("f.yaml", R"(apiVersion: netplay/v1
kind: Playbook
metadata: {name: f}
steps:
  - {id: ostype, uses: sysctl, with: {key: kernel.ostype}, expect: {value: Plan9}}
)");
  auto fo = cli({"run", f, "-q"});
  EXPECT_EQ(fo.rc, 1);
  EXPECT_THAT(fo.out, StartsWith("netplay: FAIL - 0 passed, 1 failed"));
  std::string e = dir.file("e.yaml", R"(apiVersion: netplay/v1
kind: Playbook
metadata: {name: e}
steps:
  - {id: nokey, uses: sysctl, with: {key: kernel.no_such_key_at_all}}
)");
  EXPECT_EQ(cli({"run", e, "--output", "junit"}).rc, 3);
}

TEST(Cli, VerboseAndColor) {
  TempDir dir;
  std::string pb = dir.file("pb.yaml", kHostPlaybook);
  auto v = cli({"run", pb, "-v"});
  EXPECT_EQ(v.rc, 0);
  EXPECT_THAT(v.out, HasSubstr("        value: Linux\n"));  // facts of a passing step
  EXPECT_THAT(v.out, Not(HasSubstr("\033[")));              // not a terminal: no color
  auto tty = cli({"run", pb}, nullptr, /*tty=*/true);
  EXPECT_THAT(tty.out, HasSubstr("\033[32mpass\033[0m"));
  EXPECT_THAT(tty.out, HasSubstr("\r\033[J"));  // live progress erased before the report
  auto no_color = cli({"run", pb}, nullptr, /*tty=*/true, /*no_color_env=*/true);
  EXPECT_THAT(no_color.out, Not(HasSubstr("\033[3")));
  EXPECT_THAT(no_color.out, Not(HasSubstr("\033[2m")));
  auto flag = cli({"run", pb, "--no-color"}, nullptr, /*tty=*/true);
  EXPECT_THAT(flag.out, Not(HasSubstr("\033[32m")));
}

/// Redirected stdout holds exactly the report; progress lines go to stderr (live ones only
/// when stderr is a terminal), none with -q.
TEST(Cli, ProgressNeverMixesIntoARedirectedReport) {
  TempDir dir;
  std::string pb = dir.file("pb.yaml", kHostPlaybook);
  std::string copy = dir.path("copy.txt");
  auto o = cli({"run", pb, "--output", "text", "--output", "text=" + copy});
  EXPECT_EQ(o.rc, 0) << o.err;
  std::ifstream in(copy);
  std::stringstream file;
  file << in.rdbuf();
  EXPECT_EQ(o.out, file.str());  // the same report, nothing before or after it
  EXPECT_THAT(o.err, StartsWith("[pass] ostype  "));
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  EXPECT_THAT(o.err, Not(HasSubstr("\033[")));

  auto js = cli({"run", pb, "--output", "json"});
  EXPECT_EQ(json::parse(js.out)["summary"]["pass"], 1);
  EXPECT_THAT(js.err, StartsWith("[pass] ostype  "));

  auto live = cli({"run", pb}, nullptr, /*tty=*/false, /*no_color_env=*/false, /*err_tty=*/true);
  EXPECT_THAT(live.out, StartsWith("playbook host-sysctl\n"));
  EXPECT_THAT(live.err, HasSubstr("\r\033[J"));  // live lines, erased as the step finished
  EXPECT_THAT(live.out, Not(HasSubstr("\033[")));

  auto quiet = cli({"run", pb, "-q"}, nullptr, false, false, /*err_tty=*/true);
  EXPECT_EQ(quiet.err, "");
  EXPECT_THAT(quiet.out, StartsWith("netplay: PASS"));
}

TEST(Cli, InterruptedRunStillWritesReportsAndExits130) {
  TempDir dir;
  std::string pb = dir.file("pb.yaml", kHostPlaybook);
  std::atomic<bool> interrupted{true};
  auto o = cli({"run", pb, "--output", "json=" + dir.path("r.json"), "--no-color"}, &interrupted);
  EXPECT_EQ(o.rc, 130);
  std::ifstream in(dir.path("r.json"));
  json j = json::parse(in);
  EXPECT_EQ(j["interrupted"], true);
  EXPECT_THAT(o.out, HasSubstr("netplay: INTERRUPTED"));
  EXPECT_THAT(o.out, Not(HasSubstr("\033[")));
}

/// `netplay decode` refuses what it cannot read with one line naming the file or flag.
TEST(Cli, DecodeNamesTheFileOrFlagItCannotUse) {
  TempDir dir;
  std::string text = dir.file("notes.txt", "not a capture\n");
  expect_usage_error(cli({"decode", text}), text + ": unknown file format");
  expect_usage_error(cli({"decode", text + ".missing"}), text + ".missing");
  expect_usage_error(cli({"decode", text, "--format", "xml"}), "--format");
  expect_usage_error(cli({"decode", text, "--ports", "0"}), "--ports");
  expect_usage_error(cli({"decode", text, "--tags", "t.json"}),
                     "--tags and --store need --format json");
}

}  // namespace
}  // namespace netplay
