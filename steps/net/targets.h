#pragma once
/// The addresses a probe step sends to: the one place names will become addresses.

#include <expected>
#include <string>
#include <vector>

#include "runner/step/step.h"

namespace netplay {

/// `names` as numeric addresses, in order. `family` is "auto", "4" or "6": with 4 or 6 an
/// address of the other family is refused. A name is resolved as a program in the step's
/// namespace would resolve it (resolve::resolve_host: the namespace's hosts file, then its
/// resolv.conf's servers; the first address, IPv4 first with "auto"); one that does not
/// resolve is the error ("cannot resolve 'x.invalid': NXDOMAIN from 10.0.0.53").
std::expected<std::vector<std::string>, std::string> resolve_targets(
    StepContext& ctx, const std::vector<std::string>& names,
    const std::string& family = "auto");

}  // namespace netplay
