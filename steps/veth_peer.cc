/// veth.peer: which interface, in which namespace, is the other end of a veth; or every
/// veth pair of the node at once.

#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <algorithm>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <netlink/attr.h>
#include <netlink/msg.h>

#include "runner/step/netns.h"
#include "runner/step/step.h"
#include "steps/net/netlink.h"
#include "steps/net/netns_scan.h"
#include "steps/net/netns_walk.h"
#include "steps/net/veth_pairs.h"

namespace netplay {
namespace {

constexpr size_t kEvidenceRows = 50;

/// "host" for netplay's own namespace, "this" for the step's, otherwise its name/path.
std::string peer_ref(const netns::Namespace& peer, unsigned long self_inode) {
  if (peer.inode == netns::host_inode()) return "host";
  if (peer.inode == self_inode) return "this";
  return peer.ref;
}

class VethPeerStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "veth.peer",
        .summary = "Find the other end of a veth: its name, namespace and master",
        .description =
            "For INTERFACE in the step's namespace, follows the veth to its peer: the peer's "
            "ifindex comes from IFLA_LINK and its namespace from IFLA_LINK_NETNSID, which is "
            "only an alias as seen from here, so the step looks for the namespace among "
            "/run/netns, /var/run/docker/netns and /proc/*/ns/net and asks the kernel "
            "(RTM_GETNSID) which one carries that id. Reports the peer's name, namespace "
            "(name, path or 'host'/'this') and inode, master (a Linux bridge or ovs-system), "
            "MAC and state: the runbook's `eth0@if4615` inside the container and "
            "`4615: s-010255211040@if2` on the host, joined.\n\n"
            "With `all: true` it maps every veth pair of the node: one link dump per "
            "namespace, pairs matched by ifindex and verified by NETNSID (ifindexes repeat "
            "across namespaces). Ends whose peer namespace could not be found are listed "
            "under `unresolved`.\n\n"
            "An interface that is not a veth fails with its real kind; a missing one fails "
            "with the interfaces that do exist.",
        .params = {{.name = "interface", .type = ValueType::kString,
                    .doc = "The veth end in the step's namespace, e.g. eth0 or s-010255211040"},
                   {.name = "all", .type = ValueType::kBool,
                    .doc = "Map every veth pair of the node instead of one interface",
                    .default_value = false}},
        .facts = {{"name", "string", "The interface asked about"},
                  {"index", "int", "Its ifindex"},
                  {"kind", "string", "Its kind (veth; another kind fails the step)"},
                  {"peer_index", "int", "The peer's ifindex, in the peer's namespace"},
                  {"peer_name", "string", "The peer's name"},
                  {"peer_netns", "string",
                   "Where the peer lives: a /run/netns name, a path (/var/run/docker/netns/ID, "
                   "/proc/PID/ns/net), 'host' (the namespace netplay runs in) or 'this' (the step's own)"},
                  {"peer_netns_inode", "int", "Inode of the peer's namespace"},
                  {"peer_netnsid", "int",
                   "The link-netnsid under which this namespace sees the peer's (absent when "
                   "both ends share a namespace)"},
                  {"peer_master", "string", "The peer's master: bridge or OVS (ovs-system)"},
                  {"peer_mac", "string", "The peer's MAC address"},
                  {"peer_oper_state", "string", "The peer's operational state (UP, DOWN, ...)"},
                  {"pairs", "list",
                   "all: every pair as {netns, netns_inode, interface, index, peer_netns, "
                   "peer_netns_inode, peer_interface, peer_index, peer_master}; the peer_* side "
                   "is the host side (the step's namespace, or the one holding more veths)"},
                  {"count", "int", "all: number of pairs"},
                  {"namespaces", "int", "all: number of namespaces scanned"},
                  {"unresolved", "list",
                   "all: veth ends whose peer namespace was not found, as {netns, interface, "
                   "index, peer_index, peer_netnsid}"}},
        .one_of = {{"interface", "all"}},
        .exclusive = {{"interface", "all"}},
        .privileges = "root (CAP_SYS_ADMIN) to enter the namespaces where peers live",
        .example = "- id: peer\n  uses: veth.peer\n  netns: \"{{ inputs.container_netns }}\"\n"
                   "  with: {interface: eth0}\n"
                   "  expect: {peer_name: s-010255211040, peer_netns: host}\n"
                   "- id: node\n  uses: veth.peer\n  with: {all: true}\n"
                   "  expect: {unresolved: {len: 0}}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    bool all = p.boolean("all");
    std::string name = p.str("interface");
    // The params checker lets through exactly one of interface and all: true.
    if (all) return run_all(ctx);
    return run_one(ctx, name);
  }

