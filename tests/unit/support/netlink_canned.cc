#include "tests/unit/support/netlink_canned.h"

#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/ethtool_netlink.h>
#include <linux/genetlink.h>
#include <linux/if_link.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>
#include <netlink/addr.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/route/addr.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>

namespace netplay::canned {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const {
    if (p) Free(p);
  }
};
using MsgPtr = std::unique_ptr<nl_msg, Deleter<nl_msg, nlmsg_free>>;
using AddrPtr = std::unique_ptr<nl_addr, Deleter<nl_addr, nl_addr_put>>;

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument("canned netlink message: " + what);
}

void check(int err, const char* what) {
  if (err < 0) fail(fmt::format("{}: {}", what, nl_geterror(-err)));
}

std::vector<unsigned char> mac_bytes(const std::string& mac) {
  std::vector<unsigned char> b;
  unsigned v[6];
  if (std::sscanf(mac.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) !=
      6)
    fail("not a MAC address: " + mac);
  for (unsigned x : v) b.push_back(static_cast<unsigned char>(x));
  return b;
}

/// "10.0.0.1", "10.0.0.0/24", "fe80::1", "default" (with `family`).
AddrPtr ip(const std::string& text, int family = AF_UNSPEC) {
  nl_addr* a = nullptr;
  check(nl_addr_parse(text.c_str(), family, &a), text.c_str());
  return AddrPtr(a);
}

/// The address bytes of an IP ("" -> none), for attributes put by hand.
std::vector<unsigned char> ip_bytes(const std::string& text, int* family) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) {
    *family = AF_INET;
    return {buf, buf + 4};
  }
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) {
    *family = AF_INET6;
    return {buf, buf + 16};
  }
  fail("not an IP address: " + text);
}

NlMessage done(nl_msg* m) {
  nlmsghdr* h = nlmsg_hdr(m);
  h->nlmsg_flags = NLM_F_MULTI;  // as in a dump
  return NlMessage::copy_of(h);
}

/// The attributes every RTM_NEWLINK carries; `info_data` fills IFLA_INFO_DATA, if given.
NlMessage link_message(const Link& l, const std::string& kind,
                       void (*info_data)(nl_msg*, const void*), const void* arg) {
  MsgPtr m(nlmsg_alloc_simple(RTM_NEWLINK, 0));
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_type = l.arptype;
  ifi.ifi_index = l.index;
  ifi.ifi_flags = l.flags;
  check(nlmsg_append(m.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO), "ifinfomsg");
  check(nla_put_string(m.get(), IFLA_IFNAME, l.name.c_str()), "IFLA_IFNAME");
  check(nla_put_u32(m.get(), IFLA_TXQLEN, l.txqlen), "IFLA_TXQLEN");
  check(nla_put_u8(m.get(), IFLA_OPERSTATE, l.oper_state), "IFLA_OPERSTATE");
  check(nla_put_u32(m.get(), IFLA_MTU, l.mtu), "IFLA_MTU");
  if (!l.qdisc.empty()) check(nla_put_string(m.get(), IFLA_QDISC, l.qdisc.c_str()), "IFLA_QDISC");
  if (!l.mac.empty()) {
    auto b = mac_bytes(l.mac);
    check(nla_put(m.get(), IFLA_ADDRESS, static_cast<int>(b.size()), b.data()), "IFLA_ADDRESS");
    std::vector<unsigned char> brd(b.size(), 0xff);
    check(nla_put(m.get(), IFLA_BROADCAST, static_cast<int>(brd.size()), brd.data()),
          "IFLA_BROADCAST");
  }
  if (l.master > 0) check(nla_put_u32(m.get(), IFLA_MASTER, static_cast<uint32_t>(l.master)), "IFLA_MASTER");
  if (l.link > 0) check(nla_put_u32(m.get(), IFLA_LINK, static_cast<uint32_t>(l.link)), "IFLA_LINK");
  if (l.link_netnsid) check(nla_put_s32(m.get(), IFLA_LINK_NETNSID, *l.link_netnsid), "IFLA_LINK_NETNSID");
  if (!kind.empty()) {
    nlattr* info = nla_nest_start(m.get(), IFLA_LINKINFO);
    if (!info) fail("IFLA_LINKINFO");
    check(nla_put_string(m.get(), IFLA_INFO_KIND, kind.c_str()), "IFLA_INFO_KIND");
    if (info_data) {
      nlattr* data = nla_nest_start(m.get(), IFLA_INFO_DATA);
      if (!data) fail("IFLA_INFO_DATA");
      info_data(m.get(), arg);
      nla_nest_end(m.get(), data);
    }
    nla_nest_end(m.get(), info);
  }
  return done(m.get());
}

