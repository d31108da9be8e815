// rclone Job environment (see rclone_env.hpp).
#include "config/rclone_env.hpp"

#include <cctype>
#include <set>

#include "config/bucketsync.hpp"

namespace tidesync::config {

namespace {

void prefix_into(const std::vector<env_var>& env, std::string_view remote, std::string_view field,
                 std::vector<env_var>& out, problems& p) {
  std::set<std::string> seen;
  for (size_t i = 0; i < env.size(); ++i) {
    std::string at = std::string(field) + "[" + std::to_string(i) + "].name";
    const auto& e = env[i];
    if (!valid_env_name(e.name)) {
      p.invalid(at, "\"" + e.name +
                        "\" is not a valid environment variable name: use letters, digits and "
                        "'_', not starting with a digit (e.g. \"ACCESS_KEY_ID\")");
      continue;
    }
    std::string name = rclone_env_name(remote, e.name);
    if (!seen.insert(name).second) {
      p.invalid(at, "\"" + e.name + "\" becomes " + name +
                        " like an earlier entry (names are upper-cased); remove one of them");
      continue;
    }
    env_var copy = e;
    copy.name = std::move(name);
    out.push_back(std::move(copy));
  }
}

error env_error(const problems& p) {
  error e = p.to_error("rclone environment");
  e.code = errc::invalid_argument;
  return e;
}

}  // namespace

std::string rclone_env_name(std::string_view remote, std::string_view name) {
  return "RCLONE_CONFIG_" + ascii_upper(remote) + "_" + ascii_upper(name);
}

expected<std::vector<env_var>> prefix_env(const std::vector<env_var>& env, std::string_view remote,
                                          std::string_view field) {
  problems p;
  std::vector<env_var> out;
  prefix_into(env, remote, field, out, p);
  if (!p.empty()) return env_error(p);
  return out;
}

expected<std::vector<env_var>> rclone_env(const std::vector<env_var>& source_env,
                                          const std::vector<env_var>& destination_env) {
  problems p;
  std::vector<env_var> out;
  out.reserve(source_env.size() + destination_env.size());
  prefix_into(source_env, k_source_remote, "spec.sourceEnv", out, p);
  prefix_into(destination_env, k_destination_remote, "spec.destinationEnv", out, p);
  if (!p.empty()) return env_error(p);
  return out;
}

std::string rclone_argument(std::string_view location, std::string_view remote, bool has_env) {
  // ":s3:bucket" is rclone's on-the-fly remote syntax: already complete.
  if (!has_env || location.starts_with(":") || !split_location(location).remote.empty())
    return std::string(location);
  return std::string(remote) + ":" + std::string(location);
}

}  // namespace tidesync::config
