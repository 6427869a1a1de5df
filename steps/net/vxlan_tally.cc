#include "steps/net/vxlan_tally.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <fstream>
#include <tuple>

#include "steps/net/flat_map.h"

namespace netplay::vxlan {

using packet::Addr;
using packet::Frame;
using packet::IpLayer;
using packet::Malformed;

namespace {

constexpr size_t kMaxFlows = 1 << 16;
constexpr size_t kMaxPending = 1 << 16;
constexpr size_t kMaxVnis = 4096;

/// 64-bit mixing of a plain-bytes key (no padding: keys are zero-filled, then written).
template <class K>
size_t hash_words(const K& k) {
  static_assert(sizeof(K) % 8 == 0);
  uint64_t w[sizeof(K) / 8];
  std::memcpy(w, &k, sizeof(K));
  // Independent multiplies (no chain from one word to the next), then one final mix.
  uint64_t h = 0;
  for (size_t i = 0; i < sizeof(K) / 8; ++i) h += (w[i] ^ (0x9e3779b97f4a7c15ull * (i + 1))) * 0xff51afd7ed558ccdull;
  h ^= h >> 32;
  h *= 0xc4ceb9fe1a85ec53ull;
  return static_cast<size_t>(h ^ (h >> 29));
}

template <class K>
bool same_bytes(const K& a, const K& b) {
  return std::memcmp(&a, &b, sizeof(K)) == 0;
}

struct FlowKey {
  uint8_t inner_src[16];
  uint8_t inner_dst[16];
  uint8_t outer_src[16];
  uint8_t outer_dst[16];
  uint32_t vni;
  int32_t gbp;  // -1: no G bit
  uint16_t dport;        // TCP/UDP port, ICMP type
  uint16_t outer_dport;
  uint8_t proto;
  uint8_t inner_family;  // 0 (no inner IP), 4, 6
  uint8_t outer_family;
  uint8_t has_dport;
  bool operator==(const FlowKey& o) const { return same_bytes(*this, o); }
};
static_assert(sizeof(FlowKey) == 80);

struct FlowStat {
  uint64_t frames = 0;
  uint64_t bytes = 0;
};

/// An ICMP echo (addresses, id, seq) or a TCP handshake (addresses, ports, sequence).
struct PairKey {
  uint8_t a[16];
  uint8_t b[16];
  uint32_t vni;
  uint32_t seq;
  uint16_t id_or_sport;
  uint16_t dport;
  uint8_t kind;  // 1 icmp, 2 tcp
  uint8_t pad[3];
  bool operator==(const PairKey& o) const { return same_bytes(*this, o); }
};
static_assert(sizeof(PairKey) == 48);

Addr addr_of(const uint8_t* b, uint8_t family) {
  Addr a;
  a.family = family;
  std::memcpy(a.bytes.data(), b, 16);
  return a;
}

double seconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }

}  // namespace

std::string tag_text(uint16_t id) { return fmt::format("{:04x}", id); }

std::expected<void, std::string> AppMap::load_tags(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::unexpected(fmt::format("tags: cannot read {}", path));
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return std::unexpected(fmt::format("tags: {} is not JSON", path));
  const json* list = &j;
  if (j.is_object() && j.contains("tags")) list = &j["tags"];
  if (!list->is_array())
    return std::unexpected(fmt::format(
        "tags: {}: expected {{\"tags\": [{{\"id\": ..., \"tag\": \"0003\"}}]}}", path));
  for (const auto& t : *list) {
    if (!t.is_object() || !t.contains("id") || !t.contains("tag") || !t["tag"].is_string() ||
        !t["id"].is_string())
      return std::unexpected(
          fmt::format("tags: {}: every entry needs a string \"id\" and \"tag\"", path));
    const std::string tag = t["tag"].get<std::string>();
    unsigned long v = 0;
    size_t used = 0;
    try {
      v = std::stoul(tag, &used, 16);
    } catch (...) {
      used = 0;
    }
    bool hex = !tag.empty() && std::all_of(tag.begin(), tag.end(), [](char c) {
      return std::isxdigit(static_cast<unsigned char>(c)) != 0;
    });
    if (!hex || used != tag.size() || v > 0xffff)
      return std::unexpected(
          fmt::format("tags: {}: tag '{}' is not a 16-bit hex number", path, tag));
    app_of_tag[static_cast<uint16_t>(v)] = t["id"].get<std::string>();
  }
  have_tags = true;
  return {};
}

