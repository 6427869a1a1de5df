/// firewall: the nftables ruleset of the step's namespace (iptables-nft rules included) and
/// the rules that would drop a packet described by `match`.

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "runner/step/firewall.h"
#include "runner/step/services.h"
#include "runner/step/step.h"

namespace netplay {
namespace {

/// Entries listed at most in each of drops, policy_drops, marks and chains.
constexpr size_t kMaxListed = 1000;

/// Whether a rule (or an expression of it) hits the packet: surely not, surely, or maybe
/// (it depends on something the packet description does not say or netplay cannot read).
enum class Tri { kNo, kMaybe, kYes };

Tri both(Tri a, Tri b) { return std::min(a, b); }
Tri either(Tri a, Tri b) { return std::max(a, b); }
Tri negate(Tri a) { return a == Tri::kYes ? Tri::kNo : a == Tri::kNo ? Tri::kYes : Tri::kMaybe; }
Tri tri(bool b) { return b ? Tri::kYes : Tri::kNo; }

struct Addr {
  int family = 0;
  unsigned char b[16] = {};
};

std::optional<Addr> parse_addr(const std::string& s) {
  Addr a;
  a.family = s.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (::inet_pton(a.family, s.c_str(), a.b) != 1) return std::nullopt;
  return a;
}

int addr_len(const Addr& a) { return a.family == AF_INET ? 4 : 16; }

bool in_prefix(const Addr& a, const Addr& net, int len) {
  if (a.family != net.family || len < 0 || len > addr_len(a) * 8) return false;
  for (int i = 0; i < len / 8; ++i)
    if (a.b[i] != net.b[i]) return false;
  if (len % 8 == 0) return true;
  unsigned char mask = static_cast<unsigned char>(0xff << (8 - len % 8));
  return (a.b[len / 8] & mask) == (net.b[len / 8] & mask);
}

int addr_cmp(const Addr& a, const Addr& b) { return std::memcmp(a.b, b.b, 16); }

/// IP protocol numbers of the names nft prints (meta l4proto, ip protocol, ip6 nexthdr).
int proto_number(const json& v) {
  if (v.is_number_integer()) return v.get<int>();
  if (!v.is_string()) return -1;
  static const std::map<std::string, int, std::less<>> names = {
      {"icmp", 1},   {"igmp", 2},  {"tcp", 6},       {"udp", 17},       {"gre", 47},
      {"esp", 50},   {"ah", 51},   {"icmpv6", 58},   {"ipv6-icmp", 58}, {"sctp", 132},
      {"dccp", 33},  {"udplite", 136}, {"ipip", 4}, {"vrrp", 112}};
  auto it = names.find(v.get<std::string>());
  return it == names.end() ? -1 : it->second;
}

/// The packet a playbook describes with `match`; absent fields are unknown.
struct Packet {
  std::optional<int> proto;  // IP protocol number
  std::string proto_name;
  std::optional<int> sport, dport;
  std::optional<Addr> saddr, daddr;
  std::string iif, oif;
  int family = 0;  // AF_INET, AF_INET6, 0 = either
};

std::expected<Packet, std::string> parse_packet(const json& m) {
  Packet p;
  static const std::set<std::string> known = {"proto", "dport", "sport", "saddr",
                                              "daddr", "iif",   "oif"};
  for (const auto& [k, v] : m.items()) {
    if (!known.contains(k))
      return std::unexpected(fmt::format(
          "match: unknown key '{}' (known: proto, dport, sport, saddr, daddr, iif, oif)",
          printable(k)));
    if (v.is_null()) continue;
    if (k == "proto") {
      int n = proto_number(v);
      if (n < 0)
        return std::unexpected(
            fmt::format("match.proto: unknown protocol {} (e.g. tcp, udp, icmp, icmpv6, sctp)",
                        describe_value(v)));
      p.proto = n;
      p.proto_name = v.is_string() ? v.get<std::string>() : std::to_string(n);
    } else if (k == "dport" || k == "sport") {
      long long port = -1;
      if (v.is_number_integer()) port = v.get<long long>();
      if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        if (!s.empty() && s.size() <= 5 && s.find_first_not_of("0123456789") == std::string::npos)
          port = std::stoll(s);
      }
      if (port < 1 || port > 65535)
        return std::unexpected(
            fmt::format("match.{}: expected a port from 1 to 65535, got {}", k, describe_value(v)));
      (k == "dport" ? p.dport : p.sport) = static_cast<int>(port);
    } else if (k == "saddr" || k == "daddr") {
      auto a = v.is_string() ? parse_addr(v.get<std::string>()) : std::nullopt;
      if (!a)
        return std::unexpected(
            fmt::format("match.{}: expected an IP address, got {}", k, describe_value(v)));
      (k == "saddr" ? p.saddr : p.daddr) = a;
    } else {
      if (!v.is_string() || v.get<std::string>().empty())
        return std::unexpected(
            fmt::format("match.{}: expected an interface name, got {}", k, describe_value(v)));
      (k == "iif" ? p.iif : p.oif) = v.get<std::string>();
    }
  }
  if (p.saddr && p.daddr && p.saddr->family != p.daddr->family)
    return std::unexpected("match: saddr and daddr are of different address families");
  if (p.saddr) p.family = p.saddr->family;
  if (p.daddr) p.family = p.daddr->family;
  if (p.proto == 1) p.family = p.family ? p.family : AF_INET;
  if (p.proto == 58) p.family = p.family ? p.family : AF_INET6;
  if ((p.proto == 1 && p.family == AF_INET6) || (p.proto == 58 && p.family == AF_INET))
    return std::unexpected("match: the protocol does not fit the address family");
  return p;
}

/// "udp daddr 10.0.0.2 dport 4789": the packet in a message.
std::string describe_packet(const json& m) {
  std::string s;
  auto add = [&](const char* key, bool named) {
    if (!m.contains(key) || m[key].is_null()) return;
    if (!s.empty()) s += ' ';
    s += named ? fmt::format("{} ", key) : "";
    s += m[key].is_string() ? printable(m[key].get<std::string>()) : m[key].dump();
  };
  add("proto", false);
  for (const char* k : {"iif", "oif", "saddr", "daddr", "sport", "dport"}) add(k, true);
  return s.empty() ? "any packet" : s;
}

/// The tag and body of a one-entry object such as {"match": {...}}: how nft's JSON marks
/// what a thing is.
std::pair<std::string, const json*> tagged(const json& o) {
  auto it = o.begin();
  return {it.key(), &it.value()};
}

// ---- Rendering ----

std::string render_value(const json& v, bool hex = false);

std::string render_set(const json& items) {
  std::string s = "{ ";
  bool first = true;
  for (const auto& e : items) {
    if (!first) s += ", ";
    first = false;
    s += render_value(e);
  }
  return s + " }";
}

std::string render_value(const json& v, bool hex) {
  if (v.is_number_integer() && hex) return fmt::format("{:#x}", v.get<long long>());
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) return render_set(v);
  if (v.is_object() && v.size() == 1) {
    auto [k, xp] = tagged(v);
    const json& x = *xp;
    if (k == "set" && x.is_array()) return render_set(x);
    if (k == "range" && x.is_array() && x.size() == 2)
      return render_value(x[0]) + "-" + render_value(x[1]);
    if (k == "prefix" && x.is_object())
      return fmt::format("{}/{}", render_value(x.value("addr", json())), x.value("len", 0));
    if (k == "payload" && x.is_object())
      return fmt::format("{} {}", x.value("protocol", "raw"), x.value("field", "?"));
    if (k == "meta" && x.is_object()) {
      std::string key = x.value("key", "?");
      static const std::set<std::string> bare = {"iifname", "oifname", "iif", "oif", "mark"};
      return bare.contains(key) ? key : "meta " + key;
    }
    if (k == "ct" && x.is_object()) return "ct " + x.value("key", "?");
    return k;
  }
  return v.is_null() ? "" : v.dump();
}

