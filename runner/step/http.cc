#include "runner/step/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <memory>
#include <mutex>

#include <fmt/format.h>

#include "runner/step/services.h"

namespace netplay {
namespace {

struct CurlFree {
  void operator()(char* p) const { curl_free(p); }
};
using CurlString = std::unique_ptr<char, CurlFree>;

struct UrlFree {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::expected<HttpUrl, std::string> parse_http_url(const std::string& url) {
  if (url.find("://") == std::string::npos)
    return std::unexpected(
        fmt::format("bad URL '{}': expected http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH",
                    printable(url)));
  std::unique_ptr<CURLU, UrlFree> u(curl_url());
  if (!u) return std::unexpected("http: out of memory");
  CURLUcode rc = curl_url_set(u.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME);
  if (rc != CURLUE_OK)
    return std::unexpected(fmt::format("bad URL '{}': {}", printable(url), curl_url_strerror(rc)));
  HttpUrl out;
  char* part = nullptr;
  if (curl_url_get(u.get(), CURLUPART_SCHEME, &part, 0) == CURLUE_OK) {
    CurlString s(part);
    out.scheme = lower(s.get());
  }
  if (out.scheme != "http" && out.scheme != "https")
    return std::unexpected(fmt::format("unsupported scheme '{}' in '{}' (http and https only)",
                                       printable(out.scheme), printable(url)));
  part = nullptr;
  if (curl_url_get(u.get(), CURLUPART_HOST, &part, 0) != CURLUE_OK || !part || !*part) {
    if (part) curl_free(part);
    return std::unexpected(fmt::format("bad URL '{}': no host", printable(url)));
  }
  {
    CurlString h(part);
    out.host = h.get();
  }
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
    size_t zone = out.host.find('%');
    if (zone != std::string::npos) out.host.resize(zone);
  }
  part = nullptr;
  if (curl_url_get(u.get(), CURLUPART_PORT, &part, CURLU_DEFAULT_PORT) == CURLUE_OK && part) {
    CurlString p(part);
    out.port = std::atoi(p.get());
  }
  if (out.port < 1 || out.port > 65535)
    return std::unexpected(fmt::format("bad URL '{}': bad port", printable(url)));
  return out;
}

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Sink {
  size_t max = 0;
  size_t bytes = 0;
  std::string body;
  std::string status_line;
};

size_t on_body(char* p, size_t size, size_t n, void* ud) {
  auto* s = static_cast<Sink*>(ud);
  size_t len = size * n;
  s->bytes += len;
  if (s->body.size() < s->max) s->body.append(p, std::min(len, s->max - s->body.size()));
  return len;
}

size_t on_header(char* p, size_t size, size_t n, void* ud) {
  auto* s = static_cast<Sink*>(ud);
  size_t len = size * n;
  std::string_view line(p, len);
  if (line.starts_with("HTTP/")) {  // each response of a redirect chain starts anew
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    s->status_line = std::string(line);
    s->bytes = 0;
    s->body.clear();
  }
  return len;
}

/// Also ends a transfer that is busy inside curl (not waiting in the poll loop) once the step
/// is cancelled.
int on_progress(void* ud, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const StepContext*>(ud)->is_cancelled() ? 1 : 0;
}

std::string reason_of(const std::string& status_line) {
  // "HTTP/1.1 200 OK" -> "OK"; HTTP/2 sends no reason.
  size_t a = status_line.find(' ');
  if (a == std::string::npos) return "";
  size_t b = status_line.find(' ', a + 1);
  if (b == std::string::npos) return "";
  return valid_utf8(status_line.substr(b + 1));
}

std::string error_kind(CURLcode rc, long os_errno) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return "resolve";
    case CURLE_COULDNT_CONNECT:
      return os_errno == ECONNREFUSED ? "refused" : "connect";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
      return "tls";
    case CURLE_ABORTED_BY_CALLBACK:
      return "cancelled";
    case CURLE_TOO_MANY_REDIRECTS:
      return "redirects";
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_HTTP3:
      return "protocol";
    default:
      return "other";
  }
}

double info_ms(CURL* h, CURLINFO what) {
  curl_off_t us = 0;
  if (curl_easy_getinfo(h, what, &us) != CURLE_OK) return 0;
  return static_cast<double>(us) / 1000.0;
}

struct Easy {
  CURL* h = curl_easy_init();
  CURLM* m = curl_multi_init();
  curl_slist* resolve = nullptr;
  curl_slist* headers = nullptr;
  bool added = false;
  ~Easy() {
    if (added) curl_multi_remove_handle(m, h);
    if (h) curl_easy_cleanup(h);
    if (m) curl_multi_cleanup(m);
    curl_slist_free_all(resolve);
    curl_slist_free_all(headers);
  }
};

