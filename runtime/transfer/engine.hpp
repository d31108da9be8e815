// The native engine behind `tidesync sync` and `tidesync copy`: list both sides, plan
// (plan.hpp), apply the safety valves (safety.hpp), copy with up to `transfers` files in
// flight, flush the destination, then — sync only, and only when every copy succeeded —
// delete.
//
// Backends (backend.hpp): local directories and S3. A file moves as a `reader` opened on the
// source backend and handed to the destination's `write`; local to local uses the kernel's
// copy_file_range. HTTP requests of every transfer share the one http::loop (curl multi).
//
// Modification times (rclone-compatible): an upload stores the source mtime as
// `x-amz-meta-mtime`. When an S3 listing meets a source file of the same size, the object's
// metadata is read (HEAD, `checkers` at a time) for that mtime, as rclone does. The modify
// window is the coarser precision of the two backends.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/transfer/plan.hpp"
#include "runtime/transfer/remote.hpp"

namespace tidesync::transfer {

// Live counters, updated while the engine runs (read them from another thread for progress).
struct engine_stats {
  std::atomic<int> phase{0};  // 0 listing, 1 checking, 2 transferring, 3 deleting, 4 done
  std::atomic<uint64_t> bytes_done{0}, bytes_total{0};
  std::atomic<size_t> files_done{0}, files_total{0};
  std::atomic<size_t> deletes_done{0}, errors{0};
};

struct engine_options {
  mode m = mode::sync;
  bool dry_run = false;
  bool checksum = false;
  bool size_only = false;
  uint64_t max_delete = UINT64_MAX;
  std::vector<std::string> includes, excludes;
  int transfers = 4;
  int checkers = 8;  // parallel metadata reads (HEAD) and checksums
  // Bytes per second for all transfers together (0: unlimited).
  uint64_t bwlimit = 0;
  // Stop starting transfers that would take the bytes copied past this (0: unlimited):
  // rclone's --max-transfer with --cutoff-mode=cautious. Deletes are skipped then.
  uint64_t max_transfer = 0;
  engine_stats* stats = nullptr;
  bool verbose = false;
  // The safety valves' overrides (safety.hpp): deletes into a local / remote destination.
  bool force_delete_local_dir = false;
  bool force_delete_remote_dir = false;
  // Objects larger than this are uploaded in parts of `part_size`.
  uint64_t multipart_threshold = 16ull << 20;
  uint64_t part_size = 8ull << 20;
  int part_concurrency = 4;  // parts (or ranges) in flight per large file
  // Where the plan (dry run) and -v lines go.
  std::FILE* out = stdout;
};

struct engine_result {
  size_t copied = 0;
  uint64_t bytes = 0;
  size_t deleted = 0;
  size_t unchanged = 0;
  size_t failed = 0;  // copies (or set-mtimes) that failed; nothing was deleted then
  bool deletes_skipped = false;
  bool max_transfer_reached = false;  // files were left for the next run
  size_t skipped = 0;                 // files not started because of max_transfer
  std::vector<std::string> errors;    // one line per failure
  double seconds = 0;
  bool nothing_to_do = false;
};

// An error is returned when nothing was changed (listing failed, plan refused, a safety valve
// refused); per-file failures are counted in the result instead.
expected<engine_result> run_engine(const location& src, const location& dst,
                                   const engine_options& opts);

}  // namespace tidesync::transfer
