/// link.features: offload and feature flags of an interface, as `ethtool -k` shows them.

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "runner/base/core.h"
#include "runner/step/step.h"
#include "steps/net/ethtool.h"
#include "steps/net/netlink.h"

namespace netplay {
namespace {

class LinkFeaturesStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "link.features",
        .summary = "Offload and feature flags of an interface (ethtool -k, over netlink)",
        .description =
            "Reads the interface's features through ethtool's generic-netlink family (no "
            "`ethtool` binary needed): for each feature whether it is active, wanted "
            "(requested) and fixed (cannot be changed). Names are the kernel's "
            "(tx-checksum-ip-generic, tx-udp_tnl-segmentation, rx-gro, ...) plus ethtool's "
            "legacy umbrella names (tx-checksumming, tcp-segmentation-offload, "
            "generic-receive-offload, ...), so every line of `ethtool -k` has a fact.\n\n"
            "Why it matters on overlays: checksum offload left on for silk-vtep has corrupted "
            "inner TCP checksums in the field, showing as silent drops and one-second "
            "retransmit stalls while pings work. Check it with "
            "`expect: {active.tx-checksum-ip-generic: false}`.\n\n"
            "Errors: a missing interface fails with the interfaces that exist; a kernel "
            "without the ethtool netlink family (before 5.6) errors with that reason.",
        .params = {{.name = "interface", .type = ValueType::kString,
                    .doc = "Interface in the step's namespace, e.g. silk-vtep", .required = true},
                   {.name = "features", .type = ValueType::kList,
                    .doc = "Feature names to report (default: all); an unknown name is an error"}},
        .facts = {{"interface", "string", "The interface read"},
                  {"features", "map", "name -> {active, wanted, fixed} for each feature"},
                  {"active", "map", "name -> bool: whether the feature is on"},
                  {"count", "int", "Number of features reported"}},
        .example = "- id: vtep_offload\n  uses: link.features\n  netns: cell1\n"
                   "  with: {interface: silk-vtep, features: [tx-checksum-ip-generic]}\n"
                   "  expect: {active.tx-checksum-ip-generic: false}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    std::string dev = p.str("interface");
    // A missing interface reads better with the list of those present than as ENODEV.
    auto net = nl::open_links(ctx);
    if (!net) return StepOutput::error(net.error());
    if (auto l = net->table.find(dev); !l) return StepOutput::fail(l.error());

    auto features = ethtool::read_features(dev, ctx);
    if (!features) return StepOutput::error(features.error());
    std::vector<ethtool::Feature> all = std::move(*features);
    for (auto& f : ethtool::legacy_features(all)) all.push_back(std::move(f));

    std::vector<std::string> wanted = p.strings("features");
    std::set<std::string> want(wanted.begin(), wanted.end());
    if (!want.empty()) {
      std::vector<std::string> known;
      for (const auto& f : all) known.push_back(f.name);
      for (const auto& w : wanted) {
        if (std::find(known.begin(), known.end(), w) != known.end()) continue;
        std::string hint = did_you_mean(w, known);
        return StepOutput::error(fmt::format("{} has no feature '{}'{}", dev, w,
                                             hint.empty() ? "" : "; did you mean " + hint + "?"));
      }
    }

    StepOutput out;
    json feats = json::object();
    json active = json::object();
    size_t on = 0;
    for (const auto& f : all) {
      if (!want.empty() && !want.contains(f.name)) continue;
      feats[f.name] = {{"active", f.active}, {"wanted", f.wanted}, {"fixed", f.fixed}};
      active[f.name] = f.active;
      on += f.active;
      if (!want.empty())
        out.evidence.push_back(fmt::format("{}: {}{}", f.name, f.active ? "on" : "off",
                                           f.fixed ? " [fixed]"
                                           : f.active != f.wanted
                                               ? (f.wanted ? " [requested on]" : " [requested off]")
                                               : ""));
    }
    out.facts["interface"] = dev;
    out.facts["count"] = feats.size();
    out.facts["features"] = std::move(feats);
    out.facts["active"] = std::move(active);
    if (want.empty())
      out.message = fmt::format("{}: {} of {} features on", dev, on, out.facts["count"].get<size_t>());
    else
      out.message = fmt::format("{}: {}", dev, fmt::join(out.evidence, ", "));
    return out;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(LinkFeaturesStep);
}  // namespace netplay
