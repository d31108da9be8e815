#include "runtime/json/value.hpp"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <unordered_set>

namespace tidesync::json {

// ---------------------------------------------------------------------------------------
// object

object::object(std::initializer_list<member> members) : members_(members) {}

const value* object::find(std::string_view key) const {
  for (const auto& m : members_)
    if (m.first == key) return &m.second;
  return nullptr;
}

value* object::find(std::string_view key) {
  for (auto& m : members_)
    if (m.first == key) return &m.second;
  return nullptr;
}

value& object::operator[](std::string_view key) {
  if (value* v = find(key)) return *v;
  members_.emplace_back(std::string(key), value{});
  return members_.back().second;
}

void object::set(std::string_view key, value v) {
  (*this)[key] = std::move(v);
}

bool object::erase(std::string_view key) {
  auto it = std::find_if(members_.begin(), members_.end(),
                         [&](const member& m) { return m.first == key; });
  if (it == members_.end()) return false;
  members_.erase(it);
  return true;
}

// Objects are equal when they have the same keys with equal values, in any order.
bool operator==(const object& a, const object& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, v] : a) {
    const value* other = b.find(k);
    if (other == nullptr || !(*other == v)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// value

double value::as_double() const {
  if (const auto* i = std::get_if<int64_t>(&v_)) return static_cast<double>(*i);
  return std::get<double>(v_);
}

const value* value::at(std::string_view key) const {
  const auto* o = std::get_if<object>(&v_);
  return o == nullptr ? nullptr : o->find(key);
}

value* value::at(std::string_view key) {
  auto* o = std::get_if<object>(&v_);
  return o == nullptr ? nullptr : o->find(key);
}

const value* value::at_path(std::initializer_list<std::string_view> path) const {
  const value* cur = this;
  for (auto key : path) {
    cur = cur->at(key);
    if (cur == nullptr) return nullptr;
  }
  return cur;
}

value* value::at_path(std::initializer_list<std::string_view> path) {
  value* cur = this;
  for (auto key : path) {
    cur = cur->at(key);
    if (cur == nullptr) return nullptr;
  }
  return cur;
}

value& value::operator[](std::string_view key) {
  if (is_null()) v_ = object{};
  return std::get<object>(v_)[key];
}

std::string_view value::get_string(std::string_view key, std::string_view fallback) const {
  const value* v = at(key);
  return v != nullptr && v->is_string() ? std::string_view(v->as_string()) : fallback;
}

int64_t value::get_int(std::string_view key, int64_t fallback) const {
  const value* v = at(key);
  if (v == nullptr) return fallback;
  if (v->is_int()) return v->as_int();
  if (v->type() == kind::number) return static_cast<int64_t>(v->as_double());
  return fallback;
}

bool value::get_bool(std::string_view key, bool fallback) const {
  const value* v = at(key);
  return v != nullptr && v->is_bool() ? v->as_bool() : fallback;
}

bool operator==(const value& a, const value& b) {
  // 1 and 1.0 compare equal, as in JSON Patch's `test`.
  if (a.is_number() && b.is_number() && a.type() != b.type()) return a.as_double() == b.as_double();
  return a.v_ == b.v_;
}

// ---------------------------------------------------------------------------------------
// parsing

namespace {

value from_dom(simdjson::dom::element e) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::OBJECT: {
      simdjson::dom::object src(e);
      std::vector<object::member> members;
      members.reserve(src.size());
      std::unordered_set<std::string_view> seen;
      bool duplicates = false;
      for (auto field : src) {
        duplicates = duplicates || !seen.insert(field.key).second;
        members.emplace_back(std::string(field.key), from_dom(field.value));
      }
      if (!duplicates) return object(std::move(members));
      // Duplicate keys: the last one wins, as with Go's encoding/json.
      object o;
      for (auto& m : members)
        o.set(m.first, std::move(m.second));
      return o;
    }
    case element_type::ARRAY: {
      array a;
      simdjson::dom::array arr(e);
      a.reserve(arr.size());
      for (auto item : arr)
        a.push_back(from_dom(item));
      return a;
    }
    case element_type::STRING:
      return std::string_view(e);
    case element_type::INT64:
      return int64_t(e);
    case element_type::UINT64: {
      uint64_t u = uint64_t(e);
      return static_cast<double>(u);
    }
    case element_type::DOUBLE:
      return double(e);
    case element_type::BOOL:
      return bool(e);
    case element_type::NULL_VALUE:
      return nullptr;
  }
  return nullptr;
}

}  // namespace

