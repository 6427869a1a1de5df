/// sysctl: read a kernel parameter inside the step's network namespace.

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "runner/step.h"

namespace netplay {
namespace {

class SysctlStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "sysctl",
        .summary = "Read a kernel parameter (net.* keys are per network namespace)",
        .description =
            "Reads KEY (dotted, as `sysctl` prints it, e.g. net.ipv4.ip_forward) from "
            "/proc/sys as seen from the step's network namespace. A key that does not exist "
            "is an error, never an empty value.",
        .params = {{.name = "key", .type = ValueType::kString,
                    .doc = "Dotted key, e.g. net.ipv4.ip_forward or net.ipv4.conf.eth0.rp_filter",
                    .required = true}},
        .facts = {{"key", "string", "The key read"},
                  {"value", "string", "The value, whitespace-trimmed (numbers stay strings: "
                                      "compare with eq: '1')"},
                  {"int", "int", "The value as an integer, when it is one"}},
        .example = "- id: forwarding\n  uses: sysctl\n  with: {key: net.ipv4.ip_forward}\n"
                   "  expect: {value: '1'}\n",
    };
    return s;
  }

  StepOutput run(StepContext&, const Params& p) const override {
    std::string key = p.str("key");
    if (key.empty() || key.find("..") != std::string::npos || key.find('/') != std::string::npos)
      return StepOutput::error(fmt::format("invalid sysctl key '{}'", key));
    std::string rel = key;
    for (char& c : rel)
      if (c == '.') c = '/';
    // /proc/sys/net/* is resolved against the namespace of the task (thread) that opens
    // it, so this reads the namespace the worker thread entered.
    std::string path = "/proc/sys/" + rel;
    std::ifstream in(path);
    if (!in) {
      return StepOutput::error(
          fmt::format("cannot read sysctl {} ({}): {}", key, path, std::strerror(errno)));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::string v = ss.str();
    while (!v.empty() && (v.back() == '\n' || v.back() == ' ' || v.back() == '\t')) v.pop_back();
    StepOutput out;
    out.facts["key"] = key;
    out.facts["value"] = v;
    try {
      size_t used = 0;
      long long n = std::stoll(v, &used);
      if (used == v.size()) out.facts["int"] = n;
    } catch (...) {
    }
    out.message = fmt::format("{} = {}", key, v);
    return out;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(SysctlStep);
}  // namespace netplay
