#include "steps/net/netlink.h"

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_arp.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/object.h>
#include <netlink/route/route.h>

namespace netplay::nl {

std::string error_text(int nlerr) { return nl_geterror(nlerr < 0 ? -nlerr : nlerr); }

std::span<const unsigned char> payload_of(nl_msg* msg) {
  nlmsghdr* h = nlmsg_hdr(msg);
  return {static_cast<const unsigned char*>(nlmsg_data(h)), static_cast<size_t>(nlmsg_datalen(h))};
}

namespace {

/// Adds `obj` as a cache refill does: an object with the key of one already there is
/// merged into it (an IPv6 multipath route arrives as one message per next hop).
int add_or_merge(nl_cache* cache, nl_object* obj) {
  if (nl_object* old = nl_cache_search(cache, obj)) {
    int updated = nl_object_update(old, obj);
    if (updated == 0) {
      nl_object_put(old);
      return 0;
    }
    nl_cache_remove(old);
    nl_object_put(old);
  }
  return nl_cache_add(cache, obj);
}

}  // namespace

std::expected<CachePtr, std::string> parse_cache(const char* kind, const NlMessages& msgs,
                                                 std::string_view what) {
  nl_cache* c = nullptr;
  if (int err = nl_cache_alloc_name(kind, &c); err < 0)
    return std::unexpected(fmt::format("{}: {}", what, error_text(err)));
  CachePtr cache(c);
  bool routes = std::string_view(kind) == "route/route";
  for (const auto& m : msgs) {
    // libnl's parsers take a plain nlmsghdr* but never write to it.
    auto* h = const_cast<nlmsghdr*>(m.hdr());
    int err = 0;
    if (routes) {
      // Routes are merged by key, which nl_cache_parse_and_add does not do.
      rtnl_route* r = nullptr;
      if (h->nlmsg_type != RTM_NEWROUTE) continue;
      err = rtnl_route_parse(h, &r);
      if (err >= 0) {
        err = add_or_merge(cache.get(), reinterpret_cast<nl_object*>(r));
        rtnl_route_put(r);
      }
    } else {
      MsgPtr msg(nlmsg_convert(h));
      if (!msg) return std::unexpected(fmt::format("{}: out of memory", what));
      err = nl_cache_parse_and_add(cache.get(), msg.get());
    }
    if (err < 0) return std::unexpected(fmt::format("{}: {}", what, error_text(err)));
  }
  return cache;
}

// ---- LinkTable ----

std::expected<LinkTable, std::string> LinkTable::dump(NetlinkClient& client) {
  ifinfomsg hdr{};
  hdr.ifi_family = AF_UNSPEC;
  auto msgs = client.dump(RTM_GETLINK, bytes_of(hdr), "link dump");
  if (!msgs) return std::unexpected(msgs.error().message);
  return parse(*msgs);
}

std::expected<LinkTable, std::string> LinkTable::parse(const NlMessages& msgs) {
  auto cache = parse_cache("route/link", msgs, "link dump");
  if (!cache) return std::unexpected(cache.error());
  LinkTable t;
  t.cache_ = std::move(*cache);
  nl_cache* c = t.cache_.get();
  t.by_index_.reserve(static_cast<size_t>(nl_cache_nitems(c)));
  for (nl_object* o = nl_cache_get_first(c); o; o = nl_cache_get_next(o))
    t.by_index_.push_back(reinterpret_cast<rtnl_link*>(o));
  std::sort(t.by_index_.begin(), t.by_index_.end(), [](rtnl_link* a, rtnl_link* b) {
    return rtnl_link_get_ifindex(a) < rtnl_link_get_ifindex(b);
  });
  return t;
}

std::vector<rtnl_link*> LinkTable::all() const { return by_index_; }

rtnl_link* LinkTable::by_index(int ifindex) const {
  if (ifindex <= 0) return nullptr;
  auto it = std::lower_bound(by_index_.begin(), by_index_.end(), ifindex,
                             [](rtnl_link* l, int i) { return rtnl_link_get_ifindex(l) < i; });
  return it != by_index_.end() && rtnl_link_get_ifindex(*it) == ifindex ? *it : nullptr;
}

rtnl_link* LinkTable::by_name(const std::string& name) const {
  for (rtnl_link* l : by_index_) {
    const char* n = rtnl_link_get_name(l);
    if (n && name == n) return l;
  }
  return nullptr;
}

std::string LinkTable::name_of(int ifindex) const {
  rtnl_link* l = by_index(ifindex);
  const char* n = l ? rtnl_link_get_name(l) : nullptr;
  return n ? n : "";
}

std::string LinkTable::names() const {
  std::string out;
  for (rtnl_link* l : by_index_) {
    if (!out.empty()) out += ", ";
    const char* n = rtnl_link_get_name(l);
    out += n ? n : fmt::format("#{}", rtnl_link_get_ifindex(l));
  }
  return out.empty() ? "(none)" : out;
}

std::expected<rtnl_link*, std::string> LinkTable::find(const std::string& name, int index) const {
  rtnl_link* l = name.empty() ? by_index(index) : by_name(name);
  if (l) return l;
  std::string what = name.empty() ? fmt::format("with index {}", index) : "'" + name + "'";
  return std::unexpected(
      fmt::format("interface {} not found in this namespace; interfaces here: {}", what, names()));
}

std::expected<RouteLookup, RouteLookupError> route_get(NetlinkClient& client, nl_addr* dst,
                                                       nl_addr* src) {
  int family = nl_addr_get_family(dst);
  auto fail = [](std::string m) { return std::unexpected(RouteLookupError{std::move(m), 0}); };
  MsgPtr msg(nlmsg_alloc_simple(RTM_GETROUTE, NLM_F_REQUEST));
  rtmsg rtm{};
  rtm.rtm_family = static_cast<unsigned char>(family);
  rtm.rtm_dst_len = family == AF_INET6 ? 128 : 32;
  rtm.rtm_flags = RTM_F_LOOKUP_TABLE;
  if (src) rtm.rtm_src_len = rtm.rtm_dst_len;
  if (!msg || nlmsg_append(msg.get(), &rtm, sizeof rtm, NLMSG_ALIGNTO) < 0 ||
      nla_put_addr(msg.get(), RTA_DST, dst) < 0 || (src && nla_put_addr(msg.get(), RTA_SRC, src) < 0))
    return fail("route lookup: cannot build the request");
  auto reply = client.request(RTM_GETROUTE, payload_of(msg.get()), "route lookup");
  if (!reply)
    return std::unexpected(RouteLookupError{reply.error().message, reply.error().kernel_errno});
  for (auto& m : *reply) {
    rtnl_route* rt = nullptr;
    if (m.type() != RTM_NEWROUTE || rtnl_route_parse(m.hdr(), &rt) < 0) continue;
    RouteLookup out{RoutePtr(rt), ""};
    // A lookup made with a source answers with RTA_SRC instead of RTA_PREFSRC (which
    // libnl's parser does not keep here), so read it from the reply.
    nlattr* tb[RTA_MAX + 1] = {};
    if (nlmsg_parse(m.hdr(), sizeof(rtmsg), tb, RTA_MAX, nullptr) >= 0 && tb[RTA_SRC]) {
      AddrPtr a(nl_addr_alloc_attr(tb[RTA_SRC], family));
      out.src = addr_str(a.get());
    }
    return out;
  }
  return fail("route lookup: the kernel sent no route");
}

std::expected<Links, std::string> open_links(const StepContext& ctx) {
  auto client = ctx.netlink().open(ctx);
  if (!client) return std::unexpected(client.error());
  auto table = LinkTable::dump(**client);
  if (!table) return std::unexpected(table.error());
  return Links{std::move(*client), std::move(*table)};
}

// ---- Facts ----

LinkFacts link_facts(rtnl_link* l, const LinkTable& table) {
  LinkFacts f;
  const char* name = rtnl_link_get_name(l);
  f.name = name ? name : "";
  f.index = rtnl_link_get_ifindex(l);
  const char* kind = rtnl_link_get_type(l);
  if (kind && *kind)
    f.kind = kind;
  else
    f.kind = rtnl_link_get_arptype(l) == ARPHRD_LOOPBACK ? "loopback" : "device";
  f.oper_state = oper_state_name(rtnl_link_get_operstate(l));
  unsigned flags = rtnl_link_get_flags(l);
  f.admin_up = flags & IFF_UP;
  f.lower_up = flags & IFF_LOWER_UP;
  f.flags = link_flag_names(flags);
  f.mtu = rtnl_link_get_mtu(l);
  nl_addr* mac = rtnl_link_get_addr(l);
  if (mac && nl_addr_get_family(mac) == AF_LLC)
    f.mac = format_mac(static_cast<const unsigned char*>(nl_addr_get_binary_addr(mac)),
                       nl_addr_get_len(mac));
  else
    f.mac = addr_str(mac);
  nl_addr* brd = rtnl_link_get_broadcast(l);
  if (brd && nl_addr_get_family(brd) == AF_LLC)
    f.broadcast = format_mac(static_cast<const unsigned char*>(nl_addr_get_binary_addr(brd)),
                             nl_addr_get_len(brd));
  f.master_index = rtnl_link_get_master(l);
  if (f.master_index > 0) f.master = table.name_of(f.master_index);
  f.peer_index = rtnl_link_get_link(l);
  int32_t nsid = 0;
  if (rtnl_link_get_link_netnsid(l, &nsid) == 0) f.peer_netnsid = nsid;
  if (f.peer_index > 0 && !f.peer_netnsid) f.peer_name = table.name_of(f.peer_index);
  const char* q = rtnl_link_get_qdisc(l);
  f.qdisc = q ? q : "";
  f.txqlen = rtnl_link_get_txqlen(l);
  const char* alias = rtnl_link_get_ifalias(l);
  f.alias = alias ? alias : "";
  f.rx_packets = rtnl_link_get_stat(l, RTNL_LINK_RX_PACKETS);
  f.tx_packets = rtnl_link_get_stat(l, RTNL_LINK_TX_PACKETS);
  f.rx_bytes = rtnl_link_get_stat(l, RTNL_LINK_RX_BYTES);
  f.tx_bytes = rtnl_link_get_stat(l, RTNL_LINK_TX_BYTES);
  f.rx_errors = rtnl_link_get_stat(l, RTNL_LINK_RX_ERRORS);
  f.tx_errors = rtnl_link_get_stat(l, RTNL_LINK_TX_ERRORS);
  f.rx_dropped = rtnl_link_get_stat(l, RTNL_LINK_RX_DROPPED);
  f.tx_dropped = rtnl_link_get_stat(l, RTNL_LINK_TX_DROPPED);
  return f;
}

json to_json(const LinkFacts& f) {
  json j;
  j["exists"] = true;
  j["name"] = f.name;
  j["index"] = f.index;
  j["kind"] = f.kind;
  j["oper_state"] = f.oper_state;
  j["admin_up"] = f.admin_up;
  j["lower_up"] = f.lower_up;
  j["mtu"] = f.mtu;
  j["mac"] = f.mac;
  if (!f.broadcast.empty()) j["broadcast"] = f.broadcast;
  if (f.master_index > 0) {
    j["master"] = f.master;
    j["master_index"] = f.master_index;
  }
  if (f.peer_index > 0) j["peer_index"] = f.peer_index;
  if (f.peer_netnsid) j["peer_netnsid"] = *f.peer_netnsid;
  if (!f.peer_name.empty()) j["peer_name"] = f.peer_name;
  j["flags"] = f.flags;
  j["qdisc"] = f.qdisc;
  j["txqlen"] = f.txqlen;
  j["alias"] = f.alias;
  j["stats"] = {{"rx_packets", f.rx_packets}, {"tx_packets", f.tx_packets},
                {"rx_bytes", f.rx_bytes},     {"tx_bytes", f.tx_bytes},
                {"rx_errors", f.rx_errors},   {"tx_errors", f.tx_errors},
                {"rx_dropped", f.rx_dropped}, {"tx_dropped", f.tx_dropped}};
  return j;
}

// ---- Formatting ----

std::string format_mac(const unsigned char* b, size_t len) {
  std::string out;
  out.reserve(len * 3);
  for (size_t i = 0; i < len; ++i) {
    if (i) out += ':';
    out += fmt::format("{:02x}", b[i]);
  }
  return out;
}

std::string addr_str(const nl_addr* a) {
  if (!a || nl_addr_get_len(a) == 0) return "";
  int fam = nl_addr_get_family(a);
  const void* bin = nl_addr_get_binary_addr(a);
  if (fam == AF_INET || fam == AF_INET6) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (inet_ntop(fam, bin, buf, sizeof buf)) return buf;
    return "";
  }
  return format_mac(static_cast<const unsigned char*>(bin), nl_addr_get_len(a));
}