 private:
  static StepOutput run_one(StepContext& ctx, const std::string& name) {
    auto self = netns::current(ctx.netns);
    if (!self) return StepOutput::error(self.error());
    auto net = nl::open_links(ctx);
    if (!net) return StepOutput::error(net.error());
    const nl::LinkTable& table = net->table;
    auto link = table.find(name);
    if (!link) return StepOutput::fail(link.error());
    nl::LinkFacts f = nl::link_facts(*link, table);

    StepOutput out;
    out.facts["name"] = f.name;
    out.facts["index"] = f.index;
    out.facts["kind"] = f.kind;
    if (f.kind != "veth") {
      out.status = Status::kFail;
      out.message = fmt::format("{} is a {}, not a veth", f.name, f.kind);
      return out;
    }
    out.facts["peer_index"] = f.peer_index;

    // Same namespace: no NETNSID, the peer is in this very table.
    std::optional<netns::Namespace> where;
    if (!f.peer_netnsid) {
      where = *self;
    } else {
      out.facts["peer_netnsid"] = *f.peer_netnsid;
      auto found = find_by_nsid(*net->client, *f.peer_netnsid, self->inode, ctx);
      if (!found && ctx.is_cancelled()) return with_error(std::move(out), "cancelled");
      if (!found && ctx.expired())
        return with_error(std::move(out), "timed out looking for the peer's namespace");
      if (!found) {
        return with_error(
            std::move(out),
            fmt::format("{}'s peer is ifindex {} in the namespace known here as netnsid {}, "
                        "which is none of those in /run/netns, /var/run/docker/netns or "
                        "/proc/*/ns/net",
                        f.name, f.peer_index, *f.peer_netnsid));
      }
      where = std::move(*found);
    }

    std::optional<nl::LinkTable> peer_table;
    const nl::LinkTable* pt = &table;
    if (f.peer_netnsid) {
      auto peer_client = netns::client_in(where->path, ctx);
      if (!peer_client) return with_error(std::move(out), peer_client.error());
      auto t = nl::LinkTable::dump(**peer_client);
      if (!t) return with_error(std::move(out), t.error());
      peer_table.emplace(std::move(*t));
      pt = &*peer_table;
    }
    rtnl_link* peer = pt->by_index(f.peer_index);
    std::string ref = peer_ref(*where, self->inode);
    if (!peer)
      return with_error(std::move(out), fmt::format("no ifindex {} in namespace {} ({}): the pair "
                                                    "changed while it was read",
                                                    f.peer_index, ref, where->path));
    nl::LinkFacts pf = nl::link_facts(peer, *pt);
    if (pf.kind != "veth" || pf.peer_index != f.index)
      return with_error(std::move(out),
                        fmt::format("ifindex {} in namespace {} is {} ({}), which does not point "
                                    "back at {}",
                                    f.peer_index, ref, pf.name, pf.kind, f.name));
    out.facts["peer_name"] = pf.name;
    out.facts["peer_netns"] = ref;
    out.facts["peer_netns_inode"] = where->inode;
    out.facts["peer_master"] = pf.master.empty() ? json(nullptr) : json(pf.master);
    out.facts["peer_mac"] = pf.mac;
    out.facts["peer_oper_state"] = pf.oper_state;
    out.message = fmt::format("{}@if{} <-> {}: {}@if{} in {}{}", f.name, f.peer_index,
                              pf.index, pf.name, f.index, ref,
                              pf.master.empty() ? "" : ", master " + pf.master);
    out.evidence.push_back(fmt::format("peer namespace {}: {} (inode {}{})", ref, where->path,
                                       where->inode,
                                       f.peer_netnsid
                                           ? fmt::format(", netnsid {} from here", *f.peer_netnsid)
                                           : std::string()));
    return out;
  }

