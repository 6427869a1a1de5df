#pragma once
/// The step contract. A step declares a spec (what `list`, `describe`, validation and the
/// JSON Schema are generated from) and implements run(); it observes and reports facts,
/// never prints, never decides the exit code. The runner judges facts against `expect:`.

#include <atomic>
#include <chrono>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runner/base/core.h"
#include "runner/base/types.h"

namespace netplay {

struct ParamSpec {
  std::string name;
  ValueType type = ValueType::kString;
  std::string doc;
  json default_value;  // null: no default
  bool required = false;
  std::vector<std::string> choices;    // allowed values for strings, if any
  ValueType item_type = ValueType::kString;  // for kList
  /// For kList: a single item is taken as a list of one (`target: 10.0.0.2` as well as
  /// `target: [10.0.0.2, 10.0.0.3]`).
  bool scalar_as_list = false;
  /// A /bin/sh command line (exec's `cmd`): every `{{ }}` value in it is quoted as one word
  /// of literal text (ExprKind::kShellTemplate), unless the playbook marks it netplay.raw(v).
  bool shell_command = false;
  /// Bounds of a number (of each item, for a list): checked by check_params at load time
  /// and again after templates are resolved; shown by describe and in the JSON Schema.
  std::optional<double> min;
  std::optional<double> max;
};

struct FactSpec {
  std::string name;
  std::string type;  // "int", "string", "bool", "number", "list", "map", ...
  std::string doc;
};

struct StepSpec {
  std::string name;     // "vxlan.vtep"
  std::string summary;  // one line for `netplay list`
  std::string description;  // a paragraph or two for `netplay describe`
  std::vector<ParamSpec> params;
  std::vector<FactSpec> facts;
  /// Params of which at least one must be given, e.g. {"name", "index"}.
  std::vector<std::vector<std::string>> one_of;
  /// Params of which at most one may be given, e.g. {"argv", "cmd"} (a bool counts as
  /// given when true). Checked at load time and again after templates are resolved.
  std::vector<std::vector<std::string>> exclusive;
  std::string privileges;  // "" = none; otherwise e.g. "CAP_SYS_ADMIN to enter a namespace"
  bool changes_state = false;
  bool supports_background = false;
  /// The step calls ctx.ready() once it observes (a capture that is listening): steps that
  /// `need` it in the background start only then, not when a worker merely took it.
  bool signals_ready = false;
  std::string example;  // a YAML snippet shown by `describe`

  const ParamSpec* param(std::string_view n) const;
  const FactSpec* fact(std::string_view n) const;
};

/// Params after templates were resolved, defaults applied and types coerced.
class Params {
 public:
  Params() = default;
  explicit Params(json values) : v_(std::move(values)) {}
  bool has(const std::string& k) const { return v_.contains(k) && !v_[k].is_null(); }
  const json& raw(const std::string& k) const;
  std::string str(const std::string& k, const std::string& def = "") const;
  long long integer(const std::string& k, long long def = 0) const;
  double number(const std::string& k, double def = 0) const;
  bool boolean(const std::string& k, bool def = false) const;
  Millis duration(const std::string& k, Millis def = Millis(0)) const;
  std::vector<std::string> strings(const std::string& k) const;
  const json& all() const { return v_; }

 private:
  json v_ = json::object();
};

class StepServices;
class Netlink;
class ProcessRunner;
class StepClock;
class Pinger;
class TcpConnector;
class Resolver;
class HttpClient;
class Firewall;
class PacketSource;

/// What a step sees of the run: deadlines and cancellation reach every native wait, and the
/// services (runner/step/services.h) are all it touches of the system.
struct StepContext {
  Clock::time_point deadline = Clock::time_point::max();
  /// Hard stop: Ctrl-C, global timeout or this attempt's timeout. Return promptly.
  const std::atomic<bool>* cancelled = nullptr;
  /// Graceful stop for background steps: finish and report what was gathered.
  const std::atomic<bool>* stop_requested = nullptr;
  /// The run's Ctrl-C flag: seen at once even by a step running on the scheduler's thread.
  const std::atomic<bool>* interrupt = nullptr;
  std::string netns = "host";  // as named in the playbook (already entered)
  std::string step_id;
  int attempt = 1;
  /// Facts the playbook's `expect:` judges (its top-level names). A step leaves the verdict
  /// on those to the expectation rather than failing on them by default (exec's exit_code).
  std::vector<std::string> expected_facts;
  /// Set by the scheduler for steps whose spec signals_ready: tells it the step is ready.
  std::function<void()> on_ready;
  /// The run's services; null: the real ones (system_services()).
  StepServices* services = nullptr;

