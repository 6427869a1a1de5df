#pragma once
/// Finding network namespaces on a node and telling them apart.
///
/// A namespace is identified by the inode of its nsfs file (what `ls -l /proc/PID/ns/net`
/// shows); a NETNSID is only a per-observer alias for it (what `ip link` prints as
/// link-netnsid and `lsns -t net` as NSID). The places a namespace can be found: bind mounts
/// in /run/netns (ip netns, CNI), /var/run/docker/netns (Docker) and /proc/PID/ns/net.

#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "runner/step/step.h"
#include "runner/step/services.h"

namespace netplay::netns {

/// One network namespace found on the node.
struct Namespace {
  /// How a user names it: "cell1" for /run/netns/cell1, "host" for the initial namespace,
  /// otherwise the path (/var/run/docker/netns/ID, /proc/PID/ns/net).
  std::string ref;
  std::string path;  // a path that opens it
  unsigned long inode = 0;
};

struct ScanRoots {
  /// Directories of namespace bind mounts, searched in this order.
  std::vector<std::string> dirs = {"/run/netns", "/var/run/docker/netns"};
  /// Also look at /proc/*/ns/net (namespaces held only by a process).
  bool processes = true;
};

/// Every namespace reachable from `roots`, unique by inode: the first place a namespace is
/// found names it (a bind mount's name beats a process path). Stale entries (a file in
/// /run/netns that is no longer a namespace mount, a process that exited) are skipped.
std::vector<Namespace> scan(const ScanRoots& roots = {});

/// "host" is the namespace netplay was started in (what `netns: host` means: no switch),
/// captured before main() runs, so a thread that has entered another namespace still
/// knows it. Inode 0 if it could not be read.
unsigned long host_inode();
/// A path that opens the host namespace from any thread (an fd netplay holds open).
std::string host_path();

/// The namespace the calling thread is in, named `ref` unless it is the host's.
std::expected<Namespace, std::string> current(const std::string& ref);

/// "host" for the host namespace, a /run/netns name, otherwise the path.
std::string ref_for(const std::string& path, unsigned long inode);

/// A netlink client (ctx.netlink()) bound to the namespace at `path`. The calling thread
/// enters the namespace only to open the client and is back home when this returns; if it
/// could not get back, the thread is poisoned (see NetnsScope) and an error is returned.
std::expected<std::unique_ptr<NetlinkClient>, std::string> client_in(const std::string& path,
                                                                     const StepContext& ctx);

/// An open namespace file, closed on destruction.
class Fd {
 public:
  static std::expected<Fd, std::string> open(const std::string& path);
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&&) = delete;
  ~Fd();
  int get() const { return fd_; }

 private:
  explicit Fd(int fd) : fd_(fd) {}
  int fd_ = -1;
};

/// The NETNSID under which `observer`'s namespace sees the namespace at `path`; -1 when
/// the observer has none for it (ids are assigned lazily, e.g. when a veth links the two).
std::expected<int, std::string> netnsid_of(NetlinkClient& observer, const std::string& path);

}  // namespace netplay::netns
