/// The checked-in schemas/playbook.schema.json must be what the registry generates.

#include "runner/load/schema.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "runner/step/step.h"

namespace netplay {
namespace {

const std::string kCheckedIn = std::filesystem::weakly_canonical(std::string(NETPLAY_TEST_DATA) +
                                                                 "/../schemas/playbook.schema.json")
                                   .string();

/// "line N: -old / +new" for the first line that differs, so the failure says what moved.
std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream x(a), y(b);
  std::string la, lb;
  for (int line = 1;; ++line) {
    bool ga = static_cast<bool>(std::getline(x, la)), gb = static_cast<bool>(std::getline(y, lb));
    if (!ga && !gb) return "no difference";
    if (la != lb || ga != gb)
      return "line " + std::to_string(line) + ":\n  checked in: " + (ga ? la : "<end>") +
             "\n  generated:  " + (gb ? lb : "<end>");
  }
}

/// What the shipped binary prints: this test executable also registers test-only steps.
std::string binary_schema() {
  std::string out;
  std::FILE* p = ::popen((std::string(NETPLAY_BIN) + " schema").c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

TEST(Schema, CheckedInFileIsCurrent) {
  const std::string generated = binary_schema();
  ASSERT_FALSE(generated.empty()) << NETPLAY_BIN << " schema printed nothing";
  std::ifstream in(kCheckedIn);
  std::stringstream current;
  if (in) current << in.rdbuf();
  if (current.str() == generated) return;
  if (const char* update = std::getenv("NETPLAY_UPDATE_GOLDEN"); update && *update == '1') {
    std::ofstream(kCheckedIn) << generated;
    GTEST_SKIP() << "rewrote " << kCheckedIn << "; rerun to check";
  }
  const auto fresh = std::filesystem::temp_directory_path() / "playbook.schema.json";
  std::ofstream(fresh) << generated;
  FAIL() << kCheckedIn << " is out of date with the step registry (steps were added or "
         << "changed); first difference at " << first_difference(current.str(), generated)
         << "\nRegenerate it with\n  netplay schema > schemas/playbook.schema.json\n"
         << "or\n  cp " << fresh.string() << " " << kCheckedIn << "\n"
         << "or\n  NETPLAY_UPDATE_GOLDEN=1 "
         << "schema_test";
}

TEST(Schema, GenerationIsDeterministic) {
  EXPECT_EQ(playbook_schema().dump(), playbook_schema().dump());
}

TEST(Schema, TopLevelShape) {
  json s = playbook_schema();
  EXPECT_EQ(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
  EXPECT_EQ(s["required"], json::parse(R"(["apiVersion", "kind", "metadata", "steps"])"));
  EXPECT_EQ(s["additionalProperties"], json(false));
  EXPECT_EQ(s["properties"]["apiVersion"]["const"], "netplay/v1");
  EXPECT_EQ(s["properties"]["steps"]["items"]["$ref"], "#/$defs/step");
  for (const char* key : {"metadata", "inputs", "env", "diagnosis", "kind"})
    EXPECT_TRUE(s["properties"].contains(key)) << key;
}

TEST(Schema, OneVariantPerRegisteredStep) {
  json s = playbook_schema();
  const auto names = Registry::instance().names();
  ASSERT_FALSE(names.empty());
  const json& variants = s["$defs"]["step"]["oneOf"];
  ASSERT_EQ(variants.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(variants[i]["$ref"], "#/$defs/step." + names[i]);
    const json& def = s["$defs"]["step." + names[i]];
    EXPECT_EQ(def["properties"]["uses"]["const"], names[i]);
    EXPECT_EQ(def["additionalProperties"], json(false));
    EXPECT_EQ(def["properties"]["with"]["additionalProperties"], json(false));
    const StepSpec& spec = Registry::instance().find(names[i])->spec();
    for (const auto& p : spec.params) {
      EXPECT_TRUE(def["properties"]["with"]["properties"].contains(p.name))
          << names[i] << "." << p.name;
      if (p.required) {
        const json& req = def["properties"]["with"]["required"];
        EXPECT_NE(std::find(req.begin(), req.end(), json(p.name)), req.end()) << p.name;
      }
    }
  }
}

TEST(Schema, SysctlDescribesItsParamsAndFacts) {
  json s = playbook_schema();
  const json& def = s["$defs"]["step.sysctl"];
  ASSERT_TRUE(def.is_object());
  EXPECT_EQ(def["required"], json::parse(R"(["id", "uses", "with"])"));
  const json& key = def["properties"]["with"]["properties"]["key"];
  EXPECT_EQ(key["type"], "string");
  EXPECT_FALSE(key["description"].get<std::string>().empty());
  const json& expect = def["properties"]["expect"];
  EXPECT_EQ(expect["propertyNames"]["pattern"], "^(key|value|int)(\\..+)?$");
  EXPECT_EQ(expect["properties"]["value"]["$ref"], "#/$defs/expectation");
  EXPECT_EQ(def["properties"]["background"], json::parse(R"({"const": false})"));
}

TEST(Schema, EveryRefResolves) {
  json s = playbook_schema();
  std::set<std::string> missing;
  std::function<void(const json&)> walk = [&](const json& j) {
    if (j.is_object()) {
      for (const auto& [k, v] : j.items()) {
        if (k == "$ref" && v.is_string()) {
          std::string ref = v.get<std::string>();
          if (ref.rfind("#/$defs/", 0) != 0 || !s["$defs"].contains(ref.substr(8)))
            missing.insert(ref);
        } else {
          walk(v);
        }
      }
    } else if (j.is_array()) {
      for (const auto& v : j) walk(v);
    }
  };
  walk(s);
  EXPECT_TRUE(missing.empty()) << ::testing::PrintToString(missing);
}

}  // namespace
}  // namespace netplay
