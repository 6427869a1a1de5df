/// vxlan::Tally on decoded synthetic frames: totals, VNIs, policy ids and the apps behind
/// them, inner flows, ICMP echo and TCP handshake pairing; AppMap's tags and store files.

#include "steps/net/vxlan_tally.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/support/frames.h"

namespace netplay {
namespace {

using frames::Bytes;
using ::testing::HasSubstr;

constexpr const char* kA = "10.255.1.11";  // app-a's container
constexpr const char* kB = "10.255.2.11";  // app-b's container

/// Decodes `b` (cut to `caplen` bytes when given) and adds it to `t` at `ts_ns`.
void add(vxlan::Tally& t, const Bytes& b, int64_t ts_ns = frames::ns(1704164645),
         size_t caplen = SIZE_MAX) {
  packet::PortSet ports;
  ports.set(4789);
  packet::Frame f;
  size_t n = std::min(caplen, b.size());
  packet::decode(packet::kLinkEthernet, b.data(), static_cast<uint32_t>(n),
                 static_cast<uint32_t>(b.size()), ports, f);
  t.add(f, ts_ns);
}

Bytes echo(bool request, const std::string& src, const std::string& dst, uint16_t seq,
           frames::Underlay u = {}, uint16_t id = 7) {
  return frames::vxlan_frame(frames::ipv4(src, dst, 1, frames::icmp_echo(request, id, seq)), u);
}

Bytes tcp(const std::string& src, const std::string& dst, uint16_t sport, uint16_t dport,
          uint32_t seq, uint32_t ack, uint8_t flags, frames::Underlay u = {}) {
  return frames::vxlan_frame(
      frames::ipv4(src, dst, 6, frames::tcp(sport, dport, seq, ack, flags)), u);
}

frames::Underlay with_gbp(std::optional<uint16_t> gbp, uint32_t vni = 1) {
  frames::Underlay u;
  u.gbp = gbp;
  u.vni = vni;
  return u;
}

/// tags.json naming app-a 0003 and app-b 0004; store.json placing them at kA and kB.
struct Files {
  frames::TempDir dir;
  std::string tags = dir.file(
      "tags.json",
      R"({"tags":[{"id":"app-a","tag":"0003"},{"id":"app-b","tag":"0004"}]})");
  std::string store = dir.file("store.json", R"({
      "h-a": {"ip": "10.255.1.11", "metadata": {"app_id": "app-a", "space_id": "s"}},
      "h-b": {"ip": "10.255.2.11", "metadata": {"policy_group_id": "app-b"}},
      "h-c": {"ip": "10.255.3.11"},
      "h-d": {"metadata": {"app_id": "no-ip"}}})");
};

TEST(VxlanTally, TotalsCountEveryFrame) {
  vxlan::Tally t;
  Bytes req = echo(true, kA, kB, 1);
  Bytes rep = echo(false, kB, kA, 1, with_gbp(4));
  Bytes other = echo(true, kA, kB, 2, with_gbp(3, 2));
  Bytes arp = frames::ether(Bytes(28, 0), {}, frames::kEtherArp);
  add(t, req, frames::ns(1704164645, 250000));
  add(t, rep, frames::ns(1704164645, 500000));
  add(t, other, frames::ns(1704164646));
  add(t, arp, frames::ns(1704164646, 500000));
  add(t, req, frames::ns(1704164647), 14 + 20 + 8 + 8 + 14 + 10);  // cut in the inner IP header
  json f = t.facts();
  EXPECT_EQ(t.frames(), 5u);
  EXPECT_EQ(f["frames"], 5);
  EXPECT_EQ(f["bytes"], req.size() * 2 + rep.size() + other.size() + arp.size());
  EXPECT_EQ(f["vxlan_frames"], 4);
  EXPECT_EQ(f["other_frames"], 1);
  EXPECT_EQ(f["malformed"], 1);
  EXPECT_EQ(f["malformed_reasons"], json({{"truncated inner IP header", 1}}));
  EXPECT_DOUBLE_EQ(f["first_ts"].get<double>(), 1704164645.25);
  EXPECT_DOUBLE_EQ(f["last_ts"].get<double>(), 1704164647.0);
  EXPECT_DOUBLE_EQ(f["duration_s"].get<double>(), 1.75);
  EXPECT_EQ(f["vnis"], json({{"1", 3}, {"2", 1}}));
  EXPECT_EQ(f["no_gbp_frames"], 0);
  EXPECT_EQ(f["underlay"], json::parse(R"([{"src":"10.0.16.11","dst":"10.0.16.12",
                                            "dport":4789,"frames":4}])"));
  // Without tags nothing is unknown, nothing is named.
  EXPECT_EQ(f["unknown_tags"], json::array());
  EXPECT_EQ(f["apps"], json::array());
  EXPECT_EQ(f["tag_mismatches"], json::array());
}

