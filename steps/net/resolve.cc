#include "steps/net/resolve.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runner/base/read_file.h"
#include "runner/step/dns.h"

namespace netplay::resolve {
namespace {

constexpr size_t kMaxConfBytes = 1u << 20;

/// The namespace name `ip netns exec` would use for ctx.netns, or "" when it is the host,
/// a path or a pid.
std::string plain_netns_name(const StepContext& ctx) {
  const std::string& n = ctx.netns;
  if (n.empty() || n == "host" || n.starts_with("pid:") || n.find('/') != std::string::npos ||
      n == "." || n == "..")
    return "";
  return n;
}

std::string per_netns_file(const StepContext& ctx, const std::string& etc,
                           const std::string& file) {
  std::string name = plain_netns_name(ctx);
  if (!name.empty()) {
    std::string p = fmt::format("{}/netns/{}/{}", etc, name, file);
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) return p;
  }
  return fmt::format("{}/{}", etc, file);
}

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    size_t j = i;
    while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

/// Lines of `text` without comments ('#' or ';' to the end of the line).
template <class F>
void for_each_line(std::string_view text, F&& f) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    size_t hash = line.find_first_of("#;");
    if (hash != std::string_view::npos) line = line.substr(0, hash);
    f(line);
    start = end + 1;
  }
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

int family_of(const std::string& ip) {
  unsigned char buf[16];
  if (::inet_pton(AF_INET, ip.c_str(), buf) == 1) return AF_INET;
  if (::inet_pton(AF_INET6, ip.c_str(), buf) == 1) return AF_INET6;
  return AF_UNSPEC;
}

}  // namespace

std::string resolv_conf_path(const StepContext& ctx, const std::string& etc) {
  return per_netns_file(ctx, etc, "resolv.conf");
}

std::string hosts_path(const StepContext& ctx, const std::string& etc) {
  return per_netns_file(ctx, etc, "hosts");
}

ResolvConf parse_resolv_conf(std::string_view text) {
  ResolvConf c;
  for_each_line(text, [&](std::string_view line) {
    auto w = words(line);
    if (w.empty()) return;
    if (w[0] == "nameserver" && w.size() >= 2) {
      c.nameservers.emplace_back(w[1]);
    } else if ((w[0] == "search" || w[0] == "domain") && w.size() >= 2) {
      c.search.clear();
      for (size_t i = 1; i < w.size(); ++i) {
        std::string d(w[i]);
        while (!d.empty() && d.back() == '.') d.pop_back();
        if (!d.empty()) c.search.push_back(d);
      }
    } else if (w[0] == "options") {
      for (size_t i = 1; i < w.size(); ++i) {
        if (!w[i].starts_with("ndots:")) continue;
        std::string v(w[i].substr(6));
        if (!v.empty() && std::all_of(v.begin(), v.end(), ::isdigit) && v.size() < 4)
          c.ndots = std::min(15, std::stoi(v));
      }
    }
  });
  if (c.nameservers.empty()) c.nameservers.emplace_back("127.0.0.1");
  return c;
}

std::expected<ResolvConf, std::string> read_resolv_conf(const StepContext& ctx,
                                                        const std::string& etc) {
  std::string path = resolv_conf_path(ctx, etc);
  auto text = read_file_bounded(path, {.max_bytes = kMaxConfBytes});
  if (!text) return std::unexpected(fmt::format("cannot read {}: {}", path, text.error()));
  ResolvConf c = parse_resolv_conf(*text);
  c.path = path;
  return c;
}

std::expected<std::vector<std::string>, std::string> nameservers(const StepContext& ctx,
                                                                 const std::string& etc) {
  auto c = read_resolv_conf(ctx, etc);
  if (!c) return std::unexpected(c.error());
  return c->nameservers;
}

std::vector<std::string> search_candidates(const std::string& name, const ResolvConf& conf) {
  if (name.ends_with('.')) return {name.substr(0, name.size() - 1)};
  std::vector<std::string> with_search;
  for (const auto& d : conf.search) with_search.push_back(name + "." + d);
  auto dots = static_cast<int>(std::count(name.begin(), name.end(), '.'));
  std::vector<std::string> out;
  if (dots >= conf.ndots) {
    out.push_back(name);
    out.insert(out.end(), with_search.begin(), with_search.end());
  } else {
    out = with_search;
    out.push_back(name);
  }
  return out;
}

