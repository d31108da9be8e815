// The local file system backend: list a tree, read, write atomically, set mtimes, delete.
//
// Writes go to an unnamed file in the target directory (O_TMPFILE) that commit() links in
// under its name — or, over an existing file, under a temporary name renamed over it — with
// its mtime set first. Where O_TMPFILE is missing, a named ".NAME.XXXXXXXX.partial" is used
// and renamed. A reader never sees half a file, and an interrupted run leaves nothing behind
// (at most a .partial that the next sync replaces or deletes).
// Durability is one syncfs(2) of the destination after all copies (sync_filesystem), which
// the engine runs before any delete, instead of an fsync per file: on 10,000 small files the
// per-file fsync cost more than the copy itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/transfer/plan.hpp"

namespace tidesync::transfer::local_fs {

// Every file and directory under `root` (relative '/'-paths, size, mtime in ns). Symlinks and
// special files are skipped (rclone's default). A missing root lists as empty. One thread: a
// parallel walk of the top-level directories was measured no faster on 2 cores (the stats are
// kernel time, and merging the parts touched more memory); docs/benchmarks.md.
expected<std::vector<entry>> list(const std::string& root);

// `root` + '/' + `rel`.
std::string join(const std::string& root, std::string_view rel);

// mkdir -p.
expected<void> make_dirs(const std::string& path);

// Bytes [offset, offset+len) of a file (fewer at its end).
expected<std::string> read_range(const std::string& path, uint64_t offset, uint64_t len);

// A file being written under a temporary name; commit() renames it into place.
class writer {
 public:
  writer() = default;
  ~writer();  // aborts when not committed
  writer(const writer&) = delete;
  writer& operator=(const writer&) = delete;

  // Creates the parent directories of `path` and the temporary file next to it.
  expected<void> open(const std::string& path);
  expected<void> write(std::string_view data);
  // Set the mtime, rename over `path` (no fsync: see sync_filesystem).
  expected<void> commit(std::chrono::system_clock::time_point mtime);
  void abort();
  // The temporary file's descriptor while open (for copy_file_range).
  [[nodiscard]] int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string path_, dir_, base_, tmp_;
  bool unnamed_ = false;  // an O_TMPFILE file, linked in by commit()
};

// Copies `src` to `dst` through a writer (mtime preserved) with copy_file_range(2), so the
// kernel moves the bytes (or shares extents where the file system can), falling back to
// read/write. `gate`, when set, is called after each chunk of at most 8 MiB with its size
// (bandwidth limit, progress); its error aborts the copy. Fails when the file's size differs from
// `expected_size` at the end (it changed while being copied). Returns the bytes copied.
expected<uint64_t> copy_file(const std::string& src, const std::string& dst,
                             std::chrono::system_clock::time_point mtime, uint64_t expected_size,
                             const std::function<expected<void>(uint64_t)>& gate = {});

// Lower-case hex MD5 and SHA-256 of a file's contents, in one read.
struct file_hash {
  std::string md5, sha256;
};
expected<file_hash> hash_file(const std::string& path);

// syncfs(2) of the file system holding `path`: every write to it so far is on disk.
expected<void> sync_filesystem(const std::string& path);

expected<void> set_mtime(const std::string& path, std::chrono::system_clock::time_point mtime);
// A missing file is not an error.
expected<void> remove_file(const std::string& path);
// Removes an empty directory; a non-empty or missing one is left alone without error.
expected<void> remove_dir(const std::string& path);

}  // namespace tidesync::transfer::local_fs
