// What `tidesync agent mirror` syncs and what it calls a revision. Pure functions: no I/O.
//
// Revision names are directory names under <share>/.tidesync/revisions/ (valid for
// archive::valid_revision):
//   git     the commit's SHA-1, 40 lower-case hex digits;
//   others  "sha256-" + the first 16 hex digits of the SHA-256 of the source listing
//           (listing_revision), so an unchanged source gives the same name and is not copied
//           again.
// Git refs: a branch, a tag, a commit (4 to 40 hex digits), or the remote's HEAD.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/transfer/plan.hpp"

namespace tidesync::mirror {

enum class source_type { git, s3, sftp, http };

// "git", "s3", "sftp", "http".
std::string_view to_string(source_type t);
// The --source-type value; errc::invalid_argument names the four.
expected<source_type> parse_source_type(std::string_view text);

enum class ref_kind { head, branch, tag, commit };

struct git_ref {
  ref_kind kind = ref_kind::head;
  std::string name;  // branch or tag name; a commit's hex digits (lower case); "" for head

  friend bool operator==(const git_ref&, const git_ref&) = default;
};

// Checks a branch or tag name as `git check-ref-format` does (no "..", "@{", "//", control
// characters, space, ~ ^ : ? * [ \, no leading '-' or '/', no trailing '/', '.' or ".lock", no
// component starting with '.') and a commit as 4..40 hex digits. `name` is ignored for head.
expected<git_ref> make_ref(ref_kind kind, std::string_view name);

// "branch main", "tag v1.2.0", "commit 0123abcd", "the remote's HEAD" (for messages).
std::string describe(const git_ref& ref);

// The refspecs one fetch asks for. head: every branch (HEAD names one of them); branch:
// that branch into refs/remotes/origin/B; tag: that tag into refs/tags/T; commit: every branch
// and tag (a server need not serve a commit by its id).
std::vector<std::string> fetch_refspecs(const git_ref& ref);

// The reference the remote must advertise for `ref` ("HEAD", "refs/heads/B", "refs/tags/T");
// "" for a commit.
std::string advertised_ref(const git_ref& ref);

// The local reference the fetch updates for a branch or a tag; "" for head and commit.
std::string local_ref(const git_ref& ref);

// True for 40 lower-case hex digits.
bool is_commit_id(std::string_view text);

// The revision of a non-git source: "sha256-" + 16 hex digits of the SHA-256 over the source's
// type and text and, sorted by path, each entry's path, size and identity: the MD5 (an S3 ETag)
// when known, else the modification time in whole seconds. Directories count by path.
std::string listing_revision(source_type type, std::string_view source,
                             std::vector<transfer::entry> entries);

}  // namespace tidesync::mirror
