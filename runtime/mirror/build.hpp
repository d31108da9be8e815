// One sync's work up to the switch: find the source's revision and, when the share does not
// have it yet, build its tree in <share>/.tidesync/.incoming-<rev>/ (git: fetch into the store
// and check the commit out; others: hard links of the current tree, then the engine). The
// caller promotes it (archive::promote with share_layout) — `tidesync agent mirror` runs this
// in a child process it can kill at --timeout, and switches `current` itself afterwards.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "runtime/error.hpp"
#include "runtime/mirror/revision.hpp"
#include "runtime/transfer/remote.hpp"

namespace tidesync::mirror {

struct build_request {
  std::filesystem::path share;
  source_type type = source_type::git;
  std::string source;           // as given to --source
  git_ref ref;                  // git
  std::filesystem::path cache;  // git: the object store
};

enum class build_outcome {
  unchanged,  // the share's current revision is the source's: nothing to do
  reused,     // the revision is still on the share (the previous one): switch back to it
  built,      // .incoming-<rev> holds it, complete and synced to disk
};

struct build_result {
  build_outcome outcome = build_outcome::unchanged;
  std::string revision;
  uint64_t files = 0;   // regular files in the revision
  uint64_t bytes = 0;   // their total size
  std::string message;  // for people and reports; holds no secret

  friend bool operator==(const build_result&, const build_result&) = default;
};

// The work above. `env` supplies REMOTE_* (s3, sftp) and the GIT_* credentials.
expected<build_result> build_revision(const build_request& r, const transfer::env_lookup& env);

// Pure: the result as one JSON line (the child's answer to the parent) and back.
std::string render_result(const expected<build_result>& r);
expected<build_result> parse_result(std::string_view text);

}  // namespace tidesync::mirror
