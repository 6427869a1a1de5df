#include "runner/load/loader.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <set>

#include "runner/load/loader_internal.h"
#include "runner/base/read_file.h"
#include "runner/base/sha256.h"

namespace netplay {

namespace loader_detail {

void Loader::check_keys(const YAML::Node& map, const std::vector<std::string>& allowed) {
  if (!map.IsMap()) return;
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (!it->first.IsScalar()) continue;  // reported by check_structure
    const std::string k = it->first.Scalar();
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
      err(it->first, fmt::format("unknown key '{}'{}", k, hint(k, allowed)));
  }
}

std::optional<std::string> Loader::str(const YAML::Node& n, std::string_view field) {
  if (n.IsScalar()) return n.Scalar();
  err(n, fmt::format("{}: expected a string, got {}", field, describe_node(n)));
  return std::nullopt;
}

/// A list of strings; a single string is accepted as a list of one.
std::vector<std::pair<std::string, YAML::Node>> Loader::str_list(const YAML::Node& n,
                                                                 std::string_view field) {
  std::vector<std::pair<std::string, YAML::Node>> out;
  if (n.IsScalar()) {
    out.emplace_back(n.Scalar(), n);
  } else if (n.IsSequence()) {
    for (const auto& item : n) {
      if (item.IsScalar())
        out.emplace_back(item.Scalar(), item);
      else
        err(item, fmt::format("{}: expected a string, got {}", field, describe_node(item)));
    }
  } else if (!n.IsNull()) {
    err(n, fmt::format("{}: expected a list of strings, got {}", field, describe_node(n)));
  }
  return out;
}

std::optional<json> Loader::coerce_at(const YAML::Node& n, ValueType t, std::string_view field) {
  auto c = coerce(t, to_json(n));
  if (!c) {
    err(n, fmt::format("{}: {}", field, c.error()));
    return std::nullopt;
  }
  return *c;
}

Expr Loader::compile(const YAML::Node& n, std::string_view field, Kind kind) {
  Expr e;
  e.pos = pos_of(n);
  if (!n.IsScalar()) {
    err(n, fmt::format("{}: expected {}, got {}", field,
                       kind == Kind::kExpr ? "a Lua expression" : "a string", describe_node(n)));
    return e;
  }
  e.src = n.Scalar();
  std::string code = e.src;
  std::expected<int, std::string> id;
  if (kind == Kind::kChunk) {
    bool from_file = std::regex_match(e.src, lua_file_re());
    if (from_file) {
      auto text = read_lua_file(e.src);
      if (!text) {
        err(n, fmt::format("{}: {}", field, text.error()));
        return e;
      }
      code = std::move(*text);
    }
    id = scratch_.compile({kind, code});
    // A hook may be a bare expression ("steps.a.facts.x > 0"): treat it as its value.
    if (!id) {
      if (auto as_expr = scratch_.compile({kind, "return " + code})) {
        code = "return " + code;
        id = as_expr;
      }
    }
    if (!id && from_file) {
      id = std::unexpected(file_compile_error(e.src, id.error()));
    } else if (!id && std::regex_match(e.src, path_like_re())) {
      id = std::unexpected(fmt::format(
          "'{}' is neither Lua nor the name of a Lua file (a file name ends in .lua and stays "
          "under the playbook's directory)",
          e.src));
    }
  } else {
    id = scratch_.compile({kind, code});
  }
  if (!id) {
    // Lua reads `a = b` inside an expression as a stray assignment; say what was meant.
    bool assignment = kind != Kind::kChunk && id.error().find("near '='") != std::string::npos;
    err(n, fmt::format("{}: {}{}", field, id.error(), assignment ? " (compare with ==)" : ""));
    return e;
  }
  // A hook's source is what it runs (the file's text, "return " added), as before.
  std::string src = kind == Kind::kChunk ? code : e.src;
  e = pb_.add_expr(kind, std::move(code), std::move(src), e.pos);
  std::vector<std::string> input_names;
  for (const auto& in : pb_.inputs) input_names.push_back(in.name);
  for (const auto& name : ExprEngine::input_refs(e.src)) {
    if (!pb_.find_input(name))
      err(n, fmt::format("{}: unknown input '{}'{}", field, name, hint(name, input_names)));
  }
  auto steps = ExprEngine::step_refs(e.src);
  if (!steps.empty()) refs_.push_back({e.pos, std::string(field), std::move(steps), current_step_});
  return e;
}

/// A hook file, named relative to the playbook's directory and never outside it: no
/// absolute path, no '..', no symlink that leads elsewhere. A stranger's playbook must not
/// make netplay (often root) read /etc/shadow and quote it in an error.
std::expected<std::string, std::string> Loader::read_lua_file(const std::string& rel) {
  const std::string rule = "a Lua file must be a relative path under the playbook's directory";
  if (rel.front() == '/') return std::unexpected(fmt::format("'{}': {}", rel, rule));
  for (size_t start = 0; start <= rel.size();) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    if (rel.compare(start, end - start, "..") == 0)
      return std::unexpected(fmt::format("'{}': {} (no '..')", rel, rule));
    start = end + 1;
  }
  auto slash = file_.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : file_.substr(0, slash));
  std::string path = slash == std::string::npos ? rel : file_.substr(0, slash + 1) + rel;
  std::error_code ec;
  auto real_dir = std::filesystem::weakly_canonical(dir, ec);
  auto real = ec ? std::filesystem::path() : std::filesystem::canonical(path, ec);
  if (ec) return std::unexpected(fmt::format("cannot read Lua file '{}'", path));
  auto [d, r] = std::mismatch(real_dir.begin(), real_dir.end(), real.begin(), real.end());
  if (d != real_dir.end())
    return std::unexpected(fmt::format("'{}' leads to '{}' (a symlink?): {}", rel, real.string(),
                                       rule));
  auto text = read_file_bounded(real.string(), {.max_bytes = kMaxLuaBytes});
  if (!text)
    return std::unexpected(fmt::format("cannot read Lua file '{}': {}", path, text.error()));
  return text;
}

