// SSH host key checking against an OpenSSH known_hosts file, for git over SSH (libgit2's
// certificate_check callback hands over the server's raw public key). Pure: the file's text
// comes in, a verdict goes out.
//
// Supported: host patterns (comma-separated, '*' and '?' wildcards, '!' negation), "[host]:port"
// for ports other than 22, hashed names ("|1|salt|hash", HMAC-SHA1 as ssh-keygen -H writes
// them), the @revoked marker, comments and blank lines. @cert-authority lines are ignored (no
// host certificates): list the host's own keys instead.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tidesync::mirror {

enum class host_key_verdict {
  match,         // a line for this host holds this key
  mismatch,      // lines for this host exist, none holds this key
  revoked,       // an @revoked line holds this key
  unknown_host,  // no line names this host
};

struct host_key_check {
  host_key_verdict verdict = host_key_verdict::unknown_host;
  std::vector<std::string> known_types;  // mismatch: the key types listed for the host
};

// How known_hosts names a host: "host" on port 22 (or 0, the default), "[host]:port" otherwise.
std::string known_hosts_name(std::string_view host, int port);

// Checks `key_blob` (the raw public key: SSH wire format, e.g. "\0\0\0\x0bssh-ed25519...")
// offered by `host`:`port` against the lines of `known_hosts`.
host_key_check check_host_key(std::string_view known_hosts, std::string_view host, int port,
                              std::string_view key_blob);

// The key type at the start of a raw key blob ("ssh-ed25519"), "" when malformed.
std::string key_type(std::string_view key_blob);

// "SHA256:" + unpadded base64 of the blob's SHA-256, as ssh-keygen -l prints it.
std::string sha256_fingerprint(std::string_view key_blob);

// True when `name` matches the pattern ('*' any run, '?' one character), case-insensitively.
bool host_pattern_match(std::string_view pattern, std::string_view name);

}  // namespace tidesync::mirror
