// Field-problem collection, typed readers and Kubernetes syntax checks (see validation.hpp).
#include "config/validation.hpp"

#include <cmath>
#include <cstdio>

#include "runtime/rfc3339.hpp"

namespace tidesync::config {

namespace {

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// DNS-1123 label: lower-case alphanumerics and '-', alphanumeric at both ends, ≤ 63.
bool dns_label(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!is_lower_alnum(s.front()) || !is_lower_alnum(s.back())) return false;
  for (char c : s)
    if (!is_lower_alnum(c) && c != '-') return false;
  return true;
}

// Label "name" part (and label values): alphanumerics, '-', '_', '.', alphanumeric at the ends.
bool qualified_name_part(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!is_alnum(s.front()) || !is_alnum(s.back())) return false;
  for (char c : s)
    if (!is_alnum(c) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

}  // namespace

void problems::required(std::string field, std::string message) {
  list_.push_back({std::move(field), "FieldValueRequired", std::move(message)});
}

void problems::invalid(std::string field, std::string message) {
  list_.push_back({std::move(field), "FieldValueInvalid", std::move(message)});
}

void problems::type(std::string field, std::string_view expected_type, const json::value& got) {
  list_.push_back({std::move(field), "FieldValueTypeInvalid",
                   "must be " + std::string(expected_type) + ", not " +
                       std::string(type_name(got)) + " " + describe(got)});
}

error problems::to_error(std::string_view what) const {
  error e;
  e.code = errc::invalid;
  e.reason = "Invalid";
  e.message = std::string(what) + " is invalid: ";
  for (size_t i = 0; i < list_.size(); ++i) {
    if (i > 0) e.message += "; ";
    e.message += list_[i].field + ": " + list_[i].message;
    e.causes.push_back({list_[i].reason, list_[i].field, list_[i].message});
  }
  return e;
}

std::string_view type_name(const json::value& v) {
  switch (v.type()) {
    case json::kind::null:
      return "null";
    case json::kind::boolean:
      return "a boolean";
    case json::kind::integer:
      return "an integer";
    case json::kind::number:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "a list";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

std::string describe(const json::value& v) {
  std::string s = json::dump(v);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

std::optional<std::string> read_string(const json::value& obj, std::string_view key,
                                       const std::string& path, problems& p) {
  const json::value* v = obj.at(key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_string()) {
    p.type(path, "a string", *v);
    return std::nullopt;
  }
  return v->as_string();
}

std::optional<int64_t> read_int(const json::value& obj, std::string_view key,
                                const std::string& path, problems& p) {
  const json::value* v = obj.at(key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (v->is_int()) return v->as_int();
  // YAML and some clients write 3.0 for 3: accept whole numbers.
  if (v->is_number()) {
    double d = v->as_double();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15)
      return static_cast<int64_t>(d);
  }
  p.type(path, "an integer", *v);
  return std::nullopt;
}

std::optional<bool> read_bool(const json::value& obj, std::string_view key, const std::string& path,
                              problems& p) {
  const json::value* v = obj.at(key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_bool()) {
    p.type(path, "true or false", *v);
    return std::nullopt;
  }
  return v->as_bool();
}

std::optional<sys_seconds> read_time(const json::value& obj, std::string_view key,
                                     const std::string& path, problems& p) {
  const json::value* v = obj.at(key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (v->is_string()) {
    if (auto t = rfc3339::parse(v->as_string())) return t;
  }
  p.warn(path + ": " + describe(*v) +
         " is not an RFC 3339 time such as \"2024-01-15T02:00:00Z\"; ignored");
  return std::nullopt;
}

void warn_unknown_fields(const json::value& obj, const std::string& path,
                         const std::vector<std::string_view>& known, problems& p) {
  if (!obj.is_object()) return;
  for (const auto& [key, value] : obj.as_object()) {
    bool found = false;
    for (auto k : known)
      if (k == key) found = true;
    if (found) continue;
    std::string msg =
        path + "." + key + ": unknown field, ignored (the API server drops it); known fields are ";
    for (size_t i = 0; i < known.size(); ++i) {
      if (i > 0) msg += ", ";
      msg += known[i];
    }
    p.warn(std::move(msg));
  }
}

json::value time_or_null(const std::optional<sys_seconds>& t) {
  if (!t) return nullptr;
  return rfc3339::format(*t);
}

expected<std::chrono::seconds> parse_duration(std::string_view text) {
  auto bad = [&](const std::string& what) -> error {
    return make_error(errc::invalid_argument, what);
  };
  if (text.empty()) return bad("is empty");
  if (text.front() == '-') return bad("must be positive");
  if (text.front() == '+') text.remove_prefix(1);
  if (text == "0") return bad("must be at least 1s");
  long double total_ns = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t b = i;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.'))
      ++i;
    if (i == b) return bad("expected a number at \"" + std::string(text.substr(b)) + "\"");
    std::string number(text.substr(b, i - b));
    if (number == "." || number.find('.') != number.rfind('.'))
      return bad("\"" + number + "\" is not a number");
    size_t u = i;
    while (i < text.size() && !((text[i] >= '0' && text[i] <= '9') || text[i] == '.'))
      ++i;
    std::string_view unit = text.substr(u, i - u);
    long double scale = 0;
    if (unit == "ns")
      scale = 1;
    else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs")
      scale = 1e3;
    else if (unit == "ms")
      scale = 1e6;
    else if (unit == "s")
      scale = 1e9;
    else if (unit == "m")
      scale = 60e9;
    else if (unit == "h")
      scale = 3600e9;
    else if (unit.empty())
      return bad("a number without a unit; add s, m or h");
    else
      return bad("unknown unit \"" + std::string(unit) + "\"; use ns, us, ms, s, m or h");
    total_ns += std::strtold(number.c_str(), nullptr) * scale;
    if (total_ns > 9.2e18L) return bad("is too large");
  }
  auto secs = static_cast<int64_t>(total_ns / 1e9L);
  if (secs < 1) return bad("must be at least 1s");
  return std::chrono::seconds(secs);
}

std::string format_duration(std::chrono::seconds d) {
  int64_t s = d.count();
  if (s == 0) return "0s";
  std::string out;
  if (s >= 3600) out += std::to_string(s / 3600) + "h";
  if (s % 3600 >= 60) out += std::to_string(s % 3600 / 60) + "m";
  if (s % 60 != 0) out += std::to_string(s % 60) + "s";
  return out;
}

std::string check_dns_subdomain(std::string_view s) {
  if (s.empty()) return "must not be empty";
  if (s.size() > 253) return "must be at most 253 characters";
  size_t b = 0;
  while (b <= s.size()) {
    size_t e = s.find('.', b);
    if (e == std::string_view::npos) e = s.size();
    if (!dns_label(s.substr(b, e - b)))
      return "must be lower-case letters, digits, '-' and '.', starting and ending with a "
             "letter or digit (e.g. \"my-secret\")";
    b = e + 1;
  }
  return {};
}

std::string check_label_key(std::string_view s) {
  if (s.empty()) return "label keys must not be empty";
  std::string_view name = s;
  if (auto slash = s.find('/'); slash != std::string_view::npos) {
    std::string_view prefix = s.substr(0, slash);
    name = s.substr(slash + 1);
    if (auto err = check_dns_subdomain(prefix); !err.empty())
      return "the prefix \"" + std::string(prefix) + "\" " + err;
  }
  if (!qualified_name_part(name))
    return "the name part must be 1-63 letters, digits, '-', '_' or '.', starting and ending "
           "with a letter or digit (e.g. \"app.kubernetes.io/name\" or \"team\")";
  return {};
}

std::string check_label_value(std::string_view s) {
  if (s.empty()) return {};
  if (!qualified_name_part(s))
    return "label values must be empty or 1-63 letters, digits, '-', '_' or '.', starting and "
           "ending with a letter or digit (e.g. \"backup\")";
  return {};
}

std::string check_config_map_key(std::string_view s) {
  if (s.empty()) return "must not be empty";
  if (s.size() > 253) return "must be at most 253 characters";
  if (s == "." || s == "..") return "must not be '.' or '..'";
  for (char c : s)
    if (!is_alnum(c) && c != '-' && c != '_' && c != '.')
      return "must consist of letters, digits, '-', '_' or '.' (e.g. \"access-key-id\")";
  return {};
}

}  // namespace tidesync::config
