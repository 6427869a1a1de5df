#include "steps/net/targets.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include "steps/net/resolve.h"

namespace netplay {

std::expected<std::vector<std::string>, std::string> resolve_targets(
    StepContext& ctx, const std::vector<std::string>& names, const std::string& family) {
  int want = family == "4" ? AF_INET : family == "6" ? AF_INET6 : AF_UNSPEC;
  std::vector<std::string> out;
  for (const auto& n : names) {
    unsigned char buf[16];
    bool v4 = ::inet_pton(AF_INET, n.c_str(), buf) == 1;
    bool v6 = !v4 && ::inet_pton(AF_INET6, n.c_str(), buf) == 1;
    if (v4 || v6) {
      if ((want == AF_INET && !v4) || (want == AF_INET6 && !v6))
        return std::unexpected(
            fmt::format("{} is not an IPv{} address (family: {})", n, family, family));
      out.push_back(n);
      continue;
    }
    auto addrs = resolve::resolve_host(ctx, n, want);
    if (!addrs) return std::unexpected(addrs.error());
    if (addrs->empty())
      return std::unexpected(fmt::format("cannot resolve '{}': no address", printable(n)));
    out.push_back(addrs->front());
  }
  return out;
}

}  // namespace netplay
