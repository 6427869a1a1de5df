#pragma once
/// Reporters: the only code that writes results for people or machines.

#include <cstdio>
#include <expected>
#include <memory>
#include <string>

#include "runner/base/result.h"

namespace netplay {

enum class Format { kText, kJson, kJunit, kMarkdown };

std::expected<Format, std::string> parse_format(std::string_view name);

struct RenderOptions {
  bool color = false;
  bool verbose = false;  // text: facts of every step, not only of failures
  bool quiet = false;    // text: only the findings and the summary line
};

/// text: summary table then findings; json: the contract's shape; junit: one testcase
/// per step; markdown: for pasting into an incident.
std::string render(const RunReport& report, Format format, const RenderOptions& opts);

/// Writes via a temp file in the same directory and rename(2): never a half report.
/// Replaces whatever `path` names: write_report_file() decides whether it may.
std::expected<void, std::string> write_file_atomic(const std::string& path,
                                                   const std::string& content);

/// How a report reaches a file named by `--output FORMAT=PATH`.
struct ReportDestination {
  enum class Kind {
    kReplace,  // a temp file in the same directory renamed over `path`: never a half report
    kStream,   // opened and written through (a FIFO, /dev/null, a terminal): no rename
  };
  Kind kind = Kind::kReplace;
  std::string path;  // for kReplace, a symlink's target
};

/// Whether and how PATH can take a report, decided before the run (and again when writing):
/// - missing, or a regular file: replaced atomically; a temp file is created and removed in
///   its directory now to prove that this will work;
/// - a symlink to a regular file: that file is replaced (the link stays); a dangling symlink,
///   or one owned by another user in a sticky world-writable directory such as /tmp, is
///   refused;
/// - a FIFO, /dev/null or a terminal (also through a symlink such as /dev/stdout): written
///   through, never replaced;
/// - anything else is refused: a directory, a socket, a block device, other character
///   devices, files of /proc, /sys and other kernel filesystems.
/// The error is a phrase without the path ("is a directory").
std::expected<ReportDestination, std::string> check_report_path(const std::string& path);

/// check_report_path() again, then writes. A FIFO that nobody opens for reading within
/// `no_reader_wait` is an error ("no reader"), never a hang. Errors start with the path.
std::expected<void, std::string> write_report_file(const std::string& path,
                                                   const std::string& content,
                                                   Millis no_reader_wait = Millis(5000));

/// Live progress on a terminal (spinner and elapsed time per running step), or one plain
/// line per finished step when `tty` is false.
std::unique_ptr<Progress> make_text_progress(std::FILE* out, bool tty, bool color);

}  // namespace netplay
