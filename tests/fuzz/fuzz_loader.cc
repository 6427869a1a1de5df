/// libFuzzer target: any bytes as a playbook. The loader must answer with diagnostics or
/// a Plan; it must never crash, leak or hang, whatever the YAML (or non-YAML) holds.

#include <cstddef>
#include <cstdint>
#include <string>

#include "runner/load/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto plan = netplay::load_playbook_text(text, "fuzz.yaml");
  if (!plan) {
    for (const auto& d : plan.error()) (void)d.str();
  }
  return 0;
}
