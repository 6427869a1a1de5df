#include "runner/base/read_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runner/base/fd.h"

namespace netplay {

std::string format_size(size_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} bytes", bytes);
}

std::string describe_file_type(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFLNK: return "a symlink";
    case S_IFIFO: return "a FIFO";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
  }
  return "not a file";
}

namespace {

using Fd = UniqueFd;

std::unexpected<std::string> too_large(size_t max) {
  return std::unexpected(fmt::format("is larger than the {} limit", format_size(max)));
}

}  // namespace

std::expected<std::string, std::string> read_file_bounded(const std::string& path,
                                                          const ReadLimits& limits) {
  if (path.empty()) return std::unexpected(std::string("empty file name"));
  if (path.find('\0') != std::string::npos)
    return std::unexpected(std::string("file name holds a NUL byte"));
  // stat first: opening a FIFO nobody writes to would block, and opening some devices has
  // effects of its own.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::unexpected(std::string(std::strerror(errno)));
  const bool regular = S_ISREG(st.st_mode);
  const bool stream = S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode);
  if (S_ISDIR(st.st_mode)) return std::unexpected(std::string("is a directory"));
  if (!regular && !(stream && limits.allow_stream))
    return std::unexpected(fmt::format("is {}, not a regular file", describe_file_type(st.st_mode)));
  if (regular && static_cast<unsigned long long>(st.st_size) > limits.max_bytes)
    return too_large(limits.max_bytes);

  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) return std::unexpected(std::string(std::strerror(errno)));
  // The path may have changed since stat: judge what was opened.
  if (::fstat(fd.get(), &st) != 0) return std::unexpected(std::string(std::strerror(errno)));
  if (S_ISDIR(st.st_mode)) return std::unexpected(std::string("is a directory"));
  if (!S_ISREG(st.st_mode) &&
      !(limits.allow_stream && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))))
    return std::unexpected(fmt::format("is {}, not a regular file", describe_file_type(st.st_mode)));

  std::string out;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(std::string(std::strerror(errno)));
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > limits.max_bytes) return too_large(limits.max_bytes);
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace netplay
