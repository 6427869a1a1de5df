#include "steps/net/netns_scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <unordered_set>

#include <fmt/format.h>

#include "runner/step/netns.h"

namespace netplay::netns {
namespace {

constexpr std::string_view kRunNetns = "/run/netns/";

/// Device of the nsfs pseudo file system: a file in /run/netns whose mount went away
/// (a half-deleted `ip netns`) stats as a plain tmpfs file on another device.
dev_t nsfs_dev() {
  struct stat st{};
  if (::stat("/proc/thread-self/ns/net", &st) != 0) return 0;
  return st.st_dev;
}

/// Inode from a /proc/PID/ns/net link text "net:[4026531840]" without opening the file.
unsigned long inode_from_link(const char* link, size_t len) {
  std::string_view s(link, len);
  if (!s.starts_with("net:[") || !s.ends_with("]")) return 0;
  s = s.substr(5, s.size() - 6);
  unsigned long v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() ? v : 0;
}

void scan_dir(const std::string& dir, dev_t nsfs, std::unordered_set<unsigned long>& seen,
              std::vector<Namespace>& out) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;  // absent on nodes without that runtime
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    names.emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    std::string path = dir + "/" + n;
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0 || st.st_dev != nsfs) continue;
    if (!seen.insert(st.st_ino).second) continue;
    out.push_back({ref_for(path, st.st_ino), path, static_cast<unsigned long>(st.st_ino)});
  }
}

void scan_processes(std::unordered_set<unsigned long>& seen, std::vector<Namespace>& out) {
  DIR* d = ::opendir("/proc");
  if (!d) return;
  std::vector<long> pids;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid > 0 && end && *end == '\0') pids.push_back(pid);
  }
  ::closedir(d);
  std::sort(pids.begin(), pids.end());
  unsigned long host = host_inode();
  char link[64];
  for (long pid : pids) {
    std::string path = fmt::format("/proc/{}/ns/net", pid);
    ssize_t n = ::readlink(path.c_str(), link, sizeof link);
    if (n <= 0) continue;  // exited, or a kernel thread without one
    unsigned long ino = inode_from_link(link, static_cast<size_t>(n));
    if (ino == 0 || !seen.insert(ino).second) continue;
    out.push_back({ino == host ? "host" : path, path, ino});
  }
}

struct HostNs {
  int fd = -1;
  unsigned long inode = 0;
};

HostNs capture_host() {
  HostNs h;
  h.fd = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  struct stat st{};
  if (h.fd >= 0 && ::fstat(h.fd, &st) == 0) h.inode = st.st_ino;
  return h;
}

/// Before main(): no thread has switched namespaces yet.
const HostNs g_host = capture_host();

}  // namespace

unsigned long host_inode() { return g_host.inode; }

std::string host_path() {
  return g_host.fd >= 0 ? fmt::format("/proc/self/fd/{}", g_host.fd) : "/proc/self/ns/net";
}

std::string ref_for(const std::string& path, unsigned long inode) {
  if (inode != 0 && inode == host_inode()) return "host";
  if (path.starts_with(kRunNetns) && path.find('/', kRunNetns.size()) == std::string::npos)
    return path.substr(kRunNetns.size());
  return path;
}

std::vector<Namespace> scan(const ScanRoots& roots) {
  std::vector<Namespace> out;
  std::unordered_set<unsigned long> seen;
  dev_t nsfs = nsfs_dev();
  for (const auto& dir : roots.dirs) scan_dir(dir, nsfs, seen, out);
  if (roots.processes) scan_processes(seen, out);
  return out;
}

std::expected<Namespace, std::string> current(const std::string& ref) {
  const std::string path = "/proc/thread-self/ns/net";
  auto ino = netns_inode(path);
  if (!ino) return std::unexpected(ino.error());
  return Namespace{*ino == host_inode() ? "host" : ref, path, *ino};
}

std::expected<std::unique_ptr<NetlinkClient>, std::string> client_in(const std::string& path,
                                                                     const StepContext& ctx) {
  auto scope = NetnsScope::enter(path);
  if (!scope) return std::unexpected(scope.error());
  auto client = ctx.netlink().open(ctx);
  if (!scope->leave())
    return std::unexpected(fmt::format(
        "could not return to the step's network namespace after opening a socket in {}", path));
  return client;
}

std::expected<Fd, std::string> Fd::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::unexpected(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  return Fd(fd);
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

std::expected<int, std::string> netnsid_of(NetlinkClient& observer, const std::string& path) {
  auto fd = Fd::open(path);
  if (!fd) return std::unexpected(fd.error());
  return observer.netnsid_of_fd(fd->get());
}

}  // namespace netplay::netns
