// Structural schemas of custom resources (see schema.hpp).
#include "runtime/apiserver/schema.hpp"

#include <charconv>
#include <cmath>
#include <regex>
#include <string>
#include <string_view>

namespace tidesync::apiserver {
namespace {

bool flag(const json::value& schema, std::string_view key) {
  const auto* v = schema.at(key);
  return v != nullptr && v->is_bool() && v->as_bool();
}

bool preserves_unknown(const json::value& schema) {
  return flag(schema, "x-kubernetes-preserve-unknown-fields");
}

// The schema for members not in `properties` (a map type), or nullptr.
const json::value* additional(const json::value& schema) {
  const auto* a = schema.at("additionalProperties");
  return a != nullptr && a->is_object() ? a : nullptr;
}

void prune(json::value& v, const json::value& schema, bool root) {
  if (!schema.is_object()) return;
  if (v.is_array()) {
    if (const auto* items = schema.at("items"); items != nullptr && items->is_object())
      for (auto& item : v.as_array())
        prune(item, *items, false);
    return;
  }
  if (!v.is_object() || flag(schema, "x-kubernetes-int-or-string")) return;
  const auto* props = schema.at("properties");
  const auto* extra = additional(schema);
  bool keep_unknown = preserves_unknown(schema);
  std::vector<std::string> drop;
  for (auto& [k, member] : v.as_object()) {
    if (root && (k == "apiVersion" || k == "kind" || k == "metadata")) continue;
    const json::value* sub = props != nullptr ? props->at(k) : nullptr;
    if (sub == nullptr) sub = extra;
    if (sub == nullptr) {
      if (!keep_unknown) drop.push_back(k);
      continue;
    }
    // A null for a non-nullable member is dropped, not rejected (v1.20's decoder).
    if (member.is_null() && !flag(*sub, "nullable")) {
      drop.push_back(k);
      continue;
    }
    prune(member, *sub, false);
  }
  for (const auto& k : drop)
    v.as_object().erase(k);
}

void apply_defaults(json::value& v, const json::value& schema, bool root) {
  if (!schema.is_object()) return;
  if (v.is_array()) {
    if (const auto* items = schema.at("items"); items != nullptr && items->is_object())
      for (auto& item : v.as_array())
        apply_defaults(item, *items, false);
    return;
  }
  if (!v.is_object()) return;
  const auto* props = schema.at("properties");
  if (props != nullptr && props->is_object()) {
    for (const auto& [k, sub] : props->as_object()) {
      if (root && (k == "apiVersion" || k == "kind" || k == "metadata")) continue;
      if (!v.as_object().contains(k)) {
        const auto* d = sub.at("default");
        if (d == nullptr) continue;
        v.as_object().set(k, *d);
      }
      apply_defaults(*v.at(k), sub, false);
    }
  }
  if (const auto* extra = additional(schema)) {
    for (auto& [k, member] : v.as_object()) {
      if (props != nullptr && props->at(k) != nullptr) continue;
      apply_defaults(member, *extra, false);
    }
  }
}

// Go's %v for a float64: the shortest representation that round-trips ("0.1", "2", "1e+21").
std::string go_number(double d) {
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e21) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(d));
    return std::string(buf, r.ptr);
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, r.ptr);
  // Go writes exponents with a sign and at least two digits: 1e+21, 1e-07.
  if (auto e = s.find('e'); e != std::string::npos) {
    std::string mant = s.substr(0, e), exp = s.substr(e + 1);
    char sign = '+';
    if (!exp.empty() && (exp[0] == '-' || exp[0] == '+')) {
      sign = exp[0];
      exp.erase(0, 1);
    }
    if (exp.size() < 2) exp.insert(0, "0");
    s = mant + "e" + sign + exp;
  }
  return s;
}

// A value as field.Error prints it: strings quoted (%q), numbers and booleans plain.
std::string go_value(const json::value& v) {
  switch (v.type()) {
    case json::kind::null:
      return "\"null\"";
    case json::kind::boolean:
      return v.as_bool() ? "true" : "false";
    case json::kind::integer:
      return std::to_string(v.as_int());
    case json::kind::number:
      return go_number(v.as_double());
    case json::kind::string: {
      std::string out = "\"";
      for (char c : v.as_string()) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      return out + "\"";
    }
    default:
      return json::dump(v);
  }
}

// The JSON type name go-openapi reports for a value.
std::string type_name(const json::value& v) {
  switch (v.type()) {
    case json::kind::null:
      return "null";
    case json::kind::boolean:
      return "boolean";
    case json::kind::integer:
      return "integer";
    case json::kind::number:
      return "number";
    case json::kind::string:
      return "string";
    case json::kind::array:
      return "array";
    case json::kind::object:
      return "object";
  }
  return "null";
}

bool integral(const json::value& v) {
  if (v.is_int()) return true;
  if (v.type() != json::kind::number) return false;
  double d = v.as_double();
  return std::isfinite(d) && d == std::floor(d);
}

bool has_type(const json::value& v, std::string_view type) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "integer") return integral(v);
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_bool();
  return true;  // unknown type words: not ours to reject
}

class validator {
 public:
  std::vector<error_cause> causes;

  void check(const json::value& v, const json::value& schema, const std::string& path, bool root) {
    if (!schema.is_object()) return;
    std::string type(schema.get_string("type"));
    bool int_or_string = flag(schema, "x-kubernetes-int-or-string");
    if (int_or_string) type = "integer,string";
    if (v.is_null()) {
      if (!flag(schema, "nullable") && !type.empty()) type_error(path, type, v);
      return;
    }
    if (int_or_string) {
      if (!v.is_string() && !integral(v)) return type_error(path, type, v);
    } else if (!type.empty() && !has_type(v, type)) {
      return type_error(path, type, v);
    }
    if (const auto* e = schema.at("enum"); e != nullptr && e->is_array()) check_enum(v, *e, path);
    if (v.is_string()) check_string(v, schema, path);
    if (v.is_number()) check_number(v, schema, path);
    if (v.is_array()) check_array(v, schema, path);
    if (v.is_object()) check_object(v, schema, path, root);
  }

