#pragma once
/// DNS queries, the service behind `dns` (and name lookups of other probes): c-ares, one
/// query at a time to the servers given, timed from send to answer; every wait honours the
/// query's timeout, the step's deadline and cancellation.

#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runner/base/core.h"
#include "runner/step/canned.h"
#include "runner/step/step.h"

namespace netplay {

/// A DNS server as written in a step or a resolv.conf: "IP", "IP:PORT" or "[IPv6]:PORT"
/// (a bare IPv6 address takes port 53).
struct DnsServer {
  std::string ip;
  int port = 53;
  int family = 0;  // AF_INET or AF_INET6
  /// "10.0.0.53", "10.0.0.53:5353", "[fd00::53]:53" (the port only when not 53).
  std::string to_string() const;
};
/// The error reads "bad DNS server 'x': ...".
std::expected<DnsServer, std::string> parse_dns_server(std::string_view s);

/// The name a PTR query asks for: 10.1.2.3 -> 3.2.1.10.in-addr.arpa, an IPv6 address ->
/// its nibbles under ip6.arpa; anything that is not an address is returned unchanged.
std::string reverse_name(std::string_view address_or_name);

struct DnsQuery {
  std::string name;
  std::string type = "A";  // A, AAAA, CNAME, SRV, PTR, TXT, NS, MX
  /// "IP", "IP:PORT" or "[IPv6]:PORT", tried in order; never empty (the step picks the
  /// resolv.conf that applies).
  std::vector<std::string> servers;
  Millis timeout{2000};
  int tries = 1;
};

struct DnsRecord {
  std::string name;
  std::string type;
  long ttl = 0;
  /// The address (A, AAAA), the target name (CNAME, PTR), "PRIO WEIGHT PORT TARGET" (SRV),
  /// the text (TXT), "PREF EXCHANGE" (MX), the server name (NS); other types
  /// "\\# LEN HEX" (RFC 3597).
  std::string data;
};

struct DnsResponse {
  /// NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED (or RCODE<n>); "timeout" when no
  /// server answered in time; "unreachable" when every server's port was unreachable (an
  /// ICMP error came back instead of an answer).
  std::string rcode;
  std::vector<DnsRecord> answers;
  double query_ms = 0;  // from sending the query to its answer (or to giving up)
  std::string server;  // the server that answered (or the last one tried)
};

class Resolver {
 public:
  virtual ~Resolver() = default;
  /// Error only when the query could not be sent (bad server address, cancelled); an
  /// unanswered query is a response with rcode "timeout".
  virtual std::expected<DnsResponse, std::string> query(const DnsQuery& q,
                                                        const StepContext& ctx) = 0;
};

std::unique_ptr<Resolver> make_system_resolver();

class FakeResolver : public Resolver, public CannedAnswers<DnsQuery, DnsResponse> {
 public:
  std::expected<DnsResponse, std::string> query(const DnsQuery& q,
                                                const StepContext& ctx) override {
    return ask(q, ctx, "dns");
  }
};

}  // namespace netplay
