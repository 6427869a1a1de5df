#pragma once
/// Visiting many network namespaces, as `veth.peer {all: true}` does on a node with
/// hundreds of containers: each visit enters a namespace (one setns), asks the kernel
/// through the step's services, and the thread moves on to the next namespace.
///
/// The work is shared by the calling thread and a small pool of threads common to the whole
/// process, so however many steps walk at once, the threads stay few. Every wait is bounded
/// by the step's deadline and cancellation: visits get the step's context (its netlink
/// calls end with them), no visit starts once the step is cancelled or out of time, and the
/// caller waits only for visits already running.

#include <functional>
#include <string>
#include <vector>

#include "runner/step/step.h"

namespace netplay::netns {

/// Work in one namespace: runs on a thread that has entered paths[index], with the step's
/// context. Visits of different indexes may run at the same time. Return false to end the
/// walk (visits already running finish their namespace).
using Visit = std::function<bool(size_t index, const StepContext& ctx)>;
/// paths[index] could not be entered (`error` says why). Return false to end the walk.
using EnterFailed = std::function<bool(size_t index, const std::string& error)>;

/// Visits every path. Returns true when every namespace was visited (or reported to
/// `failed`), false when the walk ended early: the step was cancelled, its deadline passed,
/// or a callback returned false. Either way no visit is running any more when this returns,
/// and the calling thread is back in its own namespace (or poisoned: see NetnsScope).
bool walk(const std::vector<std::string>& paths, const Visit& visit, const EnterFailed& failed,
          const StepContext& ctx);

}  // namespace netplay::netns
