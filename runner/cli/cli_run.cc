/// `netplay run`, signals, and main()'s catch-all.

#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "runner/cli/cli.h"
#include "runner/cli/cli_internal.h"
#include "runner/load/loader.h"
#include "runner/step/process.h"
#include "runner/run/session.h"

namespace netplay {

/// The child processes of this invocation's run, owned here (not by the run) because the
/// signal handlers below must reach them: Ctrl-C, a second Ctrl-C and a crash kill what is
/// left (ProcessRegistry::kill_all is async-signal-safe).
namespace {
ProcessRegistry g_children;

/// The run's services. Never destroyed: a step abandoned after its timeout may still be
/// using them while the reports are written and the process exits.
RealServices& run_services() {
  static auto* services = new RealServices(g_children);
  return *services;
}
}  // namespace

namespace cli {
namespace {

/// How often the watchdog looks, how far past its deadline an evaluation may be before it
/// counts as stuck, and how long the run gets to stop by itself after Ctrl-C or --timeout
/// (the scheduler's own stop takes about a second).
constexpr auto kWatchdogTick = std::chrono::milliseconds(50);
constexpr auto kWatchdogGrace = std::chrono::milliseconds(500);
constexpr auto kWatchdogStopGrace = std::chrono::milliseconds(2500);

std::expected<int, std::string> parse_jobs(const std::string& s) {
  int n = 0;
  size_t used = 0;
  try {
    n = std::stoi(s, &used);
  } catch (...) {
    used = 0;
  }
  if (used == 0 || used != s.size() || n < 1 || n > 64)
    return std::unexpected(fmt::format("--jobs: expected an integer from 1 to 64, got '{}'", s));
  return n;
}

/// Fails before running anything when a report could not be written afterwards: finding
/// that out after a ten-minute run would throw the run away. See check_report_path() for
/// what a report may replace or write through.
std::optional<std::string> check_writable(const std::string& spec, const OutputTarget& t) {
  if (t.path.empty()) return std::nullopt;
  auto dest = check_report_path(t.path);
  if (!dest) return fmt::format("--output {}: {}", spec, dest.error());
  return std::nullopt;
}

void print_diagnostics(const CliIo& io, const std::vector<Diagnostic>& ds) {
  for (const auto& d : ds) put(io.err, (d.file.empty() ? "netplay: " : "") + d.str() + "\n");
}

}  // namespace

int run_command(const RunArgs& a, const CliIo& io) {
  auto jobs = parse_jobs(a.jobs);
  if (!jobs) return usage_error(io, jobs.error());
  Millis timeout{0};
  if (!a.timeout.empty()) {
    auto d = parse_duration(a.timeout);
    if (!d) return usage_error(io, "--timeout: " + d.error());
    timeout = *d;
  }
  std::vector<OutputTarget> targets;
  for (const auto& o : a.outputs) {
    auto t = parse_output_target(o);
    if (!t) return usage_error(io, "--output: " + t.error());
    if (auto err = check_writable(o, *t)) return usage_error(io, *err);
    targets.push_back(*t);
  }
  for (const auto& s : a.sets)
    if (s.find('=') == std::string::npos || s.front() == '=')
      return usage_error(io, fmt::format("--set: expected NAME=VALUE, got '{}'", s));
  bool any_stdout = false, text_stdout = false;
  for (const auto& t : targets) {
    any_stdout |= t.path.empty();
    text_stdout |= t.path.empty() && t.format == Format::kText;
  }
  // People read stdout: when no report goes there, the text report does.
  if (!any_stdout) {
    targets.push_back({Format::kText, ""});
    text_stdout = true;
  }

  auto pb = load_playbook(a.playbook);
  if (!pb) {
    // The file itself (missing, a directory, too large): one usage line.
    if (pb.error().size() == 1 && pb.error()[0].pos.line == 0)
      return usage_error(io, pb.error()[0].str());
    print_diagnostics(io, pb.error());
    return 2;
  }
  auto inputs = resolve_inputs(*pb, a.vars, a.sets);
  if (!inputs) {
    print_diagnostics(io, inputs.error());
    return 2;
  }
  for (const auto& id : a.only) {
    if (pb->find_step(id)) continue;
    std::vector<std::string> ids;
    for (const auto& s : pb->steps) ids.push_back(s.id);
    std::string near = did_you_mean(id, ids);
    return usage_error(io,
                       fmt::format("--only: no step '{}' in {}{}", id, a.playbook,
                                   near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near)));
  }

  RunOptions opts;
  opts.jobs = *jobs;
  opts.global_timeout = timeout;
  opts.fail_fast = a.fail_fast;
  opts.only = a.only;
  opts.inputs = *inputs;
  opts.services = &run_services();

  bool color_allowed = !a.no_color && !io.no_color_env;
  std::unique_ptr<Progress> progress;
  // Live progress shares stdout only with a text report on a terminal. Anywhere else stdout
  // holds exactly the report(s), and progress goes to stderr: live on a terminal, one plain
  // line per finished step otherwise (a CI log).
  bool progress_on_stdout = !a.quiet && text_stdout && io.out_tty;
  if (progress_on_stdout)
    progress = make_text_progress(io.out, true, color_allowed);
  else if (!a.quiet)
    progress = make_text_progress(io.err, io.err_tty, color_allowed && io.err_tty);

  static const std::atomic<bool> never{false};
  const std::atomic<bool>& interrupt = io.interrupt ? *io.interrupt : never;
  if (io.before_run) io.before_run();
  Session session(*pb, std::move(opts));

