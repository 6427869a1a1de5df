#pragma once
/// Typed values of playbook inputs and step params: one checker for both, so
/// `--set count=three` and `with: {count: three}` fail with the same words.

#include <expected>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace netplay {

using json = nlohmann::ordered_json;

enum class ValueType {
  kString,
  kInt,
  kNumber,
  kBool,
  kIp,        // IPv4 or IPv6 address
  kCidr,      // address/prefix
  kPort,      // 0..65535
  kDuration,  // "5s"; normalised to milliseconds (a number)
  kNetns,     // host | NAME | /abs/path | pid:N
  kList,      // a list (of strings unless stated otherwise)
  kMap,       // an object
  kAny,
};

std::string_view to_string(ValueType t);
std::expected<ValueType, std::string> parse_value_type(std::string_view s);

/// Checks `v` against `t` and converts it to canonical form: strings that hold a number
/// become numbers for kInt/kPort/kNumber ("4789" -> 4789), "true"/"false" become booleans,
/// durations become milliseconds. `from_text` is true for values typed on the command line,
/// where everything arrives as a string. The error reads "expected an integer, got 'three'".
std::expected<json, std::string> coerce(ValueType t, const json& v, bool from_text = false);

/// The value as a user would write it, for messages: strings quoted with ', others as JSON.
std::string describe_value(const json& v);

/// Replaces invalid UTF-8 sequences with U+FFFD: step output (stdout of a command, file
/// contents, captured bytes) may be anything; facts and reports must stay valid JSON.
std::string valid_utf8(std::string_view s);

/// User text made safe to quote in a one-line message (errors, usage lines): control
/// characters (newlines, tabs, ESC, DEL, C1 controls) and invalid UTF-8 bytes become
/// escapes (\n, \t, \x1b, \u{202e}), as do Unicode controls that reorder or hide text
/// (bidi overrides, zero-width). Valid printable text, including non-ASCII, is unchanged;
/// applying it twice changes nothing more.
std::string printable(std::string_view s);

/// The largest process id a pid_t holds. (Linux hands out less, up to 2^22; a larger one
/// is well-formed and simply not found.)
inline constexpr long long kMaxPid = 2'147'483'647;
/// `text` (what follows "pid:") as a process id: decimal digits without a leading zero, 1 to
/// kMaxPid. The problem ("pid:N needs a process id from 1 to 2147483647") when it is not one.
std::optional<std::string> check_pid(std::string_view text);

bool is_ip(std::string_view s);
bool is_cidr(std::string_view s);

}  // namespace netplay
