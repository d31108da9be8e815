// One owner's config in object storage (or any transfer backend), as docs/sharedconfig.md lays
// it out under the owner's folder `<prefix>/<owner>/`:
//   latest.json                   {"revision", "checksum", "updated_at"} (revision.hpp)
//   revisions/<revision>.tar.zst  the bundles (bundle.hpp)
//
// The store is a thin layer over a transfer::backend rooted at that folder, so the agent reads
// the same layout from S3 (the main case), a local folder (tests), SFTP or a crypt remote.
// Every revision name is checked with valid_revision() before a key is built from it.
//
// Memory stays bounded for big bundles: bytes are streamed in fixed-size chunks, and the
// backend itself bounds its buffers (for S3, backend_options' part size × concurrency; see
// store_backend_options()). One store is used from one thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/archive/revision.hpp"
#include "runtime/error.hpp"
#include "runtime/transfer/backend.hpp"

namespace tidesync::archive {

// Backend options that keep a download or upload of any size to about 16 MiB of buffers:
// objects up to 8 MiB are moved whole, larger ones in 4 MiB parts, two at a time.
transfer::backend_options store_backend_options();

class config_store {
 public:
  // `root` is the owner's folder; it may be a backend that does not exist yet (an owner with
  // nothing published).
  explicit config_store(std::unique_ptr<transfer::backend> root);

  // latest.json, or nullopt when there is none yet (an owner with no config: not an error).
  // A latest.json that does not parse, or names an invalid revision or checksum, is an
  // errc::parse_error.
  expected<std::optional<latest>> read_latest();

  // Streams revisions/<rev>.tar.zst to `file` (written to "<file>.part", fsynced, renamed) and
  // returns its "sha256:<hex>". Refuses a bundle larger than `max_bytes` before downloading it
  // (errc::invalid_argument) and stops if more bytes arrive than the object's size. A missing
  // bundle is errc::not_found. On any error `file` and its temporary are not left behind.
  expected<std::string> download_bundle(const std::string& rev, const std::filesystem::path& file,
                                        uint64_t max_bytes);

  // Uploads `file` as revisions/<rev>.tar.zst, then checks the stored size (a stat: a HEAD on
  // S3), so that latest.json is only written for a bundle that is really there.
  expected<void> upload_bundle(const std::string& rev, const std::filesystem::path& file);

  // Replaces latest.json. The writer calls it only after upload_bundle succeeded.
  expected<void> write_latest(const latest& l);

  // The revisions that have a bundle, sorted (oldest first for make_revision names). Keys
  // under revisions/ that are not "<valid revision>.tar.zst" are ignored.
  expected<std::vector<std::string>> list_revisions();

  // Deletes revisions/<rev>.tar.zst; a missing one is not an error.
  expected<void> remove_revision(const std::string& rev);

  // The folder, for messages (holds no secret).
  [[nodiscard]] std::string where() const { return root_->where(); }

 private:
  std::unique_ptr<transfer::backend> root_;
};

// The key of a bundle under the owner's folder: "revisions/<rev>.tar.zst"; an error when `rev`
// is not a valid revision name.
expected<std::string> bundle_key(const std::string& rev);

}  // namespace tidesync::archive
