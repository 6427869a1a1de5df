#include "runner/load/schema.h"

#include <fmt/format.h>

#include "runner/base/core.h"
#include "runner/base/expect.h"
#include "runner/step/params.h"
#include "runner/step/step.h"

namespace netplay {

namespace {

json def_ref(std::string_view def) { return {{"$ref", fmt::format("#/$defs/{}", def)}}; }

/// A list of strings; the loader also takes a single string.
json string_list() {
  return {{"anyOf", json::array({{{"type", "string"}},
                                 {{"type", "array"}, {"items", {{"type", "string"}}}}})}};
}

/// The JSON shape of a value type; `nullopt` item type for lists means strings.
json type_schema(ValueType t, ValueType item) {
  switch (t) {
    case ValueType::kString:
      return {{"type", "string"}};
    case ValueType::kInt:
      return {{"type", "integer"}};
    case ValueType::kNumber:
      return {{"type", "number"}};
    case ValueType::kBool:
      return {{"type", "boolean"}};
    case ValueType::kIp:
      return def_ref("ip");
    case ValueType::kCidr:
      return def_ref("cidr");
    case ValueType::kPort:
      return def_ref("port");
    case ValueType::kDuration:
      return def_ref("duration");
    case ValueType::kNetns:
      return def_ref("netns");
    case ValueType::kList: {
      json items =
          item == ValueType::kList ? json::object() : type_schema(item, ValueType::kString);
      return {{"type", "array"}, {"items", {{"anyOf", json::array({items, def_ref("template")})}}}};
    }
    case ValueType::kMap:
      return {{"type", "object"}};
    case ValueType::kAny:
      return json::object();
  }
  return json::object();
}

/// 16777216, not 16777216.0, when the number is whole.
json number(double d) {
  if (d == static_cast<double>(static_cast<long long>(d))) return static_cast<long long>(d);
  return d;
}

json param_schema(const ParamSpec& p) {
  json s = json::object();
  if (!p.doc.empty()) s["description"] = p.doc;
  json def = default_of(p);
  if (!def.is_null())
    s["default"] = p.type == ValueType::kDuration && def.is_number()
                       ? json(format_duration(Millis(def.get<double>())))
                       : def;
  json typed = type_schema(p.type, p.item_type);
  // Bounds of a number, or of each item of a list of numbers.
  json& bounded = p.type == ValueType::kList ? typed["items"]["anyOf"][0] : typed;
  if (p.min) bounded["minimum"] = number(*p.min);
  if (p.max) bounded["maximum"] = number(*p.max);
  if (!p.choices.empty()) {
    if (p.type == ValueType::kList)
      typed["items"] = {{"enum", p.choices}};
    else
      typed = {{"enum", p.choices}};
  }
  // One item may stand for a list of one.
  if (p.type == ValueType::kList && p.scalar_as_list) {
    json item = typed["items"].contains("anyOf") ? typed["items"]["anyOf"][0] : typed["items"];
    typed = {{"anyOf", json::array({item, typed})}};
  }
  // Any param may be a template resolved at run time.
  if (p.type == ValueType::kString && p.choices.empty()) {
    for (auto& [k, v] : typed.items()) s[k] = v;
  } else {
    s["anyOf"] = json::array({typed, def_ref("template")});
  }
  return s;
}

json with_schema(const StepSpec& spec) {
  json props = json::object();
  json required = json::array();
  for (const auto& p : spec.params) {
    props[p.name] = param_schema(p);
    if (p.required) required.push_back(p.name);
  }
  json s = {{"type", "object"}, {"properties", props}, {"additionalProperties", false}};
  if (!required.empty()) s["required"] = required;
  json all = json::array();
  for (const auto& group : spec.one_of) {
    json any = json::array();
    for (const auto& n : group) any.push_back({{"required", json::array({n})}});
    all.push_back({{"anyOf", any}});
  }
  // At most one of each exclusive group: no two given together (a bool only when true).
  for (const auto& group : spec.exclusive) {
    for (size_t i = 0; i < group.size(); ++i) {
      for (size_t j = i + 1; j < group.size(); ++j) {
        json both = {{"required", json::array({group[i], group[j]})}};
        for (const auto& n : {group[i], group[j]}) {
          const ParamSpec* p = spec.param(n);
          if (p && p->type == ValueType::kBool) both["properties"][n] = {{"const", true}};
        }
        all.push_back({{"not", both}});
      }
    }
  }
  if (!all.empty()) s["allOf"] = all;
  return s;
}

json expect_schema(const StepSpec& spec) {
  json s = {{"type", "object"}};
  if (!spec.facts.empty()) {
    std::vector<std::string> names;
    json described = json::object();
    for (const auto& f : spec.facts) {
      std::string n;
      for (char c : f.name) {  // fact names are plain words, but escape to be safe
        if (std::string_view(".^$*+?()[]{}|\\").find(c) != std::string_view::npos) n += '\\';
        n += c;
      }
      names.push_back(n);
      described[f.name] = {{"description", fmt::format("{} ({})", f.doc, f.type)},
                           {"$ref", "#/$defs/expectation"}};
    }
    s["properties"] = described;
    s["propertyNames"] = {{"pattern", fmt::format("^({})(\\..+)?$", fmt::join(names, "|"))}};
  }
  s["additionalProperties"] = def_ref("expectation");
  return s;
}

json step_schema(const StepSpec& spec) {
  json required = json::array({"id", "uses"});
  bool needs_with = !spec.one_of.empty();
  for (const auto& p : spec.params) needs_with = needs_with || p.required;
  if (needs_with) required.push_back("with");
  json props = {
      {"id", def_ref("step_id")},
      {"title", {{"type", "string"}}},
      {"uses", {{"const", spec.name}}},
      {"netns", def_ref("netns")},
      {"with", with_schema(spec)},
      {"expect", expect_schema(spec)},
      {"needs",
       {{"anyOf",
         json::array({def_ref("step_id"), {{"type", "array"}, {"items", def_ref("step_id")}}})}}},
      {"when", def_ref("expression")},
      {"timeout", def_ref("duration")},
      {"retries", {{"type", "integer"}, {"minimum", 0}}},
      {"retry_delay", def_ref("duration")},
      {"severity", {{"enum", {"fail", "warn"}}}},
      {"background", spec.supports_background ? json{{"type", "boolean"}} : json{{"const", false}}},
      {"hooks", def_ref("hooks")},
      {"on_fail", {{"type", "array"}, {"items", def_ref("collector")}}},
  };
  return {{"title", spec.name},   {"description", spec.summary}, {"type", "object"},
          {"required", required}, {"properties", props},         {"additionalProperties", false}};
}

json collector_schema(const std::vector<const Step*>& steps) {
  json variants = json::array();
  for (const Step* st : steps) {
    const StepSpec& spec = st->spec();
    json required = json::array({"uses"});
    for (const auto& p : spec.params)
      if (p.required) {
        required.push_back("with");
        break;
      }
    variants.push_back({{"title", spec.name},
                        {"type", "object"},
                        {"required", required},
                        {"properties",
                         {{"uses", {{"const", spec.name}}},
                          {"title", {{"type", "string"}}},
                          {"netns", def_ref("netns")},
                          {"with", with_schema(spec)},
                          {"timeout", def_ref("duration")}}},
                        {"additionalProperties", false}});
  }
  if (variants.empty()) return {{"type", "object"}};
  return {{"oneOf", variants}};
}

json matcher_schema() {
  json number_or_template = {{"anyOf", json::array({{{"type", "number"}}, def_ref("template")})}};
  json len_matcher = {{"type", "object"},
                      {"minProperties", 1},
                      {"additionalProperties", false},
                      {"properties",
                       {{"eq", number_or_template},
                        {"ne", number_or_template},
                        {"lt", number_or_template},
                        {"le", number_or_template},
                        {"gt", number_or_template},
                        {"ge", number_or_template},
                        {"one_of", {{"type", "array"}, {"items", {{"type", "integer"}}}}}}}};
  json props = {
      {"eq", {{"description", "Equal (a number and a numeric string compare as numbers)"}}},
      {"ne", {{"description", "Not equal"}}},
      {"lt", number_or_template},
      {"le", number_or_template},
      {"gt", number_or_template},
      {"ge", number_or_template},
      {"one_of", {{"type", "array"}, {"minItems", 1}}},
      {"contains",
       {{"description", "Substring, list element or map key"},
        {"type", {"string", "number", "boolean"}}}},
      {"not_contains", {{"type", {"string", "number", "boolean"}}}},
      {"matches",
       {{"description", "ECMAScript regular expression, searched in the value"},
        {"type", "string"}}},
      {"absent", {{"type", "boolean"}}},
      {"present", {{"type", "boolean"}}},
      {"len", {{"anyOf", json::array({{{"type", "integer"}, {"minimum", 0}}, len_matcher})}}},
  };
  return {{"type", "object"},
          {"minProperties", 1},
          {"properties", props},
          {"additionalProperties", false}};
}

}  // namespace

json playbook_schema() {
  const auto steps = Registry::instance().all();
  json step_variants = json::array();
  json defs = json::object();
  defs["template"] = {
      {"description", "A string with {{ lua expression }} parts, resolved at run time"},
      {"type", "string"},
      {"pattern", "\\{\\{"}};
  defs["expression"] = {
      {"description", "A Lua expression over inputs, steps.<id>.status|message|facts and env"},
      {"type", "string"}};
  defs["duration"] = {
      {"description",
       "500ms, 5s, 1.5s, 2m, 1h; a bare number means seconds; at most 168h (7 days)"},
      {"anyOf",
       json::array({{{"type", "string"}, {"pattern", "^[0-9]+(\\.[0-9]+)?(us|ms|s|m|h)?$"}},
                    {{"type", "number"},
                     {"minimum", 0},
                     {"maximum", number(kMaxDuration.count() / 1000)}}})}};
  defs["ip"] = {{"description", "An IPv4 or IPv6 address"},
                {"type", "string"},
                {"anyOf", json::array({{{"format", "ipv4"}}, {{"format", "ipv6"}}})}};
  defs["cidr"] = {{"description", "address/prefix, e.g. 10.255.0.0/16"},
                  {"type", "string"},
                  {"pattern", "^[0-9A-Fa-f:.]+/[0-9]{1,3}$"}};
  defs["port"] = {{"type", "integer"}, {"minimum", 0}, {"maximum", 65535}};
  defs["netns"] = {
      {"description", "host (default) | NAME (/run/netns/NAME) | /abs/path | pid:N, or a template"},
      {"type", "string"},
      {"minLength", 1}};
  defs["step_id"] = {{"type", "string"}, {"pattern", "^[a-z0-9_]+$"}};
  defs["hooks"] = {{"type", "object"},
                   {"additionalProperties", false},
                   {"properties",
                    {{"before",
                      {{
                           "description",
                           "Lua run before the step; `return false` skips it",
                       },
                       {"type", "string"}}},
                     {"after",
                      {{"description", "Lua run after the step; may call netplay.fail/warn"},
                       {"type", "string"}}}}}};
  defs["matcher"] = matcher_schema();
  defs["expectation"] = {
      {"description", "A value (equality) or a matcher object such as {lt: 5} or {one_of: [a, b]}"},
      {"anyOf", json::array({def_ref("matcher"), {{"not", {{"type", "object"}}}}})}};
  std::vector<std::string> type_names;
  for (int i = 0; i <= static_cast<int>(ValueType::kAny); ++i)
    type_names.emplace_back(to_string(static_cast<ValueType>(i)));
  defs["input"] = {{"type", "object"},
                   {"additionalProperties", false},
                   {"properties",
                    {{"type", {{"enum", type_names}}},
                     {"default", json::object()},
                     {"required", {{"type", "boolean"}}},
                     {"description", {{"type", "string"}}}}}};
  defs["diagnosis"] = {{"type", "object"},
                       {"required", {"when", "finding"}},
                       {"additionalProperties", false},
                       {"properties",
                        {{"id", {{"type", "string"}}},
                         {"when", def_ref("expression")},
                         {"severity",
                          {{"description",
                            "fail (default) fails the run; warn makes it at least warn, exit "
                            "code 0; info only informs"},
                           {"enum", {"fail", "warn", "info"}},
                           {"default", "fail"}}},
                         {"finding", {{"type", "string"}}},
                         {"next", string_list()},
                         {"references", string_list()}}}};
  defs["collector"] = collector_schema(steps);
  for (const Step* st : steps) {
    std::string name = "step." + st->spec().name;
    defs[name] = step_schema(st->spec());
    step_variants.push_back(def_ref(name));
  }
  defs["step"] = step_variants.empty() ? json{{"type", "object"}} : json{{"oneOf", step_variants}};

  json schema = json::object();
  schema["$schema"] = "https://json-schema.org/draft/2020-12/schema";
  schema["title"] = "netplay playbook (apiVersion netplay/v1)";
  schema["type"] = "object";
  schema["required"] = {"apiVersion", "kind", "metadata", "steps"};
  schema["additionalProperties"] = false;
  schema["properties"] = {
      {"apiVersion", {{"const", "netplay/v1"}}},
      {"kind", {{"const", "Playbook"}}},
      {"metadata",
       {{"type", "object"},
        {"required", json::array({"name"})},
        {"additionalProperties", false},
        {"properties",
         {{"name", {{"type", "string"}, {"pattern", "^[a-z0-9-]+$"}}},
          {"title", {{"type", "string"}}},
          {"description", {{"type", "string"}}},
          {"references", string_list()}}}}},
      {"inputs",
       {{"type", "object"},
        {"propertyNames", {{"pattern", "^[A-Za-z_][A-Za-z0-9_]*$"}}},
        {"additionalProperties", def_ref("input")}}},
      {"env",
       {{"type", "array"},
        {"items", {{"type", "string"}, {"pattern", "^[A-Za-z_][A-Za-z0-9_]*$"}}}}},
      {"steps", {{"type", "array"}, {"items", def_ref("step")}}},
      {"diagnosis", {{"type", "array"}, {"items", def_ref("diagnosis")}}},
  };
  schema["$defs"] = defs;
  return schema;
}

}  // namespace netplay
