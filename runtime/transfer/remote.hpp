// Where a sync reads or writes: a local directory, or a remote written as rclone writes it,
// `NAME:path`, with NAME configured by rclone's environment convention
// (RCLONE_CONFIG_<NAME>_<KEY>; NAME upper-cased and '-' turned into '_', since a shell cannot
// export a name with '-'; rclone 1.60 keeps the '-', so for rclone a remote with '-' in its name
// is configured by rclone.conf, or named with '_'), so the same Secret configures both engines.
// Types and their keys:
//   s3     NAME:bucket/prefix; _PROVIDER, _ACCESS_KEY_ID, _SECRET_ACCESS_KEY, _ENDPOINT,
//          _REGION, _FORCE_PATH_STYLE, _ACL, _SESSION_TOKEN
//   http   NAME:path (read-only); _URL, the base the path is appended to
//   sftp   NAME:path (relative to the login directory, or absolute); _HOST, _PORT, _USER,
//          _PASS (rclone-obscured), _KEY_FILE, _KNOWN_HOSTS_FILE
//   crypt  NAME:path; _REMOTE (another remote, e.g. "s3remote:bucket/dir", or a local
//          directory), _PASSWORD and _PASSWORD2 (rclone-obscured), _FILENAME_ENCRYPTION
//          (standard, off), _DIRECTORY_NAME_ENCRYPTION (true, false)
// A text starting with http:// or https:// is an HTTP source without configuration.
//
// A text is a remote when it has a ':' before any '/': "/data/a:b" and "./x:y" are local.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/transfer/s3_client.hpp"

namespace tidesync::transfer {

enum class location_kind { local, s3, http, sftp, crypt };

struct sftp_config {
  std::string host;
  int port = 22;
  std::string user;
  std::string password;          // revealed (plain); empty: key or agent authentication
  std::string key_file;          // private key (PEM / OpenSSH)
  std::string known_hosts_file;  // empty: the host key is not checked
};

struct crypt_config {
  std::string password;           // revealed
  std::string salt;               // revealed password2; empty: rclone's default salt
  bool encrypt_names = true;      // filename_encryption standard (false: off)
  bool encrypt_dir_names = true;  // directory_name_encryption
  // Plain-text files kept on purpose at the top of the wrapped remote, next to the encrypted
  // tree (the pod agents' marker `.tidesync-initialized`): left out of listings without
  // counting as names that do not decrypt. Set by callers, not by the environment.
  std::vector<std::string> plain_top_level;
};

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
  // http: the URL of the root (a directory URL ends in '/').
  std::string url;
  // sftp: the server; `path` holds the remote directory ("" = the login directory).
  sftp_config sftp;
  // crypt: the wrapped location (local, s3, sftp) and the keys' inputs.
  std::shared_ptr<const location> inner;
  crypt_config crypt;
};

// Reads one environment variable; nullopt when unset. Tests pass their own map.
using env_lookup = std::function<std::optional<std::string>(const std::string&)>;

// The process environment.
env_lookup process_env();

// The seed's convention (issue 5, seed 004): REMOTE_<KEY> configures the remote named
// "remote", with RCLONE_CONFIG_REMOTE_<KEY> as the fallback. Used by the seed commands and by
// `tidesync agent populate`.
inline constexpr const char* k_seed_remote = "remote";
env_lookup with_seed_remote(env_lookup base);

// errc::config_error for an unknown remote, an unsupported type or missing credentials (the
// message names the variables to set, never their values); errc::invalid_argument for a
// malformed location (empty, no bucket).
expected<location> parse_location(std::string_view text, const env_lookup& env);

}  // namespace tidesync::transfer
