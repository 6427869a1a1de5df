/// vxlan.decode: read a capture file and say what the overlay carried: VNIs, group policy
/// ids and the apps behind them, inner flows, answered and unanswered requests.

#include <fmt/format.h>

#include "runner/step/pcap.h"
#include "runner/step/step.h"
#include "steps/net/vxlan_tally.h"

namespace netplay {
namespace {

/// "12 frames, 12 VXLAN (VNI 1; tags 0003, 0004); ICMP 6/6 answered; TCP 1/1 answered"
std::string summary(const json& f) {
  std::string s = fmt::format("{} frames, {} VXLAN", f["frames"].get<uint64_t>(),
                              f["vxlan_frames"].get<uint64_t>());
  std::vector<std::string> parts;
  std::vector<std::string> vnis;
  for (const auto& [k, v] : f["vnis"].items()) vnis.push_back(k);
  if (!vnis.empty())
    parts.push_back(fmt::format("VNI{} {}", vnis.size() > 1 ? "s" : "", fmt::join(vnis, ", ")));
  std::vector<std::string> tags;
  for (const auto& g : f["gbp"]) {
    if (tags.size() == 8) {
      tags.push_back("...");
      break;
    }
    std::string t = g["tag"].get<std::string>();
    if (g["app"].is_string()) t += fmt::format(" ({})", g["app"].get<std::string>());
    tags.push_back(t);
  }
  if (!tags.empty())
    parts.push_back(fmt::format("tag{} {}", tags.size() > 1 ? "s" : "", fmt::join(tags, ", ")));
  if (!parts.empty()) s += fmt::format(" ({})", fmt::join(parts, "; "));
  const json& icmp = f["icmp"];
  if (icmp["requests"].get<uint64_t>() || icmp["replies"].get<uint64_t>())
    s += fmt::format("; ICMP echo {}/{} answered", icmp["answered"].get<uint64_t>(),
                     icmp["requests"].get<uint64_t>());
  const json& tcp = f["tcp"];
  if (tcp["syn"].get<uint64_t>() || tcp["syn_ack"].get<uint64_t>())
    s += fmt::format("; TCP SYN {}/{} answered", tcp["answered"].get<uint64_t>(),
                     tcp["syn"].get<uint64_t>());
  if (f["malformed"].get<uint64_t>())
    s += fmt::format("; {} malformed", f["malformed"].get<uint64_t>());
  return s;
}

class VxlanDecodeStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s = [] {
      StepSpec s{
          .name = "vxlan.decode",
          .summary = "Decode VXLAN(-GBP) frames of a pcap/pcapng file: VNIs, policy tags, "
                     "apps, inner flows",
          .description =
              "Reads a pcap or pcapng `file` (a capture step's `write:` file, or one taken "
              "with `tcpdump -w`) and decodes every frame: Ethernet (with 802.1Q/802.1ad "
              "tags), Linux cooked (`-i any`) or raw IP; IPv4 or IPv6; UDP to one of `ports` "
              "as VXLAN with its Group Based Policy extension (flags 0x88: the G bit says the "
              "16-bit group policy id is valid; the id is the sending app's tag, written by "
              "the kernel from the mark Silk's policy agent sets); then the inner Ethernet, "
              "IPv4/IPv6 and TCP/UDP/ICMP headers.\n\n"
              "Frames are tallied by VNI, policy id, inner source and destination, protocol "
              "and port. With `tags:` (the policy server's tags list) each id is named by "
              "its app; with `store:` (a cell's container metadata store) each inner address "
              "is; a tag that names another app than the store gives for the source address "
              "is listed in `tag_mismatches`. ICMP echo requests are paired with their "
              "replies (addresses, id, seq) and TCP SYNs with their SYN-ACKs, so "
              "`icmp.unanswered` and `tcp.unanswered` say whether the other side answered. "
              "Frames that cannot be decoded completely are counted by reason.\n\n"
              "Time is the packets' own: the step reads as fast as the disk delivers "
              "(millions of frames a second) with memory flat in the file's size. It passes "
              "when the file was read (judge the facts with `expect:`), warns when the file "
              "ends inside a frame (a capture still being written) with the facts of the "
              "frames before, and errors when the file cannot be read as a capture.",
          .params = {{.name = "file",
                      .type = ValueType::kString,
                      .doc = "The pcap or pcapng file",
                      .required = true},
                     {.name = "filter",
                      .type = ValueType::kString,
                      .doc = "A BPF filter (tcpdump's syntax) applied while reading"}},
          .privileges = "",
          .example = "- id: decode\n  uses: vxlan.decode\n"
                     "  with: {file: /tmp/cell2.pcap, tags: tags.json,\n"
                     "         store: /var/vcap/data/container-metadata/store.json}\n"
                     "  expect: {icmp.unanswered: 0, unknown_tags: {len: 0}}\n",
      };
      for (auto& p : vxlan::decode_params()) s.params.push_back(std::move(p));
      s.facts = {{"file", "string", "The file read"},
                 {"linktype", "string", "Its link type (EN10MB, LINUX_SLL, ...)"},
                 {"complete", "bool", "False when the file ends inside a frame"}};
      for (auto& f : vxlan::tally_facts()) s.facts.push_back(std::move(f));
      return s;
    }();
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    auto opts = vxlan::decode_options(p);
    if (!opts) return StepOutput::error(opts.error());
    const std::string file = p.str("file");
    auto stream = ctx.packets().open_file({.path = file, .filter = p.str("filter")}, ctx);
    if (!stream) return StepOutput::error(stream.error());
    int lt = (*stream)->linktype();
    if (!packet::supported_linktype(lt))
      return StepOutput::error(fmt::format("{}: link type {} is not one netplay decodes", file,
                                           packet::linktype_name(lt)));
    vxlan::Tally tally(&opts->apps, opts->top);
    vxlan::DecodeSink sink(lt, opts->ports, tally, opts->evidence);
    std::string cut;
    for (;;) {
      if (ctx.should_stop()) {
        StepOutput out = StepOutput::error(
            fmt::format("stopped after {} frames of {}", tally.frames(), file));
        out.facts = tally.facts();
        return out;
      }
      auto r = (*stream)->read(sink, 8192, Millis(0), ctx);
      if (!r) {
        cut = r.error();
        break;
      }
      if (*r == ReadStatus::kEnd) break;
    }
    StepOutput out;
    out.facts = tally.facts();
    out.facts["file"] = file;
    out.facts["linktype"] = packet::linktype_name(lt);
    out.facts["complete"] = cut.empty();
    out.evidence = std::move(sink.evidence);
    out.message = summary(out.facts);
    if (!cut.empty()) {
      if (tally.frames() == 0) {
        StepOutput err = StepOutput::error(fmt::format("{}: {}", file, cut));
        err.facts = std::move(out.facts);
        return err;
      }
      out.status = Status::kWarn;
      out.message = fmt::format("{}: the file ends inside frame {} ({}); {}", file,
                                tally.frames() + 1, cut, out.message);
    }
    return out;
  }
};

}  // namespace

NETPLAY_REGISTER_STEP(VxlanDecodeStep);

}  // namespace netplay