/// A Lua file's syntax error without the file's text: Lua quotes the token it stopped at
/// ("near 'root:x:0:0'"); only the file, the line and what is wrong are kept.
std::string Loader::file_compile_error(const std::string& rel, std::string message) {
  // "line 3: unexpected symbol near 'x'" -> "check.lua: line 3: unexpected symbol"
  if (auto near = message.find(" near "); near != std::string::npos) message.resize(near);
  if (message.size() > 200) message = message.substr(0, 200) + "...";
  return rel + ": " + message + " (Lua syntax error)";
}

void Loader::templates_in(const YAML::Node& n, const json::json_pointer& ptr,
                          const std::string& field, std::vector<TemplateSlot>& out, Kind kind) {
  if (n.IsScalar()) {
    if (!has_template(n.Scalar()) || !to_json(n).is_string()) return;
    Expr e = compile(n, field, kind);
    if (e) out.push_back({ptr, std::move(e)});
  } else if (n.IsSequence()) {
    size_t i = 0;
    for (const auto& item : n) {
      templates_in(item, ptr / i, fmt::format("{}.{}", field, i), out, kind);
      ++i;
    }
  } else if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      const std::string k = it->first.Scalar();
      templates_in(it->second, ptr / k, field + "." + k, out, kind);
    }
  }
}

std::expected<Plan, std::vector<Diagnostic>> Loader::run(const std::string& text) {
  pb_.sha256 = sha256_hex(text);
  auto parsed = yamlx::parse(text);
  if (!parsed)
    return std::unexpected(
        std::vector<Diagnostic>{{file_, parsed.error().pos, parsed.error().message}});
  const YAML::Node root = *parsed;
  Pos too_deep{1, 1};
  if (auto problem = yamlx::check_limits(root, &too_deep))
    return std::unexpected(std::vector<Diagnostic>{{file_, too_deep, *problem}});
  yamlx::check_structure(root, file_, diags_);
  load_top(root);
  check_needs();
  check_refs();
  link_graph(pb_);
  if (!diags_.empty()) {
    std::stable_sort(diags_.begin(), diags_.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return std::pair(a.pos.line, a.pos.col) < std::pair(b.pos.line, b.pos.col);
    });
    return std::unexpected(std::move(diags_));
  }
  return std::move(pb_);
}