std::string oper_state_name(uint8_t s) {
  switch (s) {
    case IF_OPER_NOTPRESENT: return "NOTPRESENT";
    case IF_OPER_DOWN: return "DOWN";
    case IF_OPER_LOWERLAYERDOWN: return "LOWERLAYERDOWN";
    case IF_OPER_TESTING: return "TESTING";
    case IF_OPER_DORMANT: return "DORMANT";
    case IF_OPER_UP: return "UP";
    default: return "UNKNOWN";
  }
}

std::vector<std::string> link_flag_names(unsigned flags) {
  std::vector<std::string> out;
  if ((flags & IFF_UP) && !(flags & IFF_RUNNING)) out.emplace_back("NO-CARRIER");
  static const std::pair<unsigned, const char*> kNames[] = {
      {IFF_LOOPBACK, "LOOPBACK"},   {IFF_BROADCAST, "BROADCAST"}, {IFF_POINTOPOINT, "POINTOPOINT"},
      {IFF_MULTICAST, "MULTICAST"}, {IFF_NOARP, "NOARP"},         {IFF_ALLMULTI, "ALLMULTI"},
      {IFF_PROMISC, "PROMISC"},     {IFF_NOTRAILERS, "NOTRAILERS"}, {IFF_DEBUG, "DEBUG"},
      {IFF_DYNAMIC, "DYNAMIC"},     {IFF_AUTOMEDIA, "AUTOMEDIA"}, {IFF_PORTSEL, "PORTSEL"},
      {IFF_MASTER, "MASTER"},       {IFF_SLAVE, "SLAVE"},         {IFF_UP, "UP"},
      {IFF_LOWER_UP, "LOWER_UP"},   {IFF_DORMANT, "DORMANT"},     {IFF_ECHO, "ECHO"},
  };
  for (auto [bit, name] : kNames)
    if (flags & bit) out.emplace_back(name);
  return out;
}

