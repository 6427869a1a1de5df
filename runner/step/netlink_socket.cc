#include "runner/step/netlink_socket.h"

#include <linux/net_namespace.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace netplay {
namespace {

/// NLMSG_OK without the macro's comparison of the unsigned nlmsg_len with a signed length
/// (which clang reports in our code, where the macro's argument is).
bool nlmsg_ok(const nlmsghdr* h, int len) {
  return len >= static_cast<int>(sizeof(nlmsghdr)) && h->nlmsg_len >= sizeof(nlmsghdr) &&
         h->nlmsg_len <= static_cast<unsigned>(len);
}

using namespace std::chrono_literals;

/// How often a wait looks at the cancellation flag.
constexpr auto kSlice = 50ms;
/// A call's limit when the step has no deadline.
constexpr auto kNoDeadlineCap = 30s;
/// Dumps the kernel flags as inconsistent (the table changed meanwhile) are read again.
constexpr int kDumpAttempts = 3;
/// Dumps come in batches of up to 32 KiB when the reader offers that much.
constexpr size_t kInitialBuffer = 32 * 1024;

NlError err(std::string_view what, std::string text, int kernel_errno = 0) {
  return NlError{fmt::format("{}: {}", what, text), kernel_errno};
}

}  // namespace

// ---- NlMessage ----

NlMessage NlMessage::copy_of(const nlmsghdr* h) {
  NlMessage m;
  const auto* p = reinterpret_cast<const unsigned char*>(h);
  m.bytes_.assign(p, p + h->nlmsg_len);
  return m;
}

NlMessage NlMessage::make(uint16_t type, std::span<const unsigned char> payload, uint16_t flags) {
  NlMessage m;
  m.bytes_.assign(NLMSG_HDRLEN + payload.size(), 0);
  auto* h = m.hdr();
  h->nlmsg_len = static_cast<uint32_t>(m.bytes_.size());
  h->nlmsg_type = type;
  h->nlmsg_flags = flags;
  if (!payload.empty()) std::memcpy(m.bytes_.data() + NLMSG_HDRLEN, payload.data(), payload.size());
  return m;
}

std::span<const unsigned char> NlMessage::payload() const {
  if (bytes_.size() < NLMSG_HDRLEN) return {};
  size_t len = std::min<size_t>(hdr()->nlmsg_len, bytes_.size());
  return std::span<const unsigned char>(bytes_).subspan(NLMSG_HDRLEN, len - NLMSG_HDRLEN);
}

// ---- NetlinkSocket ----

NetlinkSocket::NetlinkSocket(int fd, uint32_t port, Clock::time_point deadline,
                             const std::atomic<bool>* cancelled)
    : fd_(fd), port_(port), deadline_(deadline), cancelled_(cancelled), buf_(kInitialBuffer) {}

NetlinkSocket::~NetlinkSocket() {
  if (fd_ >= 0) ::close(fd_);
}

std::expected<std::unique_ptr<NetlinkSocket>, std::string> NetlinkSocket::open(
    int protocol, Clock::time_point deadline, const std::atomic<bool>* cancelled) {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
  if (fd < 0)
    return std::unexpected(fmt::format("netlink: cannot open a socket: {}", std::strerror(errno)));
  // Dumps are paced by the reader, so a modest receive buffer suffices.
  int rcv = 256 * 1024, snd = 32 * 1024;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;  // nl_pid 0: the kernel picks a unique port
  socklen_t len = sizeof local;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    int e = errno;
    ::close(fd);
    return std::unexpected(fmt::format("netlink: cannot bind a socket: {}", std::strerror(e)));
  }
  return std::unique_ptr<NetlinkSocket>(new NetlinkSocket(fd, local.nl_pid, deadline, cancelled));
}

std::expected<uint32_t, NlError> NetlinkSocket::send(uint16_t type, uint16_t flags,
                                                     std::span<const unsigned char> payload,
                                                     std::string_view what) {
  if (cancelled_ && cancelled_->load()) return std::unexpected(err(what, "cancelled"));
  if (deadline_ != Clock::time_point::max() && Clock::now() >= deadline_)
    return std::unexpected(err(what, "timed out waiting for the kernel"));
  NlMessage m = NlMessage::make(type, payload, static_cast<uint16_t>(NLM_F_REQUEST | flags));
  uint32_t seq = next_seq_++;
  nlmsghdr* h = m.hdr();
  h->nlmsg_seq = seq;
  h->nlmsg_pid = port_;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    ssize_t n = ::sendto(fd_, m.bytes().data(), m.bytes().size(), 0,
                         reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
    if (n >= 0) return seq;
    if (errno == EINTR) continue;
    return std::unexpected(err(what, fmt::format("send: {}", std::strerror(errno))));
  }
}

