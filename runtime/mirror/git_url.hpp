// Git remote URLs as `tidesync agent mirror --source` takes them, and what logs may show of
// them. Pure functions: no I/O.
//
//   https://[user[:password]@]host[:port]/path    (http:// too)
//   ssh://[user@]host[:port]/path                 (git+ssh://, ssh+git://)
//   [user@]host:path                              scp-like, e.g. git@github.com:org/repo.git
//   git://host[:port]/path                        the unauthenticated git protocol
//   file:///path, /path, ./path                   a local repository (tests, mounted volumes)
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"

namespace tidesync::mirror {

enum class git_transport { https, http, ssh, git, local };

struct git_url {
  git_transport transport = git_transport::local;
  std::string user;      // from the URL ("" none)
  std::string password;  // from the URL ("" none): a secret, never logged
  std::string host;      // "" for local
  int port = 0;          // 0: the transport's default
  std::string path;      // the repository path (local: the directory)
  bool scp_like = false;
};

// errc::invalid_argument with the accepted forms when `text` is none of them.
expected<git_url> parse_git_url(std::string_view text);

// The URL as logs and reports may show it: http(s) without user info (a token may be the user
// name), query or fragment; ssh without a password. Text that does not parse loses everything
// between "://" and an '@', and any query.
std::string redact_url(std::string_view text);

// `text` with every occurrence of each non-empty secret replaced by "***" (longest first, so a
// secret that contains another is replaced whole).
std::string scrub(std::string text, std::vector<std::string> secrets);

}  // namespace tidesync::mirror
