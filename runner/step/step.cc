#include "runner/step/step.h"

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>

#include "runner/step/services.h"

namespace netplay {

const ParamSpec* StepSpec::param(std::string_view n) const {
  for (const auto& p : params)
    if (p.name == n) return &p;
  return nullptr;
}

const FactSpec* StepSpec::fact(std::string_view n) const {
  for (const auto& f : facts)
    if (f.name == n) return &f;
  return nullptr;
}

std::vector<std::string> undeclared_facts(const StepSpec& spec, const json& facts) {
  std::vector<std::string> out;
  if (!facts.is_object()) return out;
  for (const auto& [name, value] : facts.items())
    if (!spec.fact(name)) out.push_back(name);
  return out;
}

static const json& null_json() {
  static const json n;
  return n;
}

const json& Params::raw(const std::string& k) const {
  auto it = v_.find(k);
  return it == v_.end() ? null_json() : *it;
}

std::string Params::str(const std::string& k, const std::string& def) const {
  const json& j = raw(k);
  if (j.is_string()) return j.get<std::string>();
  if (j.is_null()) return def;
  return j.dump();
}

long long Params::integer(const std::string& k, long long def) const {
  const json& j = raw(k);
  return j.is_number() ? j.get<long long>() : def;
}

double Params::number(const std::string& k, double def) const {
  const json& j = raw(k);
  return j.is_number() ? j.get<double>() : def;
}

bool Params::boolean(const std::string& k, bool def) const {
  const json& j = raw(k);
  return j.is_boolean() ? j.get<bool>() : def;
}

Millis Params::duration(const std::string& k, Millis def) const {
  const json& j = raw(k);
  return j.is_number() ? Millis(j.get<double>()) : def;
}

std::vector<std::string> Params::strings(const std::string& k) const {
  std::vector<std::string> out;
  const json& j = raw(k);
  if (j.is_array()) {
    for (const auto& e : j) out.push_back(e.is_string() ? e.get<std::string>() : e.dump());
  } else if (j.is_string()) {
    out.push_back(j.get<std::string>());
  }
  return out;
}

bool StepContext::expects(std::string_view fact) const {
  for (const auto& f : expected_facts)
    if (f == fact || (f.size() > fact.size() && f.starts_with(fact) && f[fact.size()] == '.'))
      return true;
  return false;
}

StepServices& StepContext::services_or_system() const {
  return services ? *services : system_services();
}
Netlink& StepContext::netlink() const { return services_or_system().netlink(); }
ProcessRunner& StepContext::processes() const { return services_or_system().processes(); }
StepClock& StepContext::clock() const { return services_or_system().clock(); }
Pinger& StepContext::pinger() const { return services_or_system().pinger(); }
TcpConnector& StepContext::tcp() const { return services_or_system().tcp(); }
Resolver& StepContext::resolver() const { return services_or_system().resolver(); }
HttpClient& StepContext::http() const { return services_or_system().http(); }
Firewall& StepContext::firewall() const { return services_or_system().firewall(); }
PacketSource& StepContext::packets() const { return services_or_system().packets(); }

bool StepContext::expired() const {
  return deadline != Clock::time_point::max() && clock().now() >= deadline;
}

Millis StepContext::remaining() const {
  auto now = clock().now();
  if (deadline == Clock::time_point::max()) return Millis(1e12);
  if (now >= deadline) return Millis(0);
  return std::chrono::duration_cast<Millis>(deadline - now);
}

static std::vector<StepFactory>& factories() {
  static std::vector<StepFactory> f;
  return f;
}

bool queue_step_factory(StepFactory f) {
  factories().push_back(f);
  return true;
}

Registry::Registry() {
  for (auto f : factories()) {
    auto added = add(f());
    // Two built-in steps of one name are a build mistake, not a user's: say so at once.
    if (!added) throw std::logic_error("built-in steps: " + added.error());
  }
}

Registry& Registry::instance() {
  static Registry r;
  return r;
}

std::expected<void, std::string> Registry::add(std::unique_ptr<Step> step) {
  const std::string& name = step->spec().name;
  auto pos = std::lower_bound(steps_.begin(), steps_.end(), name,
                              [](const auto& s, const std::string& n) { return s->spec().name < n; });
  if (pos != steps_.end() && (*pos)->spec().name == name)
    return std::unexpected(fmt::format("step '{}' is already registered", name));
  steps_.insert(pos, std::move(step));
  return {};
}

const Step* Registry::find(std::string_view name) const {
  auto pos = std::lower_bound(steps_.begin(), steps_.end(), name,
                              [](const auto& s, std::string_view n) { return s->spec().name < n; });
  if (pos != steps_.end() && (*pos)->spec().name == name) return pos->get();
  return nullptr;
}

std::vector<const Step*> Registry::all() const {
  std::vector<const Step*> out;
  for (const auto& s : steps_) out.push_back(s.get());
  return out;
}

std::vector<std::string> Registry::names() const {
  std::vector<std::string> out;
  for (const auto& s : steps_) out.push_back(s->spec().name);
  return out;
}

}  // namespace netplay