std::vector<std::string> hosts_lookup(std::string_view hosts_text, std::string_view name,
                                      int family) {
  std::vector<std::string> out;
  for_each_line(hosts_text, [&](std::string_view line) {
    auto w = words(line);
    if (w.size() < 2) return;
    std::string addr(w[0]);
    size_t zone = addr.find('%');
    if (zone != std::string::npos) addr.resize(zone);
    int f = family_of(addr);
    if (f == AF_UNSPEC || (family != AF_UNSPEC && f != family)) return;
    for (size_t i = 1; i < w.size(); ++i) {
      if (iequal(w[i], name)) {
        if (std::find(out.begin(), out.end(), addr) == out.end()) out.push_back(addr);
        return;
      }
    }
  });
  if (family == AF_UNSPEC)  // IPv4 first, as a client asking A then AAAA gets them
    std::stable_partition(out.begin(), out.end(),
                          [](const std::string& a) { return family_of(a) == AF_INET; });
  return out;
}

std::expected<std::vector<std::string>, std::string> resolve_host(StepContext& ctx,
                                                                  const std::string& host,
                                                                  int family,
                                                                  const ResolveOptions& opts) {
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  auto fail = [&](const std::string& why) -> std::expected<std::vector<std::string>, std::string> {
    return std::unexpected(fmt::format("cannot resolve '{}': {}", printable(host), why));
  };
  if (h.empty()) return fail("empty name");
  if (int f = family_of(h); f != AF_UNSPEC) {
    if (family != AF_UNSPEC && f != family)
      return fail(family == AF_INET ? "an IPv6 address where IPv4 is needed"
                                    : "an IPv4 address where IPv6 is needed");
    return std::vector<std::string>{h};
  }
  if (auto text = read_file_bounded(hosts_path(ctx, opts.etc), {.max_bytes = kMaxConfBytes})) {
    auto found = hosts_lookup(*text, h.ends_with('.') ? h.substr(0, h.size() - 1) : h, family);
    if (!found.empty()) return found;
  }
  auto conf = read_resolv_conf(ctx, opts.etc);
  if (!conf) return fail(conf.error());
  std::vector<std::string> types;
  if (family != AF_INET6) types.push_back("A");
  if (family != AF_INET) types.push_back("AAAA");
  std::vector<std::string> names =
      opts.search ? search_candidates(h, *conf)
                  : std::vector<std::string>{h.ends_with('.') ? h.substr(0, h.size() - 1) : h};
  std::string first_error;
  for (const auto& name : names) {
    std::vector<std::string> addrs;
    std::string error;
    for (const auto& type : types) {
      DnsQuery q{.name = name,
                 .type = type,
                 .servers = conf->nameservers,
                 .timeout = std::min(opts.timeout, ctx.remaining()),
                 .tries = opts.tries};
      auto r = ctx.resolver().query(q, ctx);
      if (!r) return fail(r.error());
      if (r->rcode == "timeout")
        return fail(fmt::format("no answer from {} within {}", fmt::join(conf->nameservers, ", "),
                                format_duration(opts.timeout)));
      if (r->rcode == "unreachable")
        return fail(fmt::format("{} unreachable", fmt::join(conf->nameservers, ", ")));
      if (r->rcode != "NOERROR") {
        error = fmt::format("{} from {}", r->rcode, r->server);
        continue;
      }
      for (const auto& rec : r->answers)
        if (rec.type == type && std::find(addrs.begin(), addrs.end(), rec.data) == addrs.end())
          addrs.push_back(rec.data);
      if (error.empty() && addrs.empty())
        error = fmt::format("no {} record (NOERROR from {})", fmt::join(types, "/"), r->server);
    }
    if (!addrs.empty()) return addrs;
    if (first_error.empty() || name == h) first_error = error;
  }
  return fail(first_error);
}

}  // namespace netplay::resolve
