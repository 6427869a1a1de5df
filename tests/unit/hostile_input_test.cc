/// Hostile and careless input: what a stranger's playbook, a typo or a script can hand
/// netplay (which often runs as root). Every case must end in one clear line naming the file
/// (with line and column) or the flag, never a crash, a hang or unbounded memory.

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/support/cli_run.h"
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "runner/base/core.h"
#include "runner/base/read_file.h"
#include "runner/base/types.h"
#include "runner/base/yaml.h"
#include "runner/cli/cli.h"
#include "runner/load/loader.h"
#include "runner/lua/expr.h"
#include "runner/report/reporters.h"
#include "runner/step/netns.h"
#include "runner/step/params.h"

namespace netplay {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
namespace fs = std::filesystem;

class Tmp {
 public:
  Tmp() {
    dir_ = fs::temp_directory_path() /
           fmt::format("np-hostile-{}-{}", ::getpid(), counter_++);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~Tmp() { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string file(const std::string& name, const std::string& content) const {
    fs::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name, std::ios::binary) << content;
    return path(name);
  }

 private:
  static inline int counter_ = 0;
  fs::path dir_;
};

using Outcome = CliOutcome;

Outcome cli(std::vector<std::string> args) { return run_cli_captured(std::move(args)); }

/// Exit 2 and exactly one line on stderr holding `needle`; nothing ran, nothing on stdout.
void expect_one_line(const Outcome& o, const std::string& needle) {
  EXPECT_EQ(o.rc, 2) << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  EXPECT_THAT(o.err, HasSubstr(needle));
  EXPECT_EQ(o.out, "");
}

std::vector<std::string> errors(const std::string& text) {
  auto pb = load_playbook_text(text, "pb.yaml");
  std::vector<std::string> out;
  if (!pb)
    for (const auto& d : pb.error()) out.push_back(d.str());
  return out;
}

constexpr const char* kHeader =
    "apiVersion: netplay/v1\nkind: Playbook\nmetadata: {name: t}\n";

constexpr const char* kSysctl = R"(apiVersion: netplay/v1
kind: Playbook
metadata: {name: host-sysctl}
inputs:
  cell: {type: netns, default: host}
steps:
  - id: ostype
    uses: sysctl
    netns: "{{ inputs.cell }}"
    with: {key: kernel.ostype}
)";

// --- 1. output paths --------------------------------------------------------------------

TEST(HostileOutput, ReportPathsAreJudgedBeforeTheRun) {
  Tmp t;
  auto d = check_report_path(t.path("new.json"));
  ASSERT_TRUE(d) << d.error();
  EXPECT_EQ(d->kind, ReportDestination::Kind::kReplace);
  d = check_report_path("/dev/null");
  ASSERT_TRUE(d) << d.error();
  EXPECT_EQ(d->kind, ReportDestination::Kind::kStream);

  fs::create_directories(t.path("adir"));
  EXPECT_EQ(check_report_path(t.path("adir")).error(), "is a directory");
  EXPECT_THAT(check_report_path("/proc/version").error(), HasSubstr("kernel filesystem (procfs)"));
  EXPECT_THAT(check_report_path("/sys/kernel/notes").error(), HasSubstr("sysfs"));
  EXPECT_THAT(check_report_path(t.path("no/such/dir.json")).error(), HasSubstr("does not exist"));

  // A symlink to a regular file: the file is replaced where it is, the link stays a link.
  std::string target = t.file("real.json", "old");
  fs::create_symlink(target, t.path("link.json"));
  d = check_report_path(t.path("link.json"));
  ASSERT_TRUE(d) << d.error();
  EXPECT_EQ(d->kind, ReportDestination::Kind::kReplace);
  EXPECT_EQ(d->path, fs::canonical(target).string());
  ASSERT_TRUE(write_report_file(t.path("link.json"), "new"));
  EXPECT_TRUE(fs::is_symlink(t.path("link.json")));
  std::ifstream in(target);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "new");

  fs::create_symlink(t.path("nowhere"), t.path("dangling.json"));
  EXPECT_EQ(check_report_path(t.path("dangling.json")).error(), "is a dangling symlink");