expected<value> parse(std::string_view text) {
  // One parser per thread: simdjson parsers reuse their buffers across calls.
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(text);
  simdjson::dom::element root;
  auto err = parser.parse(padded).get(root);
  if (err) {
    return make_error(errc::parse_error,
                      std::string("invalid JSON: ") + simdjson::error_message(err));
  }
  // Object keys must be unique for the DOM to be unambiguous; duplicate keys keep the last
  // value (as Go's encoding/json does) because object::operator[] overwrites.
  return from_dom(root);
}

// ---------------------------------------------------------------------------------------
// serialisation

void append_quoted(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run_start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run_start, i - run_start);
    run_start = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        out += "\\u00";
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 0xF]);
    }
  }
  out.append(s.data() + run_start, s.size() - run_start);
  out.push_back('"');
}

namespace {

void append_number(std::string& out, double d) {
  if (!std::isfinite(d)) {  // JSON has no NaN/Inf
    out += "null";
    return;
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
  out.append(buf, end);
}

void dump_impl(std::string& out, const value& v, int indent, int depth) {
  auto newline = [&](int d) {
    if (indent < 0) return;
    out.push_back('\n');
    out.append(static_cast<size_t>(indent * d), ' ');
  };
  switch (v.type()) {
    case kind::null:
      out += "null";
      break;
    case kind::boolean:
      out += v.as_bool() ? "true" : "false";
      break;
    case kind::integer: {
      char buf[24];
      auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v.as_int());
      out.append(buf, end);
      break;
    }
    case kind::number:
      append_number(out, v.as_double());
      break;
    case kind::string:
      append_quoted(out, v.as_string());
      break;
    case kind::array: {
      const auto& a = v.as_array();
      out.push_back('[');
      for (size_t i = 0; i < a.size(); ++i) {
        if (i > 0) out.push_back(',');
        newline(depth + 1);
        dump_impl(out, a[i], indent, depth + 1);
      }
      if (!a.empty()) newline(depth);
      out.push_back(']');
      break;
    }
    case kind::object: {
      const auto& o = v.as_object();
      out.push_back('{');
      bool first = true;
      for (const auto& [k, member] : o) {
        if (!first) out.push_back(',');
        first = false;
        newline(depth + 1);
        append_quoted(out, k);
        out.push_back(':');
        if (indent >= 0) out.push_back(' ');
        dump_impl(out, member, indent, depth + 1);
      }
      if (!o.empty()) newline(depth);
      out.push_back('}');
      break;
    }
  }
}

}  // namespace

void dump_to(std::string& out, const value& v) {
  dump_impl(out, v, -1, 0);
}

std::string dump(const value& v) {
  std::string out;
  dump_impl(out, v, -1, 0);
  return out;
}

std::string dump_pretty(const value& v) {
  std::string out;
  dump_impl(out, v, 2, 0);
  return out;
}

// ---------------------------------------------------------------------------------------
// RFC 7386 merge patch

value merge_patch(value target, const value& patch) {
  if (!patch.is_object()) return patch;
  if (!target.is_object()) target = object{};
  auto& t = target.as_object();
  for (const auto& [k, v] : patch.as_object()) {
    if (v.is_null()) {
      t.erase(k);
    } else {
      value* existing = t.find(k);
      if (existing != nullptr) {
        *existing = merge_patch(std::move(*existing), v);
      } else {
        t.set(k, merge_patch(value{}, v));
      }
    }
  }
  return target;
}

// ---------------------------------------------------------------------------------------
// RFC 6902 JSON patch

