#include "runner/step/firewall.h"

#include <linux/capability.h>
#include <nftables/libnftables.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>
#include <string_view>

#include <fmt/format.h>

namespace netplay {
namespace {

constexpr std::string_view kFamilies[] = {"ip", "ip6", "inet", "arp", "bridge", "netdev"};

/// The first line of libnftables' error text ("Error: Could not process rule: ...").
std::string first_error_line(const char* text) {
  std::string_view s = text ? text : "";
  while (!s.empty() && (s.front() == '\n' || s.front() == ' ')) s.remove_prefix(1);
  s = s.substr(0, s.find('\n'));
  return s.empty() ? std::string("failed without saying why") : std::string(s);
}

/// Whether the calling thread may read the ruleset. Without CAP_NET_ADMIN libnftables fails
/// too, but prints to stderr on its way; asked first, the step says it in one line.
bool has_net_admin() {
  __user_cap_header_struct h{.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &h, d) != 0) return true;  // cannot tell: let libnftables answer
  return (d[CAP_NET_ADMIN / 32].effective & (1u << (CAP_NET_ADMIN % 32))) != 0;
}

class SystemFirewall : public Firewall {
 public:
  std::expected<json, std::string> ruleset(const RulesetRequest& r,
                                           const StepContext& ctx) override {
    if (ctx.is_cancelled()) return std::unexpected("nftables: cancelled");
    if (ctx.expired()) return std::unexpected("nftables: timed out");
    std::string cmd = "list ruleset";
    if (!r.family.empty()) {
      bool known = false;
      for (auto f : kFamilies) known = known || f == r.family;
      if (!known) return std::unexpected(fmt::format("nftables: unknown family '{}'", r.family));
      cmd += " " + r.family;
    }
    if (!has_net_admin())
      return std::unexpected(
          "nftables: reading the ruleset needs CAP_NET_ADMIN, which netplay does not have "
          "(run it as root)");
    // libnftables keeps some process-wide state (its symbol tables); one call at a time.
    static std::mutex m;
    std::lock_guard lock(m);
    // A context per call, created on this thread: its netlink socket is opened here, so it
    // talks to the namespace this (step) thread has entered.
    nft_ctx* nft = ::nft_ctx_new(NFT_CTX_DEFAULT);
    if (!nft) return std::unexpected("nftables: cannot create a libnftables context");
    struct Free {
      nft_ctx* n;
      ~Free() { ::nft_ctx_free(n); }
    } free_it{nft};
    ::nft_ctx_output_set_flags(nft, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);
    if (::nft_ctx_buffer_output(nft) != 0 || ::nft_ctx_buffer_error(nft) != 0)
      return std::unexpected("nftables: cannot buffer libnftables' output");
    if (::nft_run_cmd_from_buffer(nft, cmd.c_str()) != 0) {
      std::string e = first_error_line(::nft_ctx_get_error_buffer(nft));
      if (e.find("Operation not permitted") != std::string::npos)
        e += " (reading the ruleset needs CAP_NET_ADMIN)";
      return std::unexpected(fmt::format("nftables: {}", e));
    }
    const char* out = ::nft_ctx_get_output_buffer(nft);
    std::string_view text = out ? out : "";
    if (text.find_first_not_of(" \n") == std::string_view::npos)
      return json{{"nftables", json::array()}};
    try {
      json j = json::parse(text);
      if (!j.is_object() || !j.contains("nftables") || !j["nftables"].is_array())
        return std::unexpected("nftables: the JSON ruleset has no 'nftables' list");
      return j;
    } catch (const json::parse_error& e) {
      return std::unexpected(fmt::format("nftables: unreadable JSON output: {}", e.what()));
    }
  }
};

}  // namespace

std::unique_ptr<Firewall> make_system_firewall() { return std::make_unique<SystemFirewall>(); }

}  // namespace netplay
