#include "steps/net/veth_pairs.h"

#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>

#include <netlink/attr.h>
#include <netlink/msg.h>

namespace netplay::veth {

std::optional<Link> parse_link(const nlmsghdr* h) {
  if (h->nlmsg_type != RTM_NEWLINK) return std::nullopt;
  nlattr* tb[IFLA_MAX + 1] = {};
  auto* hdr = const_cast<nlmsghdr*>(h);
  if (nlmsg_parse(hdr, sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0) return std::nullopt;
  const auto* ifi = static_cast<const ifinfomsg*>(nlmsg_data(hdr));
  Link l;
  l.index = ifi->ifi_index;
  if (tb[IFLA_IFNAME]) l.name = nla_get_string(tb[IFLA_IFNAME]);
  if (tb[IFLA_LINK]) l.peer_index = static_cast<int>(nla_get_u32(tb[IFLA_LINK]));
  if (tb[IFLA_LINK_NETNSID])
    l.peer_netnsid = static_cast<int32_t>(nla_get_u32(tb[IFLA_LINK_NETNSID]));
  if (tb[IFLA_MASTER]) l.master = static_cast<int>(nla_get_u32(tb[IFLA_MASTER]));
  if (tb[IFLA_LINKINFO]) {
    nlattr* li[IFLA_INFO_MAX + 1] = {};
    if (nla_parse_nested(li, IFLA_INFO_MAX, tb[IFLA_LINKINFO], nullptr) == 0 &&
        li[IFLA_INFO_KIND])
      l.is_veth = std::strcmp(nla_get_string(li[IFLA_INFO_KIND]), "veth") == 0;
  }
  return l;
}

std::vector<unsigned char> link_dump_request(bool veth_only) {
  std::unique_ptr<nl_msg, decltype(&nlmsg_free)> m(nlmsg_alloc_simple(RTM_GETLINK, 0), &nlmsg_free);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  if (!m || nlmsg_append(m.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0 ||
      nla_put_u32(m.get(), IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS) < 0)
    return {};
  if (veth_only) {
    nlattr* li = nla_nest_start(m.get(), IFLA_LINKINFO);
    if (!li || nla_put_string(m.get(), IFLA_INFO_KIND, "veth") < 0) return {};
    nla_nest_end(m.get(), li);
  }
  const nlmsghdr* h = nlmsg_hdr(m.get());
  const auto* data = static_cast<const unsigned char*>(nlmsg_data(h));
  return std::vector<unsigned char>(data, data + nlmsg_datalen(h));
}

const Link* NsLinks::by_index(int ifindex) const {
  for (const auto& l : links)
    if (l.index == ifindex) return &l;
  return nullptr;
}

std::string NsLinks::name_of(int ifindex) const {
  const Link* l = by_index(ifindex);
  return l ? l->name : std::string();
}

namespace {

/// Position of each ifindex in each namespace's link list.
class IndexMap {
 public:
  explicit IndexMap(const std::vector<NsLinks>& all) : pos_(all.size()) {
    for (size_t n = 0; n < all.size(); ++n) {
      auto& v = pos_[n];
      v.reserve(all[n].links.size());
      for (size_t i = 0; i < all[n].links.size(); ++i) v.emplace_back(all[n].links[i].index, i);
      std::sort(v.begin(), v.end());
    }
  }
  std::optional<size_t> find(size_t ns, int ifindex) const {
    const auto& v = pos_[ns];
    auto it = std::lower_bound(v.begin(), v.end(), std::pair<int, size_t>(ifindex, 0));
    if (it == v.end() || it->first != ifindex) return std::nullopt;
    return it->second;
  }

 private:
  std::vector<std::vector<std::pair<int, size_t>>> pos_;
};

}  // namespace

Pairing pair_all(const std::vector<NsLinks>& all, size_t observer, const NsidProbe& probe) {
  Pairing out;
  IndexMap index(all);
  std::vector<std::vector<bool>> claimed(all.size());
  std::vector<size_t> veths(all.size(), 0);
  // Ends whose peer is in another namespace, by (own ifindex, peer ifindex): the candidates
  // for an end that must be matched across two namespaces neither of which is the observer.
  std::map<std::pair<int, int>, std::vector<End>> remote;
  for (size_t n = 0; n < all.size(); ++n) {
    claimed[n].assign(all[n].links.size(), false);
    for (size_t i = 0; i < all[n].links.size(); ++i) {
      const Link& l = all[n].links[i];
      if (!l.is_veth) continue;
      ++veths[n];
      if (l.peer_netnsid) remote[{l.index, l.peer_index}].push_back({n, i});
    }
  }
  auto link = [&](End e) -> const Link& { return all[e.ns].links[e.link]; };
  auto points_back = [&](End cand, const Link& x) {
    const Link& c = link(cand);
    return c.is_veth && c.peer_index == x.index && !claimed[cand.ns][cand.link];
  };

  std::vector<size_t> order;
  for (size_t n = 0; n < all.size(); ++n)
    if (n != observer) order.push_back(n);
  if (observer < all.size()) order.push_back(observer);

  for (size_t a : order) {
    for (size_t i = 0; i < all[a].links.size(); ++i) {
      const Link& x = all[a].links[i];
      if (!x.is_veth || claimed[a][i]) continue;
      std::optional<End> peer;
      if (!x.peer_netnsid) {
        if (auto j = index.find(a, x.peer_index); j && *j != i && points_back({a, *j}, x))
          peer = End{a, *j};
      } else if (a != observer && observer < all.size() && all[a].observer_nsid >= 0 &&
                 *x.peer_netnsid == all[a].observer_nsid) {
        if (auto j = index.find(observer, x.peer_index); j && points_back({observer, *j}, x) &&
                                                         link({observer, *j}).peer_netnsid)
          peer = End{observer, *j};
      } else if (auto it = remote.find({x.peer_index, x.index}); it != remote.end()) {
        for (End c : it->second) {
          if (c.ns == a || !points_back(c, x)) continue;
          if (probe(a, c.ns) == x.peer_netnsid) {
            peer = c;
            break;
          }
        }
      }
      End me{a, i};
      if (!peer) continue;  // perhaps paired from the other side later
      claimed[a][i] = claimed[peer->ns][peer->link] = true;
      bool peer_is_host = peer->ns == observer ||
                          (a != observer && veths[peer->ns] > veths[a]) ||
                          (a == peer->ns && link(*peer).index > x.index);
      if (peer_is_host)
        out.pairs.emplace_back(me, *peer);
      else
        out.pairs.emplace_back(*peer, me);
    }
  }
  for (size_t n = 0; n < all.size(); ++n)
    for (size_t i = 0; i < all[n].links.size(); ++i)
      if (all[n].links[i].is_veth && !claimed[n][i]) out.unresolved.push_back({n, i});
  return out;
}

}  // namespace netplay::veth