namespace {

// Splits an RFC 6901 pointer into unescaped tokens.
expected<std::vector<std::string>> parse_pointer(std::string_view ptr) {
  std::vector<std::string> tokens;
  if (ptr.empty()) return tokens;
  if (ptr.front() != '/') {
    return make_error(errc::invalid_argument,
                      "JSON pointer \"" + std::string(ptr) + "\" must be empty or start with '/'");
  }
  size_t pos = 1;
  while (true) {
    size_t next = ptr.find('/', pos);
    std::string_view raw = ptr.substr(pos, next == std::string_view::npos ? ptr.npos : next - pos);
    std::string token;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '~' && i + 1 < raw.size() && (raw[i + 1] == '0' || raw[i + 1] == '1')) {
        token.push_back(raw[i + 1] == '0' ? '~' : '/');
        ++i;
      } else if (raw[i] == '~') {
        return make_error(errc::invalid_argument,
                          "JSON pointer \"" + std::string(ptr) + "\" has a bad '~' escape");
      } else {
        token.push_back(raw[i]);
      }
    }
    tokens.push_back(std::move(token));
    if (next == std::string_view::npos) break;
    pos = next + 1;
  }
  return tokens;
}

expected<size_t> array_index(const std::string& token, size_t size, bool allow_end,
                             std::string_view ptr) {
  if (allow_end && token == "-") return size;
  size_t idx = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), idx);
  bool leading_zero = token.size() > 1 && token[0] == '0';
  if (ec != std::errc{} || end != token.data() + token.size() || token.empty() || leading_zero) {
    return make_error(errc::invalid_argument, "JSON pointer \"" + std::string(ptr) + "\": \"" +
                                                  token + "\" is not an array index");
  }
  if (idx > size || (!allow_end && idx == size)) {
    return make_error(errc::invalid_argument, "JSON pointer \"" + std::string(ptr) + "\": index " +
                                                  token + " is out of range (array has " +
                                                  std::to_string(size) + " items)");
  }
  return idx;
}

error path_missing(std::string_view ptr) {
  return make_error(errc::invalid_argument,
                    "JSON pointer \"" + std::string(ptr) + "\" names no existing value");
}

// Resolves all but the last token; returns the parent container.
expected<value*> resolve_parent(value& root, const std::vector<std::string>& tokens,
                                std::string_view ptr) {
  value* cur = &root;
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    if (cur->is_object()) {
      cur = cur->at(tokens[i]);
      if (cur == nullptr) return path_missing(ptr);
    } else if (cur->is_array()) {
      auto idx = array_index(tokens[i], cur->as_array().size(), false, ptr);
      if (!idx) return idx.error();
      cur = &cur->as_array()[*idx];
    } else {
      return path_missing(ptr);
    }
  }
  return cur;
}

expected<value> get_at(value& root, std::string_view ptr) {
  auto tokens = parse_pointer(ptr);
  if (!tokens) return tokens.error();
  if (tokens->empty()) return root;
  auto parent = resolve_parent(root, *tokens, ptr);
  if (!parent) return parent.error();
  value* p = *parent;
  const std::string& last = tokens->back();
  if (p->is_object()) {
    value* v = p->at(last);
    if (v == nullptr) return path_missing(ptr);
    return *v;
  }
  if (p->is_array()) {
    auto idx = array_index(last, p->as_array().size(), false, ptr);
    if (!idx) return idx.error();
    return p->as_array()[*idx];
  }
  return path_missing(ptr);
}

expected<value> remove_at(value& root, std::string_view ptr) {
  auto tokens = parse_pointer(ptr);
  if (!tokens) return tokens.error();
  if (tokens->empty()) {
    value old = std::move(root);
    root = value{};
    return old;
  }
  auto parent = resolve_parent(root, *tokens, ptr);
  if (!parent) return parent.error();
  value* p = *parent;
  const std::string& last = tokens->back();
  if (p->is_object()) {
    value* v = p->at(last);
    if (v == nullptr) return path_missing(ptr);
    value old = std::move(*v);
    p->as_object().erase(last);
    return old;
  }
  if (p->is_array()) {
    auto& a = p->as_array();
    auto idx = array_index(last, a.size(), false, ptr);
    if (!idx) return idx.error();
    value old = std::move(a[*idx]);
    a.erase(a.begin() + static_cast<std::ptrdiff_t>(*idx));
    return old;
  }
  return path_missing(ptr);
}

