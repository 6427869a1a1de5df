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
std::expected<void, std::string> write_file_atomic(const std::string& path,
                                                   const std::string& content);

/// Live progress on a terminal (spinner and elapsed time per running step), or one plain
/// line per finished step when `tty` is false.
std::unique_ptr<Progress> make_text_progress(std::FILE* out, bool tty, bool color);

}  // namespace netplay
