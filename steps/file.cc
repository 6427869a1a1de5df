/// file: facts about a file on the host (existence, mode, contents, a value inside a JSON or
/// YAML document), e.g. a cell's container metadata store.json.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "runner/base/expect.h"
#include "runner/base/yaml.h"
#include "runner/step/step.h"

namespace netplay {
namespace {

std::string type_of(mode_t m) {
  if (S_ISREG(m)) return "file";
  if (S_ISDIR(m)) return "dir";
  if (S_ISLNK(m)) return "symlink";
  return "other";
}

std::string rfc3339(const struct timespec& ts) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(ts.tv_sec));
}

/// Reads at most `limit` bytes; sets `more` when the file holds more than that.
std::expected<std::string, int> read_prefix(const std::string& path, size_t limit, bool& more) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::unexpected(errno);
  std::string data;
  char buf[65536];
  more = false;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return std::unexpected(e);
    }
    if (n == 0) break;
    size_t room = limit - data.size();
    if (static_cast<size_t>(n) > room) {
      data.append(buf, room);
      more = true;
      break;
    }
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return data;
}

/// A value inside a parsed document: "/a/b" is a JSON pointer (for keys holding dots, such
/// as IP addresses), anything else a dotted path ("a.b.0"). nullopt when absent.
std::expected<std::optional<json>, std::string> value_at(const json& doc, const std::string& path) {
  if (path.empty() || path == "/" || path == ".") return std::optional<json>(doc);
  if (path[0] == '/') {
    try {
      json::json_pointer ptr(path);
      if (!doc.contains(ptr)) return std::optional<json>();
      return std::optional<json>(doc.at(ptr));
    } catch (const json::exception&) {
      return std::unexpected(fmt::format("invalid JSON pointer '{}'", path));
    }
  }
  const json* v = lookup_fact(doc, path);
  return v ? std::optional<json>(*v) : std::optional<json>();
}

