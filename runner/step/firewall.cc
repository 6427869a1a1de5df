#include "runner/step/firewall.h"

namespace netplay {
namespace {

// Placeholder until the real service lands.
class SystemFirewall : public Firewall {
 public:
  std::expected<json, std::string> ruleset(const RulesetRequest&, const StepContext&) override {
    return std::unexpected("nftables: not available in this build");
  }
};

}  // namespace

std::unique_ptr<Firewall> make_system_firewall() { return std::make_unique<SystemFirewall>(); }

}  // namespace netplay
