// corev1.EnvVar as BucketSync(Policy) spec.sourceEnv / destinationEnv hold it. valueFrom stays
// a reference (Secret/ConfigMap key, field, resource): the controller never reads the
// referenced value, the kubelet does when it starts the Job's pod.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/validation.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::config {

// secretKeyRef / configMapKeyRef.
struct key_selector {
  std::string name;  // the Secret's / ConfigMap's name (same namespace)
  std::string key;
  std::optional<bool> optional;
  friend bool operator==(const key_selector&, const key_selector&) = default;
};

// fieldRef (e.g. metadata.namespace of the pod).
struct field_selector {
  std::string api_version;  // empty: "v1"
  std::string field_path;
  friend bool operator==(const field_selector&, const field_selector&) = default;
};

// resourceFieldRef (e.g. limits.memory of the container).
struct resource_field_selector {
  std::string container_name;
  std::string resource;
  std::string divisor;  // a quantity as text ("1Mi"); empty when unset
  friend bool operator==(const resource_field_selector&, const resource_field_selector&) = default;
};

// Exactly one member is set (validated).
struct env_var_source {
  std::optional<key_selector> secret_key_ref;
  std::optional<key_selector> config_map_key_ref;
  std::optional<field_selector> field_ref;
  std::optional<resource_field_selector> resource_field_ref;
  friend bool operator==(const env_var_source&, const env_var_source&) = default;
};

struct env_var {
  std::string name;
  std::optional<std::string> value;  // literal; absent when value_from is set
  std::optional<env_var_source> value_from;
  friend bool operator==(const env_var&, const env_var&) = default;
};

// True for names the rclone container can receive: [A-Za-z_][A-Za-z0-9_]*. Stricter than
// Kubernetes (which allows '.' and '-') because rclone reads RCLONE_CONFIG_<REMOTE>_<KEY> and
// shells cannot name other variables.
bool valid_env_name(std::string_view name);
// ASCII upper case ("source" → "SOURCE"): env names as rclone reads them.
std::string ascii_upper(std::string_view s);

// Parses a list of EnvVar at `path` ("spec.sourceEnv"), reporting every problem: missing or
// invalid names, duplicates (compared upper-cased, as rclone sees them), value together with
// valueFrom, a valueFrom with zero or several sources, bad Secret/ConfigMap names and keys.
std::vector<env_var> parse_env_list(const json::value* list, const std::string& path, problems& p);

// The Kubernetes JSON form (for the Job's container env and for status/spec round trips).
json::value to_json(const env_var& e);
json::value to_json(const std::vector<env_var>& list);

}  // namespace tidesync::config
