// The extracted revisions of a tree under a root such as /shared, and the atomic switch of a
// symlink between them. Used by `tidesync agent config` (a config bundle's revisions) and by
// `tidesync agent mirror` (a SharedVolume's share); each names its parts with a tree_layout.
//
// The config agent's layout (tree_layout::under(root), and the root-taking functions below):
//   <root>/revisions/<rev>/   complete extracted trees (a directory appears here only by
//                             rename(), so if it exists it is complete)
//   <root>/live               symlink -> "revisions/<rev>" (relative), replaced by rename()
//   <root>/.incoming-<rev>/   where a revision is extracted before promote()
//   <root>/.removing-<rev>/   a revision being pruned (renamed away first, then deleted)
//   <root>/.live-tmp-*        the new symlink, for a moment, before it is renamed over live
// Readers open files through the link and see one whole revision: the old one or the new
// one, never a mix. One writer per tree: these functions do not lock against each other.
// Every revision name is checked with valid_revision() before a path is built from it.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/archive/revision.hpp"
#include "runtime/error.hpp"

namespace tidesync::archive {

// Where the parts of a live tree are. The staging directory, the revisions directory and the
// link's directory must be on one file system (rename).
struct tree_layout {
  std::filesystem::path link;       // the symlink readers follow (<root>/live)
  std::filesystem::path revisions;  // the complete revisions (<root>/revisions)
  std::filesystem::path staging;    // holds .incoming-<rev> and .removing-<rev> (<root>)
  // The link's target is link_prefix + rev, relative to the link's directory ("revisions/").
  std::string link_prefix;

  // The config agent's layout under `root` (above).
  static tree_layout under(const std::filesystem::path& root);
};

// The same operations as below, for any layout. prepare_incoming creates the link's
// directory, the staging and the revisions directories when missing. prune_revisions keeps
// the revisions in `keep` and the live one, and removes every other revision and the stale
// .incoming-*, .removing-* (staging) and temporary links (beside the link).
expected<std::filesystem::path> incoming_dir(const tree_layout& t, std::string_view rev);
expected<std::filesystem::path> revision_dir(const tree_layout& t, std::string_view rev);
expected<std::filesystem::path> prepare_incoming(const tree_layout& t, std::string_view rev);
expected<void> promote(const tree_layout& t, std::string_view rev);
std::optional<std::string> live_revision(const tree_layout& t);
std::vector<std::string> revisions(const tree_layout& t);
expected<std::vector<std::string>> prune_revisions(const tree_layout& t,
                                                   const std::set<std::string>& keep);

// <root>/.incoming-<rev>; an error when `rev` is not a valid revision name.
expected<std::filesystem::path> incoming_dir(const std::filesystem::path& root,
                                             std::string_view rev);

// <root>/revisions/<rev>; an error when `rev` is not a valid revision name.
expected<std::filesystem::path> revision_dir(const std::filesystem::path& root,
                                             std::string_view rev);

// Creates <root> and <root>/revisions when missing and removes a stale .incoming-<rev> left by
// an interrupted extraction; returns the (absent) incoming directory, ready for unpack_bundle.
expected<std::filesystem::path> prepare_incoming(const std::filesystem::path& root,
                                                 std::string_view rev);

// Moves .incoming-<rev> to revisions/<rev> (keeping an existing revisions/<rev> and dropping
// the incoming copy), then atomically points <root>/live at it; fsyncs what it changed. The
// incoming tree must already be synced to disk (unpack_bundle does that by default).
expected<void> promote(const std::filesystem::path& root, std::string_view rev);

// The revision <root>/live points to, or nullopt when there is no valid live link.
std::optional<std::string> live_revision(const std::filesystem::path& root);

// The complete revisions under <root>/revisions, sorted (oldest first for make_revision names).
std::vector<std::string> revisions(const std::filesystem::path& root);

// Keeps the newest `keep` revisions and the live one, removes the others and any stale
// .incoming-*, .removing-* and .live-tmp-* entries; returns the names removed.
expected<std::vector<std::string>> prune_revisions(const std::filesystem::path& root, size_t keep);

}  // namespace tidesync::archive
