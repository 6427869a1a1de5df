/// vxlan.vtep: the configuration of a VXLAN tunnel endpoint (ip -d link show silk-vtep).

#include <arpa/inet.h>
#include <netinet/in.h>

#include <fmt/format.h>
#include <netlink/route/link/vxlan.h>

#include "runner/step/step.h"
#include "steps/net/netlink.h"

namespace netplay {
namespace {

bool is_multicast(nl_addr* a) {
  if (!a) return false;
  auto* b = static_cast<const unsigned char*>(nl_addr_get_binary_addr(a));
  if (nl_addr_get_family(a) == AF_INET) return (b[0] & 0xf0) == 0xe0;
  if (nl_addr_get_family(a) == AF_INET6) return b[0] == 0xff;
  return false;
}

class VxlanVtepStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "vxlan.vtep",
        .summary = "A VXLAN device's VNI, UDP port, local address, underlay device, GBP and "
                   "learning (ip -d link show silk-vtep)",
        .description =
            "Reads the VXLAN configuration of `device` (default silk-vtep) from the kernel: "
            "VNI, UDP destination port, local underlay address and device, group/remote, "
            "learning, VXLAN-GBP, TTL/TOS, source port range, FDB ageing, plus the link's "
            "MTU, MAC and state. Silk uses VNI 1, dstport 4789 (some NSX setups need "
            "another port on every cell), gbp on and learning off; a VTEP whose port differs "
            "between cells drops all overlay traffic silently.\n\n"
            "A device that exists but is not VXLAN fails with its real kind (\"silk-vtep is "
            "a bridge, not vxlan\"); a missing one fails listing the interfaces here.",
        .params = {{.name = "device", .type = ValueType::kString,
                    .doc = "The VXLAN device", .default_value = "silk-vtep"}},
        .facts = {{"device", "string", "The device"},
                  {"kind", "string", "Its kind (vxlan when the step passes)"},
                  {"index", "int", "ifindex"},
                  {"vni", "int", "VXLAN network identifier"},
                  {"dstport", "int", "UDP destination port (4789 is the IANA port)"},
                  {"local", "string", "Local underlay address (\"\" when unset)"},
                  {"group", "string", "Multicast group (\"\" when unset)"},
                  {"remote", "string", "Unicast remote VTEP (\"\" when unset)"},
                  {"dev", "string", "Underlay device name (\"\" when unset)"},
                  {"dev_index", "int", "Underlay device ifindex (0 when unset)"},
                  {"learning", "bool", "Source-address learning"},
                  {"gbp", "bool", "VXLAN Group Based Policy extension"},
                  {"proxy", "bool", "ARP proxy"},
                  {"l2miss", "bool", "L2 miss notifications"},
                  {"l3miss", "bool", "L3 miss notifications"},
                  {"external", "bool", "Collect metadata (external control plane)"},
                  {"udp_csum", "bool", "UDP checksums on transmit (IPv4)"},
                  {"ttl", "int", "Outer TTL, 0 = inherit (auto)"},
                  {"tos", "int", "Outer TOS, 1 = inherit"},
                  {"srcport_min", "int", "Low end of the UDP source port range (0 = kernel "
                                         "default)"},
                  {"srcport_max", "int", "High end of the UDP source port range"},
                  {"ageing", "int", "FDB ageing time in seconds"},
                  {"limit", "int", "Maximum number of FDB entries (0 = unlimited)"},
                  {"mtu", "int", "Device MTU"},
                  {"mac", "string", "Device MAC (Silk: ee:ee:<hex overlay ip>)"},
                  {"admin_up", "bool", "Administratively up (IFF_UP)"},
                  {"oper_state", "string", "Operational state (UNKNOWN is normal for VXLAN)"}},
        .example = "- id: vtep\n  uses: vxlan.vtep\n  netns: \"{{ inputs.cell_netns }}\"\n"
                   "  with: {device: silk-vtep}\n"
                   "  expect: {vni: 1, dstport: \"{{ inputs.vtep_port }}\", gbp: true, "
                   "learning: false}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    auto net = nl::open_links(ctx);
    if (!net) return StepOutput::error(net.error());
    const nl::LinkTable* links = &net->table;
    std::string device = p.str("device", "silk-vtep");
    auto link = links->find(device);
    if (!link) return StepOutput::fail(link.error());
    rtnl_link* l = *link;
    nl::LinkFacts lf = nl::link_facts(l, *links);
    StepOutput o;
    o.facts["device"] = device;
    o.facts["kind"] = lf.kind;
    o.facts["index"] = lf.index;
    if (lf.kind != "vxlan" || !rtnl_link_is_vxlan(l)) {
      o.status = Status::kFail;
      o.message = fmt::format("{} is a{} {}, not vxlan", device,
                              std::string_view("aeiou").find(lf.kind[0]) != std::string::npos
                                  ? "n"
                                  : "",
                              lf.kind);
      return o;
    }
    uint32_t u = 0;
    if (rtnl_link_vxlan_get_id(l, &u) == 0) o.facts["vni"] = u;
    if (rtnl_link_vxlan_get_port(l, &u) == 0) o.facts["dstport"] = u;
    nl_addr* a = nullptr;
    o.facts["local"] = "";
    if (rtnl_link_vxlan_get_local(l, &a) == 0) {
      nl::AddrPtr local(a);
      o.facts["local"] = nl::addr_str(local.get());
    }
    o.facts["group"] = "";
    o.facts["remote"] = "";
    a = nullptr;
    if (rtnl_link_vxlan_get_group(l, &a) == 0) {
      nl::AddrPtr g(a);
      std::string s = nl::addr_str(g.get());
      if (s != "0.0.0.0" && s != "::") o.facts[is_multicast(g.get()) ? "group" : "remote"] = s;
    }
    o.facts["dev"] = "";
    o.facts["dev_index"] = 0;
    if (rtnl_link_vxlan_get_link(l, &u) == 0 && u > 0) {
      o.facts["dev_index"] = u;
      o.facts["dev"] = links->name_of(static_cast<int>(u));
    }
    auto flag = [&](const char* name, int v) {
      if (v >= 0) o.facts[name] = v > 0;
    };
    flag("learning", rtnl_link_vxlan_get_learning(l));
    uint32_t flags = 0;
    o.facts["gbp"] = rtnl_link_vxlan_get_flags(l, &flags) == 0 && (flags & RTNL_LINK_VXLAN_F_GBP);
    flag("proxy", rtnl_link_vxlan_get_proxy(l));
    flag("l2miss", rtnl_link_vxlan_get_l2miss(l));
    flag("l3miss", rtnl_link_vxlan_get_l3miss(l));
    flag("external", rtnl_link_vxlan_get_collect_metadata(l));
    flag("udp_csum", rtnl_link_vxlan_get_udp_csum(l));
    if (int v = rtnl_link_vxlan_get_ttl(l); v >= 0) o.facts["ttl"] = v;
    if (int v = rtnl_link_vxlan_get_tos(l); v >= 0) o.facts["tos"] = v;
    ifla_vxlan_port_range range{};
    if (rtnl_link_vxlan_get_port_range(l, &range) == 0) {
      o.facts["srcport_min"] = ntohs(range.low);
      o.facts["srcport_max"] = ntohs(range.high);
    }
    if (rtnl_link_vxlan_get_ageing(l, &u) == 0) o.facts["ageing"] = u;
    if (rtnl_link_vxlan_get_limit(l, &u) == 0) o.facts["limit"] = u;
    o.facts["mtu"] = lf.mtu;
    o.facts["mac"] = lf.mac;
    o.facts["admin_up"] = lf.admin_up;
    o.facts["oper_state"] = lf.oper_state;

    auto num = [&](const char* k) -> std::string {
      return o.facts.contains(k) ? o.facts[k].dump() : "?";
    };
    o.message = fmt::format("{}: vni {} dstport {}", device, num("vni"), num("dstport"));
    if (!o.facts["local"].get<std::string>().empty())
      o.message += " local " + o.facts["local"].get<std::string>();
    if (!o.facts["dev"].get<std::string>().empty())
      o.message += " dev " + o.facts["dev"].get<std::string>();
    if (o.facts["gbp"] == true) o.message += " gbp";
    if (o.facts.value("learning", true) == false) o.message += " nolearning";
    o.message += lf.admin_up ? " up" : " DOWN";
    return o;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(VxlanVtepStep);
}  // namespace netplay
