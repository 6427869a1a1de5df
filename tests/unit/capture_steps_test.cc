/// vxlan.decode on real pcap files written with libpcap; capture and trace.hops on
/// FakePacketSource's canned live captures, with time on the fake clock.

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <map>
#include <filesystem>
#include <fstream>

#include "runner/step/fakes.h"
#include "runner/step/packet.h"
#include "tests/unit/support/frames.h"
#include "tests/unit/support/step_run.h"

namespace netplay {
namespace {

using frames::Bytes;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr const char* kA = "10.255.1.11";
constexpr const char* kB = "10.255.2.11";
const int64_t kT0 = frames::ns(1704164645);

/// `j` with its objects' keys sorted, for comparisons where key order does not matter.
nlohmann::json unordered(const json& j) { return nlohmann::json::parse(j.dump()); }

Bytes inner_echo(bool request, uint16_t seq, const std::string& src, const std::string& dst) {
  return frames::ipv4(src, dst, 1, frames::icmp_echo(request, 7, seq));
}

/// Request seq 1 (tag 0003), its reply (tag 0004), an ARP frame.
std::vector<frames::Timed> three_frames() {
  frames::Underlay back;
  back.src = "10.0.16.12";
  back.dst = "10.0.16.11";
  back.gbp = 4;
  return {{kT0 + 1000, frames::vxlan_frame(inner_echo(true, 1, kA, kB))},
          {kT0 + 2'000'000, frames::vxlan_frame(inner_echo(false, 1, kB, kA), back)},
          {kT0 + 500'000'000, frames::ether(Bytes(28, 0), {}, frames::kEtherArp)}};
}

// ---- vxlan.decode ----

TEST(CaptureStepsDecode, ReadsAPcapFile) {
  frames::TempDir dir;
  std::string file = dir.path("c2.pcap");
  frames::write_pcap(file, packet::kLinkEthernet, three_frames());
  FakeServices fakes;
  auto o = run_step("vxlan.decode", {{"file", file}}, &fakes);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message,
            "3 frames, 2 VXLAN (VNI 1; tags 0003, 0004); ICMP echo 1/1 answered");
  EXPECT_EQ(o.facts["file"], file);
  EXPECT_EQ(o.facts["linktype"], "EN10MB");
  EXPECT_EQ(o.facts["complete"], true);
  EXPECT_EQ(o.facts["frames"], 3);
  EXPECT_EQ(o.facts["vxlan_frames"], 2);
  EXPECT_EQ(o.facts["other_frames"], 1);
  EXPECT_EQ(o.facts["malformed"], 0);
  EXPECT_EQ(o.facts["vnis"], json({{"1", 2}}));
  EXPECT_EQ(o.facts["icmp"]["answered"], 1);
  EXPECT_EQ(o.facts["underlay"].size(), 2u);
  // The packets' own time, microseconds as the file has them.
  EXPECT_DOUBLE_EQ(o.facts["first_ts"].get<double>(), 1704164645.000001);
  EXPECT_DOUBLE_EQ(o.facts["duration_s"].get<double>(), 0.499999);
  ASSERT_EQ(o.evidence.size(), 5u);
  EXPECT_EQ(o.evidence[0],
            "03:04:05.000001 IP 10.0.16.11.43146 > 10.0.16.12.4789: VXLAN-GBP, flags [G I] "
            "(0x88), group policy id 3 (tag 0003), vni 1");
  EXPECT_EQ(o.evidence[1],
            "    IP 10.255.1.11 > 10.255.2.11: ICMP echo request, id 7, seq 1, length 64");
  EXPECT_EQ(o.evidence[4], "03:04:05.500000 ethertype 0x0806, length 42");
  EXPECT_TRUE(fakes.fake_packets.requests().empty());  // files are not live captures
}

TEST(CaptureStepsDecode, CookedAndRawFilesDecodeToo) {
  frames::TempDir dir;
  Bytes ip = frames::ipv4("10.0.16.11", "10.0.16.12", 17,
                          frames::udp(1, 8472, frames::vxlan(7, 3, frames::ether(
                                                                       inner_echo(true, 1, kA, kB)))));
  struct Case {
    int linktype;
    Bytes frame;
    const char* name;
  };
  for (const auto& c : {Case{packet::kLinkSll, frames::sll(ip, 4), "LINUX_SLL"},
                        Case{packet::kLinkSll2, frames::sll2(ip, 0), "LINUX_SLL2"},
                        Case{packet::kLinkRaw, ip, "RAW"}}) {
    std::string file = dir.path(std::string(c.name) + ".pcap");
    frames::write_pcap(file, c.linktype, {{kT0, c.frame}});
    auto o = run_step("vxlan.decode", {{"file", file}, {"ports", {8472}}}, nullptr);
    ASSERT_EQ(o.status, Status::kPass) << c.name << ": " << o.message;
    EXPECT_EQ(o.facts["linktype"], c.name);
    EXPECT_EQ(o.facts["vxlan_frames"], 1) << c.name;
    EXPECT_EQ(o.facts["vnis"], json({{"7", 1}})) << c.name;
  }
}

TEST(CaptureStepsDecode, AFileCutInsideAFrameWarnsWithTheFramesBefore) {
  frames::TempDir dir;
  std::string file = dir.path("growing.pcap");
  frames::write_pcap(file, packet::kLinkEthernet, three_frames());
  // Drop the last frame's final 10 bytes, as a capture still being written looks.
  std::filesystem::resize_file(file, std::filesystem::file_size(file) - 10);
  auto o = run_step("vxlan.decode", {{"file", file}}, nullptr);
  EXPECT_EQ(o.status, Status::kWarn) << o.message;
  EXPECT_THAT(o.message, StartsWith(file + ": the file ends inside frame 3 ("));
  EXPECT_THAT(o.message, HasSubstr("2 frames, 2 VXLAN"));
  EXPECT_EQ(o.facts["complete"], false);
  EXPECT_EQ(o.facts["frames"], 2);
  EXPECT_EQ(o.facts["icmp"]["answered"], 1);
}

TEST(CaptureStepsDecode, AFileCutInsideTheFirstFrameIsAnError) {
  frames::TempDir dir;
  std::string file = dir.path("cut.pcap");
  frames::write_pcap(file, packet::kLinkEthernet, three_frames());
  std::filesystem::resize_file(file, 24 + 16 + 20);  // file header, record header, 20 bytes
  auto o = run_step("vxlan.decode", {{"file", file}}, nullptr);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_THAT(o.message, StartsWith(file + ": "));
  EXPECT_EQ(o.facts["frames"], 0);
  EXPECT_EQ(o.facts["complete"], false);
}

TEST(CaptureStepsDecode, ATextFileIsAnErrorNamingIt) {
  frames::TempDir dir;
  std::string file = dir.file("notes.txt", "tcpdump -i eth0 udp port 4789\n");
  auto o = run_step("vxlan.decode", {{"file", file}}, nullptr);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_THAT(o.message, StartsWith(file + ": "));
  EXPECT_GT(o.message.size(), file.size() + 2);  // libpcap's reason follows

  auto missing = run_step("vxlan.decode", {{"file", dir.path("none.pcap")}}, nullptr);
  EXPECT_EQ(missing.status, Status::kError);
  EXPECT_THAT(missing.message, StartsWith(dir.path("none.pcap") + ": "));
}

TEST(CaptureStepsDecode, AFileOfAnotherLinkTypeIsAnError) {
  frames::TempDir dir;
  std::string file = dir.path("user0.pcap");
  frames::write_pcap(file, 147, {{kT0, Bytes(20, 0)}});
  auto o = run_step("vxlan.decode", {{"file", file}}, nullptr);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, file + ": link type DLT 147 is not one netplay decodes");
}

