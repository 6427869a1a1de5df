/// neigh: an ARP/NDP entry (ip neigh show IP [dev DEV]) from one neighbour dump.

#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <fmt/format.h>
#include <netlink/route/neighbour.h>

#include "runner/step/step.h"
#include "steps/net/netlink.h"

namespace netplay {
namespace {

using NeighPtr = std::unique_ptr<rtnl_neigh, nl::Deleter<rtnl_neigh, rtnl_neigh_put>>;

struct Entry {
  std::string ip, lladdr, dev;
  int ifindex = 0;
  int state = 0;
  unsigned flags = 0;
};

class NeighStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "neigh",
        .summary = "An ARP/NDP neighbour entry: MAC and state (ip neigh show)",
        .description =
            "Finds the neighbour (ARP for IPv4, NDP for IPv6) entry for `ip`, optionally on "
            "device `dev`, and reports its link-layer address and NUD state: PERMANENT, "
            "NOARP, REACHABLE, STALE, DELAY, PROBE, FAILED, INCOMPLETE. In Silk the "
            "container's entry for 169.254.0.1 must be PERMANENT and point at the host "
            "side's aa:aa:<hex ip> MAC, and each cell's silk-vtep holds a PERMANENT entry "
            "for every remote cell's overlay address.\n\n"
            "No entry fails the step, listing the entries that exist; `must_exist: false` "
            "reports present=false instead.",
        .params = {{.name = "ip", .type = ValueType::kIp, .doc = "Neighbour address",
                    .required = true},
                   {.name = "dev", .type = ValueType::kString,
                    .doc = "Only the entry on this interface"},
                   {.name = "must_exist", .type = ValueType::kBool,
                    .doc = "Fail when there is no entry (false: pass with present=false)",
                    .default_value = true}},
        .facts = {{"present", "bool", "An entry exists"},
                  {"ip", "string", "The neighbour address"},
                  {"lladdr", "string", "Its MAC address (\"\" for INCOMPLETE/FAILED)"},
                  {"state", "string", "Main NUD state: PERMANENT, NOARP, REACHABLE, STALE, "
                                      "DELAY, PROBE, FAILED, INCOMPLETE, NONE"},
                  {"states", "list", "Every NUD bit set"},
                  {"dev", "string", "Interface of the entry"},
                  {"index", "int", "Its ifindex"},
                  {"router", "bool", "NTF_ROUTER (IPv6 router)"},
                  {"flags", "list", "NTF_* flags: router, proxy, extern_learn, ..."},
                  {"count", "int", "Entries for this address (on several interfaces)"}},
        .example = "- id: gateway_arp\n  uses: neigh\n  netns: \"{{ inputs.container_netns }}\"\n"
                   "  with: {ip: 169.254.0.1}\n"
                   "  expect: {state: PERMANENT, lladdr: \"aa:aa:0a:ff:d3:28\"}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    auto want = nl::parse_ip(p.str("ip"));
    if (!want) return StepOutput::error(want.error());
    std::string ip = nl::addr_str(want->get());
    int family = nl_addr_get_family(want->get());
    auto net = nl::open_links(ctx);
    if (!net) return StepOutput::error(net.error());
    const nl::LinkTable* links = &net->table;
    int dev_index = 0;
    std::string dev = p.str("dev");
    if (!dev.empty()) {
      auto l = links->find(dev);
      if (!l) return StepOutput::fail(l.error());
      dev_index = rtnl_link_get_ifindex(*l);
    }

    std::vector<Entry> all;
    ndmsg hdr{};
    hdr.ndm_family = static_cast<unsigned char>(family);
    auto msgs = net->client->dump(RTM_GETNEIGH, nl::bytes_of(hdr), "neighbour dump");
    if (!msgs) return StepOutput::error(msgs.error().message);
    for (auto& m : *msgs) {
      if (m.type() != RTM_NEWNEIGH) continue;
      rtnl_neigh* raw = nullptr;
      if (rtnl_neigh_parse(m.hdr(), &raw) < 0) continue;
      NeighPtr n(raw);
      if (rtnl_neigh_get_family(n.get()) != family) continue;
      Entry e;
      e.ip = nl::addr_str(rtnl_neigh_get_dst(n.get()));
      e.lladdr = nl::addr_str(rtnl_neigh_get_lladdr(n.get()));
      e.ifindex = rtnl_neigh_get_ifindex(n.get());
      e.dev = links->name_of(e.ifindex);
      e.state = rtnl_neigh_get_state(n.get());
      e.flags = rtnl_neigh_get_flags(n.get());
      all.push_back(std::move(e));
    }

    std::vector<const Entry*> hits;
    for (const auto& e : all)
      if (e.ip == ip && (dev_index == 0 || e.ifindex == dev_index)) hits.push_back(&e);
    StepOutput o;
    if (hits.empty()) {
      o.status = p.boolean("must_exist", true) ? Status::kFail : Status::kPass;
      o.facts["present"] = false;
      o.facts["ip"] = ip;
      o.facts["count"] = 0;
      std::string here;
      size_t shown = 0;
      for (const auto& e : all) {
        if (dev_index != 0 && e.ifindex != dev_index) continue;
        if (shown++ == 12) {
          here += ", ...";
          break;
        }
        if (!here.empty()) here += ", ";
        here += fmt::format("{} {} on {} ({})", e.ip, e.lladdr.empty() ? "-" : e.lladdr, e.dev,
                            nl::neigh_state_main(e.state));
      }
      o.message = fmt::format("no neighbour entry for {}{}; entries here: {}", ip,
                              dev.empty() ? "" : " on dev " + dev,
                              here.empty() ? "(none)" : here);
      return o;
    }
    const Entry& e = *hits.front();
    o.facts["present"] = true;
    o.facts["ip"] = ip;
    o.facts["lladdr"] = e.lladdr;
    o.facts["state"] = nl::neigh_state_main(e.state);
    o.facts["states"] = nl::neigh_state_names(e.state);
    o.facts["dev"] = e.dev;
    o.facts["index"] = e.ifindex;
    o.facts["router"] = (e.flags & NTF_ROUTER) != 0;
    o.facts["flags"] = nl::neigh_flag_names(e.flags);
    o.facts["count"] = hits.size();
    o.message = fmt::format("{} lladdr {} dev {} {}", ip, e.lladdr.empty() ? "-" : e.lladdr,
                            e.dev, nl::neigh_state_main(e.state));
    if (hits.size() > 1) o.message += fmt::format(" (+{} more on other devices)", hits.size() - 1);
    return o;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(NeighStep);
}  // namespace netplay
