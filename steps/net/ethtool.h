#pragma once
/// Interface features (offloads) through ethtool's generic-netlink family, the way
/// `ethtool -k` reads them: ETHTOOL_MSG_FEATURES_GET for the hw/wanted/active/nochange
/// bitsets and ETHTOOL_MSG_STRSET_GET for the feature names. Bitsets are requested in the
/// verbose form (names included) but compact ones are understood too.

#include <expected>
#include <string>
#include <vector>

#include <netlink/attr.h>

#include "runner/step/step.h"

namespace netplay::ethtool {

/// A decoded ETHTOOL_A_BITSET_* nest.
struct Bitset {
  unsigned size = 0;
  std::vector<bool> value;         // by bit index, `size` long
  std::vector<std::string> names;  // by bit index; filled from a verbose bitset, "" otherwise

  bool on(unsigned i) const { return i < value.size() && value[i]; }
};

/// Decodes a bitset nest in either form: compact (SIZE, VALUE[, MASK]) or verbose
/// (SIZE, BITS of {INDEX, NAME, VALUE}); in a verbose bitset with NOMASK the bits listed
/// are the ones set.
std::expected<Bitset, std::string> parse_bitset(const nlattr* nest);

/// The strings of set ETH_SS_FEATURES from an ETHTOOL_A_STRSET_STRINGSETS nest, by index.
std::expected<std::vector<std::string>, std::string> parse_feature_names(const nlattr* stringsets);

struct Feature {
  std::string name;
  bool active = false;
  bool wanted = false;
  bool fixed = true;  // cannot be changed: not in hw, or in nochange
};

struct FeatureBits {
  Bitset hw, wanted, active, nochange;
};

/// One Feature per named bit, in index order. Names come from `names`, else from the
/// verbose bitsets; nameless bits are left out.
std::vector<Feature> combine(const std::vector<std::string>& names, const FeatureBits& bits);

/// ethtool's legacy umbrella names (rx-checksumming, tx-checksumming, scatter-gather,
/// tcp-segmentation-offload, generic-receive-offload, ...) as `ethtool -k` derives them:
/// on when any feature under it is active, fixed when all of them are.
std::vector<Feature> legacy_features(const std::vector<Feature>& features);

/// Reads the features of `dev` in the calling thread's namespace. Errors name the reason:
/// no ethtool netlink family (kernel older than 5.6), no such device, ...
std::expected<std::vector<Feature>, std::string> read_features(const std::string& dev,
                                                               const StepContext& ctx);

}  // namespace netplay::ethtool