TEST(CaptureStepsDecode, TheFilterIsAppliedAndABadOneIsLibpcapsError) {
  frames::TempDir dir;
  std::string file = dir.path("c2.pcap");
  frames::write_pcap(file, packet::kLinkEthernet, three_frames());
  auto o = run_step("vxlan.decode", {{"file", file}, {"filter", "udp port 4789"}}, nullptr);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["frames"], 2);
  EXPECT_EQ(o.facts["other_frames"], 0);

  const std::string bad = "udp port";
  auto e = run_step("vxlan.decode", {{"file", file}, {"filter", bad}}, nullptr);
  EXPECT_EQ(e.status, Status::kError);
  std::string libpcap = check_bpf_filter(bad, packet::kLinkEthernet);
  ASSERT_FALSE(libpcap.empty());
  EXPECT_EQ(e.message, libpcap);
  EXPECT_THAT(e.message, StartsWith("bad filter 'udp port': "));
}

TEST(CaptureStepsDecode, TagsAndStoreNameTheApps) {
  frames::TempDir dir;
  std::string file = dir.path("c2.pcap");
  frames::write_pcap(file, packet::kLinkEthernet, three_frames());
  std::string tags = dir.file("tags.json", R"({"tags":[{"id":"app-a","tag":"0003"}]})");
  std::string store = dir.file(
      "store.json", R"({"h-b": {"ip": "10.255.2.11", "metadata": {"app_id": "app-b"}}})");
  auto o = run_step("vxlan.decode", {{"file", file}, {"tags", tags}, {"store", {store}}}, nullptr);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message,
            "3 frames, 2 VXLAN (VNI 1; tags 0003 (app-a), 0004); ICMP echo 1/1 answered");
  EXPECT_EQ(o.facts["unknown_tags"], json::array({"0004"}));
  EXPECT_EQ(o.facts["gbp"][0]["app"], "app-a");
  EXPECT_EQ(o.facts["apps"], json::parse(R"([
      {"app": "app-b", "tag": null, "ips": ["10.255.2.11"], "sent": 1, "received": 1},
      {"app": "app-a", "tag": "0003", "ips": [], "sent": 1, "received": 0}])"));

  std::string bad_tags = dir.file("bad.json", "{");
  auto e = run_step("vxlan.decode", {{"file", file}, {"tags", bad_tags}}, nullptr);
  EXPECT_EQ(e.status, Status::kError);
  EXPECT_EQ(e.message, "tags: " + bad_tags + " is not JSON");
}