TEST(VxlanTally, NothingSeenGivesZerosAndEmptyTables) {
  vxlan::Tally t;
  json f = t.facts();
  EXPECT_EQ(f["frames"], 0);
  EXPECT_EQ(f["first_ts"], 0.0);
  EXPECT_EQ(f["duration_s"], 0.0);
  EXPECT_EQ(f["vnis"], json::object());
  EXPECT_EQ(f["malformed_reasons"], json::object());
  EXPECT_EQ(f["gbp"], json::array());
  EXPECT_EQ(f["flows"], json::array());
  EXPECT_EQ(f["flows_total"], 0);
  EXPECT_EQ(f["icmp"], json({{"requests", 0}, {"replies", 0}, {"answered", 0}, {"unanswered", 0}}));
  EXPECT_EQ(f["tcp"], json({{"syn", 0}, {"syn_ack", 0}, {"answered", 0}, {"unanswered", 0}}));
  for (const auto& d : vxlan::kTallyFacts)
    EXPECT_TRUE(f.contains(d.name)) << d.name << " is declared but not reported";
  EXPECT_EQ(f.size(), vxlan::kTallyFacts.size());
}

TEST(VxlanTally, VnisInNumericOrder) {
  vxlan::Tally t;
  add(t, echo(true, kA, kB, 1, with_gbp(3, 9)));
  add(t, echo(true, kA, kB, 2, with_gbp(3, 5)));
  add(t, echo(true, kA, kB, 3, with_gbp(3, 5)));
  add(t, echo(true, kA, kB, 4, with_gbp(3, 3)));
  add(t, echo(true, kA, kB, 5, with_gbp(3, 0xffffff)));
  EXPECT_EQ(t.facts()["vnis"].dump(), R"({"3":1,"5":2,"9":1,"16777215":1})");
}

TEST(VxlanTally, PolicyIdsMostFramesFirstThenById) {
  Files files;
  vxlan::AppMap apps;
  ASSERT_TRUE(apps.load_tags(files.tags).has_value());
  vxlan::Tally t(&apps);
  for (int i = 0; i < 3; ++i) add(t, echo(true, kA, kB, static_cast<uint16_t>(i), with_gbp(0x20)));
  add(t, echo(true, kA, kB, 10, with_gbp(4)));
  add(t, echo(true, kA, kB, 11, with_gbp(3)));
  add(t, echo(true, kA, kB, 12, with_gbp(std::nullopt)));
  json f = t.facts();
  EXPECT_EQ(f["gbp"], json::parse(R"([
      {"id": 32, "tag": "0020", "app": null, "frames": 3},
      {"id": 3, "tag": "0003", "app": "app-a", "frames": 1},
      {"id": 4, "tag": "0004", "app": "app-b", "frames": 1}])"));
  EXPECT_EQ(f["no_gbp_frames"], 1);
  EXPECT_EQ(f["unknown_tags"], json::array({"0020"}));
}

