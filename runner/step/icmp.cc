#include "runner/step/icmp.h"

#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "runner/base/fd.h"

namespace netplay {
namespace {

/// The longest a poll waits before looking at cancellation and the deadline again.
constexpr Millis kSlice{50};
/// ICMP_FILTER from linux/icmp.h, which cannot be included next to netinet/ip_icmp.h.
constexpr int kIcmpFilter = 1;
/// Errors kept per target beyond one per request (a router answering each twice, ...).
constexpr size_t kExtraErrors = 8;
/// Receive buffer of a raw socket (bytes).
constexpr int kRawRcvbuf = 1 << 20;

using Fd = UniqueFd;

struct Addr {
  int family = AF_UNSPEC;
  sockaddr_storage ss{};
  socklen_t len = 0;

  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
  /// The address bytes (4 or 16).
  const void* bytes() const {
    if (family == AF_INET) return &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr;
    return &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr;
  }
};

std::optional<Addr> parse_addr(const std::string& text) {
  Addr a;
  auto* in4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  if (::inet_pton(AF_INET, text.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    a.family = AF_INET;
    a.len = sizeof(sockaddr_in);
    return a;
  }
  a.ss = {};
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (::inet_pton(AF_INET6, text.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    a.family = AF_INET6;
    a.len = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

std::string addr_text(int family, const void* bytes) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (!::inet_ntop(family, bytes, buf, sizeof buf)) return "";
  return buf;
}

std::string sockaddr_text(const sockaddr* sa) {
  if (sa->sa_family == AF_INET)
    return addr_text(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
  if (sa->sa_family == AF_INET6)
    return addr_text(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr);
  return "";
}

bool same_addr(const Addr& a, const sockaddr* sa) {
  if (sa->sa_family != a.family) return false;
  if (a.family == AF_INET)
    return std::memcmp(a.bytes(), &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4) == 0;
  return std::memcmp(a.bytes(), &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16) == 0;
}

uint16_t inet_checksum(const unsigned char* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n % 2) sum += static_cast<uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

uint16_t get16(const unsigned char* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// ---- What an ICMP error means ----

std::string unreachable_text_v4(int code) {
  switch (code) {
    case ICMP_NET_UNREACH: return "network unreachable";
    case ICMP_HOST_UNREACH: return "host unreachable";
    case ICMP_PROT_UNREACH: return "protocol unreachable";
    case ICMP_PORT_UNREACH: return "port unreachable";
    case ICMP_FRAG_NEEDED: return "fragmentation needed";
    case ICMP_SR_FAILED: return "source route failed";
    case ICMP_NET_UNKNOWN: return "destination network unknown";
    case ICMP_HOST_UNKNOWN: return "destination host unknown";
    case ICMP_HOST_ISOLATED: return "source host isolated";
    case ICMP_NET_ANO: return "network administratively prohibited";
    case ICMP_HOST_ANO: return "host administratively prohibited";
    case ICMP_NET_UNR_TOS: return "network unreachable for TOS";
    case ICMP_HOST_UNR_TOS: return "host unreachable for TOS";
    case ICMP_PKT_FILTERED: return "communication administratively prohibited";
    case ICMP_PREC_VIOLATION: return "host precedence violation";
    case ICMP_PREC_CUTOFF: return "precedence cutoff in effect";
    default: return fmt::format("destination unreachable (code {})", code);
  }
}

std::string unreachable_text_v6(int code) {
  switch (code) {
    case ICMP6_DST_UNREACH_NOROUTE: return "no route to destination";
    case ICMP6_DST_UNREACH_ADMIN: return "communication administratively prohibited";
    case ICMP6_DST_UNREACH_BEYONDSCOPE: return "beyond scope of source address";
    case ICMP6_DST_UNREACH_ADDR: return "address unreachable";
    case ICMP6_DST_UNREACH_NOPORT: return "port unreachable";
    case 5: return "source address failed ingress/egress policy";
    case 6: return "reject route to destination";
    default: return fmt::format("destination unreachable (code {})", code);
  }
}

/// The error for ICMP `type`/`code` of `family`; kind "" when the type is not an error
/// about a request of ours.
IcmpError classify(int family, int type, int code, uint32_t info) {
  IcmpError e;
  e.type = type;
  e.code = code;
  if (family == AF_INET) {
    if (type == ICMP_DEST_UNREACH && code == ICMP_FRAG_NEEDED) {
      e.kind = "frag_needed";
      e.mtu = static_cast<int>(info);
      e.detail = fmt::format("fragmentation needed (mtu {})", e.mtu);
    } else if (type == ICMP_DEST_UNREACH) {
      e.kind = "unreachable";
      e.detail = unreachable_text_v4(code);
    } else if (type == ICMP_TIME_EXCEEDED) {
      e.kind = "time_exceeded";
      e.detail = code == ICMP_EXC_FRAGTIME ? "fragment reassembly time exceeded"
                                           : "time to live exceeded";
    }
  } else {
    if (type == ICMP6_PACKET_TOO_BIG) {
      e.kind = "packet_too_big";
      e.mtu = static_cast<int>(info);
      e.detail = fmt::format("packet too big (mtu {})", e.mtu);
    } else if (type == ICMP6_DST_UNREACH) {
      e.kind = "unreachable";
      e.detail = unreachable_text_v6(code);
    } else if (type == ICMP6_TIME_EXCEEDED) {
      e.kind = "time_exceeded";
      e.detail = code == ICMP6_TIME_EXCEED_REASSEMBLY ? "fragment reassembly time exceeded"
                                                      : "hop limit exceeded";
    }
  }
  return e;
}

// ---- Sockets and targets ----

/// An ICMP socket of a request. A ping socket serves one target (the kernel hands it the
/// replies to its own id); a raw socket sees every ICMP message of the namespace, so one per
/// family serves all the targets of that family, told apart by the id of each.
struct Sock {
  Fd fd;
  int family = AF_UNSPEC;
  bool raw = false;
  std::vector<size_t> targets;  // indices into the request's targets
};

struct Target {
  Addr addr;
  size_t sock = 0;  // index into the request's sockets
  uint16_t id = 0;  // ours on raw sockets; the kernel's (unused) on ping sockets
  std::vector<Clock::time_point> sent_at;  // by seq - 1
  std::vector<char> replied;               // by seq - 1
  std::vector<char> answered;              // a reply or an error, by seq - 1
  EchoResult result;
};

/// The request's targets and the ids given to them: target i has id base + i.
struct Targets {
  std::vector<Target> list;
  uint16_t id_base = 0;

  /// The target of `family` whose requests carry `id`, if any.
  Target* by_id(int family, uint16_t id) {
    size_t i = static_cast<uint16_t>(id - id_base);
    if (i >= list.size() || list[i].addr.family != family) return nullptr;
    return &list[i];
  }
};

std::string socket_error(const std::string& target, std::string_view what, int e) {
  return fmt::format("ping {}: {}: {}", target, what, std::strerror(e));
}

/// An ICMP socket of `family` with the request's options; `name` (a target) is for errors.
std::expected<Sock, std::string> open_socket(int family, const EchoRequest& r,
                                             const std::string& name) {
  int proto = family == AF_INET ? static_cast<int>(IPPROTO_ICMP) : static_cast<int>(IPPROTO_ICMPV6);
  Sock s;
  s.family = family;
  // A ping socket where net.ipv4.ping_group_range lets this process's group open one; a
  // raw socket (CAP_NET_RAW) otherwise.
  int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd < 0) {
    int ping_errno = errno;
    fd = ::socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
    if (fd < 0) {
      int raw_errno = errno;
      if (raw_errno == EAFNOSUPPORT)
        return std::unexpected(fmt::format("ping {}: IPv6 is not available here", name));
      return std::unexpected(fmt::format(
          "ping {}: cannot open an ICMP socket: raw socket: {} (needs CAP_NET_RAW); ping "
          "socket: {} (needs a group in net.ipv4.ping_group_range)",
          name, std::strerror(raw_errno), std::strerror(ping_errno)));
    }
    s.raw = true;
  }
  s.fd = Fd(fd);
  auto set = [&](int level, int opt, int value, std::string_view what)
      -> std::expected<void, std::string> {
    if (::setsockopt(fd, level, opt, &value, sizeof value) < 0)
      return std::unexpected(socket_error(name, what, errno));
    return {};
  };
  bool v4 = family == AF_INET;
  // ICMP errors for our requests (ping sockets) and the MTU of a local EMSGSIZE (both).
  if (auto ok = v4 ? set(SOL_IP, IP_RECVERR, 1, "IP_RECVERR")
                   : set(SOL_IPV6, IPV6_RECVERR, 1, "IPV6_RECVERR");
      !ok)
    return std::unexpected(ok.error());
  if (s.raw) {
    // Room for the replies of every target (best effort: the forced size needs
    // CAP_NET_ADMIN, the plain one is capped by net.core.rmem_max).
    int rcvbuf = kRawRcvbuf;
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    // A raw socket sees every ICMP message of the namespace: keep replies and errors.
    if (v4) {
      uint32_t pass = (1u << ICMP_ECHOREPLY) | (1u << ICMP_DEST_UNREACH) |
                      (1u << ICMP_TIME_EXCEEDED);
      uint32_t block = ~pass;
      if (::setsockopt(fd, SOL_RAW, kIcmpFilter, &block, sizeof block) < 0)
        return std::unexpected(socket_error(name, "ICMP_FILTER", errno));
    } else {
      icmp6_filter f;
      ICMP6_FILTER_SETBLOCKALL(&f);
      ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
      ICMP6_FILTER_SETPASS(ICMP6_DST_UNREACH, &f);
      ICMP6_FILTER_SETPASS(ICMP6_PACKET_TOO_BIG, &f);
      ICMP6_FILTER_SETPASS(ICMP6_TIME_EXCEEDED, &f);
      if (::setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof f) < 0)
        return std::unexpected(socket_error(name, "ICMP6_FILTER", errno));
    }
  }
  if (r.ttl > 0) {
    if (auto ok = v4 ? set(SOL_IP, IP_TTL, r.ttl, "IP_TTL")
                     : set(SOL_IPV6, IPV6_UNICAST_HOPS, r.ttl, "IPV6_UNICAST_HOPS");
        !ok)
      return std::unexpected(ok.error());
  }
  if (r.dont_fragment) {
    // DF set and the cached path MTU ignored (tracepath's way): each size is tried as is.
    if (v4) {
      if (auto ok = set(SOL_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE, "IP_MTU_DISCOVER"); !ok)
        return std::unexpected(ok.error());
    } else {
      if (auto ok = set(SOL_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE, "IPV6_MTU_DISCOVER");
          !ok)
        return std::unexpected(ok.error());
      if (auto ok = set(SOL_IPV6, IPV6_DONTFRAG, 1, "IPV6_DONTFRAG"); !ok)
        return std::unexpected(ok.error());
    }
  }
  if (!r.interface.empty()) {
    if (r.interface.size() >= IFNAMSIZ)
      return std::unexpected(fmt::format("ping {}: interface name '{}' is too long", name,
                                         r.interface));
    if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, r.interface.c_str(),
                     static_cast<socklen_t>(r.interface.size())) < 0) {
      int e = errno;
      if (e == ENODEV)
        return std::unexpected(
            fmt::format("ping {}: no interface '{}' in this namespace", name, r.interface));
      return std::unexpected(socket_error(name, fmt::format("interface {}", r.interface), e));
    }
  }
  if (!r.source.empty()) {
    auto src = parse_addr(r.source);
    if (!src) return std::unexpected(fmt::format("source '{}' is not an IP address", r.source));
    if (src->family != family)
      return std::unexpected(fmt::format("source {} and target {} are of different families",
                                         r.source, name));
    if (::bind(fd, src->sa(), src->len) < 0) {
      int e = errno;
      return std::unexpected(fmt::format("ping {}: cannot use source {}: {}", name, r.source,
                                         std::strerror(e)));
    }
  }
  return s;
}

/// Records `e` for `seq` of `t` (one reply or error answers a request).
void add_error(Target& t, IcmpError e, size_t cap) {
  if (e.seq >= 1 && static_cast<size_t>(e.seq) <= t.answered.size())
    t.answered[static_cast<size_t>(e.seq - 1)] = 1;
  if (t.result.errors.size() < cap) t.result.errors.push_back(std::move(e));
}

void add_reply(Target& t, int seq, Clock::time_point now) {
  if (seq < 1 || static_cast<size_t>(seq) > t.sent_at.size()) return;
  size_t i = static_cast<size_t>(seq - 1);
  if (t.replied[i] || t.sent_at[i] == Clock::time_point{}) return;  // a duplicate, or not ours
  t.replied[i] = 1;
  t.answered[i] = 1;
  double ms = std::chrono::duration<double, std::milli>(now - t.sent_at[i]).count();
  t.result.rtt_ms.push_back(std::max(0.0, ms));
}

/// The local errors queued on `s` (EMSGSIZE with the MTU the kernel knows); ICMP errors
/// found there are matched to the target of a ping socket (raw sockets see the ICMP
/// messages themselves and skip them here).
std::vector<IcmpError> drain_errqueue(Sock& s, Targets& ts, size_t cap) {
  std::vector<IcmpError> local;
  for (int guard = 0; guard < 256; ++guard) {
    unsigned char data[576];
    alignas(cmsghdr) unsigned char control[512];
    sockaddr_storage name{};
    iovec iov{data, sizeof data};
    msghdr msg{};
    msg.msg_name = &name;
    msg.msg_namelen = sizeof name;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(s.fd.get(), &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // EAGAIN: empty
    }
    const sock_extended_err* ee = nullptr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
          (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR))
        ee = reinterpret_cast<const sock_extended_err*>(CMSG_DATA(c));
    }
    if (!ee) continue;
    if (ee->ee_origin == SO_EE_ORIGIN_LOCAL) {
      IcmpError e;
      e.kind = "local";
      e.detail = std::strerror(static_cast<int>(ee->ee_errno));
      if (ee->ee_errno == EMSGSIZE) e.mtu = static_cast<int>(ee->ee_info);
      local.push_back(std::move(e));
      continue;
    }
    if (s.raw || s.targets.empty()) continue;
    if (ee->ee_origin != SO_EE_ORIGIN_ICMP && ee->ee_origin != SO_EE_ORIGIN_ICMP6) continue;
    Target& t = ts.list[s.targets.front()];
    // The original destination, and our echo header quoted back.
    if (!same_addr(t.addr, reinterpret_cast<const sockaddr*>(&name)) || n < 8) continue;
    IcmpError e = classify(t.addr.family, ee->ee_type, ee->ee_code, ee->ee_info);
    if (e.kind.empty()) continue;
    e.seq = get16(data + 6);
    const auto* offender = SO_EE_OFFENDER(ee);
    if (offender->sa_family != AF_UNSPEC) e.from = sockaddr_text(offender);
    add_error(t, std::move(e), cap);
  }
  return local;
}

/// Matches what arrived on `s`: echo replies and (raw sockets) ICMP errors that quote one
/// of our requests.
void drain(Sock& s, Targets& ts, std::vector<unsigned char>& buf, size_t cap) {
  bool v4 = s.family == AF_INET;
  for (int guard = 0; guard < 4096; ++guard) {
    sockaddr_storage from{};
    socklen_t from_len = sizeof from;
    ssize_t n = ::recvfrom(s.fd.get(), buf.data(), buf.size(), MSG_DONTWAIT,
                           reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) {
      // A pending socket error (an ICMP error, also queued below) is reported once, ahead
      // of the datagrams still queued.
      if (errno != EAGAIN && errno != EWOULDBLOCK) continue;
      break;
    }
    auto now = Clock::now();
    const auto* sa = reinterpret_cast<const sockaddr*>(&from);
    const unsigned char* p = buf.data();
    size_t len = static_cast<size_t>(n);
    if (s.raw && v4) {  // a raw IPv4 socket gets the IP header too
      if (len < 20) continue;
      size_t ihl = (p[0] & 0x0fu) * 4u;
      if (ihl < 20 || len < ihl + 8) continue;
      p += ihl;
      len -= ihl;
    }
    if (len < 8) continue;
    int type = p[0], code = p[1];
    int reply_type = v4 ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY;
    if (type == reply_type) {
      Target* t = s.raw ? ts.by_id(s.family, get16(p + 4))
                        : (s.targets.empty() ? nullptr : &ts.list[s.targets.front()]);
      if (t && same_addr(t->addr, sa)) add_reply(*t, get16(p + 6), now);
      continue;
    }
    if (!s.raw) continue;
    // An error quoting our request: the IP header we sent, then our echo header.
    const unsigned char* q = p + 8;
    size_t qlen = len - 8;
    const unsigned char* echo = nullptr;
    const unsigned char* dst = nullptr;
    if (v4) {
      if (qlen < 20) continue;
      size_t ihl = (q[0] & 0x0fu) * 4u;
      if (ihl < 20 || qlen < ihl + 8 || q[9] != IPPROTO_ICMP) continue;
      dst = q + 16;
      echo = q + ihl;
      if (echo[0] != ICMP_ECHO) continue;
    } else {
      if (qlen < 40 + 8 || q[6] != IPPROTO_ICMPV6) continue;
      dst = q + 24;
      echo = q + 40;
      if (echo[0] != ICMP6_ECHO_REQUEST) continue;
    }
    Target* t = ts.by_id(s.family, get16(echo + 4));
    if (!t || std::memcmp(dst, t->addr.bytes(), v4 ? 4 : 16) != 0) continue;
    uint32_t info = v4 ? get16(p + 6)  // icmphdr.un.frag.mtu
                       : static_cast<uint32_t>(p[4]) << 24 | static_cast<uint32_t>(p[5]) << 16 |
                             static_cast<uint32_t>(p[6]) << 8 | p[7];  // icmp6_mtu
    IcmpError e = classify(s.family, type, code, info);
    if (e.kind.empty()) continue;
    e.from = sockaddr_text(sa);
    e.seq = get16(echo + 6);
    add_error(*t, std::move(e), cap);
  }
  drain_errqueue(s, ts, cap);
}

void send_request(Sock& s, Target& t, Targets& ts, int seq, const EchoRequest& r,
                  std::vector<unsigned char>& pkt, size_t cap) {
  bool v4 = s.family == AF_INET;
  size_t n = 8 + static_cast<size_t>(r.size);
  pkt.assign(n, 0);
  for (size_t i = 8; i < n; ++i) pkt[i] = static_cast<unsigned char>(i - 8);
  pkt[0] = v4 ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
  pkt[4] = static_cast<unsigned char>(t.id >> 8);
  pkt[5] = static_cast<unsigned char>(t.id & 0xff);
  pkt[6] = static_cast<unsigned char>(seq >> 8);
  pkt[7] = static_cast<unsigned char>(seq & 0xff);
  // The kernel sums ping sockets' and every ICMPv6 request; a raw IPv4 one is ours to sum.
  if (v4 && s.raw) {
    uint16_t sum = inet_checksum(pkt.data(), n);
    std::memcpy(pkt.data() + 2, &sum, 2);
  }
  // An ICMP error seen earlier may be pending on the socket and would fail this send:
  // it was matched already (as a message or from the error queue), so clear it.
  int pending = 0;
  socklen_t plen = sizeof pending;
  ::getsockopt(s.fd.get(), SOL_SOCKET, SO_ERROR, &pending, &plen);
  size_t i = static_cast<size_t>(seq - 1);
  t.sent_at[i] = Clock::now();
  ++t.result.sent;
  ssize_t w;
  do {
    w = ::sendto(s.fd.get(), pkt.data(), n, 0, t.addr.sa(), t.addr.len);
  } while (w < 0 && errno == EINTR);
  if (w >= 0) return;
  int e = errno;
  std::vector<IcmpError> local = drain_errqueue(s, ts, cap);
  IcmpError err;
  err.kind = "local";
  err.seq = seq;
  err.detail = std::strerror(e);
  for (const auto& l : local)
    if (l.mtu > 0) err.mtu = l.mtu;
  add_error(t, std::move(err), cap);
}

class SystemPinger : public Pinger {
 public:
  std::expected<std::vector<EchoResult>, std::string> echo(const EchoRequest& r,
                                                           const StepContext& ctx) override {
    if (r.targets.empty()) return std::unexpected("ping: no target");
    if (r.targets.size() > 65536) return std::unexpected("ping: too many targets");
    if (r.count < 1) return std::unexpected("ping: count must be at least 1");
    if (r.size < 0 || r.size > 65507)
      return std::unexpected(fmt::format("ping: size {} is not from 0 to 65507", r.size));
    if (ctx.is_cancelled()) return std::unexpected("ping: cancelled");
    if (ctx.expired()) return std::unexpected("ping: timed out");

    Targets ts;
    ts.list.resize(r.targets.size());
    std::random_device rd;
    ts.id_base = static_cast<uint16_t>(rd());
    size_t count = static_cast<size_t>(r.count);
    size_t cap = count + kExtraErrors;
    std::vector<Sock> socks;
    std::optional<size_t> shared_raw[2];  // by family: IPv4, IPv6
    for (size_t i = 0; i < ts.list.size(); ++i) {
      Target& t = ts.list[i];
      t.result.target = r.targets[i];
      auto a = parse_addr(r.targets[i]);
      if (!a) return std::unexpected(fmt::format("'{}' is not an IP address", r.targets[i]));
      t.addr = *a;
      t.id = static_cast<uint16_t>(ts.id_base + i);
      t.sent_at.assign(count, Clock::time_point{});
      t.replied.assign(count, 0);
      t.answered.assign(count, 0);
      auto& shared = shared_raw[t.addr.family == AF_INET ? 0 : 1];
      if (!shared) {
        auto s = open_socket(t.addr.family, r, t.result.target);
        if (!s) return std::unexpected(s.error());
        socks.push_back(std::move(*s));
        if (socks.back().raw) shared = socks.size() - 1;
      }
      t.sock = shared ? *shared : socks.size() - 1;
      socks[t.sock].targets.push_back(i);
      t.result.socket = socks[t.sock].raw ? "raw" : "ping";
    }

    std::vector<unsigned char> buf(65536 + 1024), pkt;
    std::vector<pollfd> fds(socks.size());
    for (size_t i = 0; i < socks.size(); ++i) fds[i] = {socks[i].fd.get(), POLLIN, 0};

    Millis interval = std::max(r.interval, Millis(0));
    auto start = Clock::now();
    auto deadline = ctx.deadline;
    size_t next = 0;  // the next request to send, to every target
    Clock::time_point end = Clock::time_point::max();
    for (;;) {
      if (ctx.is_cancelled()) return std::unexpected("ping: cancelled");
      auto now = Clock::now();
      if (deadline != Clock::time_point::max() && now >= deadline)
        return std::unexpected("ping: timed out");
      while (next < count &&
             now >= start + std::chrono::duration_cast<Clock::duration>(interval * next)) {
        for (auto& t : ts.list)
          send_request(socks[t.sock], t, ts, static_cast<int>(next + 1), r, pkt, cap);
        ++next;
        now = Clock::now();
        if (next == count)
          end = now + std::chrono::duration_cast<Clock::duration>(std::max(r.timeout, Millis(0)));
      }
      if (next == count) {
        bool all = std::all_of(ts.list.begin(), ts.list.end(), [](const Target& t) {
          return std::all_of(t.answered.begin(), t.answered.end(), [](char a) { return a; });
        });
        if (all || now >= end) break;
      }
      Clock::time_point wake = next < count
          ? start + std::chrono::duration_cast<Clock::duration>(interval * next)
          : end;
      wake = std::min({wake, deadline, now + std::chrono::duration_cast<Clock::duration>(kSlice)});
      int ms = wake > now
          ? static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wake - now).count())
          : 0;
      int ready = ::poll(fds.data(), fds.size(), ms);
      if (ready < 0 && errno != EINTR)
        return std::unexpected(fmt::format("ping: poll: {}", std::strerror(errno)));
      if (ready <= 0) continue;
      for (size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents) drain(socks[i], ts, buf, cap);
    }
    std::vector<EchoResult> out;
    out.reserve(ts.list.size());
    for (auto& t : ts.list) out.push_back(std::move(t.result));
    return out;
  }
};

}  // namespace

std::unique_ptr<Pinger> make_system_pinger() { return std::make_unique<SystemPinger>(); }

}  // namespace netplay
