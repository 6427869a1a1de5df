#include "steps/net/targets.h"

#include <arpa/inet.h>

#include <fmt/format.h>

namespace netplay {

std::expected<std::vector<std::string>, std::string> resolve_targets(
    const StepContext&, const std::vector<std::string>& names, const std::string& family) {
  std::vector<std::string> out;
  for (const auto& n : names) {
    unsigned char buf[16];
    bool v4 = ::inet_pton(AF_INET, n.c_str(), buf) == 1;
    bool v6 = !v4 && ::inet_pton(AF_INET6, n.c_str(), buf) == 1;
    if (!v4 && !v6)
      return std::unexpected(fmt::format("'{}' is not an IP address (names are not resolved yet)",
                                         printable(n)));
    if ((family == "4" && !v4) || (family == "6" && !v6))
      return std::unexpected(
          fmt::format("{} is not an IPv{} address (family: {})", n, family, family));
    out.push_back(n);
  }
  return out;
}

}  // namespace netplay