class SystemHttpClient : public HttpClient {
 public:
  std::expected<HttpResponse, std::string> fetch(const HttpRequest& r,
                                                 const StepContext& ctx) override {
    global_init();
    auto url = parse_http_url(r.url);
    if (!url) return std::unexpected(url.error());
    if (ctx.is_cancelled()) return std::unexpected("http: cancelled");
    Millis budget = std::min(r.timeout, ctx.remaining());
    if (budget <= Millis(0)) return std::unexpected("http: timed out");

    Easy e;
    if (!e.h || !e.m) return std::unexpected("http: cannot create a curl handle");
    char errbuf[CURL_ERROR_SIZE] = {0};
    Sink sink;
    sink.max = r.max_body;
    CURL* h = e.h;
    curl_easy_setopt(h, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "netplay");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, std::max(1L, std::lround(budget.count())));
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, r.follow_redirects ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &sink);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &ctx);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, r.verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, r.verify_tls ? 2L : 0L);
    if (!r.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, r.ca_file.c_str());
    for (const auto& pin : r.resolve) e.resolve = curl_slist_append(e.resolve, pin.c_str());
    if (e.resolve) curl_easy_setopt(h, CURLOPT_RESOLVE, e.resolve);
    for (const auto& [k, v] : r.headers)
      e.headers = curl_slist_append(e.headers, fmt::format("{}: {}", k, v).c_str());
    if (e.headers) curl_easy_setopt(h, CURLOPT_HTTPHEADER, e.headers);
    const std::string method = r.method.empty() ? "GET" : r.method;
    if (!r.body.empty() || method == "POST") {
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
      curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, r.body.c_str());
    }
    if (method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (method != "GET" && method != "POST") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    } else if (method == "GET" && !r.body.empty()) {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "GET");
    }

    if (curl_multi_add_handle(e.m, h) != CURLM_OK)
      return std::unexpected("http: cannot start the transfer");
    e.added = true;
    // curl ends the transfer at CURLOPT_TIMEOUT_MS; this loop also ends it on cancellation,
    // at the step's deadline, and (should curl overrun) shortly after the request's own.
    const Clock::time_point started = ctx.clock().now();
    const Clock::time_point hard_stop =
        ctx.clock().now() + std::chrono::duration_cast<Clock::duration>(budget + Millis(200));
    bool overran = false;
    int running = 1;
    for (;;) {
      curl_multi_perform(e.m, &running);
      if (!running) break;
      if (ctx.is_cancelled()) return std::unexpected("http: cancelled");
      if (ctx.expired() || ctx.clock().now() >= hard_stop) {
        overran = true;
        break;
      }
      curl_multi_poll(e.m, nullptr, 0, 50, nullptr);
    }
    CURLcode rc = CURLE_OPERATION_TIMEDOUT;
    if (!overran) {
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(e.m, &left))
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == h) rc = msg->data.result;
    }

    if (rc == CURLE_ABORTED_BY_CALLBACK) return std::unexpected("http: cancelled");
    HttpResponse out;
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    out.status = code;
    out.reason = reason_of(sink.status_line);
    out.time_namelookup_ms = info_ms(h, CURLINFO_NAMELOOKUP_TIME_T);
    out.time_connect_ms = info_ms(h, CURLINFO_CONNECT_TIME_T);
    out.time_tls_ms = info_ms(h, CURLINFO_APPCONNECT_TIME_T);
    out.time_first_byte_ms = info_ms(h, CURLINFO_STARTTRANSFER_TIME_T);
    out.time_total_ms = info_ms(h, CURLINFO_TOTAL_TIME_T);
    out.body_bytes = sink.bytes;
    out.body = std::move(sink.body);
    char* ip = nullptr;
    if (curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip) out.remote_ip = ip;
    long port = 0;
    curl_easy_getinfo(h, CURLINFO_PRIMARY_PORT, &port);
    out.remote_port = static_cast<int>(port);
    if (rc != CURLE_OK) {
      long os_errno = 0;
      curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
      out.error_kind = error_kind(rc, os_errno);
      out.error = valid_utf8(*errbuf ? errbuf : curl_easy_strerror(rc));
      if (overran) {  // curl never finished: its total is not set
        out.error = fmt::format("timed out after {} ms", budget.count());
        out.time_total_ms =
            std::chrono::duration<double, std::milli>(ctx.clock().now() - started).count();
      }
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<HttpClient> make_system_http_client() {
  global_init();
  return std::make_unique<SystemHttpClient>();
}

}  // namespace netplay
