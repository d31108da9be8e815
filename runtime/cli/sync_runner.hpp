// One run of the transfer engine as the CLI does it (summary line, exit codes, progress,
// --engine=rclone), and the --schedule loop with a last sync on SIGTERM. Shared by `tidesync
// sync|copy`, the seed's `sync-to-remote` / `remote-to-local-sync` (sync.cpp) and the pod
// agents `tidesync agent restore|sidecar` (agent_pfs.cpp).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

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

// One run: the engine, the summary, the exit code (0 done, 1 failed, 6 partial, 8
// --max-transfer reached, 9 nothing transferred with error_on_no_transfer).
int run_sync_once(const sync_job& job, const transfer::location& src,
                  const transfer::location& dst);

// Runs at every fire time of `schedule` until SIGTERM/SIGINT; then one last sync when the
// destination is a remote, and returns that run's exit code (2: a bad schedule). `after_run`,
// when set, is called with each run's exit code (the last one too).
int run_sync_scheduled(const sync_job& job, const std::string& schedule,
                       const transfer::location& src, const transfer::location& dst,
                       const std::function<void(int)>& after_run = {});

}  // namespace tidesync::cli
