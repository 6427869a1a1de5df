#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "runner/step/step.h"

namespace netplay {
namespace {

namespace fs = std::filesystem;

class FileStepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/netplay-file-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text, mode_t mode = 0644) {
    std::string p = (dir_ / name).string();
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }

  static StepOutput run(json params) {
    const Step* step = Registry::instance().find("file");
    EXPECT_NE(step, nullptr);
    if (!step) return StepOutput::error("file step not registered");
    StepContext ctx;
    return step->run(ctx, Params(std::move(params)));
  }

  fs::path dir_;
};

/// The shape of a Cloud Foundry cell's container metadata store.
constexpr const char* kStore = R"({
  "9b1a7e2c-5d3f-4c1e-8a2b-1f0e9d8c7b6a": {
    "handle": "9b1a7e2c-5d3f-4c1e-8a2b-1f0e9d8c7b6a",
    "ip": "10.255.9.3",
    "metadata": {"app_id": "2f6c1b4e-aaaa-bbbb-cccc-0123456789ab", "space_id": "s-1",
                 "org_id": "o-1", "policy_group_id": "0003", "ports": "8080"}
  },
  "10.255.9.4": {"ip": "10.255.9.4", "metadata": {"app_id": "other"}}
})";

TEST_F(FileStepTest, TextFile) {
  auto p = write("notes.txt", "alpha\nbeta\ngamma\n", 0640);
  auto o = run({{"path", p}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["exists"], true);
  EXPECT_EQ(o.facts["type"], "file");
  EXPECT_EQ(o.facts["size"], 17);
  EXPECT_EQ(o.facts["mode"], "0640");
  EXPECT_EQ(o.facts["contents"], "alpha\nbeta\ngamma\n");
  EXPECT_EQ(o.facts["lines"], 3);
  EXPECT_FALSE(o.facts.contains("json"));
  EXPECT_FALSE(o.facts.contains("found"));
  EXPECT_TRUE(std::regex_match(o.facts["mtime"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << o.facts["mtime"];
}

TEST_F(FileStepTest, MissingFileIsNotAnError) {
  auto o = run({{"path", (dir_ / "nope.json").string()}, {"json_path", "a.b"}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["exists"], false);
  EXPECT_EQ(o.facts["found"], false);
  EXPECT_FALSE(o.facts.contains("contents"));
  // A path through a regular file is just as absent.
  auto p = write("plain", "x");
  o = run({{"path", p + "/child"}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["exists"], false);
}

TEST_F(FileStepTest, JsonPathIntoStore) {
  auto p = write("store.json", kStore);
  auto o =
      run({{"path", p}, {"json_path", "9b1a7e2c-5d3f-4c1e-8a2b-1f0e9d8c7b6a.metadata.app_id"}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["found"], true);
  EXPECT_EQ(o.facts["value"], "2f6c1b4e-aaaa-bbbb-cccc-0123456789ab");
  EXPECT_EQ(o.facts["json"]["10.255.9.4"]["metadata"]["app_id"], "other");

  // Keys holding dots need a JSON pointer.
  o = run({{"path", p}, {"json_path", "/10.255.9.4/metadata/app_id"}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["value"], "other");

  // A whole object can be the value.
  o = run({{"path", p}, {"json_path", "/9b1a7e2c-5d3f-4c1e-8a2b-1f0e9d8c7b6a/metadata"}});
  EXPECT_EQ(o.facts["value"]["policy_group_id"], "0003");
}

TEST_F(FileStepTest, JsonPathNotFound) {
  auto p = write("store.json", kStore);
  for (const char* path : {"no-such-handle.ip", "/no-such-handle/ip", "/10.255.9.4/metadata/x"}) {
    auto o = run({{"path", p}, {"json_path", path}});
    EXPECT_EQ(o.status, Status::kPass) << path << ": " << o.message;
    EXPECT_EQ(o.facts["found"], false) << path;
    EXPECT_FALSE(o.facts.contains("value")) << path;
  }
}

TEST_F(FileStepTest, ArrayIndexInDottedPath) {
  auto p = write("tags.json",
                 R"({"tags": [{"id": "app-a", "tag": "0001"}, {"id": "app-b", "tag": "0002"}]})");
  auto o = run({{"path", p}, {"json_path", "tags.1.id"}});
  EXPECT_EQ(o.facts["value"], "app-b");
  o = run({{"path", p}, {"json_path", "/tags/0/tag"}});
  EXPECT_EQ(o.facts["value"], "0001");
}

TEST_F(FileStepTest, BrokenJsonIsAnError) {
  auto p = write("store.json", "{\"a\": 1,\n \"b\": }");
  auto o = run({{"path", p}});
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_NE(o.message.find("is not JSON"), std::string::npos) << o.message;
  EXPECT_NE(o.message.find("line 2"), std::string::npos) << o.message;
}

TEST_F(FileStepTest, AutoDetectsJsonWithoutExtension) {
  auto p = write("state", R"([1, 2, 3])");
  auto o = run({{"path", p}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["json"].size(), 3u);
  // Text that only starts like JSON stays text.
  p = write("log", "[INFO] started\n");
  o = run({{"path", p}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_FALSE(o.facts.contains("json"));
  // format: text never parses.
  p = write("x.json", "{}");
  o = run({{"path", p}, {"format", "text"}});
  EXPECT_FALSE(o.facts.contains("json"));
}

TEST_F(FileStepTest, YamlFile) {
  auto p = write("cni.yaml", "plugins:\n  - type: silk\n    mtu: 1450\n    gbp: true\n");
  auto o = run({{"path", p}, {"yaml_path", "plugins.0.mtu"}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["value"], 1450);  // core schema: an integer, not "1450"
  EXPECT_EQ(o.facts["yaml"]["plugins"][0]["gbp"], true);
  o = run({{"path", p}, {"yaml_path", "/plugins/0/type"}});
  EXPECT_EQ(o.facts["value"], "silk");
}

TEST_F(FileStepTest, BrokenYamlIsAnError) {
  auto p = write("bad.yml", "a: [1, 2\nb: c\n");
  auto o = run({{"path", p}});
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_NE(o.message.find("is not YAML: line"), std::string::npos) << o.message;
}

/// The loader's guard against alias bombs applies to files read by the step as well: a
/// recursive alias used to overflow the stack (signal 11, no report at all).
TEST_F(FileStepTest, RecursiveOrExplodingAliasesAreAnError) {
  auto p = write("loop.yaml", "a: &x [*x]\n");
  auto o = run({{"path", p}});
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, p + " cannot be read as YAML: the document nests deeper than 64 levels "
                           "(a recursive alias?)");
  EXPECT_FALSE(o.facts.contains("yaml"));
  o = run({{"path", p}, {"yaml_path", "a.0"}});
  EXPECT_EQ(o.status, Status::kError) << o.message;

  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'f'; ++c) {  // 10^6 values
    std::string prev(1, static_cast<char>(c - 1));
    bomb += fmt::format("{0}: &{0} [*{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}]\n",
                        std::string(1, c), prev);
  }
  p = write("bomb.yaml", bomb);
  o = run({{"path", p}});
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_NE(o.message.find("expands to more than"), std::string::npos) << o.message;
}

TEST_F(FileStepTest, PathParamMismatchIsAnError) {
  auto p = write("a.json", "{}");
  auto o = run({{"path", p}, {"json_path", "a"}, {"format", "yaml"}});
  EXPECT_EQ(o.status, Status::kError);
}

TEST_F(FileStepTest, Directory) {
  auto o = run({{"path", dir_.string()}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["type"], "dir");
  EXPECT_EQ(o.facts["mode"], "0700");  // mkdtemp
  EXPECT_FALSE(o.facts.contains("contents"));
}

TEST_F(FileStepTest, Symlinks) {
  auto target = write("real.txt", "hi\n");
  fs::create_symlink(target, dir_ / "link");
  auto o = run({{"path", (dir_ / "link").string()}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["type"], "symlink");
  EXPECT_EQ(o.facts["target"], target);
  EXPECT_EQ(o.facts["contents"], "hi\n");

  fs::create_symlink(dir_ / "gone", dir_ / "dangling");
  o = run({{"path", (dir_ / "dangling").string()}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["exists"], true);
  EXPECT_EQ(o.facts["type"], "symlink");
  EXPECT_FALSE(o.facts.contains("contents"));
}

TEST_F(FileStepTest, MaxBytes) {
  auto p = write("big.txt", std::string(100, 'x'));
  auto o = run({{"path", p}, {"max_bytes", 10}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["size"], 100);
  EXPECT_FALSE(o.facts.contains("contents"));  // never a silent prefix
  auto j = write("big.json", R"({"k": ")" + std::string(100, 'x') + R"("})");
  o = run({{"path", j}, {"json_path", "k"}, {"max_bytes", 10}});
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_NE(o.message.find("max_bytes"), std::string::npos) << o.message;
}

TEST_F(FileStepTest, ProcFilesAreReadDespiteZeroSize) {
  // /proc files report size 0; reading must not trust st_size.
  auto o = run({{"path", "/proc/self/status"}, {"format", "text"}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_NE(o.facts["contents"].get<std::string>().find("Pid:"), std::string::npos);
}

}  // namespace
}  // namespace netplay
