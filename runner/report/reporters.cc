#include "runner/report/reporters.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "runner/report/reporters_internal.h"

namespace netplay {

std::expected<Format, std::string> parse_format(std::string_view name) {
  if (name == "text") return Format::kText;
  if (name == "json") return Format::kJson;
  if (name == "junit") return Format::kJunit;
  if (name == "markdown" || name == "md") return Format::kMarkdown;
  std::string msg = fmt::format("unknown format '{}'", name);
  std::string near = did_you_mean(name, {"text", "json", "junit", "markdown"});
  if (!near.empty()) msg += fmt::format(" (did you mean '{}'?)", near);
  return std::unexpected(msg + "; expected text, json, junit or markdown");
}

std::string render(const RunReport& report, Format format, const RenderOptions& opts) {
  switch (format) {
    case Format::kText: return reporters::render_text(report, opts);
    case Format::kJson: return reporters::render_json(report);
    case Format::kJunit: return reporters::render_junit(report);
    case Format::kMarkdown: return reporters::render_markdown(report);
  }
  return {};
}

std::expected<void, std::string> write_file_atomic(const std::string& path,
                                                   const std::string& content) {
  if (path.empty()) return std::unexpected(std::string("empty file name"));
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty()) return std::unexpected(fmt::format("{}: is a directory", path));
  // Same directory as the target so that rename(2) stays on one filesystem and is atomic.
  std::string tmpl = (dir == "/" ? "" : dir) + "/." + base + ".tmp.XXXXXX";
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return std::unexpected(fmt::format("{}: {}", path, std::strerror(errno)));
  auto fail = [&](const char* what) -> std::expected<void, std::string> {
    int e = errno;
    ::close(fd);
    ::unlink(tmpl.c_str());
    return std::unexpected(fmt::format("{}: {}: {}", path, what, std::strerror(e)));
  };
  if (auto w = reporters::write_all(fd, content); !w) return fail("write");
  // mkstemp creates 0600; a report is meant to be read by others (CI uploaders).
  if (::fchmod(fd, 0644) != 0) return fail("chmod");
  if (::fsync(fd) != 0) return fail("fsync");
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(tmpl.c_str());
    return std::unexpected(fmt::format("{}: close: {}", path, std::strerror(e)));
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmpl.c_str());
    return std::unexpected(fmt::format("{}: {}", path, std::strerror(e)));
  }
  return {};
}

namespace reporters {

std::string format_ms(double ms) {
  if (ms < 100) return fmt::format("{:.1f} ms", ms);
  return fmt::format("{:.0f} ms", ms);
}

std::string verdict_word(const RunReport& r) {
  if (r.interrupted) return "INTERRUPTED";
  std::string w(to_string(r.overall()));
  for (char& c : w) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return w;
}

std::string summary_line(const RunReport& r) {
  auto s = r.summary();
  auto plural = [](int n, const char* one, const char* many) {
    return fmt::format("{} {}", n, n == 1 ? one : many);
  };
  std::string line = fmt::format("{} - {} passed, {} failed, {}, {} skipped, {}", verdict_word(r),
                                 s[Status::kPass], s[Status::kFail],
                                 plural(s[Status::kWarn], "warning", "warnings"), s[Status::kSkip],
                                 plural(s[Status::kError], "error", "errors"));
  if (!r.findings.empty())
    line += ", " + plural(static_cast<int>(r.findings.size()), "finding", "findings");
  line += " in " + format_ms(r.duration_ms);
  return line;
}

std::vector<const Finding*> findings_by_severity(const RunReport& r) {
  std::vector<const Finding*> out;
  for (const auto& f : r.findings) out.push_back(&f);
  // The enum is declared most severe first.
  std::stable_sort(out.begin(), out.end(),
                   [](const Finding* a, const Finding* b) { return a->severity < b->severity; });
  return out;
}

int count_findings(const RunReport& r, Severity s) {
  return static_cast<int>(std::count_if(r.findings.begin(), r.findings.end(),
                                        [&](const Finding& f) { return f.severity == s; }));
}

std::string fact_text(const json& v) {
  if (v.is_string()) return valid_utf8(v.get<std::string>());
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace reporters
}  // namespace netplay
