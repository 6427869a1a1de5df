/// The http step on the fakes: verdicts, messages, name pinning, percentiles, bad input.

#include <gtest/gtest.h>

#include "runner/step/fakes.h"
#include "tests/unit/support/step_run.h"

namespace netplay {
namespace {

HttpResponse ok(double total = 3.2) {
  return HttpResponse{.status = 200,
                      .reason = "OK",
                      .time_namelookup_ms = 0.01,
                      .time_connect_ms = 0.2,
                      .time_first_byte_ms = 2.9,
                      .time_total_ms = total,
                      .body_bytes = 11,
                      .body = "hello world",
                      .remote_ip = "10.0.0.8",
                      .remote_port = 8080};
}

StepContext ctx_with_deadline(FakeServices& f) {
  StepContext ctx;
  ctx.deadline = f.fake_clock.now() + std::chrono::seconds(30);
  return ctx;
}

TEST(HttpStep, OkPassesWithTheTimingSplit) {
  FakeServices f;
  f.fake_http.answer(ok());
  auto o = run_step("http", {{"url", "http://10.0.0.8:8080/"}, {"body_contains", "world"}}, &f,
                    ctx_with_deadline(f));
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message,
            "http://10.0.0.8:8080/: 200 OK in 3.2 ms (dns 0.0, connect 0.2, first byte 2.9)");
  EXPECT_EQ(o.facts["status"], 200);
  EXPECT_EQ(o.facts["body_bytes"], 11);
  EXPECT_EQ(o.facts["body"], "hello world");
  EXPECT_EQ(o.facts["body_contains"], true);
  EXPECT_EQ(o.facts["remote_ip"], "10.0.0.8");
  EXPECT_EQ(o.facts["time_first_byte_ms"], 2.9);
  EXPECT_FALSE(o.facts.contains("error"));
  EXPECT_FALSE(o.facts.contains("time_total_p50_ms"));
  auto reqs = f.fake_http.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].timeout, Millis(5000));
  EXPECT_TRUE(reqs[0].resolve.empty());  // an address needs no pin
  EXPECT_TRUE(reqs[0].verify_tls);
  EXPECT_TRUE(f.fake_resolver.requests().empty());
}

TEST(HttpStep, BodyNotContainedFailsUnlessJudged) {
  FakeServices f;
  f.fake_http.answer(ok());
  json params = {{"url", "http://10.0.0.8:8080/"}, {"body_contains", "healthy"}};
  auto o = run_step("http", params, &f, ctx_with_deadline(f));
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.facts["body_contains"], false);
  EXPECT_TRUE(o.message.ends_with("; the body does not contain 'healthy'")) << o.message;
  StepContext ctx = ctx_with_deadline(f);
  ctx.expected_facts = {"body_contains"};
  EXPECT_EQ(run_step("http", params, &f, ctx).status, Status::kPass);
}

TEST(HttpStep, ErrorStatusFailsUnlessTheStatusIsExpected) {
  FakeServices f;
  HttpResponse r = ok(1.2);
  r.status = 404;
  r.reason = "Not Found";
  f.fake_http.answer(r);
  json params = {{"url", "http://10.0.0.8:8080/missing"}};
  auto o = run_step("http", params, &f, ctx_with_deadline(f));
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message,
            "http://10.0.0.8:8080/missing: 404 Not Found in 1.2 ms (dns 0.0, connect "
            "0.2, first byte 2.9)");
  StepContext ctx = ctx_with_deadline(f);
  ctx.expected_facts = {"status"};
  EXPECT_EQ(run_step("http", params, &f, ctx).status, Status::kPass);
}

TEST(HttpStep, NoResponseMessages) {
  FakeServices f;
  json params = {{"url", "http://10.0.0.8:8080/"}, {"timeout", 2000}};
  f.fake_http.answer(HttpResponse{.time_connect_ms = 0.3,
                                  .time_total_ms = 2000,
                                  .remote_ip = "10.0.0.8",
                                  .remote_port = 8080,
                                  .error_kind = "timeout",
                                  .error = "Operation timed out after 2000 milliseconds"});
  auto o = run_step("http", params, &f, ctx_with_deadline(f));
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message,
            "http://10.0.0.8:8080/: timed out after 2s (connected in 0.3 ms, no first byte)");
  EXPECT_EQ(o.facts["error"], "timeout");
  EXPECT_EQ(o.facts["status"], 0);

  f.fake_http.answer(HttpResponse{.remote_ip = "10.0.0.8",
                                  .remote_port = 8080,
                                  .error_kind = "refused",
                                  .error = "Failed to connect"});
  o = run_step("http", params, &f, ctx_with_deadline(f));
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "http://10.0.0.8:8080/: connection refused (10.0.0.8:8080)");
  StepContext ctx = ctx_with_deadline(f);
  ctx.expected_facts = {"error"};
  EXPECT_EQ(run_step("http", params, &f, ctx).status, Status::kPass);
}

