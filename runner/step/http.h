#pragma once
/// HTTP(S) requests, the service behind `http`: libcurl, with curl's own timing split
/// (name lookup, connect, TLS, first byte, total); the transfer ends at its timeout, the
/// step's deadline or cancellation.

#include <expected>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runner/base/core.h"
#include "runner/step/canned.h"
#include "runner/step/step.h"

namespace netplay {

/// What a step needs to know of a URL before fetching it: checked with curl's own parser,
/// http and https only.
struct HttpUrl {
  std::string scheme;  // "http" or "https"
  std::string host;    // as written, without [ ] around an IPv6 address
  int port = 0;        // explicit, or the scheme's default
};
/// The error is one line: "bad URL 'http://': No host part in the URL",
/// "unsupported scheme 'ftp' in 'ftp://x' (http and https only)".
std::expected<HttpUrl, std::string> parse_http_url(const std::string& url);

struct HttpRequest {
  std::string url;
  std::string method = "GET";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  Millis timeout{5000};
  /// curl --resolve entries, "HOST:PORT:ADDRESS": pin a name to an address.
  std::vector<std::string> resolve;
  bool verify_tls = true;
  std::string ca_file;
  bool follow_redirects = false;
  size_t max_body = 1u << 20;  // bytes of body kept (all are counted)
};

struct HttpResponse {
  long status = 0;  // 0 when no response came
  std::string reason;  // the status line's reason phrase ("OK"), when the server sent one
  /// Cumulative from the start of the request, as curl reports them: name lookup done,
  /// TCP connected, TLS handshake done (0 for http), first byte of the response, all done.
  double time_namelookup_ms = 0;
  double time_connect_ms = 0;
  double time_tls_ms = 0;
  double time_first_byte_ms = 0;
  double time_total_ms = 0;
  size_t body_bytes = 0;
  std::string body;  // the first max_body bytes
  std::string remote_ip;
  int remote_port = 0;
  /// When the transfer failed: "timeout", "resolve", "refused", "connect", "tls",
  /// "cancelled", "protocol", "redirects", "other"; and curl's message.
  std::string error_kind;
  std::string error;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  /// Error only when the request could not be made (a URL curl refuses, no handle); a
  /// failed transfer is a response with error_kind set.
  virtual std::expected<HttpResponse, std::string> fetch(const HttpRequest& r,
                                                         const StepContext& ctx) = 0;
};

std::unique_ptr<HttpClient> make_system_http_client();

class FakeHttpClient : public HttpClient, public CannedAnswers<HttpRequest, HttpResponse> {
 public:
  std::expected<HttpResponse, std::string> fetch(const HttpRequest& r,
                                                 const StepContext& ctx) override {
    return ask(r, ctx, "http");
  }
};

}  // namespace netplay