std::string render_expr(const json& e) {
  if (!e.is_object() || e.empty()) return "?";
  auto [k, xp] = tagged(e);
  const json& x = *xp;
  if (k == "match" && x.is_object()) {
    std::string left = render_value(x.value("left", json()));
    std::string op = x.value("op", "==");
    bool hex = left.ends_with("mark");
    std::string right = render_value(x.value("right", json()), hex);
    if (left == "iifname" || left == "oifname") right = "\"" + right + "\"";
    return op == "==" || op == "in" ? left + " " + right : left + " " + op + " " + right;
  }
  if (k == "mangle" && x.is_object()) {
    std::string key = render_value(x.value("key", json()));
    if (key == "mark") key = "meta mark";
    return fmt::format("{} set {}", key, render_value(x.value("value", json()), true));
  }
  if (k == "jump" || k == "goto") return fmt::format("{} {}", k, x.value("target", "?"));
  if (k == "xt" && x.is_object())
    return fmt::format("xt {} {}", x.value("type", "?"), x.value("name", "?"));
  if (k == "reject" && x.is_object() && x.contains("expr"))
    return fmt::format("reject with {} {}", x.value("type", "icmp"), render_value(x["expr"]));
  return k;  // drop, accept, counter, log, limit, ...
}

std::string render_rule(const json& exprs) {
  std::string s;
  for (const auto& e : exprs) {
    if (!s.empty()) s += ' ';
    s += render_expr(e);
  }
  return s;
}