std::expected<NlMessages, NlError> NetlinkSocket::receive(uint32_t seq, std::string_view what,
                                                          bool* interrupted) {
  Clock::time_point limit =
      deadline_ != Clock::time_point::max() ? deadline_ : Clock::now() + kNoDeadlineCap;
  NlMessages out;
  for (;;) {
    if (cancelled_ && cancelled_->load()) return std::unexpected(err(what, "cancelled"));
    // Peek first: the datagram's size, so that nothing is ever cut off. The kernel mostly
    // has the answer queued by the time send() returns: wait only when it has not.
    ssize_t n = ::recv(fd_, buf_.data(), buf_.size(), MSG_PEEK | MSG_TRUNC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      auto now = Clock::now();
      if (now >= limit) return std::unexpected(err(what, "timed out waiting for the kernel"));
      auto wait = std::min<Clock::duration>(limit - now, kSlice);
      int ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count());
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, ms) < 0 && errno != EINTR)
        return std::unexpected(err(what, fmt::format("poll: {}", std::strerror(errno))));
      continue;
    }
    if (n >= 0 && static_cast<size_t>(n) > buf_.size()) buf_.resize(static_cast<size_t>(n));
    if (n >= 0) n = ::recv(fd_, buf_.data(), buf_.size(), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return std::unexpected(err(what, fmt::format("receive: {}", std::strerror(errno))));
    }

    bool finished = false;
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf_.data()); nlmsg_ok(h, left);
         h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != seq || h->nlmsg_pid != port_) continue;  // not ours, or stale
      if ((h->nlmsg_flags & NLM_F_DUMP_INTR) && interrupted) *interrupted = true;
      if (h->nlmsg_type == NLMSG_NOOP) continue;
      if (h->nlmsg_type == NLMSG_DONE) {
        // A dump that failed midway ends with the error in DONE's payload.
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
          int e = 0;
          std::memcpy(&e, NLMSG_DATA(h), sizeof e);
          if (e < 0) return std::unexpected(err(what, std::strerror(-e), -e));
        }
        return out;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr)))
          return std::unexpected(err(what, "malformed error reply"));
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        if (e->error == 0) return out;  // an acknowledgement ends the exchange
        return std::unexpected(err(what, std::strerror(-e->error), -e->error));
      }
      if (h->nlmsg_type == NLMSG_OVERRUN) return std::unexpected(err(what, "data lost (overrun)"));
      out.push_back(NlMessage::copy_of(h));
      if (!(h->nlmsg_flags & NLM_F_MULTI)) finished = true;
    }
    if (finished) return out;
  }
}

std::expected<NlMessages, NlError> NetlinkSocket::dump(uint16_t type,
                                                       std::span<const unsigned char> payload,
                                                       std::string_view what) {
  for (int attempt = 1;; ++attempt) {
    auto seq = send(type, NLM_F_DUMP, payload, what);
    if (!seq) return std::unexpected(seq.error());
    bool interrupted = false;
    auto r = receive(*seq, what, &interrupted);
    if (!r || !interrupted) return r;
    if (attempt == kDumpAttempts)
      return std::unexpected(err(
          what, fmt::format("the table kept changing while it was read ({} attempts)", attempt)));
  }
}

std::expected<NlMessages, NlError> NetlinkSocket::request(uint16_t type,
                                                          std::span<const unsigned char> payload,
                                                          std::string_view what) {
  auto seq = send(type, 0, payload, what);
  if (!seq) return std::unexpected(seq.error());
  return receive(*seq, what);
}

std::expected<int, std::string> NetlinkSocket::netnsid_of_fd(int ns_fd) {
  // rtgenmsg (padded to 4 bytes), then NETNSA_FD as a u32 attribute.
  unsigned char req[NLMSG_ALIGN(sizeof(rtgenmsg)) + RTA_LENGTH(sizeof(uint32_t))] = {};
  req[0] = AF_UNSPEC;
  auto* a = reinterpret_cast<rtattr*>(req + NLMSG_ALIGN(sizeof(rtgenmsg)));
  a->rta_type = NETNSA_FD;
  a->rta_len = RTA_LENGTH(sizeof(uint32_t));
  auto fd = static_cast<uint32_t>(ns_fd);
  std::memcpy(RTA_DATA(a), &fd, sizeof fd);
  auto r = request(RTM_GETNSID, req, "netnsid");
  if (!r) return std::unexpected(r.error().message);
  for (const auto& m : *r) {
    if (m.type() != RTM_NEWNSID) continue;
    auto payload = m.payload();
    if (payload.size() < NLMSG_ALIGN(sizeof(rtgenmsg))) break;
    int left = static_cast<int>(payload.size() - NLMSG_ALIGN(sizeof(rtgenmsg)));
    auto* at = reinterpret_cast<const rtattr*>(payload.data() + NLMSG_ALIGN(sizeof(rtgenmsg)));
    for (; RTA_OK(at, left); at = RTA_NEXT(at, left)) {
      if (at->rta_type != NETNSA_NSID || RTA_PAYLOAD(at) < sizeof(int32_t)) continue;
      int32_t id = 0;
      std::memcpy(&id, RTA_DATA(at), sizeof id);
      return id;
    }
    return -1;  // an answer without NETNSA_NSID: none assigned
  }
  return std::unexpected("netnsid: the kernel sent no answer");
}

// ---- KernelNetlink ----

std::expected<std::unique_ptr<NetlinkClient>, std::string> KernelNetlink::open(
    const StepContext& ctx, int protocol) {
  auto s = NetlinkSocket::open(protocol, ctx.deadline, ctx.cancelled);
  if (!s) return std::unexpected(s.error());
  return std::unique_ptr<NetlinkClient>(std::move(*s));
}

}  // namespace netplay