// ---- capture ----

/// A canned `-i any` capture: `pairs` echo requests sent (packet type 4, outgoing), each
/// followed by its reply received (type 0), all VXLAN with tags 0003 and 0004.
CannedCapture cooked(int pairs, std::vector<frames::Timed> extra = {}) {
  CannedCapture c;
  c.linktype = packet::kLinkSll;
  c.counters = {.received = 100, .dropped = 2, .if_dropped = 1};
  frames::Underlay back;
  back.src = "10.0.16.12";
  back.dst = "10.0.16.11";
  back.gbp = 4;
  int64_t t = kT0;
  for (int i = 1; i <= pairs; ++i) {
    auto seq = static_cast<uint16_t>(i);
    c.packets.emplace_back(t += 1000, frames::sll(frames::vxlan_packet(inner_echo(true, seq, kA, kB)), 4));
    c.packets.emplace_back(t += 1000,
                           frames::sll(frames::vxlan_packet(inner_echo(false, seq, kB, kA), back), 0));
  }
  for (auto& e : extra) c.packets.push_back(std::move(e));
  return c;
}

uint64_t total_bytes(const CannedCapture& c) {
  uint64_t n = 0;
  for (const auto& [ts, b] : c.packets) n += b.size();
  return n;
}

TEST(CaptureStepsCapture, CountsPacketsByDirectionAndFlowsForItsDuration) {
  FakeServices fakes;
  CannedCapture c = cooked(3);
  fakes.fake_packets.answer(c);
  const auto start = fakes.fake_clock.now();
  int readied = 0;
  StepContext ctx;
  ctx.on_ready = [&] { ++readied; };
  auto o = run_step("capture", {{"duration", 1000}}, &fakes, ctx);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "6 packets on any (3 in, 3 out), 2 dropped by the kernel for its duration");
  EXPECT_EQ(readied, 1);
  EXPECT_EQ(o.facts["stopped_by"], "duration");
  // The duration passed on the fake clock (waiting for packets that never come moves it).
  EXPECT_GE(fakes.fake_clock.now() - start, std::chrono::milliseconds(1000));
  EXPECT_EQ(o.facts["interface"], "any");
  EXPECT_EQ(o.facts["linktype"], "LINUX_SLL");
  EXPECT_EQ(o.facts["packets"], 6);
  EXPECT_EQ(o.facts["bytes"], total_bytes(c));
  EXPECT_EQ(o.facts["in"], 3);
  EXPECT_EQ(o.facts["out"], 3);
  EXPECT_EQ(o.facts["kernel_drops"], 2);
  EXPECT_EQ(o.facts["if_drops"], 1);
  EXPECT_DOUBLE_EQ(o.facts["first_ts"].get<double>(), 1704164645.000001);
  EXPECT_DOUBLE_EQ(o.facts["last_ts"].get<double>(), 1704164645.000006);
  EXPECT_EQ(o.facts["flows_total"], 2);
  const uint64_t one = c.packets[0].second.size();
  EXPECT_EQ(unordered(o.facts["flows"]), nlohmann::json::parse(fmt::format(R"([
      {{"src": "10.0.16.11", "dst": "10.0.16.12", "proto": "udp", "sport": 43146,
       "dport": 4789, "packets": 3, "bytes": {0}}},
      {{"src": "10.0.16.12", "dst": "10.0.16.11", "proto": "udp", "sport": 43146,
       "dport": 4789, "packets": 3, "bytes": {0}}}])", 3 * one)));
  EXPECT_FALSE(o.facts.contains("file"));
  EXPECT_FALSE(o.facts.contains("vxlan"));
  // Without `decode: vxlan` the evidence still shows VXLAN on 4789 with its inner packet,
  // as tcpdump does (two lines per frame); only the tally is left out.
  ASSERT_EQ(o.evidence.size(), 12u);
  EXPECT_THAT(o.evidence[0], HasSubstr("IP 10.0.16.11.43146 > 10.0.16.12.4789: VXLAN"));
  EXPECT_THAT(o.evidence[1], StartsWith("    IP"));

  auto reqs = fakes.fake_packets.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].interface, "any");
  EXPECT_EQ(reqs[0].filter, "");
  EXPECT_EQ(reqs[0].snaplen, 262144);
  EXPECT_FALSE(reqs[0].promisc);
  EXPECT_EQ(reqs[0].write, "");
}

