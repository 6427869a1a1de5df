#pragma once
/// Canned DNS answers for steps that resolve names through the resolver service.

#include <string>

#include "runner/step/fakes.h"

namespace netplay::canned {

/// Every A query answers `address` (from 10.0.0.53); other types answer NOERROR, no record.
inline void resolve_to(FakeServices& f, std::string address) {
  f.fake_resolver.answer([address](const DnsQuery& q, const StepContext&)
                             -> std::expected<DnsResponse, std::string> {
    DnsResponse r{.rcode = "NOERROR", .server = "10.0.0.53"};
    if (q.type == "A") r.answers = {{.name = q.name, .type = "A", .data = address}};
    return r;
  });
}

}  // namespace netplay::canned
