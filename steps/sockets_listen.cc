/// sockets.listen: what listens in the step's namespace (ss -ltnup), read with sock_diag.

#include <arpa/inet.h>
#include <dirent.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include <fmt/format.h>

#include "runner/step/services.h"
#include "runner/step/step.h"
#include "runner/step/tcp.h"

namespace netplay {
namespace {

/// Listeners listed in the `listeners` fact at most (count and ports stay exact).
constexpr size_t kMaxListed = 1000;
/// /proc/PID/fd entries looked at, at most, when finding the owners of sockets.
constexpr size_t kMaxFdsScanned = 1'000'000;

struct Listener {
  std::string proto;  // tcp, udp
  int family = 0;
  unsigned char addr[16] = {};
  std::string address;
  int port = 0;
  unsigned uid = 0;
  unsigned long inode = 0;
  bool v6only = false;
  int pid = 0;
  std::string program;
};

/// One sock_diag dump: sockets of `protocol` (IPPROTO_TCP, IPPROTO_UDP) and `family` whose
/// state is in `states` (a bit mask of TCP_* states).
std::expected<std::vector<Listener>, std::string> dump(NetlinkClient& nl, int family,
                                                       int protocol, unsigned states) {
  inet_diag_req_v2 req{};
  req.sdiag_family = static_cast<uint8_t>(family);
  req.sdiag_protocol = static_cast<uint8_t>(protocol);
  req.idiag_states = states;
  const char* proto = protocol == IPPROTO_TCP ? "tcp" : "udp";
  auto what = fmt::format("{}{} socket dump", proto, family == AF_INET6 ? "6" : "");
  auto r = nl.dump(SOCK_DIAG_BY_FAMILY,
                   std::span(reinterpret_cast<const unsigned char*>(&req), sizeof req), what);
  if (!r) {
    // A kernel without IPv6 (or without UDP diag) has nothing of that kind to list.
    if (r.error().kernel_errno == ENOENT || r.error().kernel_errno == EAFNOSUPPORT)
      return std::vector<Listener>{};
    return std::unexpected(r.error().message);
  }
  std::vector<Listener> out;
  for (const auto& m : *r) {
    auto payload = m.payload();
    if (m.type() != SOCK_DIAG_BY_FAMILY || payload.size() < sizeof(inet_diag_msg)) continue;
    inet_diag_msg d;
    std::memcpy(&d, payload.data(), sizeof d);
    if (d.idiag_family != AF_INET && d.idiag_family != AF_INET6) continue;
    Listener l;
    l.proto = proto;
    l.family = d.idiag_family;
    std::memcpy(l.addr, d.id.idiag_src, d.idiag_family == AF_INET ? 4 : 16);
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(l.family, l.addr, buf, sizeof buf);
    l.address = buf;
    l.port = ntohs(d.id.idiag_sport);
    l.uid = d.idiag_uid;
    l.inode = d.idiag_inode;
    // Attributes: INET_DIAG_SKV6ONLY says whether an IPv6 wildcard also takes IPv4.
    size_t off = NLMSG_ALIGN(sizeof(inet_diag_msg));
    while (off + sizeof(nlattr) <= payload.size()) {
      nlattr a;
      std::memcpy(&a, payload.data() + off, sizeof a);
      if (a.nla_len < sizeof(nlattr) || off + a.nla_len > payload.size()) break;
      if ((a.nla_type & NLA_TYPE_MASK) == INET_DIAG_SKV6ONLY && a.nla_len > sizeof(nlattr))
        l.v6only = payload[off + NLA_HDRLEN] != 0;
      off += NLA_ALIGN(a.nla_len);
    }
    if (l.port == 0) continue;  // not bound to a port: nothing can reach it
    out.push_back(std::move(l));
  }
  return out;
}

/// Fills pid and program of `ls` from /proc/*/fd ("socket:[INODE]") and /proc/PID/comm.
/// The lowest pid holding a socket names it (a forked server's parent, usually).
void find_owners(std::vector<Listener>& ls, const StepContext& ctx) {
  std::map<unsigned long, std::vector<Listener*>> wanted;
  for (auto& l : ls)
    if (l.inode != 0) wanted[l.inode].push_back(&l);
  if (wanted.empty()) return;
  DIR* proc = ::opendir("/proc");
  if (!proc) return;
  std::vector<int> pids;
  while (dirent* e = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid > 0 && *end == '\0') pids.push_back(static_cast<int>(pid));
  }
  ::closedir(proc);
  std::sort(pids.begin(), pids.end());
  size_t scanned = 0, found = 0;
  for (int pid : pids) {
    if (found == wanted.size() || scanned >= kMaxFdsScanned) break;
    if (ctx.is_cancelled() || ctx.expired()) break;
    std::string fd_dir = fmt::format("/proc/{}/fd", pid);
    DIR* d = ::opendir(fd_dir.c_str());
    if (!d) continue;  // gone, or not ours to read
    bool hit = false;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      if (++scanned >= kMaxFdsScanned) break;
      char link[64];
      std::string path = fd_dir + "/" + e->d_name;
      ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
      if (n <= 0) continue;
      link[n] = '\0';
      unsigned long inode = 0;
      if (std::sscanf(link, "socket:[%lu]", &inode) != 1) continue;
      auto it = wanted.find(inode);
      if (it == wanted.end() || it->second.front()->pid != 0) continue;
      for (Listener* l : it->second) l->pid = pid;
      ++found;
      hit = true;
    }
    ::closedir(d);
    if (!hit) continue;
    std::string comm;
    if (FILE* f = std::fopen(fmt::format("/proc/{}/comm", pid).c_str(), "r")) {
      char buf[64] = {};
      if (std::fgets(buf, sizeof buf, f)) comm = buf;
      std::fclose(f);
    }
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    for (auto& [inode, group] : wanted)
      for (Listener* l : group)
        if (l->pid == pid) l->program = valid_utf8(comm);
  }
}