  // A socket, a block device, a character device that is not /dev/null or a terminal.
  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string sock = t.path("s.sock");
  ASSERT_LT(sock.size(), sizeof addr.sun_path);
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_THAT(check_report_path(sock).error(), StartsWith("is a socket"));
  ::close(s);
  ASSERT_EQ(::mknod(t.path("blk").c_str(), S_IFBLK | 0600, makedev(7, 0)), 0);
  EXPECT_THAT(check_report_path(t.path("blk")).error(), StartsWith("is a block device"));
  ASSERT_EQ(::mknod(t.path("mem").c_str(), S_IFCHR | 0600, makedev(1, 1)), 0);
  EXPECT_THAT(check_report_path(t.path("mem")).error(),
              HasSubstr("character device other than /dev/null or a terminal"));
}

TEST(HostileOutput, DevNullStaysADevice) {
  ASSERT_TRUE(write_report_file("/dev/null", "{}\n"));
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST(HostileOutput, FifoWithoutReaderIsAnErrorNotAHang) {
  Tmp t;
  std::string fifo = t.path("f");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto w = write_report_file(fifo, "{}\n", Millis(100));
  ASSERT_FALSE(w);
  EXPECT_THAT(w.error(), HasSubstr("no reader"));
  struct stat st {};
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));

  std::string got;
  std::thread reader([&] {
    std::ifstream in(fifo);
    got.assign(std::istreambuf_iterator<char>(in), {});
  });
  ASSERT_TRUE(write_report_file(fifo, "{\"status\": \"pass\"}\n"));
  reader.join();
  EXPECT_EQ(got, "{\"status\": \"pass\"}\n");
}

TEST(HostileOutput, ProcFileIsRefusedBeforeAnyStepRuns) {
  Tmp t;
  std::string pb = t.file("pb.yaml", kSysctl);
  auto o = cli({"run", pb, "--output", "json=/proc/version"});
  expect_one_line(o, "--output json=/proc/version: '/proc/version' is in a kernel filesystem");
  expect_one_line(cli({"run", pb, "--output", "json=" + t.path("")}), "is a directory");
}

// --- 2. input limits --------------------------------------------------------------------

TEST(HostileInput, EmptyNetnsInputIsAnError) {
  EXPECT_THAT(coerce(ValueType::kNetns, "").error(), StartsWith("empty namespace name"));
  Tmp t;
  auto pb = load_playbook(t.file("pb.yaml", kSysctl));
  ASSERT_TRUE(pb);
  auto in = resolve_inputs(*pb, {}, {"cell="});
  ASSERT_FALSE(in);
  EXPECT_EQ(in.error()[0].str(),
            "--set cell=: empty namespace name (write host for the host's namespace)");
  in = resolve_inputs(*pb, {t.file("vars.yaml", "cell: ''\n")}, {});
  ASSERT_FALSE(in);
  EXPECT_EQ(in.error()[0].str(), t.path("vars.yaml") +
                                     ":1:7: cell: empty namespace name (write host for the "
                                     "host's namespace)");
  EXPECT_THAT(errors(std::string(kHeader) + "steps:\n  - {id: a, uses: sysctl, netns: '', "
                                            "with: {key: kernel.ostype}}\n"),
              testing::ElementsAre(HasSubstr("pb.yaml:5:34: netns: empty namespace name")));
}

TEST(HostileInput, PidReferencesMustBeProcessIds) {
  for (const char* bad : {"pid:-1", "pid:0", "pid:", "pid:abc", "pid:+5", "pid:007",
                          "pid:99999999999999999999", "pid:2147483648"}) {
    auto c = coerce(ValueType::kNetns, bad);
    ASSERT_FALSE(c) << bad;
    EXPECT_EQ(c.error(),
              fmt::format("pid:N needs a process id from 1 to 2147483647, got '{}'", bad));
    EXPECT_FALSE(netns_path(bad)) << bad;
  }
  EXPECT_TRUE(coerce(ValueType::kNetns, "pid:1"));
  EXPECT_TRUE(coerce(ValueType::kNetns, "pid:2147483647"));
  EXPECT_EQ(errors(std::string(kHeader) +
                   "steps:\n  - {id: a, uses: sysctl, netns: 'pid:-1', with: {key: x}}\n"),
            std::vector<std::string>{"pb.yaml:5:34: netns: pid:N needs a process id from 1 to "
                                     "2147483647, got 'pid:-1'"});
  EXPECT_EQ(errors(std::string(kHeader) +
                   "steps:\n  - {id: a, uses: netns.inode, with: {pids: [-1], paths: [pid:0]}}\n"),
            (std::vector<std::string>{
                // Neither is valid, so neither counts as given.
                "pb.yaml:5:38: with: one of pids, paths is required by 'netns.inode'",
                "pb.yaml:5:45: with.pids.0: expected an integer from 1 to 2147483647, got -1",
                "pb.yaml:5:58: with.paths.0: pid:N needs a process id from 1 to 2147483647, got "
                "'pid:0'"}));
}