 private:
  void invalid(const std::string& path, const json::value& value, const std::string& detail) {
    causes.push_back(
        {"FieldValueInvalid", path, "Invalid value: " + go_value(value) + ": " + detail});
  }
  // go-openapi: "<path> in body must be of type <type>: "<actual>"".
  void type_error(const std::string& path, const std::string& type, const json::value& v) {
    std::string actual = type_name(v);
    invalid(path, json::value(actual),
            path + " in body must be of type " + type + ": \"" + actual + "\"");
  }

  void check_enum(const json::value& v, const json::value& values, const std::string& path) {
    for (const auto& allowed : values.as_array())
      if (allowed == v) return;
    std::string body = "Unsupported value: " + go_value(v) + ": supported values: ";
    bool first = true;
    for (const auto& allowed : values.as_array()) {
      if (!first) body += ", ";
      first = false;
      body += "\"" + (allowed.is_string() ? allowed.as_string() : json::dump(allowed)) + "\"";
    }
    causes.push_back({"FieldValueNotSupported", path, std::move(body)});
  }

  void check_string(const json::value& v, const json::value& schema, const std::string& path) {
    const std::string& s = v.as_string();
    // Go counts runes: count the bytes that do not continue a UTF-8 sequence.
    int64_t runes = 0;
    for (unsigned char c : s)
      if ((c & 0xc0) != 0x80) ++runes;
    if (const auto* m = schema.at("maxLength");
        m != nullptr && m->is_number() && runes > static_cast<int64_t>(m->as_double()))
      invalid(path, v,
              path + " in body should be at most " + go_number(m->as_double()) + " chars long");
    if (const auto* m = schema.at("minLength");
        m != nullptr && m->is_number() && runes < static_cast<int64_t>(m->as_double()))
      invalid(path, v,
              path + " in body should be at least " + go_number(m->as_double()) + " chars long");
    if (const auto* p = schema.at("pattern"); p != nullptr && p->is_string()) {
      bool ok = true;
      try {
        ok = std::regex_search(s, std::regex(p->as_string(), std::regex::ECMAScript));
      } catch (const std::regex_error&) {
        ok = true;  // a pattern std::regex cannot compile: do not reject the object for it
      }
      if (!ok) invalid(path, v, path + " in body should match '" + p->as_string() + "'");
    }
  }

  void check_number(const json::value& v, const json::value& schema, const std::string& path) {
    double d = v.as_double();
    if (const auto* m = schema.at("maximum"); m != nullptr && m->is_number()) {
      bool exclusive = flag(schema, "exclusiveMaximum");
      double max = m->as_double();
      if (exclusive ? d >= max : d > max)
        invalid(path, v,
                path + " in body should be less than " + (exclusive ? "" : "or equal to ") +
                    go_number(max));
    }
    if (const auto* m = schema.at("minimum"); m != nullptr && m->is_number()) {
      bool exclusive = flag(schema, "exclusiveMinimum");
      double min = m->as_double();
      if (exclusive ? d <= min : d < min)
        invalid(path, v,
                path + " in body should be greater than " + (exclusive ? "" : "or equal to ") +
                    go_number(min));
    }
  }

  void check_array(const json::value& v, const json::value& schema, const std::string& path) {
    int64_t n = static_cast<int64_t>(v.as_array().size());
    if (const auto* m = schema.at("maxItems");
        m != nullptr && m->is_number() && n > static_cast<int64_t>(m->as_double()))
      invalid(path, json::value(n),
              path + " in body should have at most " + go_number(m->as_double()) + " items");
    if (const auto* m = schema.at("minItems");
        m != nullptr && m->is_number() && n < static_cast<int64_t>(m->as_double()))
      invalid(path, json::value(n),
              path + " in body should have at least " + go_number(m->as_double()) + " items");
    if (const auto* items = schema.at("items"); items != nullptr && items->is_object())
      for (const auto& item : v.as_array())
        check(item, *items, path, false);  // v1.20 reports items under the array's path
  }

  void check_object(const json::value& v, const json::value& schema, const std::string& path,
                    bool root) {
    auto child = [&](const std::string& k) { return path.empty() ? k : path + "." + k; };
    if (const auto* req = schema.at("required"); req != nullptr && req->is_array())
      for (const auto& r : req->as_array())
        if (r.is_string() && v.at(r.as_string()) == nullptr)
          causes.push_back({"FieldValueRequired", child(r.as_string()), "Required value"});
    const auto* props = schema.at("properties");
    const auto* extra = additional(schema);
    for (const auto& [k, member] : v.as_object()) {
      if (root && (k == "apiVersion" || k == "kind" || k == "metadata")) continue;
      const json::value* sub = props != nullptr ? props->at(k) : nullptr;
      if (sub == nullptr) sub = extra;
      if (sub != nullptr) check(member, *sub, child(k), false);
    }
  }
};

}  // namespace

void default_custom_resource(json::value& obj, const json::value& schema) {
  apply_defaults(obj, schema, true);
}

void prune_custom_resource(json::value& obj, const json::value& schema) {
  prune(obj, schema, true);
}

std::vector<error_cause> validate_custom_resource(const json::value& obj,
                                                  const json::value& schema) {
  validator v;
  v.check(obj, schema, "", true);
  return std::move(v.causes);
}

}  // namespace tidesync::apiserver