// ---- Matching ----

/// The named sets of the ruleset, by family/table/name: their elements.
using Sets = std::map<std::string, json>;

std::string set_key(const std::string& family, const std::string& table, const std::string& name) {
  return family + "\x1f" + table + "\x1f" + name;
}

/// What kind of value a match compares.
enum class Kind { kPort, kAddr, kProto, kIface, kFamily };

struct Ctx {
  const Packet& pkt;
  const Sets& sets;
  std::string family, table;
};

/// Does `right` (a value, set, range, prefix or @set) contain the packet's value?
Tri contains(const json& right, Kind kind, const json& value, const Ctx& c);

Tri scalar_equals(const json& r, Kind kind, const json& value) {
  switch (kind) {
    case Kind::kPort:
      if (r.is_number_integer()) return tri(r.get<long long>() == value.get<long long>());
      return Tri::kMaybe;  // a service name: not resolved here
    case Kind::kProto: {
      int n = proto_number(r);
      return n < 0 ? Tri::kMaybe : tri(n == value.get<int>());
    }
    case Kind::kIface: {
      if (!r.is_string()) return Tri::kMaybe;
      const auto& pat = r.get_ref<const std::string&>();
      const auto& name = value.get_ref<const std::string&>();
      if (pat.ends_with("*")) return tri(name.starts_with(pat.substr(0, pat.size() - 1)));
      return tri(pat == name);
    }
    case Kind::kFamily: {
      if (!r.is_string()) return Tri::kMaybe;
      const auto& f = r.get_ref<const std::string&>();
      int fam = f == "ip" || f == "ipv4" ? AF_INET : f == "ip6" || f == "ipv6" ? AF_INET6 : -1;
      return fam < 0 ? Tri::kNo : tri(fam == value.get<int>());
    }
    case Kind::kAddr: {
      if (!r.is_string()) return Tri::kMaybe;
      auto a = parse_addr(r.get<std::string>());
      auto v = parse_addr(value.get<std::string>());
      if (!a || !v) return Tri::kMaybe;
      return tri(a->family == v->family && addr_cmp(*a, *v) == 0);
    }
  }
  return Tri::kMaybe;
}

Tri contains(const json& right, Kind kind, const json& value, const Ctx& c) {
  if (right.is_string() && right.get_ref<const std::string&>().starts_with("@")) {
    auto it = c.sets.find(set_key(c.family, c.table, right.get<std::string>().substr(1)));
    if (it == c.sets.end()) return Tri::kMaybe;
    return contains(json{{"set", it->second}}, kind, value, c);
  }
  if (right.is_array()) return contains(json{{"set", right}}, kind, value, c);
  if (right.is_object() && right.size() == 1) {
    auto [k, xp] = tagged(right);
    const json& x = *xp;
    if (k == "set") {
      if (!x.is_array()) return contains(x, kind, value, c);
      Tri any = Tri::kNo;
      for (const auto& e : x) {
        // Elements of a map or with options come as [key, data] or {"elem": {"val": ...}}.
        const json& el = e.is_object() && e.contains("elem") ? e["elem"].value("val", json()) : e;
        any = either(any, contains(el, kind, value, c));
        if (any == Tri::kYes) break;
      }
      return any;
    }
    if (k == "range" && x.is_array() && x.size() == 2) {
      if (kind == Kind::kPort && x[0].is_number_integer() && x[1].is_number_integer()) {
        long long v = value.get<long long>();
        return tri(x[0].get<long long>() <= v && v <= x[1].get<long long>());
      }
      if (kind == Kind::kAddr && x[0].is_string() && x[1].is_string()) {
        auto lo = parse_addr(x[0].get<std::string>()), hi = parse_addr(x[1].get<std::string>());
        auto v = parse_addr(value.get<std::string>());
        if (!lo || !hi || !v) return Tri::kMaybe;
        if (v->family != lo->family) return Tri::kNo;
        return tri(addr_cmp(*lo, *v) <= 0 && addr_cmp(*v, *hi) <= 0);
      }
      return Tri::kMaybe;
    }
    if (k == "prefix" && x.is_object() && kind == Kind::kAddr) {
      auto net = parse_addr(x.value("addr", ""));
      auto v = parse_addr(value.get<std::string>());
      if (!net || !v) return Tri::kMaybe;
      return tri(in_prefix(*v, *net, x.value("len", -1)));
    }
    return Tri::kMaybe;
  }
  if (right.is_string() || right.is_number_integer()) return scalar_equals(right, kind, value);
  return Tri::kMaybe;
}