TEST(HostileInput, DurationsHaveAMaximum) {
  auto d = parse_duration("2562047h");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error(), "duration '2562047h' is too long: at most 168h (7 days)");
  EXPECT_TRUE(parse_duration("168h"));
  EXPECT_FALSE(parse_duration("168.001h"));
  EXPECT_FALSE(parse_duration("1e300s"));
  EXPECT_FALSE(coerce(ValueType::kDuration, json(1e12)));  // a bare number: seconds
  EXPECT_TRUE(coerce(ValueType::kDuration, json(604800)));
  EXPECT_EQ(errors(std::string(kHeader) +
                   "steps:\n  - {id: a, uses: sysctl, timeout: 9999999h, with: {key: x}}\n"),
            std::vector<std::string>{
                "pb.yaml:5:36: timeout: duration '9999999h' is too long: at most 168h (7 days)"});
  Tmp t;
  std::string pb = t.file("pb.yaml", kSysctl);
  expect_one_line(cli({"run", pb, "--timeout", "2562047h"}),
                  "--timeout: duration '2562047h' is too long: at most 168h (7 days)");
}

TEST(HostileInput, FilesAreReadWithALimit) {
  Tmp t;
  fs::create_directories(t.path("dir"));
  EXPECT_EQ(read_file_bounded(t.path("dir"), {}).error(), "is a directory");
  EXPECT_EQ(read_file_bounded("/dev/zero", {}).error(),
            "is a character device, not a regular file");
  EXPECT_EQ(read_file_bounded("/dev/zero", {.max_bytes = 1000, .allow_stream = true}).error(),
            "is larger than the 1000 bytes limit");
  std::string big = t.file("big.yaml", std::string(kMaxPlaybookBytes + 1, '#'));
  EXPECT_EQ(read_file_bounded(big, {}).error(), "is larger than the 4 MiB limit");
  EXPECT_EQ(*read_file_bounded(t.file("ok", "abc"), {.max_bytes = 3}), "abc");

  // Playbooks: `netplay validate /dev/zero` used to grow past 2 GB.
  auto v = cli({"validate", "/dev/zero"});
  EXPECT_EQ(v.rc, 2);
  EXPECT_EQ(v.err, "/dev/zero: cannot read: is a character device, not a regular file\n");
  v = cli({"validate", big});
  EXPECT_EQ(v.err, big + ": cannot read: is larger than the 4 MiB limit\n");

  // --vars: a stream is fine, within the limit.
  auto pb = load_playbook(t.file("pb.yaml", kSysctl));
  ASSERT_TRUE(pb);
  auto in = resolve_inputs(*pb, {"/dev/zero"}, {});
  ASSERT_FALSE(in);
  EXPECT_EQ(in.error()[0].str(), "/dev/zero: cannot read: is larger than the 4 MiB limit");
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "cell: host\n", 11), 11);
  ::close(fds[1]);
  in = resolve_inputs(*pb, {fmt::format("/proc/self/fd/{}", fds[0])}, {});
  ::close(fds[0]);
  ASSERT_TRUE(in) << in.error()[0].str();
  EXPECT_EQ((*in)["cell"], "host");
}

