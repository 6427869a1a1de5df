#pragma once
/// The real netlink service: a socket of the namespace the opening thread is in, whose
/// every wait is a poll(2) in short slices, so the step's deadline and cancellation end it
/// (a blocking receive with SO_RCVTIMEO could only honour the deadline). Messages are
/// handed back as they came; decoding them (libnl, in steps/net/) is the steps' business.

#include <atomic>
#include <cstdint>
#include <expected>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runner/base/core.h"
#include "runner/step/services.h"

namespace netplay {

class NetlinkSocket final : public NetlinkClient {
 public:
  /// Opens a socket for `protocol` in the calling thread's network namespace. Calls end
  /// at `deadline` (with no deadline, 30 s after each call starts) or soon after
  /// `*cancelled` turns true (null: never).
  static std::expected<std::unique_ptr<NetlinkSocket>, std::string> open(
      int protocol, Clock::time_point deadline, const std::atomic<bool>* cancelled);
  ~NetlinkSocket() override;
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;

  std::expected<NlMessages, NlError> dump(uint16_t type, std::span<const unsigned char> payload,
                                          std::string_view what) override;
  std::expected<NlMessages, NlError> request(uint16_t type, std::span<const unsigned char> payload,
                                             std::string_view what) override;
  std::expected<int, std::string> netnsid_of_fd(int ns_fd) override;

  // The two halves of an exchange, public for tests of the waiting.

  /// Sends one message (NLM_F_REQUEST | `flags`); returns its sequence number.
  std::expected<uint32_t, NlError> send(uint16_t type, uint16_t flags,
                                        std::span<const unsigned char> payload,
                                        std::string_view what);
  /// The reply to `seq`: a multi-part reply up to NLMSG_DONE, else the first datagram that
  /// answers it. Replies to other sequence numbers (a request given up on) are dropped.
  /// `interrupted` is set when the kernel flagged the dump as inconsistent (NLM_F_DUMP_INTR).
  std::expected<NlMessages, NlError> receive(uint32_t seq, std::string_view what,
                                             bool* interrupted = nullptr);

 private:
  NetlinkSocket(int fd, uint32_t port, Clock::time_point deadline,
                const std::atomic<bool>* cancelled);

  int fd_ = -1;
  uint32_t port_ = 0;
  uint32_t next_seq_ = 1;
  Clock::time_point deadline_;
  const std::atomic<bool>* cancelled_;
  std::vector<unsigned char> buf_;
};

/// The Netlink service of RealServices.
class KernelNetlink : public Netlink {
 public:
  std::expected<std::unique_ptr<NetlinkClient>, std::string> open(const StepContext& ctx,
                                                                  int protocol) override;
};

}  // namespace netplay
