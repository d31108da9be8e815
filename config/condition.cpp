// status.conditions (see condition.hpp).
#include "config/condition.hpp"

#include <algorithm>

#include "runtime/rfc3339.hpp"

namespace tidesync::config {

condition make_condition(std::string type, std::string status, std::string reason,
                         std::string message, int64_t observed_generation) {
  condition c;
  c.type = std::move(type);
  c.status = std::move(status);
  c.reason = std::move(reason);
  c.message = std::move(message);
  c.observed_generation = observed_generation;
  return c;
}

bool set_condition(std::vector<condition>& list, condition c, sys_seconds now) {
  for (auto& existing : list) {
    if (existing.type != c.type) continue;
    c.last_transition_time = existing.status == c.status ? existing.last_transition_time : now;
    if (existing == c) return false;
    existing = std::move(c);
    return true;
  }
  c.last_transition_time = now;
  list.push_back(std::move(c));
  return true;
}

const condition* find_condition(const std::vector<condition>& list, std::string_view type) {
  for (const auto& c : list)
    if (c.type == type) return &c;
  return nullptr;
}

bool remove_condition(std::vector<condition>& list, std::string_view type) {
  auto it =
      std::remove_if(list.begin(), list.end(), [&](const condition& c) { return c.type == type; });
  bool removed = it != list.end();
  list.erase(it, list.end());
  return removed;
}

json::value to_json(const condition& c) {
  json::object o{{"type", c.type}, {"status", c.status}};
  // Empty strings are left out: a JSON merge patch through kube-apiserver 1.20 turns "" inside
  // a list element into null, which the schema (type: string) then rejects.
  if (!c.reason.empty()) o.set("reason", c.reason);
  if (!c.message.empty()) o.set("message", c.message);
  o.set("lastTransitionTime", rfc3339::format(c.last_transition_time));
  o.set("observedGeneration", c.observed_generation);
  return o;
}

json::value to_json(const std::vector<condition>& list) {
  json::array a;
  a.reserve(list.size());
  for (const auto& c : list)
    a.push_back(to_json(c));
  return a;
}

std::vector<condition> parse_conditions(const json::value* list, const std::string& path,
                                        problems& p) {
  std::vector<condition> out;
  if (list == nullptr || list->is_null()) return out;
  if (!list->is_array()) {
    p.warn(path + ": must be a list of conditions; ignored");
    return out;
  }
  size_t i = 0;
  for (const auto& item : list->as_array()) {
    std::string at = path + "[" + std::to_string(i++) + "]";
    const json::value* type = item.at("type");
    if (type == nullptr || !type->is_string() || type->as_string().empty()) {
      p.warn(at + ": a condition without a type; ignored");
      continue;
    }
    // Status values are ours; read them with a throwaway collector so a damaged entry
    // degrades to defaults instead of failing the whole object.
    problems local;
    condition c;
    c.type = type->as_string();
    c.status = read_string(item, "status", at + ".status", local).value_or("Unknown");
    c.reason = read_string(item, "reason", at + ".reason", local).value_or("");
    c.message = read_string(item, "message", at + ".message", local).value_or("");
    c.last_transition_time =
        read_time(item, "lastTransitionTime", at + ".lastTransitionTime", local)
            .value_or(sys_seconds{});
    c.observed_generation =
        read_int(item, "observedGeneration", at + ".observedGeneration", local).value_or(0);
    for (const auto& pr : local.list())
      p.warn(pr.field + ": " + pr.message + "; ignored");
    for (const auto& w : local.warnings())
      p.warn(w);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace tidesync::config
