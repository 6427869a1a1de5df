/// Network namespaces, entered per worker thread. setns(2) with CLONE_NEWNET changes only the
/// calling thread (unlike mount namespaces, no unshare(CLONE_FS) is needed), so several
/// workers can sit in different namespaces at once.

#include "runner/step/netns.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runner/base/types.h"

namespace netplay {
namespace {

/// Set when a thread could not get back to its original namespace: whatever it runs next
/// would run in the wrong place, so its owner retires it.
thread_local bool t_poisoned = false;

/// What to do about a permission error: become root, or (already root) look at what
/// denies root: a security module (SELinux, AppArmor, Yama) or a user namespace.
std::string denied_hint(const char* what_root_needs) {
  if (::geteuid() != 0) return fmt::format("{} (run as root)", what_root_needs);
  return fmt::format(
      "permission denied although running as root: a security module (SELinux, AppArmor) "
      "or a user namespace denies it");
}

}  // namespace

std::expected<std::string, std::string> netns_path(const std::string& spec) {
  if (spec.empty() || spec == "host") return std::string();
  if (spec.starts_with("pid:")) {
    std::string_view pid = std::string_view(spec).substr(4);
    if (auto problem = check_pid(pid))
      return std::unexpected(fmt::format("invalid netns '{}': {}", spec, *problem));
    return fmt::format("/proc/{}/ns/net", pid);
  }
  if (spec.front() == '/') return spec;
  if (spec == "." || spec == ".." || spec.find('/') != std::string::npos ||
      spec.find('\0') != std::string::npos)
    return std::unexpected(fmt::format(
        "invalid netns '{}': expected host, a name from /run/netns, an absolute path or pid:N",
        spec));
  return "/run/netns/" + spec;
}

namespace {

/// Moves the calling thread into the namespace at `path`; errors name it as `spec`.
std::expected<void, std::string> switch_to(const std::string& spec, const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT)
      return std::unexpected(fmt::format("network namespace '{}' not found ({})", spec, path));
    if (e == EACCES || e == EPERM)
      return std::unexpected(fmt::format("opening network namespace '{}' ({}): {}", spec, path,
                                         denied_hint("not permitted")));
    return std::unexpected(
        fmt::format("cannot open network namespace '{}' ({}): {}", spec, path, std::strerror(e)));
  }
  if (::setns(fd, CLONE_NEWNET) != 0) {
    int e = errno;
    ::close(fd);
    if (e == EPERM)
      return std::unexpected(fmt::format("entering network namespace '{}': {}", spec,
                                         denied_hint("needs CAP_SYS_ADMIN")));
    if (e == EINVAL) return std::unexpected(fmt::format("{} is not a network namespace", path));
    return std::unexpected(
        fmt::format("cannot enter network namespace '{}' ({}): {}", spec, path, std::strerror(e)));
  }
  ::close(fd);
  return {};
}

/// A descriptor of the calling thread's namespace, to come back to.
std::expected<int, std::string> open_home() {
  int home = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0)
    return std::unexpected(
        fmt::format("cannot open this thread's network namespace: {}", std::strerror(errno)));
  return home;
}

}  // namespace

std::expected<NetnsScope, std::string> NetnsScope::enter(const std::string& spec) {
  auto path = netns_path(spec);
  if (!path) return std::unexpected(path.error());
  NetnsScope scope;
  if (path->empty()) return scope;
  if (auto moved = scope.move_to_as(spec, *path); !moved) return std::unexpected(moved.error());
  return scope;
}

std::expected<void, std::string> NetnsScope::move_to(const std::string& path) {
  return move_to_as(path, path);
}

std::expected<void, std::string> NetnsScope::move_to_as(const std::string& spec,
                                                        const std::string& path) {
  if (t_poisoned) return std::unexpected("worker thread lost its original network namespace");
  bool opened_home = false;
  if (home_fd_ < 0) {
    auto home = open_home();
    if (!home) return std::unexpected(home.error());
    home_fd_ = *home;
    opened_home = true;
  }
  auto moved = switch_to(spec, path);
  if (!moved && opened_home) {
    // Still where we started: nothing to return to.
    ::close(home_fd_);
    home_fd_ = -1;
  }
  return moved;
}

NetnsScope::NetnsScope(NetnsScope&& o) noexcept : home_fd_(o.home_fd_) { o.home_fd_ = -1; }

NetnsScope::~NetnsScope() { leave(); }

bool NetnsScope::leave() {
  if (home_fd_ < 0) return true;
  bool ok = ::setns(home_fd_, CLONE_NEWNET) == 0;
  ::close(home_fd_);
  home_fd_ = -1;
  if (!ok) t_poisoned = true;
  return ok;
}

bool thread_netns_home_ok() { return !t_poisoned; }

std::expected<unsigned long, std::string> netns_inode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return std::unexpected(fmt::format("cannot stat {}: {}", path, std::strerror(errno)));
  return static_cast<unsigned long>(st.st_ino);
}

}  // namespace netplay