TEST(CaptureStepsCapture, CountStopsItWithoutWaiting) {
  FakeServices fakes;
  fakes.fake_packets.answer(cooked(3));
  const auto start = fakes.fake_clock.now();
  auto o = run_step("capture", {{"interface", "eth0"}, {"count", 4}, {"snaplen", 128}}, &fakes);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "4 packets on eth0 (2 in, 2 out), 2 dropped by the kernel reached count");
  EXPECT_EQ(o.facts["stopped_by"], "count");
  EXPECT_EQ(o.facts["packets"], 4);
  EXPECT_EQ(o.facts["interface"], "eth0");
  EXPECT_EQ(fakes.fake_clock.now(), start);  // the packets were there: no wait at all
  ASSERT_EQ(fakes.fake_packets.requests().size(), 1u);
  EXPECT_EQ(fakes.fake_packets.requests()[0].snaplen, 128);
  EXPECT_EQ(fakes.fake_packets.requests()[0].interface, "eth0");
}

TEST(CaptureStepsCapture, TheDeadlineEndsItWithItsFacts) {
  FakeServices fakes;
  fakes.fake_packets.answer(cooked(1));
  StepContext ctx;
  ctx.deadline = fakes.fake_clock.now() + std::chrono::seconds(2);
  auto o = run_step("capture", json::object(), &fakes, ctx);
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["stopped_by"], "deadline");
  EXPECT_EQ(o.facts["packets"], 2);
  EXPECT_EQ(o.message, "2 packets on any (1 in, 1 out), 2 dropped by the kernel until its time limit");
  // It stopped short of the limit, so that the step ends with its facts, not a timeout.
  EXPECT_LT(fakes.fake_clock.now(), ctx.deadline);
}

TEST(CaptureStepsCapture, WriteKeepsEveryPacketInAPcapFile) {
  frames::TempDir dir;
  std::string file = dir.path("c2.pcap");
  FakeServices fakes;
  CannedCapture c = cooked(2);
  fakes.fake_packets.answer(c);
  auto o = run_step("capture", {{"count", 4}, {"write", file}}, &fakes);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["file"], file);
  EXPECT_EQ(fakes.fake_packets.requests()[0].write, file);
  int linktype = 0;
  auto back = frames::read_pcap(file, &linktype);
  EXPECT_EQ(linktype, packet::kLinkSll);
  ASSERT_EQ(back.size(), c.packets.size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].first, c.packets[i].first) << i;
    EXPECT_EQ(back[i].second, c.packets[i].second) << i;
  }
  // And vxlan.decode reads it.
  auto d = run_step("vxlan.decode", {{"file", file}}, &fakes);
  ASSERT_EQ(d.status, Status::kPass) << d.message;
  EXPECT_EQ(d.facts["linktype"], "LINUX_SLL");
  EXPECT_EQ(d.facts["icmp"]["answered"], 2);
}

TEST(CaptureStepsCapture, DecodeVxlanAddsTheTally) {
  frames::TempDir dir;
  std::string tags = dir.file("tags.json", R"({"tags":[{"id":"app-b","tag":"0004"}]})");
  FakeServices fakes;
  fakes.fake_packets.answer(cooked(3));
  auto o = run_step("capture", {{"count", 5}, {"decode", "vxlan"}, {"tags", tags}}, &fakes);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message,
            "5 packets on any (2 in, 3 out), 2 dropped by the kernel reached count; VXLAN 5 frames, "
            "ICMP echo 2/3 answered");
  ASSERT_TRUE(o.facts.contains("vxlan"));
  const json& v = o.facts["vxlan"];
  EXPECT_EQ(v["frames"], 5);
  EXPECT_EQ(v["vxlan_frames"], 5);
  EXPECT_EQ(v["vnis"], json({{"1", 5}}));
  EXPECT_EQ(v["icmp"], json({{"requests", 3}, {"replies", 2}, {"answered", 2}, {"unanswered", 1}}));
  EXPECT_EQ(v["gbp"][0], json({{"id", 3}, {"tag", "0003"}, {"app", nullptr}, {"frames", 3}}));
  EXPECT_EQ(v["gbp"][1]["app"], "app-b");
  EXPECT_EQ(v["unknown_tags"], json::array({"0003"}));
}

