// The extracted revisions of a config bundle under a root such as /shared, and the atomic
// switch of <root>/live between them.
//
// Layout:
//   <root>/revisions/<rev>/   complete extracted trees (a directory appears here only by
//                             rename(), so if it exists it is complete)
//   <root>/live               symlink -> "revisions/<rev>" (relative), replaced by rename()
//   <root>/.incoming-<rev>/   where a revision is extracted before promote()
//   <root>/.removing-<rev>/   a revision being pruned (renamed away first, then deleted)
// Readers open files through <root>/live and see one whole revision: the old one or the new
// one, never a mix. One writer per root: these functions do not lock against each other.
// Every revision name is checked with valid_revision() before a path is built from it.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/archive/revision.hpp"
#include "runtime/error.hpp"

namespace tidesync::archive {

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