/// Whether a socket bound to `l` takes packets for `address` (parsed into family/bytes):
/// the same address, or the wildcard of its family (an IPv6 wildcard also takes IPv4 unless
/// it is v6only).
bool takes(const Listener& l, int family, const unsigned char* bytes) {
  static const unsigned char zero[16] = {};
  bool wildcard = std::memcmp(l.addr, zero, l.family == AF_INET ? 4 : 16) == 0;
  if (l.family == family)
    return wildcard || std::memcmp(l.addr, bytes, family == AF_INET ? 4 : 16) == 0;
  return family == AF_INET && l.family == AF_INET6 && wildcard && !l.v6only;
}

std::string join_ports(const std::set<int>& ports) {
  std::string s;
  for (int p : ports) s += (s.empty() ? "" : ", ") + std::to_string(p);
  return s.empty() ? "none" : s;
}

class SocketsListenStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "sockets.listen",
        .summary = "What listens in the step's namespace: TCP listeners and bound UDP sockets "
                   "(ss -ltnup)",
        .description =
            "Lists the TCP sockets in state LISTEN and the bound, unconnected UDP sockets of "
            "the step's namespace, IPv4 and IPv6, from the kernel's sock_diag netlink "
            "interface (what `ss -ltnup` reads), optionally only those of `proto`, `port` and "
            "`address`. A socket bound to the wildcard (0.0.0.0, ::) takes `address` too; an "
            "IPv6 wildcard takes IPv4 unless it is v6only. Each listener names the process "
            "holding it (pid, program), found through /proc/*/fd; a socket of a process "
            "netplay may not read (or none) has no pid.\n\n"
            "With `port`, the step fails when nothing listens there, naming the ports that "
            "are listening (`nothing listens on tcp port 8080 (listening: 22, 53)`), unless "
            "`expect:` judges `listening` or `count` (e.g. `expect: {listening: false}` to "
            "prove a port is closed). Without `port` it passes and reports what it found.",
        .params = {{.name = "proto",
                    .type = ValueType::kString,
                    .doc = "Which sockets: tcp (listening), udp (bound) or any",
                    .default_value = "any",
                    .choices = {"tcp", "udp", "any"}},
                   {.name = "port",
                    .type = ValueType::kInt,
                    .doc = "Only sockets on this port",
                    .min = 1,
                    .max = 65535},
                   {.name = "address",
                    .type = ValueType::kIp,
                    .doc = "Only sockets that take packets for this address (bound to it or "
                           "to the wildcard)"}},
        .facts = {{"listening", "bool", "Some socket matched"},
                  {"count", "int", "Number of matching sockets"},
                  {"listeners", "list",
                   "The matching sockets (up to 1000), each {proto, address, port, pid, "
                   "program, inode, uid}; pid and program are null when unknown"},
                  {"ports", "list", "The ports of the matching sockets, sorted, unique"},
                  {"truncated", "bool", "More than 1000 sockets matched: the list is cut"}},
        .privileges = "root to name the processes of other users (pid, program)",
        .example = "- id: api_listens\n  uses: sockets.listen\n"
                   "  netns: \"{{ inputs.app_netns }}\"\n  with: {proto: tcp, port: 8080}\n"
                   "- id: dns_up\n  uses: sockets.listen\n  with: {proto: udp, port: 53}\n"
                   "  expect: {listeners.0.program: dnsmasq}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    const std::string proto = p.str("proto", "any");
    auto nl = ctx.netlink().open(ctx, NETLINK_SOCK_DIAG);
    if (!nl) return StepOutput::error(nl.error());

    std::vector<Listener> all;
    for (int family : {AF_INET, AF_INET6}) {
      if (proto != "udp") {
        auto r = dump(**nl, family, IPPROTO_TCP, 1u << TCP_LISTEN);
        if (!r) return StepOutput::error(r.error());
        all.insert(all.end(), r->begin(), r->end());
      }
      if (proto != "tcp") {
        // Unconnected UDP sockets are in state CLOSE (what ss shows as UNCONN).
        auto r = dump(**nl, family, IPPROTO_UDP, 1u << TCP_CLOSE);
        if (!r) return StepOutput::error(r.error());
        all.insert(all.end(), r->begin(), r->end());
      }
    }

    int family = 0;
    unsigned char bytes[16] = {};
    if (p.has("address")) {
      std::string a = p.str("address");
      family = a.find(':') != std::string::npos ? AF_INET6 : AF_INET;
      if (::inet_pton(family, a.c_str(), bytes) != 1)
        return StepOutput::error(fmt::format("'{}' is not an IP address", printable(a)));
    }
    const int port = p.has("port") ? static_cast<int>(p.integer("port")) : 0;

    std::set<int> listening_ports;  // every port of `proto`, for the failure message
    std::vector<Listener> match;
    for (auto& l : all) {
      listening_ports.insert(l.port);
      if (port != 0 && l.port != port) continue;
      if (family != 0 && !takes(l, family, bytes)) continue;
      match.push_back(l);
    }
    std::sort(match.begin(), match.end(), [](const Listener& a, const Listener& b) {
      return std::tie(a.proto, a.port, a.family, a.address, a.inode) <
             std::tie(b.proto, b.port, b.family, b.address, b.inode);
    });
    find_owners(match, ctx);

    StepOutput out;
    auto& f = out.facts;
    json listeners = json::array();
    std::set<int> ports;
    for (const auto& l : match) {
      ports.insert(l.port);
      if (listeners.size() >= kMaxListed) continue;
      json j = {{"proto", l.proto}, {"address", l.address}, {"port", l.port},
                {"pid", nullptr},   {"program", nullptr},   {"inode", l.inode},
                {"uid", l.uid}};
      if (l.pid) j["pid"] = l.pid;
      if (!l.program.empty()) j["program"] = l.program;
      listeners.push_back(std::move(j));
    }
    f["listening"] = !match.empty();
    f["count"] = match.size();
    f["listeners"] = std::move(listeners);
    f["ports"] = ports;
    f["truncated"] = match.size() > kMaxListed;

    std::string what = proto == "any" ? "tcp or udp" : proto;
    std::string where = family ? fmt::format(" for {}", p.str("address")) : "";
    if (match.empty()) {
      out.message = port ? fmt::format("nothing listens on {} port {}{} (listening: {})", what,
                                       port, where, join_ports(listening_ports))
                         : fmt::format("nothing listens on {}{}", what, where);
      if (port && !ctx.expects("listening") && !ctx.expects("count")) out.status = Status::kFail;
      return out;
    }
    if (port) {
      const Listener& l = match.front();
      std::string who =
          l.pid ? fmt::format(" ({}, pid {})", l.program.empty() ? "?" : l.program, l.pid) : "";
      out.message = fmt::format("{} {}{}", l.proto, format_endpoint(l.address, l.port), who);
      if (match.size() > 1) out.message += fmt::format(" and {} more", match.size() - 1);
      return out;
    }
    out.message = fmt::format("{} listening {} socket{}{} on ports {}", match.size(), what,
                              match.size() == 1 ? "" : "s", where, join_ports(ports));
    return out;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(SocketsListenStep);
}  // namespace netplay
