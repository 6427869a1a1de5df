#include "runner/base/types.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdlib>

#include <fmt/format.h>

#include "runner/base/core.h"

namespace netplay {

std::string_view to_string(ValueType t) {
  switch (t) {
    case ValueType::kString: return "string";
    case ValueType::kInt: return "int";
    case ValueType::kNumber: return "number";
    case ValueType::kBool: return "bool";
    case ValueType::kIp: return "ip";
    case ValueType::kCidr: return "cidr";
    case ValueType::kPort: return "port";
    case ValueType::kDuration: return "duration";
    case ValueType::kNetns: return "netns";
    case ValueType::kList: return "list";
    case ValueType::kMap: return "map";
    case ValueType::kAny: return "any";
  }
  return "any";
}

std::expected<ValueType, std::string> parse_value_type(std::string_view s) {
  for (int i = 0; i <= static_cast<int>(ValueType::kAny); ++i) {
    auto t = static_cast<ValueType>(i);
    if (to_string(t) == s) return t;
  }
  return std::unexpected(fmt::format(
      "unknown type '{}' (expected one of string, int, number, bool, ip, cidr, port, duration, "
      "netns, list, map)",
      s));
}

std::string describe_value(const json& v) {
  if (v.is_string()) return fmt::format("'{}'", printable(v.get_ref<const std::string&>()));
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

/// Length of the valid UTF-8 sequence at s[i] and its code point; 0 when invalid.
size_t utf8_at(std::string_view s, size_t i, unsigned& cp) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len = 0;
  unsigned min = 0;
  if (c < 0x80) {
    cp = c;
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2, min = 0x80, cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, min = 0x800, cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, min = 0x10000, cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

/// Format characters that change how the text around them reads (bidi embeddings,
/// overrides and isolates, zero-width characters, the BOM).
bool hides_text(unsigned cp) {
  return (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2060 && cp <= 0x2069) || cp == 0xFEFF || cp == 0x061C;
}

}  // namespace

std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned cp = 0;
    size_t len = utf8_at(s, i, cp);
    if (len > 0) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD for each byte that starts no valid sequence
      ++i;
    }
  }
  return out;
}

std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned cp = 0;
    size_t len = utf8_at(s, i, cp);
    if (len == 0) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(s[i]));
      ++i;
      continue;
    }
    if (cp == '\n') out += "\\n";
    else if (cp == '\r') out += "\\r";
    else if (cp == '\t') out += "\\t";
    else if (cp < 0x20 || cp == 0x7F) out += fmt::format("\\x{:02x}", cp);
    else if ((cp >= 0x80 && cp <= 0x9F) || hides_text(cp)) out += fmt::format("\\u{{{:04x}}}", cp);
    else out.append(s.substr(i, len));
    i += len;
  }
  return out;
}

bool is_ip(std::string_view s) {
  std::string str(s);
  unsigned char buf[16];
  return inet_pton(AF_INET, str.c_str(), buf) == 1 || inet_pton(AF_INET6, str.c_str(), buf) == 1;
}

bool is_cidr(std::string_view s) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return false;
  auto addr = s.substr(0, slash);
  auto len = s.substr(slash + 1);
  int prefix = -1;
  auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
  if (ec != std::errc() || p != len.data() + len.size() || len.empty()) return false;
  std::string a(addr);
  unsigned char buf[16];
  if (inet_pton(AF_INET, a.c_str(), buf) == 1) return prefix >= 0 && prefix <= 32;
  if (inet_pton(AF_INET6, a.c_str(), buf) == 1) return prefix >= 0 && prefix <= 128;
  return false;
}

std::optional<std::string> check_pid(std::string_view text) {
  bool digits = !text.empty() && text.size() <= 10;
  for (char c : text) digits = digits && c >= '0' && c <= '9';
  long long pid = 0;
  if (digits) std::from_chars(text.data(), text.data() + text.size(), pid);
  if (!digits || text[0] == '0' || pid < 1 || pid > kMaxPid)
    return fmt::format("pid:N needs a process id from 1 to {}", kMaxPid);
  return std::nullopt;
}