  static StepOutput with_error(StepOutput out, std::string msg) {
    out.status = Status::kError;
    out.message = std::move(msg);
    return out;
  }

  /// The namespace the observer knows as `nsid`, among all the node's namespaces.
  /// Gives up (nullopt) when the step is cancelled or out of time.
  static std::optional<netns::Namespace> find_by_nsid(NetlinkClient& observer, int nsid,
                                                      unsigned long self_inode,
                                                      const StepContext& ctx) {
    for (auto& ns : netns::scan()) {
      if (ctx.is_cancelled() || ctx.expired()) return std::nullopt;
      if (ns.inode == self_inode) continue;
      auto id = netns::netnsid_of(observer, ns.path);
      if (!id) continue;  // vanished since the scan (a process exited)
      if (*id == nsid) return ns;
    }
    return std::nullopt;
  }

  static StepOutput run_all(StepContext& ctx);
};

/// Opens sockets in namespaces for NETNSID checks, reusing the last one: the pairing asks
/// from the same namespace for consecutive candidates.
class Prober {
 public:
  Prober(const std::vector<veth::NsLinks>& all, size_t observer, NetlinkClient& obs_client,
         int home_fd, const StepContext& ctx)
      : all_(all), observer_(observer), obs_(obs_client), home_fd_(home_fd), ctx_(ctx) {}

  std::optional<int> operator()(size_t from, size_t to) {
    if (ctx_.is_cancelled() || ctx_.expired()) return std::nullopt;
    NetlinkClient* s = &obs_;
    if (from != observer_) {
      if (from != cached_from_ || !cached_) {
        cached_.reset();
        auto c = netns::client_in(all_[from].ns.path, ctx_);
        if (!c) return std::nullopt;
        cached_ = std::move(*c);
        cached_from_ = from;
      }
      s = cached_.get();
    }
    std::expected<int, std::string> id = to == observer_ ? s->netnsid_of_fd(home_fd_)
                                                          : netns::netnsid_of(*s, all_[to].ns.path);
    if (!id) return std::nullopt;
    return *id;
  }

 private:
  const std::vector<veth::NsLinks>& all_;
  size_t observer_;
  NetlinkClient& obs_;
  int home_fd_;
  const StepContext& ctx_;
  std::unique_ptr<NetlinkClient> cached_;
  size_t cached_from_ = 0;
};

