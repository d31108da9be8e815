#include "runtime/watch/object.hpp"

#include <algorithm>

namespace tidesync::watch {

const std::string* object_meta::label(std::string_view key) const {
  auto it = std::lower_bound(labels.begin(), labels.end(), key,
                             [](const auto& l, std::string_view k) { return l.first < k; });
  if (it == labels.end() || it->first != key) return nullptr;
  return &it->second;
}

std::string make_key(std::string_view ns, std::string_view name) {
  std::string k;
  if (ns.empty()) return std::string(name);
  k.reserve(ns.size() + 1 + name.size());
  k.append(ns);
  k.push_back('/');
  k.append(name);
  return k;
}

std::string object::key() const {
  return make_key(meta.ns, meta.name);
}

expected<json::value> object::parse() const {
  if (!raw) return make_error(errc::invalid_argument, "object has no JSON body (a bookmark?)");
  return json::parse(*raw);
}

namespace {
bool is_decimal(std::string_view s) {
  if (s.empty() || s.size() > 19) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}
std::string_view strip_zeros(std::string_view s) {
  while (s.size() > 1 && s.front() == '0')
    s.remove_prefix(1);
  return s;
}
}  // namespace

int compare_resource_versions(std::string_view a, std::string_view b) {
  if (!is_decimal(a) || !is_decimal(b)) return kUnordered;
  a = strip_zeros(a);
  b = strip_zeros(b);
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

}  // namespace tidesync::watch