std::string addr_text(const Addr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(a.family, a.b, buf, sizeof buf);
  return buf;
}

/// Whether a packet of protocol `name` (as nft names a payload protocol) can be ours.
Tri proto_is(const Packet& p, const std::string& name) {
  if (!p.proto) return Tri::kMaybe;
  if (name == "th") return tri(*p.proto == 6 || *p.proto == 17 || *p.proto == 132 ||
                               *p.proto == 33 || *p.proto == 136);
  int n = proto_number(json(name));
  return n < 0 ? Tri::kMaybe : tri(n == *p.proto);
}

Tri family_is(const Packet& p, int family) {
  return p.family == 0 ? Tri::kYes : tri(p.family == family);
}

/// One `match` expression against the packet.
Tri eval_match(const json& m, const Ctx& c) {
  const Packet& p = c.pkt;
  const json& left = m.value("left", json());
  const json& right = m.value("right", json());
  std::string op = m.value("op", "==");

  Tri dep = Tri::kYes;  // what the left side implies (the protocol of a payload field)
  Kind kind{};
  json value;  // null: the packet does not say
  bool known = false;
  if (left.contains("payload") && left["payload"].is_object()) {
    const auto& pl = left["payload"];
    if (!pl.contains("protocol")) return Tri::kMaybe;  // raw payload
    std::string proto = pl.value("protocol", "");
    std::string field = pl.value("field", "");
    if (proto == "ip" || proto == "ip6") {
      dep = family_is(p, proto == "ip" ? AF_INET : AF_INET6);
      if (field == "saddr" || field == "daddr") {
        kind = Kind::kAddr;
        known = true;
        const auto& a = field == "saddr" ? p.saddr : p.daddr;
        if (a) value = addr_text(*a);
      } else if (field == "protocol" || field == "nexthdr") {
        kind = Kind::kProto;
        known = true;
        if (p.proto) value = *p.proto;
      }
    } else if (proto == "tcp" || proto == "udp" || proto == "sctp" || proto == "dccp" ||
               proto == "udplite" || proto == "th") {
      dep = proto_is(p, proto);
      if (field == "sport" || field == "dport") {
        kind = Kind::kPort;
        known = true;
        const auto& port = field == "sport" ? p.sport : p.dport;
        if (port) value = *port;
      }
    } else if (proto == "icmp" || proto == "icmpv6") {
      dep = proto_is(p, proto);
    }
  } else if (left.contains("meta") && left["meta"].is_object()) {
    std::string key = left["meta"].value("key", "");
    if (key == "l4proto") {
      kind = Kind::kProto;
      known = true;
      if (p.proto) value = *p.proto;
    } else if (key == "iifname" || key == "iif" || key == "oifname" || key == "oif") {
      kind = Kind::kIface;
      known = true;
      const auto& name = key.starts_with("i") ? p.iif : p.oif;
      if (!name.empty()) value = name;
    } else if (key == "nfproto" || key == "protocol") {
      kind = Kind::kFamily;
      known = true;
      if (p.family) value = p.family;
    }
  } else if (left.contains("ct") && left["ct"].is_object() &&
             left["ct"].value("key", "") == "state") {
    // The packet is taken to be valid for conntrack: `ct state invalid` does not hit it.
    json states = right.is_object() && right.contains("set") ? right["set"] : right;
    if (!states.is_array()) states = json::array({states});
    bool only_invalid =
        !states.empty() &&
        std::all_of(states.begin(), states.end(), [](const json& s) { return s == "invalid"; });
    if (only_invalid && (op == "==" || op == "in")) return Tri::kNo;
    return Tri::kMaybe;
  }
  if (dep == Tri::kNo) return Tri::kNo;
  if (!known || value.is_null()) return both(dep, Tri::kMaybe);
  Tri hit = Tri::kMaybe;
  if (op == "==" || op == "in") {
    hit = contains(right, kind, value, c);
  } else if (op == "!=") {
    hit = negate(contains(right, kind, value, c));
  } else if ((op == "<" || op == ">" || op == "<=" || op == ">=") && kind == Kind::kPort &&
             right.is_number_integer()) {
    long long v = value.get<long long>(), r = right.get<long long>();
    hit = tri(op == "<" ? v < r : op == ">" ? v > r : op == "<=" ? v <= r : v >= r);
  }
  return both(dep, hit);
}