void Loader::load_top(const YAML::Node& root) {
  if (!root.IsMap()) {
    Pos p = root.IsNull() || !root.IsDefined() ? Pos{1, 1} : pos_of(root);
    err(p, root.IsNull() ? "empty playbook: expected apiVersion, kind, metadata and steps"
                         : fmt::format("a playbook is a map (apiVersion, kind, metadata, steps), "
                                       "got {}",
                                       describe_node(root)));
    return;
  }
  check_keys(root, kTopKeys);
  Pos top = pos_of(root);
  if (const auto& v = root["apiVersion"]) {
    auto s = str(v, "apiVersion");
    if (s && *s != "netplay/v1")
      err(v, fmt::format("apiVersion: expected 'netplay/v1', got {}", describe_node(v)));
    if (s) pb_.api_version = *s;
  } else {
    err(top, "apiVersion is required (apiVersion: netplay/v1)");
  }
  if (const auto& v = root["kind"]) {
    auto s = str(v, "kind");
    if (s && *s != "Playbook")
      err(v, fmt::format("kind: expected 'Playbook', got {}", describe_node(v)));
    if (s) pb_.kind = *s;
  } else {
    err(top, "kind is required (kind: Playbook)");
  }
  if (const auto& v = root["metadata"])
    load_metadata(v);
  else
    err(top, "metadata is required (metadata: {name: ...})");
  if (const auto& v = root["inputs"]) load_inputs(v);
  if (const auto& v = root["env"]) load_env(v);
  if (const auto& v = root["steps"])
    load_steps(v);
  else
    err(top, "steps is required (a list of steps)");
  if (const auto& v = root["diagnosis"]) load_diagnosis(v);
}

void Loader::load_metadata(const YAML::Node& n) {
  if (!n.IsMap()) {
    err(n, fmt::format("metadata: expected a map with name, title, description, got {}",
                       describe_node(n)));
    return;
  }
  check_keys(n, kMetaKeys);
  if (const auto& v = n["name"]) {
    if (auto s = str(v, "metadata.name")) {
      pb_.name = *s;
      if (!std::regex_match(*s, name_re()))
        err(v, fmt::format("metadata.name: '{}' must match [a-z0-9-]+", *s));
    }
  } else {
    err(n, "metadata.name is required");
  }
  if (const auto& v = n["title"]) pb_.title = str(v, "metadata.title").value_or("");
  if (const auto& v = n["description"])
    pb_.description = str(v, "metadata.description").value_or("");
  if (const auto& v = n["references"])
    for (auto& [s, _] : str_list(v, "metadata.references")) pb_.references.push_back(s);
}

void Loader::load_inputs(const YAML::Node& n) {
  if (n.IsNull()) return;
  if (!n.IsMap()) {
    err(n, fmt::format("inputs: expected a map of NAME: {{type: ..., default: ...}}, got {}",
                       describe_node(n)));
    return;
  }
  for (auto it = n.begin(); it != n.end(); ++it) {
    if (!it->first.IsScalar()) continue;
    InputDef d;
    d.name = it->first.Scalar();
    d.pos = pos_of(it->first);
    const YAML::Node v = it->second;  // a copy: the iterator yields temporaries
    std::string where = "inputs." + d.name;
    if (!std::regex_match(d.name, ident_re()))
      err(it->first,
          fmt::format("input name '{}' must be a Lua identifier ([A-Za-z_][A-Za-z0-9_]*)", d.name));
    if (pb_.find_input(d.name)) continue;  // duplicate key, reported by check_structure
    if (!v.IsMap()) {
      err(v.IsNull() ? pos_of(it->first) : pos_of(v),
          fmt::format("{}: expected a map such as {{type: string, default: ...}}, got {}", where,
                      describe_node(v)));
      pb_.inputs.push_back(std::move(d));
      continue;
    }
    check_keys(v, kInputKeys);
    const YAML::Node& def = v["default"];
    if (const auto& t = v["type"]) {
      if (auto s = str(t, where + ".type")) {
        auto parsed = parse_value_type(*s);
        if (parsed)
          d.type = *parsed;
        else
          err(t, fmt::format("{}.type: {}", where, parsed.error()));
      }
    } else if (def) {
      // No type: infer it from the default so `default: 4789` stays a number.
      json j = to_json(def);
      d.type = j.is_boolean()          ? ValueType::kBool
               : j.is_number_integer() ? ValueType::kInt
               : j.is_number()         ? ValueType::kNumber
               : j.is_array()          ? ValueType::kList
               : j.is_object()         ? ValueType::kMap
                                       : ValueType::kString;
    }
    if (def && !def.IsNull()) {
      if (auto c = coerce_at(def, d.type, where + ".default")) d.default_value = *c;
    }
    if (const auto& r = v["required"]) {
      if (auto c = coerce_at(r, ValueType::kBool, where + ".required")) d.required = c->get<bool>();
    }
    if (const auto& s = v["description"])
      d.description = str(s, where + ".description").value_or("");
    pb_.inputs.push_back(std::move(d));
  }
}