TEST(CaptureStepsCapture, TheFilterIsApplied) {
  FakeServices fakes;
  fakes.fake_packets.answer(
      cooked(1, {{kT0 + 5000, frames::sll(Bytes(28, 0), 1, frames::kEtherArp)}}));
  auto unfiltered = run_step("capture", {{"duration", 100}}, &fakes);
  EXPECT_EQ(unfiltered.facts["packets"], 3);
  EXPECT_EQ(unfiltered.facts["flows_total"], 2);  // ARP has no IP flow
  auto o = run_step("capture", {{"duration", 100}, {"filter", "udp port 4789"}}, &fakes);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["packets"], 2);
  EXPECT_EQ(fakes.fake_packets.requests().back().filter, "udp port 4789");
}

TEST(CaptureStepsCapture, ABadFilterIsAnErrorWithLibpcapsMessage) {
  FakeServices fakes;
  fakes.fake_packets.answer(cooked(1));
  auto o = run_step("capture", {{"count", 1}, {"filter", "port 4789 and"}}, &fakes);
  EXPECT_EQ(o.status, Status::kError);
  std::string libpcap = check_bpf_filter("port 4789 and", packet::kLinkSll);
  ASSERT_FALSE(libpcap.empty());
  EXPECT_EQ(o.message, libpcap);
}

TEST(CaptureStepsCapture, AnOpenErrorIsAnErrorAndNeverReady) {
  FakeServices fakes;
  fakes.fake_packets.fail("no such interface 'eth9' in this namespace");
  int readied = 0;
  StepContext ctx;
  ctx.on_ready = [&] { ++readied; };
  auto o = run_step("capture", {{"interface", "eth9"}, {"count", 1}}, &fakes, ctx);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "no such interface 'eth9' in this namespace");
  EXPECT_EQ(readied, 0);
}

TEST(CaptureStepsCapture, ABadTagsFileIsAnErrorBeforeCapturing) {
  frames::TempDir dir;
  FakeServices fakes;
  fakes.fake_packets.answer(cooked(1));
  std::string tags = dir.file("tags.json", R"({"tags":[{"id":"a","tag":"zz"}]})");
  auto o = run_step("capture", {{"count", 1}, {"decode", "vxlan"}, {"tags", tags}}, &fakes);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "tags: " + tags + ": tag 'zz' is not a 16-bit hex number");
  EXPECT_TRUE(fakes.fake_packets.requests().empty());
}

TEST(CaptureStepsCapture, AStopRequestEndsItWithThePacketsAlreadyCaptured) {
  FakeServices fakes;
  fakes.fake_packets.answer(cooked(2));
  std::atomic<bool> stop{true};  // the steps that needed it are already done
  StepContext ctx;
  ctx.stop_requested = &stop;
  auto o = run_step("capture", {{"decode", "vxlan"}}, &fakes, ctx);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["stopped_by"], "stop");
  // What the kernel had captured before the stop is still counted: the last reply of the
  // ping that needed this capture must not go missing.
  EXPECT_EQ(o.facts["packets"], 4);
  EXPECT_EQ(o.facts["vxlan"]["icmp"]["answered"], 2);
  EXPECT_THAT(o.message, HasSubstr("until the steps that need it finished"));
}

// ---- trace.hops ----

/// Four capture points along an overlay path, all in the step's namespace: the sender's
/// eth0, its host's vtep, the receiver host's underlay (VXLAN there), the receiver's eth0.
class Path {
 public:
  static constexpr size_t kPoints = 4;
  const std::array<const char*, kPoints> names{"c1-eth0", "c1-vtep", "c2-underlay", "c2-eth0"};
  const std::array<const char*, kPoints> ifaces{"eth0", "silk-vtep", "eth1", "veth2"};

  /// `inner_ip` is seen at `point` at `ts` (encapsulated on the underlay).
  void see(size_t point, int64_t ts, const Bytes& inner_ip) {
    caps_[ifaces[point]].packets.emplace_back(
        ts, point == 2 ? frames::vxlan_frame(inner_ip) : frames::ether(inner_ip));
  }
  /// Echo request `seq` seen at points [0, upto) going forward, its reply at
  /// (from, kPoints) coming back (later at lower points).
  void echo(uint16_t seq, size_t upto, size_t reply_from = kPoints) {
    int64_t t = kT0 + int64_t{seq} * 1'000'000;
    for (size_t i = 0; i < upto; ++i)
      see(i, t + static_cast<int64_t>(i) * 1000, inner_echo(true, seq, kA, kB));
    for (size_t i = reply_from; i < kPoints; ++i)
      see(i, t + 500'000 + static_cast<int64_t>(kPoints - i) * 1000,
          inner_echo(false, seq, kB, kA));
  }
  json points() const {
    json p = json::array();
    for (size_t i = 0; i < kPoints; ++i) p.push_back({{"name", names[i]}, {"interface", ifaces[i]}});
    return p;
  }
  void install(FakeServices& f, std::string failing = "") const {
    f.fake_packets.answer(
        [caps = caps_, failing](const LiveCaptureRequest& r,
                                const StepContext&) -> std::expected<CannedCapture, std::string> {
          if (r.interface == failing)
            return std::unexpected(fmt::format("no such interface '{}' in this namespace", failing));
          auto it = caps.find(r.interface);
          return it == caps.end() ? CannedCapture{} : it->second;
        });
  }