/// What a rule does and on which packets, read from its expressions.
struct RuleInfo {
  Tri hit = Tri::kYes;
  std::string verdict;  // drop, reject, accept, jump, goto, ... ("" = none: continue)
  std::string target;   // of jump/goto
  std::optional<long long> packets, bytes;
  struct Mark {
    std::string kind;  // "meta" (packet mark) or "ct" (conntrack mark)
    json value;        // "0x10"; null when not readable (an xt MARK target)
  };
  std::vector<Mark> marks;
};

RuleInfo read_rule(const json& exprs, const Ctx* c) {
  RuleInfo r;
  static const std::set<std::string> neutral = {"counter", "log", "mangle", "notrack",
                                                "comment", "set", "ct helper", "ct timeout",
                                                "dup", "fwd", "synproxy", "tproxy"};
  static const std::set<std::string> verdicts = {"drop", "reject", "accept", "jump", "goto",
                                                 "return", "continue", "queue", "masquerade",
                                                 "snat", "dnat", "redirect"};
  for (const auto& e : exprs) {
    if (!e.is_object() || e.empty()) continue;
    auto [k, xp] = tagged(e);
    const json& x = *xp;
    if (k == "match") {
      if (c) r.hit = both(r.hit, eval_match(x, *c));
    } else if (k == "counter") {
      if (x.is_object() && !r.packets) {
        r.packets = x.value("packets", 0LL);
        r.bytes = x.value("bytes", 0LL);
      }
    } else if (k == "mangle" && x.is_object()) {
      const json& key = x.value("key", json());
      bool meta = key.contains("meta") && key["meta"].value("key", "") == "mark";
      bool ct = key.contains("ct") && key["ct"].value("key", "") == "mark";
      if (meta || ct) {
        const json& v = x.value("value", json());
        r.marks.push_back({meta ? "meta" : "ct",
                           v.is_number_integer() ? json(fmt::format("{:#x}", v.get<long long>()))
                                                 : json(render_value(v, true))});
      }
    } else if (k == "xt" && x.is_object()) {
      std::string type = x.value("type", ""), name = x.value("name", "");
      if (type == "target") {
        if (name == "DROP") r.verdict = "drop";
        else if (name == "REJECT") r.verdict = "reject";
        else if (name == "MARK") r.marks.push_back({"meta", nullptr});
        else if (name == "CONNMARK") r.marks.push_back({"ct", nullptr});
      } else if (name != "comment" && c) {
        r.hit = both(r.hit, Tri::kMaybe);  // an xt match netplay cannot read
      }
    } else if (k == "vmap") {
      // A verdict map: drops some keys; which ones is not worked out here.
      std::string dump = x.dump();
      if (dump.find("\"drop\"") != std::string::npos ||
          dump.find("\"reject\"") != std::string::npos) {
        r.verdict = "drop";
        if (c) r.hit = both(r.hit, Tri::kMaybe);
      }
    } else if (verdicts.contains(k)) {
      r.verdict = k;
      if ((k == "jump" || k == "goto") && x.is_object()) r.target = x.value("target", "");
    } else if (!neutral.contains(k) && c) {
      r.hit = both(r.hit, Tri::kMaybe);  // limit, quota, a lookup, ...: may or may not hit
    }
  }
  return r;
}

struct Chain {
  std::string family, table, name, type, hook, policy;
  json prio;
  bool base = false;
  Tri reach = Tri::kNo;     // is the packet sent here (base chains: yes)
  std::string via_hook;     // the hook of a base chain that leads here
};

std::string chain_key(const std::string& family, const std::string& table,
                      const std::string& name) {
  return set_key(family, table, name);
}

/// Whether a table of `family` sees packets like `p` at all.
/// Whether a packet going `direction` ("" = any) passes a base chain at `hook`.
bool on_path(const std::string& direction, const std::string& hook) {
  static const std::map<std::string, std::set<std::string>> hooks = {
      {"in", {"ingress", "prerouting", "input"}},
      {"forward", {"ingress", "prerouting", "forward", "postrouting"}},
      {"out", {"output", "postrouting", "egress"}}};
  auto it = hooks.find(direction);
  return it == hooks.end() || it->second.contains(hook);
}

