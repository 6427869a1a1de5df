#include "runner/step/icmp.h"

namespace netplay {
namespace {

// Placeholder until the real service lands.
class SystemPinger : public Pinger {
 public:
  std::expected<std::vector<EchoResult>, std::string> echo(const EchoRequest&, const StepContext&) override {
    return std::unexpected("ping: not available in this build");
  }
};

}  // namespace

std::unique_ptr<Pinger> make_system_pinger() { return std::make_unique<SystemPinger>(); }

}  // namespace netplay
