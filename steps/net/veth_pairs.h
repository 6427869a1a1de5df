#pragma once
/// Pairing the veth ends of a whole node: the runbook's "eth0@if4615 <-> 4615: name@if2"
/// done for every namespace at once.
///
/// Each namespace is read with one RTM_GETLINK dump. An end's IFLA_LINK is the peer's
/// ifindex *in the peer's namespace* and IFLA_LINK_NETNSID names that namespace *as seen
/// from the end's own namespace*; ifindexes repeat across namespaces, so a pair is only
/// accepted when the NETNSID says the peer's namespace is the one it was found in.

#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <linux/netlink.h>

#include "steps/net/netns_scan.h"

namespace netplay::veth {

/// One link of a dump, with only what pairing and the table need.
struct Link {
  int index = 0;
  std::string name;
  bool is_veth = false;
  int peer_index = 0;                // IFLA_LINK
  std::optional<int> peer_netnsid;   // IFLA_LINK_NETNSID; none: the peer is in this namespace
  int master = 0;                    // IFLA_MASTER
};

/// Decodes one RTM_NEWLINK message; nullopt for other messages or malformed ones.
std::optional<Link> parse_link(const nlmsghdr* h);

/// The payload of an RTM_GETLINK dump request (ifinfomsg and attributes) that asks the
/// kernel to skip statistics (RTEXT_FILTER_SKIP_STATS) and, with `veth_only`, to send only
/// veth links (an IFLA_INFO_KIND filter): most of a dump's cost is the kernel filling
/// attributes nobody reads here.
std::vector<unsigned char> link_dump_request(bool veth_only);

/// One namespace's links, as dumped.
struct NsLinks {
  netns::Namespace ns;
  std::vector<Link> links;
  /// NETNSID under which this namespace sees the observer's (the step's) namespace;
  /// -1 unknown or unassigned. Lets an end whose peer lives in the observer be paired
  /// without any further request.
  int observer_nsid = -1;

  const Link* by_index(int ifindex) const;
  std::string name_of(int ifindex) const;
};

struct End {
  size_t ns = 0;    // index into the NsLinks vector
  size_t link = 0;  // index into its links
};

struct Pairing {
  std::vector<std::pair<End, End>> pairs;  // (container side, host side)
  std::vector<End> unresolved;             // peer namespace not among those scanned
};

/// The NETNSID under which namespace `from` sees namespace `to`; nullopt if it cannot be
/// asked (the caller then treats the candidate as unverified).
using NsidProbe = std::function<std::optional<int>(size_t from, size_t to)>;

/// Pairs every veth end in `all`. `observer` indexes the step's own namespace, whose
/// ends are paired last (from the other side, without requests). Ends whose peer is
/// neither in their own namespace nor in the observer's are matched by (ifindex, peer
/// ifindex) and verified with `probe`. Each pair appears once, oriented so that the
/// second end is the "host" side: the observer's end, else the end in the namespace
/// holding more veths.
Pairing pair_all(const std::vector<NsLinks>& all, size_t observer, const NsidProbe& probe);

}  // namespace netplay::veth
