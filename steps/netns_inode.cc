/// netns.inode: which network namespace each process or path is in, by inode, and the
/// NETNSID under which the step's namespace sees it.

#include <unistd.h>

#include <set>

#include <fmt/format.h>

#include "runner/step/netns.h"
#include "runner/step/services.h"
#include "runner/step/step.h"
#include "steps/net/netns_scan.h"

namespace netplay {
namespace {

struct Ref {
  std::string ref;   // as the user wrote it: pid:N, cell1, /var/run/docker/netns/ID, host
  std::string path;  // the nsfs file, as reported
  std::string open;  // where to open it (differs for host)
};

class NetnsInodeStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "netns.inode",
        .summary = "Network namespace identity of processes and paths (inode and NETNSID)",
        .description =
            "For each of PIDS (/proc/PID/ns/net) and PATHS (a /run/netns name, an absolute "
            "path such as /var/run/docker/netns/ID, pid:N or host), reports the namespace's "
            "inode (what `ls -l /proc/PID/ns/net` shows) and the NETNSID under which the "
            "step's namespace knows it (what `lsns -t net` and `ip link`'s link-netnsid "
            "show; absent when none is assigned). Answers \"do these containers share one "
            "namespace?\" (one pod = one namespace) with all_same, distinct and differ.\n\n"
            "A process or path that does not exist is an error naming it, never an empty "
            "answer.",
        .params = {{.name = "pids", .type = ValueType::kList,
                    .doc = "Process ids whose namespaces to compare",
                    .item_type = ValueType::kInt,
                    .min = 1,
                    .max = kMaxPid},
                   {.name = "paths", .type = ValueType::kList,
                    .doc = "Namespaces by name (/run/netns), path, pid:N or host",
                    .item_type = ValueType::kNetns}},
        .facts = {{"namespaces", "list",
                   "One {ref, path, inode, netnsid} per pid/path, in the order given (pids "
                   "first); netnsid is absent when the step's namespace has none for it"},
                  {"inodes", "list", "The inodes, in the same order"},
                  {"all_same", "bool", "Whether every one is the same namespace"},
                  {"distinct", "int", "Number of different namespaces"},
                  {"differ", "list", "Refs whose namespace differs from the first one's"}},
        .one_of = {{"pids", "paths"}},
        .privileges = "root to read other users' /proc/PID/ns/net",
        .example = "- id: same_pod\n  uses: netns.inode\n"
                   "  with: {pids: [\"{{ inputs.app_pid }}\", \"{{ inputs.sidecar_pid }}\"]}\n"
                   "  expect: {all_same: true}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    std::vector<Ref> refs;
    const json& pids = p.raw("pids");
    if (pids.is_array()) {
      for (const auto& v : pids) {
        if (!v.is_number_integer() || v.get<long long>() <= 0)
          return StepOutput::error(fmt::format("pids: {} is not a process id", v.dump()));
        long long pid = v.get<long long>();
        std::string path = fmt::format("/proc/{}/ns/net", pid);
        refs.push_back({fmt::format("pid:{}", pid), path, path});
      }
    }
    for (const auto& spec : p.strings("paths")) {
      auto path = netns_path(spec);
      if (!path) return StepOutput::error(path.error());
      if (path->empty())
        refs.push_back({spec, fmt::format("/proc/{}/ns/net", ::getpid()), netns::host_path()});
      else
        refs.push_back({spec, *path, *path});
    }
    if (refs.empty()) return StepOutput::error("give pids and/or paths");

    auto client = ctx.netlink().open(ctx);
    if (!client) return StepOutput::error(client.error());

    StepOutput out;
    json list = json::array(), inodes = json::array(), differ = json::array();
    std::set<unsigned long> distinct;
    for (const auto& r : refs) {
      auto fd = netns::Fd::open(r.open);
      if (!fd) {
        if (r.ref.starts_with("pid:") && ::access(r.path.substr(0, r.path.size() - 7).c_str(), F_OK) != 0)
          return StepOutput::error(fmt::format("process {} not found", r.ref.substr(4)));
        return StepOutput::error(fmt::format("network namespace '{}': {}", r.ref, fd.error()));
      }
      auto ino = netns_inode(r.open);
      if (!ino) return StepOutput::error(fmt::format("network namespace '{}': {}", r.ref, ino.error()));
      // RTM_GETNSID refuses an fd that is not a network namespace, so this also tells a
      // stale /run/netns file from a live namespace.
      auto id = (*client)->netnsid_of_fd(fd->get());
      if (!id)
        return StepOutput::error(
            fmt::format("'{}' ({}) is not a usable network namespace: {}", r.ref, r.path, id.error()));
      json e = {{"ref", r.ref}, {"path", r.path}, {"inode", *ino}};
      if (*id >= 0) e["netnsid"] = *id;
      list.push_back(std::move(e));
      inodes.push_back(*ino);
      if (*ino != inodes.front().get<unsigned long>()) differ.push_back(r.ref);
      distinct.insert(*ino);
      out.evidence.push_back(fmt::format("{}: {} -> net:[{}]{}", r.ref, r.path, *ino,
                                         *id >= 0 ? fmt::format(" netnsid {}", *id) : ""));
    }
    bool same = distinct.size() == 1;
    out.facts["namespaces"] = std::move(list);
    out.facts["inodes"] = std::move(inodes);
    out.facts["all_same"] = same;
    out.facts["distinct"] = distinct.size();
    out.facts["differ"] = differ;
    out.message = same ? fmt::format("all {} in one namespace (net:[{}])", refs.size(), *distinct.begin())
                       : fmt::format("{} namespaces among {}; differ from {}: {}", distinct.size(),
                                     refs.size(), refs.front().ref,
                                     fmt::join(differ.get<std::vector<std::string>>(), ", "));
    return out;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(NetnsInodeStep);
}  // namespace netplay
