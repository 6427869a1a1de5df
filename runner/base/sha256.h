#pragma once
/// SHA-256 of a playbook's bytes for the report. Small enough to keep in-tree rather than
/// link libcrypto for one digest.

#include <string>
#include <string_view>

namespace netplay {

/// Lower-case hex digest of `data`.
std::string sha256_hex(std::string_view data);

}  // namespace netplay
