/// sysctl: read a kernel parameter inside the step's network namespace.

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "runner/step/step.h"

namespace netplay {
namespace {

/// The /proc/sys path of a key the way sysctl(8) reads it: dotted
/// (`net.ipv4.conf.eth0/100.rp_filter`, where '/' stands for a '.' inside a name such as the
/// VLAN interface eth0.100) or slashed (`net/ipv4/conf/eth0.100/rp_filter`, used as is when
/// its first separator is '/').
std::expected<std::string, std::string> key_path(const std::string& key) {
  if (key.empty()) return std::unexpected("empty sysctl key");
  size_t sep = key.find_first_of("./");
  std::string rel = key;
  if (sep == std::string::npos || key[sep] == '.') {
    for (char& c : rel) c = c == '.' ? '/' : c == '/' ? '.' : c;
  }
  // Every component must be a plain name: no escaping /proc/sys with "..", no empty parts.
  size_t start = 0;
  while (start <= rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    std::string_view part(rel.data() + start, end - start);
    if (part.empty() || part == "." || part == "..")
      return std::unexpected(fmt::format("invalid sysctl key '{}'", key));
    start = end + 1;
  }
  return "/proc/sys/" + rel;
}

/// Names next to a missing key, for "did you mean".
std::vector<std::string> siblings(const std::string& path) {
  std::vector<std::string> names;
  std::string dir = path.substr(0, path.rfind('/'));
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    ::closedir(d);
  }
  return names;
}

class SysctlStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "sysctl",
        .summary = "Read a kernel parameter (net.* keys are per network namespace)",
        .description =
            "Reads KEY (dotted, as `sysctl` prints it, e.g. net.ipv4.ip_forward) from "
            "/proc/sys as seen from the step's network namespace. As with sysctl(8), a '/' in "
            "a dotted key stands for a '.' inside a name (net.ipv4.conf.eth0/100.rp_filter "
            "for the VLAN interface eth0.100), and a key written with '/' separators is used "
            "as is. A key that does not exist is an error, never an empty value.",
        .params = {{.name = "key",
                    .type = ValueType::kString,
                    .doc = "Dotted key, e.g. net.ipv4.ip_forward or net.ipv4.conf.eth0.rp_filter",
                    .required = true}},
        .facts = {{"key", "string", "The key read"},
                  {"value", "string",
                   "The value, whitespace-trimmed (numbers stay strings: "
                   "compare with eq: '1'); fields of multi-valued keys "
                   "such as ip_local_port_range stay tab-separated"},
                  {"int", "int", "The value as an integer, when it is one"}},
        .example =
            "- id: forwarding\n  uses: sysctl\n  with: {key: net.ipv4.ip_forward}\n"
            "  expect: {value: '1'}\n",
    };
    return s;
  }

  StepOutput run(StepContext&, const Params& p) const override {
    std::string key = p.str("key");
    auto path = key_path(key);
    if (!path) return StepOutput::error(path.error());
    // /proc/sys/net/* is resolved against the network namespace of the thread that opens
    // it, so this reads the namespace the worker thread entered.
    int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT) {
        std::string last = path->substr(path->rfind('/') + 1);
        std::string hint = did_you_mean(last, siblings(*path));
        return StepOutput::error(fmt::format(
            "no sysctl key '{}'{}", key, hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
      }
      return StepOutput::error(
          fmt::format("cannot read sysctl {} ({}): {}", key, *path, std::strerror(err)));
    }
    std::string v;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return StepOutput::error(
            fmt::format("cannot read sysctl {} ({}): {}", key, *path, std::strerror(err)));
      }
      if (n == 0) break;
      v.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    while (!v.empty() && (v.back() == '\n' || v.back() == ' ' || v.back() == '\t')) v.pop_back();
    StepOutput out;
    out.facts["key"] = key;
    out.facts["value"] = v;
    errno = 0;
    char* end = nullptr;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (!v.empty() && end == v.c_str() + v.size() && errno == 0) out.facts["int"] = n;
    out.message = fmt::format("{} = {}", key, v);
    return out;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(SysctlStep);
}  // namespace netplay
