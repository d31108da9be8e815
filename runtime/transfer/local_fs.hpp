// The local file system backend: list a tree, read, write atomically, set mtimes, delete.
//
// Writes go to a temporary name in the target directory (".NAME.XXXXXX.partial"), are
// fsync'ed, get their mtime, and are renamed into place: a reader never sees half a file,
// and an interrupted run leaves at most a .partial that the next sync replaces or deletes.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/transfer/plan.hpp"

namespace tidesync::transfer::local_fs {

// Every file and directory under `root` (relative '/'-paths, size, mtime in ns). Symlinks and
// special files are skipped (rclone's default). A missing root lists as empty.
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
  // fsync, set the mtime, rename over `path`.
  expected<void> commit(std::chrono::system_clock::time_point mtime);
  void abort();

 private:
  int fd_ = -1;
  std::string path_, tmp_;
};

// Streams `src` to `dst` through a writer (mtime preserved). Returns the bytes copied.
expected<uint64_t> copy_file(const std::string& src, const std::string& dst,
                             std::chrono::system_clock::time_point mtime);

expected<void> set_mtime(const std::string& path, std::chrono::system_clock::time_point mtime);
// A missing file is not an error.
expected<void> remove_file(const std::string& path);
// Removes an empty directory; a non-empty or missing one is left alone without error.
expected<void> remove_dir(const std::string& path);

}  // namespace tidesync::transfer::local_fs
