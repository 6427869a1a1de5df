#pragma once
/// Canned sock_diag answers for unit tests of steps that list sockets (sockets.listen) on
/// FakeNetlink: one SOCK_DIAG_BY_FAMILY message per socket, as the kernel sends them in a
/// dump of inet_diag_req_v2.
///
///   canned::sock_diag(fakes.fake_netlink, {{.proto = IPPROTO_TCP, .address = "0.0.0.0",
///                                           .port = 22, .inode = 100}});

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cstring>
#include <string>
#include <vector>

#include "runner/step/fakes.h"

namespace netplay::canned {

struct DiagSocket {
  int proto = IPPROTO_TCP;     // IPPROTO_TCP (listening) or IPPROTO_UDP (bound)
  std::string address = "0.0.0.0";  // IPv4 or IPv6: the family follows
  int port = 0;
  unsigned long inode = 0;
  unsigned uid = 0;
  bool v6only = false;
};

inline NlMessage diag_message(const DiagSocket& s) {
  inet_diag_msg d{};
  bool v6 = s.address.find(':') != std::string::npos;
  d.idiag_family = static_cast<uint8_t>(v6 ? AF_INET6 : AF_INET);
  d.idiag_state = s.proto == IPPROTO_TCP ? TCP_LISTEN : TCP_CLOSE;
  d.id.idiag_sport = htons(static_cast<uint16_t>(s.port));
  ::inet_pton(d.idiag_family, s.address.c_str(), d.id.idiag_src);
  d.idiag_uid = s.uid;
  d.idiag_inode = static_cast<uint32_t>(s.inode);
  std::vector<unsigned char> bytes(NLMSG_ALIGN(sizeof d), 0);
  std::memcpy(bytes.data(), &d, sizeof d);
  if (v6) {
    unsigned char attr[NLA_HDRLEN + 4] = {};
    nlattr a{.nla_len = NLA_HDRLEN + 1, .nla_type = INET_DIAG_SKV6ONLY};
    std::memcpy(attr, &a, sizeof a);
    attr[NLA_HDRLEN] = s.v6only ? 1 : 0;
    bytes.insert(bytes.end(), attr, attr + sizeof attr);
  }
  return NlMessage::make(SOCK_DIAG_BY_FAMILY, bytes, NLM_F_MULTI);
}

/// Every sock_diag dump answers with the sockets of `sockets` of the asked family and
/// protocol (as the kernel filters them).
inline void sock_diag(FakeNetlink& nl, std::vector<DiagSocket> sockets) {
  nl.on(
      SOCK_DIAG_BY_FAMILY, true,
      [sockets](const FakeNetlink::Request& r) -> std::expected<NlMessages, NlError> {
        inet_diag_req_v2 req{};
        std::memcpy(&req, r.payload.data(), std::min(sizeof req, r.payload.size()));
        NlMessages out;
        for (const auto& s : sockets) {
          bool v6 = s.address.find(':') != std::string::npos;
          if ((v6 ? AF_INET6 : AF_INET) != req.sdiag_family || s.proto != req.sdiag_protocol)
            continue;
          out.push_back(diag_message(s));
        }
        return out;
      },
      NETLINK_SOCK_DIAG);
}

}  // namespace netplay::canned
