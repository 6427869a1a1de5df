#include "steps/net/ethtool.h"

#include <linux/ethtool.h>
#include <linux/ethtool_netlink.h>
#include <linux/genetlink.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <string_view>

#include <fmt/format.h>
#include <netlink/errno.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include "steps/net/netlink.h"

namespace netplay::ethtool {

std::expected<Bitset, std::string> parse_bitset(const nlattr* nest) {
  nlattr* tb[ETHTOOL_A_BITSET_MAX + 1] = {};
  if (!nest || nla_parse_nested(tb, ETHTOOL_A_BITSET_MAX, const_cast<nlattr*>(nest), nullptr) < 0)
    return std::unexpected("malformed bitset");
  if (!tb[ETHTOOL_A_BITSET_SIZE]) return std::unexpected("bitset without a size");
  Bitset b;
  b.size = nla_get_u32(tb[ETHTOOL_A_BITSET_SIZE]);
  if (b.size > 65536) return std::unexpected(fmt::format("bitset of implausible size {}", b.size));
  b.value.assign(b.size, false);
  b.names.assign(b.size, std::string());
  if (nlattr* v = tb[ETHTOOL_A_BITSET_VALUE]) {
    // Compact: 32-bit words in host order, bit i in word i / 32.
    size_t words = static_cast<size_t>(nla_len(v)) / 4;
    if (words * 32 < b.size) return std::unexpected("compact bitset shorter than its size");
    const auto* data = static_cast<const uint32_t*>(nla_data(v));
    for (unsigned i = 0; i < b.size; ++i) b.value[i] = (data[i / 32] >> (i % 32)) & 1U;
    return b;
  }
  bool nomask = tb[ETHTOOL_A_BITSET_NOMASK] != nullptr;
  if (nlattr* bits = tb[ETHTOOL_A_BITSET_BITS]) {
    nlattr* bit = nullptr;
    int rem = 0;
    nla_for_each_nested(bit, bits, rem) {
      if (nla_type(bit) != ETHTOOL_A_BITSET_BITS_BIT) continue;
      nlattr* bt[ETHTOOL_A_BITSET_BIT_MAX + 1] = {};
      if (nla_parse_nested(bt, ETHTOOL_A_BITSET_BIT_MAX, bit, nullptr) < 0 ||
          !bt[ETHTOOL_A_BITSET_BIT_INDEX])
        return std::unexpected("malformed bit in a bitset");
      unsigned i = nla_get_u32(bt[ETHTOOL_A_BITSET_BIT_INDEX]);
      if (i >= b.size)
        return std::unexpected(fmt::format("bit {} outside a bitset of size {}", i, b.size));
      b.value[i] = nomask || bt[ETHTOOL_A_BITSET_BIT_VALUE] != nullptr;
      if (bt[ETHTOOL_A_BITSET_BIT_NAME]) b.names[i] = nla_get_string(bt[ETHTOOL_A_BITSET_BIT_NAME]);
    }
  }
  return b;
}

std::expected<std::vector<std::string>, std::string> parse_feature_names(const nlattr* sets) {
  if (!sets) return std::unexpected("no string sets in the reply");
  nlattr* set = nullptr;
  int rem = 0;
  nla_for_each_nested(set, const_cast<nlattr*>(sets), rem) {
    if (nla_type(set) != ETHTOOL_A_STRINGSETS_STRINGSET) continue;
    nlattr* st[ETHTOOL_A_STRINGSET_MAX + 1] = {};
    if (nla_parse_nested(st, ETHTOOL_A_STRINGSET_MAX, set, nullptr) < 0 || !st[ETHTOOL_A_STRINGSET_ID])
      return std::unexpected("malformed string set");
    if (nla_get_u32(st[ETHTOOL_A_STRINGSET_ID]) != ETH_SS_FEATURES) continue;
    unsigned count = st[ETHTOOL_A_STRINGSET_COUNT] ? nla_get_u32(st[ETHTOOL_A_STRINGSET_COUNT]) : 0;
    if (count > 65536) return std::unexpected("string set of implausible size");
    std::vector<std::string> names(count);
    if (nlattr* strings = st[ETHTOOL_A_STRINGSET_STRINGS]) {
      nlattr* s = nullptr;
      int r = 0;
      nla_for_each_nested(s, strings, r) {
        nlattr* a[ETHTOOL_A_STRING_MAX + 1] = {};
        if (nla_parse_nested(a, ETHTOOL_A_STRING_MAX, s, nullptr) < 0 || !a[ETHTOOL_A_STRING_INDEX])
          return std::unexpected("malformed string in a string set");
        unsigned i = nla_get_u32(a[ETHTOOL_A_STRING_INDEX]);
        if (i >= names.size()) names.resize(i + 1);
        if (a[ETHTOOL_A_STRING_VALUE]) names[i] = nla_get_string(a[ETHTOOL_A_STRING_VALUE]);
      }
    }
    return names;
  }
  return std::unexpected("the kernel sent no feature names");
}

std::vector<Feature> combine(const std::vector<std::string>& names, const FeatureBits& bits) {
  size_t count = std::max({names.size(), static_cast<size_t>(bits.hw.size),
                           static_cast<size_t>(bits.active.size)});
  std::vector<Feature> out;
  for (size_t i = 0; i < count; ++i) {
    std::string name = i < names.size() ? names[i] : std::string();
    for (const Bitset* b : {&bits.active, &bits.wanted, &bits.hw, &bits.nochange})
      if (name.empty() && i < b->names.size()) name = b->names[i];
    if (name.empty()) continue;
    auto u = static_cast<unsigned>(i);
    out.push_back({std::move(name), bits.active.on(u), bits.wanted.on(u),
                   !bits.hw.on(u) || bits.nochange.on(u)});
  }
  return out;
}

namespace {

/// `pattern` with at most one '*' standing for any run of characters.
bool glob_match(std::string_view name, std::string_view pattern) {
  size_t star = pattern.find('*');
  if (star == std::string_view::npos) return name == pattern;
  std::string_view head = pattern.substr(0, star), tail = pattern.substr(star + 1);
  return name.size() >= head.size() + tail.size() && name.starts_with(head) && name.ends_with(tail);
}

}  // namespace

std::vector<Feature> legacy_features(const std::vector<Feature>& features) {
  // ethtool's legacy flags and the kernel features each covers.
  static constexpr std::pair<const char*, const char*> kLegacy[] = {
      {"rx-checksumming", "rx-checksum"},
      {"tx-checksumming", "tx-checksum-*"},
      {"scatter-gather", "tx-scatter-gather*"},
      {"tcp-segmentation-offload", "tx-tcp*-segmentation"},
      {"udp-fragmentation-offload", "tx-udp-fragmentation"},
      {"generic-segmentation-offload", "tx-generic-segmentation"},
      {"generic-receive-offload", "rx-gro"},
      {"large-receive-offload", "rx-lro"},
      {"rx-vlan-offload", "rx-vlan-hw-parse"},
      {"tx-vlan-offload", "tx-vlan-hw-insert"},
      {"ntuple-filters", "rx-ntuple-filter"},
      {"receive-hashing", "rx-hashing"},
  };
  std::vector<Feature> out;
  for (auto [legacy, pattern] : kLegacy) {
    Feature f{legacy, false, false, true};
    size_t matched = 0;
    for (const auto& feat : features) {
      if (!glob_match(feat.name, pattern)) continue;
      ++matched;
      f.active = f.active || feat.active;
      f.wanted = f.wanted || feat.wanted;
      f.fixed = f.fixed && feat.fixed;
    }
    if (matched > 0) out.push_back(std::move(f));
  }
  return out;
}

namespace {

/// One generic netlink request of `family` (a family id): `fill` adds the attributes after
/// the genl header; every message of the reply goes to `on_reply`.
std::expected<void, NlError> request(NetlinkClient& client, int family, uint8_t cmd,
                                     uint8_t version, const std::function<int(nl_msg*)>& fill,
                                     const std::function<void(nlmsghdr*)>& on_reply,
                                     std::string_view what) {
  nl::MsgPtr msg(nlmsg_alloc());
  if (!msg) return std::unexpected(NlError{fmt::format("{}: out of memory", what)});
  if (!genlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, NLM_F_REQUEST, cmd,
                   version) ||
      fill(msg.get()) < 0)
    return std::unexpected(NlError{fmt::format("{}: cannot build the request", what)});
  auto reply = client.request(static_cast<uint16_t>(family), nl::payload_of(msg.get()), what);
  if (!reply) return std::unexpected(reply.error());
  for (auto& m : *reply) on_reply(m.hdr());
  return {};
}

/// The id of the generic netlink family `name` (CTRL_CMD_GETFAMILY to the controller).
std::expected<int, NlError> resolve_family(NetlinkClient& client, const char* name) {
  int id = -1;
  auto r = request(
      client, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1,
      [&](nl_msg* m) { return nla_put_string(m, CTRL_ATTR_FAMILY_NAME, name); },
      [&](nlmsghdr* h) {
        nlattr* tb[CTRL_ATTR_MAX + 1] = {};
        if (genlmsg_parse(h, 0, tb, CTRL_ATTR_MAX, nullptr) >= 0 && tb[CTRL_ATTR_FAMILY_ID])
          id = nla_get_u16(tb[CTRL_ATTR_FAMILY_ID]);
      },
      "generic netlink family");
  if (!r) return std::unexpected(r.error());
  if (id < 0) return std::unexpected(NlError{"generic netlink family: no id in the answer"});
  return id;
}

int put_header(nl_msg* msg, int attr, const std::string& dev) {
  nlattr* h = nla_nest_start(msg, attr);
  if (!h) return -NLE_NOMEM;
  // No ETHTOOL_A_HEADER_FLAGS: without ETHTOOL_FLAG_COMPACT_BITSETS the kernel names bits.
  if (int e = nla_put_string(msg, ETHTOOL_A_HEADER_DEV_NAME, dev.c_str()); e < 0) return e;
  return nla_nest_end(msg, h);
}

}  // namespace