  StepServices& services_or_system() const;
  Netlink& netlink() const;
  ProcessRunner& processes() const;
  StepClock& clock() const;
  Pinger& pinger() const;
  TcpConnector& tcp() const;
  Resolver& resolver() const;
  HttpClient& http() const;
  Firewall& firewall() const;
  PacketSource& packets() const;

  bool is_cancelled() const {
    return (cancelled && cancelled->load(std::memory_order_relaxed)) ||
           (interrupt && interrupt->load(std::memory_order_relaxed));
  }
  /// A background step that signals_ready is now observing: its dependents may start.
  void ready() const {
    if (on_ready) on_ready();
  }
  bool should_stop() const {
    return is_cancelled() || (stop_requested && stop_requested->load(std::memory_order_relaxed));
  }
  /// True when `expect:` judges `fact` or a part of it ("exit_code", "json.0.ip").
  bool expects(std::string_view fact) const;
  /// Deadline and remaining time are measured on the services' clock.
  bool expired() const;
  /// Time left before the deadline (zero when past it).
  Millis remaining() const;
};

struct StepOutput {
  /// kPass unless the step itself decided otherwise: kError = could not check (never report
  /// "nothing there" when reading failed), kFail = the check itself failed (e.g. wrong kind).
  Status status = Status::kPass;
  std::string message;
  json facts = json::object();
  std::vector<std::string> evidence;

  static StepOutput error(std::string msg) {
    StepOutput o;
    o.status = Status::kError;
    o.message = std::move(msg);
    return o;
  }
  static StepOutput fail(std::string msg) {
    StepOutput o;
    o.status = Status::kFail;
    o.message = std::move(msg);
    return o;
  }
};

/// Fact names in `facts` that `spec` does not declare: only top-level names count (keys
/// under a declared map or list fact are that fact's own). Every step's facts must be
/// declared, since docs, the schema and `expect:` validation come from the spec; unit tests
/// check it on every step they run (tests/unit/support/step_run.h).
std::vector<std::string> undeclared_facts(const StepSpec& spec, const json& facts);

class Step {
 public:
  virtual ~Step() = default;
  virtual const StepSpec& spec() const = 0;
  /// Runs on a worker thread that has already entered the step's network namespace.
  virtual StepOutput run(StepContext& ctx, const Params& params) const = 0;
};

/// The registry of built-in (and Lua-registered) steps, built at start-up from factories
/// queued by NETPLAY_REGISTER_STEP: no static-initialisation-order traps.
class Registry {
 public:
  static Registry& instance();
  /// Refuses a second step of the same name ("step 'link' is already registered"): a
  /// step registered later (from Lua) never shadows a built-in one.
  [[nodiscard]] std::expected<void, std::string> add(std::unique_ptr<Step> step);
  const Step* find(std::string_view name) const;
  std::vector<const Step*> all() const;  // sorted by name
  std::vector<std::string> names() const;

 private:
  Registry();
  std::vector<std::unique_ptr<Step>> steps_;
};

using StepFactory = std::unique_ptr<Step> (*)();
bool queue_step_factory(StepFactory f);

}  // namespace netplay

#define NETPLAY_CONCAT_INNER(a, b) a##b
#define NETPLAY_CONCAT(a, b) NETPLAY_CONCAT_INNER(a, b)
/// One line per step file: `NETPLAY_REGISTER_STEP(VxlanVtepStep);`
#define NETPLAY_REGISTER_STEP(Class)                                                  \
  static const bool NETPLAY_CONCAT(netplay_registered_, __LINE__) =                  \
      ::netplay::queue_step_factory(+[]() -> std::unique_ptr<::netplay::Step> {      \
        return std::make_unique<Class>();                                            \
      })