void vxlan_data(nl_msg* m, const void* arg) {
  const auto& v = *static_cast<const Vxlan*>(arg);
  check(nla_put_u32(m, IFLA_VXLAN_ID, v.vni), "IFLA_VXLAN_ID");
  if (!v.group.empty()) {
    int fam = 0;
    auto b = ip_bytes(v.group, &fam);
    check(nla_put(m, fam == AF_INET ? IFLA_VXLAN_GROUP : IFLA_VXLAN_GROUP6,
                  static_cast<int>(b.size()), b.data()),
          "IFLA_VXLAN_GROUP");
  }
  if (v.dev > 0) check(nla_put_u32(m, IFLA_VXLAN_LINK, static_cast<uint32_t>(v.dev)), "IFLA_VXLAN_LINK");
  if (!v.local.empty()) {
    int fam = 0;
    auto b = ip_bytes(v.local, &fam);
    check(nla_put(m, fam == AF_INET ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6,
                  static_cast<int>(b.size()), b.data()),
          "IFLA_VXLAN_LOCAL");
  }
  check(nla_put_u8(m, IFLA_VXLAN_TTL, v.ttl), "IFLA_VXLAN_TTL");
  check(nla_put_u8(m, IFLA_VXLAN_TOS, v.tos), "IFLA_VXLAN_TOS");
  check(nla_put_u8(m, IFLA_VXLAN_LEARNING, v.learning ? 1 : 0), "IFLA_VXLAN_LEARNING");
  check(nla_put_u8(m, IFLA_VXLAN_PROXY, 0), "IFLA_VXLAN_PROXY");
  check(nla_put_u8(m, IFLA_VXLAN_L2MISS, 0), "IFLA_VXLAN_L2MISS");
  check(nla_put_u8(m, IFLA_VXLAN_L3MISS, 0), "IFLA_VXLAN_L3MISS");
  check(nla_put_u8(m, IFLA_VXLAN_COLLECT_METADATA, 0), "IFLA_VXLAN_COLLECT_METADATA");
  check(nla_put_u32(m, IFLA_VXLAN_AGEING, v.ageing), "IFLA_VXLAN_AGEING");
  check(nla_put_u32(m, IFLA_VXLAN_LIMIT, v.limit), "IFLA_VXLAN_LIMIT");
  ifla_vxlan_port_range range{};
  check(nla_put(m, IFLA_VXLAN_PORT_RANGE, sizeof range, &range), "IFLA_VXLAN_PORT_RANGE");
  check(nla_put_u16(m, IFLA_VXLAN_PORT, htons(v.dstport)), "IFLA_VXLAN_PORT");
  check(nla_put_u8(m, IFLA_VXLAN_UDP_CSUM, 1), "IFLA_VXLAN_UDP_CSUM");
  if (v.gbp) check(nla_put_flag(m, IFLA_VXLAN_GBP), "IFLA_VXLAN_GBP");
}

}  // namespace

NlMessage link(const Link& l) { return link_message(l, l.kind, nullptr, nullptr); }

NlMessage vxlan(Link l, const Vxlan& v) {
  if (l.mac.empty()) l.mac = "ee:ee:0a:ff:00:00";
  return link_message(l, "vxlan", vxlan_data, &v);
}

NlMessage addr(const Addr& a) {
  std::unique_ptr<rtnl_addr, Deleter<rtnl_addr, rtnl_addr_put>> obj(rtnl_addr_alloc());
  auto local = ip(a.cidr);
  rtnl_addr_set_ifindex(obj.get(), a.index);
  check(rtnl_addr_set_local(obj.get(), local.get()), "local address");
  unsigned plen = nl_addr_get_prefixlen(local.get());
  if (!a.peer.empty()) {
    auto peer = ip(a.peer);
    plen = nl_addr_get_prefixlen(peer.get());
    check(rtnl_addr_set_peer(obj.get(), peer.get()), "peer address");
  }
  rtnl_addr_set_prefixlen(obj.get(), static_cast<int>(plen));
  rtnl_addr_set_scope(obj.get(), a.scope);
  rtnl_addr_set_flags(obj.get(), a.flags);
  if (!a.label.empty()) check(rtnl_addr_set_label(obj.get(), a.label.c_str()), "label");
  nl_msg* raw = nullptr;
  check(rtnl_addr_build_add_request(obj.get(), 0, &raw), "rtnl_addr_build_add_request");
  MsgPtr m(raw);
  return done(m.get());
}

