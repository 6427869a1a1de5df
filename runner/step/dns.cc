#include "runner/step/dns.h"

#include <arpa/inet.h>
#include <ares.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>
#include <optional>

#include <fmt/format.h>

#include "runner/step/services.h"

namespace netplay {

std::string DnsServer::to_string() const {
  if (port == 53) return ip;
  return family == AF_INET6 ? fmt::format("[{}]:{}", ip, port) : fmt::format("{}:{}", ip, port);
}

namespace {

std::optional<int> parse_port(std::string_view s) {
  int v = 0;
  if (s.empty() || s.size() > 5) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 1 || v > 65535) return std::nullopt;
  return v;
}

bool parses_as(int family, const std::string& ip) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(family, ip.c_str(), buf) == 1;
}

}  // namespace

std::expected<DnsServer, std::string> parse_dns_server(std::string_view s) {
  auto bad = [&](std::string_view why) -> std::expected<DnsServer, std::string> {
    return std::unexpected(fmt::format("bad DNS server '{}': {}", printable(s), why));
  };
  if (s.empty()) return bad("empty");
  DnsServer d;
  std::string_view port;
  bool has_port = false;
  if (s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    d.ip = std::string(s.substr(1, close - 1));
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("expected ':PORT' after ']'");
      port = rest.substr(1);
      has_port = true;
    }
    if (!parses_as(AF_INET6, d.ip)) return bad("not an IPv6 address between [ ]");
    d.family = AF_INET6;
  } else if (std::count(s.begin(), s.end(), ':') == 1) {
    size_t colon = s.find(':');
    d.ip = std::string(s.substr(0, colon));
    port = s.substr(colon + 1);
    has_port = true;
    if (!parses_as(AF_INET, d.ip)) return bad("not an IPv4 address (write IPv6 as [ADDR]:PORT)");
    d.family = AF_INET;
  } else {
    d.ip = std::string(s);
    if (parses_as(AF_INET, d.ip)) {
      d.family = AF_INET;
    } else if (parses_as(AF_INET6, d.ip)) {
      d.family = AF_INET6;
    } else {
      return bad("not an IP address (a server is given by address: IP, IP:PORT or [IPv6]:PORT)");
    }
  }
  if (has_port) {
    auto p = parse_port(port);
    if (!p) return bad("the port must be a number from 1 to 65535");
    d.port = *p;
  }
  return d;
}

std::string reverse_name(std::string_view address_or_name) {
  std::string a(address_or_name);
  unsigned char b[sizeof(in6_addr)];
  if (::inet_pton(AF_INET, a.c_str(), b) == 1)
    return fmt::format("{}.{}.{}.{}.in-addr.arpa", b[3], b[2], b[1], b[0]);
  if (::inet_pton(AF_INET6, a.c_str(), b) == 1) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (int i = 15; i >= 0; --i) {
      out += kHex[b[i] & 0xf];
      out += '.';
      out += kHex[b[i] >> 4];
      out += '.';
    }
    return out + "ip6.arpa";
  }
  return a;
}

