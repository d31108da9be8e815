// The native engine behind `tidesync sync` and `tidesync copy`: list both sides, plan
// (plan.hpp), apply the safety valves (safety.hpp), copy with up to `transfers` files in
// flight, then — sync only, and only when every copy succeeded — delete.
//
// Backends in this slice: local directories and S3 (local->local, local->s3, s3->local,
// s3->s3 through memory). S3 requests all run on one http::loop; `transfers` worker threads
// drive them with the client's blocking helpers (and do local copies), so at most
// `transfers` files move at once.
//
// Modification times (rclone-compatible): an upload stores the source mtime as
// `x-amz-meta-mtime` (seconds since the epoch with a fraction, rclone's format). When an S3
// listing meets a source file of the same size, the object's metadata is read (HEAD) for that
// mtime, as rclone does; without it the listing's LastModified stands in. The modify window
// is 1 s whenever S3 is involved, 1 ns local to local.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/transfer/plan.hpp"
#include "runtime/transfer/remote.hpp"

namespace tidesync::transfer {

struct engine_options {
  mode m = mode::sync;
  bool dry_run = false;
  bool checksum = false;
  bool size_only = false;
  uint64_t max_delete = UINT64_MAX;
  std::vector<std::string> includes, excludes;
  int transfers = 4;
  bool verbose = false;
  // The safety valves' overrides (safety.hpp): deletes into a local / remote destination.
  bool force_delete_local_dir = false;
  bool force_delete_remote_dir = false;
  // Objects larger than this are uploaded in parts of `part_size`.
  uint64_t multipart_threshold = 64ull << 20;
  uint64_t part_size = 16ull << 20;
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
  std::vector<std::string> errors;  // one line per failure
  double seconds = 0;
  bool nothing_to_do = false;
};

// An error is returned when nothing was changed (listing failed, plan refused, a safety valve
// refused); per-file failures are counted in the result instead.
expected<engine_result> run_engine(const location& src, const location& dst,
                                   const engine_options& opts);

}  // namespace tidesync::transfer
