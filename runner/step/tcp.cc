#include "runner/step/tcp.h"

namespace netplay {
namespace {

// Placeholder until the real service lands.
class SystemTcpConnector : public TcpConnector {
 public:
  std::expected<TcpConnectResult, std::string> connect(const TcpConnectRequest&, const StepContext&) override {
    return std::unexpected("tcp connect: not available in this build");
  }
};

}  // namespace

std::unique_ptr<TcpConnector> make_system_tcp_connector() { return std::make_unique<SystemTcpConnector>(); }

}  // namespace netplay
