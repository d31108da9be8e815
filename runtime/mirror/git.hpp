// The git side of `tidesync agent mirror`: fetch the wanted ref into a bare object store and
// check its commit's tree out into a directory (libgit2 1.5, loaded on first use:
// detail/libgit2.hpp; this header does not include it).
//
// The store (`cache`) is fetched incrementally: the first fetch takes the whole history
// (libgit2 1.5 cannot fetch shallow), later ones only what is new. It is ours alone: one syncer
// per store; lock files an interrupted fetch left are removed before the next one, and a store
// last used for another URL is started afresh. The remote is anonymous: the URL (which may hold
// credentials) is never written into the store's config.
//
// Credentials (the syncer's Secret, as environment variables; git_source::from_env):
//   HTTPS   GIT_USERNAME and GIT_PASSWORD (the password may be a token; the user name then
//           defaults to the URL's, else "git"); user info in the URL works too
//   SSH     GIT_SSH_KEY_FILE (a private key file: the Secret mounted as a file; OpenSSH or PEM
//           format, GIT_SSH_KEY_PASSPHRASE when it is encrypted) and GIT_KNOWN_HOSTS_FILE: when
//           set, the server's host key must be listed there for its host (known_hosts.hpp),
//           else the fetch is refused; when unset, host keys are not checked (a warning names
//           the key's fingerprint, to pin it; so when the file does not exist: the controller
//           mounts the Secret's known_hosts only when the Secret has one)
//   HTTPS CA  GIT_SSL_CAINFO: a PEM bundle trusted instead of the system's
// No message carries a password, a token or the URL's user info (git_url.hpp's redact_url and
// scrub).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/mirror/revision.hpp"
#include "runtime/transfer/remote.hpp"

namespace tidesync::mirror {

struct git_source {
  std::string url;  // as given to --source
  git_ref ref;
  std::filesystem::path cache;  // the bare object store
  std::string username, password;
  std::string ssh_key_file, ssh_key_passphrase;
  std::string known_hosts_file;  // "" = host keys not checked
  std::string ca_file;

  // Fills the credentials from GIT_USERNAME, GIT_PASSWORD, GIT_SSH_KEY_FILE,
  // GIT_SSH_KEY_PASSPHRASE, GIT_KNOWN_HOSTS_FILE and GIT_SSL_CAINFO.
  void from_env(const transfer::env_lookup& env);
  // Everything a message must not show: passwords, tokens, the URL's user info.
  [[nodiscard]] std::vector<std::string> secrets() const;
};

struct fetched_commit {
  std::string commit;  // 40 hex digits
  std::string detail;  // for people: "fetched 12 objects (3.1 KiB)" or "already in the cache"
};

// Fetches what `s.ref` needs and resolves it to a commit. Errors say what is wrong in terms of
// the source: the ref does not exist (with the branches or tags there are), the host key is
// unknown or differs, the credentials were refused or are missing, the URL is unreachable.
expected<fetched_commit> fetch_commit(const git_source& s);

// Writes the tree of `commit` (in the store) into `target` (created when missing; it should be
// empty): files, executable bits and symlinks as git checks them out, no .git.
expected<void> checkout_commit(const git_source& s, std::string_view commit,
                               const std::filesystem::path& target);

}  // namespace tidesync::mirror