NlMessage neigh(const Neigh& n) {
  std::unique_ptr<rtnl_neigh, Deleter<rtnl_neigh, rtnl_neigh_put>> obj(rtnl_neigh_alloc());
  auto dst = ip(n.ip);
  rtnl_neigh_set_ifindex(obj.get(), n.index);
  check(rtnl_neigh_set_dst(obj.get(), dst.get()), "destination");
  if (!n.lladdr.empty()) {
    auto b = mac_bytes(n.lladdr);
    AddrPtr ll(nl_addr_build(AF_LLC, b.data(), b.size()));
    rtnl_neigh_set_lladdr(obj.get(), ll.get());
  }
  nl_msg* raw = nullptr;
  check(rtnl_neigh_build_add_request(obj.get(), 0, &raw), "rtnl_neigh_build_add_request");
  MsgPtr m(raw);
  // What the kernel reports, whatever the request builder's defaults.
  auto* nd = static_cast<ndmsg*>(nlmsg_data(nlmsg_hdr(m.get())));
  nd->ndm_state = n.state;
  nd->ndm_flags = n.flags;
  nd->ndm_type = RTN_UNICAST;
  return done(m.get());
}

NlMessage fdb(const Fdb& f) {
  MsgPtr m(nlmsg_alloc_simple(RTM_NEWNEIGH, 0));
  ndmsg nd{};
  nd.ndm_family = AF_BRIDGE;
  nd.ndm_ifindex = f.index;
  nd.ndm_state = f.state;
  nd.ndm_flags = f.flags;
  check(nlmsg_append(m.get(), &nd, sizeof nd, NLMSG_ALIGNTO), "ndmsg");
  auto mac = mac_bytes(f.mac);
  check(nla_put(m.get(), NDA_LLADDR, static_cast<int>(mac.size()), mac.data()), "NDA_LLADDR");
  if (!f.dst.empty()) {
    int fam = 0;
    auto b = ip_bytes(f.dst, &fam);
    check(nla_put(m.get(), NDA_DST, static_cast<int>(b.size()), b.data()), "NDA_DST");
  }
  if (f.master > 0) check(nla_put_u32(m.get(), NDA_MASTER, static_cast<uint32_t>(f.master)), "NDA_MASTER");
  if (f.vni) check(nla_put_u32(m.get(), NDA_VNI, *f.vni), "NDA_VNI");
  if (f.vlan) check(nla_put_u16(m.get(), NDA_VLAN, *f.vlan), "NDA_VLAN");
  return done(m.get());
}

NlMessage route(const Route& r) {
  std::unique_ptr<rtnl_route, Deleter<rtnl_route, rtnl_route_put>> obj(rtnl_route_alloc());
  auto dst = ip(r.dst, r.family);
  int family = nl_addr_get_family(dst.get());
  rtnl_route_set_family(obj.get(), static_cast<uint8_t>(family));
  check(rtnl_route_set_dst(obj.get(), dst.get()), "destination");
  rtnl_route_set_table(obj.get(), r.table);
  rtnl_route_set_type(obj.get(), r.type);
  rtnl_route_set_protocol(obj.get(), r.protocol);
  rtnl_route_set_scope(obj.get(), r.scope);
  rtnl_route_set_priority(obj.get(), r.metric);
  if (!r.prefsrc.empty()) {
    auto src = ip(r.prefsrc);
    check(rtnl_route_set_pref_src(obj.get(), src.get()), "prefsrc");
  }
  if (r.oif > 0 || !r.gateway.empty()) {
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    if (r.oif > 0) rtnl_route_nh_set_ifindex(nh, r.oif);
    if (!r.gateway.empty()) {
      auto gw = ip(r.gateway);
      rtnl_route_nh_set_gateway(nh, gw.get());
    }
    rtnl_route_add_nexthop(obj.get(), nh);  // the route owns it now
  }
  nl_msg* raw = nullptr;
  check(rtnl_route_build_add_request(obj.get(), 0, &raw), "rtnl_route_build_add_request");
  MsgPtr m(raw);
  auto* rtm = static_cast<rtmsg*>(nlmsg_data(nlmsg_hdr(m.get())));
  rtm->rtm_type = r.type;
  rtm->rtm_protocol = r.protocol;
  rtm->rtm_scope = r.scope;
  return done(m.get());
}