std::expected<std::vector<Feature>, std::string> read_features(const std::string& dev,
                                                               const StepContext& ctx) {
  auto client = ctx.netlink().open(ctx, NETLINK_GENERIC);
  if (!client) return std::unexpected(client.error());
  auto family = resolve_family(**client, ETHTOOL_GENL_NAME);
  if (!family && family.error().kernel_errno == ENOENT)
    return std::unexpected(fmt::format(
        "the kernel has no '{}' generic netlink family: ethtool netlink needs Linux 5.6 or "
        "later with CONFIG_ETHTOOL_NETLINK",
        ETHTOOL_GENL_NAME));
  if (!family) return std::unexpected(family.error().message);

  std::string parse_error;
  FeatureBits bits;
  bool got = false;
  auto r = request(
      **client, *family, ETHTOOL_MSG_FEATURES_GET, ETHTOOL_GENL_VERSION,
      [&](nl_msg* m) { return put_header(m, ETHTOOL_A_FEATURES_HEADER, dev); },
      [&](nlmsghdr* h) {
        nlattr* tb[ETHTOOL_A_FEATURES_MAX + 1] = {};
        if (genlmsg_parse(h, 0, tb, ETHTOOL_A_FEATURES_MAX, nullptr) < 0) {
          parse_error = "malformed features reply";
          return;
        }
        std::pair<int, Bitset*> parts[] = {{ETHTOOL_A_FEATURES_HW, &bits.hw},
                                           {ETHTOOL_A_FEATURES_WANTED, &bits.wanted},
                                           {ETHTOOL_A_FEATURES_ACTIVE, &bits.active},
                                           {ETHTOOL_A_FEATURES_NOCHANGE, &bits.nochange}};
        for (auto [attr, into] : parts) {
          auto b = parse_bitset(tb[attr]);
          if (!b) {
            parse_error = "features reply: " + b.error();
            return;
          }
          *into = std::move(*b);
        }
        got = true;
      },
      fmt::format("ethtool features of {}", dev));
  if (!r) return std::unexpected(r.error().message);
  if (!parse_error.empty()) return std::unexpected(parse_error);
  if (!got) return std::unexpected(fmt::format("ethtool features of {}: no reply", dev));

  std::vector<std::string> names;
  r = request(
      **client, *family, ETHTOOL_MSG_STRSET_GET, ETHTOOL_GENL_VERSION,
      [&](nl_msg* m) {
        if (int e = put_header(m, ETHTOOL_A_STRSET_HEADER, dev); e < 0) return e;
        nlattr* sets = nla_nest_start(m, ETHTOOL_A_STRSET_STRINGSETS);
        nlattr* set = sets ? nla_nest_start(m, ETHTOOL_A_STRINGSETS_STRINGSET) : nullptr;
        if (!set || nla_put_u32(m, ETHTOOL_A_STRINGSET_ID, ETH_SS_FEATURES) < 0) return -NLE_NOMEM;
        nla_nest_end(m, set);
        return nla_nest_end(m, sets);
      },
      [&](nlmsghdr* h) {
        nlattr* tb[ETHTOOL_A_STRSET_MAX + 1] = {};
        if (genlmsg_parse(h, 0, tb, ETHTOOL_A_STRSET_MAX, nullptr) < 0) {
          parse_error = "malformed string set reply";
          return;
        }
        auto n = parse_feature_names(tb[ETHTOOL_A_STRSET_STRINGSETS]);
        if (!n)
          parse_error = n.error();
        else
          names = std::move(*n);
      },
      "ethtool feature names");
  if (!r) return std::unexpected(r.error().message);
  if (!parse_error.empty()) return std::unexpected(parse_error);
  return combine(names, bits);
}

}  // namespace netplay::ethtool
