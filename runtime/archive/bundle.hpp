// Config bundles as reproducible tar.zst archives: pack a directory, unpack one safely.
//
// pack_bundle writes the same bytes for the same tree (sorted entries, fixed mtime, owner 0,
// normalised modes), so the checksum names the content. unpack_bundle treats the archive as
// hostile: it writes every file itself under `dest` (never through a symlink, never outside),
// enforces entry and byte limits while extracting, and hashes the compressed stream in the
// same pass. Both stream with fixed-size buffers: memory does not grow with the bundle.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>

#include "runtime/error.hpp"

namespace tidesync::archive {

struct pack_options {
  int64_t mtime = 0;          // the mtime (seconds since the epoch) of every entry
  int compression_level = 9;  // zstd level, 1..19; part of what makes output reproducible
  bool fsync = true;          // fsync the archive and its directory before returning
};

struct pack_result {
  std::string sha256;          // "sha256:<hex>" of the archive file
  uint64_t archive_bytes = 0;  // size of the archive file
  uint64_t entries = 0;        // files, directories and symlinks (the root is not an entry)
  uint64_t content_bytes = 0;  // total size of the regular files
};

// Packs the tree under `dir` into `out_file` (written to a temporary name next to it, then
// renamed). Only regular files, directories and symlinks; anything else is an error naming it.
expected<pack_result> pack_bundle(const std::filesystem::path& dir,
                                  const std::filesystem::path& out_file, pack_options opts = {});

struct unpack_limits {
  uint64_t max_entries = 100000;    // entries in the archive, of any type
  uint64_t max_bytes = 1ULL << 30;  // total uncompressed file bytes
  bool fsync = true;                // fsync every file and directory written
  // When set, the sha256 of the compressed stream must equal this ("sha256:<hex>").
  std::optional<std::string> expected_sha256{};
};

struct unpack_result {
  std::string sha256;          // "sha256:<hex>" of the whole compressed stream
  uint64_t archive_bytes = 0;  // bytes of the compressed stream
  uint64_t entries = 0;        // entries extracted
  uint64_t content_bytes = 0;  // file bytes written
};

// Reads up to `capacity` bytes into `buffer`; returns the count, 0 at the end of the stream.
using read_callback = std::function<expected<size_t>(char* buffer, size_t capacity)>;

// Extracts the tar.zst stream from `read` into `dest`, which must be an empty directory or not
// exist yet (its parent must). On any error `dest` is left empty and the error names the entry
// and what is wrong with it.
expected<unpack_result> unpack_bundle(const read_callback& read, const std::filesystem::path& dest,
                                      unpack_limits limits = {});
// Same, reading from a stream.
expected<unpack_result> unpack_bundle(std::istream& in, const std::filesystem::path& dest,
                                      unpack_limits limits = {});
// Same, reading the archive file `archive_file`.
expected<unpack_result> unpack_bundle(const std::filesystem::path& archive_file,
                                      const std::filesystem::path& dest, unpack_limits limits = {});

// "sha256:<hex>" of a file's content, streamed.
expected<std::string> sha256_file(const std::filesystem::path& file);

}  // namespace tidesync::archive