 private:
  std::map<std::string, CannedCapture> caps_;
};

json flow_to_b() { return {{"host", kB}, {"proto", "icmp"}}; }

TEST(CaptureStepsTrace, AFlowSeenAtEveryPointPasses) {
  Path path;
  for (uint16_t s = 1; s <= 3; ++s) path.echo(s, Path::kPoints, 0);
  FakeServices fakes;
  path.install(fakes);
  size_t open_at_ready = 0;
  StepContext ctx;
  ctx.on_ready = [&] { open_at_ready = fakes.fake_packets.requests().size(); };
  auto o = run_step("trace.hops",
                    {{"points", path.points()}, {"flow", flow_to_b()}, {"duration", 1000}},
                    &fakes, ctx);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "6 packets in 2 classes followed across 4 points; none lost");
  EXPECT_EQ(open_at_ready, 4u);  // ready once every point listens
  EXPECT_EQ(o.facts["lost"], false);
  EXPECT_EQ(o.facts["last_hop"], nullptr);
  EXPECT_EQ(o.facts["lost_between"], json::array());
  EXPECT_EQ(o.facts["rewrites"], json::array());
  EXPECT_EQ(o.facts["packets"], 6);
  const json all3 = {{"c1-eth0", 3}, {"c1-vtep", 3}, {"c2-underlay", 3}, {"c2-eth0", 3}};
  ASSERT_EQ(o.facts["classes"].size(), 2u);
  EXPECT_EQ(o.facts["classes"][0], json::parse(R"({
      "class": "icmp echo-request 10.255.1.11 > 10.255.2.11", "direction": "forward",
      "packets": 3, "seen": {"c1-eth0": 3, "c1-vtep": 3, "c2-underlay": 3, "c2-eth0": 3},
      "last_seen": "c2-eth0", "lost_after": null, "missing_at": [], "answered": 3,
      "partial_loss": null})"));
  const json& reply = o.facts["classes"][1];
  EXPECT_EQ(reply["class"], "icmp echo-reply 10.255.2.11 > 10.255.1.11");
  EXPECT_EQ(reply["direction"], "reverse");  // replies travel the path backwards
  EXPECT_EQ(reply["seen"], all3);
  EXPECT_EQ(reply["last_seen"], "c1-eth0");
  EXPECT_EQ(reply["lost_after"], nullptr);
  ASSERT_EQ(o.facts["points"].size(), 4u);
  EXPECT_EQ(o.facts["points"][2], json::parse(R"({"name": "c2-underlay", "netns": null,
      "interface": "eth1", "packets": 6, "captured": 6})"));
  auto reqs = fakes.fake_packets.requests();
  ASSERT_EQ(reqs.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(reqs[i].interface, path.ifaces[i]);
    EXPECT_EQ(reqs[i].snaplen, 512);
  }
}

TEST(CaptureStepsTrace, RequestsLostAfterTheSecondPointFail) {
  Path path;
  for (uint16_t s = 1; s <= 3; ++s) path.echo(s, 2);
  FakeServices fakes;
  path.install(fakes);
  auto o = run_step("trace.hops",
                    {{"points", path.points()}, {"flow", flow_to_b()}, {"duration", 1000}}, &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message,
            "icmp echo-request 10.255.1.11 > 10.255.2.11: 3 packets last seen at c1-vtep, never "
            "at c2-underlay");
  EXPECT_EQ(o.facts["lost"], true);
  EXPECT_EQ(o.facts["last_hop"], "c1-vtep");
  EXPECT_EQ(o.facts["lost_between"], json::array({"c1-vtep", "c2-underlay"}));
  const json& c = o.facts["classes"][0];
  EXPECT_EQ(c["lost_after"], "c1-vtep");
  EXPECT_EQ(c["last_seen"], "c1-vtep");
  EXPECT_EQ(c["seen"], json({{"c1-eth0", 3}, {"c1-vtep", 3}, {"c2-underlay", 0}, {"c2-eth0", 0}}));
  EXPECT_EQ(c["answered"], 0);
  ASSERT_FALSE(o.evidence.empty());
  EXPECT_EQ(o.evidence[0],
            "icmp echo-request 10.255.1.11 > 10.255.2.11: c1-eth0 3, c1-vtep 3, c2-underlay 0, "
            "c2-eth0 0  <- lost here");
}

