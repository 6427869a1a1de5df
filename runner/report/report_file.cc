/// Report files: what `--output FORMAT=PATH` may write to, and how. netplay often runs as
/// root, and PATH is whatever the command line (or a script) says: it must never replace
/// /dev/null with a regular file, follow a planted symlink into /etc, or hang on a FIFO.

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "runner/base/read_file.h"
#include "runner/report/reporters.h"
#include "runner/report/reporters_internal.h"

namespace netplay {
namespace {

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

/// /dev/null and terminals: the character devices a report may be written to. Others
/// (/dev/mem, /dev/watchdog, disks' character nodes...) may act on an open or a write.
bool report_device(dev_t rdev) {
  unsigned ma = major(rdev), mi = minor(rdev);
  if (ma == 1) return mi == 3;                 // /dev/null (not /dev/mem, /dev/port, ...)
  if (ma == 5) return mi == 0 || mi == 1;      // /dev/tty, /dev/console
  return ma == 4 || (ma >= 136 && ma <= 143);  // virtual consoles and serial, pseudo-terminals
}

/// A kernel filesystem (/proc, /sys, cgroups, ...): its files are interfaces, not storage.
const char* kernel_fs(const std::string& dir) {
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) != 0) return nullptr;
  switch (static_cast<unsigned long>(fs.f_type)) {
    case PROC_SUPER_MAGIC: return "procfs";
    case SYSFS_MAGIC: return "sysfs";
    case CGROUP_SUPER_MAGIC:
    case CGROUP2_SUPER_MAGIC: return "cgroupfs";
    case DEBUGFS_MAGIC: return "debugfs";
    case TRACEFS_MAGIC: return "tracefs";
    case SECURITYFS_MAGIC: return "securityfs";
    case BPF_FS_MAGIC: return "bpffs";
  }
  return nullptr;
}

/// The file `path` will be replaced by a temp file of `dir` renamed over it: prove now
/// that the temp file can be created there.
std::expected<ReportDestination, std::string> replaceable(const std::string& path,
                                                          const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return std::unexpected(fmt::format("directory '{}' does not exist", dir));
  if (const char* fs = kernel_fs(dir))
    return std::unexpected(fmt::format(
        "'{}' is in a kernel filesystem ({}), not a place for reports", path, fs));
  std::string probe = (dir == "/" ? "" : dir) + "/.netplay-probe.XXXXXX";
  int fd = ::mkstemp(probe.data());
  if (fd < 0)
    return std::unexpected(
        fmt::format("cannot create a file in directory '{}': {}", dir, std::strerror(errno)));
  ::close(fd);
  ::unlink(probe.c_str());
  return ReportDestination{ReportDestination::Kind::kReplace, path};
}

/// What `st` (of the file a path leads to) means for a report.
std::expected<ReportDestination, std::string> by_type(const std::string& path,
                                                      const struct stat& st) {
  if (S_ISFIFO(st.st_mode) || (S_ISCHR(st.st_mode) && report_device(st.st_rdev))) {
    if (::access(path.c_str(), W_OK) != 0)
      return std::unexpected(fmt::format("cannot write: {}", std::strerror(errno)));
    return ReportDestination{ReportDestination::Kind::kStream, path};
  }
  if (S_ISDIR(st.st_mode)) return std::unexpected(std::string("is a directory"));
  if (S_ISCHR(st.st_mode))
    return std::unexpected(std::string(
        "is a character device other than /dev/null or a terminal: not written to"));
  return std::unexpected(
      fmt::format("is {}: reports go to regular files, FIFOs, /dev/null or a terminal",
                  describe_file_type(st.st_mode)));
}

}  // namespace

std::expected<ReportDestination, std::string> check_report_path(const std::string& path) {
  if (path.empty()) return std::unexpected(std::string("empty file name"));
  if (path.back() == '/') return std::unexpected(std::string("is a directory"));
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) != 0) {
    if (errno == ENOENT) return replaceable(path, dir_of(path));
    if (errno == ENOTDIR)
      return std::unexpected(fmt::format("directory '{}' does not exist", dir_of(path)));
    return std::unexpected(std::string(std::strerror(errno)));
  }
  if (S_ISREG(lst.st_mode)) return replaceable(path, dir_of(path));
  if (!S_ISLNK(lst.st_mode)) return by_type(path, lst);

  // A symlink. In a sticky world-writable directory (/tmp) one that belongs to someone else
  // may have been planted there: refuse it, as the kernel's protected_symlinks would.
  struct stat dst {};
  std::string dir = dir_of(path);
  if (::stat(dir.c_str(), &dst) == 0 && (dst.st_mode & S_ISVTX) && (dst.st_mode & S_IWOTH) &&
      lst.st_uid != ::geteuid() && lst.st_uid != dst.st_uid)
    return std::unexpected(fmt::format(
        "is a symlink owned by another user in the world-writable directory '{}': not followed",
        dir));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::unexpected(std::string("is a dangling symlink"));
    return std::unexpected(std::string(std::strerror(errno)));
  }
  // Write through the link to a FIFO or a terminal (/dev/stdout); a regular file is
  // replaced where it really is, so the link stays a link.
  if (!S_ISREG(st.st_mode)) return by_type(path, st);
  char real[PATH_MAX];
  if (!::realpath(path.c_str(), real))
    return std::unexpected(fmt::format("cannot resolve the symlink: {}", std::strerror(errno)));
  return replaceable(real, dir_of(real));
}

std::expected<void, std::string> reporters::write_all(int fd, const std::string& content) {
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(std::string(std::strerror(errno)));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return {};
}

namespace {

/// Writes through to a FIFO or a device: no O_CREAT, no O_TRUNC, no rename.
std::expected<void, std::string> write_stream(const std::string& path, const std::string& content,
                                              Millis no_reader_wait) {
  // O_NONBLOCK: opening a FIFO for writing would block until someone opens it to read.
  auto give_up = Clock::now() + std::chrono::duration_cast<Clock::duration>(no_reader_wait);
  int fd = -1;
  for (;;) {
    fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0 || errno != ENXIO) break;
    if (Clock::now() >= give_up)
      return std::unexpected(fmt::format("{}: no reader: nothing has the FIFO open for reading "
                                         "(waited {})",
                                         path, format_duration(no_reader_wait)));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (fd < 0) return std::unexpected(fmt::format("{}: {}", path, std::strerror(errno)));
  struct stat st {};
  // What was opened is what counts: the path may have been swapped since the check.
  if (::fstat(fd, &st) != 0 ||
      !(S_ISFIFO(st.st_mode) || (S_ISCHR(st.st_mode) && report_device(st.st_rdev)))) {
    ::close(fd);
    return std::unexpected(fmt::format("{}: changed since the run started", path));
  }
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  auto w = reporters::write_all(fd, content);
  int e = errno;
  ::close(fd);
  if (!w) {
    if (e == EPIPE) return std::unexpected(fmt::format("{}: the reader went away", path));
    return std::unexpected(fmt::format("{}: write: {}", path, w.error()));
  }
  return {};
}

}  // namespace

std::expected<void, std::string> write_report_file(const std::string& path,
                                                   const std::string& content,
                                                   Millis no_reader_wait) {
  auto dest = check_report_path(path);
  if (!dest) return std::unexpected(fmt::format("{}: {}", path, dest.error()));
  if (dest->kind == ReportDestination::Kind::kStream)
    return write_stream(dest->path, content, no_reader_wait);
  return write_file_atomic(dest->path, content);
}

}  // namespace netplay
