// The rclone Job's container environment from spec.sourceEnv / spec.destinationEnv.
//
// rclone reads a remote's settings from RCLONE_CONFIG_<REMOTE>_<KEY>; the Job names its remotes
// "source" and "destination", so TYPE in sourceEnv becomes RCLONE_CONFIG_SOURCE_TYPE. Names
// are upper-cased (rclone matches them upper-case). valueFrom stays a Secret/ConfigMap/field
// reference: the kubelet resolves it in the pod; the controller never reads secret values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/env_var.hpp"
#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::config {

inline constexpr std::string_view k_source_remote = "source";
inline constexpr std::string_view k_destination_remote = "destination";

// "RCLONE_CONFIG_" + upper(remote) + "_" + upper(name).
std::string rclone_env_name(std::string_view remote, std::string_view name);

// The prefixed variables for one remote. Errors (errc::invalid_argument, naming `field`, e.g.
// "spec.sourceEnv[1].name") for a name that is not a valid environment variable name and for
// two names equal after upper-casing. An entry with neither value nor valueFrom is an empty
// value, as in Kubernetes.
expected<std::vector<env_var>> prefix_env(const std::vector<env_var>& env, std::string_view remote,
                                          std::string_view field);

// Source variables, then destination variables (each in spec order). All problems of both
// lists are reported in one error.
expected<std::vector<env_var>> rclone_env(const std::vector<env_var>& source_env,
                                          const std::vector<env_var>& destination_env);

// The argument rclone gets for a location: with settings in env, the location lives on the
// configured remote ("my-bucket" → "source:my-bucket"); an explicit "remote:path" or a location
// without settings (a remote from the image's rclone.conf, a local path) is passed unchanged.
std::string rclone_argument(std::string_view location, std::string_view remote, bool has_env);

}  // namespace tidesync::config
