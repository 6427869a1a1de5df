/// route: the kernel's own route lookup (RTM_GETROUTE, what `ip route get` does), or
/// whether the table holds a route for exactly one CIDR (the default route included).

#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/route/rtnl.h>

#include "runner/step/step.h"
#include "steps/net/netlink.h"

namespace netplay {
namespace {

std::string type_name(int t) {
  char buf[32];
  return nl_rtntype2str(t, buf, sizeof buf);
}

std::string table_name(uint32_t t) {
  char buf[32];
  return rtnl_route_table2str(static_cast<int>(t), buf, sizeof buf);
}

std::string proto_name(int p) {
  char buf[32];
  return rtnl_route_proto2str(p, buf, sizeof buf);
}

/// "10.255.2.0/24", "default"; host routes without the /32 as `ip route` prints them.
std::string dst_text(nl_addr* dst, int family) {
  if (!dst || nl_addr_get_prefixlen(dst) == 0) return "default";
  std::string s = nl::addr_str(dst);
  unsigned full = family == AF_INET6 ? 128 : 32;
  if (nl_addr_get_prefixlen(dst) != full) s += fmt::format("/{}", nl_addr_get_prefixlen(dst));
  return s;
}

json route_facts(rtnl_route* r, const nl::LinkTable& links) {
  json f;
  f["found"] = true;
  int family = rtnl_route_get_family(r);
  f["destination"] = dst_text(rtnl_route_get_dst(r), family);
  f["type"] = type_name(rtnl_route_get_type(r));
  f["table"] = table_name(rtnl_route_get_table(r));
  f["protocol"] = proto_name(rtnl_route_get_protocol(r));
  f["scope"] = nl::scope_name(rtnl_route_get_scope(r));
  f["metric"] = rtnl_route_get_priority(r);
  std::string dev, gw;
  int oif = 0;
  json hops = json::array();
  for (int i = 0; i < rtnl_route_get_nnexthops(r); ++i) {
    rtnl_nexthop* nh = rtnl_route_nexthop_n(r, i);
    int ifi = rtnl_route_nh_get_ifindex(nh);
    std::string g = nl::addr_str(rtnl_route_nh_get_gateway(nh));
    std::string d = links.name_of(ifi);
    if (i == 0) {
      oif = ifi;
      dev = d;
      gw = g;
    }
    json h{{"dev", d}, {"index", ifi}};
    if (!g.empty()) h["gateway"] = g;
    h["weight"] = rtnl_route_nh_get_weight(nh) + 1;
    hops.push_back(std::move(h));
  }
  f["dev"] = dev;
  f["index"] = oif;
  f["gateway"] = gw;
  std::string pref = nl::addr_str(rtnl_route_get_pref_src(r));
  f["src"] = pref;
  f["prefsrc"] = pref;
  if (hops.size() > 1) f["nexthops"] = std::move(hops);
  return f;
}

/// Every route of `family` in every table (one RTM_GETROUTE dump), as libnl's route cache
/// holds them: IPv6 multipath routes, sent one message per next hop, merged.
std::expected<nl::CachePtr, std::string> dump_routes(NetlinkClient& client, int family) {
  rtmsg hdr{};
  hdr.rtm_family = static_cast<unsigned char>(family);
  auto msgs = client.dump(RTM_GETROUTE, nl::bytes_of(hdr), "route dump");
  if (!msgs) return std::unexpected(msgs.error().message);
  return nl::parse_cache("route/route", *msgs, "route dump");
}

std::string describe(const json& f) {
  std::string s = fmt::format("{} {}", f["type"].get<std::string>(),
                              f["destination"].get<std::string>());
  if (!f["gateway"].get<std::string>().empty()) s += " via " + f["gateway"].get<std::string>();
  if (!f["dev"].get<std::string>().empty()) s += " dev " + f["dev"].get<std::string>();
  if (!f["src"].get<std::string>().empty()) s += " src " + f["src"].get<std::string>();
  if (f["table"] != "main") s += " table " + f["table"].get<std::string>();
  return s;
}

class RouteStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "route",
        .summary = "Which route the kernel picks for a destination (ip route get), or whether "
                   "a route for a CIDR exists",
        .description =
            "With `destination`, asks the kernel for its routing decision exactly as "
            "`ip route get ADDR` does (RTM_GETROUTE, policy rules included) and reports the "
            "outgoing device, gateway, preferred source address, table and route type. "
            "A destination without a usable route fails the step: found=false when no "
            "route covers it, or the blocking route (type blackhole, unreachable, prohibit) "
            "with the kernel's reason; set "
            "`must_exist: false` to report it instead.\n\n"
            "With `cidr` (or `default: true`, i.e. 0.0.0.0/0 or ::/0), looks in the routing "
            "table (`table`, default main) for a route for exactly that prefix, as "
            "`ip route show exact CIDR` does; several with different metrics: the lowest "
            "metric is reported and `count` says how many there are.",
        .params =
            {{.name = "destination", .type = ValueType::kIp,
              .doc = "Address to look up as the kernel would route a packet to it"},
             {.name = "from", .type = ValueType::kIp,
              .doc = "Source address for the lookup (destination mode)"},
             {.name = "cidr", .type = ValueType::kCidr,
              .doc = "Prefix to find in the table, e.g. 10.255.2.0/24"},
             {.name = "default", .type = ValueType::kBool,
              .doc = "Find the default route (0.0.0.0/0, or ::/0 with family inet6)"},
             {.name = "family", .type = ValueType::kString,
              .doc = "Address family of the default route", .default_value = "inet",
              .choices = {"inet", "inet6"}},
             {.name = "table", .type = ValueType::kString,
              .doc = "Table for cidr/default: main, local, default, all, or a number",
              .default_value = "main"},
             {.name = "must_exist", .type = ValueType::kBool,
              .doc = "Fail when there is no (usable) route (false: pass with found=false)",
              .default_value = true}},
        .facts = {{"found", "bool", "A route exists (for destination: a usable one or a "
                                    "blocking one such as blackhole)"},
                  {"destination", "string", "The route's prefix, e.g. 10.255.2.0/24, default, "
                                            "or the looked-up address"},
                  {"dev", "string", "Outgoing interface"},
                  {"index", "int", "Outgoing interface's ifindex"},
                  {"gateway", "string", "Next hop address, \"\" when directly connected"},
                  {"src", "string", "Source address the kernel would use (ip route get's src; "
                                    "the given `from` when there is one)"},
                  {"prefsrc", "string", "The route's preferred source (RTA_PREFSRC)"},
                  {"table", "string", "main, local, ... or the table number"},
                  {"type", "string", "unicast, local, broadcast, blackhole, unreachable, "
                                     "prohibit, throw, ..."},
                  {"protocol", "string", "kernel, boot, static, dhcp, ..."},
                  {"scope", "string", "global, link, host, ..."},
                  {"metric", "int", "Route priority"},
                  {"count", "int", "cidr/default: number of routes for that prefix"},
                  {"reason", "string", "Why the kernel refused the lookup (blocking routes)"},
                  {"nexthops", "list", "Multipath routes: [{dev, index, gateway, weight}]"}},
        .one_of = {{"destination", "cidr", "default"}},
        .example = "- id: overlay_route\n  uses: route\n  netns: \"{{ inputs.cell_netns }}\"\n"
                   "  with: {destination: 10.255.2.12}\n"
                   "  expect: {dev: silk-vtep, gateway: 10.255.2.0}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    auto net = nl::open_links(ctx);
    if (!net) return StepOutput::error(net.error());
    NetlinkClient& client = *net->client;
    const nl::LinkTable& links = net->table;
    bool must = p.boolean("must_exist", true);
    if (p.has("destination")) return lookup(client, links, p, must);
    std::string cidr = p.str("cidr");
    if (cidr.empty()) {
      if (!p.boolean("default")) return StepOutput::error("give destination, cidr or default: true");
      cidr = p.str("family", "inet") == "inet6" ? "::/0" : "0.0.0.0/0";
    }
    return exact(client, links, cidr, p.str("table", "main"), must);
  }

