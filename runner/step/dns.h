#pragma once
/// DNS queries, the service behind `dns` (and name lookups of other probes): c-ares, one
/// query at a time to the servers given, timed from send to answer; every wait honours the
/// query's timeout, the step's deadline and cancellation.

#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "runner/base/core.h"
#include "runner/step/canned.h"
#include "runner/step/step.h"

namespace netplay {

struct DnsQuery {
  std::string name;
  std::string type = "A";  // A, AAAA, CNAME, SRV, PTR, TXT, ...
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
  /// the text (TXT).
  std::string data;
};

struct DnsResponse {
  /// NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ... or "timeout" when no server answered.
  std::string rcode;
  std::vector<DnsRecord> answers;
  double query_ms = 0;
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
