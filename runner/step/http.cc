#include "runner/step/http.h"

namespace netplay {
namespace {

// Placeholder until the real service lands.
class SystemHttpClient : public HttpClient {
 public:
  std::expected<HttpResponse, std::string> fetch(const HttpRequest&, const StepContext&) override {
    return std::unexpected("http: not available in this build");
  }
};

}  // namespace

std::unique_ptr<HttpClient> make_system_http_client() { return std::make_unique<SystemHttpClient>(); }

}  // namespace netplay
