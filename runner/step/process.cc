#include "runner/step/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include <boost/asio.hpp>
#include <boost/process.hpp>
#include <boost/process/extend.hpp>
#include <fmt/format.h>

extern char** environ;

namespace netplay {
namespace bp = boost::process;
namespace {

using namespace std::chrono_literals;

/// How long one io_context slice runs before deadline/cancel are looked at again.
constexpr auto kSlice = 20ms;
/// SIGTERM first, SIGKILL this much later.
constexpr auto kTermGrace = 300ms;
/// After the direct child exited, how long its output pipes may stay open. Longer means a
/// grandchild (`sleep 100 &`) still holds them: the group is killed and we finish.
constexpr auto kDrainGrace = 150ms;
/// After SIGKILL, how long we wait for the child to be reapable before giving up on it
/// (a process stuck in uninterruptible sleep); a detached thread reaps it later.
constexpr auto kReapCap = 5s;

// ---- registry of live process groups -----------------------------------------------
// A fixed table of atomics rather than a mutex-guarded set: kill_all_children() may then be
// called from a signal handler (Ctrl-C) without risking a deadlock on a held lock.
constexpr size_t kMaxTracked = 512;
std::array<std::atomic<pid_t>, kMaxTracked> g_groups{};

/// Returns the slot used, or -1 when the table is full (the child then runs untracked).
int register_group(pid_t pgid) {
  for (size_t i = 0; i < kMaxTracked; ++i) {
    pid_t expected = 0;
    if (g_groups[i].compare_exchange_strong(expected, pgid)) return static_cast<int>(i);
  }
  return -1;
}

void unregister_group(int slot) {
  if (slot >= 0) g_groups[static_cast<size_t>(slot)].store(0);
}

/// Writing stdin to a child that already exited must give EPIPE, not kill netplay.
void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    if (sigaction(SIGPIPE, nullptr, &sa) == 0 && sa.sa_handler == SIG_DFL) {
      sa.sa_handler = SIG_IGN;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = 0;
      sigaction(SIGPIPE, &sa, nullptr);
    }
  });
}

/// Runs in the forked child before exec: only async-signal-safe calls here.
/// Own process group (so a kill reaches grandchildren), default signal dispositions and an
/// empty mask (the worker thread may block signals; ignored ones survive exec otherwise),
/// and no descriptor of another thread's concurrent spawn leaks into this child: they are
/// marked close-on-exec (not closed, so Boost.Process can still report an exec failure).
void child_setup() {
  ::setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &dfl, nullptr);
  }
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    struct rlimit rl {};
    int max_fd = (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536)
                     ? static_cast<int>(rl.rlim_cur)
                     : 65536;
    for (int fd = 3; fd < max_fd; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
}

/// PATH lookup. bp::search_path would need the compiled Boost.Filesystem library; the rest of
/// Boost.Process is header-only, so this small lookup keeps the dependency that way.
std::string find_in_path(const std::string& name, const std::string& path_var) {
  size_t start = 0;
  while (start <= path_var.size()) {
    size_t end = path_var.find(':', start);
    if (end == std::string::npos) end = path_var.size();
    std::string dir = path_var.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string full = dir + "/" + name;
    std::error_code ec;
    if (std::filesystem::is_regular_file(full, ec) && ::access(full.c_str(), X_OK) == 0)
      return full;
    start = end + 1;
  }
  return "";
}

/// Appends a chunk to a capture buffer, honouring the cap.
void append_capped(std::string& buf, const char* data, size_t n, size_t cap, bool& truncated) {
  size_t room = buf.size() < cap ? cap - buf.size() : 0;
  if (n > room) truncated = true;
  buf.append(data, std::min(n, room));
}

struct Reader {
  bp::async_pipe& pipe;
  std::string& buf;
  size_t cap;
  bool& truncated;
  bool done = false;
  std::array<char, 16384> chunk{};

  void start() {
    pipe.async_read_some(boost::asio::buffer(chunk),
                         [this](const boost::system::error_code& ec, size_t n) {
                           if (n > 0) append_capped(buf, chunk.data(), n, cap, truncated);
                           if (ec) {
                             done = true;  // EOF, or the pipe was closed by us
                             return;
                           }
                           start();
                         });
  }
};

}  // namespace