std::string strip_json_tag(const std::string& what) {
  size_t tag_end = what.find("] ");
  return tag_end == std::string::npos ? what : what.substr(tag_end + 2);
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class FileStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "file",
        .summary = "Facts about a file: existence, mode, contents, a value in a JSON/YAML file",
        .description =
            "Looks at PATH as the host sees it (the mount namespace is not changed). A "
            "missing file is not an error: `exists` is false, so `expect: {exists: false}` "
            "works. Not being allowed to look is an error. Small files (up to max_bytes) are "
            "read: `contents` and `lines`; JSON and YAML files are parsed (format auto picks "
            "by extension, and tries JSON for other files starting with { or [) into fact "
            "`json` or `yaml`, and `json_path`/`yaml_path` picks one value out: a dotted path "
            "(`containers.0.ip`) or a JSON pointer (`/10.255.9.3/app_id`, for keys holding "
            "dots). A path that is not in the document gives found: false, no value. To check "
            "text use expect: {contents: {contains: ...}}.",
        .params =
            {{.name = "path", .type = ValueType::kString, .doc = "The file", .required = true},
             {.name = "format",
              .type = ValueType::kString,
              .doc = "How to read the contents",
              .default_value = "auto",
              .choices = {"auto", "text", "json", "yaml"}},
             {.name = "json_path",
              .type = ValueType::kString,
              .doc = "Dotted path or JSON pointer (/a/b) of the value to report as `value`"},
             {.name = "yaml_path", .type = ValueType::kString, .doc = "The same for a YAML file"},
             {.name = "max_bytes",
              .type = ValueType::kInt,
              .doc = "Files larger than this are not read (contents absent)",
              .default_value = 1 << 20,
              .min = 0,
              .max = 16 << 20}},
        .facts = {{"exists", "bool", "The path exists (a dangling symlink exists)"},
                  {"type", "string", "file, dir, symlink or other (the path itself, lstat)"},
                  {"target", "string", "Where a symlink points"},
                  {"size", "int", "Size in bytes (of the target, for a symlink)"},
                  {"mode", "string", "Permission bits in octal, e.g. '0644'"},
                  {"mtime", "string", "Last modification, RFC3339 UTC"},
                  {"contents", "string", "The text, when the file is at most max_bytes"},
                  {"lines", "int", "Number of lines of contents"},
                  {"json", "any", "The parsed document (JSON files)"},
                  {"yaml", "any", "The parsed document (YAML files)"},
                  {"found", "bool", "json_path/yaml_path exists in the document"},
                  {"value", "any", "The value at json_path/yaml_path"}},
        .exclusive = {{"json_path", "yaml_path"}},
        .example =
            "- id: container_meta\n  uses: file\n"
            "  with: {path: /var/vcap/data/container-metadata/store.json,\n"
            "         json_path: \"/{{ inputs.handle }}/metadata/app_id\"}\n"
            "  expect: {found: true, value: \"{{ inputs.app_guid }}\"}\n",
    };
    return s;
  }

  StepOutput run(StepContext&, const Params& p) const override {
    const std::string path = p.str("path");
    if (path.empty()) return StepOutput::error("path is empty");
    std::string format = p.str("format", "auto");
    const std::string json_path = p.str("json_path");
    const std::string yaml_path = p.str("yaml_path");
    if (!json_path.empty() && format == "auto") format = "json";
    if (!yaml_path.empty() && format == "auto") format = "yaml";
    if ((!json_path.empty() && format != "json") || (!yaml_path.empty() && format != "yaml"))
      return StepOutput::error(fmt::format("{} does not go with format: {}",
                                           json_path.empty() ? "yaml_path" : "json_path", format));
    long long max_bytes = p.integer("max_bytes", 1 << 20);
    if (max_bytes < 0) return StepOutput::error("max_bytes must not be negative");

    StepOutput out;
    auto& f = out.facts;
    struct stat lst {};
    if (::lstat(path.c_str(), &lst) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) {
        f["exists"] = false;
        if (!json_path.empty() || !yaml_path.empty()) f["found"] = false;
        out.message = fmt::format("{} does not exist", path);
        return out;
      }
      return StepOutput::error(fmt::format("cannot look at {}: {}", path, std::strerror(errno)));
    }
    f["exists"] = true;
    f["type"] = type_of(lst.st_mode);
    struct stat st = lst;
    if (S_ISLNK(lst.st_mode)) {
      char buf[4096];
      ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
      if (n >= 0) f["target"] = valid_utf8(std::string(buf, static_cast<size_t>(n)));
      if (::stat(path.c_str(), &st) != 0) {
        if (errno != ENOENT && errno != ENOTDIR)
          return StepOutput::error(fmt::format("cannot follow {}: {}", path, std::strerror(errno)));
        out.message = fmt::format("{} is a dangling symlink", path);
        if (!json_path.empty() || !yaml_path.empty()) f["found"] = false;
        return out;
      }
    }
    f["size"] = static_cast<long long>(st.st_size);
    f["mode"] = fmt::format("{:04o}", st.st_mode & 07777);
    f["mtime"] = rfc3339(st.st_mtim);
    out.message = fmt::format("{} ({}, {} bytes, mode {})", path, type_of(st.st_mode),
                              static_cast<long long>(st.st_size), f["mode"].get<std::string>());

    bool wants_value = !json_path.empty() || !yaml_path.empty();
    if (!S_ISREG(st.st_mode)) {
      if (wants_value) return StepOutput::error(fmt::format("{} is not a regular file", path));
      return out;
    }

    bool more = false;
    auto data = read_prefix(path, static_cast<size_t>(max_bytes), more);
    if (!data)
      return StepOutput::error(
          fmt::format("cannot read {}: {}", path, std::strerror(data.error())));
    if (more) {
      if (wants_value || format == "json" || format == "yaml")
        return StepOutput::error(fmt::format(
            "{} is larger than max_bytes ({}); raise max_bytes to parse it", path, max_bytes));
      out.message += fmt::format("; not read: larger than max_bytes ({})", max_bytes);
      return out;
    }
    const std::string& text = *data;
    f["contents"] = valid_utf8(text);
    f["lines"] = text.empty()
                     ? 0
                     : std::count(text.begin(), text.end(), '\n') + (text.back() == '\n' ? 0 : 1);

    if (format == "auto") {
      if (ends_with(path, ".json")) {
        format = "json";
      } else if (ends_with(path, ".yaml") || ends_with(path, ".yml")) {
        format = "yaml";
      } else {
        auto first = text.find_first_not_of(" \t\r\n");
        bool looks_json = first != std::string::npos && (text[first] == '{' || text[first] == '[');
        if (looks_json && json::accept(text)) format = "json";
      }
    }

    std::optional<json> doc;
    if (format == "json") {
      try {
        doc = json::parse(text);
      } catch (const json::parse_error& e) {
        return StepOutput::error(fmt::format("{} is not JSON: {}", path, strip_json_tag(e.what())));
      }
      f["json"] = *doc;
    } else if (format == "yaml") {
      YAML::Node root;
      try {
        root = YAML::Load(text);
      } catch (const YAML::Exception& e) {
        return StepOutput::error(fmt::format("{} is not YAML: line {}, column {}: {}", path,
                                             e.mark.line + 1, e.mark.column + 1, e.msg));
      }
      // The loader's guard: a recursive alias would overflow the stack in to_json.
      if (auto problem = yamlx::check_limits(root))
        return StepOutput::error(fmt::format("{} cannot be read as YAML: {}", path, *problem));
      doc = yamlx::to_json(root);
      f["yaml"] = *doc;
    }

    if (wants_value) {
      const std::string& where = json_path.empty() ? yaml_path : json_path;
      auto v = value_at(*doc, where);
      if (!v) return StepOutput::error(v.error());
      f["found"] = v->has_value();
      if (v->has_value()) {
        f["value"] = **v;
        out.message = fmt::format("{}: {} = {}", path, where, describe_value(**v));
      } else {
        out.message = fmt::format("{}: {} not found", path, where);
      }
    }
    return out;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(FileStep);
}  // namespace netplay
