// libFuzzer target: one captured frame as any bytes. The first byte picks the link type
// (0 Ethernet, 1 Linux cooked v1, 2 Linux cooked v2, 3 raw IP); the rest is the frame. The
// frame is decoded (VXLAN on 4789 and 8472), described as tcpdump-like text and tallied, and
// the tally's facts are built every 64 inputs, so the decoder, the printer and the tables
// all see hostile bytes. The sanitizers catch any read past the frame.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "runner/step/packet.h"
#include "steps/net/vxlan_tally.h"

namespace {

const int kLinks[] = {netplay::packet::kLinkEthernet, netplay::packet::kLinkSll,
                      netplay::packet::kLinkSll2, netplay::packet::kLinkRaw};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netplay;
  static const uint16_t ports[] = {4789, 8472};
  static const packet::PortSet set{std::span<const uint16_t>(ports)};
  static vxlan::AppMap apps;
  static vxlan::Tally tally(&apps, 5);
  static unsigned long runs = 0;
  if (size < 1) return 0;
  int lt = kLinks[data[0] % 4];
  // A copy of exactly the frame's bytes, so that any over-read is outside the allocation.
  std::vector<uint8_t> frame(data + 1, data + size);
  packet::Frame f;
  uint32_t caplen = static_cast<uint32_t>(frame.size());
  packet::decode(lt, frame.data(), caplen, caplen + (data[0] >> 4), set, f);
  std::string text = packet::describe(f, static_cast<int64_t>(runs) * 1000);
  tally.add(f, static_cast<int64_t>(runs));
  if (++runs % 64 == 0) {
    json facts = tally.facts();
    if (facts["frames"].get<uint64_t>() != runs) __builtin_trap();
  }
  return text.empty() ? 1 : 0;
}