TEST(HostileInput, LuaFilesAreReadWithALimit) {
  Tmp t;
  // A module: at most 1 MiB.
  t.file("lib/big.lua", "return {}\n" + std::string(kMaxLuaBytes, '-'));
  t.file("lib/small.lua", "return {ok = true}\n");
  ::setenv("NETPLAY_LUA_PATH", t.path("lib").c_str(), 1);
  ExprEngine e;
  ::unsetenv("NETPLAY_LUA_PATH");
  auto big = e.compile_expr("require('big')");
  ASSERT_TRUE(big);
  auto v = e.eval(*big);
  ASSERT_FALSE(v);
  EXPECT_THAT(v.error().message, HasSubstr("is larger than the 1 MiB limit"));
  auto small = e.compile_expr("require('small').ok");
  ASSERT_TRUE(small);
  EXPECT_EQ(*e.eval(*small), json(true));
  // A hook file: the same limit.
  t.file("big-hook.lua", std::string(kMaxLuaBytes + 1, '-'));
  std::string pb = t.file("pb.yaml", std::string(kHeader) +
                                         "steps:\n  - id: a\n    uses: sysctl\n    with: "
                                         "{key: kernel.ostype}\n    hooks: {after: big-hook.lua}\n");
  auto r = load_playbook(pb);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error()[0].str(), pb + ":8:20: hooks.after: cannot read Lua file '" +
                                    t.path("big-hook.lua") +
                                    "': is larger than the 1 MiB limit");
}

TEST(HostileInput, MaxOutputIsBoundedAtLoadTime) {
  const std::string step = "steps:\n  - id: a\n    uses: exec\n    with: {argv: [true], max_output: ";
  EXPECT_EQ(errors(std::string(kHeader) + step + "-1}\n"),
            std::vector<std::string>{
                "pb.yaml:7:38: with.max_output: expected an integer from 0 to 16777216, got -1"});
  EXPECT_EQ(errors(std::string(kHeader) + step + "100000000000}\n"),
            std::vector<std::string>{"pb.yaml:7:38: with.max_output: expected an integer from 0 "
                                     "to 16777216, got 100000000000"});
  EXPECT_TRUE(errors(std::string(kHeader) + step + "0}\n").empty());
  auto d = cli({"describe", "exec"});
  EXPECT_THAT(d.out, HasSubstr("max_output (int, default: 1048576, an integer from 0 to "
                               "16777216)"));
}

// --- 3. messages ------------------------------------------------------------------------

TEST(HostileMessages, DirectoryAsPlaybookOrVars) {
  Tmp t;
  fs::create_directories(t.path("d"));
  auto v = cli({"validate", t.path("d")});
  EXPECT_EQ(v.err, t.path("d") + ": cannot read: is a directory\n");
  expect_one_line(cli({"run", t.path("d")}), t.path("d") + ": cannot read: is a directory");
  std::string pb = t.file("pb.yaml", kSysctl);
  auto r = cli({"run", pb, "--vars", t.path("d")});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, t.path("d") + ": cannot read: is a directory\n");
}

TEST(HostileMessages, DeepNestingSaysSoWithAPosition) {
  std::string deep = std::string(kHeader) + "steps: []\nx: " + std::string(100, '[') +
                     std::string(100, ']') + "\n";
  EXPECT_EQ(errors(deep), std::vector<std::string>{"pb.yaml:5:68: nesting deeper than 64 levels"});
  // Deep enough for yaml-cpp's own guard (it used to say "bad file").
  std::string deeper = std::string(kHeader) + "x: " + std::string(5000, '[') + "\n";
  auto e = errors(deeper);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_THAT(e[0],
              testing::MatchesRegex("pb\\.yaml:[0-9]+:[0-9]+: nesting deeper than 64 levels"));
  // Block nesting, too.
  std::string block = std::string(kHeader) + "x:\n";
  for (int i = 1; i <= 70; ++i) block += std::string(static_cast<size_t>(i), ' ') + "- \n";
  e = errors(block);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_THAT(e[0], HasSubstr("nesting deeper than 64 levels"));
}

TEST(HostileMessages, TabInIndentationIsNamed) {
  EXPECT_EQ(errors(std::string(kHeader) + "steps:\n  - id: a\n\tuses: sysctl\n"),
            std::vector<std::string>{
                "pb.yaml:6:1: tab character in indentation (YAML allows only spaces)"});
  EXPECT_EQ(errors(std::string(kHeader) + "steps:\n  - id: a\n    uses: sysctl\n  \twith: {}\n"),
            std::vector<std::string>{
                "pb.yaml:7:3: tab character in indentation (YAML allows only spaces)"});
}