namespace {

struct TypeName {
  int code;
  const char* name;
};
constexpr TypeName kTypes[] = {{1, "A"},   {2, "NS"},   {5, "CNAME"}, {6, "SOA"}, {12, "PTR"},
                               {15, "MX"}, {16, "TXT"}, {28, "AAAA"}, {33, "SRV"}};

std::optional<int> type_code(std::string_view name) {
  for (const auto& t : kTypes)
    if (name == t.name) return t.code;
  return std::nullopt;
}

std::string type_name(int code) {
  for (const auto& t : kTypes)
    if (code == t.code) return t.name;
  return fmt::format("TYPE{}", code);
}

std::string rcode_name(int rcode) {
  static constexpr const char* kNames[] = {"NOERROR",  "FORMERR", "SERVFAIL",
                                           "NXDOMAIN", "NOTIMP",  "REFUSED"};
  if (rcode >= 0 && rcode < 6) return kNames[rcode];
  return fmt::format("RCODE{}", rcode);
}

int u16(const unsigned char* p) { return (p[0] << 8) | p[1]; }
long u32(const unsigned char* p) {
  return static_cast<long>((static_cast<unsigned long>(p[0]) << 24) |
                           (static_cast<unsigned long>(p[1]) << 16) |
                           (static_cast<unsigned long>(p[2]) << 8) | p[3]);
}

/// A (possibly compressed) name at `at` inside the message; `len` gets its encoded length.
std::optional<std::string> expand(const unsigned char* at, const unsigned char* msg, int msg_len,
                                  long* len) {
  char* s = nullptr;
  if (ares_expand_name(at, msg, msg_len, &s, len) != ARES_SUCCESS) return std::nullopt;
  std::string out = valid_utf8(s);
  ares_free_string(s);
  return out;
}

/// The data of one record as DnsRecord::data describes it; nullopt when it is malformed.
std::optional<std::string> record_data(int type, const unsigned char* rd, int rdlen,
                                       const unsigned char* msg, int msg_len) {
  long n = 0;
  char ip[INET6_ADDRSTRLEN];
  switch (type) {
    case 1:  // A
      if (rdlen != 4 || !::inet_ntop(AF_INET, rd, ip, sizeof ip)) return std::nullopt;
      return std::string(ip);
    case 28:  // AAAA
      if (rdlen != 16 || !::inet_ntop(AF_INET6, rd, ip, sizeof ip)) return std::nullopt;
      return std::string(ip);
    case 2:
    case 5:
    case 12:  // NS, CNAME, PTR
      return expand(rd, msg, msg_len, &n);
    case 15: {  // MX
      if (rdlen < 3) return std::nullopt;
      auto host = expand(rd + 2, msg, msg_len, &n);
      if (!host) return std::nullopt;
      return fmt::format("{} {}", u16(rd), *host);
    }
    case 33: {  // SRV
      if (rdlen < 7) return std::nullopt;
      auto target = expand(rd + 6, msg, msg_len, &n);
      if (!target) return std::nullopt;
      return fmt::format("{} {} {} {}", u16(rd), u16(rd + 2), u16(rd + 4), *target);
    }
    case 6: {  // SOA
      long n2 = 0;
      auto mname = expand(rd, msg, msg_len, &n);
      if (!mname) return std::nullopt;
      auto rname = expand(rd + n, msg, msg_len, &n2);
      if (!rname || n + n2 + 20 > rdlen) return std::nullopt;
      const unsigned char* v = rd + n + n2;
      return fmt::format("{} {} {} {} {} {} {}", *mname, *rname, u32(v), u32(v + 4), u32(v + 8),
                         u32(v + 12), u32(v + 16));
    }
    case 16: {  // TXT: its character-strings, joined
      std::string text;
      for (int i = 0; i < rdlen;) {
        int l = rd[i];
        if (i + 1 + l > rdlen) return std::nullopt;
        text.append(reinterpret_cast<const char*>(rd + i + 1), static_cast<size_t>(l));
        i += 1 + l;
      }
      return valid_utf8(text);
    }
    default: {
      std::string hex;
      for (int i = 0; i < rdlen; ++i) hex += fmt::format("{:02x}", rd[i]);
      return fmt::format("\\# {} {}", rdlen, hex);
    }
  }
}

struct Parsed {
  std::string rcode;
  std::vector<DnsRecord> answers;
};

std::expected<Parsed, std::string> parse_message(const std::vector<unsigned char>& m) {
  const unsigned char* msg = m.data();
  int len = static_cast<int>(m.size());
  if (len < 12) return std::unexpected("answer shorter than a DNS header");
  Parsed out;
  out.rcode = rcode_name(msg[3] & 0xf);
  int qd = u16(msg + 4), an = u16(msg + 6);
  const unsigned char* p = msg + 12;
  const unsigned char* end = msg + len;
  long n = 0;
  for (int i = 0; i < qd; ++i) {
    if (!expand(p, msg, len, &n) || p + n + 4 > end) return std::unexpected("malformed question");
    p += n + 4;
  }
  for (int i = 0; i < an; ++i) {
    auto name = expand(p, msg, len, &n);
    if (!name || p + n + 10 > end) return std::unexpected("malformed answer record");
    p += n;
    int type = u16(p), rdlen = u16(p + 8);
    long ttl = u32(p + 4);
    const unsigned char* rd = p + 10;
    if (rd + rdlen > end) return std::unexpected("answer record past the end of the message");
    auto data = record_data(type, rd, rdlen, msg, len);
    if (!data) return std::unexpected(fmt::format("malformed {} record", type_name(type)));
    out.answers.push_back({.name = *name, .type = type_name(type), .ttl = ttl, .data = *data});
    p = rd + rdlen;
  }
  return out;
}

void library_init() {
  static std::once_flag once;
  std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

struct Pending {
  const StepClock* clock = nullptr;
  bool done = false;
  int status = ARES_SUCCESS;
  std::vector<unsigned char> answer;
  Clock::time_point answered{};
};

void on_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
  auto* p = static_cast<Pending*>(arg);
  if (p->done) return;
  p->done = true;
  p->status = status;
  p->answered = p->clock->now();
  if (abuf && alen > 0) p->answer.assign(abuf, abuf + alen);
}

class Channel {
 public:
  ~Channel() {
    if (ch_) ares_destroy(ch_);
  }
  ares_channel& get() { return ch_; }