Tri family_sees(const std::string& family, const Packet& p) {
  if (family == "ip") return family_is(p, AF_INET);
  if (family == "ip6") return family_is(p, AF_INET6);
  if (family == "arp") return Tri::kNo;
  return Tri::kYes;  // inet, bridge, netdev
}

class FirewallStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "firewall",
        .summary = "The nftables ruleset (iptables-nft included) and the rules that would "
                   "drop a given packet",
        .description =
            "Reads the nftables ruleset of the step's namespace through libnftables (what "
            "`nft -j list ruleset` prints; rules added with Debian's `iptables`, the nft "
            "backend, are in it too) and reports its tables, chains and rule count.\n\n"
            "With `match`, a packet described by protocol, ports, addresses and interfaces "
            "(all optional, e.g. `{proto: udp, dport: 4789}`), it lists in `drops` every "
            "drop or reject rule that would hit such a packet, with its counters: matches on "
            "protocol, ports (values, sets, named sets, ranges), addresses (prefixes, ranges) "
            "and interface names are evaluated; a rule that also tests something the packet "
            "description does not give, or an expression netplay cannot evaluate (an iptables "
            "xt match such as multiport or conntrack, a rate limit), counts as a possible hit "
            "with `exact: false`. Rules in regular chains count when a jump leads there from "
            "a base chain. The packet is taken to be valid for conntrack (`ct state invalid "
            "drop` does not hit it). Rules are read in their chain's order: after a rule that "
            "surely accepts or drops the packet, the rest of that chain does not count (an "
            "accept ends only its own base chain, as in nftables). `direction` limits the "
            "base chains to the hooks such a packet passes. `policy_drops` lists the base chains whose policy is drop, and `marks` "
            "the rules that set a packet or conntrack mark.\n\n"
            "With `match`, the step fails when a rule surely drops the packet (`udp dport "
            "4789 dropped by inet filter input handle 3 'udp dport 4789 counter drop' (12 "
            "packets)`) and warns when rules only may drop it (`may be dropped by ...`), "
            "unless `expect:` judges `drops` or `drop_count`; without `match` it passes with "
            "a summary. It is an error when the ruleset cannot be read (no "
            "CAP_NET_ADMIN).",
        .params = {{.name = "match",
                    .type = ValueType::kMap,
                    .doc = "The packet: proto (tcp, udp, icmp, icmpv6, sctp, ...), dport, sport, "
                           "saddr, daddr, iif, oif; all optional"},
                   {.name = "direction",
                    .type = ValueType::kString,
                    .doc = "Where the packet goes: in (to a socket of this namespace: hooks "
                           "ingress, prerouting, input), forward (routed through it: "
                           "prerouting, forward, postrouting), out (sent from it: output, "
                           "postrouting); default: every hook",
                    .choices = {"in", "forward", "out"}},
                   {.name = "family",
                    .type = ValueType::kString,
                    .doc = "Only the tables of this family",
                    .choices = {"ip", "ip6", "inet", "arp", "bridge", "netdev"}}},
        .facts = {{"tables", "list", "Tables, each {family, name}"},
                  {"chains", "list",
                   "Chains, each {family, table, name, type, hook, priority, policy} (the last "
                   "four null for a regular chain)"},
                  {"rule_count", "int", "Number of rules"},
                  {"drops", "list",
                   "Drop and reject rules that would hit the packet (all of them without "
                   "match), each {family, table, chain, hook, handle, verdict, packets, bytes, "
                   "comment, text, exact}"},
                  {"drop_count", "int", "Number of entries in drops"},
                  {"policy_drops", "list",
                   "Base chains with policy drop that see such packets, each {family, table, "
                   "chain, hook, priority}"},
                  {"marks", "list",
                   "Rules that set a packet (meta) or conntrack (ct) mark on such packets, each "
                   "{family, table, chain, hook, handle, kind, value, text, exact}; value null "
                   "when unreadable (iptables MARK target)"},
                  {"truncated", "bool", "A list was cut at 1000 entries"}},
        .privileges = "CAP_NET_ADMIN to read the ruleset",
        .example = "- id: vxlan_not_dropped\n  uses: firewall\n"
                   "  netns: \"{{ inputs.cell_netns }}\"\n"
                   "  with: {match: {proto: udp, dport: 4789}}\n"
                   "- id: ruleset\n  uses: firewall\n  expect: {policy_drops: {len: 0}}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    const bool has_match = p.has("match");
    const std::string direction = p.str("direction");
    Packet pkt;
    if (has_match) {
      if (!p.raw("match").is_object()) return StepOutput::error("match must be a map");
      auto parsed = parse_packet(p.raw("match"));
      if (!parsed) return StepOutput::error(parsed.error());
      pkt = *parsed;
    }
    auto rs = ctx.firewall().ruleset({.family = p.str("family")}, ctx);
    if (!rs) return StepOutput::error(rs.error());
    const json& items = (*rs)["nftables"];

    json tables = json::array();
    Sets sets;
    std::map<std::string, Chain> chains;
    std::vector<const json*> rules;
    std::vector<std::string> chain_order;
    for (const auto& it : items) {
      if (!it.is_object() || it.empty()) continue;
      auto [k, xp] = tagged(it);
      const json& x = *xp;
      if (!x.is_object()) continue;
      std::string family = x.value("family", ""), table = x.value("table", "");
      if (k == "table") {
        tables.push_back({{"family", family}, {"name", x.value("name", "")}});
      } else if (k == "set" || k == "map") {
        sets[set_key(family, table, x.value("name", ""))] = x.value("elem", json::array());
      } else if (k == "chain") {
        Chain c;
        c.family = family;
        c.table = table;
        c.name = x.value("name", "");
        c.base = x.contains("hook");
        c.type = x.value("type", "");
        c.hook = x.value("hook", "");
        c.policy = x.value("policy", "");
        c.prio = x.value("prio", json());
        if (c.base) {
          c.reach = has_match ? family_sees(family, pkt) : Tri::kYes;
          if (!on_path(direction, c.hook)) c.reach = Tri::kNo;
          c.via_hook = c.hook;
        }
        auto key = chain_key(family, table, c.name);
        chain_order.push_back(key);
        chains[key] = std::move(c);
      } else if (k == "rule") {
        rules.push_back(&x);
      }
    }

    // Which regular chains the packet may reach: through jumps and gotos from base chains
    // (a few rounds suffice for real rulesets; nft itself limits the depth).
    std::vector<RuleInfo> infos;
    infos.reserve(rules.size());
    for (const json* r : rules) {
      Ctx c{pkt, sets, r->value("family", ""), r->value("table", "")};
      infos.push_back(read_rule(r->value("expr", json::array()), has_match ? &c : nullptr));
    }
    for (int round = 0; round < 16; ++round) {
      bool changed = false;
      for (size_t i = 0; i < rules.size(); ++i) {
        if (infos[i].target.empty()) continue;
        const json& r = *rules[i];
        std::string family = r.value("family", ""), table = r.value("table", "");
        auto from = chains.find(chain_key(family, table, r.value("chain", "")));
        auto to = chains.find(chain_key(family, table, infos[i].target));
        if (from == chains.end() || to == chains.end() || to->second.base) continue;
        Tri t = both(from->second.reach, infos[i].hit);
        if (t > to->second.reach) {
          to->second.reach = t;
          to->second.via_hook = from->second.via_hook;
          changed = true;
        }
      }
      if (!changed) break;
    }

    json drops = json::array(), marks = json::array(), policy = json::array();
    json chain_list = json::array();
    size_t drop_count = 0;
    bool truncated = false;
    auto push = [&](json& list, json v) {
      if (list.size() < kMaxListed) list.push_back(std::move(v));
      else truncated = true;
    };
    for (const auto& key : chain_order) {
      const Chain& c = chains[key];
      json j = {{"family", c.family}, {"table", c.table},  {"name", c.name},
                {"type", nullptr},    {"hook", nullptr},   {"priority", nullptr},
                {"policy", nullptr}};
      if (c.base) {
        j["type"] = c.type;
        j["hook"] = c.hook;
        j["priority"] = c.prio;
        j["policy"] = c.policy.empty() ? json("accept") : json(c.policy);
        if (c.policy == "drop" && c.reach != Tri::kNo)
          push(policy, {{"family", c.family}, {"table", c.table}, {"chain", c.name},
                        {"hook", c.hook}, {"priority", c.prio}});
      }
      push(chain_list, std::move(j));
    }
    // A chain's rules are listed in order: once a rule surely accepts (or drops) the
    // packet, the rules after it in that chain never see it.
    std::set<std::string> decided;
    for (size_t i = 0; i < rules.size(); ++i) {
      const json& r = *rules[i];
      const RuleInfo& info = infos[i];
      std::string family = r.value("family", ""), table = r.value("table", "");
      std::string key = chain_key(family, table, r.value("chain", ""));
      if (decided.contains(key)) continue;
      auto ch = chains.find(key);
      Tri reach = ch == chains.end() ? Tri::kMaybe : ch->second.reach;
      Tri hit = both(reach, info.hit);
      if (hit == Tri::kNo) continue;
      if (has_match && hit == Tri::kYes &&
          (info.verdict == "accept" || info.verdict == "drop" || info.verdict == "reject"))
        decided.insert(key);
      json base = {{"family", family},
                   {"table", table},
                   {"chain", r.value("chain", "")},
                   {"hook", ch == chains.end() || ch->second.via_hook.empty()
                                ? json(nullptr)
                                : json(ch->second.via_hook)},
                   {"handle", r.value("handle", json())}};
      std::string text = valid_utf8(render_rule(r.value("expr", json::array())));
      if (info.verdict == "drop" || info.verdict == "reject") {
        json d = base;
        d["verdict"] = info.verdict;
        d["packets"] = info.packets ? json(*info.packets) : json(nullptr);
        d["bytes"] = info.bytes ? json(*info.bytes) : json(nullptr);
        d["comment"] =
            r.contains("comment") ? json(valid_utf8(r.value("comment", ""))) : json(nullptr);
        d["text"] = text;
        d["exact"] = hit == Tri::kYes;
        ++drop_count;
        push(drops, std::move(d));
      }
      for (const auto& m : info.marks) {
        json mk = base;
        mk["kind"] = m.kind;
        mk["value"] = m.value;
        mk["text"] = text;
        mk["exact"] = hit == Tri::kYes;
        push(marks, std::move(mk));
      }
    }

    StepOutput out;
    auto& f = out.facts;
    const size_t table_count = tables.size(), chain_count = chain_list.size();
    f["tables"] = std::move(tables);
    f["chains"] = std::move(chain_list);
    f["rule_count"] = rules.size();
    f["drop_count"] = drop_count;
    f["policy_drops"] = policy;
    f["marks"] = std::move(marks);
    f["truncated"] = truncated;

    std::string summary = fmt::format("{} table{}, {} chain{}, {} rule{}", table_count,
                                      table_count == 1 ? "" : "s", chain_count,
                                      chain_count == 1 ? "" : "s", rules.size(),
                                      rules.size() == 1 ? "" : "s");
    std::string policy_note;
    if (!policy.empty()) {
      const auto& pd = policy[0];
      policy_note = fmt::format("; policy drop in {} {} {}", pd["family"].get<std::string>(),
                                pd["table"].get<std::string>(), pd["chain"].get<std::string>());
      if (policy.size() > 1) policy_note += fmt::format(" and {} more", policy.size() - 1);
    }
    if (!has_match) {
      out.message = fmt::format("{}, {} drop/reject rule{}{}", summary, drop_count,
                                drop_count == 1 ? "" : "s", policy_note);
      f["drops"] = std::move(drops);
      return out;
    }
    std::string what = describe_packet(p.raw("match"));
    if (drops.empty()) {
      out.message = fmt::format("{}: no rule drops it ({}){}", what, summary, policy_note);
      f["drops"] = std::move(drops);
      return out;
    }
    // Name a sure drop first, if there is one.
    const json* shown = &drops[0];
    for (const auto& d : drops)
      if (d["exact"].get<bool>()) {
        shown = &d;
        break;
      }
    const json& d = *shown;
    out.message = fmt::format(
        "{} {} by {} {} {} handle {} '{}'", what,
        d["exact"].get<bool>() ? "dropped" : "may be dropped", d["family"].get<std::string>(),
        d["table"].get<std::string>(), d["chain"].get<std::string>(), d["handle"].dump(),
        d["text"].get<std::string>());
    if (!d["packets"].is_null()) out.message += fmt::format(" ({} packets)", d["packets"].dump());
    if (drop_count > 1) out.message += fmt::format(" and {} more rule{}", drop_count - 1,
                                                   drop_count == 2 ? "" : "s");
    bool sure = d["exact"].get<bool>();
    f["drops"] = std::move(drops);
    if (!ctx.expects("drops") && !ctx.expects("drop_count"))
      out.status = sure ? Status::kFail : Status::kWarn;
    return out;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(FirewallStep);
}  // namespace netplay
