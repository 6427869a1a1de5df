#pragma once
/// Network namespaces: a step runs on a worker thread that has entered the namespace its
/// `netns:` names. Entering and leaving happen on that thread only (setns(2) is per thread).

#include <expected>
#include <string>

namespace netplay {

/// "host" -> "" (no switch); "NAME" -> /run/netns/NAME; "/abs/path" as is;
/// "pid:N" -> /proc/N/ns/net. Error for malformed specs.
std::expected<std::string, std::string> netns_path(const std::string& spec);

/// Enters `spec` on the calling thread and returns there on destruction.
/// If returning fails the thread is poisoned: home_ok() turns false and the worker
/// that owns the thread must retire it.
class NetnsScope {
 public:
  static std::expected<NetnsScope, std::string> enter(const std::string& spec);
  /// A scope that has not moved yet: move_to() moves it, leaving returns.
  static NetnsScope here() { return NetnsScope(); }
  NetnsScope(NetnsScope&& o) noexcept;
  NetnsScope& operator=(NetnsScope&&) = delete;
  ~NetnsScope();
  /// Moves the thread on to the namespace at `path`; leaving still returns to where the
  /// thread was before this scope moved it (one setns per namespace when walking many).
  std::expected<void, std::string> move_to(const std::string& path);
  /// Returns to the thread's original namespace now; false if that failed.
  bool leave();

 private:
  NetnsScope() = default;
  std::expected<void, std::string> move_to_as(const std::string& spec, const std::string& path);
  int home_fd_ = -1;  // -1: nothing to restore
};

/// False once this thread failed to return to its original namespace.
bool thread_netns_home_ok();

/// Inode of a namespace file (stat -L), or an error naming the path.
std::expected<unsigned long, std::string> netns_inode(const std::string& path);

}  // namespace netplay