TEST(HostileMessages, UserTextIsEscapedInMessages) {
  EXPECT_EQ(printable("a\nb\x1b[31mc\xff\t\x7f"), "a\\nb\\x1b[31mc\\xff\\t\\x7f");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x80\xae"), "caf\xc3\xa9 \\u{202e}");
  EXPECT_EQ(printable(printable("x\n\xff")), printable("x\n\xff"));
  auto e = errors(std::string(kHeader) + "st\x1b[2Jeps\xfe: []\n");
  ASSERT_FALSE(e.empty());
  for (const auto& m : e) {
    EXPECT_EQ(m.find('\x1b'), std::string::npos) << m;
    EXPECT_EQ(m.find('\xfe'), std::string::npos) << m;
  }
  EXPECT_THAT(e, testing::Contains("pb.yaml:4:1: unknown key 'st\\x1b[2Jeps\\xfe'"));
  // Usage lines, too.
  Tmp t;
  auto o = cli({"run", t.file("pb.yaml", kSysctl), "--set", "ce\nll=x"});
  expect_one_line(o, "--set ce\\nll=x: unknown input");
  o = cli({"describe", "s\x1b]0;pwned\x07"});
  expect_one_line(o, "unknown step 's\\x1b]0;pwned\\x07'");
}

TEST(HostileMessages, HookFilesStayUnderThePlaybooksDirectory) {
  Tmp t;
  t.file("outside/secret.lua", "return 1\n");
  t.file("pbs/lua/ok.lua", "return true\n");
  fs::create_symlink(t.path("outside/secret.lua"), t.path("pbs/lua/link.lua"));
  auto load = [&](const std::string& hook) {
    std::string pb = t.file("pbs/pb.yaml", std::string(kHeader) +
                                               "steps:\n  - id: a\n    uses: sysctl\n    "
                                               "with: {key: kernel.ostype}\n    hooks: {after: " +
                                               hook + "}\n");
    auto r = load_playbook(pb);
    std::vector<std::string> out;
    if (!r)
      for (const auto& d : r.error()) out.push_back(d.str());
    return out;
  };
  const std::string at = t.path("pbs/pb.yaml") + ":8:20: hooks.after: ";
  const std::string rule = "a Lua file must be a relative path under the playbook's directory";
  EXPECT_TRUE(load("lua/ok.lua").empty());
  EXPECT_EQ(load(t.path("outside/secret.lua")),
            std::vector<std::string>{at + "'" + t.path("outside/secret.lua") + "': " + rule});
  EXPECT_EQ(load("../outside/secret.lua"),
            std::vector<std::string>{at + "'../outside/secret.lua': " + rule + " (no '..')"});
  EXPECT_EQ(load("lua/../../outside/secret.lua"),
            std::vector<std::string>{at + "'lua/../../outside/secret.lua': " + rule +
                                     " (no '..')"});
  EXPECT_EQ(load("lua/link.lua"),
            std::vector<std::string>{at + "'lua/link.lua' leads to '" +
                                     fs::canonical(t.path("outside/secret.lua")).string() +
                                     "' (a symlink?): " + rule});
  auto e = load("../../etc/passwd");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_THAT(e[0], HasSubstr("is neither Lua nor the name of a Lua file"));
}

TEST(HostileMessages, LuaFileSyntaxErrorDoesNotQuoteTheFile) {
  Tmp t;
  t.file("leak.lua", "local x = 1\nroot:x:0:0:SECRET-TOKEN-1234\n");
  t.file("str.lua", "x = \"SECRET-TOKEN-5678\n");
  for (const char* f : {"leak.lua", "str.lua"}) {
    std::string pb = t.file("pb.yaml", std::string(kHeader) +
                                            "steps:\n  - id: a\n    uses: sysctl\n    with: "
                                            "{key: kernel.ostype}\n    hooks: {before: " +
                                            f + "}\n");
    auto r = load_playbook(pb);
    ASSERT_FALSE(r) << f;
    ASSERT_EQ(r.error().size(), 1u);
    std::string m = r.error()[0].str();
    EXPECT_THAT(m, Not(HasSubstr("SECRET"))) << m;
    EXPECT_THAT(m, StartsWith(pb + ":8:21: hooks.before: " + f + ":")) << m;
    EXPECT_THAT(m, HasSubstr("(Lua syntax error)")) << m;
  }
}

}  // namespace
}  // namespace netplay
