// Label selector parsing and matching (see runtime/k8s/selector.hpp).
#include "runtime/k8s/selector.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "runtime/json/value.hpp"

namespace tidesync::k8s {
namespace {

bool is_alnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

// A qualified name part: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63 characters.
bool valid_name_part(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!is_alnum(s.front()) || !is_alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
}

bool valid_dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  if (!is_alnum(s.front()) || !is_alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (std::islower(static_cast<unsigned char>(c)) != 0) ||
           (std::isdigit(static_cast<unsigned char>(c)) != 0) || c == '-' || c == '.';
  });
}

error bad(std::string_view text, std::string why) {
  return make_error(errc::invalid_argument,
                    "invalid label selector \"" + std::string(text) + "\": " + std::move(why));
}

// A hand-written scanner: the grammar is small and error messages matter more than speed.
class parser {
 public:
  explicit parser(std::string_view text) : text_(text) {}

  expected<std::vector<label_selector::requirement>> run() {
    std::vector<label_selector::requirement> out;
    skip_ws();
    if (at_end()) return out;
    for (;;) {
      auto r = requirement();
      if (!r) return r.error();
      out.push_back(std::move(*r));
      skip_ws();
      if (at_end()) break;
      if (text_[pos_] != ',') return bad(text_, "expected ',' at position " + std::to_string(pos_));
      ++pos_;
      skip_ws();
      if (at_end()) return bad(text_, "a trailing ',' must be followed by a requirement");
    }
    return out;
  }

 private:
  using req = label_selector::requirement;
  using op = label_selector::op;

  [[nodiscard]] bool at_end() const { return pos_ >= text_.size(); }
  void skip_ws() {
    while (!at_end() && std::isspace(static_cast<unsigned char>(text_[pos_])) != 0)
      ++pos_;
  }
  static bool is_ident_char(char c) {
    return is_alnum(c) || c == '-' || c == '_' || c == '.' || c == '/';
  }
  std::string_view identifier() {
    size_t start = pos_;
    while (!at_end() && is_ident_char(text_[pos_]))
      ++pos_;
    return text_.substr(start, pos_ - start);
  }
  bool keyword(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    size_t after = pos_ + word.size();
    if (after < text_.size() && is_ident_char(text_[after])) return false;
    pos_ = after;
    return true;
  }