void Loader::load_env(const YAML::Node& n) {
  for (auto& [name, node] : str_list(n, "env")) {
    if (!std::regex_match(name, ident_re()))
      err(node, fmt::format("env: '{}' is not a variable name", name));
    else
      pb_.env_allow.push_back(name);
  }
}

void Loader::load_steps(const YAML::Node& n) {
  if (!n.IsSequence()) {
    err(n, fmt::format("steps: expected a list of steps, got {}", describe_node(n)));
    return;
  }
  size_t i = 0;
  for (const auto& item : n) {
    StepDef s;
    if (item.IsMap() && item["id"] && item["id"].IsScalar())
      current_step_ = item["id"].Scalar();
    else
      current_step_.clear();
    if (load_step(item, s, "", i)) pb_.steps.push_back(std::move(s));
    ++i;
  }
  current_step_.clear();
}

void Loader::load_diagnosis(const YAML::Node& n) {
  if (n.IsNull()) return;
  if (!n.IsSequence()) {
    err(n, fmt::format("diagnosis: expected a list of rules, got {}", describe_node(n)));
    return;
  }
  std::map<std::string, Pos> ids;
  size_t i = 0;
  for (const auto& item : n) {
    DiagnosisRule r;
    r.id = fmt::format("diagnosis[{}]", i++);
    if (!item.IsMap()) {
      err(item, fmt::format("diagnosis: expected a map with when and finding, got {}",
                            describe_node(item)));
      continue;
    }
    r.pos = pos_of(item);
    check_keys(item, kDiagnosisKeys);
    if (const auto& v = item["id"]) {
      if (auto id = str(v, "id")) {
        r.id = *id;
        auto [first, inserted] = ids.emplace(*id, pos_of(v));
        if (!inserted)
          err(v, fmt::format("duplicate diagnosis id '{}' (first at line {})", *id,
                             first->second.line));
      }
    }
    if (const auto& v = item["when"])
      r.when = compile(v, "when", Kind::kExpr);
    else
      err(item, fmt::format("diagnosis '{}' has no when (the condition)", r.id));
    if (const auto& v = item["severity"]) {
      if (auto sev = str(v, "severity")) {
        if (auto parsed = parse_severity(*sev))
          r.severity = *parsed;
        else
          err(v, fmt::format("severity: expected one of [fail, warn, info], got {}{}",
                             describe_node(v), hint(*sev, {"fail", "warn", "info"})));
      }
    }
    if (const auto& v = item["finding"])
      r.finding = compile(v, "finding", Kind::kTemplate);
    else
      err(item, fmt::format("diagnosis '{}' has no finding (what is wrong)", r.id));
    if (const auto& v = item["next"]) {
      if (v.IsScalar()) {
        r.next.push_back(compile(v, "next", Kind::kTemplate));
      } else if (v.IsSequence()) {
        size_t j = 0;
        for (const auto& step : v)
          r.next.push_back(compile(step, fmt::format("next.{}", j++), Kind::kTemplate));
      } else {
        err(v, fmt::format("next: expected a list of strings, got {}", describe_node(v)));
      }
    }
    if (const auto& v = item["references"])
      for (auto& [s, _] : str_list(v, "references")) r.references.push_back(s);
    pb_.diagnosis.push_back(std::move(r));
  }
}

