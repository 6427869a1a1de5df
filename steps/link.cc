/// link: one interface of the step's namespace as the kernel sees it (RTM_GETLINK).

#include <fmt/format.h>

#include "runner/step/step.h"
#include "steps/net/netlink.h"

namespace netplay {
namespace {

class LinkStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "link",
        .summary = "An interface's kind, state, MTU, MAC, master and veth peer (ip -d link show)",
        .description =
            "Looks up one interface of the step's network namespace by `name` or `index` "
            "with one netlink link dump and reports what `ip -d link show DEV` shows: the "
            "kind (veth, vxlan, bridge, openvswitch, dummy; `device` for a NIC without a "
            "kind, `loopback` for lo), operational state, admin state, MTU, MAC address, "
            "master (bridge or OVS), and for a veth its peer's ifindex plus the NETNSID of "
            "the namespace the peer lives in (what `eth0@if4615 ... link-netnsid 0` "
            "shows).\n\n"
            "A missing interface fails the step with the list of interfaces that do exist. "
            "To check that an interface is absent, set `must_exist: false` and expect "
            "`exists: false`.",
        .params =
            {{.name = "name", .type = ValueType::kString, .doc = "Interface name, e.g. silk-vtep"},
             {.name = "index", .type = ValueType::kInt, .doc = "Interface index (ifindex)"},
             {.name = "must_exist",
              .type = ValueType::kBool,
              .doc = "Fail when the interface is missing (false: pass with exists=false)",
              .default_value = true}},
        .facts =
            {{"exists", "bool", "The interface exists in this namespace"},
             {"name", "string", "Interface name"},
             {"index", "int", "ifindex"},
             {"kind", "string",
              "veth, vxlan, bridge, openvswitch, dummy, ...; device (no kind) or loopback"},
             {"oper_state", "string", "UP, DOWN, UNKNOWN, LOWERLAYERDOWN, DORMANT, ..."},
             {"admin_up", "bool", "Administratively up (IFF_UP)"},
             {"lower_up", "bool", "Carrier present (IFF_LOWER_UP)"},
             {"mtu", "int", "MTU in bytes"},
             {"mac", "string", "Link-layer address, lowercase aa:bb:cc:dd:ee:ff"},
             {"broadcast", "string", "Link-layer broadcast address"},
             {"master", "string", "Name of the bridge/OVS/bond this interface is enslaved to"},
             {"master_index", "int", "ifindex of the master"},
             {"peer_index", "int",
              "IFLA_LINK: the veth peer's ifindex (in the namespace given by peer_netnsid), "
              "or the lower device of a vlan/macvlan"},
             {"peer_netnsid", "int",
              "IFLA_LINK_NETNSID: the id under which this namespace knows the peer's one; "
              "absent when the peer is here"},
             {"peer_name", "string", "The peer's name, when it lives in this namespace"},
             {"flags", "list", "Interface flags as `ip link` prints them (UP, LOWER_UP, ...)"},
             {"qdisc", "string", "Root queueing discipline"},
             {"txqlen", "int", "Transmit queue length"},
             {"alias", "string", "ifalias, if set"},
             {"stats", "map",
              "rx_/tx_ packets, bytes, errors, dropped (e.g. expect: {stats.rx_dropped: 0})"},
             {"interfaces", "list", "When missing: the interfaces that do exist here"}},
        .one_of = {{"name", "index"}},
        .example = "- id: container_if\n  uses: link\n  netns: \"{{ inputs.container_netns }}\"\n"
                   "  with: {name: eth0}\n"
                   "  expect: {oper_state: UP, mac: \"ee:ee:0a:ff:d3:28\", kind: veth}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    auto net = nl::open_links(ctx);
    if (!net) return StepOutput::error(net.error());
    const nl::LinkTable& table = net->table;
    std::string name = p.str("name");
    int index = static_cast<int>(p.integer("index", 0));
    auto link = table.find(name, index);
    if (!link) {
      StepOutput o;
      o.status = p.boolean("must_exist", true) ? Status::kFail : Status::kPass;
      o.message = link.error();
      o.facts["exists"] = false;
      json names = json::array();
      for (rtnl_link* l : table.all())
        if (const char* n = rtnl_link_get_name(l)) names.push_back(n);
      o.facts["interfaces"] = std::move(names);
      return o;
    }
    nl::LinkFacts f = nl::link_facts(*link, table);
    StepOutput o;
    o.facts = nl::to_json(f);
    std::string peer;
    if (f.peer_index > 0)
      peer = f.peer_netnsid ? fmt::format("@if{} (netnsid {})", f.peer_index, *f.peer_netnsid)
                            : fmt::format("@if{}", f.peer_index);
    o.message = fmt::format("{}{}: {} {} mtu {} mac {}{}", f.name, peer, f.kind, f.oper_state,
                            f.mtu, f.mac.empty() ? "none" : f.mac,
                            f.master.empty() ? "" : " master " + f.master);
    return o;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(LinkStep);
}  // namespace netplay