TEST(VxlanTally, AppsSentAndReceivedWithTagsAndStore) {
  Files files;
  vxlan::AppMap apps;
  ASSERT_TRUE(apps.load_tags(files.tags).has_value());
  ASSERT_TRUE(apps.load_store(files.store).has_value());
  vxlan::Tally t(&apps);
  for (uint16_t s = 1; s <= 3; ++s) add(t, echo(true, kA, kB, s, with_gbp(3)));
  for (uint16_t s = 1; s <= 2; ++s) add(t, echo(false, kB, kA, s, with_gbp(4)));
  // No store entry for the source: the tag names the sender.
  add(t, echo(true, "10.255.9.9", kB, 1, with_gbp(4)));
  json f = t.facts();
  EXPECT_EQ(f["apps"], json::parse(R"([
      {"app": "app-b", "tag": "0004", "ips": ["10.255.2.11"], "sent": 3, "received": 4},
      {"app": "app-a", "tag": "0003", "ips": ["10.255.1.11"], "sent": 3, "received": 2},
      {"app": "h-c", "tag": null, "ips": ["10.255.3.11"], "sent": 0, "received": 0}])"));
  EXPECT_EQ(f["tag_mismatches"], json::array());
  EXPECT_EQ(f["unknown_tags"], json::array());
  const json& top = f["flows"][0];
  EXPECT_EQ(top["src_app"], "app-a");
  EXPECT_EQ(top["dst_app"], "app-b");
  EXPECT_EQ(top["frames"], 3);
}

TEST(VxlanTally, ATagThatNamesAnotherAppThanTheStoreIsAMismatch) {
  Files files;
  vxlan::AppMap apps;
  ASSERT_TRUE(apps.load_tags(files.tags).has_value());
  ASSERT_TRUE(apps.load_store(files.store).has_value());
  vxlan::Tally t(&apps);
  add(t, echo(true, kA, kB, 1, with_gbp(4)));  // app-a's address, app-b's tag
  add(t, echo(true, kA, kB, 2, with_gbp(4)));
  add(t, echo(true, kA, kB, 3, with_gbp(3)));  // consistent
  json f = t.facts();
  EXPECT_EQ(f["tag_mismatches"], json::parse(R"([
      {"src": "10.255.1.11", "tag": "0004", "app_by_tag": "app-b", "app_by_ip": "app-a",
       "frames": 2}])"));
  // The store's address wins for sent.
  EXPECT_EQ(f["flows"][0]["src_app"], "app-a");
}

TEST(VxlanTally, EchoRequestsArePairedWithTheirReplies) {
  vxlan::Tally t;
  add(t, echo(true, kA, kB, 1));
  add(t, echo(false, kB, kA, 1));  // answers seq 1
  add(t, echo(true, kA, kB, 2));   // never answered
  add(t, echo(false, kB, kA, 9));  // a reply without a request
  add(t, echo(false, kA, kB, 2));  // seq 2 but the wrong way round: not its reply
  add(t, echo(true, kA, kB, 3));
  add(t, echo(false, kB, kA, 3, {}, 8));  // another id
  add(t, echo(true, kA, kB, 4));
  add(t, echo(false, kB, kA, 4, with_gbp(3, 2)));  // another VNI
  json f = t.facts();
  EXPECT_EQ(f["icmp"], json({{"requests", 4}, {"replies", 5}, {"answered", 1}, {"unanswered", 3}}));
}

TEST(VxlanTally, EchoOverIpv6IsPairedToo) {
  vxlan::Tally t;
  auto e6 = [](bool req, const char* s, const char* d, uint16_t seq) {
    return frames::vxlan_frame(frames::ipv6(s, d, 58, frames::icmp6_echo(req, 5, seq)));
  };
  add(t, e6(true, "fd00::a", "fd00::b", 1));
  add(t, e6(false, "fd00::b", "fd00::a", 1));
  add(t, e6(true, "fd00::a", "fd00::b", 2));
  json f = t.facts();
  EXPECT_EQ(f["icmp"], json({{"requests", 2}, {"replies", 1}, {"answered", 1}, {"unanswered", 1}}));
  EXPECT_EQ(f["flows"][0]["proto"], "icmpv6");
  EXPECT_EQ(f["flows"][0]["dport"], 128);
}