std::expected<void, std::string> AppMap::load_store(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::unexpected(fmt::format("store: cannot read {}", path));
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return std::unexpected(fmt::format("store: {} is not JSON", path));
  if (!j.is_object())
    return std::unexpected(fmt::format(
        "store: {}: expected the container metadata store (handle -> {{ip, metadata}})", path));
  for (const auto& [handle, c] : j.items()) {
    if (!c.is_object() || !c.contains("ip") || !c["ip"].is_string()) continue;
    std::string app;
    if (c.contains("metadata") && c["metadata"].is_object()) {
      const json& m = c["metadata"];
      for (const char* k : {"app_id", "policy_group_id"})
        if (m.contains(k) && m[k].is_string() && !m[k].get<std::string>().empty()) {
          app = m[k].get<std::string>();
          break;
        }
    }
    if (app.empty()) app = handle;
    Addr a;
    std::string ip = c["ip"].get<std::string>();
    a.family = ip.find(':') == std::string::npos ? 4 : 6;
    if (inet_pton(a.family == 4 ? AF_INET : AF_INET6, ip.c_str(), a.bytes.data()) != 1)
      return std::unexpected(fmt::format("store: {}: '{}' is not an IP address", path, ip));
    app_of_ip[a] = app;
  }
  have_store = true;
  return {};
}

std::string AppMap::tag_app(uint16_t tag) const {
  auto it = app_of_tag.find(tag);
  return it == app_of_tag.end() ? "" : it->second;
}

std::string AppMap::ip_app(const Addr& a) const {
  auto it = app_of_ip.find(a);
  return it == app_of_ip.end() ? "" : it->second;
}

struct Tally::Impl {
  const AppMap* apps;
  size_t top;
  uint64_t bytes = 0, vxlan = 0, other = 0, malformed = 0;
  uint64_t flows_overflow = 0;
  int64_t first_ts = 0, last_ts = 0;
  std::array<std::array<uint64_t, 2>, static_cast<size_t>(Malformed::kCount)> reasons{};
  // What did not fit in the flow table is still counted by tag and VNI (bounded maps).
  std::unordered_map<int32_t, uint64_t> overflow_gbp;
  std::unordered_map<uint32_t, uint64_t> overflow_vni;
  FlatMap<FlowKey, FlowStat> flows{1024};
  FlowKey last_key{};
  uint64_t last_hash = 0;
  FlowStat* last_stat = nullptr;  // valid until the next insert into `flows`
  FlatMap<PairKey, uint32_t> pending{1024};  // outstanding requests (0: answered, dead)
  uint64_t icmp_req = 0, icmp_rep = 0, icmp_answered = 0;
  uint64_t tcp_syn = 0, tcp_synack = 0, tcp_answered = 0;
  uint64_t pairs_untracked = 0;

  void pair(const Frame& f) {
    const IpLayer& in = f.inner;
    PairKey k;
    std::memset(&k, 0, sizeof k);
    k.vni = f.vni;
    bool request = false, reply = false;
    if (in.icmp_echo) {
      bool v6 = in.proto == 58;
      request = in.icmp_type == (v6 ? 128 : 8);
      reply = !request;
      k.kind = 1;
      k.id_or_sport = in.icmp_id;
      k.seq = in.icmp_seq;
      if (request) ++icmp_req;
      else ++icmp_rep;
    } else if (in.has_tcp && (in.tcp_flags & packet::kTcpSyn)) {
      k.kind = 2;
      if (in.tcp_flags & packet::kTcpAck) {
        reply = true;
        ++tcp_synack;
        k.id_or_sport = in.dport;  // the SYN's source port
        k.dport = in.sport;
        k.seq = in.tcp_ack;        // the SYN's seq + 1
      } else {
        request = true;
        ++tcp_syn;
        k.id_or_sport = in.sport;
        k.dport = in.dport;
        k.seq = in.tcp_seq + 1;
      }
    } else {
      return;
    }
    // A request is keyed (src, dst); its reply comes back (dst, src).
    if (request) {
      std::memcpy(k.a, in.src.bytes.data(), 16);
      std::memcpy(k.b, in.dst.bytes.data(), 16);
      uint64_t h = hash_words(k);
      uint32_t* n = pending.find_or_insert(k, h, kMaxPending);
      if (!n) {
        pending.compact([](uint32_t v) { return v > 0; });  // drop the answered ones
        n = pending.find_or_insert(k, h, kMaxPending);
      }
      if (!n) {
        ++pairs_untracked;
        return;
      }
      ++*n;
    } else if (reply) {
      std::memcpy(k.a, in.dst.bytes.data(), 16);
      std::memcpy(k.b, in.src.bytes.data(), 16);
      uint32_t* n = pending.find(k, hash_words(k));
      if (!n || *n == 0) return;
      if (k.kind == 1) ++icmp_answered;
      else ++tcp_answered;
      --*n;
    }
  }

