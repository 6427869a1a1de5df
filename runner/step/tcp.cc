#include "runner/step/tcp.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "runner/base/fd.h"
#include "runner/step/services.h"

namespace netplay {
namespace {

using namespace std::chrono_literals;

/// How often a wait looks at the cancellation flag.
constexpr auto kSlice = 50ms;

/// A numeric address (IPv6 may carry a %scope) with `port`, or why it is not one.
std::expected<sockaddr_storage, std::string> numeric_address(const std::string& host, int port,
                                                             socklen_t* len) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0 || !res) return std::unexpected(fmt::format("'{}' is not an IP address", host));
  sockaddr_storage ss{};
  std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  ::freeaddrinfo(res);
  return ss;
}

using Fd = UniqueFd;

/// The state a connect(2) error stands for.
std::string state_of(int e) {
  switch (e) {
    case 0: return "open";
    case ECONNREFUSED: return "refused";
    case ETIMEDOUT: return "filtered";
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENONET:
    case EACCES:  // ICMPv6 administratively prohibited, reject-route, policy failure
    case EPERM:   // a local firewall refused to send the SYN
      return "unreachable";
    default: return "error";
  }
}

std::string detail_of(int e) {
  if (e == EACCES) return "Permission denied (administratively prohibited)";
  if (e == EPERM) return "Operation not permitted (refused by the local firewall)";
  return std::strerror(e);
}

}  // namespace

std::string format_endpoint(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    return fmt::format("{}:{}", buf, ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    return fmt::format("[{}]:{}", buf, ntohs(in6->sin6_port));
  }
  return "";
}

std::string format_endpoint(const std::string& address, int port) {
  if (address.find(':') != std::string::npos) return fmt::format("[{}]:{}", address, port);
  return fmt::format("{}:{}", address, port);
}

namespace {

class SystemTcpConnector : public TcpConnector {
 public:
  std::expected<TcpConnectResult, std::string> connect(const TcpConnectRequest& r,
                                                       const StepContext& ctx) override {
    const std::string target = format_endpoint(r.address, r.port);
    if (ctx.is_cancelled()) return std::unexpected(fmt::format("{}: cancelled", target));
    if (ctx.expired()) return std::unexpected(fmt::format("{}: timed out", target));
    socklen_t len = 0;
    auto dst = numeric_address(r.address, r.port, &len);
    if (!dst) return std::unexpected(dst.error());
    int family = dst->ss_family;

    Fd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
    if (fd.get() < 0)
      return std::unexpected(fmt::format("{}: cannot create a TCP socket: {}", target,
                                         std::strerror(errno)));
    if (!r.interface.empty()) {
      if (r.interface.size() >= IFNAMSIZ)
        return std::unexpected(fmt::format("interface name '{}' is too long", r.interface));
      if (::setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, r.interface.c_str(),
                       static_cast<socklen_t>(r.interface.size())) != 0)
        return std::unexpected(fmt::format("cannot bind to interface '{}': {}", r.interface,
                                           std::strerror(errno)));
    }
    if (!r.source.empty()) {
      socklen_t slen = 0;
      auto src = numeric_address(r.source, 0, &slen);
      if (!src) return std::unexpected(fmt::format("source: {}", src.error()));
      if (src->ss_family != family)
        return std::unexpected(fmt::format("source {} and target {} are of different families",
                                           r.source, r.address));
      if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*src), slen) != 0)
        return std::unexpected(fmt::format("cannot bind to source {}: {}", r.source,
                                           std::strerror(errno)));
    }

    StepClock& clock = ctx.clock();
    const Clock::time_point start = clock.now();
    const Clock::time_point give_up =
        start + std::chrono::duration_cast<Clock::duration>(r.timeout);
    auto elapsed_ms = [&] { return Millis(clock.now() - start).count(); };

    TcpConnectResult out;
    out.peer = target;
    int err = 0;
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*dst), len) != 0) err = errno;
    if (err == EINPROGRESS) {
      err = -1;  // still waiting
      for (;;) {
        if (ctx.is_cancelled()) return std::unexpected(fmt::format("{}: cancelled", target));
        auto now = clock.now();
        if (now >= give_up) break;
        if (now >= ctx.deadline)
          return std::unexpected(fmt::format(
              "{}: the step timed out after {:.0f} ms waiting for an answer", target,
              elapsed_ms()));
        auto wait = std::min({give_up - now, ctx.deadline - now,
                              std::chrono::duration_cast<Clock::duration>(kSlice)});
        int ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count());
        pollfd p{.fd = fd.get(), .events = POLLOUT, .revents = 0};
        int n = ::poll(&p, 1, std::max(ms, 1));
        if (n < 0) {
          if (errno == EINTR) continue;
          return std::unexpected(fmt::format("{}: poll: {}", target, std::strerror(errno)));
        }
        if (n == 0) continue;
        int so_error = 0;
        socklen_t sl = sizeof so_error;
        if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &sl) != 0) so_error = errno;
        err = so_error;
        break;
      }
    }
    out.connect_ms = elapsed_ms();
    if (err == -1) {
      out.state = "filtered";
      out.error_errno = ETIMEDOUT;
      out.detail = "no answer within the timeout";
    } else {
      out.state = state_of(err);
      out.error_errno = err;
      if (err != 0) out.detail = detail_of(err);
    }
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &sl) == 0) {
      std::string local = format_endpoint(reinterpret_cast<const sockaddr*>(&ss));
      if (!local.ends_with(":0")) out.local = std::move(local);
    }
    if (err == 0) {
      sl = sizeof ss;
      if (::getpeername(fd.get(), reinterpret_cast<sockaddr*>(&ss), &sl) == 0)
        out.peer = format_endpoint(reinterpret_cast<const sockaddr*>(&ss));
    }
    // A normal close: the server sees an orderly FIN, not a reset it might log as an error.
    return out;
  }
};

}  // namespace

std::unique_ptr<TcpConnector> make_system_tcp_connector() {
  return std::make_unique<SystemTcpConnector>();
}

}  // namespace netplay
