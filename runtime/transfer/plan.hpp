// The pure decision core of `tidesync sync` / `tidesync copy`: given the listings of both
// sides, what to copy, what to delete, what to leave alone. No I/O here.
//
// Rules follow rclone (docs/transfer-sync.md):
//  - default: a file is unchanged when sizes are equal and modification times agree within
//    `modify_window`. Sizes differ -> copy. Times differ -> if both sides carry a common
//    hash and it is equal, only the destination's mtime is set (no data moves); otherwise
//    copy, whichever side is newer (sync makes the destination equal the source).
//  - `checksum`: sizes differ -> copy; a common hash (sha256 preferred, then md5) decides;
//    without one, equal size means unchanged (one aggregated warning says so).
//  - `size_only`: only the size decides.
//  - sync: destination files absent from the source are deleted, after every copy
//    succeeded (the executor's duty; the plan lists them apart). copy: nothing is deleted.
//  - Filtered-out paths are ignored on both sides (an excluded destination file is never
//    deleted, as rclone without --delete-excluded).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/error.hpp"

namespace tidesync::transfer {

class filter;

struct entry {
  std::string path;  // relative to the transfer root, '/'-separated, no leading '/'
  uint64_t size = 0;
  std::chrono::system_clock::time_point mtime{};
  std::optional<std::string> md5, sha256;  // lower-case hex when known
  bool dir = false;
};

enum class mode { sync, copy };

struct plan_options {
  mode m = mode::sync;
  bool checksum = false;
  bool size_only = false;
  // Times closer than this are equal: the precision of the coarser side (1 s covers S3
  // listings, FAT and most HTTP servers; local-to-local can use 1 ns).
  std::chrono::nanoseconds modify_window{std::chrono::seconds(1)};
  // More deletes than this fails the plan (rclone's --max-delete).
  uint64_t max_delete = UINT64_MAX;
  // With dry_run an over-budget delete count becomes a warning, so the plan can be shown.
  bool dry_run = false;
  // Optional include/exclude rules applied to both listings (not owned).
  const filter* rules = nullptr;
};

struct action {
  std::string path;
  uint64_t size = 0;
  std::string reason;  // "new", "size differs", "modtime differs", "checksum differs"
};

struct plan {
  std::vector<action> copies;        // sorted by path
  std::vector<action> set_modtimes;  // same content, only the destination mtime is updated
  std::vector<std::string> mkdirs;   // source directories missing on the destination (sorted)
  // sync only: destination files absent from the source (sorted), then destination
  // directories absent from the source (deepest first). Run only after every copy succeeded.
  std::vector<std::string> deletes;
  std::vector<std::string> rmdirs;
  uint64_t bytes_to_copy = 0;
  size_t unchanged = 0;
  std::vector<std::string> warnings;

  [[nodiscard]] bool nothing_to_do() const {
    return copies.empty() && set_modtimes.empty() && mkdirs.empty() && deletes.empty() &&
           rmdirs.empty();
  }
};

// Fails (errc::invalid_argument) on a duplicate path within one listing, an invalid path
// (empty, absolute, "." or ".." element), and when the deletes exceed max_delete.
expected<plan> make_plan(const std::vector<entry>& src, const std::vector<entry>& dst,
                         const plan_options& opts);

}  // namespace tidesync::transfer
