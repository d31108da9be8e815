// One run of the transfer engine as the CLI does it (summary line, exit codes, progress,
// --engine=rclone), the --schedule loop, and the loop that syncs on file changes; both loops
// end with a last sync on SIGTERM. Shared by `tidesync sync|copy`, the seed's
// `sync-to-remote` / `remote-to-local-sync` (sync.cpp) and the pod agents `tidesync agent
// restore|sidecar` (agent_pfs.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/fswatch.hpp"
#include "runtime/transfer/engine.hpp"
#include "runtime/transfer/remote.hpp"

namespace tidesync::cli {

struct sync_job {
  std::string name;  // for messages: "sync", "agent sidecar", ...
  transfer::engine_options opts;
  bool error_on_no_transfer = false;
  bool force_progress = false;
  bool quiet = false;
  std::chrono::milliseconds stats_interval = std::chrono::seconds(10);
  // --engine=rclone: the source and destination as given, the flags to pass, and whether
  // REMOTE_* are translated to RCLONE_CONFIG_REMOTE_* (the seed's remote).
  bool use_rclone = false;
  std::vector<std::string> rclone_positional;
  std::vector<std::string> rclone_flags;
  bool rclone_seed_env = false;
};

// What one run did, for progress reports. The counts are the native engine's (zero with
// --engine=rclone, whose output is not parsed).
struct run_summary {
  int code = 0;        // the exit code, as run_sync_once returns it
  uint64_t bytes = 0;  // bytes copied
  size_t files = 0;    // files copied
  size_t deleted = 0;  // files deleted
  // One line for people: the counts, or what went wrong. Holds no secret (the engine's
  // messages never do).
  std::string message;
};

// Which run an observer sees: one on the schedule (or after a change), or the last one after
// SIGTERM/SIGINT.
enum class run_kind { regular, final };
using run_observer = std::function<void(const run_summary&, run_kind)>;

// One run: the engine, the summary, the exit code (0 done, 1 failed, 6 partial, 8
// --max-transfer reached, 9 nothing transferred with error_on_no_transfer).
run_summary run_sync(const sync_job& job, const transfer::location& src,
                     const transfer::location& dst);
int run_sync_once(const sync_job& job, const transfer::location& src,
                  const transfer::location& dst);

// Blocks SIGTERM and SIGINT in the calling thread, so that threads started after it (HTTP
// loops, watchers) inherit the mask and the loops below receive the signals. The loops call it
// themselves; call it first when threads start before a loop does. Idempotent.
void block_stop_signals();

// Runs at every fire time of `schedule` until SIGTERM/SIGINT; then one last sync when the
// destination is a remote, and returns that run's exit code (2: a bad schedule). `after_run`,
// when set, is called after each run (the last one too, as run_kind::final).
int run_sync_scheduled(const sync_job& job, const std::string& schedule,
                       const transfer::location& src, const transfer::location& dst,
                       const run_observer& after_run = {});

// When run_sync_on_changes syncs.
struct change_trigger {
  std::string root;  // the directory to watch (the local source)
  // At most one sync start per this long (fswatch::decide_sync).
  std::chrono::milliseconds min_interval{60'000};
  fswatch::ignore_fn ignore = fswatch::is_agent_file;
};

// Syncs once at start, then after changes under `trigger.root` (inotify, every directory of
// the tree), at most once per `trigger.min_interval`; no change, no sync. When the tree cannot
// be watched completely (the watch limit) it syncs every `min_interval` instead, and says so.
// On SIGTERM/SIGINT one last sync when the destination is a remote; returns that run's exit
// code. `after_run` as for run_sync_scheduled.
int run_sync_on_changes(const sync_job& job, const change_trigger& trigger,
                        const transfer::location& src, const transfer::location& dst,
                        const run_observer& after_run = {});

}  // namespace tidesync::cli
