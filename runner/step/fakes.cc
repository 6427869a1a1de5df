#include "runner/step/fakes.h"

#include <signal.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace netplay {

// ---- FakeClock ----

Clock::time_point FakeClock::now() const { return start_ + Clock::duration(elapsed_.load()); }

std::chrono::system_clock::time_point FakeClock::wall_now() const {
  return std::chrono::system_clock::time_point(std::chrono::seconds(kWallStartSeconds)) +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             Clock::duration(elapsed_.load()));
}

void FakeClock::advance(Millis d) {
  elapsed_ += std::chrono::duration_cast<Clock::duration>(d).count();
}

// ---- FakeNetlink ----

namespace {

/// What FakeNetlink::open hands out: checks the step's deadline and cancellation on the
/// step's clock, then asks the fake for the answer.
class FakeNetlinkClient : public NetlinkClient {
 public:
  FakeNetlinkClient(FakeNetlink& fake, const StepContext& ctx, int protocol)
      : fake_(fake),
        clock_(ctx.clock()),
        deadline_(ctx.deadline),
        cancelled_(ctx.cancelled),
        protocol_(protocol) {}

  std::expected<NlMessages, NlError> dump(uint16_t type, std::span<const unsigned char> payload,
                                          std::string_view what) override {
    return ask(type, true, payload, what);
  }
  std::expected<NlMessages, NlError> request(uint16_t type, std::span<const unsigned char> payload,
                                             std::string_view what) override {
    return ask(type, false, payload, what);
  }
  std::expected<int, std::string> netnsid_of_fd(int ns_fd) override {
    if (auto stop = stopped("netnsid")) return std::unexpected(stop->message);
    return fake_.netnsid(ns_fd);
  }

 private:
  std::optional<NlError> stopped(std::string_view what) const {
    if (cancelled_ && cancelled_->load()) return NlError{fmt::format("{}: cancelled", what)};
    if (deadline_ != Clock::time_point::max() && clock_.now() >= deadline_)
      return NlError{fmt::format("{}: timed out waiting for the kernel", what)};
    return std::nullopt;
  }
  std::expected<NlMessages, NlError> ask(uint16_t type, bool dump,
                                         std::span<const unsigned char> payload,
                                         std::string_view what) {
    if (auto stop = stopped(what)) return std::unexpected(*stop);
    return fake_.answer({protocol_, type, dump, {payload.begin(), payload.end()}}, what);
  }

  FakeNetlink& fake_;
  StepClock& clock_;
  Clock::time_point deadline_;
  const std::atomic<bool>* cancelled_;
  int protocol_;
};

}  // namespace

FakeNetlink& FakeNetlink::on(uint16_t type, bool dump, Handler h, int protocol) {
  std::lock_guard lock(m_);
  handlers_[Key{protocol, type, dump}] = std::move(h);
  return *this;
}

FakeNetlink& FakeNetlink::on_dump(uint16_t type, NlMessages replies, int protocol) {
  return on(type, true, [replies](const Request&) { return replies; }, protocol);
}

FakeNetlink& FakeNetlink::on_request(uint16_t type, NlMessages replies, int protocol) {
  return on(type, false, [replies](const Request&) { return replies; }, protocol);
}

FakeNetlink& FakeNetlink::refuse(uint16_t type, int kernel_errno, bool dump, int protocol) {
  return on(
      type, dump,
      [kernel_errno](const Request&) -> std::expected<NlMessages, NlError> {
        return std::unexpected(NlError{std::strerror(kernel_errno), kernel_errno});
      },
      protocol);
}

FakeNetlink& FakeNetlink::on_netnsid(std::function<std::expected<int, std::string>(int)> h) {
  std::lock_guard lock(m_);
  netnsid_ = std::move(h);
  return *this;
}

FakeNetlink& FakeNetlink::fail_open(std::string error) {
  std::lock_guard lock(m_);
  open_error_ = std::move(error);
  return *this;
}

std::expected<std::unique_ptr<NetlinkClient>, std::string> FakeNetlink::open(
    const StepContext& ctx, int protocol) {
  std::lock_guard lock(m_);
  if (!open_error_.empty()) return std::unexpected(open_error_);
  return std::make_unique<FakeNetlinkClient>(*this, ctx, protocol);
}

std::vector<FakeNetlink::Request> FakeNetlink::requests() const {
  std::lock_guard lock(m_);
  return requests_;
}

std::expected<NlMessages, NlError> FakeNetlink::answer(Request r, std::string_view what) {
  Handler h;
  {
    std::lock_guard lock(m_);
    requests_.push_back(r);
    if (auto it = handlers_.find(Key{r.protocol, r.type, r.dump}); it != handlers_.end())
      h = it->second;
  }
  if (!h)
    return std::unexpected(NlError{fmt::format("{}: the fake has no reply for {} type {}", what,
                                               r.dump ? "a dump of" : "a request of", r.type)});
  auto out = h(r);
  if (!out) out.error().message = fmt::format("{}: {}", what, out.error().message);
  return out;
}

std::expected<int, std::string> FakeNetlink::netnsid(int ns_fd) {
  std::function<std::expected<int, std::string>(int)> h;
  {
    std::lock_guard lock(m_);
    h = netnsid_;
  }
  if (!h) return std::unexpected(fmt::format("netnsid: the fake has no answer for fd {}", ns_fd));
  return h(ns_fd);
}

// ---- FakeProcessRunner ----

void FakeProcessRunner::answer(ProcessResult result) {
  answer([result](const ProcessSpec&, const StepContext&) { return result; });
}

void FakeProcessRunner::answer(Handler h) {
  std::lock_guard lock(m_);
  handler_ = std::move(h);
}

void FakeProcessRunner::fail_to_start(std::string error) {
  answer([error](const ProcessSpec&, const StepContext&)
             -> std::expected<ProcessResult, std::string> { return std::unexpected(error); });
}

std::expected<ProcessResult, std::string> FakeProcessRunner::run(const ProcessSpec& spec,
                                                                 const StepContext& ctx) {
  Handler h;
  {
    std::lock_guard lock(m_);
    runs_.push_back(spec);
    h = handler_;
  }
  if (!h)
    return std::unexpected(fmt::format("fake process runner: no answer for '{}'",
                                       spec.argv.empty() ? "" : spec.argv[0]));
  auto r = h(spec, ctx);
  if (!r) return r;
  if (ctx.should_stop() || ctx.expired()) {
    // Killed before it finished: no exit code, the group got SIGTERM.
    (ctx.should_stop() ? r->cancelled : r->timed_out) = true;
    r->exit_code.reset();
    r->term_signal = SIGTERM;
  }
  return r;
}

void FakeProcessRunner::kill_all() {
  std::lock_guard lock(m_);
  ++kill_all_calls_;
}

std::vector<ProcessSpec> FakeProcessRunner::runs() const {
  std::lock_guard lock(m_);
  return runs_;
}

int FakeProcessRunner::kill_all_calls() const {
  std::lock_guard lock(m_);
  return kill_all_calls_;
}

}  // namespace netplay