TEST(VxlanTally, RepeatedRequestsWaitForAReplyEach) {
  vxlan::Tally t;
  add(t, echo(true, kA, kB, 1));
  add(t, echo(true, kA, kB, 1));  // a retransmission
  add(t, echo(false, kB, kA, 1));
  json f = t.facts();
  EXPECT_EQ(f["icmp"]["answered"], 1);
  EXPECT_EQ(f["icmp"]["unanswered"], 1);
  add(t, echo(false, kB, kA, 1));
  add(t, echo(false, kB, kA, 1));  // more replies than requests answer nothing more
  f = t.facts();
  EXPECT_EQ(f["icmp"]["answered"], 2);
  EXPECT_EQ(f["icmp"]["unanswered"], 0);
}

TEST(VxlanTally, SynsArePairedWithTheirSynAcks) {
  const uint8_t syn = frames::kSyn, synack = frames::kSyn | frames::kAck, ack = frames::kAck;
  vxlan::Tally t;
  add(t, tcp(kA, kB, 40000, 8080, 1000, 0, syn));
  add(t, tcp(kB, kA, 8080, 40000, 5000, 1001, synack));  // acknowledges 1000 + 1
  add(t, tcp(kA, kB, 40000, 8080, 1001, 5001, ack));     // not part of the count
  add(t, tcp(kA, kB, 40001, 8080, 2000, 0, syn));        // unanswered
  add(t, tcp(kB, kA, 8080, 40001, 6000, 2000, synack));  // acknowledges the wrong seq
  add(t, tcp(kA, kB, 40002, 8080, 3000, 0, syn));
  add(t, tcp(kB, kA, 8081, 40002, 6000, 3001, synack));  // from another port
  json f = t.facts();
  EXPECT_EQ(f["tcp"], json({{"syn", 3}, {"syn_ack", 3}, {"answered", 1}, {"unanswered", 2}}));
  EXPECT_EQ(f["icmp"]["requests"], 0);
}