TEST(HttpStep, ANameIsResolvedTimedAndPinned) {
  FakeServices f;
  f.fake_resolver.answer(
      [&f](const DnsQuery& q, const StepContext&) -> std::expected<DnsResponse, std::string> {
        f.fake_clock.advance(Millis(5));
        DnsResponse r{.rcode = "NOERROR", .query_ms = 5, .server = "10.0.0.53"};
        if (q.type == "A")
          r.answers.push_back({.name = q.name, .type = "A", .data = "10.255.1.11"});
        return r;
      });
  f.fake_http.answer(ok());
  auto o = run_step("http", {{"url", "http://backend.netplay-test.internal.:8080/x"}}, &f,
                    ctx_with_deadline(f));
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  auto reqs = f.fake_http.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].resolve,
            std::vector<std::string>{"backend.netplay-test.internal.:8080:10.255.1.11"});
  EXPECT_EQ(reqs[0].timeout, Millis(4990));  // what the lookup (A then AAAA) left of 5s
  EXPECT_EQ(o.facts["time_namelookup_ms"], 10.01);
  EXPECT_EQ(o.facts["time_connect_ms"], 10.2);
  EXPECT_EQ(o.facts["time_tls_ms"], 0);
  EXPECT_EQ(o.facts["time_first_byte_ms"], 12.9);
  EXPECT_EQ(o.facts["time_total_ms"], 13.2);
}

TEST(HttpStep, APinCoveringTheHostSkipsTheLookup) {
  FakeServices f;
  f.fake_http.answer(ok());
  auto o = run_step("http",
                    {{"url", "https://api.example/v1"}, {"resolve", {"API.example:443:10.0.0.8"}}},
                    &f, ctx_with_deadline(f));
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_TRUE(f.fake_resolver.requests().empty());
  EXPECT_EQ(f.fake_http.requests()[0].resolve,
            std::vector<std::string>{"API.example:443:10.0.0.8"});
}

TEST(HttpStep, UnresolvableNameFails) {
  FakeServices f;
  f.fake_resolver.answer(DnsResponse{.rcode = "NXDOMAIN", .server = "10.0.0.53"});
  auto o = run_step("http", {{"url", "http://nothing.invalid./"}}, &f, ctx_with_deadline(f));
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message,
            "http://nothing.invalid./: cannot resolve 'nothing.invalid.': NXDOMAIN from "
            "10.0.0.53");
  EXPECT_EQ(o.facts["error"], "resolve");
  EXPECT_TRUE(f.fake_http.requests().empty());
}

TEST(HttpStep, BadInputIsOneClearLine) {
  FakeServices f;
  f.fake_http.answer(ok());
  std::vector<std::pair<std::string, std::string>> cases = {
      {"ftp://x", "unsupported scheme 'ftp' in 'ftp://x' (http and https only)"},
      {"not a url",
       "bad URL 'not a url': expected http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH"},
  };
  for (auto& [url, msg] : cases) {
    auto o = run_step("http", {{"url", url}}, &f, ctx_with_deadline(f));
    EXPECT_EQ(o.status, Status::kError) << url;
    EXPECT_EQ(o.message, msg);
  }
  auto o = run_step("http", {{"url", "http://"}}, &f, ctx_with_deadline(f));
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_TRUE(o.message.starts_with("bad URL 'http://': ")) << o.message;
  o = run_step("http", {{"url", "http://a/"}, {"resolve", {"a:99999:10.0.0.1"}}}, &f,
               ctx_with_deadline(f));
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message,
            "bad resolve entry 'a:99999:10.0.0.1': the port must be a number from 1 to "
            "65535 (expected HOST:PORT:ADDRESS)");
  EXPECT_TRUE(f.fake_http.requests().empty());
}

TEST(HttpStep, CountReportsPercentilesOfTheTotal) {
  FakeServices f;
  int n = 0;
  f.fake_http.answer(
      [&n](const HttpRequest&, const StepContext&) -> std::expected<HttpResponse, std::string> {
        ++n;
        return ok(n);  // 1 .. 20 ms
      });
  auto o = run_step("http", {{"url", "http://10.0.0.8/"}, {"count", 20}}, &f, ctx_with_deadline(f));
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["requests"], 20);
  EXPECT_EQ(o.facts["failures"], 0);
  EXPECT_EQ(o.facts["time_total_p50_ms"], 10);
  EXPECT_EQ(o.facts["time_total_p90_ms"], 18);
  EXPECT_EQ(o.facts["time_total_p99_ms"], 20);
  EXPECT_EQ(o.facts["time_total_max_ms"], 20);
  EXPECT_EQ(o.facts["time_total_min_ms"], 1);
  EXPECT_EQ(o.message,
            "http://10.0.0.8/ x20: 0 failed, total p50 10.0 ms, p99 20.0 ms, max 20.0 "
            "ms; last: 200 OK in 20.0 ms (dns 0.0, connect 0.2, first byte 2.9)");
}

TEST(HttpStep, RequestCarriesMethodHeadersBodyAndTlsOptions) {
  FakeServices f;
  f.fake_http.answer(ok());
  auto o = run_step("http",
                    {{"url", "https://10.0.0.8/"},
                     {"method", "POST"},
                     {"headers", {{"X-A", "1"}, {"X-N", 2}}},
                     {"body", "{}"},
                     {"tls_verify", false},
                     {"ca_file", "/tmp/ca.pem"},
                     {"follow_redirects", true},
                     {"max_body", 10}},
                    &f, ctx_with_deadline(f));
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  auto r = f.fake_http.requests().at(0);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.headers,
            (std::vector<std::pair<std::string, std::string>>{{"X-A", "1"}, {"X-N", "2"}}));
  EXPECT_EQ(r.body, "{}");
  EXPECT_FALSE(r.verify_tls);
  EXPECT_EQ(r.ca_file, "/tmp/ca.pem");
  EXPECT_TRUE(r.follow_redirects);
  EXPECT_EQ(r.max_body, 10u);
}

}  // namespace
}  // namespace netplay