 private:
  StepOutput lookup(NetlinkClient& client, const nl::LinkTable& links, const Params& p,
                    bool must) const {
    std::string dst_s = p.str("destination");
    auto dst = nl::parse_ip(dst_s);
    if (!dst) return StepOutput::error(dst.error());
    nl::AddrPtr src;
    if (p.has("from")) {
      auto a = nl::parse_ip(p.str("from"));
      if (!a) return StepOutput::error(a.error());
      src = std::move(*a);
    }
    int family = nl_addr_get_family(dst->get());
    if (src && nl_addr_get_family(src.get()) != family)
      return StepOutput::error(fmt::format("from {} and destination {} are of different families",
                                           p.str("from"), dst_s));
    auto route = nl::route_get(client, dst->get(), src.get());
    int kerr = route ? 0 : route.error().kernel_errno;
    StepOutput o;
    if (route) {
      o.facts = route_facts(route->route.get(), links);
      if (o.facts["src"] == "" && !route->src.empty()) o.facts["src"] = route->src;
      o.facts["destination"] = dst_s;
      o.message = dst_s;
      auto add = [&](const char* label, const char* key) {
        const std::string& v = o.facts[key].get_ref<const std::string&>();
        if (!v.empty()) o.message += fmt::format(" {} {}", label, v);
      };
      add("via", "gateway");
      add("dev", "dev");
      add("src", "src");
      if (o.facts["type"] != "unicast")
        o.message += " (" + o.facts["type"].get<std::string>() + ")";
      return o;
    }
    if (kerr == 0) return StepOutput::error(route.error().message);
    // The kernel refused the lookup. A blackhole/unreachable/prohibit route makes it fail
    // (EINVAL, EHOSTUNREACH, EACCES) just like an empty table (ENETUNREACH), so find the
    // longest prefix covering the destination to say which it is.
    auto cache = dump_routes(client, family);
    if (!cache) return StepOutput::error(route.error().message + "; " + cache.error());
    nl_cache* c = cache->get();
    rtnl_route* best = nullptr;
    int best_len = -1;
    for (nl_object* obj = nl_cache_get_first(c); obj; obj = nl_cache_get_next(obj)) {
      auto* r = reinterpret_cast<rtnl_route*>(obj);
      int t = rtnl_route_get_type(r);
      if (t != RTN_BLACKHOLE && t != RTN_UNREACHABLE && t != RTN_PROHIBIT && t != RTN_THROW)
        continue;
      nl_addr* d = rtnl_route_get_dst(r);
      int len = d ? static_cast<int>(nl_addr_get_prefixlen(d)) : 0;
      if (len > 0 && nl_addr_cmp_prefix(d, dst->get()) != 0) continue;
      if (len > best_len) {
        best = r;
        best_len = len;
      }
    }
    o.status = must ? Status::kFail : Status::kPass;
    if (best) {
      o.facts = route_facts(best, links);
      o.facts["reason"] = std::strerror(kerr);
      o.message = fmt::format("{} is not routable: {} ({})", dst_s, describe(o.facts),
                              std::strerror(kerr));
      return o;
    }
    if (kerr != ENETUNREACH) return StepOutput::error(route.error().message);
    o.facts["found"] = false;
    o.facts["destination"] = dst_s;
    o.message = "no route to " + dst_s;
    return o;
  }