TEST(VxlanTally, FlowsKeepTheTopRowsAndCountAll) {
  vxlan::Tally t(nullptr, 2);
  for (uint16_t s = 0; s < 3; ++s) add(t, tcp(kA, kB, 40000, 8080, 1000u + s, 0, frames::kAck));
  for (uint16_t s = 0; s < 2; ++s) add(t, echo(true, kA, kB, s, with_gbp(std::nullopt, 7)));
  add(t, frames::vxlan_frame(frames::ipv4(kB, kA, 17, frames::udp(5353, 53, Bytes(4, 0)))));
  json f = t.facts();
  EXPECT_EQ(f["flows_total"], 3);
  ASSERT_EQ(f["flows"].size(), 2u);
  const Bytes one_tcp = tcp(kA, kB, 40000, 8080, 1000, 0, frames::kAck);
  EXPECT_EQ(f["flows"][0], json::parse(fmt::format(R"(
      {{"vni": 1, "gbp": 3, "tag": "0003", "src": "10.255.1.11", "dst": "10.255.2.11",
       "proto": "tcp", "dport": 8080, "frames": 3, "bytes": {}, "src_app": null,
       "dst_app": null}})", 3 * one_tcp.size())));
  const Bytes one_echo = echo(true, kA, kB, 0, with_gbp(std::nullopt, 7));
  EXPECT_EQ(f["flows"][1], json::parse(fmt::format(R"(
      {{"vni": 7, "gbp": null, "tag": null, "src": "10.255.1.11", "dst": "10.255.2.11",
       "proto": "icmp", "dport": 8, "frames": 2, "bytes": {}, "src_app": null,
       "dst_app": null}})", 2 * one_echo.size())));
  // Underlay rows are cut by `top` too.
  EXPECT_EQ(f["underlay"].size(), 1u);
  EXPECT_EQ(f["underlay"][0]["frames"], 6);
}

TEST(VxlanTally, MalformedReasonsSayWhichLayer) {
  vxlan::Tally t;
  Bytes b = echo(true, kA, kB, 1);
  add(t, b, 0, 20);                        // outer IP header cut
  add(t, b, 0, 14 + 20 + 8 + 4);           // VXLAN header cut
  add(t, b, 0, 14 + 20 + 8 + 8 + 14 + 4);  // inner IP header cut
  add(t, b, 0, 14 + 20 + 8 + 8 + 14 + 4);
  frames::Underlay no_i;
  no_i.flags = 0x80;
  add(t, echo(true, kA, kB, 2, no_i));
  json f = t.facts();
  EXPECT_EQ(f["malformed"], 5);
  EXPECT_EQ(nlohmann::json::parse(f["malformed_reasons"].dump()),
            nlohmann::json({{"truncated outer IP header", 1},
                            {"truncated VXLAN header", 1},
                            {"truncated inner IP header", 2},
                            {"VXLAN I flag not set", 1}}));
  // A VXLAN header cut short is not counted as VXLAN; one without the I flag is.
  EXPECT_EQ(f["vxlan_frames"], 3);
  EXPECT_EQ(f["other_frames"], 2);
}

TEST(VxlanTally, DecodeSinkKeepsTheFirstFramesAsEvidence) {
  vxlan::Tally t;
  packet::PortSet ports;
  ports.set(4789);
  vxlan::DecodeSink sink(packet::kLinkEthernet, ports, t, 2);
  Bytes arp = frames::ether(Bytes(28, 0), {}, frames::kEtherArp);
  Bytes req = echo(true, kA, kB, 1);
  for (const Bytes* b : {&req, &arp, &req}) {
    PacketRef p{frames::ns(1704164645), static_cast<uint32_t>(b->size()),
                static_cast<uint32_t>(b->size()), b->data()};
    EXPECT_TRUE(sink.packet(p));
  }
  EXPECT_EQ(t.frames(), 3u);
  ASSERT_EQ(sink.evidence.size(), 3u);  // a VXLAN frame gives two lines, ARP one
  EXPECT_THAT(sink.evidence[0], HasSubstr("VXLAN-GBP"));
  EXPECT_EQ(sink.evidence[1],
            "    IP 10.255.1.11 > 10.255.2.11: ICMP echo request, id 7, seq 1, length 64");
  EXPECT_EQ(sink.evidence[2], "03:04:05.000000 ethertype 0x0806, length 42");
  EXPECT_TRUE(sink.frame().vxlan);
}

TEST(VxlanTally, TagTextIsFourHexDigits) {
  EXPECT_EQ(vxlan::tag_text(3), "0003");
  EXPECT_EQ(vxlan::tag_text(0xabcd), "abcd");
  EXPECT_EQ(vxlan::tag_text(0), "0000");
}

TEST(VxlanTally, PortSetDefaultsTo4789) {
  packet::PortSet d = vxlan::port_set({});
  EXPECT_TRUE(d.has(4789));
  EXPECT_FALSE(d.has(8472));
  packet::PortSet f = vxlan::port_set({8472, 70000, -1});
  EXPECT_TRUE(f.has(8472));
  EXPECT_FALSE(f.has(4789));
}

TEST(VxlanAppMap, TagsAndStoreNameApps) {
  Files files;
  vxlan::AppMap apps;
  EXPECT_FALSE(apps.have_tags);
  ASSERT_TRUE(apps.load_tags(files.tags).has_value());
  ASSERT_TRUE(apps.load_store(files.store).has_value());
  EXPECT_TRUE(apps.have_tags);
  EXPECT_TRUE(apps.have_store);
  EXPECT_EQ(apps.tag_app(3), "app-a");
  EXPECT_EQ(apps.tag_app(4), "app-b");
  EXPECT_EQ(apps.tag_app(5), "");
  packet::Addr a;
  a.family = 4;
  a.bytes = {10, 255, 1, 11};
  EXPECT_EQ(apps.ip_app(a), "app-a");
  a.bytes = {10, 255, 2, 11};
  EXPECT_EQ(apps.ip_app(a), "app-b");  // policy_group_id when there is no app_id
  a.bytes = {10, 255, 3, 11};
  EXPECT_EQ(apps.ip_app(a), "h-c");  // no metadata: the handle
  EXPECT_EQ(apps.app_of_ip.size(), 3u);  // an entry without ip is left out

  // A bare list of tags, upper-case hex, an IPv6 container.
  frames::TempDir dir;
  vxlan::AppMap more;
  ASSERT_TRUE(more.load_tags(dir.file("t.json", R"([{"id": "x", "tag": "00FF"}])")).has_value());
  EXPECT_EQ(more.tag_app(0xff), "x");
  ASSERT_TRUE(more.load_store(dir.file("s.json", R"({"h": {"ip": "fd00::5"}})")).has_value());
  packet::Addr six;
  six.family = 6;
  six.bytes = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5};
  EXPECT_EQ(more.ip_app(six), "h");
}

TEST(VxlanAppMap, LoadErrorsNameTheFile) {
  frames::TempDir dir;
  vxlan::AppMap apps;
  auto err = [&](bool tags, const std::string& name, const std::string& content) {
    std::string path = dir.file(name, content);
    auto r = tags ? apps.load_tags(path) : apps.load_store(path);
    EXPECT_FALSE(r.has_value()) << name;
    return std::make_pair(path, r ? std::string() : r.error());
  };
  {
    auto [path, e] = err(true, "notjson.json", "tags: [0003]");
    EXPECT_EQ(e, "tags: " + path + " is not JSON");
  }
  {
    auto [path, e] = err(true, "shape.json", R"({"id": "a", "tag": "0003"})");
    EXPECT_EQ(e, "tags: " + path + R"(: expected {"tags": [{"id": ..., "tag": "0003"}]})");
  }
  {
    auto [path, e] = err(true, "entry.json", R"({"tags": [{"id": "a", "tag": 3}]})");
    EXPECT_EQ(e, "tags: " + path + R"(: every entry needs a string "id" and "tag")");
  }
  for (const char* bad : {"00zz", "", "10000", "-1"}) {
    auto [path, e] = err(true, "hex.json",
                         fmt::format(R"({{"tags": [{{"id": "a", "tag": "{}"}}]}})", bad));
    EXPECT_EQ(e, fmt::format("tags: {}: tag '{}' is not a 16-bit hex number", path, bad));
  }
  {
    std::string missing = dir.path("missing.json");
    auto r = apps.load_tags(missing);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), "tags: cannot read " + missing);
    auto s = apps.load_store(missing);
    ASSERT_FALSE(s.has_value());
    EXPECT_EQ(s.error(), "store: cannot read " + missing);
  }
  {
    auto [path, e] = err(false, "store-notjson.json", "{");
    EXPECT_EQ(e, "store: " + path + " is not JSON");
  }
  {
    auto [path, e] = err(false, "store-shape.json", R"([{"ip": "10.0.0.1"}])");
    EXPECT_EQ(e, "store: " + path +
                     ": expected the container metadata store (handle -> {ip, metadata})");
  }
  {
    auto [path, e] = err(false, "store-ip.json", R"({"h": {"ip": "10.0.0.300"}})");
    EXPECT_EQ(e, "store: " + path + ": '10.0.0.300' is not an IP address");
  }
  EXPECT_FALSE(apps.have_tags);
  EXPECT_FALSE(apps.have_store);
}

}  // namespace
}  // namespace netplay
