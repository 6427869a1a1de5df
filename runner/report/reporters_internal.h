#pragma once
/// Pieces shared by the reporter implementations (report_*.cc); not a public interface.

#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "runner/base/result.h"
#include "runner/report/reporters.h"

namespace netplay::reporters {

std::string render_text(const RunReport& r, const RenderOptions& opts);
std::string render_json(const RunReport& r);
std::string render_junit(const RunReport& r);
std::string render_markdown(const RunReport& r);

/// "0.4 ms", "12 ms", "1234 ms": always milliseconds so goldens can mask one pattern.
std::string format_ms(double ms);

/// The verdict line shared by text and markdown:
/// "FAIL - 10 passed, 1 failed, 0 warnings, 2 skipped, 0 errors in 123 ms".
std::string summary_line(const RunReport& r);

/// Upper-case verdict word for the whole run ("PASS", "FAIL", "INTERRUPTED", ...).
std::string verdict_word(const RunReport& r);

/// A fact value as one line: strings bare, everything else compact JSON.
std::string fact_text(const json& v);

/// The findings most severe first (fail, warn, info); rule order within one severity.
std::vector<const Finding*> findings_by_severity(const RunReport& r);

/// Writes all of `content` to `fd` (retrying short writes and EINTR); the error is
/// strerror's text, and errno is left as the failing write set it.
std::expected<void, std::string> write_all(int fd, const std::string& content);

/// How many findings have severity `s`.
int count_findings(const RunReport& r, Severity s);

}  // namespace netplay::reporters
