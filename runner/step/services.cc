#include "runner/step/services.h"

#include "runner/step/dns.h"
#include "runner/step/firewall.h"
#include "runner/step/pcap.h"
#include "runner/step/http.h"
#include "runner/step/icmp.h"
#include "runner/step/netlink_socket.h"
#include "runner/step/process.h"
#include "runner/step/tcp.h"

namespace netplay {
namespace {

class SystemClock : public StepClock {
 public:
  Clock::time_point now() const override { return Clock::now(); }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::now();
  }
};

}  // namespace

struct RealServices::Impl {
  explicit Impl(ProcessRegistry& r) : processes(r) {}
  KernelNetlink netlink;
  SystemProcessRunner processes;
  SystemClock clock;
  std::unique_ptr<Pinger> pinger = make_system_pinger();
  std::unique_ptr<TcpConnector> tcp = make_system_tcp_connector();
  std::unique_ptr<Resolver> resolver = make_system_resolver();
  std::unique_ptr<HttpClient> http = make_system_http_client();
  std::unique_ptr<Firewall> firewall = make_system_firewall();
  std::unique_ptr<PacketSource> packets = make_system_packet_source();
};

RealServices::RealServices(ProcessRegistry& registry)
    : registry_(registry), impl_(std::make_unique<Impl>(registry)) {}
RealServices::~RealServices() = default;

Netlink& RealServices::netlink() { return impl_->netlink; }
ProcessRunner& RealServices::processes() { return impl_->processes; }
StepClock& RealServices::clock() { return impl_->clock; }
Pinger& RealServices::pinger() { return *impl_->pinger; }
TcpConnector& RealServices::tcp() { return *impl_->tcp; }
Resolver& RealServices::resolver() { return *impl_->resolver; }
HttpClient& RealServices::http() { return *impl_->http; }
Firewall& RealServices::firewall() { return *impl_->firewall; }
PacketSource& RealServices::packets() { return *impl_->packets; }

RealServices& system_services() {
  // Never destroyed: a step abandoned after its timeout may outlive main().
  static auto* registry = new ProcessRegistry();
  static auto* services = new RealServices(*registry);
  return *services;
}

}  // namespace netplay
