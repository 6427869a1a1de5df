/// dns: one DNS query (or `count` of them) to a server, with its rcode, records and time.

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runner/step/dns.h"
#include "runner/step/services.h"
#include "runner/step/step.h"
#include "steps/net/pause.h"
#include "steps/net/resolve.h"
#include "steps/net/stats.h"

namespace netplay {
namespace {

bool answered(const DnsResponse& r) { return r.rcode != "timeout" && r.rcode != "unreachable"; }
bool good(const DnsResponse& r) { return r.rcode == "NOERROR" && !r.answers.empty(); }

std::string ms_text(double ms) { return fmt::format("{:.1f} ms", ms); }

/// "10.255.1.11, 10.255.1.12" (at most 4, then "+N more").
std::string data_list(const std::vector<DnsRecord>& answers, const std::string& type) {
  std::vector<std::string> d;
  for (const auto& a : answers)
    if (a.type == type) d.push_back(a.data);
  if (d.empty())  // e.g. only the CNAME of a chain that ends without the asked type
    for (const auto& a : answers) d.push_back(fmt::format("{} {}", a.type, a.data));
  size_t more = d.size() > 4 ? d.size() - 4 : 0;
  if (more) d.resize(4);
  std::string s = fmt::format("{}", fmt::join(d, ", "));
  if (more) s += fmt::format(" +{} more", more);
  return printable(s);
}

/// What a response says, for the one-line message (after "NAME TYPE: ").
std::string describe(const DnsResponse& r, const std::string& type, const std::string& servers,
                     Millis timeout) {
  if (r.rcode == "timeout")
    return fmt::format("no answer from {} within {}", servers, format_duration(timeout));
  if (r.rcode == "unreachable")
    return fmt::format("{} unreachable (port closed or no route: an ICMP error, no answer)",
                       servers);
  if (good(r))
    return fmt::format("{} ({}, {}, from {})", data_list(r.answers, type), r.rcode,
                       ms_text(r.query_ms), r.server);
  if (r.rcode == "NOERROR")
    return fmt::format("no records (NOERROR from {}, {})", r.server, ms_text(r.query_ms));
  return fmt::format("{} from {} ({})", r.rcode, r.server, ms_text(r.query_ms));
}

class DnsStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "dns",
        .summary = "Ask a DNS server for a name: rcode, records and query time (like dig)",
        .description =
            "Sends a DNS query for `name` of `type` over UDP (TCP when the answer is "
            "truncated) to `server`, or to the name servers of the resolv.conf that applies "
            "in the step's namespace: /etc/netns/NAME/resolv.conf when the step's netns is a "
            "plain name and that file exists (as `ip netns exec` shows it), else "
            "/etc/resolv.conf. Like dig, the name is asked as written: the resolv.conf's "
            "search domains and ndots are applied only with `search: true`. The query time "
            "runs from sending to the answer; every query ends at its `timeout`, the step's "
            "deadline or cancellation. For PTR, `name` may be an address (the in-addr.arpa or "
            "ip6.arpa name is built). With `count` > 1 the query is repeated (`interval` "
            "apart) and min/avg/percentiles of the answered queries are reported. Without an "
            "`expect:` on rcode, answers, answer_count, addresses, timeouts or rcodes, the "
            "step fails unless every query got NOERROR with at least one record; a server "
            "that never answers gives rcode `timeout`, one whose port is closed (or that has "
            "no route) `unreachable`.",
        .params = {{.name = "name",
                    .type = ValueType::kString,
                    .doc = "The name to look up (for PTR also an IPv4 or IPv6 address)",
                    .required = true},
                   {.name = "type",
                    .type = ValueType::kString,
                    .doc = "Record type",
                    .default_value = "A",
                    .choices = {"A", "AAAA", "CNAME", "SRV", "PTR", "TXT", "NS", "MX", "SOA"}},
                   {.name = "server",
                    .type = ValueType::kString,
                    .doc = "The server: IP, IP:PORT or [IPv6]:PORT. Default: the name servers "
                           "of the namespace's resolv.conf, in order"},
                   {.name = "search",
                    .type = ValueType::kBool,
                    .doc = "Apply the resolv.conf's search domains and ndots as a client's "
                           "resolver does (the first name with records wins)",
                    .default_value = false},
                   {.name = "count",
                    .type = ValueType::kInt,
                    .doc = "Number of queries",
                    .default_value = 1,
                    .min = 1,
                    .max = 1000},
                   {.name = "interval",
                    .type = ValueType::kDuration,
                    .doc = "Pause between queries",
                    .default_value = 0,
                    .min = 0,
                    .max = 60'000},
                   {.name = "timeout",
                    .type = ValueType::kDuration,
                    .doc = "How long to wait for each server's answer, per try",
                    .default_value = 2000,
                    .min = 1,
                    .max = 60'000},
                   {.name = "tries",
                    .type = ValueType::kInt,
                    .doc = "Tries per server before giving up",
                    .default_value = 1,
                    .min = 1,
                    .max = 10}},
        .facts = {{"name", "string",
                   "The name asked (the arpa name for PTR; with search, the "
                   "last name tried)"},
                  {"type", "string", "The record type asked"},
                  {"rcode", "string",
                   "NOERROR, NXDOMAIN, SERVFAIL, REFUSED, FORMERR, NOTIMP; timeout when no "
                   "answer came, unreachable when the server's port was closed (last query)"},
                  {"answers", "list",
                   "Answer records of the last query: maps name, type, ttl, "
                   "data (address, target, 'PRIO WEIGHT PORT TARGET', text)"},
                  {"answer_count", "int", "Number of answer records"},
                  {"addresses", "list", "The A and AAAA data of the answers"},
                  {"query_ms", "number", "Time from query to answer (of the last query)"},
                  {"server", "string", "The server that answered (or was last asked)"},
                  {"resolv_conf", "string", "The resolv.conf read (when no server was given)"},
                  {"queries", "int", "Number of queries sent (count > 1)"},
                  {"timeouts", "int", "Queries without an answer (count > 1)"},
                  {"rcodes", "map", "Number of queries per rcode (count > 1)"},
                  {"min_ms", "number", "Fastest answered query (count > 1)"},
                  {"avg_ms", "number", "Mean of answered queries (count > 1)"},
                  {"max_ms", "number", "Slowest answered query (count > 1)"},
                  {"p50_ms", "number", "Median of answered queries (count > 1)"},
                  {"p90_ms", "number", "90th percentile of answered queries (count > 1)"},
                  {"p99_ms", "number", "99th percentile of answered queries (count > 1)"}},
        .example =
            "- id: backend_dns\n  uses: dns\n  netns: app1\n"
            "  with: {name: backend.apps.internal, type: A}\n"
            "  expect: {addresses: {contains: 10.255.1.11}}\n"
            "- id: dns_latency\n  uses: dns\n"
            "  with: {name: backend.apps.internal, server: 169.254.0.2, count: 100}\n"
            "  expect: {p99_ms: {lt: 50}, timeouts: 0}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    const std::string name = p.str("name");
    const std::string type = p.str("type", "A");
    if (name.empty()) return StepOutput::error("name is empty");
    const int count = static_cast<int>(p.integer("count", 1));
    const Millis timeout = p.duration("timeout", Millis(2000));
    const Millis interval = p.duration("interval", Millis(0));

    StepOutput out;
    std::vector<std::string> servers;
    const bool search = p.boolean("search", false);
    std::optional<resolve::ResolvConf> conf;
    if (!p.has("server") || search) {
      auto c = resolve::read_resolv_conf(ctx);
      if (!c) return StepOutput::error(c.error());
      conf = std::move(*c);
    }
    if (p.has("server")) {
      auto s = parse_dns_server(p.str("server"));
      if (!s) return StepOutput::error(s.error());
      servers.push_back(s->to_string());
    } else {
      servers = conf->nameservers;
      out.facts["resolv_conf"] = conf->path;
      for (const auto& s : servers)
        if (auto d = parse_dns_server(s); !d)
          return StepOutput::error(fmt::format("{} in {}", d.error(), conf->path));
      out.evidence.push_back(
          fmt::format("name servers from {}: {}", conf->path, fmt::join(servers, ", ")));
    }
    std::vector<std::string> names =
        search ? resolve::search_candidates(name, *conf) : std::vector<std::string>{name};

    const std::string server_list = fmt::format("{}", fmt::join(servers, ", "));
    std::vector<double> times;
    std::map<std::string, int> rcodes;
    int timeouts = 0, bad = 0;
    DnsResponse last;
    std::string asked;
    for (int i = 0; i < count; ++i) {
      if (i > 0 && interval > Millis(0)) {
        if (!pause(ctx, interval)) break;
      }
      if (ctx.is_cancelled()) return StepOutput::error("dns: cancelled");
      if (i > 0 && ctx.expired()) break;
      double total_ms = 0;
      for (const auto& n : names) {
        DnsQuery q{.name = n,
                   .type = type,
                   .servers = servers,
                   .timeout = timeout,
                   .tries = static_cast<int>(p.integer("tries", 1))};
        auto r = ctx.resolver().query(q, ctx);
        if (!r) return StepOutput::error(r.error());
        last = std::move(*r);
        asked = type == "PTR" ? reverse_name(n) : n;
        total_ms += last.query_ms;
        if (good(last) || !answered(last)) break;
      }
      last.query_ms = total_ms;
      rcodes[last.rcode]++;
      if (answered(last)) {
        times.push_back(total_ms);
      } else {
        ++timeouts;
      }
      if (!good(last)) ++bad;
    }
    const int sent = std::accumulate(rcodes.begin(), rcodes.end(), 0,
                                     [](int a, const auto& kv) { return a + kv.second; });

    json answers = json::array(), addresses = json::array();
    for (const auto& a : last.answers) {
      answers.push_back({{"name", a.name}, {"type", a.type}, {"ttl", a.ttl}, {"data", a.data}});
      if (a.type == "A" || a.type == "AAAA") addresses.push_back(a.data);
    }
    out.facts["name"] = asked;
    out.facts["type"] = type;
    out.facts["rcode"] = last.rcode;
    out.facts["answers"] = std::move(answers);
    out.facts["answer_count"] = last.answers.size();
    out.facts["addresses"] = std::move(addresses);
    out.facts["query_ms"] = stats::round_ms(last.query_ms);
    out.facts["server"] = last.server.empty() ? servers.front() : last.server;

    std::string what = search && asked != name && !asked.empty()
                           ? fmt::format("{} -> {} {}", printable(name), printable(asked), type)
                           : fmt::format("{} {}", printable(name), type);
    if (count == 1) {
      out.message = fmt::format("{}: {}", what, describe(last, type, server_list, timeout));
    } else {
      auto st = stats::summarize(times);
      out.facts["queries"] = sent;
      out.facts["timeouts"] = timeouts;
      json rc = json::object();
      for (const auto& [k, v] : rcodes) rc[k] = v;
      out.facts["rcodes"] = std::move(rc);
      out.facts["min_ms"] = stats::round_ms(st.min);
      out.facts["avg_ms"] = stats::round_ms(st.avg);
      out.facts["max_ms"] = stats::round_ms(st.max);
      out.facts["p50_ms"] = stats::round_ms(st.p50);
      out.facts["p90_ms"] = stats::round_ms(st.p90);
      out.facts["p99_ms"] = stats::round_ms(st.p99);
      std::string counts;
      for (const auto& [k, v] : rcodes)
        counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", k, v);
      std::string spread = times.empty() ? std::string("no answers")
                                         : fmt::format("p50 {}, p99 {}, max {}", ms_text(st.p50),
                                                       ms_text(st.p99), ms_text(st.max));
      if (bad == 0) {
        out.message = fmt::format("{} x{}: {} ({}, {}, from {})", what, sent,
                                  data_list(last.answers, type), last.rcode, spread, last.server);
      } else {
        out.message =
            fmt::format("{} x{}: {}/{} without records ({}; {}); last: {}", what, sent, bad, sent,
                        counts, spread, describe(last, type, server_list, timeout));
      }
      if (sent < count)
        out.message += fmt::format(" (stopped after {} of {}: step timeout)", sent, count);
    }
    bool judged = ctx.expects("rcode") || ctx.expects("answers") || ctx.expects("answer_count") ||
                  ctx.expects("addresses") || ctx.expects("timeouts") || ctx.expects("rcodes");
    if (bad > 0 && !judged) out.status = Status::kFail;
    return out;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(DnsStep);
}  // namespace netplay