static std::unexpected<std::string> expected_got(std::string_view what, const json& v) {
  return std::unexpected(fmt::format("expected {}, got {}", what, describe_value(v)));
}

static std::optional<long long> as_integer(const json& v) {
  if (v.is_number_integer()) return v.get<long long>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (d == static_cast<double>(static_cast<long long>(d))) return static_cast<long long>(d);
    return std::nullopt;
  }
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    long long n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return n;
  }
  return std::nullopt;
}

std::expected<json, std::string> coerce(ValueType t, const json& v, bool from_text) {
  switch (t) {
    case ValueType::kAny:
      return v;
    case ValueType::kString:
      if (v.is_string()) return v;
      if (v.is_number() || v.is_boolean()) return json(v.is_string() ? v.get<std::string>() : v.dump());
      return expected_got("a string", v);
    case ValueType::kInt: {
      auto n = as_integer(v);
      if (!n) return expected_got("an integer", v);
      return json(*n);
    }
    case ValueType::kNumber: {
      if (v.is_number()) return v;
      if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        char* end = nullptr;
        double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end == s.c_str() + s.size()) return json(d);
      }
      return expected_got("a number", v);
    }
    case ValueType::kBool:
      if (v.is_boolean()) return v;
      if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        if (s == "true" || s == "yes" || s == "1") return json(true);
        if (s == "false" || s == "no" || s == "0") return json(false);
      }
      return expected_got("a boolean (true or false)", v);
    case ValueType::kPort: {
      auto n = as_integer(v);
      if (!n || *n < 0 || *n > 65535) return expected_got("a port (0-65535)", v);
      return json(*n);
    }
    case ValueType::kIp:
      if (v.is_string() && is_ip(v.get_ref<const std::string&>())) return v;
      return expected_got("an IP address", v);
    case ValueType::kCidr:
      if (v.is_string() && is_cidr(v.get_ref<const std::string&>())) return v;
      return expected_got("a CIDR such as 10.255.0.0/16", v);
    case ValueType::kDuration: {
      if (v.is_number()) {
        // A bare number in YAML means seconds, like "5" on the command line.
        auto d = check_duration(Millis(v.get<double>() * 1000), v.dump());
        if (!d) return std::unexpected(d.error());
        return json(d->count());
      }
      if (v.is_string()) {
        auto d = parse_duration(v.get_ref<const std::string&>());
        if (!d) return std::unexpected(d.error());
        return json(d->count());
      }
      return expected_got("a duration such as 500ms, 5s or 2m", v);
    }
    case ValueType::kNetns: {
      if (!v.is_string()) return expected_got("a network namespace (host, NAME, /path or pid:N)", v);
      const auto& s = v.get_ref<const std::string&>();
      // Empty is not "the host": an unset variable must not move a step to the host.
      if (s.empty())
        return std::unexpected(
            std::string("empty namespace name (write host for the host's namespace)"));
      if (s.starts_with("pid:")) {
        if (auto problem = check_pid(s.substr(4)))
          return std::unexpected(fmt::format("{}, got {}", *problem, describe_value(v)));
        return v;
      }
      bool ok = s.find('\0') == std::string::npos;
      if (s[0] != '/') ok = ok && s.find('/') == std::string::npos && s != "." && s != "..";
      if (!ok) return expected_got("a network namespace (host, NAME, /path or pid:N)", v);
      return v;
    }
    case ValueType::kList:
      if (v.is_array()) return v;
      if (from_text && v.is_string()) {
        json out = json::array();
        const auto& s = v.get_ref<const std::string&>();
        size_t start = 0;
        while (start <= s.size()) {
          size_t comma = s.find(',', start);
          if (comma == std::string::npos) comma = s.size();
          if (comma > start) out.push_back(s.substr(start, comma - start));
          start = comma + 1;
        }
        return out;
      }
      return expected_got("a list", v);
    case ValueType::kMap:
      if (v.is_object()) return v;
      return expected_got("a map", v);
  }
  return v;
}

}  // namespace netplay