void Loader::check_needs() {
  // Unknown ids first, then cycles over the edges that resolve. References to steps.X in
  // a step's expressions order it after X as `needs` does, so they take part in cycles.
  std::map<std::string, std::vector<NeedEdge>> graph;
  for (const auto& id : step_id_order_) {
    for (const auto& e : need_edges_[id]) {
      if (step_ids_.contains(e.id))
        graph[id].push_back(e);
      else
        err(e.pos, fmt::format("needs: unknown step id '{}'{}", e.id, hint(e.id, step_id_order_)));
    }
  }
  for (const auto& r : refs_) {
    if (r.owner.empty() || !step_ids_.contains(r.owner)) continue;
    for (const auto& id : r.steps)
      if (id != r.owner && step_ids_.contains(id)) graph[r.owner].push_back({id, r.pos, true});
  }
  for (const auto& s : pb_.steps)
    if (!step_ids_.contains(s.id))  // steps without a valid id: only report unknown needs
      for (const auto& e : need_edges_[s.id])
        if (!step_ids_.contains(e.id))
          err(e.pos,
              fmt::format("needs: unknown step id '{}'{}", e.id, hint(e.id, step_id_order_)));

  std::map<std::string, size_t> order;
  for (size_t i = 0; i < step_id_order_.size(); ++i) order[step_id_order_[i]] = i;
  std::map<std::string, int> color;  // 0 white, 1 on the stack, 2 done
  std::vector<std::string> stack;
  std::set<std::vector<std::string>> reported;
  std::function<void(const std::string&)> visit = [&](const std::string& u) {
    color[u] = 1;
    stack.push_back(u);
    for (const auto& e : graph[u]) {
      if (color[e.id] == 1) {
        std::vector<std::string> cycle(std::find(stack.begin(), stack.end(), e.id), stack.end());
        // Start the cycle at the member written first, so the message is stable.
        auto first =
            std::min_element(cycle.begin(), cycle.end(),
                             [&](const auto& a, const auto& b) { return order[a] < order[b]; });
        std::rotate(cycle.begin(), first, cycle.end());
        if (!reported.insert(cycle).second) continue;
        // Report at the first member's edge; say "needs" only when every edge is one.
        auto edge_to = [&](const std::string& from, const std::string& to) {
          const NeedEdge* best = nullptr;
          for (const auto& edge : graph[from])
            if (edge.id == to && (!best || (best->is_ref && !edge.is_ref))) best = &edge;
          return best;
        };
        bool only_needs = true;
        for (size_t k = 0; k < cycle.size(); ++k) {
          const NeedEdge* edge = edge_to(cycle[k], cycle[(k + 1) % cycle.size()]);
          only_needs = only_needs && edge && !edge->is_ref;
        }
        const NeedEdge* first_edge = edge_to(cycle[0], cycle.size() > 1 ? cycle[1] : cycle[0]);
        err(first_edge ? first_edge->pos : Pos{},
            fmt::format("{} cycle: {} -> {}{}", only_needs ? "needs" : "dependency",
                        fmt::join(cycle, " -> "), cycle[0],
                        only_needs ? "" : " (a steps.X reference orders steps like needs)"));
      } else if (color[e.id] == 0) {
        visit(e.id);
      }
    }
    stack.pop_back();
    color[u] = 2;
  };
  for (const auto& id : step_id_order_)
    if (color[id] == 0) visit(id);
}

void Loader::check_refs() {
  for (const auto& r : refs_) {
    for (const auto& id : r.steps) {
      if (!step_ids_.contains(id))
        err(r.pos,
            fmt::format("{}: unknown step id '{}'{}", r.field, id, hint(id, step_id_order_)));
    }
  }
}

}  // namespace loader_detail

using loader_detail::Loader;

std::expected<Plan, std::vector<Diagnostic>> load_playbook_text(
    const std::string& text, const std::string& display_name) {
  return Loader(display_name).run(text);
}

std::expected<Plan, std::vector<Diagnostic>> load_playbook(const std::string& path) {
  auto text = read_file_bounded(path, {.max_bytes = kMaxPlaybookBytes});
  if (!text)
    return std::unexpected(std::vector<Diagnostic>{{path, {}, "cannot read: " + text.error()}});
  return load_playbook_text(*text, path);
}

}  // namespace netplay
