#pragma once
/// The firewall of the step's network namespace, the service behind `firewall`: the
/// nftables ruleset through libnftables' JSON API (`nft -j list ruleset` without the
/// process; iptables-nft rules are in it too). Deciding what drops what is the step's.
///
/// The real service creates a libnftables context per call on the calling thread, so its
/// netlink socket belongs to the namespace the step's thread has entered. libnftables is
/// synchronous: a call cannot be cancelled midway; it is bounded by the kernel's dump of
/// the ruleset (milliseconds even for large rulesets). Calls are serialised process-wide.

#include <expected>
#include <memory>
#include <string>

#include "runner/base/core.h"
#include "runner/base/types.h"
#include "runner/step/canned.h"
#include "runner/step/step.h"

namespace netplay {

struct RulesetRequest {
  std::string family;  // "" = all families; "ip", "ip6", "inet", "bridge", ...
};

class Firewall {
 public:
  virtual ~Firewall() = default;
  /// The ruleset as libnftables writes it in JSON ({"nftables": [...]}, with rule handles);
  /// an error carries libnftables' own text ("nftables: ... Operation not permitted").
  virtual std::expected<json, std::string> ruleset(const RulesetRequest& r,
                                                   const StepContext& ctx) = 0;
};

std::unique_ptr<Firewall> make_system_firewall();

class FakeFirewall : public Firewall, public CannedAnswers<RulesetRequest, json> {
 public:
  std::expected<json, std::string> ruleset(const RulesetRequest& r,
                                            const StepContext& ctx) override {
    return ask(r, ctx, "nftables");
  }
};

}  // namespace netplay
