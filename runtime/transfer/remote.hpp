// Where a sync reads or writes: a local directory, or an S3 remote written as rclone writes
// it, `NAME:bucket/prefix`, with NAME configured by rclone's environment convention
// (RCLONE_CONFIG_<NAME>_TYPE=s3, _PROVIDER, _ACCESS_KEY_ID, _SECRET_ACCESS_KEY, _ENDPOINT,
// _REGION, _FORCE_PATH_STYLE, _ACL; NAME upper-cased and '-' turned into '_', as rclone does), so
// the same Secret configures both engines.
//
// A text is a remote when it has a ':' before any '/': "/data/a:b" and "./x:y" are local.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/error.hpp"
#include "runtime/transfer/s3_client.hpp"

namespace tidesync::transfer {

enum class location_kind { local, s3 };

struct location {
  location_kind kind = location_kind::local;
  std::string text;  // as the user wrote it (for messages; holds no secret)
  // local: the directory path as given.
  std::string path;
  // s3: the remote's name as written, the bucket, and the key prefix ("" or ending in '/').
  std::string remote_name;
  std::string bucket;
  std::string prefix;
  s3_config s3;  // endpoint, region, credentials, path style
};

// Reads one environment variable; nullopt when unset. Tests pass their own map.
using env_lookup = std::function<std::optional<std::string>(const std::string&)>;

// The process environment.
env_lookup process_env();

// errc::config_error for an unknown remote, an unsupported type or missing credentials (the
// message names the variables to set, never their values); errc::invalid_argument for a
// malformed location (empty, no bucket).
expected<location> parse_location(std::string_view text, const env_lookup& env);

}  // namespace tidesync::transfer
