#pragma once
/// Name resolution the way a program inside the step's network namespace sees it:
/// `ip netns exec NAME` bind-mounts /etc/netns/NAME/resolv.conf and /etc/netns/NAME/hosts
/// over the /etc ones, so a step running in namespace NAME reads those when they exist.
/// Names are resolved through ctx.resolver() (c-ares, timed, bounded by the step's deadline),
/// never by getaddrinfo, which would read the host's /etc/resolv.conf.

#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "runner/base/core.h"
#include "runner/step/step.h"

namespace netplay::resolve {

/// What is read of a resolv.conf.
struct ResolvConf {
  std::string path;                      // the file read
  std::vector<std::string> nameservers;  // as written ("10.0.0.53", "fd00::53")
  std::vector<std::string> search;       // search (or domain) list
  int ndots = 1;                         // options ndots:N
};

/// The resolv.conf that applies in the step's namespace: ETC/netns/NAME/resolv.conf when
/// ctx.netns is a plain name (not host, a path or pid:N) and that file exists, else
/// ETC/resolv.conf. `etc` is "/etc" but for tests.
std::string resolv_conf_path(const StepContext& ctx, const std::string& etc = "/etc");
/// The hosts file that applies in the step's namespace, chosen the same way.
std::string hosts_path(const StepContext& ctx, const std::string& etc = "/etc");

/// Parses resolv.conf text (nameserver, search, domain, options ndots:N; the last search or
/// domain line wins, as in glibc). No nameserver line: 127.0.0.1, as glibc assumes.
ResolvConf parse_resolv_conf(std::string_view text);
/// Reads and parses the resolv.conf that applies; the error names the file.
std::expected<ResolvConf, std::string> read_resolv_conf(const StepContext& ctx,
                                                        const std::string& etc = "/etc");
/// Just its name servers.
std::expected<std::vector<std::string>, std::string> nameservers(const StepContext& ctx,
                                                                 const std::string& etc = "/etc");

/// The names to try for `name`, in order, as glibc's resolver does: a name ending in '.' is
/// tried as is (without the dot) only; one with at least ndots dots first as is, then with
/// each search domain; a shorter one with each search domain first, then as is.
std::vector<std::string> search_candidates(const std::string& name, const ResolvConf& conf);

/// Addresses of `name` in hosts-file text (case-insensitive, aliases included), of `family`
/// (AF_UNSPEC, AF_INET, AF_INET6), in file order without repeats.
std::vector<std::string> hosts_lookup(std::string_view hosts_text, std::string_view name,
                                      int family);

struct ResolveOptions {
  Millis timeout{2000};  // per DNS query (bounded by the step's deadline)
  int tries = 1;
  bool search = true;  // apply search/ndots from the resolv.conf, as getaddrinfo would
  std::string etc = "/etc";
};

/// The addresses of `host` as a client in the step's namespace would get them: a numeric
/// address is returned as is; then the namespace's hosts file; then A (and AAAA) queries to
/// the namespace's name servers through ctx.resolver(). `family`: AF_UNSPEC (IPv4 first),
/// AF_INET or AF_INET6. Errors are one line: "cannot resolve 'x.invalid': NXDOMAIN from
/// 10.0.0.53", "cannot resolve 'x': no answer from 10.0.0.53 within 2s".
std::expected<std::vector<std::string>, std::string> resolve_host(StepContext& ctx,
                                                                  const std::string& host,
                                                                  int family,
                                                                  const ResolveOptions& opts = {});

}  // namespace netplay::resolve