std::expected<ProcessResult, std::string> run_process(const ProcessSpec& spec,
                                                      const StepContext& ctx) {
  if (spec.argv.empty() || spec.argv[0].empty()) return std::unexpected("empty command");
  ignore_sigpipe_once();

  // Environment: inherited (or not), then overrides.
  std::map<std::string, std::string> envmap;
  if (spec.inherit_env) {
    for (char** e = environ; e && *e; ++e) {
      std::string_view kv(*e);
      size_t eq = kv.find('=');
      if (eq == std::string_view::npos || eq == 0) continue;
      envmap.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
  }
  for (const auto& [k, v] : spec.env) envmap[k] = v;

  std::string exe = spec.argv[0];
  if (exe.find('/') == std::string::npos) {
    std::string path_var;
    if (auto it = envmap.find("PATH"); it != envmap.end()) {
      path_var = it->second;
    } else if (const char* p = std::getenv("PATH")) {
      path_var = p;
    } else {
      path_var = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    }
    exe = find_in_path(exe, path_var);
    if (exe.empty()) return std::unexpected(fmt::format("no such command '{}'", spec.argv[0]));
  } else {
    std::error_code fec;
    if (!std::filesystem::exists(exe, fec))
      return std::unexpected(fmt::format("no such command '{}'", exe));
  }
  if (!spec.cwd.empty()) {
    std::error_code fec;
    if (!std::filesystem::is_directory(spec.cwd, fec))
      return std::unexpected(fmt::format("working directory '{}' does not exist", spec.cwd));
  }

  bp::environment env;
  // set(), not operator[]: Boost 1.74's find() behind operator[] compares past the end of
  // entries shorter than the key (AddressSanitizer: heap-buffer-overflow).
  for (const auto& [k, v] : envmap) env.set(k, v);
  std::vector<std::string> args(spec.argv.begin() + 1, spec.argv.end());

  ProcessResult res;
  auto started = Clock::now();
  boost::asio::io_context io;
  std::optional<bp::async_pipe> out_pipe, err_pipe, in_pipe;
  pid_t pid = -1;
  try {
    out_pipe.emplace(io);
    err_pipe.emplace(io);
    auto setup = bp::extend::on_exec_setup = [](auto&) { child_setup(); };
    std::error_code ec;
    std::optional<bp::child> child;
    const std::string cwd = spec.cwd.empty() ? std::string(".") : spec.cwd;
    if (spec.stdin_data.empty()) {
      child.emplace(bp::exe = exe, bp::args = args, bp::env = env, bp::start_dir = cwd,
                    bp::std_in < bp::null, bp::std_out > *out_pipe, bp::std_err > *err_pipe,
                    setup, ec);
    } else {
      in_pipe.emplace(io);
      child.emplace(bp::exe = exe, bp::args = args, bp::env = env, bp::start_dir = cwd,
                    bp::std_in < *in_pipe, bp::std_out > *out_pipe, bp::std_err > *err_pipe,
                    setup, ec);
    }
    if (ec || !child->valid())
      return std::unexpected(fmt::format("cannot run '{}': {}", spec.argv[0], ec.message()));
    pid = child->id();
    // We wait for the child ourselves (see below), so Boost must not touch it again.
    child->detach();
  } catch (const std::exception& e) {
    return std::unexpected(fmt::format("cannot run '{}': {}", spec.argv[0], e.what()));
  }

  // The child called setpgid(0,0) itself; doing it here too closes the race where we would
  // signal the group before the child got that far.
  ::setpgid(pid, pid);
  int slot = register_group(pid);

  Reader out_reader{*out_pipe, res.out, spec.max_output, res.truncated};
  Reader err_reader{*err_pipe, res.err, spec.max_output, res.truncated};
  out_reader.start();
  err_reader.start();
  if (in_pipe) {
    boost::asio::async_write(*in_pipe, boost::asio::buffer(spec.stdin_data),
                             [&](const boost::system::error_code&, size_t) {
                               boost::system::error_code ignored;
                               in_pipe->close(ignored);  // EOF for the child (or EPIPE: fine)
                             });
  }

  // Waiting: Boost.Process 1.74's wait_for is unreliable and its on_exit installs a
  // process-wide SIGCHLD handler, so we watch the pid with waitid(WNOWAIT) between slices of
  // io_context work. WNOWAIT keeps the pid (and so the group id) ours until we have stopped
  // signalling the group; only then is it reaped.
  bool exited = false;
  Clock::time_point exit_seen{};
  Clock::time_point term_sent{};
  bool term = false, killed = false;
  auto kill_group = [&](int sig) { ::kill(-pid, sig); };

  for (;;) {
    if (!exited) {
      siginfo_t si{};
      if (::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          si.si_pid == pid) {
        exited = true;
        exit_seen = Clock::now();
      }
    }
    bool pipes_done = out_reader.done && err_reader.done;
    if (exited && pipes_done) break;
    auto now = Clock::now();
    if (exited && now - exit_seen > kDrainGrace) {
      // Something else (a grandchild) holds our output: end it and stop reading.
      kill_group(SIGKILL);
      break;
    }
    if (!term && (ctx.expired() || ctx.should_stop())) {
      if (ctx.should_stop())
        res.cancelled = true;
      else
        res.timed_out = true;
      kill_group(SIGTERM);
      term = true;
      term_sent = now;
    }
    if (term && !killed && now - term_sent >= kTermGrace) {
      kill_group(SIGKILL);
      killed = true;
    }
    if (killed && now - term_sent >= kTermGrace + kReapCap) break;

    io.restart();
    if (pipes_done) {
      std::this_thread::sleep_for(2ms);  // nothing to read: only the exit to wait for
    } else {
      io.run_for(exited ? std::chrono::duration_cast<std::chrono::milliseconds>(kDrainGrace) / 5
                        : std::chrono::duration_cast<std::chrono::milliseconds>(kSlice));
    }
  }

  // Drain whatever is already buffered without blocking, then close our ends.
  io.restart();
  io.poll();
  boost::system::error_code ignored;
  out_pipe->close(ignored);
  err_pipe->close(ignored);
  if (in_pipe) in_pipe->close(ignored);
  io.restart();
  io.poll();  // completes the aborted reads so no handler outlives the readers

  unregister_group(slot);
  int status = 0;
  pid_t r = exited ? ::waitpid(pid, &status, 0) : ::waitpid(pid, &status, WNOHANG);
  if (r == pid) {
    if (WIFEXITED(status)) res.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) res.term_signal = WTERMSIG(status);
  } else {
    // Stuck in the kernel after SIGKILL: reap it whenever it finally dies.
    std::thread([pid] {
      int st = 0;
      ::waitpid(pid, &st, 0);
    }).detach();
    res.term_signal = SIGKILL;
  }
  res.duration = std::chrono::duration_cast<Millis>(Clock::now() - started);
  return res;
}

void kill_all_children() {
  for (auto& g : g_groups) {
    pid_t pgid = g.load();
    if (pgid > 0) ::kill(-pgid, SIGKILL);
  }
}

size_t live_children() {
  size_t n = 0;
  for (auto& g : g_groups)
    if (g.load() > 0) ++n;
  return n;
}

}  // namespace netplay