  void count_flow(const Frame& f) {
    FlowKey k;
    std::memset(&k, 0, sizeof k);
    const IpLayer& o = f.outer;
    std::memcpy(k.outer_src, o.src.bytes.data(), 16);
    std::memcpy(k.outer_dst, o.dst.bytes.data(), 16);
    k.outer_family = o.src.family;
    k.outer_dport = o.dport;
    k.vni = f.vni;
    k.gbp = f.gbp_bit ? f.gbp : -1;
    if (f.has_inner_ip) {
      const IpLayer& in = f.inner;
      std::memcpy(k.inner_src, in.src.bytes.data(), 16);
      std::memcpy(k.inner_dst, in.dst.bytes.data(), 16);
      k.inner_family = in.src.family;
      k.proto = in.proto;
      if (in.has_ports) {
        k.dport = in.dport;
        k.has_dport = 1;
      } else if (in.has_icmp) {
        k.dport = in.icmp_type;
        k.has_dport = 1;
      }
    }
    uint64_t h = hash_words(k);
    if (last_stat && h == last_hash && k == last_key) {
      ++last_stat->frames;
      last_stat->bytes += f.len;
      return;
    }
    FlowStat* st = flows.find_or_insert(k, h, kMaxFlows);
    if (!st) {
      ++flows_overflow;
      if (overflow_gbp.size() < kMaxVnis || overflow_gbp.contains(k.gbp)) ++overflow_gbp[k.gbp];
      if (overflow_vni.size() < kMaxVnis || overflow_vni.contains(k.vni)) ++overflow_vni[k.vni];
      return;
    }
    ++st->frames;
    st->bytes += f.len;
    last_key = k;
    last_hash = h;
    last_stat = st;
  }
};

Tally::Tally(const AppMap* apps, size_t top) : impl_(std::make_unique<Impl>()) {
  impl_->apps = apps;
  impl_->top = top;
}

Tally::~Tally() = default;

void Tally::add(const Frame& f, int64_t ts_ns) {
  Impl& m = *impl_;
  if (frames_ == 0) m.first_ts = ts_ns;
  ++frames_;
  m.last_ts = ts_ns;
  m.bytes += f.len;
  if (f.malformed != Malformed::kNone) {
    ++m.malformed;
    ++m.reasons[static_cast<size_t>(f.malformed)][f.malformed_inner ? 1 : 0];
  }
  if (!f.vxlan) {
    ++m.other;
    return;
  }
  ++m.vxlan;
  m.count_flow(f);
  if (f.has_inner_ip) m.pair(f);
}

