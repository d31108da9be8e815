// One side of a transfer: what the engine (engine.hpp) needs from a place that holds files.
//
// The engine lists both sides, plans (plan.hpp), and moves each file by opening a `reader` on
// the source backend and handing it to the destination backend's `write`. Backends are
// called from several worker threads at once and must be thread-safe; a backend that talks
// HTTP drives its requests on the process's one http::loop.
//
// Backends: local directories (backend_local.cpp), S3 (backend_s3.cpp), HTTP(S) read-only
// sources (backend_http.cpp), SFTP (backend_sftp.cpp), and rclone-crypt encryption over any
// writable one (backend_crypt.cpp). make_backend (backend.cpp) picks one for a location.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/transfer/plan.hpp"
#include "runtime/transfer/remote.hpp"

namespace tidesync::http {
class loop;
}

namespace tidesync::transfer {

using time_point = std::chrono::system_clock::time_point;

// A file's bytes, read front to back.
class reader {
 public:
  virtual ~reader() = default;
  // Up to `n` bytes into `buf`; 0 at the end of the file.
  virtual expected<size_t> read(char* buf, size_t n) = 0;
};

// Called with the number of bytes about to be moved; an error stops the transfer (the
// --max-transfer budget). It may block (the --bwlimit token bucket).
using byte_gate = std::function<expected<void>(uint64_t bytes)>;

struct backend_options {
  // Objects larger than this are uploaded in parts of `part_size`, and downloaded in ranges
  // of `part_size`, `part_concurrency` of them in flight per file.
  uint64_t multipart_threshold = 64ull << 20;
  uint64_t part_size = 8ull << 20;
  int part_concurrency = 4;
  // Parallelism for metadata requests (HEAD for mtimes).
  int checkers = 8;
};

class backend {
 public:
  virtual ~backend() = default;

  // For messages: the path or remote as the user wrote it, quoted.
  [[nodiscard]] virtual std::string where() const = 0;
  // Local directories get the kernel fast path for local-to-local copies and the safety
  // valves that look at the disk.
  [[nodiscard]] virtual bool is_local() const { return false; }
  [[nodiscard]] virtual std::string local_path(const std::string& /*rel*/) const { return {}; }
  // The precision of stored modification times (the modify window against another backend).
  [[nodiscard]] virtual std::chrono::nanoseconds precision() const {
    return std::chrono::seconds(1);
  }
  // false: a changed mtime means uploading the file again (S3 cannot edit metadata in place).
  [[nodiscard]] virtual bool can_set_mtime() const { return false; }
  // false for read-only sources (HTTP).
  [[nodiscard]] virtual bool writable() const { return true; }
  // true when write() stores e.md5 / e.sha256 with a file whose own checksum does not give
  // them (S3 multipart objects): the engine then hashes large sources before writing.
  [[nodiscard]] virtual bool stores_hashes(uint64_t /*size*/) const { return false; }

  // Every file and directory, paths relative to the root.
  virtual expected<std::vector<entry>> list() = 0;
  // true when the listing's mtimes are only approximate (S3's LastModified is the upload
  // time): the engine then calls read_mtime for the files it must compare or stamp.
  [[nodiscard]] virtual bool listing_mtime_approximate() const { return false; }
  virtual expected<void> read_mtime(entry& /*e*/) { return {}; }
  // Fills e.md5 (and e.sha256 where the backend has it) when the listing did not carry them:
  // a local file is read; an S3 object's metadata is read (md5chksum, sha256). A backend that
  // cannot tell leaves them empty.
  virtual expected<void> compute_hashes(entry& /*e*/) { return {}; }

  // The file at `rel` (its size and listed mtime), or nullopt when there is none. The default
  // lists everything and looks for it; local directories (stat) and S3 (HEAD) answer directly.
  // For callers that need one file's size before open() without listing a whole tree.
  virtual expected<std::optional<entry>> stat(const std::string& rel);

  virtual expected<std::unique_ptr<reader>> open(const entry& e) = 0;
  // Stores `e.size` bytes from `in` at `e.path` with modification time `e.mtime`, atomically:
  // a failed write leaves the previous version (or nothing) in place.
  virtual expected<void> write(const entry& e, reader& in) = 0;
  virtual expected<void> set_mtime(const std::string& rel, time_point t);
  // A missing file is not an error.
  virtual expected<void> remove(const std::string& rel) = 0;
  virtual expected<void> make_dir(const std::string& /*rel*/) { return {}; }
  // Removes an empty directory; a non-empty or missing one is left alone.
  virtual expected<void> remove_dir(const std::string& /*rel*/) { return {}; }
  // Makes every write so far durable. The engine calls it after the copies and before any
  // delete, so a crash never leaves deletes done with copies lost.
  virtual expected<void> flush() { return {}; }
};

// The backend for a location. `loop` is used by the backends that talk HTTP; it must outlive
// the backend.
expected<std::unique_ptr<backend>> make_backend(const location& loc, http::loop& loop,
                                                const backend_options& opts);
std::unique_ptr<backend> make_local_backend(const location& loc);
std::unique_ptr<backend> make_s3_backend(const location& loc, http::loop& loop,
                                         const backend_options& opts);
std::unique_ptr<backend> make_http_backend(const location& loc, http::loop& loop,
                                           const backend_options& opts);
expected<std::unique_ptr<backend>> make_sftp_backend(const location& loc,
                                                     const backend_options& opts);
// Read-only, over the rclone binary: any remote rclone knows ("NAME:path", configured by
// RCLONE_CONFIG_<NAME>_* or rclone's config file; REMOTE_* configures the remote "remote").
std::unique_ptr<backend> make_rclone_backend(std::string remote);
expected<std::unique_ptr<backend>> make_crypt_backend(const location& loc, http::loop& loop,
                                                      const backend_options& opts);

// rclone's X-Amz-Meta-Mtime text: seconds since the epoch with 9 fraction digits.
std::string format_mtime(time_point t);
std::optional<time_point> parse_mtime(const std::string& text);

}  // namespace tidesync::transfer
