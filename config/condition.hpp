// status.conditions entries, shared by every kind (metav1.Condition).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/validation.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::config {

// Condition types and reasons the controllers use.
namespace condition_type {
inline constexpr std::string_view ready = "Ready";
inline constexpr std::string_view waiting_for_lock = "WaitingForLock";
inline constexpr std::string_view pruned = "Pruned";  // DataSync: its volumes were deleted
}  // namespace condition_type

struct condition {
  std::string type;                // "Ready", "WaitingForLock", ...
  std::string status = "Unknown";  // "True", "False" or "Unknown"
  std::string reason;              // CamelCase, machine-readable ("InvalidSpec")
  std::string message;             // for people: what is wrong and what to do
  sys_seconds last_transition_time{};
  int64_t observed_generation = 0;

  friend bool operator==(const condition&, const condition&) = default;
};

// A condition without designated initialisers (GCC warns about omitted members).
condition make_condition(std::string type, std::string status, std::string reason = {},
                         std::string message = {}, int64_t observed_generation = 0);

// Sets `c` in `list` (matched by type) following the Kubernetes convention: when the status
// does not change, the existing lastTransitionTime is kept; when it changes or the condition
// is new, it becomes `now` (c.last_transition_time is ignored). Returns whether anything in
// the list changed (so a caller can skip a no-op status write).
bool set_condition(std::vector<condition>& list, condition c, sys_seconds now);

// The condition of `type`, or nullptr.
const condition* find_condition(const std::vector<condition>& list, std::string_view type);

// Removes the condition of `type`; returns whether it was there.
bool remove_condition(std::vector<condition>& list, std::string_view type);

json::value to_json(const condition& c);
json::value to_json(const std::vector<condition>& list);

// Reads status.conditions leniently (it is our own output): malformed entries become warnings.
std::vector<condition> parse_conditions(const json::value* list, const std::string& path,
                                        problems& p);

}  // namespace tidesync::config
