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


// ---- 1. Resolve: everything that can fail before a fork ----

/// What to start: the executable's path, its arguments, environment and directory.
struct Launch {
  std::string exe;
  std::vector<std::string> args;  // after argv[0]
  std::map<std::string, std::string> env;
  std::string cwd;
};

std::expected<Launch, std::string> resolve(const ProcessSpec& spec) {
  Launch l;
  // Environment: inherited (or not), then overrides.
  if (spec.inherit_env) {
    for (char** e = environ; e && *e; ++e) {
      std::string_view kv(*e);
      size_t eq = kv.find('=');
      if (eq == std::string_view::npos || eq == 0) continue;
      l.env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
  }
  for (const auto& [k, v] : spec.env) l.env[k] = v;

  l.exe = spec.argv[0];
  if (l.exe.find('/') == std::string::npos) {
    std::string path_var;
    if (auto it = l.env.find("PATH"); it != l.env.end()) {
      path_var = it->second;
    } else if (const char* p = std::getenv("PATH")) {
      path_var = p;
    } else {
      path_var = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    }
    l.exe = find_in_path(l.exe, path_var);
    if (l.exe.empty()) return std::unexpected(fmt::format("no such command '{}'", spec.argv[0]));
  } else {
    std::error_code fec;
    if (!std::filesystem::exists(l.exe, fec))
      return std::unexpected(fmt::format("no such command '{}'", l.exe));
  }
  if (!spec.cwd.empty()) {
    std::error_code fec;
    if (!std::filesystem::is_directory(spec.cwd, fec))
      return std::unexpected(fmt::format("working directory '{}' does not exist", spec.cwd));
  }
  l.cwd = spec.cwd.empty() ? std::string(".") : spec.cwd;
  l.args.assign(spec.argv.begin() + 1, spec.argv.end());
  return l;
}

// ---- 2. Spawn: the child in its own process group, its output on pipes ----

/// A started child and our ends of its pipes. Boost does not wait for it (we do, below).
struct Child {
  boost::asio::io_context io;
  std::optional<bp::async_pipe> out, err, in;
  pid_t pid = -1;
};

std::expected<void, std::string> spawn(const Launch& l, const ProcessSpec& spec, Child& c) {
  bp::environment env;
  // set(), not operator[]: Boost 1.74's find() behind operator[] compares past the end of
  // entries shorter than the key (AddressSanitizer: heap-buffer-overflow).
  for (const auto& [k, v] : l.env) env.set(k, v);
  try {
    c.out.emplace(c.io);
    c.err.emplace(c.io);
    auto setup = bp::extend::on_exec_setup = [](auto&) { child_setup(); };
    std::error_code ec;
    std::optional<bp::child> child;
    if (spec.stdin_data.empty()) {
      child.emplace(bp::exe = l.exe, bp::args = l.args, bp::env = env, bp::start_dir = l.cwd,
                    bp::std_in < bp::null, bp::std_out > *c.out, bp::std_err > *c.err, setup,
                    ec);
    } else {
      c.in.emplace(c.io);
      child.emplace(bp::exe = l.exe, bp::args = l.args, bp::env = env, bp::start_dir = l.cwd,
                    bp::std_in < *c.in, bp::std_out > *c.out, bp::std_err > *c.err, setup, ec);
    }
    if (ec || !child->valid())
      return std::unexpected(fmt::format("cannot run '{}': {}", spec.argv[0], ec.message()));
    c.pid = child->id();
    // We wait for the child ourselves (see wait_for_exit), so Boost must not touch it again.
    child->detach();
  } catch (const std::exception& e) {
    return std::unexpected(fmt::format("cannot run '{}': {}", spec.argv[0], e.what()));
  }
  // The child called setpgid(0,0) itself; doing it here too closes the race where we would
  // signal the group before the child got that far.
  ::setpgid(c.pid, c.pid);
  return {};
}

void kill_group(pid_t pgid, int sig) { ::kill(-pgid, sig); }

// ---- 3. Pump: stdout and stderr into capped buffers, stdin from the spec ----

class Pump {
 public:
  Pump(Child& c, const ProcessSpec& spec, ProcessResult& res)
      : c_(c),
        out_{*c.out, res.out, spec.max_output, res.truncated},
        err_{*c.err, res.err, spec.max_output, res.truncated} {
    out_.start();
    err_.start();
    if (c.in) {
      boost::asio::async_write(*c.in, boost::asio::buffer(spec.stdin_data),
                               [&c](const boost::system::error_code&, size_t) {
                                 boost::system::error_code ignored;
                                 c.in->close(ignored);  // EOF for the child (or EPIPE: fine)
                               });
    }
  }
  Pump(const Pump&) = delete;
  Pump& operator=(const Pump&) = delete;

  /// Both output pipes reached EOF.
  bool done() const { return out_.done && err_.done; }
  /// Runs pending reads for up to `slice`.
  void run_for(std::chrono::milliseconds slice) {
    c_.io.restart();
    c_.io.run_for(slice);
  }
  /// Takes what is already buffered without blocking, then closes our ends; no handler is
  /// left to outlive the buffers.
  void finish() {
    c_.io.restart();
    c_.io.poll();
    boost::system::error_code ignored;
    c_.out->close(ignored);
    c_.err->close(ignored);
    if (c_.in) c_.in->close(ignored);
    c_.io.restart();
    c_.io.poll();  // completes the aborted reads
  }

 private:
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
  Child& c_;
  Reader out_, err_;
};

// ---- 4. Wait: until exit, deadline or cancellation ----

/// Pumps output until the child exited and its pipes closed. On the deadline or a stop
/// request the group gets SIGTERM, then SIGKILL; a grandchild still holding our pipes after
/// the child exited is killed too. Returns whether the child's exit was seen (it is then
/// still unreaped: see reap).
///
/// Boost.Process 1.74's wait_for is unreliable and its on_exit installs a process-wide
/// SIGCHLD handler, so the pid is watched with waitid(WNOWAIT) between slices of pumping.
/// WNOWAIT keeps the pid (and so the group id) ours until we have stopped signalling the
/// group.
bool wait_for_exit(Child& c, Pump& pump, const StepContext& ctx, ProcessResult& res) {
  bool exited = false;
  Clock::time_point exit_seen{}, term_sent{};
  bool term = false, killed = false;
  for (;;) {
    if (!exited) {
      siginfo_t si{};
      if (::waitid(P_PID, static_cast<id_t>(c.pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          si.si_pid == c.pid) {
        exited = true;
        exit_seen = Clock::now();
      }
    }
    if (exited && pump.done()) return true;
    auto now = Clock::now();
    if (exited && now - exit_seen > kDrainGrace) {
      // Something else (a grandchild) holds our output: end it and stop reading.
      kill_group(c.pid, SIGKILL);
      return true;
    }
    if (!term && (ctx.expired() || ctx.should_stop())) {
      if (ctx.should_stop())
        res.cancelled = true;
      else
        res.timed_out = true;
      kill_group(c.pid, SIGTERM);
      term = true;
      term_sent = now;
    }
    if (term && !killed && now - term_sent >= kTermGrace) {
      kill_group(c.pid, SIGKILL);
      killed = true;
    }
    if (killed && now - term_sent >= kTermGrace + kReapCap) return exited;

    if (pump.done()) {
      std::this_thread::sleep_for(2ms);  // nothing to read: only the exit to wait for
    } else {
      pump.run_for(exited ? std::chrono::duration_cast<std::chrono::milliseconds>(kDrainGrace) / 5
                          : std::chrono::duration_cast<std::chrono::milliseconds>(kSlice));
    }
  }
}

// ---- 5. Reap: the exit status, or a reaper for a child stuck in the kernel ----

void reap(pid_t pid, bool exited, ProcessResult& res) {
  int status = 0;
  pid_t r = exited ? ::waitpid(pid, &status, 0) : ::waitpid(pid, &status, WNOHANG);
  if (r == pid) {
    if (WIFEXITED(status)) res.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) res.term_signal = WTERMSIG(status);
    return;
  }
  // Stuck in uninterruptible sleep after SIGKILL: reap it whenever it finally dies.
  std::thread([pid] {
    int st = 0;
    ::waitpid(pid, &st, 0);
  }).detach();
  res.term_signal = SIGKILL;
}

}  // namespace

// ---- ProcessRegistry ----

ProcessRegistry::Slot::Slot(Slot&& o) noexcept : registry_(o.registry_), index_(o.index_) {
  o.registry_ = nullptr;
}

ProcessRegistry::Slot::~Slot() {
  if (registry_) registry_->groups_[index_].store(0);
}

ProcessRegistry::Slot ProcessRegistry::track(pid_t pgid) {
  for (size_t i = 0; i < kCapacity; ++i) {
    pid_t expected = 0;
    if (groups_[i].compare_exchange_strong(expected, pgid)) return Slot(this, i);
  }
  return Slot();
}

void ProcessRegistry::kill_all() {
  for (auto& g : groups_) {
    pid_t pgid = g.load();
    if (pgid > 0) ::kill(-pgid, SIGKILL);
  }
}

size_t ProcessRegistry::live() const {
  size_t n = 0;
  for (const auto& g : groups_)
    if (g.load() > 0) ++n;
  return n;
}

// ---- run_process ----

std::expected<ProcessResult, std::string> run_process(const ProcessSpec& spec,
                                                      const StepContext& ctx,
                                                      ProcessRegistry& registry) {
  if (spec.argv.empty() || spec.argv[0].empty()) return std::unexpected("empty command");
  ignore_sigpipe_once();
  auto launch = resolve(spec);
  if (!launch) return std::unexpected(launch.error());

  ProcessResult res;
  auto started = Clock::now();
  Child child;
  if (auto s = spawn(*launch, spec, child); !s) return std::unexpected(s.error());
  bool exited = false;
  {
    // Tracked only while we may signal the group: once reaped, its id may be reused.
    ProcessRegistry::Slot slot = registry.track(child.pid);
    Pump pump(child, spec, res);
    exited = wait_for_exit(child, pump, ctx, res);
    pump.finish();
  }
  reap(child.pid, exited, res);
  res.duration = std::chrono::duration_cast<Millis>(Clock::now() - started);
  return res;
}

}  // namespace netplay