 private:
  ares_channel ch_ = nullptr;
};

enum class Outcome { kAnswer, kTimeout, kUnreachable, kCancelled, kError };

struct Attempt {
  Outcome outcome = Outcome::kError;
  std::vector<unsigned char> answer;
  Clock::time_point end{};
  std::string error;
};

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

/// One query to one server, one try: until its answer, `timeout`, the step's deadline or
/// cancellation, driving the channel's sockets with poll in slices of at most 50 ms.
Attempt ask_once(const DnsServer& server, const std::vector<unsigned char>& query, Millis timeout,
                 const StepContext& ctx) {
  const StepClock& clock = ctx.clock();
  Attempt a;
  Pending pending;  // outlives the channel, whose destruction may still call back
  pending.clock = &clock;
  Channel ch;
  ares_options opts{};
  opts.flags = ARES_FLAG_NOCHECKRESP;
  opts.timeout = static_cast<int>(std::clamp<Millis::rep>(timeout.count(), 1, 1 << 30));
  opts.tries = 1;
  int rc =
      ares_init_options(&ch.get(), &opts, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (rc != ARES_SUCCESS) {
    a.error = fmt::format("cannot start a resolver: {}", ares_strerror(rc));
    return a;
  }
  ares_addr_port_node node{};
  node.family = server.family;
  if (::inet_pton(server.family, server.ip.c_str(), &node.addr) != 1) {
    a.error = "not an IP address";
    return a;
  }
  node.udp_port = node.tcp_port = server.port;
  rc = ares_set_servers_ports(ch.get(), &node);
  if (rc != ARES_SUCCESS) {
    a.error = fmt::format("cannot use this server: {}", ares_strerror(rc));
    return a;
  }
  Clock::time_point start = clock.now();
  Clock::time_point deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::min(timeout, ctx.remaining()));
  ares_send(ch.get(), query.data(), static_cast<int>(query.size()), on_answer, &pending);
  while (!pending.done) {
    if (ctx.is_cancelled()) {
      ares_cancel(ch.get());
      a.outcome = Outcome::kCancelled;
      return a;
    }
    Clock::time_point now = clock.now();
    if (now >= deadline) {
      ares_cancel(ch.get());
      a.outcome = Outcome::kTimeout;
      a.end = now;
      return a;
    }
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(ch.get(), socks, ARES_GETSOCK_MAXNUM);
    pollfd fds[ARES_GETSOCK_MAXNUM];
    nfds_t nfds = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short ev = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
      if (ev) fds[nfds++] = {.fd = socks[i], .events = ev, .revents = 0};
    }
    auto left = std::chrono::duration_cast<Millis>(deadline - now) + Millis(1);
    long wait_ms = std::clamp<long>(static_cast<long>(left.count()), 0, 50);
    timeval max_tv{.tv_sec = 0, .tv_usec = wait_ms * 1000}, tv{};
    if (timeval* t = ares_timeout(ch.get(), &max_tv, &tv))
      wait_ms = std::min<long>(wait_ms, t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);
    int n = ::poll(fds, nfds, static_cast<int>(wait_ms));
    if (n < 0 && errno != EINTR) {
      a.error = fmt::format("poll: {}", std::strerror(errno));
      return a;
    }
    if (n > 0) {
      for (nfds_t i = 0; i < nfds; ++i) {
        short r = fds[i].revents;
        if (!r) continue;
        bool readable = r & (POLLIN | POLLERR | POLLHUP);
        ares_process_fd(ch.get(), readable ? fds[i].fd : ARES_SOCKET_BAD,
                        (r & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD);
      }
    } else {
      ares_process_fd(ch.get(), ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // c-ares's own timeouts
    }
  }
  a.end = pending.answered;
  switch (pending.status) {
    case ARES_SUCCESS:
      a.outcome = Outcome::kAnswer;
      a.answer = std::move(pending.answer);
      break;
    case ARES_ETIMEOUT:
      a.outcome = Outcome::kTimeout;
      break;
    case ARES_ECONNREFUSED:
      a.outcome = Outcome::kUnreachable;
      break;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
      a.outcome = Outcome::kCancelled;
      break;
    default:
      a.error = ares_strerror(pending.status);
  }
  return a;
}

class SystemResolver : public Resolver {
 public:
  std::expected<DnsResponse, std::string> query(const DnsQuery& q,
                                                const StepContext& ctx) override {
    library_init();
    if (q.servers.empty()) return std::unexpected("dns: no server to ask");
    std::vector<DnsServer> servers;
    for (const auto& s : q.servers) {
      auto d = parse_dns_server(s);
      if (!d) return std::unexpected(d.error());
      servers.push_back(*d);
    }
    auto type = type_code(q.type);
    if (!type)
      return std::unexpected(fmt::format("dns: unsupported query type '{}'", printable(q.type)));
    std::string name = q.type == "PTR" ? reverse_name(q.name) : q.name;
    unsigned char* buf = nullptr;
    int buflen = 0;
    int rc = ares_create_query(name.c_str(), 1 /* IN */, *type, 0, 1, &buf, &buflen, 0);
    if (rc != ARES_SUCCESS)
      return std::unexpected(
          fmt::format("dns: cannot ask for '{}': {}", printable(q.name), ares_strerror(rc)));
    std::vector<unsigned char> query(buf, buf + buflen);
    ares_free_string(buf);

    DnsResponse resp;
    resp.rcode = "unreachable";
    const Clock::time_point start = ctx.clock().now();
    Clock::time_point last = start;
    for (int t = 0; t < std::max(1, q.tries); ++t) {
      for (const auto& server : servers) {
        if (ctx.is_cancelled()) return std::unexpected("dns: cancelled");
        if (ctx.expired()) {
          resp.rcode = "timeout";
          resp.query_ms = ms_between(start, ctx.clock().now());
          return resp;
        }
        resp.server = server.to_string();
        Attempt a = ask_once(server, query, q.timeout, ctx);
        if (a.end != Clock::time_point{}) last = a.end;
        switch (a.outcome) {
          case Outcome::kCancelled:
            return std::unexpected("dns: cancelled");
          case Outcome::kError:
            return std::unexpected(fmt::format("dns: {}: {}", resp.server, a.error));
          case Outcome::kTimeout:
            resp.rcode = "timeout";
            break;
          case Outcome::kUnreachable:
            if (resp.rcode != "timeout") resp.rcode = "unreachable";
            break;
          case Outcome::kAnswer: {
            auto parsed = parse_message(a.answer);
            if (!parsed)
              return std::unexpected(fmt::format("dns: {}: {}", resp.server, parsed.error()));
            resp.rcode = parsed->rcode;
            resp.answers = std::move(parsed->answers);
            resp.query_ms = ms_between(start, a.end);
            return resp;
          }
        }
      }
    }
    resp.query_ms = ms_between(start, std::max(last, start));
    return resp;
  }
};

}  // namespace

std::unique_ptr<Resolver> make_system_resolver() {
  library_init();
  return std::make_unique<SystemResolver>();
}

}  // namespace netplay
