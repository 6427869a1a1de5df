/// http: one HTTP(S) request (or `count` of them) with its status and timing split.

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runner/step/http.h"
#include "runner/step/services.h"
#include "runner/step/step.h"
#include "steps/net/pause.h"
#include "steps/net/resolve.h"
#include "steps/net/stats.h"

namespace netplay {
namespace {

constexpr size_t kBodyFactBytes = 4096;

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

struct Pin {
  std::string host;
  int port = 0;
};

/// A `resolve` entry, "HOST:PORT:ADDRESS[,ADDRESS...]" (an IPv6 address in [ ]).
std::expected<Pin, std::string> parse_pin(const std::string& s) {
  auto bad = [&](std::string_view why) -> std::expected<Pin, std::string> {
    return std::unexpected(
        fmt::format("bad resolve entry '{}': {} (expected HOST:PORT:ADDRESS)", printable(s), why));
  };
  size_t a = s.find(':');
  if (a == std::string::npos || a == 0) return bad("no host");
  size_t b = s.find(':', a + 1);
  if (b == std::string::npos) return bad("no address");
  Pin pin{.host = s.substr(0, a)};
  std::string_view port(s.data() + a + 1, b - a - 1);
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), pin.port);
  if (ec != std::errc() || end != port.data() + port.size() || pin.port < 1 || pin.port > 65535)
    return bad("the port must be a number from 1 to 65535");
  std::string addrs = s.substr(b + 1);
  if (addrs.empty()) return bad("no address");
  size_t start = 0;
  while (start <= addrs.size()) {
    size_t comma = addrs.find(',', start);
    if (comma == std::string::npos) comma = addrs.size();
    std::string one = addrs.substr(start, comma - start);
    if (one.size() > 2 && one.front() == '[' && one.back() == ']')
      one = one.substr(1, one.size() - 2);
    if (!is_ip(one)) return bad(fmt::format("'{}' is not an IP address", printable(one)));
    start = comma + 1;
  }
  return pin;
}

std::string ms(double v) { return fmt::format("{:.1f}", v); }

bool failed(const HttpResponse& r) {
  return !r.error_kind.empty() || r.status >= 400 || r.status == 0;
}

/// What happened to one request, for the one-line message (after "URL: ").
std::string describe(const HttpResponse& r, Millis timeout) {
  if (r.error_kind == "timeout") {
    std::string progress =
        r.time_first_byte_ms > 0
            ? fmt::format("first byte at {} ms, then stalled", ms(r.time_first_byte_ms))
        : r.time_connect_ms > 0
            ? fmt::format("connected in {} ms, no first byte", ms(r.time_connect_ms))
            : std::string("not connected");
    return fmt::format("timed out after {} ({})", format_duration(timeout), progress);
  }
  std::string peer = r.remote_ip.empty() ? "" : fmt::format(" ({}:{})", r.remote_ip, r.remote_port);
  if (r.error_kind == "refused") return "connection refused" + peer;
  if (r.error_kind == "resolve") return r.error;
  if (!r.error_kind.empty()) return fmt::format("{} error: {}", r.error_kind, printable(r.error));
  std::string status = r.reason.empty() ? fmt::format("{}", r.status)
                                        : fmt::format("{} {}", r.status, printable(r.reason));
  std::string tls = r.time_tls_ms > 0 ? fmt::format(", tls {}", ms(r.time_tls_ms)) : "";
  return fmt::format("{} in {} ms (dns {}, connect {}{}, first byte {})", status,
                     ms(r.time_total_ms), ms(r.time_namelookup_ms), ms(r.time_connect_ms), tls,
                     ms(r.time_first_byte_ms));
}

class HttpStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "http",
        .summary = "An HTTP(S) request: status, body check and timing split (like curl -w)",
        .description =
            "Sends `method` to `url` (http or https only) with libcurl and reports the "
            "status, the body size (the first 4 KiB as `body`), whether the body contains "
            "`body_contains`, the peer address and the timing split. Times are cumulative from "
            "the start, as curl's: name lookup done, TCP connected, TLS done (0 for http), "
            "first byte, total. A host name that no `resolve` entry pins is resolved the way "
            "a program in the step's namespace would (hosts file, then the namespace's "
            "resolv.conf: /etc/netns/NAME/... for a named netns) and pinned for curl; that "
            "lookup is time_namelookup_ms and the later times include it. Without an "
            "`expect:` on status, error or failures, the step fails when no response came "
            "(timeout, refused, name not resolved, TLS) or the status is 400 or more, and "
            "when `body_contains` is given and not found (unless expect judges body_contains). "
            "Each request ends at its `timeout`, the step's deadline or cancellation. With "
            "`count` > 1 the request is repeated and percentiles of the total time reported.",
        .params = {{.name = "url",
                    .type = ValueType::kString,
                    .doc = "http:// or https:// URL",
                    .required = true},
                   {.name = "method",
                    .type = ValueType::kString,
                    .doc = "Request method",
                    .default_value = "GET",
                    .choices = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}},
                   {.name = "headers", .type = ValueType::kMap, .doc = "Request headers"},
                   {.name = "body", .type = ValueType::kString, .doc = "Request body"},
                   {.name = "timeout",
                    .type = ValueType::kDuration,
                    .doc = "Per request, name lookup included",
                    .default_value = 5000,
                    .min = 1,
                    .max = 300'000},
                   {.name = "count",
                    .type = ValueType::kInt,
                    .doc = "Number of requests",
                    .default_value = 1,
                    .min = 1,
                    .max = 1000},
                   {.name = "interval",
                    .type = ValueType::kDuration,
                    .doc = "Pause between requests",
                    .default_value = 0,
                    .min = 0,
                    .max = 60'000},
                   {.name = "resolve",
                    .type = ValueType::kList,
                    .doc = "Pins as curl --resolve: HOST:PORT:ADDRESS (IPv6 in [ ])"},
                   {.name = "tls_verify",
                    .type = ValueType::kBool,
                    .doc = "Verify the server's certificate and name",
                    .default_value = true},
                   {.name = "ca_file",
                    .type = ValueType::kString,
                    .doc = "CA bundle (PEM) to verify the server with"},
                   {.name = "follow_redirects",
                    .type = ValueType::kBool,
                    .doc = "Follow 3xx redirects (at most 10, http and https only)",
                    .default_value = false},
                   {.name = "body_contains",
                    .type = ValueType::kString,
                    .doc = "Text to look for in the kept body (fact body_contains)"},
                   {.name = "max_body",
                    .type = ValueType::kInt,
                    .doc = "Bytes of body kept for body_contains (all are counted)",
                    .default_value = 1 << 20,
                    .min = 0,
                    .max = 16 << 20}},
        .facts = {{"url", "string", "The URL requested"},
                  {"status", "int", "HTTP status of the (last) response; 0 when none came"},
                  {"reason", "string", "The status line's reason phrase (HTTP/1)"},
                  {"error", "string",
                   "Why no response came: timeout, resolve, refused, connect, tls, protocol, "
                   "redirects, other; absent when one came"},
                  {"error_message", "string", "The error in words"},
                  {"time_namelookup_ms", "number", "Name lookup done"},
                  {"time_connect_ms", "number", "TCP connected (cumulative)"},
                  {"time_tls_ms", "number", "TLS handshake done (cumulative; 0 for http)"},
                  {"time_first_byte_ms", "number", "First response byte (cumulative)"},
                  {"time_total_ms", "number", "Whole request (cumulative)"},
                  {"body_bytes", "int", "Body bytes received"},
                  {"body", "string", "The first 4 KiB of the body (invalid UTF-8 replaced)"},
                  {"body_contains", "bool", "The body holds `body_contains` (when given)"},
                  {"remote_ip", "string", "The address connected to"},
                  {"remote_port", "int", "The port connected to"},
                  {"requests", "int", "Requests sent (count > 1)"},
                  {"failures", "int",
                   "Requests without a response or with status >= 400 "
                   "(count > 1)"},
                  {"time_total_min_ms", "number", "Fastest total time (count > 1)"},
                  {"time_total_avg_ms", "number", "Mean total time (count > 1)"},
                  {"time_total_p50_ms", "number", "Median total time (count > 1)"},
                  {"time_total_p90_ms", "number", "90th percentile total time (count > 1)"},
                  {"time_total_p99_ms", "number", "99th percentile total time (count > 1)"},
                  {"time_total_max_ms", "number", "Slowest total time (count > 1)"}},
        .example =
            "- id: backend_health\n  uses: http\n  netns: app1\n"
            "  with: {url: 'http://backend.apps.internal:8080/health', timeout: 2s,\n"
            "         body_contains: ok}\n"
            "- id: not_found\n  uses: http\n"
            "  with: {url: 'https://api.example/v1/x', resolve: ['api.example:443:10.0.0.8']}\n"
            "  expect: {status: 404}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    const std::string url = p.str("url");
    auto parsed = parse_http_url(url);
    if (!parsed) return StepOutput::error(parsed.error());
    HttpRequest req;
    req.url = url;
    req.method = p.str("method", "GET");
    if (p.has("headers"))
      for (const auto& [k, v] : p.raw("headers").items())
        req.headers.emplace_back(k, v.is_string() ? v.get<std::string>() : v.dump());
    req.body = p.str("body");
    req.verify_tls = p.boolean("tls_verify", true);
    req.ca_file = p.str("ca_file");
    req.follow_redirects = p.boolean("follow_redirects", false);
    req.max_body = static_cast<size_t>(p.integer("max_body", 1 << 20));
    const Millis timeout = p.duration("timeout", Millis(5000));
    bool pinned = is_ip(parsed->host);
    for (const auto& entry : p.strings("resolve")) {
      auto pin = parse_pin(entry);
      if (!pin) return StepOutput::error(pin.error());
      if (iequal(pin->host, parsed->host) && pin->port == parsed->port) pinned = true;
      req.resolve.push_back(entry);
    }
    const int count = static_cast<int>(p.integer("count", 1));
    const Millis interval = p.duration("interval", Millis(0));

    StepOutput out;
    std::vector<double> totals;
    int failures = 0, sent = 0;
    HttpResponse last;
    Millis last_budget = timeout;  // what the last request had: the step's deadline may cut it
    for (int i = 0; i < count; ++i) {
      if (i > 0 && interval > Millis(0) && !pause(ctx, interval)) break;
      if (ctx.is_cancelled()) return StepOutput::error("http: cancelled");
      if (i > 0 && ctx.expired()) break;
      HttpRequest r = req;
      double dns_ms = 0;
      if (!pinned) {
        // curl would ask getaddrinfo, which reads the host's /etc/resolv.conf: resolve in
        // the namespace's way instead, timed, and pin the result.
        const Clock::time_point t0 = ctx.clock().now();
        auto addrs = resolve::resolve_host(
            ctx, parsed->host, AF_UNSPEC,
            {.timeout = std::min(timeout, Millis(2000)), .tries = 1, .search = true});
        dns_ms = std::chrono::duration<double, std::milli>(ctx.clock().now() - t0).count();
        if (!addrs) {
          if (ctx.is_cancelled()) return StepOutput::error("http: cancelled");
          ++sent;
          ++failures;
          last = HttpResponse{.time_namelookup_ms = dns_ms,
                              .time_total_ms = dns_ms,
                              .error_kind = "resolve",
                              .error = addrs.error()};
          continue;
        }
        std::vector<std::string> bracketed;
        for (const auto& a : *addrs)
          bracketed.push_back(a.find(':') != std::string::npos ? "[" + a + "]" : a);
        r.resolve.push_back(
            fmt::format("{}:{}:{}", parsed->host, parsed->port, fmt::join(bracketed, ",")));
        r.timeout =
            std::max(Millis(1), timeout - std::chrono::duration_cast<Millis>(
                                              std::chrono::duration<double, std::milli>(dns_ms)));
      } else {
        r.timeout = timeout;
      }
      last_budget =
          Millis(std::round((std::min(r.timeout, ctx.remaining()) + Millis(dns_ms)).count()));
      auto resp = ctx.http().fetch(r, ctx);
      if (!resp) return StepOutput::error(resp.error());
      ++sent;
      last = std::move(*resp);
      if (dns_ms > 0) {
        last.time_namelookup_ms += dns_ms;
        last.time_connect_ms += last.time_connect_ms > 0 ? dns_ms : 0;
        last.time_tls_ms += last.time_tls_ms > 0 ? dns_ms : 0;
        last.time_first_byte_ms += last.time_first_byte_ms > 0 ? dns_ms : 0;
        last.time_total_ms += dns_ms;
      }
      if (failed(last)) ++failures;
      if (last.status > 0) totals.push_back(last.time_total_ms);
    }

    out.facts["url"] = valid_utf8(url);
    out.facts["status"] = last.status;
    if (!last.reason.empty()) out.facts["reason"] = valid_utf8(last.reason);
    if (!last.error_kind.empty()) {
      out.facts["error"] = last.error_kind;
      out.facts["error_message"] = valid_utf8(last.error);
    }
    out.facts["time_namelookup_ms"] = stats::round_ms(last.time_namelookup_ms);
    out.facts["time_connect_ms"] = stats::round_ms(last.time_connect_ms);
    out.facts["time_tls_ms"] = stats::round_ms(last.time_tls_ms);
    out.facts["time_first_byte_ms"] = stats::round_ms(last.time_first_byte_ms);
    out.facts["time_total_ms"] = stats::round_ms(last.time_total_ms);
    out.facts["body_bytes"] = last.body_bytes;
    out.facts["body"] = valid_utf8(std::string_view(last.body).substr(0, kBodyFactBytes));
    bool contains = true;
    if (p.has("body_contains")) {
      contains = last.body.find(p.str("body_contains")) != std::string::npos;
      out.facts["body_contains"] = contains;
    }
    if (!last.remote_ip.empty()) out.facts["remote_ip"] = last.remote_ip;
    if (last.remote_port > 0) out.facts["remote_port"] = last.remote_port;

    const std::string target = printable(url);
    if (count == 1) {
      out.message = fmt::format("{}: {}", target, describe(last, last_budget));
    } else {
      auto st = stats::summarize(totals);
      out.facts["requests"] = sent;
      out.facts["failures"] = failures;
      out.facts["time_total_min_ms"] = stats::round_ms(st.min);
      out.facts["time_total_avg_ms"] = stats::round_ms(st.avg);
      out.facts["time_total_p50_ms"] = stats::round_ms(st.p50);
      out.facts["time_total_p90_ms"] = stats::round_ms(st.p90);
      out.facts["time_total_p99_ms"] = stats::round_ms(st.p99);
      out.facts["time_total_max_ms"] = stats::round_ms(st.max);
      std::string spread = totals.empty() ? std::string("no responses")
                                          : fmt::format("total p50 {} ms, p99 {} ms, max {} ms",
                                                        ms(st.p50), ms(st.p99), ms(st.max));
      out.message = fmt::format("{} x{}: {} failed, {}; last: {}", target, sent, failures, spread,
                                describe(last, last_budget));
      if (sent < count)
        out.message += fmt::format(" (stopped after {} of {}: step timeout)", sent, count);
    }
    bool judged = ctx.expects("status") || ctx.expects("error") || ctx.expects("failures");
    if (failures > 0 && !judged) {
      out.status = Status::kFail;
    } else if (!contains && !ctx.expects("body_contains") && !failed(last)) {
      out.status = Status::kFail;
      out.message +=
          fmt::format("; the body does not contain '{}'", printable(p.str("body_contains")));
    }
    return out;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(HttpStep);
}  // namespace netplay