json Tally::facts() const {
  const Impl& m = *impl_;
  const AppMap* apps = m.apps;
  json j;
  j["frames"] = frames_;
  j["bytes"] = m.bytes;
  j["vxlan_frames"] = m.vxlan;
  j["other_frames"] = m.other;
  j["malformed"] = m.malformed;
  json reasons = json::object();
  for (size_t r = 0; r < m.reasons.size(); ++r)
    for (int inner = 0; inner < 2; ++inner)
      if (m.reasons[r][inner])
        reasons[packet::reason_text(static_cast<Malformed>(r), inner)] = m.reasons[r][inner];
  j["malformed_reasons"] = reasons;
  j["first_ts"] = frames_ ? seconds(m.first_ts) : 0.0;
  j["last_ts"] = frames_ ? seconds(m.last_ts) : 0.0;
  j["duration_s"] = frames_ ? seconds(m.last_ts - m.first_ts) : 0.0;
  // VNIs and tags from the flow table (and what overflowed it).
  std::map<uint32_t, uint64_t> vni_count(m.overflow_vni.begin(), m.overflow_vni.end());
  std::map<int32_t, uint64_t> gbp_count(m.overflow_gbp.begin(), m.overflow_gbp.end());
  m.flows.for_each([&](const FlowKey& k, const FlowStat& st) {
    vni_count[k.vni] += st.frames;
    gbp_count[k.gbp] += st.frames;
  });
  json vnis = json::object();
  for (const auto& [vni, n] : vni_count) vnis[std::to_string(vni)] = n;
  j["vnis"] = vnis;

  // Tags, most frames first.
  uint64_t no_gbp = 0;
  std::vector<std::pair<uint64_t, uint16_t>> tags;
  for (const auto& [id, n] : gbp_count) {
    if (id < 0) no_gbp += n;
    else tags.emplace_back(n, static_cast<uint16_t>(id));
  }
  std::sort(tags.begin(), tags.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  json gbp = json::array();
  json unknown = json::array();
  for (const auto& [n, id] : tags) {
    std::string app = apps ? apps->tag_app(id) : "";
    gbp.push_back({{"id", id}, {"tag", tag_text(id)},
                   {"app", app.empty() ? json(nullptr) : json(app)}, {"frames", n}});
    if (apps && apps->have_tags && app.empty()) unknown.push_back(tag_text(id));
  }
  j["gbp"] = gbp;
  j["no_gbp_frames"] = no_gbp;
  j["unknown_tags"] = unknown;

  // Flows, most frames first; apps and underlay paths from all of them.
  std::vector<std::pair<const FlowKey*, const FlowStat*>> flows;
  flows.reserve(m.flows.size());
  m.flows.for_each([&](const FlowKey& k, const FlowStat& s) { flows.emplace_back(&k, &s); });
  std::sort(flows.begin(), flows.end(), [](const auto& a, const auto& b) {
    if (a.second->frames != b.second->frames) return a.second->frames > b.second->frames;
    return std::memcmp(a.first, b.first, sizeof(FlowKey)) < 0;
  });
  struct AppStat {
    std::string tag;
    std::vector<std::string> ips;
    uint64_t sent = 0, received = 0;
  };
  std::map<std::string, AppStat> app_stats;
  if (apps) {
    for (const auto& [tag, app] : apps->app_of_tag) app_stats[app].tag = tag_text(tag);
    for (const auto& [ip, app] : apps->app_of_ip) app_stats[app].ips.push_back(ip.str());
  }
  std::map<std::tuple<std::string, std::string, uint16_t>, uint64_t> underlay;
  json mismatches = json::array();
  json rows = json::array();
  for (const auto& [k, s] : flows) {
    Addr src = addr_of(k->inner_src, k->inner_family), dst = addr_of(k->inner_dst, k->inner_family);
    std::string by_tag = apps && k->gbp >= 0 ? apps->tag_app(static_cast<uint16_t>(k->gbp)) : "";
    std::string by_ip = apps && src ? apps->ip_app(src) : "";
    std::string src_app = by_ip.empty() ? by_tag : by_ip;
    std::string dst_app = apps && dst ? apps->ip_app(dst) : "";
    if (!src_app.empty()) app_stats[src_app].sent += s->frames;
    if (!dst_app.empty()) app_stats[dst_app].received += s->frames;
    if (!by_tag.empty() && !by_ip.empty() && by_tag != by_ip && mismatches.size() < m.top)
      mismatches.push_back({{"src", src.str()}, {"tag", tag_text(static_cast<uint16_t>(k->gbp))},
                            {"app_by_tag", by_tag}, {"app_by_ip", by_ip},
                            {"frames", s->frames}});
    underlay[{addr_of(k->outer_src, k->outer_family).str(),
              addr_of(k->outer_dst, k->outer_family).str(), k->outer_dport}] += s->frames;
    if (rows.size() >= m.top) continue;
    json row;
    row["vni"] = k->vni;
    row["gbp"] = k->gbp >= 0 ? json(k->gbp) : json(nullptr);
    row["tag"] = k->gbp >= 0 ? json(tag_text(static_cast<uint16_t>(k->gbp))) : json(nullptr);
    row["src"] = src.str();
    row["dst"] = dst.str();
    row["proto"] = k->inner_family ? json(packet::proto_name(k->proto)) : json(nullptr);
    row["dport"] = k->has_dport ? json(k->dport) : json(nullptr);
    row["frames"] = s->frames;
    row["bytes"] = s->bytes;
    row["src_app"] = src_app.empty() ? json(nullptr) : json(src_app);
    row["dst_app"] = dst_app.empty() ? json(nullptr) : json(dst_app);
    rows.push_back(std::move(row));
  }
  j["flows"] = rows;
  j["flows_total"] = m.flows.size() + (m.flows_overflow ? 1 : 0);
  j["flows_overflow_frames"] = m.flows_overflow;
  j["tag_mismatches"] = mismatches;

  std::vector<std::pair<std::string, AppStat>> app_rows(app_stats.begin(), app_stats.end());
  std::stable_sort(app_rows.begin(), app_rows.end(), [](const auto& a, const auto& b) {
    return a.second.sent + a.second.received > b.second.sent + b.second.received;
  });
  json app_list = json::array();
  for (const auto& [app, st] : app_rows)
    app_list.push_back({{"app", app}, {"tag", st.tag.empty() ? json(nullptr) : json(st.tag)},
                        {"ips", st.ips}, {"sent", st.sent}, {"received", st.received}});
  j["apps"] = app_list;

  std::vector<std::pair<std::tuple<std::string, std::string, uint16_t>, uint64_t>> ul(
      underlay.begin(), underlay.end());
  std::stable_sort(ul.begin(), ul.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  json under = json::array();
  for (const auto& [k, n] : ul) {
    if (under.size() >= m.top) break;
    under.push_back({{"src", std::get<0>(k)}, {"dst", std::get<1>(k)},
                     {"dport", std::get<2>(k)}, {"frames", n}});
  }
  j["underlay"] = under;

  j["icmp"] = {{"requests", m.icmp_req}, {"replies", m.icmp_rep},
               {"answered", m.icmp_answered},
               {"unanswered", m.icmp_req >= m.icmp_answered ? m.icmp_req - m.icmp_answered : 0}};
  j["tcp"] = {{"syn", m.tcp_syn}, {"syn_ack", m.tcp_synack}, {"answered", m.tcp_answered},
              {"unanswered", m.tcp_syn >= m.tcp_answered ? m.tcp_syn - m.tcp_answered : 0}};
  return j;
}

const std::vector<FactDoc> kTallyFacts = {
    {"frames", "int", "Frames read"},
    {"bytes", "int", "Bytes on the wire of those frames"},
    {"vxlan_frames", "int", "Frames that are UDP to one of `ports`"},
    {"other_frames", "int", "Frames that are not VXLAN"},
    {"malformed", "int", "Frames that could not be decoded completely"},
    {"malformed_reasons", "map", "Reason -> frames ('truncated inner IP header', ...)"},
    {"first_ts", "number", "Time of the first frame (packet time, seconds since the epoch)"},
    {"last_ts", "number", "Time of the last frame"},
    {"duration_s", "number", "last_ts - first_ts"},
    {"vnis", "map", "VNI -> frames"},
    {"gbp", "list",
     "Group policy ids seen, most frames first: {id, tag ('0003'), app (guid or null), frames}"},
    {"no_gbp_frames", "int", "VXLAN frames without the G flag (no policy id)"},
    {"unknown_tags", "list", "Tags seen that the `tags` file does not name"},
    {"apps", "list",
     "Per app (from `tags` and `store`): {app, tag, ips, sent, received} in frames"},
    {"flows", "list",
     "Inner flows, most frames first (`top` rows): {vni, gbp, tag, src, dst, proto, dport "
     "(ICMP: type), frames, bytes, src_app, dst_app}"},
    {"flows_total", "int", "Distinct inner flows"},
    {"flows_overflow_frames", "int", "Frames of flows past the table's cap (65536 flows)"},
    {"tag_mismatches", "list",
     "Flows whose GBP tag names another app than the store gives for the source address: "
     "{src, tag, app_by_tag, app_by_ip, frames}"},
    {"underlay", "list", "Underlay paths: {src, dst, dport, frames}"},
    {"icmp", "map",
     "Echo requests, replies, answered (a reply with the request's addresses, id and seq) "
     "and unanswered"},
    {"tcp", "map", "SYNs, SYN-ACKs, answered (a SYN-ACK acknowledging the SYN), unanswered"},
};

}  // namespace netplay::vxlan

namespace netplay::vxlan {

void add_frame_lines(const packet::Frame& f, int64_t ts_ns, std::vector<std::string>& out) {
  std::string text = packet::describe(f, ts_ns);
  size_t nl = text.find('\n');
  if (nl == std::string::npos) {
    out.push_back(std::move(text));
    return;
  }
  out.push_back(text.substr(0, nl));
  out.push_back(text.substr(nl + 1));
}

bool DecodeSink::packet(const PacketRef& p) {
  packet::decode(linktype_, p.data, p.caplen, p.len, ports_, frame_);
  tally_.add(frame_, p.ts_ns);
  if (shown_ < evidence_frames_) {
    ++shown_;
    add_frame_lines(frame_, p.ts_ns, evidence);
  }
  return true;
}

packet::PortSet port_set(const std::vector<long long>& ports) {
  packet::PortSet s;
  if (ports.empty()) s.set(4789);
  for (long long p : ports)
    if (p >= 0 && p <= 65535) s.set(static_cast<uint16_t>(p));
  return s;
}

}  // namespace netplay::vxlan

namespace netplay::vxlan {

std::vector<ParamSpec> decode_params() {
  return {{.name = "ports",
           .type = ValueType::kList,
           .doc = "UDP destination ports that carry VXLAN (4789 is IANA's and Silk's default; "
                  "8472 is the Linux kernel's old default, used by flannel)",
           .default_value = json::array({4789}),
           .item_type = ValueType::kInt,
           .scalar_as_list = true,
           .min = 1,
           .max = 65535},
          {.name = "tags",
           .type = ValueType::kString,
           .doc = "The policy server's tags list (`cf curl /networking/v1/external/tags`): "
                  "{\"tags\": [{\"id\": \"<app guid>\", \"tag\": \"0003\"}]}; names the app "
                  "of each group policy id"},
          {.name = "store",
           .type = ValueType::kList,
           .doc = "Container metadata store(s) of the cells "
                  "(/var/vcap/data/container-metadata/store.json): names the app of each "
                  "inner address",
           .scalar_as_list = true},
          {.name = "top",
           .type = ValueType::kInt,
           .doc = "Rows kept in the flows and underlay tables",
           .default_value = 20,
           .min = 1,
           .max = 10000},
          {.name = "evidence",
           .type = ValueType::kInt,
           .doc = "Frames shown as evidence lines (tcpdump's one-line form)",
           .default_value = 10,
           .min = 0,
           .max = 1000}};
}

std::vector<FactSpec> tally_facts() {
  std::vector<FactSpec> out;
  for (const auto& f : kTallyFacts) out.push_back({f.name, f.type, f.doc});
  return out;
}

std::expected<DecodeOptions, std::string> decode_options(const Params& p) {
  DecodeOptions o;
  const json& ports = p.raw("ports");
  if (ports.is_array())
    for (const auto& v : ports)
      if (v.is_number_integer()) o.port_list.push_back(v.get<long long>());
  if (ports.is_number_integer()) o.port_list.push_back(ports.get<long long>());
  if (o.port_list.empty()) o.port_list.push_back(4789);
  o.ports = port_set(o.port_list);
  // An empty path is "not given", so that playbooks can pass an optional input through.
  if (!p.str("tags").empty())
    if (auto r = o.apps.load_tags(p.str("tags")); !r) return std::unexpected(r.error());
  for (const auto& s : p.strings("store"))
    if (!s.empty())
      if (auto r = o.apps.load_store(s); !r) return std::unexpected(r.error());
  o.top = static_cast<size_t>(p.integer("top", 20));
  o.evidence = static_cast<size_t>(p.integer("evidence", 10));
  return o;
}

}  // namespace netplay::vxlan
