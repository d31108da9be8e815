// libgit2, loaded on first use (dlopen) instead of linked: Debian's libgit2 pulls in mbedTLS,
// libssh2, Kerberos, PCRE2 and http-parser, ~250 page faults and a few ms at the start of every
// `tidesync` process (measured: an empty main() linked with -lgit2 against one without), and
// only the git syncer needs it. Same reasoning as runtime/http/curl_lazy.cpp.
//
// Only runtime/mirror/git.cpp includes this header (it includes <git2.h>); the soname is the
// one the headers came from (TIDESYNC_LIBGIT2_SONAME, from pkg-config at configure time), since
// libgit2's structs change between minor versions.
#pragma once

#include <git2.h>

#include "runtime/error.hpp"

namespace tidesync::mirror::detail {

// Every libgit2 function tidesync calls.
#define TIDESYNC_LIBGIT2_FUNCTIONS(X)      \
  X(git_libgit2_init)                      \
  X(git_libgit2_opts)                      \
  X(git_error_last)                        \
  X(git_repository_open_bare)              \
  X(git_repository_init)                   \
  X(git_repository_free)                   \
  X(git_remote_create_anonymous)           \
  X(git_remote_free)                       \
  X(git_remote_fetch)                      \
  X(git_remote_ls)                         \
  X(git_remote_stats)                      \
  X(git_fetch_options_init)                \
  X(git_object_lookup)                     \
  X(git_object_lookup_prefix)              \
  X(git_object_peel)                       \
  X(git_object_id)                         \
  X(git_object_free)                       \
  X(git_oid_fromstrn)                      \
  X(git_oid_tostr_s)                       \
  X(git_checkout_options_init)             \
  X(git_checkout_tree)                     \
  X(git_credential_userpass_plaintext_new) \
  X(git_credential_ssh_key_new)            \
  X(git_credential_username_new)

struct libgit2_api {
// A declarator cannot take parentheses around the member's name.
#define TIDESYNC_LIBGIT2_MEMBER(name) \
  decltype(&::name) name = nullptr;  // NOLINT(bugprone-macro-parentheses)
  TIDESYNC_LIBGIT2_FUNCTIONS(TIDESYNC_LIBGIT2_MEMBER)
#undef TIDESYNC_LIBGIT2_MEMBER
};

// The library, loaded and initialised (git_libgit2_init) once per process; an error that says
// what to install when it is missing.
expected<const libgit2_api*> libgit2();

}  // namespace tidesync::mirror::detail
