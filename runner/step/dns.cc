#include "runner/step/dns.h"

namespace netplay {
namespace {

// Placeholder until the real service lands.
class SystemResolver : public Resolver {
 public:
  std::expected<DnsResponse, std::string> query(const DnsQuery&, const StepContext&) override {
    return std::unexpected("dns: not available in this build");
  }
};

}  // namespace

std::unique_ptr<Resolver> make_system_resolver() { return std::make_unique<SystemResolver>(); }

}  // namespace netplay
