#pragma once
/// Canned netlink messages for unit tests of steps on FakeNetlink (runner/step/fakes.h):
/// each builder returns one message as the kernel would send it in a dump or a reply.
/// Addresses, neighbours and routes are built from libnl objects with libnl's own request
/// builders (rtnl_*_build_add_request); links and FDB entries attribute by attribute, since
/// the kernel reports attributes (IFLA_LINK_NETNSID, IFLA_QDISC, NDA_MASTER) that requests
/// never carry.
///
///   FakeServices fakes;
///   fakes.fake_netlink.on_dump(RTM_GETLINK, {canned::link({.index = 1, .name = "lo",
///                                                          .kind = "", .arptype = ARPHRD_LOOPBACK}),
///                                            canned::link({.index = 2, .name = "eth0"})});

#include <linux/if.h>
#include <linux/if_arp.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <netlink/msg.h>

#include "runner/step/fakes.h"
#include "runner/step/services.h"

namespace netplay::canned {

/// An RTM_NEWLINK. Defaults: an UP Ethernet interface with carrier.
struct Link {
  int index = 0;
  std::string name;
  std::string kind;  // IFLA_INFO_KIND: veth, bridge, vxlan, ...; "" for a NIC (or lo)
  unsigned flags = IFF_UP | IFF_BROADCAST | IFF_MULTICAST | IFF_RUNNING | IFF_LOWER_UP;
  uint8_t oper_state = IF_OPER_UP;
  unsigned mtu = 1500;
  std::string mac;  // "aa:bb:cc:dd:ee:ff"; "" for none
  uint16_t arptype = ARPHRD_ETHER;
  int master = 0;                   // IFLA_MASTER
  int link = 0;                     // IFLA_LINK: a veth's peer ifindex
  std::optional<int> link_netnsid;  // IFLA_LINK_NETNSID: the peer's namespace, seen from here
  std::string qdisc = "noqueue";
  unsigned txqlen = 1000;
};
NlMessage link(const Link& l);

/// The IFLA_INFO_DATA of a vxlan link.
struct Vxlan {
  uint32_t vni = 1;
  uint16_t dstport = 4789;
  std::string local;  // "" for none
  std::string group;  // multicast group or unicast remote; "" for none
  int dev = 0;        // underlay ifindex
  bool learning = true;
  bool gbp = false;
  uint8_t ttl = 0;
  uint8_t tos = 1;
  uint32_t ageing = 300;
  uint32_t limit = 0;
};
/// An RTM_NEWLINK of kind vxlan (l.kind is ignored).
NlMessage vxlan(Link l, const Vxlan& v);

/// An RTM_NEWADDR.
struct Addr {
  int index = 0;
  std::string cidr;  // "192.0.2.1/24"
  std::string peer;  // point-to-point peer, "" for none
  uint8_t scope = RT_SCOPE_UNIVERSE;
  std::string label;
  unsigned flags = 0x80;  // IFA_F_PERMANENT
};
NlMessage addr(const Addr& a);

/// An RTM_NEWNEIGH of an ARP/NDP entry.
struct Neigh {
  int index = 0;
  std::string ip;
  std::string lladdr;  // "" for none (INCOMPLETE, FAILED)
  uint16_t state = NUD_REACHABLE;
  uint8_t flags = 0;
};
NlMessage neigh(const Neigh& n);

/// An RTM_NEWNEIGH of family AF_BRIDGE: an FDB entry.
struct Fdb {
  int index = 0;  // the device holding the entry (vxlan device, bridge port)
  std::string mac;
  std::string dst;  // remote VTEP, "" for none
  int master = 0;   // NDA_MASTER: the bridge
  uint16_t state = NUD_PERMANENT;
  uint8_t flags = NTF_SELF;
  std::optional<uint32_t> vni;
  std::optional<uint16_t> vlan;
};
NlMessage fdb(const Fdb& f);

/// An RTM_NEWROUTE with one next hop (or none).
struct Route {
  std::string dst = "default";  // "10.255.2.0/24", "default", "::/0"
  int family = AF_INET;         // for "default"
  std::string gateway;          // "" for a directly connected route
  int oif = 0;
  std::string prefsrc;
  uint32_t table = RT_TABLE_MAIN;
  uint8_t type = RTN_UNICAST;
  uint8_t protocol = RTPROT_BOOT;
  uint8_t scope = RT_SCOPE_UNIVERSE;
  uint32_t metric = 0;
};
NlMessage route(const Route& r);

/// A generic netlink message of `family` (its id) and command `cmd`; `fill` adds the
/// attributes after the genl header.
NlMessage genl(uint16_t family, uint8_t cmd, const std::function<void(nl_msg*)>& fill,
               uint8_t version = 1);

/// One interface feature as ethtool reports it.
struct Feature {
  std::string name;
  bool active = false;
  bool wanted = false;
  bool fixed = false;
};
/// Makes `fake` answer like a kernel with the ethtool generic netlink family: the family's
/// id on CTRL_CMD_GETFAMILY, `features` (as compact bitsets) on ETHTOOL_MSG_FEATURES_GET and
/// their names on ETHTOOL_MSG_STRSET_GET, for any device.
void ethtool(FakeNetlink& fake, const std::vector<Feature>& features);

}  // namespace netplay::canned