  // Writes the reports, once: either the run's own, or the watchdog's when the run cannot
  // return. Returns the exit code.
  std::mutex emit_mutex;
  bool emitted = false;
  auto emit = [&](const RunReport& report) {
    int rc = exit_code(report);
    for (const auto& t : targets) {
      RenderOptions ro;
      ro.verbose = a.verbose;
      ro.quiet = a.quiet;
      ro.color = t.path.empty() && t.format == Format::kText && io.out_tty && color_allowed;
      std::string body = render(report, t.format, ro);
      if (t.path.empty()) {
        if (progress_on_stdout && t.format == Format::kText) put(io.out, "\n");
        put(io.out, body);
        continue;
      }
      if (auto w = write_report_file(t.path, body); !w) {
        put(io.err, "netplay: cannot write report: " + printable(w.error()) + "\n");
        if (rc != 130) rc = 2;
      }
    }
    std::fflush(io.out);
    return rc;
  };

  // The watchdog: when the run cannot end by itself (an evaluation stuck inside a C
  // function, where no limit reaches it), it writes the report as far as the run got,
  // kills the children and ends the process.
  std::mutex dog_mutex;
  std::condition_variable dog_wake;
  bool run_returned = false;
  std::thread dog([&] {
    const Clock::time_point start = Clock::now();
    std::optional<Clock::time_point> interrupted_at;
    std::unique_lock lock(dog_mutex);
    while (!dog_wake.wait_for(lock, kWatchdogTick, [&] { return run_returned; })) {
      Clock::time_point now = Clock::now();
      std::optional<std::string> reason = ExprEngine::overdue(now, kWatchdogGrace);
      if (reason) *reason += " inside a Lua library function that does not return; netplay stopped the run";
      if (!interrupted_at && interrupt.load()) interrupted_at = now;
      bool by_interrupt = interrupted_at && (now - *interrupted_at > kWatchdogStopGrace ||
                                             (now - *interrupted_at > kWatchdogGrace &&
                                              ExprEngine::any_busy()));
      if (by_interrupt) reason = "interrupted; the run did not stop in time";
      if (!reason && timeout.count() > 0 &&
          now - start > std::chrono::duration_cast<Clock::duration>(timeout) + kWatchdogStopGrace)
        reason = fmt::format("run timed out after {}; the run did not stop in time",
                             format_duration(timeout));
      if (!reason) continue;
      std::lock_guard emit_lock(emit_mutex);
      if (emitted) return;
      emitted = true;
      put(io.err, fmt::format("\nnetplay: {}\n", *reason));
      int rc = emit(session.partial_report(*reason, by_interrupt || interrupt.load()));
      g_children.kill_all();
      std::fflush(nullptr);
      ::_exit(rc);
    }
  });

  // Stops the watchdog when the run returns, and also when it throws (a joinable thread
  // must not be destroyed).
  struct StopDog {
    std::mutex& mutex;
    std::condition_variable& wake;
    bool& returned;
    std::thread& dog;
    ~StopDog() {
      {
        std::lock_guard lock(mutex);
        returned = true;
      }
      wake.notify_all();
      dog.join();
    }
  };
  std::optional<RunReport> finished;
  {
    StopDog stop{dog_mutex, dog_wake, run_returned, dog};
    finished = session.run(progress.get(), interrupt);
  }
  const RunReport& report = *finished;
  progress.reset();  // erases the live lines before the report is printed
  std::lock_guard emit_lock(emit_mutex);
  emitted = true;
  return emit(report);
}

}  // namespace cli

namespace {

std::atomic<bool> g_interrupt{false};
std::atomic<int> g_signals{0};

void write_stderr(const char* s) { (void)!::write(2, s, std::strlen(s)); }

/// Async-signal-safe only: an atomic store, write(2), kill(2) (ProcessRegistry::kill_all
/// walks a table of atomics) and _exit.
extern "C" void on_interrupt(int) {
  int saved = errno;
  g_interrupt.store(true);
  if (g_signals.fetch_add(1) == 0) {
    write_stderr(
        "\nnetplay: interrupted; stopping steps and writing the reports (again to abort)\n");
  } else {
    write_stderr("\nnetplay: aborted\n");
    g_children.kill_all();
    ::_exit(130);
  }
  errno = saved;
}

extern "C" void on_sigpipe(int) {}

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

[[noreturn]] void on_terminate() {
  std::string what = "unknown error";
  if (auto e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
    }
  }
  std::string line = "netplay: internal error: " + what + "\n";
  (void)!::write(2, line.data(), line.size());
  g_children.kill_all();
  ::_exit(3);
}

}  // namespace

int cli_main(int argc, char** argv) {
  std::set_terminate(on_terminate);
  // A handler rather than SIG_IGN: writes to a closed pipe fail with EPIPE instead of
  // killing us, and (unlike SIG_IGN) the disposition does not leak into child processes.
  struct sigaction sa {};
  sa.sa_handler = on_sigpipe;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGPIPE, &sa, nullptr);

  CliIo io;
  io.out_tty = ::isatty(1) == 1;
  io.err_tty = ::isatty(2) == 1;
  const char* nc = std::getenv("NO_COLOR");
  io.no_color_env = nc != nullptr && *nc != '\0';
  io.interrupt = &g_interrupt;
  io.before_run = install_interrupt_handlers;
  try {
    return run_cli(argc, argv, io);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "netplay: internal error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "netplay: internal error\n");
  }
  g_children.kill_all();
  return 3;
}

}  // namespace netplay