  StepOutput exact(NetlinkClient& client, const nl::LinkTable& links, const std::string& cidr,
                   const std::string& table, bool must) const {
    nl_addr* want_raw = nullptr;
    if (nl_addr_parse(cidr.c_str(), AF_UNSPEC, &want_raw) < 0)
      return StepOutput::error(fmt::format("'{}' is not a CIDR", cidr));
    nl::AddrPtr want(want_raw);
    int family = nl_addr_get_family(want.get());
    long table_id = -1;  // -1: all
    if (table != "all") {
      table_id = rtnl_route_str2table(table.c_str());
      if (table_id < 0) return StepOutput::error(fmt::format("unknown routing table '{}'", table));
    }
    auto cache = dump_routes(client, family);
    if (!cache) return StepOutput::error(cache.error());
    nl_cache* c = cache->get();
    unsigned plen = nl_addr_get_prefixlen(want.get());
    rtnl_route* best = nullptr;
    int count = 0;
    for (nl_object* obj = nl_cache_get_first(c); obj; obj = nl_cache_get_next(obj)) {
      auto* r = reinterpret_cast<rtnl_route*>(obj);
      if (rtnl_route_get_family(r) != family) continue;
      if (table_id >= 0 && rtnl_route_get_table(r) != static_cast<uint32_t>(table_id)) continue;
      nl_addr* d = rtnl_route_get_dst(r);
      unsigned dl = d ? nl_addr_get_prefixlen(d) : 0;
      if (dl != plen) continue;
      if (plen > 0 && nl_addr_cmp_prefix(d, want.get()) != 0) continue;
      ++count;
      if (!best || rtnl_route_get_priority(r) < rtnl_route_get_priority(best)) best = r;
    }
    StepOutput o;
    std::string where = table == "all" ? "any table" : "table " + table;
    if (!best) {
      o.status = must ? Status::kFail : Status::kPass;
      o.facts["found"] = false;
      o.facts["count"] = 0;
      o.facts["destination"] = plen == 0 ? "default" : cidr;
      o.message = fmt::format("no route for {} in {}", plen == 0 ? "default" : cidr, where);
      return o;
    }
    o.facts = route_facts(best, links);
    o.facts["count"] = count;
    o.message = describe(o.facts);
    if (count > 1) o.message += fmt::format(" ({} routes for this prefix)", count);
    return o;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(RouteStep);
}  // namespace netplay
