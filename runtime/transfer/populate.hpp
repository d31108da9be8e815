// Fills one volume with one VM image: the work of `tidesync agent populate`, which a DataSync's
// populate Job runs (docs/agent-populate.md, docs/datasync.md "The work").
//
// The image streams into DIR/.NAME.partial (bounded memory: each chunk is written and hashed as
// it arrives), resuming from the partial's size after a restart: an HTTP Range request, a
// ranged S3 GET, or a seek in the source file of another volume. sha256 is computed
// incrementally (a resumed partial is hashed first). Only verified data is renamed to
// DIR/NAME, after an fsync; then DIR/.tidesync-digest records what is there, and a later run
// that finds the same digest (or, without a checksum, the same source, size and
// ETag/Last-Modified) exits at once without downloading.
//
// No CAF and no config/ types: the CLI (runtime/cli/agent.cpp) parses the flags and maps the
// outcome to the exit codes of actors/datasync_logic.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/transfer/s3_client.hpp"

namespace tidesync::transfer {

enum class populate_source { http, s3, pvc };

// Why a populate ended; the controller's retry policy depends on it.
enum class populate_outcome {
  succeeded,          // downloaded and verified now
  already_present,    // the digest file says the wanted data is there (preload)
  missing_source,     // 404 / NoSuchKey / missing file in the source volume: terminal
  checksum_mismatch,  // the data's sha256 (or size) is not the expected one: retried
  unauthorized,       // 401 / 403 / AccessDenied: terminal
  transient,          // connection, 5xx after retries, timeout, disk full: retried
};

// The termination log's reason: "Succeeded" (also for already_present), "MissingSource",
// "ChecksumMismatch", "Unauthorized", "Transient".
std::string_view reason_name(populate_outcome o);

struct populate_options {
  populate_source type = populate_source::http;
  std::string url;                      // as written in the DataSync (recorded in the digest file)
  std::string dest_dir;                 // the mounted volume
  std::string file_name;                // lands at dest_dir/file_name
  std::optional<std::string> checksum;  // normalised "sha256:<64 lower-case hex>"
  std::optional<uint64_t> size;         // expected bytes

  // http: the URL to GET (`url`, normally).
  std::string http_url;
  // s3: where the object is and how to reach the server.
  s3_config s3;
  std::string bucket, key;
  // pvc: the file in the mounted source volume.
  std::string source_path;

  // Attempts of a transient failure, resuming each time from what the partial holds.
  int max_attempts = 5;
  std::chrono::milliseconds retry_initial{1000};
  // Progress: one JSON line per interval while data arrives (zero: none).
  std::chrono::milliseconds progress_interval{10'000};
  std::FILE* progress_out = stderr;
};

struct populate_result {
  populate_outcome outcome = populate_outcome::transient;
  std::string message;        // one line for people; never a secret
  std::string digest;         // "sha256:<hex>" of the data, when known
  uint64_t bytes = 0;         // size of the file (or of what was received, on a failure)
  uint64_t fetched = 0;       // bytes transferred by this run
  uint64_t resumed_from = 0;  // the partial's size this run started from (0: from scratch)
};

// Runs the whole populate. Never throws; every failure is in the result.
populate_result populate(const populate_options& opts);

// The last path element of a source URL (query and fragment removed, percent-decoded), the
// default file name; "" when there is none ("http://host/" or "s3://bucket/dir/").
std::string default_file_name(populate_source type, std::string_view url);

// Paths of the partial and of the digest record in `dest_dir`.
std::string partial_path(const std::string& dest_dir, const std::string& file_name);
std::string digest_record_path(const std::string& dest_dir);

}  // namespace tidesync::transfer
