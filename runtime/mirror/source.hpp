// The S3, SFTP and HTTP(S) sides of `tidesync agent mirror`: what the source holds (its
// revision name, from the listing) and filling a new revision directory from it with the
// transfer engine (runtime/transfer/engine.hpp).
//
// A new revision starts as hard links of the current revision's files (and its directories),
// then the engine syncs the source into it: files unchanged since the current revision (same
// size and modification time) stay links and are not downloaded again; changed files are
// written under a temporary name and renamed over their link (the current revision's copy is
// never modified); files gone from the source are unlinked.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "runtime/error.hpp"
#include "runtime/mirror/revision.hpp"
#include "runtime/transfer/remote.hpp"

namespace tidesync::mirror {

// The location of --source: s3 "BUCKET/PREFIX" and sftp "PATH" on the remote "remote" that
// REMOTE_* configures (its type must match), http(s) a URL. errc::config_error / invalid_argument
// say what to set or write.
expected<transfer::location> source_location(source_type type, const std::string& source,
                                             const transfer::env_lookup& env);

struct source_listing {
  std::string revision;  // listing_revision()
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// Lists the source (one listing, no metadata reads) and names its revision.
expected<source_listing> list_source(source_type type, const std::string& source,
                                     const transfer::location& where);

struct fill_result {
  uint64_t linked = 0;   // files still hard links of `previous`'s (not downloaded)
  uint64_t copied = 0;   // files downloaded
  uint64_t bytes = 0;    // bytes downloaded
  uint64_t deleted = 0;  // links removed (files gone from the source)
  double seconds = 0;
};

// Makes `target` (absent) equal to the source, starting from hard links of `previous` (the
// current revision's tree) when given. Fails when any file failed.
expected<fill_result> fill_from_source(const transfer::location& where,
                                       const std::filesystem::path& target,
                                       const std::optional<std::filesystem::path>& previous);

// Hard-links every regular file of `from` into `to` (same relative paths; directories made,
// symlinks and special files skipped). Stops linking at the first file the file system will
// not link (another file system, a link limit): the engine copies the rest. Returns the number
// of files linked.
expected<uint64_t> link_tree(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace tidesync::mirror
