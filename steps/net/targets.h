#pragma once
/// The addresses a probe step sends to: the one place names will become addresses.

#include <expected>
#include <string>
#include <vector>

#include "runner/step/step.h"

namespace netplay {

/// `names` as numeric addresses, in order. `family` is "auto", "4" or "6": with 4 or 6 an
/// address of the other family is refused. Names are not resolved yet: a name is refused
/// with "'NAME' is not an IP address (names are not resolved yet)".
std::expected<std::vector<std::string>, std::string> resolve_targets(
    const StepContext& ctx, const std::vector<std::string>& names,
    const std::string& family = "auto");

}  // namespace netplay
