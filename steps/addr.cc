/// addr: the addresses of an interface, or which interface holds an address (the runbook's
/// `ip addr show | grep -B3 <container ip>`), from one address dump.

#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <fmt/format.h>
#include <netlink/route/addr.h>

#include "runner/step/step.h"
#include "steps/net/netlink.h"

namespace netplay {
namespace {

struct AddrRow {
  int ifindex = 0;
  json j;           // {ip, prefix, peer?, scope, family, label?, flags}
  std::string ip;   // local
  std::string peer;
};

std::vector<std::string> split_flags(unsigned flags) {
  char buf[256] = {};
  rtnl_addr_flags2str(static_cast<int>(flags), buf, sizeof buf);
  std::vector<std::string> out;
  std::string cur;
  for (const char* c = buf; *c; ++c) {
    if (*c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += *c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

AddrRow to_row(rtnl_addr* a) {
  AddrRow r;
  r.ifindex = rtnl_addr_get_ifindex(a);
  int fam = rtnl_addr_get_family(a);
  r.ip = nl::addr_str(rtnl_addr_get_local(a));
  r.peer = nl::addr_str(rtnl_addr_get_peer(a));
  r.j["ip"] = r.ip;
  r.j["prefix"] = rtnl_addr_get_prefixlen(a);
  if (!r.peer.empty()) r.j["peer"] = r.peer;
  r.j["cidr"] = fmt::format("{}/{}", r.ip, rtnl_addr_get_prefixlen(a));
  r.j["family"] = fam == AF_INET6 ? "inet6" : "inet";
  r.j["scope"] = nl::scope_name(rtnl_addr_get_scope(a));
  const char* label = rtnl_addr_get_label(a);
  if (label && *label) r.j["label"] = label;
  r.j["flags"] = split_flags(rtnl_addr_get_flags(a));
  return r;
}

class AddrStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "addr",
        .summary = "An interface's IP addresses, or which interface holds an IP (ip addr show)",
        .description =
            "With `interface`: the addresses on that interface (as `ip addr show dev IF`). "
            "With `ip`: finds the interface that carries the address, as its own (local) "
            "address or as the peer of a point-to-point address, the way Silk's host-side "
            "`s-...` interface carries `169.254.0.1 peer <container ip>/32`: the runbook's "
            "`ip addr show | grep -B3 <container ip>`. Reports all addresses of that "
            "interface plus the one that matched.\n\n"
            "A missing interface or an address no interface holds fails the step, listing "
            "what exists; `must_exist: false` reports found=false instead.",
        .params = {{.name = "interface", .type = ValueType::kString,
                    .doc = "Interface name, e.g. c-010255211040"},
                   {.name = "ip", .type = ValueType::kIp,
                    .doc = "Find the interface holding this address (local or peer)"},
                   {.name = "family", .type = ValueType::kString,
                    .doc = "Which addresses to list", .default_value = "any",
                    .choices = {"any", "inet", "inet6"}},
                   {.name = "must_exist", .type = ValueType::kBool,
                    .doc = "Fail when nothing is found (false: pass with found=false)",
                    .default_value = true}},
        .facts = {{"found", "bool", "The interface (or address) was found"},
                  {"interface", "string", "The interface's name"},
                  {"index", "int", "The interface's ifindex"},
                  {"addresses", "list",
                   "[{ip, prefix, peer, cidr, family, scope, label, flags}] in kernel order"},
                  {"ips", "list", "Just the local addresses, e.g. expect: {ips: {contains: "
                                  "10.255.0.2}}"},
                  {"cidrs", "list", "Local addresses with prefix, e.g. 10.255.0.2/32"},
                  {"peers", "list", "Peer addresses of point-to-point addresses"},
                  {"count", "int", "Number of addresses listed"},
                  {"matched", "map", "ip mode: the address that matched"},
                  {"matched_as", "string", "ip mode: local or peer"}},
        .one_of = {{"interface", "ip"}},
        .example = "- id: host_side\n  uses: addr\n  netns: \"{{ inputs.cell_netns }}\"\n"
                   "  with: {ip: \"{{ inputs.container_ip }}\"}\n"
                   "  expect: {interface: \"s-010255211040\", matched_as: peer}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    auto net = nl::open_links(ctx);
    if (!net) return StepOutput::error(net.error());
    const nl::LinkTable* links = &net->table;
    ifaddrmsg hdr{};
    hdr.ifa_family = AF_UNSPEC;
    auto msgs = net->client->dump(RTM_GETADDR, nl::bytes_of(hdr), "address dump");
    if (!msgs) return StepOutput::error(msgs.error().message);
    auto cache = nl::parse_cache("route/addr", *msgs, "address dump");
    if (!cache) return StepOutput::error(cache.error());
    std::vector<AddrRow> rows;
    for (nl_object* o = nl_cache_get_first(cache->get()); o; o = nl_cache_get_next(o))
      rows.push_back(to_row(reinterpret_cast<rtnl_addr*>(o)));
    bool must = p.boolean("must_exist", true);
    std::string family = p.str("family", "any");

    int ifindex = 0;
    StepOutput out;
    if (p.has("ip")) {
      std::string want = p.str("ip");
      auto canon = nl::parse_ip(want);
      if (!canon) return StepOutput::error(canon.error());
      std::string w = nl::addr_str(canon->get());  // "fe80::0:1" -> "fe80::1"
      const AddrRow* hit = nullptr;
      for (const auto& r : rows)
        if (r.ip == w) { hit = &r; break; }
      if (!hit)
        for (const auto& r : rows)
          if (r.peer == w) { hit = &r; break; }
      if (!hit) {
        StepOutput o;
        o.status = must ? Status::kFail : Status::kPass;
        o.facts["found"] = false;
        o.facts["count"] = 0;
        std::string here;
        for (const auto& r : rows) {
          if (!here.empty()) here += ", ";
          here += fmt::format("{} {}", links->name_of(r.ifindex), r.j["cidr"].get<std::string>());
          if (!r.peer.empty()) here += " peer " + r.peer;
        }
        o.message = fmt::format(
            "no interface in this namespace has address {} (as its own or as a peer); "
            "addresses here: {}",
            w, here.empty() ? "(none)" : here);
        return o;
      }
      ifindex = hit->ifindex;
      out.facts["matched"] = hit->j;
      out.facts["matched_as"] = hit->ip == w ? "local" : "peer";
    } else {
      auto link = links->find(p.str("interface"));
      if (!link) {
        StepOutput o;
        o.status = must ? Status::kFail : Status::kPass;
        o.facts["found"] = false;
        o.facts["count"] = 0;
        o.message = link.error();
        return o;
      }
      ifindex = rtnl_link_get_ifindex(*link);
    }

    json addrs = json::array(), ips = json::array(), cidrs = json::array(),
         peers = json::array();
    for (const auto& r : rows) {
      if (r.ifindex != ifindex) continue;
      if (family != "any" && r.j["family"] != family) continue;
      addrs.push_back(r.j);
      ips.push_back(r.ip);
      cidrs.push_back(r.j["cidr"]);
      if (!r.peer.empty()) peers.push_back(r.peer);
    }
    std::string name = links->name_of(ifindex);
    out.facts["found"] = true;
    out.facts["interface"] = name;
    out.facts["index"] = ifindex;
    out.facts["count"] = addrs.size();
    std::string list;
    for (const auto& a : addrs) {
      if (!list.empty()) list += ", ";
      list += a["cidr"].get<std::string>();
      if (a.contains("peer")) list += " peer " + a["peer"].get<std::string>();
    }
    out.message = fmt::format("{}: {}", name, list.empty() ? "no addresses" : list);
    out.facts["addresses"] = std::move(addrs);
    out.facts["ips"] = std::move(ips);
    out.facts["cidrs"] = std::move(cidrs);
    out.facts["peers"] = std::move(peers);
    return out;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(AddrStep);
}  // namespace netplay