/// One link dump into `into`. `veth_only` leaves out other links, so a veth's master
/// (a bridge) is then looked up by index, once per distinct master.
std::expected<void, std::string> dump_links(NetlinkClient& client, veth::NsLinks& into,
                                            bool veth_only) {
  static const std::vector<unsigned char> kAll = veth::link_dump_request(false);
  static const std::vector<unsigned char> kVeths = veth::link_dump_request(true);
  const auto& req = veth_only ? kVeths : kAll;
  if (req.empty()) return std::unexpected("link dump: cannot build the request");
  auto add = [&](const NlMessages& msgs) {
    for (const auto& m : msgs)
      if (auto l = veth::parse_link(m.hdr())) into.links.push_back(std::move(*l));
  };
  auto d = client.dump(RTM_GETLINK, req, "link dump");
  if (!d) return std::unexpected(d.error().message);
  add(*d);
  if (!veth_only) return {};
  std::vector<int> masters;
  for (const auto& l : into.links)
    if (l.master > 0 && !into.by_index(l.master) &&
        std::find(masters.begin(), masters.end(), l.master) == masters.end())
      masters.push_back(l.master);
  for (int m : masters) {
    nl::MsgPtr msg(nlmsg_alloc_simple(RTM_GETLINK, NLM_F_REQUEST));
    ifinfomsg ifi{};
    ifi.ifi_index = m;
    if (!msg || nlmsg_append(msg.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0 ||
        nla_put_u32(msg.get(), IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS) < 0)
      return std::unexpected("link lookup: cannot build the request");
    auto r = client.request(RTM_GETLINK, nl::payload_of(msg.get()), "master lookup");
    if (!r) return std::unexpected(r.error().message);
    add(*r);
  }
  return {};
}

/// Reads every namespace of `all`: the observer's (at 0) with all its links, through
/// `observer` (its bridges name the masters), the others with one veth-only link dump each,
/// plus the NETNSID under which they see the observer when a veth there points elsewhere.
/// The observer's dump, the largest, goes first, so the others are read meanwhile.
/// Returns the namespaces that vanished since the scan, or why reading stopped.
std::expected<std::vector<size_t>, std::string> read_namespaces(std::vector<veth::NsLinks>& all,
                                                                NetlinkClient& observer,
                                                                int observer_fd,
                                                                const StepContext& ctx) {
  std::vector<std::string> paths;
  paths.push_back(fmt::format("/proc/self/fd/{}", observer_fd));
  for (size_t n = 1; n < all.size(); ++n) paths.push_back(all[n].ns.path);
  std::vector<char> gone(paths.size(), 0);  // by index: visits write only their own
  std::mutex m;
  std::string error;
  auto fail = [&](std::string e) {
    std::lock_guard lock(m);
    if (error.empty()) error = std::move(e);
    return false;
  };
  bool complete = netns::walk(
      paths,
      [&](size_t i, const StepContext& c) {
        if (i == 0) {
          if (auto d = dump_links(observer, all[0], false); !d) return fail(d.error());
          return true;
        }
        veth::NsLinks& ns = all[i];
        auto client = c.netlink().open(c);
        if (!client) return fail(fmt::format("{}: {}", ns.ns.ref, client.error()));
        if (auto d = dump_links(**client, ns, true); !d)
          return fail(fmt::format("{}: {}", ns.ns.ref, d.error()));
        bool remote = false;
        for (const auto& l : ns.links) remote = remote || (l.is_veth && l.peer_netnsid);
        if (remote) {
          auto id = (*client)->netnsid_of_fd(observer_fd);
          if (!id) return fail(fmt::format("{}: {}", ns.ns.ref, id.error()));
          ns.observer_nsid = *id;
        }
        return true;
      },
      [&](size_t i, const std::string& why) {
        // Gone since the scan: a process exited, or a pod's bind mount was removed (busy
        // nodes do that all the time). Anything else is an error.
        const netns::Namespace& ns = all[i].ns;
        if (i > 0 && netns_inode(ns.path).value_or(0) != ns.inode) {
          gone[i] = 1;
          return true;
        }
        return fail(why);
      },
      ctx);
  if (ctx.is_cancelled()) return std::unexpected("cancelled while reading the namespaces");
  if (ctx.expired()) return std::unexpected("timed out while reading the namespaces");
  if (!error.empty()) return std::unexpected(error);
  if (!complete || !thread_netns_home_ok())
    return std::unexpected("could not return to the step's network namespace");
  std::vector<size_t> vanished;
  for (size_t i = 0; i < gone.size(); ++i)
    if (gone[i]) vanished.push_back(i);
  return vanished;
}

StepOutput VethPeerStep::run_all(StepContext& ctx) {
  auto self = netns::current(ctx.netns);
  if (!self) return StepOutput::error(self.error());
  auto home = netns::Fd::open("/proc/thread-self/ns/net");
  if (!home) return StepOutput::error(home.error());
  auto obs = ctx.netlink().open(ctx);
  if (!obs) return StepOutput::error(obs.error());

  std::vector<veth::NsLinks> all;
  all.push_back({*self, {}, -1});
  for (auto& ns : netns::scan())
    if (ns.inode != self->inode) all.push_back({std::move(ns), {}, -1});
  constexpr size_t kObserver = 0;

  static_assert(kObserver == 0, "read_namespaces reads the observer's namespace first");
  auto vanished = read_namespaces(all, **obs, home->get(), ctx);
  if (!vanished) return StepOutput::error(vanished.error());
  StepOutput out;
  Prober probe(all, kObserver, **obs, home->get(), ctx);
  veth::Pairing pairing = veth::pair_all(all, kObserver, std::ref(probe));
  if (!thread_netns_home_ok())
    return StepOutput::error("could not return to the step's network namespace");
  // The prober gives up once the step is out of time: never report that as "unresolved".
  if (ctx.is_cancelled()) return StepOutput::error("cancelled while pairing veth ends");
  if (ctx.expired()) return StepOutput::error("timed out while pairing veth ends");

  auto ref_of = [&](size_t n) -> const std::string& { return all[n].ns.ref; };
  json pairs = json::array();
  for (const auto& [c, h] : pairing.pairs) {
    const veth::Link& cl = all[c.ns].links[c.link];
    const veth::Link& hl = all[h.ns].links[h.link];
    std::string master = all[h.ns].name_of(hl.master);
    pairs.push_back({{"netns", ref_of(c.ns)},
                     {"netns_inode", all[c.ns].ns.inode},
                     {"interface", cl.name},
                     {"index", cl.index},
                     {"peer_netns", ref_of(h.ns)},
                     {"peer_netns_inode", all[h.ns].ns.inode},
                     {"peer_interface", hl.name},
                     {"peer_index", hl.index},
                     {"peer_master", master.empty() ? json(nullptr) : json(master)}});
    if (out.evidence.size() < kEvidenceRows)
      out.evidence.push_back(fmt::format("{} {}@if{} <-> {} {}@if{}{}", ref_of(c.ns), cl.name,
                                         cl.peer_index, ref_of(h.ns), hl.name, hl.peer_index,
                                         master.empty() ? "" : " master " + master));
  }
  if (pairing.pairs.size() > kEvidenceRows)
    out.evidence.push_back(fmt::format("... and {} more pairs", pairing.pairs.size() - kEvidenceRows));
  json unresolved = json::array();
  for (const auto& e : pairing.unresolved) {
    const veth::Link& l = all[e.ns].links[e.link];
    unresolved.push_back({{"netns", ref_of(e.ns)},
                          {"interface", l.name},
                          {"index", l.index},
                          {"peer_index", l.peer_index},
                          {"peer_netnsid", l.peer_netnsid ? json(*l.peer_netnsid) : json(nullptr)}});
    out.evidence.push_back(fmt::format("unresolved: {} {}@if{} (netnsid {}): peer namespace not found",
                                       ref_of(e.ns), l.name, l.peer_index,
                                       l.peer_netnsid ? std::to_string(*l.peer_netnsid) : "-"));
  }
  for (size_t n : *vanished)
    out.evidence.push_back(fmt::format("{} vanished during the scan", all[n].ns.path));
  out.facts["pairs"] = std::move(pairs);
  out.facts["count"] = pairing.pairs.size();
  out.facts["namespaces"] = all.size() - vanished->size();
  out.facts["unresolved"] = std::move(unresolved);
  out.message = fmt::format("{} veth pairs across {} namespaces{}", pairing.pairs.size(),
                            all.size() - vanished->size(),
                            pairing.unresolved.empty()
                                ? ""
                                : fmt::format(", {} ends unresolved", pairing.unresolved.size()));
  return out;
}

}  // namespace
NETPLAY_REGISTER_STEP(VethPeerStep);
}  // namespace netplay
