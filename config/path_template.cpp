// remotePath templates (see path_template.hpp).
#include "config/path_template.hpp"

#include <algorithm>
#include <optional>
#include <utility>

#include "runtime/k8s/selector.hpp"

namespace tidesync::config {

namespace {

constexpr std::string_view k_allowed =
    "write one of {{ pod.metadata.name }}, {{ pod.metadata.namespace }}, "
    "{{ pod.metadata.labels[\"key\"] }}, {{ pod.metadata.annotations[\"key\"] }} (or the "
    "pod.ObjectMeta.Name / Namespace / Labels[\"key\"] / Annotations[\"key\"] spellings)";

error invalid(std::string message) {
  return make_error(errc::invalid_argument, std::move(message));
}

bool blank(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && blank(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && blank(s.back()))
    s.remove_suffix(1);
  return s;
}

bool control(char c) {
  auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

// `["key"]` or `['key']` with optional blanks; the key or nullopt.
std::optional<std::string> bracket_key(std::string_view s) {
  s = trim(s);
  if (s.size() < 2 || s.front() != '[' || s.back() != ']') return std::nullopt;
  s = trim(s.substr(1, s.size() - 2));
  if (s.size() < 2 || (s.front() != '"' && s.front() != '\'') || s.back() != s.front())
    return std::nullopt;
  s = s.substr(1, s.size() - 2);
  if (s.find_first_of("\"'\\") != std::string_view::npos) return std::nullopt;
  return std::string(s);
}

// One expression (without braces, trimmed) into a part; an error message otherwise.
expected<template_part> parse_expression(std::string_view expr, size_t position) {
  auto fail = [&](std::string what) -> expected<template_part> {
    return invalid("remotePath template at position " + std::to_string(position) + ": " + what +
                   "; " + std::string(k_allowed));
  };
  if (expr.empty()) return fail("empty expression {{ }}");
  if (expr.find('|') != std::string_view::npos)
    return fail("filters are not supported in \"" + std::string(expr) + "\"");
  template_part part;
  part.position = position;
  if (expr == "pod.metadata.name" || expr == "pod.ObjectMeta.Name") {
    part.what = template_part::kind::name;
    return part;
  }
  if (expr == "pod.metadata.namespace" || expr == "pod.ObjectMeta.Namespace") {
    part.what = template_part::kind::namespace_;
    return part;
  }
  struct map_form {
    std::string_view prefix;
    template_part::kind what;
    std::string_view noun;
  };
  for (const auto& f :
       {map_form{"pod.metadata.labels", template_part::kind::label, "label"},
        map_form{"pod.ObjectMeta.Labels", template_part::kind::label, "label"},
        map_form{"pod.metadata.annotations", template_part::kind::annotation, "annotation"},
        map_form{"pod.ObjectMeta.Annotations", template_part::kind::annotation, "annotation"}}) {
    if (!expr.starts_with(f.prefix)) continue;
    auto rest = expr.substr(f.prefix.size());
    if (trim(rest).empty() || trim(rest).front() != '[') continue;
    auto key = bracket_key(rest);
    if (!key)
      return fail("\"" + std::string(expr) + "\" needs a quoted key, e.g. " +
                  std::string(f.prefix) + "[\"app\"]");
    if (!k8s::label_selector::valid_key(*key))
      return fail("\"" + *key + "\" is not a valid " + std::string(f.noun) +
                  " key (an optional DNS prefix and '/', then at most 63 characters of "
                  "[A-Za-z0-9-_.])");
    part.what = f.what;
    part.text = std::move(*key);
    return part;
  }
  return fail("unknown expression \"" + std::string(expr) + "\"");
}

void append_literal(std::vector<template_part>& parts, std::string_view text, size_t position) {
  if (text.empty()) return;
  if (!parts.empty() && parts.back().what == template_part::kind::literal) {
    parts.back().text += text;
    return;
  }
  template_part p;
  p.text = std::string(text);
  p.position = position;
  parts.push_back(std::move(p));
}

// A substituted value must stay inside one path segment.
std::optional<std::string> value_problem(std::string_view v) {
  if (v.empty()) return "is empty";
  if (v.find('/') != std::string_view::npos || v.find('\\') != std::string_view::npos)
    return "contains '/' or '\\' (a value may fill only part of one folder name)";
  if (std::any_of(v.begin(), v.end(), control)) return "contains a control character";
  return std::nullopt;
}

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (control(c)) {
      static constexpr char hex[] = "0123456789abcdef";
      auto u = static_cast<unsigned char>(c);
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 0xf];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

bool path_template::is_literal() const {
  return std::all_of(parts.begin(), parts.end(),
                     [](const auto& p) { return p.what == template_part::kind::literal; });
}

expected<std::string> normalize_remote_path(std::string_view path) {
  if (std::any_of(path.begin(), path.end(), control))
    return invalid("remote path " + quoted(path) + " contains a control character");
  if (path.find('\\') != std::string_view::npos)
    return invalid("remote path " + quoted(path) + " contains '\\'; separate folders with '/'");
  std::string out;
  size_t start = 0;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    auto seg = path.substr(start, end - start);
    if (seg == "." || seg == "..")
      return invalid("remote path " + quoted(path) +
                     " contains a \".\" or \"..\" folder; write the path without them");
    if (!seg.empty()) {
      if (!out.empty()) out += '/';
      out += seg;
    }
    start = end + 1;
  }
  if (out.empty())
    return invalid("remote path " + quoted(path) +
                   " is the remote's root; name a folder, e.g. my-bucket/my-app");
  if (out.size() > k_max_remote_path_bytes)
    return invalid("remote path is longer than " + std::to_string(k_max_remote_path_bytes) +
                   " bytes");
  return out;
}

expected<path_template> parse_template(std::string_view text) {
  path_template t;
  t.source = std::string(text);
  size_t i = 0;
  while (i < text.size()) {
    auto open = text.find('{', i);
    while (open != std::string_view::npos && open + 1 < text.size() && text[open + 1] != '{' &&
           text[open + 1] != '%' && text[open + 1] != '#')
      open = text.find('{', open + 1);
    if (open == std::string_view::npos || open + 1 >= text.size()) {
      append_literal(t.parts, text.substr(i), i + 1);
      break;
    }
    append_literal(t.parts, text.substr(i, open - i), i + 1);
    if (text[open + 1] == '%')
      return invalid("remotePath template at position " + std::to_string(open + 1) +
                     ": statements ({% ... %}) are not supported; " + std::string(k_allowed));
    if (text[open + 1] == '#')
      return invalid("remotePath template at position " + std::to_string(open + 1) +
                     ": comments ({# ... #}) are not supported");
    auto close = text.find("}}", open + 2);
    if (close == std::string_view::npos)
      return invalid("remotePath template at position " + std::to_string(open + 1) +
                     ": \"{{\" is not closed by \"}}\"");
    auto expr = trim(text.substr(open + 2, close - open - 2));
    if (expr.find("{{") != std::string_view::npos)
      return invalid("remotePath template at position " + std::to_string(open + 1) +
                     ": \"{{\" is not closed by \"}}\" before the next \"{{\"");
    auto part = parse_expression(expr, open + 1);
    if (!part) return part.error();
    t.parts.push_back(std::move(*part));
    i = close + 2;
  }
  // The literal text must be safe whatever the values: render with a harmless value.
  std::string probe;
  for (const auto& p : t.parts)
    probe += p.what == template_part::kind::literal ? p.text : std::string("x");
  if (auto n = normalize_remote_path(probe); !n) {
    auto e = n.error();
    e.message = "remotePath " + quoted(text) + ": " + e.message;
    return e;
  }
  return t;
}

expected<std::string> render(const path_template& t, const json::value& pod) {
  const json::value* meta = pod.at("metadata");
  auto who = [&] {
    std::string ns = meta ? std::string(meta->get_string("namespace")) : "";
    std::string name = meta ? std::string(meta->get_string("name")) : "";
    return "pod " + (ns.empty() ? name : ns + "/" + name);
  };
  std::string out;
  for (const auto& p : t.parts) {
    std::string value;
    std::string what;
    switch (p.what) {
      case template_part::kind::literal:
        out += p.text;
        continue;
      case template_part::kind::name:
      case template_part::kind::namespace_: {
        what = p.what == template_part::kind::name ? "metadata.name" : "metadata.namespace";
        auto key = p.what == template_part::kind::name ? "name" : "namespace";
        const json::value* v = meta ? meta->at(key) : nullptr;
        if (v == nullptr || !v->is_string() || v->as_string().empty())
          return invalid("remotePath at position " + std::to_string(p.position) + ": " + who() +
                         " has no " + what);
        value = v->as_string();
        break;
      }
      case template_part::kind::label:
      case template_part::kind::annotation: {
        bool label = p.what == template_part::kind::label;
        what = std::string(label ? "label " : "annotation ") + quoted(p.text);
        const json::value* m = meta ? meta->at(label ? "labels" : "annotations") : nullptr;
        const json::value* v = m ? m->at(p.text) : nullptr;
        if (v == nullptr || !v->is_string())
          return invalid("remotePath at position " + std::to_string(p.position) + ": " + who() +
                         " has no " + what + "; set it on the pod or change spec.remotePath");
        value = v->as_string();
        break;
      }
    }
    if (auto why = value_problem(value))
      return invalid("remotePath at position " + std::to_string(p.position) + ": " + who() + " " +
                     what + " " + quoted(value) + " " + *why);
    out += value;
  }
  auto n = normalize_remote_path(out);
  if (!n) {
    auto e = n.error();
    e.message = "remotePath for " + who() + ": " + e.message;
    return e;
  }
  return n;
}

}  // namespace tidesync::config