namespace {
/// Most significant first: the order neigh_state_main picks from.
constexpr std::pair<int, const char*> kNudNames[] = {
    {NUD_PERMANENT, "PERMANENT"}, {NUD_NOARP, "NOARP"}, {NUD_REACHABLE, "REACHABLE"},
    {NUD_STALE, "STALE"},         {NUD_DELAY, "DELAY"}, {NUD_PROBE, "PROBE"},
    {NUD_FAILED, "FAILED"},       {NUD_INCOMPLETE, "INCOMPLETE"},
};
}  // namespace

std::vector<std::string> neigh_state_names(int nud) {
  std::vector<std::string> out;
  for (auto [bit, name] : kNudNames)
    if (nud & bit) out.emplace_back(name);
  if (out.empty()) out.emplace_back("NONE");
  return out;
}

std::string neigh_state_main(int nud) { return neigh_state_names(nud).front(); }

std::vector<std::string> neigh_flag_names(unsigned f) {
  std::vector<std::string> out;
  static const std::pair<unsigned, const char*> kNames[] = {
      {NTF_SELF, "self"},   {NTF_MASTER, "master"}, {NTF_ROUTER, "router"},
      {NTF_PROXY, "proxy"}, {NTF_EXT_LEARNED, "extern_learn"},
      {NTF_OFFLOADED, "offload"}, {NTF_STICKY, "sticky"},
  };
  for (auto [bit, name] : kNames)
    if (f & bit) out.emplace_back(name);
  return out;
}

std::string scope_name(int scope) {
  switch (scope) {
    case RT_SCOPE_UNIVERSE: return "global";
    case RT_SCOPE_SITE: return "site";
    case RT_SCOPE_LINK: return "link";
    case RT_SCOPE_HOST: return "host";
    case RT_SCOPE_NOWHERE: return "nowhere";
    default: return std::to_string(scope);
  }
}

std::expected<AddrPtr, std::string> parse_ip(const std::string& text) {
  unsigned char buf[16];
  int fam = 0;
  size_t len = 0;
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) {
    fam = AF_INET;
    len = 4;
  } else if (inet_pton(AF_INET6, text.c_str(), buf) == 1) {
    fam = AF_INET6;
    len = 16;
  } else {
    return std::unexpected(fmt::format("'{}' is not an IP address", text));
  }
  AddrPtr a(nl_addr_build(fam, buf, len));
  if (!a) return std::unexpected("out of memory");
  return a;
}

}  // namespace netplay::nl
