// The share `tidesync agent mirror` fills, and the decisions about its revisions.
//
// Layout (archive::tree_layout, the same atomic switch as `tidesync agent config`):
//   <share>/current                       symlink -> ".tidesync/revisions/<rev>" (relative),
//                                         replaced by rename(): readers see old or new
//   <share>/.tidesync/revisions/<rev>/    complete trees (they appear only by rename)
//   <share>/.tidesync/.incoming-<rev>/    a tree being built
//   <share>/.tidesync/.removing-<rev>/    a tree being pruned
//   <share>/.tidesync/state.json          which revision `current` was switched to, when, from
//                                         which one, and its file count and size
//   <share>/.tidesync/cache/              the git object store (default of --cache)
//   <share>/.current-tmp-*                the new symlink, for a moment
// One syncer per share: nothing here locks against a second one.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/archive/live_tree.hpp"
#include "runtime/error.hpp"

namespace tidesync::mirror {

using sys_clock = std::chrono::system_clock;

// The share's tree_layout (above).
archive::tree_layout share_layout(const std::filesystem::path& share);
std::filesystem::path state_file(const std::filesystem::path& share);
std::filesystem::path default_cache(const std::filesystem::path& share);

// state.json: written after each switch.
struct share_state {
  std::string revision;  // what `current` was switched to
  std::string previous;  // what it replaced ("" none)
  sys_clock::time_point switched_at{};
  uint64_t files = 0;  // regular files in `revision`
  uint64_t bytes = 0;  // their total size

  friend bool operator==(const share_state&, const share_state&) = default;
};

// Pure: the JSON text of a state and back. parse fails on malformed JSON or a missing revision.
std::string render_state(const share_state& s);
expected<share_state> parse_state(std::string_view json_text);

// The file (nullopt when missing or unreadable: the state is advisory) and writing it (temp
// file + rename).
std::optional<share_state> read_state(const std::filesystem::path& share);
expected<void> write_state(const std::filesystem::path& share, const share_state& s);

// Pure: the state to trust when `current` points at `current_rev`. A state that names another
// revision (the process died between the switch and the state write, or the file is lost)
// becomes {current_rev, previous: the state's revision, switched_at: now, no counts}, so the
// old tree is still kept one grace period from now.
share_state reconcile_state(const std::optional<std::string>& current_rev,
                            const std::optional<share_state>& state, sys_clock::time_point now);

// Pure: which revisions stay. `current` always; the previous one until `grace` (the sync
// interval) has passed since the switch, for readers that opened files in it before; every
// other one goes.
struct prune_plan {
  std::set<std::string> keep;
  std::vector<std::string> remove;  // sorted
  // When the previous revision's grace ends (prune again then); nullopt: nothing waits.
  std::optional<sys_clock::time_point> recheck_at;
};
prune_plan plan_prune(const std::vector<std::string>& present,
                      const std::optional<std::string>& current,
                      const std::optional<share_state>& state, sys_clock::time_point now,
                      std::chrono::milliseconds grace);

// Regular files and their total size under `dir` (symlinks and special files not counted).
struct tree_stats {
  uint64_t files = 0;
  uint64_t bytes = 0;
};
tree_stats count_tree(const std::filesystem::path& dir);

}  // namespace tidesync::mirror
