#pragma once
/// Small vocabulary shared by every part of netplay: statuses, source positions,
/// diagnostics and durations.

#include <chrono>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace netplay {

using Millis = std::chrono::duration<double, std::milli>;
using Clock = std::chrono::steady_clock;

enum class Status { kPass, kFail, kWarn, kSkip, kError };

std::string_view to_string(Status s);
std::optional<Status> parse_status(std::string_view s);

/// What a matched diagnosis rule means for the run: `fail` fails it (exit 1), `warn` makes
/// it at least warn (exit 0), `info` only informs. Findings are listed most severe first.
/// `error` is never written in a playbook: it marks a rule that could not be evaluated
/// (its `when`, finding or next raised), which makes the run an error (exit 3) unless
/// something failed.
enum class Severity { kFail, kError, kWarn, kInfo };

std::string_view to_string(Severity s);
std::optional<Severity> parse_severity(std::string_view s);

/// 1-based line and column in a playbook file; 0 means "unknown".
struct Pos {
  int line = 0;
  int col = 0;
};

/// One error (or warning) about a file, e.g. `pb.yaml:12:7: with.count: expected an integer, got 'three'`.
struct Diagnostic {
  std::string file;
  Pos pos;
  std::string message;
  std::string str() const;
};

/// The longest duration netplay accepts anywhere (timeouts, delays, intervals, --timeout):
/// 7 days. Bounding every duration where it is parsed keeps deadline arithmetic (now +
/// timeout, retries included) far from overflowing Clock::duration.
inline constexpr Millis kMaxDuration{7.0 * 24 * 3600 * 1000};

/// Parses "250ms", "5s", "1.5s", "2m", "1h", "10us"; a bare number means seconds. Negative,
/// infinite or NaN values and values past kMaxDuration are errors.
std::expected<Millis, std::string> parse_duration(std::string_view text);
/// The check parse_duration applies, for durations that arrive as numbers.
std::expected<Millis, std::string> check_duration(Millis d, std::string_view as_written);
/// Formats a duration the way users write it: "250ms", "5s", "1.5s", "2m".
std::string format_duration(Millis d);

/// True when `s` holds a `{{ ... }}` template part (resolved at run time).
inline bool has_template(std::string_view s) { return s.find("{{") != std::string_view::npos; }

/// Levenshtein-based "did you mean" over candidates; empty when nothing is close.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace netplay