TEST(CaptureStepsTrace, RepliesLostOnTheWayBackFail) {
  Path path;
  for (uint16_t s = 1; s <= 2; ++s) path.echo(s, Path::kPoints, 2);  // replies at c2 only
  FakeServices fakes;
  path.install(fakes);
  auto o = run_step("trace.hops",
                    {{"points", path.points()}, {"flow", flow_to_b()}, {"duration", 1000}}, &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message,
            "icmp echo-reply 10.255.2.11 > 10.255.1.11: 2 packets last seen at c2-underlay, "
            "never at c1-vtep");
  EXPECT_EQ(o.facts["last_hop"], "c2-underlay");
  EXPECT_EQ(o.facts["lost_between"], json::array({"c2-underlay", "c1-vtep"}));
  // The requests got there: their replies were seen.
  const json& req = o.facts["classes"][0];
  EXPECT_EQ(req["direction"], "forward");
  EXPECT_EQ(req["answered"], 2);
  EXPECT_EQ(req["lost_after"], nullptr);
  const json& rep = o.facts["classes"][1];
  EXPECT_EQ(rep["direction"], "reverse");
  EXPECT_EQ(rep["lost_after"], "c2-underlay");
}

TEST(CaptureStepsTrace, ASourceRewriteBetweenTwoPointsIsReported) {
  // The sender's address and port are rewritten (SNAT) between its eth0 and the uplink.
  std::map<std::string, CannedCapture> caps;
  for (uint32_t i = 0; i < 2; ++i) {
    int64_t t = kT0 + int64_t{i} * 1'000'000;
    Bytes before = frames::ipv4(kA, "10.0.2.11", 6,
                                frames::tcp(40000, 8080, 1000 + i, 0, frames::kSyn));
    Bytes after = frames::ipv4("10.0.16.11", "10.0.2.11", 6,
                               frames::tcp(61000, 8080, 1000 + i, 0, frames::kSyn));
    caps["eth0"].packets.emplace_back(t, frames::ether(before));
    caps["uplink"].packets.emplace_back(t + 100, frames::ether(after));
    caps["peer"].packets.emplace_back(t + 200, frames::ether(after));
  }
  FakeServices fakes;
  fakes.fake_packets.answer([caps](const LiveCaptureRequest& r, const StepContext&)
                                -> std::expected<CannedCapture, std::string> {
    return caps.at(r.interface);
  });
  json points = json::parse(R"([{"name": "pod", "interface": "eth0"},
                                {"name": "node", "interface": "uplink"},
                                {"interface": "peer"}])");
  auto o = run_step("trace.hops",
                    {{"points", points}, {"flow", {{"port", 8080}}}, {"duration", 500}}, &fakes);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "2 packets in 1 class followed across 3 points; none lost; 2 rewrites");
  EXPECT_EQ(o.facts["rewrites"], json::parse(R"([
      {"from": "pod", "to": "node", "field": "sport", "before": "40000", "after": "61000",
       "packets": 2},
      {"from": "pod", "to": "node", "field": "src", "before": "10.255.1.11",
       "after": "10.0.16.11", "packets": 2}])"));
  EXPECT_EQ(o.facts["classes"][0]["class"], "tcp 10.255.1.11 > 10.0.2.11.8080");
  EXPECT_EQ(o.facts["classes"][0]["seen"], json({{"pod", 2}, {"node", 2}, {"peer", 2}}));
  EXPECT_EQ(o.facts["points"][2]["name"], "peer");  // unnamed: the interface names it
  EXPECT_THAT(o.evidence.back(),
              HasSubstr("rewrite between pod and node: src 10.255.1.11 -> 10.0.16.11 (2 packets)"));
}

TEST(CaptureStepsTrace, NothingOfTheFlowSeenFails) {
  Path path;
  path.echo(1, Path::kPoints, 0);
  FakeServices fakes;
  path.install(fakes);
  auto o = run_step("trace.hops",
                    {{"points", path.points()}, {"flow", {{"host", "10.9.9.9"}}}, {"duration", 200}},
                    &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "no packet of the flow was seen at any of the 4 points");
  EXPECT_EQ(o.facts["packets"], 0);
  EXPECT_EQ(o.facts["classes"], json::array());
  EXPECT_EQ(o.facts["points"][0]["captured"], 2);  // captured, but not the flow
  EXPECT_EQ(o.facts["points"][0]["packets"], 0);
}

TEST(CaptureStepsTrace, APointThatCannotOpenIsAnErrorNamingIt) {
  Path path;
  path.echo(1, Path::kPoints, 0);
  FakeServices fakes;
  path.install(fakes, "eth1");
  int readied = 0;
  StepContext ctx;
  ctx.on_ready = [&] { ++readied; };
  auto o = run_step("trace.hops", {{"points", path.points()}, {"duration", 200}}, &fakes, ctx);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "point 'c2-underlay': no such interface 'eth1' in this namespace");
  EXPECT_EQ(readied, 0);
}

