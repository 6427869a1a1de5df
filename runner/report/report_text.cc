/// The text report and the live progress: what the on-call engineer reads at 3 a.m.
/// Findings first (the diagnosis is the answer), then one row per step, then one verdict
/// line. Color only through ANSI codes and only when asked for.

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "runner/report/reporters_internal.h"

namespace netplay {
namespace reporters {
namespace {

constexpr const char* kReset = "\033[0m";

const char* status_color(Status s) {
  switch (s) {
    case Status::kPass: return "\033[32m";
    case Status::kFail: return "\033[1;31m";
    case Status::kWarn: return "\033[33m";
    case Status::kSkip: return "\033[2m";
    case Status::kError: return "\033[1;35m";
  }
  return "";
}

/// Problems shout, the rest does not: the eye finds FAIL/ERROR in a column of lowercase.
std::string status_label(Status s) {
  switch (s) {
    case Status::kPass: return "pass";
    case Status::kFail: return "FAIL";
    case Status::kWarn: return "warn";
    case Status::kSkip: return "skip";
    case Status::kError: return "ERROR";
  }
  return "";
}

std::string paint(bool color, const char* code, std::string_view s) {
  if (!color) return std::string(s);
  return fmt::format("{}{}{}", code, s, kReset);
}

/// `s` padded to `width` columns, then painted (padding outside the escape codes would be
/// miscounted by the terminal's column arithmetic otherwise).
std::string padded_status(Status s, bool color, size_t width) {
  std::string label = status_label(s);
  std::string pad(width > label.size() ? width - label.size() : 0, ' ');
  return paint(color, status_color(s), label) + pad;
}

/// Step output goes to a terminal: control characters (an ESC from a captured banner, a
/// stray CR) are shown as "\xNN" instead of being interpreted, and invalid UTF-8 replaced.
std::string printable(std::string_view raw) {
  std::string s = valid_utf8(raw);
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      out += fmt::format("\\x{:02x}", c);
    else
      out += ch;
  }
  return out;
}

/// Messages are one line in the table; the rest of a multi-line message goes below it.
std::string first_line(std::string_view s) {
  auto nl = s.find('\n');
  return printable(nl == std::string_view::npos ? s : s.substr(0, nl));
}

const char* severity_color(Severity s) {
  switch (s) {
    case Severity::kFail: return status_color(Status::kFail);
    case Severity::kError: return status_color(Status::kError);
    case Severity::kWarn: return status_color(Status::kWarn);
    case Severity::kInfo: return "\033[36m";
  }
  return "";
}

/// Most severe first, each labelled with its severity: "FINDING (warn) mtu-high: ...".
void findings_block(std::string& out, const RunReport& r, bool color) {
  for (const Finding* f : findings_by_severity(r)) {
    std::string label = fmt::format("FINDING ({})", to_string(f->severity));
    out += fmt::format("{} {}: {}\n", paint(color, severity_color(f->severity), label),
                       printable(f->id), printable(f->finding));
    for (const auto& n : f->next) out += fmt::format("  next: {}\n", printable(n));
    for (const auto& ref : f->references) out += fmt::format("  see: {}\n", printable(ref));
  }
  if (!r.findings.empty()) out += "\n";
}

void details(std::string& out, const StepResult& s, bool verbose, const std::string& indent) {
  bool problem =
      s.status == Status::kFail || s.status == Status::kError || s.status == Status::kWarn;
  auto nl = s.message.find('\n');
  if (nl != std::string::npos) {
    std::string rest = s.message.substr(nl + 1);
    size_t pos = 0;
    while (pos <= rest.size()) {
      size_t e = rest.find('\n', pos);
      if (e == std::string::npos) e = rest.size();
      out += indent + printable(rest.substr(pos, e - pos)) + "\n";
      pos = e + 1;
    }
  }
  if (problem) {
    for (const auto& e : s.expectations)
      if (!e.ok)
        out +=
            fmt::format("{}unmet: {}\n", indent, printable(e.message.empty() ? e.fact : e.message));
    for (const auto& ev : s.evidence) out += fmt::format("{}| {}\n", indent, printable(ev));
  }
  if ((problem || verbose) && s.facts.is_object() && !s.facts.empty()) {
    for (const auto& [k, v] : s.facts.items())
      out += fmt::format("{}{}: {}\n", indent, printable(k), printable(fact_text(v)));
  }
}

}  // namespace

std::string render_text(const RunReport& r, const RenderOptions& opts) {
  bool color = opts.color;
  std::string out;
  if (!opts.quiet) {
    std::string title = r.playbook_title.empty() ? "" : " - " + printable(r.playbook_title);
    out += fmt::format("playbook {}{}\n", printable(r.playbook_name), title);
    if (r.interrupted)
      out += paint(color, "\033[1;33m", "interrupted: the results are partial") + "\n";
    if (!r.stopped.empty())
      out += paint(color, "\033[1;31m", "stopped: " + printable(r.stopped) + "; the results are partial") + "\n";
    out += "\n";
  }
  findings_block(out, r, color);
  if (!opts.quiet && !r.steps.empty()) {
    size_t idw = 4;
    std::vector<std::string> durations;
    size_t dw = 8;
    for (const auto& s : r.steps) {
      idw = std::max(idw, s.id.size());
      durations.push_back(format_ms(s.duration_ms));
      dw = std::max(dw, durations.back().size());
    }
    out += fmt::format("{:<6}  {:<{}}  {:>{}}  {}\n", "STATUS", "STEP", idw, "DURATION", dw,
                       "MESSAGE");
    std::string indent(8, ' ');
    for (size_t i = 0; i < r.steps.size(); ++i) {
      const auto& s = r.steps[i];
      std::string row = fmt::format("{}  {:<{}}  {:>{}}  {}", padded_status(s.status, color, 6),
                                    printable(s.id), idw, durations[i], dw, first_line(s.message));
      while (!row.empty() && row.back() == ' ') row.pop_back();
      out += row + "\n";
      details(out, s, opts.verbose, indent);
    }
    out += "\n";
  }
  const char* vc = r.interrupted ? "\033[1;33m" : status_color(r.overall());
  std::string line = summary_line(r);
  std::string word = verdict_word(r);
  out += "netplay: " + paint(color, vc, word) + line.substr(word.size()) + "\n";
  return out;
}

namespace {

/// One plain line per finished step: for logs and pipes, where redrawing makes garbage.
class PlainProgress : public Progress {
 public:
  PlainProgress(std::FILE* out, bool color) : out_(out), color_(color) {}
  void on_start(const StepResult&) override {}
  void on_finish(const StepResult& r) override {
    std::string line =
        fmt::format("[{}] {}  {}", paint(color_, status_color(r.status), to_string(r.status)),
                    printable(r.id), format_ms(r.duration_ms));
    if (!r.message.empty()) line += "  " + first_line(r.message);
    std::fputs((line + "\n").c_str(), out_);
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
  bool color_;
};

/// A live line per running step with a spinner and elapsed time, redrawn in place; finished
/// steps scroll up above it as permanent lines.
class LiveProgress : public Progress {
 public:
  LiveProgress(std::FILE* out, bool color) : out_(out), color_(color) {}
  ~LiveProgress() override {
    clear();
    std::fflush(out_);
  }

