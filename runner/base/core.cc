#include "runner/base/core.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "runner/base/types.h"

namespace netplay {

std::string_view to_string(Status s) {
  switch (s) {
    case Status::kPass: return "pass";
    case Status::kFail: return "fail";
    case Status::kWarn: return "warn";
    case Status::kSkip: return "skip";
    case Status::kError: return "error";
  }
  return "error";
}

std::optional<Status> parse_status(std::string_view s) {
  for (Status st : {Status::kPass, Status::kFail, Status::kWarn, Status::kSkip, Status::kError})
    if (to_string(st) == s) return st;
  return std::nullopt;
}

std::string_view to_string(Severity s) {
  switch (s) {
    case Severity::kFail: return "fail";
    case Severity::kError: return "error";
    case Severity::kWarn: return "warn";
    case Severity::kInfo: return "info";
  }
  return "fail";
}

std::optional<Severity> parse_severity(std::string_view s) {
  for (Severity sev : {Severity::kFail, Severity::kWarn, Severity::kInfo})
    if (to_string(sev) == s) return sev;
  return std::nullopt;
}

std::string Diagnostic::str() const {
  // Whatever a file or a user put into the message, it prints as one line of text.
  if (pos.line > 0)
    return printable(fmt::format("{}:{}:{}: {}", file, pos.line, pos.col, message));
  if (!file.empty()) return printable(fmt::format("{}: {}", file, message));
  return printable(message);
}

std::expected<Millis, std::string> parse_duration(std::string_view text) {
  std::string_view t = text;
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  double value = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (ec != std::errc() || t.empty()) {
    return std::unexpected(fmt::format("expected a duration such as 500ms, 5s or 2m, got '{}'", text));
  }
  std::string_view unit(end, t.data() + t.size() - end);
  double ms = 0;
  if (unit.empty() || unit == "s") ms = value * 1000;
  else if (unit == "ms") ms = value;
  else if (unit == "us") ms = value / 1000;
  else if (unit == "m") ms = value * 60'000;
  else if (unit == "h") ms = value * 3'600'000;
  else
    return std::unexpected(fmt::format("expected a duration such as 500ms, 5s or 2m, got '{}'", text));
  if (!(value >= 0) || !std::isfinite(value))
    return std::unexpected(fmt::format("expected a non-negative duration, got '{}'", text));
  return check_duration(Millis(ms), text);
}

std::expected<Millis, std::string> check_duration(Millis d, std::string_view as_written) {
  // Clock's nanoseconds overflow after about 292 years: even a step's every retry (at most
  // 1000) at the longest timeout stays far below that.
  static_assert(kMaxDuration * 1001 <
                std::chrono::duration<double, std::nano>(Clock::duration::max()));
  if (!(d.count() >= 0) || !std::isfinite(d.count()))
    return std::unexpected(fmt::format("expected a non-negative duration, got '{}'", as_written));
  if (d > kMaxDuration)
    return std::unexpected(fmt::format("duration '{}' is too long: at most {} (7 days)",
                                       as_written, format_duration(kMaxDuration)));
  return d;
}

std::string format_duration(Millis d) {
  double ms = d.count();
  if (ms < 1000) return fmt::format("{:g}ms", ms);
  if (ms < 60'000 || std::fmod(ms, 60'000) != 0) return fmt::format("{:g}s", ms / 1000);
  if (std::fmod(ms, 3'600'000) == 0) return fmt::format("{:g}h", ms / 3'600'000);
  return fmt::format("{:g}m", ms / 60'000);
}

/// Optimal-string-alignment distance: Levenshtein plus adjacent transpositions, so the
/// typical typo 'kye' is one edit from 'key'.
static size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  // One edit per three letters, at least one; never a suggestion that shares no letter
  // position with a very short word ('x' is not a typo of 'a').
  const size_t max_d = std::max<size_t>(1, word.size() / 3);
  std::string best;
  size_t best_d = max_d + 1;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d && d < std::max(word.size(), c.size())) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

}  // namespace netplay
