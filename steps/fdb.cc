/// fdb: forwarding database entries of a bridge or VXLAN device (bridge fdb show dev DEV),
/// from one AF_BRIDGE neighbour dump.

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <netlink/attr.h>
#include <netlink/msg.h>

#include "runner/step/step.h"
#include "steps/net/netlink.h"

namespace netplay {
namespace {

/// State words as `bridge fdb` prints them.
std::string fdb_state(int nud) {
  if (nud & NUD_PERMANENT) return "permanent";
  if (nud & NUD_NOARP) return "static";
  if (nud & NUD_STALE) return "stale";
  std::string s = nl::neigh_state_main(nud);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string ip_bytes(const nlattr* a) {
  char buf[INET6_ADDRSTRLEN] = {};
  int len = nla_len(a);
  if (len == 4) inet_ntop(AF_INET, nla_data(a), buf, sizeof buf);
  else if (len == 16) inet_ntop(AF_INET6, nla_data(a), buf, sizeof buf);
  return buf;
}

class FdbStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "fdb",
        .summary = "Forwarding database entries of a bridge or VXLAN device (bridge fdb show)",
        .description =
            "Lists the FDB entries of `device`: for a VXLAN device the MAC -> remote VTEP "
            "(dst) mappings, for a bridge the entries of its ports. Filter with `mac` and/or "
            "`dst`. In Silk every remote cell's VTEP MAC (ee:ee:<hex overlay ip>) must map "
            "to that cell's underlay address: `{device: silk-vtep, mac: ee:ee:0a:ff:02:00}` "
            "expecting `entries.0.dst`.\n\n"
            "When a filter is given and nothing matches, the step fails listing the entries "
            "that exist (`must_exist: false` reports found=false instead); without a filter "
            "an empty table is a fact (count 0), not a failure.",
        .params = {{.name = "device", .type = ValueType::kString,
                    .doc = "Bridge or VXLAN device, e.g. silk-vtep", .required = true},
                   {.name = "mac", .type = ValueType::kString,
                    .doc = "Only entries for this MAC (any case)"},
                   {.name = "dst", .type = ValueType::kIp,
                    .doc = "Only entries pointing at this remote VTEP"},
                   {.name = "must_exist", .type = ValueType::kBool,
                    .doc = "With a filter: fail when nothing matches", .default_value = true}},
        .facts = {{"found", "bool", "At least one entry (after filtering)"},
                  {"count", "int", "Number of entries (after filtering)"},
                  {"entries", "list",
                   "[{mac, dst, vni, port, via, dev, master, vlan, flags, state}]; flags: self, "
                   "master, router, extern_learn, offload, sticky; state: permanent, static, "
                   "stale, reachable, ..."},
                  {"macs", "list", "The entries' MACs"},
                  {"dsts", "list", "The entries' remote VTEP addresses"},
                  {"device", "string", "The device"},
                  {"kind", "string", "The device's kind (vxlan, bridge, ...)"}},
        .example = "- id: remote_vtep_fdb\n  uses: fdb\n  netns: \"{{ inputs.cell_netns }}\"\n"
                   "  with: {device: silk-vtep, mac: \"ee:ee:0a:ff:02:00\"}\n"
                   "  expect: {entries.0.dst: 10.0.0.2}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    auto net = nl::open_links(ctx);
    if (!net) return StepOutput::error(net.error());
    const nl::LinkTable* links = &net->table;
    std::string device = p.str("device");
    auto link = links->find(device);
    if (!link) return StepOutput::fail(link.error());
    int idx = rtnl_link_get_ifindex(*link);
    std::string kind = nl::link_facts(*link, *links).kind;
    bool is_bridge = kind == "bridge";
    std::string want_mac = lower(p.str("mac"));
    std::string want_dst;
    if (p.has("dst")) {
      auto a = nl::parse_ip(p.str("dst"));
      if (!a) return StepOutput::error(a.error());
      want_dst = nl::addr_str(a->get());
    }

    json entries = json::array(), all_here = json::array();
    ndmsg hdr{};
    hdr.ndm_family = AF_BRIDGE;
    auto msgs = net->client->dump(RTM_GETNEIGH, nl::bytes_of(hdr), "fdb dump");
    if (!msgs) return StepOutput::error(msgs.error().message);
    for (auto& m : *msgs) {
      nlmsghdr* h = m.hdr();
      if (h->nlmsg_type != RTM_NEWNEIGH) continue;
      auto* nd = static_cast<ndmsg*>(nlmsg_data(h));
      if (nd->ndm_family != AF_BRIDGE) continue;
      nlattr* tb[NDA_MAX + 1] = {};
      if (nlmsg_parse(h, sizeof(ndmsg), tb, NDA_MAX, nullptr) < 0) continue;
      int master = tb[NDA_MASTER] ? static_cast<int>(nla_get_u32(tb[NDA_MASTER])) : 0;
      if (nd->ndm_ifindex != idx && !(is_bridge && master == idx)) continue;
      json e;
      std::string mac;
      if (tb[NDA_LLADDR])
        mac = nl::format_mac(static_cast<const unsigned char*>(nla_data(tb[NDA_LLADDR])),
                             nla_len(tb[NDA_LLADDR]));
      e["mac"] = mac;
      std::string dst = tb[NDA_DST] ? ip_bytes(tb[NDA_DST]) : "";
      if (!dst.empty()) e["dst"] = dst;
      if (tb[NDA_VNI]) e["vni"] = nla_get_u32(tb[NDA_VNI]);
      if (tb[NDA_SRC_VNI]) e["src_vni"] = nla_get_u32(tb[NDA_SRC_VNI]);
      if (tb[NDA_PORT]) e["port"] = ntohs(nla_get_u16(tb[NDA_PORT]));
      if (tb[NDA_IFINDEX])
        e["via"] = links->name_of(static_cast<int>(nla_get_u32(tb[NDA_IFINDEX])));
      e["dev"] = links->name_of(nd->ndm_ifindex);
      if (master) e["master"] = links->name_of(master);
      if (tb[NDA_VLAN]) e["vlan"] = nla_get_u16(tb[NDA_VLAN]);
      e["flags"] = nl::neigh_flag_names(nd->ndm_flags);
      e["state"] = fdb_state(nd->ndm_state);
      all_here.push_back(e);
      if (!want_mac.empty() && mac != want_mac) continue;
      if (!want_dst.empty() && dst != want_dst) continue;
      entries.push_back(std::move(e));
    }

    StepOutput o;
    bool filtered = !want_mac.empty() || !want_dst.empty();
    json macs = json::array(), dsts = json::array();
    for (const auto& e : entries) {
      macs.push_back(e["mac"]);
      if (e.contains("dst")) dsts.push_back(e["dst"]);
    }
    o.facts["found"] = !entries.empty();
    o.facts["count"] = entries.size();
    o.facts["device"] = device;
    o.facts["kind"] = kind;
    auto line = [](const json& e) {
      std::string s = e["mac"].get<std::string>();
      if (e.contains("dst")) s += fmt::format(" dst {}", e["dst"].get<std::string>());
      if (e.contains("vni")) s += fmt::format(" vni {}", e["vni"].get<unsigned>());
      if (e["dev"] != "" && e.contains("master"))
        s += fmt::format(" dev {}", e["dev"].get<std::string>());
      s += fmt::format(" {}", e["state"].get<std::string>());
      return s;
    };
    if (filtered && entries.empty()) {
      o.status = p.boolean("must_exist", true) ? Status::kFail : Status::kPass;
      std::string want;
      if (!want_mac.empty()) want = want_mac;
      if (!want_dst.empty()) want += (want.empty() ? "dst " : " dst ") + want_dst;
      std::string here;
      size_t shown = 0;
      for (const auto& e : all_here) {
        if (shown++ == 12) {
          here += ", ...";
          break;
        }
        if (!here.empty()) here += ", ";
        here += line(e);
      }
      o.message = fmt::format("no FDB entry for {} on {}; entries here: {}", want, device,
                              here.empty() ? "(none)" : here);
    } else {
      o.message = fmt::format("{}: {} entr{}", device, entries.size(),
                              entries.size() == 1 ? "y" : "ies");
      if (!entries.empty() && entries.size() <= 4) {
        std::string list;
        for (const auto& e : entries) list += (list.empty() ? "" : ", ") + line(e);
        o.message += " (" + list + ")";
      }
    }
    o.facts["entries"] = std::move(entries);
    o.facts["macs"] = std::move(macs);
    o.facts["dsts"] = std::move(dsts);
    return o;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(FdbStep);
}  // namespace netplay