  void on_start(const StepResult& step) override {
    running_.push_back({step.id, step.uses, step.netns, Clock::now()});
    redraw();
  }
  void on_finish(const StepResult& r) override {
    std::erase_if(running_, [&](const Running& x) { return x.id == r.id; });
    clear();
    std::string line = fmt::format("{} {}  {}", padded_status(r.status, color_, 5), printable(r.id),
                                   format_ms(r.duration_ms));
    if (!r.message.empty()) line += "  " + first_line(r.message);
    std::fputs(fit(line).c_str(), out_);
    std::fputc('\n', out_);
    draw();
    std::fflush(out_);
  }
  void on_tick() override {
    ++frame_;
    redraw();
  }

 private:
  struct Running {
    std::string id, uses, netns;
    Clock::time_point start;
  };

  void redraw() {
    clear();
    draw();
    std::fflush(out_);
  }
  /// Back to the first live line and erase to the end of the screen.
  void clear() {
    if (drawn_ == 0) return;
    std::fputc('\r', out_);
    if (drawn_ > 1) std::fprintf(out_, "\033[%zuA", drawn_ - 1);
    std::fputs("\033[J", out_);
    drawn_ = 0;
  }
  void draw() {
    static constexpr const char kFrames[] = {'|', '/', '-', '\\'};
    auto now = Clock::now();
    for (size_t i = 0; i < running_.size(); ++i) {
      const auto& r = running_[i];
      double secs = std::chrono::duration<double>(now - r.start).count();
      std::string where = r.netns.empty() || r.netns == "host" ? "" : " @ " + r.netns;
      std::string line = fmt::format("{} {} ({}{})  {:.1f}s", kFrames[(frame_ + i) % 4],
                                     printable(r.id), r.uses, printable(where), secs);
      if (i > 0) std::fputc('\n', out_);
      std::fputs(paint(color_, "\033[2m", fit(line)).c_str(), out_);
    }
    drawn_ = running_.size();
  }
  /// Longer lines would wrap and break the cursor arithmetic of clear().
  std::string fit(const std::string& line) const {
    struct winsize ws {};
    size_t cols = 80;
    if (::ioctl(fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) cols = ws.ws_col;
    if (cols > 1) --cols;
    if (visible_width(line) <= cols) return line;
    // Cut by visible characters; escape sequences are kept whole.
    std::string out;
    size_t seen = 0;
    for (size_t i = 0; i < line.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(line[i]);
      if (c == 0x1b) {
        size_t e = line.find('m', i);
        if (e == std::string::npos) break;
        out += line.substr(i, e - i + 1);
        i = e;
        continue;
      }
      bool starts_char = (c & 0xC0) != 0x80;
      if (starts_char && seen == cols) break;
      if (starts_char) ++seen;
      out += static_cast<char>(c);
    }
    return color_ ? out + kReset : out;
  }
  static size_t visible_width(const std::string& s) {
    size_t n = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c == 0x1b) {
        size_t e = s.find('m', i);
        if (e == std::string::npos) break;
        i = e;
        continue;
      }
      if ((c & 0xC0) != 0x80) ++n;
    }
    return n;
  }

  std::FILE* out_;
  bool color_;
  std::vector<Running> running_;
  size_t drawn_ = 0;
  size_t frame_ = 0;
};

}  // namespace
}  // namespace reporters

std::unique_ptr<Progress> make_text_progress(std::FILE* out, bool tty, bool color) {
  if (tty) return std::make_unique<reporters::LiveProgress>(out, color);
  return std::make_unique<reporters::PlainProgress>(out, color);
}

}  // namespace netplay