expected<void> add_at(value& root, std::string_view ptr, value v, bool replace) {
  auto tokens = parse_pointer(ptr);
  if (!tokens) return tokens.error();
  if (tokens->empty()) {
    root = std::move(v);
    return {};
  }
  auto parent = resolve_parent(root, *tokens, ptr);
  if (!parent) return parent.error();
  value* p = *parent;
  const std::string& last = tokens->back();
  if (p->is_object()) {
    if (replace && p->at(last) == nullptr) return path_missing(ptr);
    p->as_object().set(last, std::move(v));
    return {};
  }
  if (p->is_array()) {
    auto& a = p->as_array();
    auto idx = array_index(last, a.size(), !replace, ptr);
    if (!idx) return idx.error();
    if (replace) {
      a[*idx] = std::move(v);
    } else {
      a.insert(a.begin() + static_cast<std::ptrdiff_t>(*idx), std::move(v));
    }
    return {};
  }
  return path_missing(ptr);
}

}  // namespace

expected<value> json_patch(const value& target, const value& patch) {
  if (!patch.is_array()) {
    return make_error(errc::invalid_argument,
                      "a JSON patch must be an array of operations, like "
                      "[{\"op\":\"replace\",\"path\":\"/spec/x\",\"value\":1}]");
  }
  value doc = target;  // work on a copy: all or nothing
  size_t n = 0;
  for (const auto& op_value : patch.as_array()) {
    ++n;
    auto where = [&] { return "JSON patch operation " + std::to_string(n) + ": "; };
    if (!op_value.is_object()) return make_error(errc::invalid_argument, where() + "not an object");
    std::string_view op = op_value.get_string("op");
    const value* path_v = op_value.at("path");
    if (path_v == nullptr || !path_v->is_string())
      return make_error(errc::invalid_argument, where() + "missing \"path\"");
    const std::string& path = path_v->as_string();
    auto need_value = [&]() -> expected<value> {
      const value* v = op_value.at("value");
      if (v == nullptr) return make_error(errc::invalid_argument, where() + "missing \"value\"");
      return *v;
    };
    auto need_from = [&]() -> expected<std::string> {
      const value* v = op_value.at("from");
      if (v == nullptr || !v->is_string())
        return make_error(errc::invalid_argument, where() + "missing \"from\"");
      return v->as_string();
    };
    expected<void> result;
    if (op == "add" || op == "replace") {
      auto v = need_value();
      if (!v) return v.error();
      result = add_at(doc, path, std::move(*v), op == "replace");
    } else if (op == "remove") {
      auto removed = remove_at(doc, path);
      if (!removed) result = removed.error();
    } else if (op == "move" || op == "copy") {
      auto from = need_from();
      if (!from) return from.error();
      if (op == "move" && path.size() > from->size() && path.compare(0, from->size(), *from) == 0 &&
          path[from->size()] == '/') {
        return make_error(errc::invalid_argument,
                          where() + "cannot move a value into one of its own children");
      }
      auto v = op == "move" ? remove_at(doc, *from) : get_at(doc, *from);
      if (!v) {
        result = v.error();
      } else {
        result = add_at(doc, path, std::move(*v), false);
      }
    } else if (op == "test") {
      auto expect = need_value();
      if (!expect) return expect.error();
      auto actual = get_at(doc, path);
      if (!actual) {
        result = actual.error();
      } else if (!(*actual == *expect)) {
        result = make_error(errc::invalid, where() + "test failed: the value at \"" + path +
                                               "\" is " + dump(*actual) + ", not " + dump(*expect));
      }
    } else {
      return make_error(errc::invalid_argument,
                        where() + "unknown op \"" + std::string(op) +
                            "\" (use add, remove, replace, move, copy or test)");
    }
    if (!result) {
      error e = result.error();
      if (e.message.rfind("JSON patch operation", 0) != 0) e.message = where() + e.message;
      return e;
    }
  }
  return doc;
}

}  // namespace tidesync::json
