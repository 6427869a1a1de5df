#pragma once
/// The one way netplay reads a file it was given as input (a playbook, --vars, a Lua hook or
/// module): with a size limit, refusing what is not a file. A stranger's playbook may name
/// /dev/zero, a directory or a FIFO nobody writes to; none of these may hang netplay or make
/// it grow without bound.

#include <cstddef>
#include <expected>
#include <string>

namespace netplay {

/// Size limits of what netplay reads as input (documented in docs/playbook-format.md).
inline constexpr size_t kMaxPlaybookBytes = 4u << 20;  // a playbook: 4 MiB
inline constexpr size_t kMaxVarsBytes = 4u << 20;      // a --vars file: 4 MiB
inline constexpr size_t kMaxLuaBytes = 1u << 20;       // a Lua hook file or module: 1 MiB

struct ReadLimits {
  size_t max_bytes = kMaxPlaybookBytes;
  /// Besides regular files, also read a FIFO, a pipe or a character device such as
  /// /dev/stdin (e.g. `--vars <(generate)`), up to max_bytes.
  bool allow_stream = false;
};

/// Reads all of `path` (symlinks followed). Errors are one short phrase, without the path:
/// "is a directory", "is a socket, not a file", "is larger than the 4 MiB limit",
/// "No such file or directory".
std::expected<std::string, std::string> read_file_bounded(const std::string& path,
                                                          const ReadLimits& limits);

/// "4 MiB", "512 KiB", "100 bytes": a size limit the way messages and docs state it.
std::string format_size(size_t bytes);

/// What kind of file `mode` (st_mode) is, for messages: "a directory", "a FIFO", ...
std::string describe_file_type(unsigned mode);

}  // namespace netplay
