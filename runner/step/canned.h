#pragma once
/// The one way the fakes of the probe services answer: a handler set by the test, every
/// request recorded, and the step's cancellation and deadline honoured (on the step's
/// clock) before the handler is asked, as the real services honour them.
///
///   FakeServices fakes;
///   fakes.fake_tcp.answer([](const TcpConnectRequest& r, const StepContext&) { ... });

#include <expected>
#include <fmt/format.h>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "runner/step/step.h"

namespace netplay {

template <class Request, class Result>
class CannedAnswers {
 public:
  using Handler =
      std::function<std::expected<Result, std::string>(const Request&, const StepContext&)>;

  /// Every request gets what `h` returns.
  void answer(Handler h) {
    std::lock_guard lock(m_);
    handler_ = std::move(h);
  }
  /// Every request gets `result`.
  void answer(Result result) {
    answer([result](const Request&, const StepContext&) -> std::expected<Result, std::string> {
      return result;
    });
  }
  /// Every request fails with `error`.
  void fail(std::string error) {
    answer([error](const Request&, const StepContext&) -> std::expected<Result, std::string> {
      return std::unexpected(error);
    });
  }
  std::vector<Request> requests() const {
    std::lock_guard lock(m_);
    return requests_;
  }

 protected:
  /// What the fake service's method returns. `what` names the service in errors.
  std::expected<Result, std::string> ask(const Request& r, const StepContext& ctx,
                                         std::string_view what) {
    Handler h;
    {
      std::lock_guard lock(m_);
      requests_.push_back(r);
      h = handler_;
    }
    if (ctx.is_cancelled()) return std::unexpected(fmt::format("{}: cancelled", what));
    if (ctx.expired()) return std::unexpected(fmt::format("{}: timed out", what));
    if (!h) return std::unexpected(fmt::format("{}: the fake has no answer set", what));
    return h(r, ctx);
  }

 private:
  mutable std::mutex m_;
  Handler handler_;
  std::vector<Request> requests_;
};

}  // namespace netplay