  expected<req> requirement() {
    req r;
    bool negated = false;
    if (text_[pos_] == '!') {
      negated = true;
      ++pos_;
      skip_ws();
    }
    std::string_view key = identifier();
    if (key.empty()) return bad(text_, "expected a label key at position " + std::to_string(pos_));
    if (!label_selector::valid_key(key))
      return bad(text_, "invalid label key \"" + std::string(key) + "\"");
    r.key = std::string(key);
    skip_ws();
    if (negated) {
      if (!at_end() && text_[pos_] != ',')
        return bad(text_, "'!" + r.key + "' cannot be followed by an operator");
      r.operation = op::not_exists;
      return r;
    }
    if (at_end() || text_[pos_] == ',') {
      r.operation = op::exists;
      return r;
    }
    if (text_.substr(pos_, 2) == "==") {
      pos_ += 2;
      r.operation = op::equals;
    } else if (text_.substr(pos_, 2) == "!=") {
      pos_ += 2;
      r.operation = op::not_equals;
    } else if (text_[pos_] == '=') {
      ++pos_;
      r.operation = op::equals;
    } else if (text_[pos_] == '>' || text_[pos_] == '<') {
      r.operation = text_[pos_] == '>' ? op::greater_than : op::less_than;
      ++pos_;
    } else if (keyword("notin")) {
      r.operation = op::not_in;
    } else if (keyword("in")) {
      r.operation = op::in;
    } else {
      return bad(text_, "unknown operator at position " + std::to_string(pos_) +
                            " (expected =, ==, !=, in, notin, >, <)");
    }
    skip_ws();
    if (r.operation == op::in || r.operation == op::not_in) {
      if (at_end() || text_[pos_] != '(')
        return bad(text_, "expected '(' after '" +
                              std::string(r.operation == op::in ? "in" : "notin") + "'");
      ++pos_;
      for (;;) {
        skip_ws();
        std::string_view v = identifier();
        if (!label_selector::valid_value(v))
          return bad(text_, "invalid label value \"" + std::string(v) + "\"");
        r.values.emplace_back(v);
        skip_ws();
        if (at_end()) return bad(text_, "missing ')'");
        if (text_[pos_] == ')') {
          ++pos_;
          break;
        }
        if (text_[pos_] != ',')
          return bad(text_, "expected ',' or ')' at position " + std::to_string(pos_));
        ++pos_;
      }
      if (r.values.size() == 1 && r.values[0].empty())
        return bad(text_, "'in' and 'notin' need at least one value");
    } else {
      std::string_view v = identifier();
      if (!label_selector::valid_value(v))
        return bad(text_, "invalid label value \"" + std::string(v) + "\"");
      if (r.operation == op::greater_than || r.operation == op::less_than) {
        char* end = nullptr;
        std::string tmp(v);
        std::strtoll(tmp.c_str(), &end, 10);
        if (tmp.empty() || *end != '\0') return bad(text_, "'>' and '<' need an integer value");
      }
      r.values.emplace_back(v);
    }
    std::sort(r.values.begin(), r.values.end());
    return r;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

bool requirement_matches(const label_selector::requirement& r,
                         const std::map<std::string, std::string>& labels) {
  auto it = labels.find(r.key);
  bool has = it != labels.end();
  auto contains = [&](const std::string& v) {
    return std::binary_search(r.values.begin(), r.values.end(), v);
  };
  switch (r.operation) {
    case label_selector::op::equals:
    case label_selector::op::in:
      return has && contains(it->second);
    case label_selector::op::not_equals:
    case label_selector::op::not_in:
      return !has || !contains(it->second);
    case label_selector::op::exists:
      return has;
    case label_selector::op::not_exists:
      return !has;
    case label_selector::op::greater_than:
    case label_selector::op::less_than: {
      if (!has) return false;
      char* end = nullptr;
      long long have = std::strtoll(it->second.c_str(), &end, 10);
      if (it->second.empty() || *end != '\0') return false;
      long long want = std::strtoll(r.values.front().c_str(), nullptr, 10);
      return r.operation == label_selector::op::greater_than ? have > want : have < want;
    }
  }
  return false;
}

}  // namespace

bool label_selector::valid_key(std::string_view key) {
  auto slash = key.find('/');
  if (slash == std::string_view::npos) return valid_name_part(key);
  return valid_dns_subdomain(key.substr(0, slash)) && valid_name_part(key.substr(slash + 1));
}

bool label_selector::valid_value(std::string_view value) {
  return value.empty() || valid_name_part(value);
}

expected<label_selector> label_selector::parse(std::string_view text) {
  auto reqs = parser(text).run();
  if (!reqs) return reqs.error();
  label_selector s;
  s.requirements_ = std::move(*reqs);
  return s;
}

expected<label_selector> label_selector::from_json(const json::value& selector) {
  label_selector s;
  if (selector.is_null()) return s;
  if (!selector.is_object())
    return make_error(errc::invalid_argument, "a label selector must be an object");
  if (const auto* ml = selector.at("matchLabels"); ml != nullptr && !ml->is_null()) {
    if (!ml->is_object())
      return make_error(errc::invalid_argument, "matchLabels must be an object");
    for (const auto& [k, v] : ml->as_object()) {
      if (!v.is_string() || !valid_key(k) || !valid_value(v.as_string()))
        return make_error(errc::invalid_argument, "invalid matchLabels entry \"" + k + "\"");
      s.requirements_.push_back({k, op::equals, {v.as_string()}});
    }
  }
  if (const auto* me = selector.at("matchExpressions"); me != nullptr && !me->is_null()) {
    if (!me->is_array())
      return make_error(errc::invalid_argument, "matchExpressions must be a list");
    for (const auto& e : me->as_array()) {
      requirement r;
      r.key = std::string(e.get_string("key"));
      if (!valid_key(r.key))
        return make_error(errc::invalid_argument, "invalid matchExpressions key \"" + r.key + "\"");
      std::string_view o = e.get_string("operator");
      if (const auto* vs = e.at("values"); vs != nullptr && vs->is_array()) {
        for (const auto& v : vs->as_array()) {
          if (!v.is_string() || !valid_value(v.as_string()))
            return make_error(errc::invalid_argument,
                              "invalid value in matchExpressions for \"" + r.key + "\"");
          r.values.push_back(v.as_string());
        }
      }
      if (o == "In") {
        r.operation = op::in;
      } else if (o == "NotIn") {
        r.operation = op::not_in;
      } else if (o == "Exists") {
        r.operation = op::exists;
      } else if (o == "DoesNotExist") {
        r.operation = op::not_exists;
      } else {
        return make_error(errc::invalid_argument,
                          "unknown matchExpressions operator \"" + std::string(o) +
                              "\" (expected In, NotIn, Exists, DoesNotExist)");
      }
      bool needs_values = r.operation == op::in || r.operation == op::not_in;
      if (needs_values == r.values.empty())
        return make_error(errc::invalid_argument,
                          "matchExpressions operator " + std::string(o) +
                              (needs_values ? " needs values" : " takes no values"));
      std::sort(r.values.begin(), r.values.end());
      s.requirements_.push_back(std::move(r));
    }
  }
  return s;
}

bool label_selector::matches(const std::map<std::string, std::string>& labels) const {
  return std::all_of(requirements_.begin(), requirements_.end(),
                     [&](const requirement& r) { return requirement_matches(r, labels); });
}

std::string label_selector::to_string() const {
  std::string out;
  for (const auto& r : requirements_) {
    if (!out.empty()) out += ',';
    auto join = [&] {
      std::string s;
      for (const auto& v : r.values) {
        if (!s.empty()) s += ',';
        s += v;
      }
      return s;
    };
    switch (r.operation) {
      case op::equals:
        out += r.key + "=" + r.values.front();
        break;
      case op::not_equals:
        out += r.key + "!=" + r.values.front();
        break;
      case op::in:
        out += r.key + " in (" + join() + ")";
        break;
      case op::not_in:
        out += r.key + " notin (" + join() + ")";
        break;
      case op::exists:
        out += r.key;
        break;
      case op::not_exists:
        out += "!" + r.key;
        break;
      case op::greater_than:
        out += r.key + ">" + r.values.front();
        break;
      case op::less_than:
        out += r.key + "<" + r.values.front();
        break;
    }
  }
  return out;
}

}  // namespace tidesync::k8s