TEST(CaptureStepsTrace, BadPointsAndFlowKeysAreErrors) {
  FakeServices fakes;
  fakes.fake_packets.answer(CannedCapture{});
  auto err = [&](json points, json flow = nullptr) {
    json p = {{"points", std::move(points)}, {"duration", 100}};
    if (!flow.is_null()) p["flow"] = std::move(flow);
    auto o = run_step("trace.hops", std::move(p), &fakes);
    EXPECT_EQ(o.status, Status::kError) << o.message;
    return o.message;
  };
  const json two = json::parse(R"([{"interface": "a"}, {"interface": "b"}])");
  EXPECT_EQ(err(json::parse(R"([{"interface": "a"}])")),
            "points: give 2 to 16 capture points in path order");
  json seventeen = json::array();
  for (int i = 0; i < 17; ++i) seventeen.push_back({{"interface", fmt::format("e{}", i)}});
  EXPECT_EQ(err(seventeen), "points: give 2 to 16 capture points in path order");
  EXPECT_EQ(err(json::parse(R"([{"interface": "a"}, {"name": "b"}])")),
            "points[1]: needs an interface");
  EXPECT_EQ(err(json::parse(R"([{"interface": "a"}, "b"])")), "points[1]: needs an interface");
  EXPECT_EQ(err(json::parse(R"([{"name": "x", "interface": "a"}, {"name": "x", "interface": "b"}])")),
            "points: two points named 'x'");
  // Unnamed points in one namespace are named by their interface.
  EXPECT_EQ(err(json::parse(R"([{"interface": "a"}, {"interface": "a"}])")),
            "points: two points named 'a'");
  EXPECT_EQ(err(json::parse(R"([{"interface": "a", "nets": "x"}, {"interface": "b"}])")),
            "points[0].nets: unknown key or not a string (keys: name, netns, interface, filter)");
  EXPECT_EQ(err(two, {{"host", "nope"}}), "flow.host: 'nope' is not an IP address");
  EXPECT_EQ(err(two, {{"dst", "10.0.0.256"}}), "flow.dst: '10.0.0.256' is not an IP address");
  EXPECT_EQ(err(two, {{"proto", "sctpx"}}),
            "flow.proto: 'sctpx' is not icmp, tcp, udp, icmpv6 or a protocol number");
  EXPECT_EQ(err(two, {{"proto", 300}}),
            "flow.proto: '300' is not icmp, tcp, udp, icmpv6 or a protocol number");
  EXPECT_EQ(err(two, {{"port", 70000}}), "flow.port: '70000' is not a port");
  EXPECT_EQ(err(two, {{"port", "http"}}), "flow.port: 'http' is not a port");
  EXPECT_EQ(err(two, {{"colour", "red"}}),
            "flow.colour: unknown key (keys: host, src, dst, proto, port)");
  // None of these got as far as capturing.
  EXPECT_TRUE(fakes.fake_packets.requests().empty());
}

TEST(CaptureStepsTrace, AProtocolNumberSelectsTheFlow) {
  Path path;
  path.echo(1, Path::kPoints, 0);
  path.see(0, kT0 + 5, frames::ipv4(kA, kB, 17, frames::udp(5000, 53, Bytes(4, 1))));
  FakeServices fakes;
  path.install(fakes);
  auto o = run_step("trace.hops",
                    {{"points", path.points()}, {"flow", {{"proto", 17}}}, {"duration", 200}},
                    &fakes);
  // Only the UDP datagram is followed, and it was seen at the first point only.
  EXPECT_EQ(o.status, Status::kFail) << o.message;
  EXPECT_EQ(o.facts["packets"], 1);
  EXPECT_EQ(o.facts["classes"][0]["class"], "udp 10.255.1.11 > 10.255.2.11.53");
  EXPECT_EQ(o.facts["last_hop"], "c1-eth0");
}

TEST(CaptureStepsTrace, AStopRequestStillTakesWhatWasCaptured) {
  Path path;
  for (uint16_t s = 1; s <= 2; ++s) path.echo(s, Path::kPoints, 0);
  FakeServices fakes;
  path.install(fakes);
  std::atomic<bool> stop{true};  // the steps that needed the trace are already done
  StepContext ctx;
  ctx.stop_requested = &stop;
  auto o = run_step("trace.hops", {{"points", path.points()}, {"flow", flow_to_b()}}, &fakes, ctx);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["packets"], 4);
  EXPECT_EQ(o.facts["lost"], false);
}

}  // namespace
}  // namespace netplay