NlMessage genl(uint16_t family, uint8_t cmd, const std::function<void(nl_msg*)>& fill,
               uint8_t version) {
  MsgPtr m(nlmsg_alloc());
  if (!m || !genlmsg_put(m.get(), 0, 0, family, 0, 0, cmd, version)) fail("genl header");
  fill(m.get());
  NlMessage out = NlMessage::copy_of(nlmsg_hdr(m.get()));
  return out;
}

namespace {

/// A compact ETHTOOL_A_BITSET_* nest of the features where `bit(f)` holds.
void put_bitset(nl_msg* m, int attr, const std::vector<Feature>& features,
                bool (*bit)(const Feature&)) {
  std::vector<uint32_t> words((features.size() + 31) / 32, 0);
  for (size_t i = 0; i < features.size(); ++i)
    if (bit(features[i])) words[i / 32] |= 1U << (i % 32);
  nlattr* nest = nla_nest_start(m, attr);
  check(nla_put_u32(m, ETHTOOL_A_BITSET_SIZE, static_cast<uint32_t>(features.size())), "SIZE");
  check(nla_put(m, ETHTOOL_A_BITSET_VALUE, static_cast<int>(words.size() * 4), words.data()),
        "VALUE");
  nla_nest_end(m, nest);
}

}  // namespace

void ethtool(FakeNetlink& fake, const std::vector<Feature>& features) {
  constexpr uint16_t kFamily = 28;  // any id: the step must ask for it
  fake.on(
      GENL_ID_CTRL, false,
      [](const FakeNetlink::Request&) -> std::expected<NlMessages, NlError> {
        return NlMessages{genl(GENL_ID_CTRL, CTRL_CMD_NEWFAMILY, [](nl_msg* m) {
          check(nla_put_string(m, CTRL_ATTR_FAMILY_NAME, ETHTOOL_GENL_NAME), "FAMILY_NAME");
          check(nla_put_u16(m, CTRL_ATTR_FAMILY_ID, kFamily), "FAMILY_ID");
        })};
      },
      NETLINK_GENERIC);
  fake.on(
      kFamily, false,
      [features](const FakeNetlink::Request& r) -> std::expected<NlMessages, NlError> {
        uint8_t cmd = r.payload.empty() ? 0 : r.payload[0];  // genlmsghdr.cmd
        if (cmd == ETHTOOL_MSG_FEATURES_GET)
          return NlMessages{genl(kFamily, ETHTOOL_MSG_FEATURES_GET_REPLY, [&](nl_msg* m) {
            put_bitset(m, ETHTOOL_A_FEATURES_HW, features, [](const Feature& f) { return !f.fixed; });
            put_bitset(m, ETHTOOL_A_FEATURES_WANTED, features, [](const Feature& f) { return f.wanted; });
            put_bitset(m, ETHTOOL_A_FEATURES_ACTIVE, features, [](const Feature& f) { return f.active; });
            put_bitset(m, ETHTOOL_A_FEATURES_NOCHANGE, features, [](const Feature&) { return false; });
          })};
        if (cmd == ETHTOOL_MSG_STRSET_GET)
          return NlMessages{genl(kFamily, ETHTOOL_MSG_STRSET_GET_REPLY, [&](nl_msg* m) {
            nlattr* sets = nla_nest_start(m, ETHTOOL_A_STRSET_STRINGSETS);
            nlattr* set = nla_nest_start(m, ETHTOOL_A_STRINGSETS_STRINGSET);
            check(nla_put_u32(m, ETHTOOL_A_STRINGSET_ID, ETH_SS_FEATURES), "STRINGSET_ID");
            check(nla_put_u32(m, ETHTOOL_A_STRINGSET_COUNT, static_cast<uint32_t>(features.size())),
                  "STRINGSET_COUNT");
            nlattr* strings = nla_nest_start(m, ETHTOOL_A_STRINGSET_STRINGS);
            for (size_t i = 0; i < features.size(); ++i) {
              nlattr* s = nla_nest_start(m, ETHTOOL_A_STRINGS_STRING);
              check(nla_put_u32(m, ETHTOOL_A_STRING_INDEX, static_cast<uint32_t>(i)), "INDEX");
              check(nla_put_string(m, ETHTOOL_A_STRING_VALUE, features[i].name.c_str()), "VALUE");
              nla_nest_end(m, s);
            }
            nla_nest_end(m, strings);
            nla_nest_end(m, set);
            nla_nest_end(m, sets);
          })};
        return std::unexpected(NlError{std::strerror(EOPNOTSUPP), EOPNOTSUPP});
      },
      NETLINK_GENERIC);
}

}  // namespace netplay::canned
