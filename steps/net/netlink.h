#pragma once
/// Netlink for steps: the link table most steps start from, the facts `link` reports, and
/// libnl-3 (route) to decode what the netlink service (ctx.netlink(), runner/step/services.h)
/// returns. Steps never open sockets themselves: the service opens its clients in the
/// namespace the step runs in, with the step's deadline and cancellation.

#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

#include "runner/step/services.h"
#include "runner/step/step.h"

namespace netplay::nl {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const {
    if (p) Free(p);
  }
};
using CachePtr = std::unique_ptr<nl_cache, Deleter<nl_cache, nl_cache_free>>;
using AddrPtr = std::unique_ptr<nl_addr, Deleter<nl_addr, nl_addr_put>>;
using MsgPtr = std::unique_ptr<nl_msg, Deleter<nl_msg, nlmsg_free>>;

/// libnl's error text for a (negative or positive) libnl error code.
std::string error_text(int nlerr);

/// A family header (ifinfomsg, ndmsg, rtmsg, ...) as a request payload.
template <typename T>
std::span<const unsigned char> bytes_of(const T& header) {
  return {reinterpret_cast<const unsigned char*>(&header), sizeof header};
}

/// The bytes after an nl_msg's header: the payload NetlinkClient::dump/request take, for
/// requests built with libnl (nlmsg_alloc_simple, nla_put_*, genlmsg_put).
std::span<const unsigned char> payload_of(nl_msg* msg);

/// Decodes the messages of a dump into a libnl cache of `kind` ("route/addr",
/// "route/route", ...), as the matching rtnl_*_alloc_cache would have filled it.
std::expected<CachePtr, std::string> parse_cache(const char* kind, const NlMessages& msgs,
                                                 std::string_view what);

/// The facts `link` reports for one interface, gathered from one dump.
struct LinkFacts {
  std::string name;
  int index = 0;
  /// IFLA_INFO_KIND (veth, vxlan, bridge, openvswitch, dummy, ...); "loopback" for lo and
  /// "device" for an interface without a kind (a physical NIC).
  std::string kind;
  std::string oper_state;  // UP, DOWN, UNKNOWN, LOWERLAYERDOWN, DORMANT, NOTPRESENT, TESTING
  bool admin_up = false;   // IFF_UP
  bool lower_up = false;   // IFF_LOWER_UP (carrier)
  unsigned mtu = 0;
  std::string mac;  // lowercase aa:bb:..; "" when the link has no address
  std::string broadcast;
  int master_index = 0;  // 0 = none
  std::string master;    // "" = none (or not resolvable in this namespace)
  /// IFLA_LINK: the veth peer's ifindex (or a vlan/macvlan's lower device); 0 = none.
  int peer_index = 0;
  /// IFLA_LINK_NETNSID: the peer lives in another namespace, known here under this id.
  std::optional<int> peer_netnsid;
  /// The peer's name when it lives in this namespace.
  std::string peer_name;
  std::vector<std::string> flags;  // UP, BROADCAST, LOWER_UP, ... as `ip link` prints them
  std::string qdisc;
  unsigned txqlen = 0;
  std::string alias;
  uint64_t rx_packets = 0, tx_packets = 0, rx_bytes = 0, tx_bytes = 0;
  uint64_t rx_errors = 0, tx_errors = 0, rx_dropped = 0, tx_dropped = 0;
};

/// One RTM_GETLINK dump of a namespace (a libnl link cache).
class LinkTable {
 public:
  /// Dumps the links of `client`'s namespace.
  static std::expected<LinkTable, std::string> dump(NetlinkClient& client);
  /// The table of a link dump's messages.
  static std::expected<LinkTable, std::string> parse(const NlMessages& msgs);

  rtnl_link* by_index(int ifindex) const;  // nullptr when absent
  rtnl_link* by_name(const std::string& name) const;
  /// Every link, ordered by ifindex.
  std::vector<rtnl_link*> all() const;
  /// "" when no link has this index here.
  std::string name_of(int ifindex) const;
  /// "lo, eth0, silk-vtep" in ifindex order, for "not found" messages.
  std::string names() const;
  /// By name, or by index when `name` is empty; the error reads
  /// "interface 'x' not found in this namespace; interfaces here: lo, eth0".
  std::expected<rtnl_link*, std::string> find(const std::string& name, int index = 0) const;

  nl_cache* cache() const { return cache_.get(); }

 private:
  CachePtr cache_;
  /// The cache's links ordered by ifindex (owned by the cache): lookups by index are
  /// binary searches, which matters on a node with hundreds of veths.
  std::vector<rtnl_link*> by_index_;
};

using RoutePtr = std::unique_ptr<rtnl_route, Deleter<rtnl_route, rtnl_route_put>>;

/// The kernel's routing decision for one destination (what `ip route get` asks).
struct RouteLookup {
  RoutePtr route;
  /// The source address the reply names (RTA_SRC) when the lookup was made with `src`;
  /// libnl's parser does not keep it there.
  std::string src;
};
struct RouteLookupError {
  std::string message;    // "route lookup: Network is unreachable"
  int kernel_errno = 0;   // 0: not the kernel's refusal (the request could not be made)
};
/// RTM_GETROUTE for `dst` (from `src` when not null), policy rules included.
std::expected<RouteLookup, RouteLookupError> route_get(NetlinkClient& client, nl_addr* dst,
                                                       nl_addr* src = nullptr);

/// What most netlink steps start with: a client in the step's namespace and its links.
struct Links {
  std::unique_ptr<NetlinkClient> client;
  LinkTable table;
};
/// Opens ctx.netlink() and dumps the links; the error is the step's error message.
std::expected<Links, std::string> open_links(const StepContext& ctx);

LinkFacts link_facts(rtnl_link* link, const LinkTable& table);
json to_json(const LinkFacts& f);

// ---- Formatting (pure; unit-tested on canned values) ----

/// "aa:aa:0a:ff:d3:28"; "" for zero length.
std::string format_mac(const unsigned char* bytes, size_t len);
/// An nl_addr as `ip` prints it: IPs without the prefix, link-layer addresses as MACs;
/// "" for null or zero-length addresses.
std::string addr_str(const nl_addr* a);
/// "UP", "DOWN", "LOWERLAYERDOWN", ...; "UNKNOWN" for 0 and unknown values.
std::string oper_state_name(uint8_t state);
/// IFF_* bits as `ip link` names them, in its order: BROADCAST, POINTOPOINT, ..., UP, LOWER_UP.
std::vector<std::string> link_flag_names(unsigned flags);
/// NUD_* bits as names ("REACHABLE", "PERMANENT", ...), most significant state first.
std::vector<std::string> neigh_state_names(int nud_state);
/// The one state a user checks: PERMANENT > NOARP > REACHABLE > STALE > DELAY > PROBE >
/// FAILED > INCOMPLETE > NONE.
std::string neigh_state_main(int nud_state);
/// NTF_* bits as `bridge fdb` names them: self, master, router, proxy, extern_learn, offload, sticky.
std::vector<std::string> neigh_flag_names(unsigned ntf_flags);
/// rtm_scope: global, site, link, host, nowhere, or the number.
std::string scope_name(int scope);

/// Parses an IP address (no prefix) into an nl_addr of family AF_INET/AF_INET6.
std::expected<AddrPtr, std::string> parse_ip(const std::string& text);

}  // namespace netplay::nl
