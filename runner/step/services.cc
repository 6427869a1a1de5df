#include "runner/step/services.h"

#include "runner/step/netlink_socket.h"
#include "runner/step/process.h"

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
};

RealServices::RealServices(ProcessRegistry& registry)
    : registry_(registry), impl_(std::make_unique<Impl>(registry)) {}
RealServices::~RealServices() = default;

Netlink& RealServices::netlink() { return impl_->netlink; }
ProcessRunner& RealServices::processes() { return impl_->processes; }
StepClock& RealServices::clock() { return impl_->clock; }

RealServices& system_services() {
  // Never destroyed: a step abandoned after its timeout may outlive main().
  static auto* registry = new ProcessRegistry();
  static auto* services = new RealServices(*registry);
  return *services;
}

}  // namespace netplay
