// The BucketSync phase machine as a pure function (docs/bucketsync-phases.md).
//
// Initialize (locks) → Sync (the rclone Job) → Finalize (delete the Job, release the locks) →
// Finished. The resource actor gathers `observations`, calls `step`, runs the actions, writes
// `status` and hands `outcome` to the scheduler. No CAF, no I/O; time is an input.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "actors/lock_types.hpp"
#include "actors/scheduler_types.hpp"
#include "config/bucketsync.hpp"

namespace tidesync::actors {

// Our finalizer on a BucketSync: present from the first step until Finished.
inline constexpr std::string_view k_bucket_sync_finalizer = "tidesync.io/bucketsync-cleanup";
// How long a Job we created may be missing from the cache (lag) before it counts as deleted
// by someone else; also the requeue while Finalize waits for the deleted Job to go away.
inline constexpr std::chrono::seconds k_job_grace{60};

// The Job named config::job_name(obj) as the informer cache shows it.
struct job_observation {
  enum class state : uint8_t { absent, active, succeeded, failed };
  state what = state::absent;
  bool owned = true;      // its controller ownerReference has the BucketSync's uid
  bool deleting = false;  // it has a deletionTimestamp
  std::string reason;     // failed: the Failed condition's reason ("DeadlineExceeded", ...)
  std::string message;    // failed: its message
};

struct observations {
  // Why the spec is invalid (parse/validation message); nullopt when it is valid.
  std::optional<std::string> spec_error;
  // Our finalizer is in metadata.finalizers.
  bool has_finalizer = false;
  // The lock manager's reply to `acquire` of this step's paths; nullopt when not asked yet.
  std::optional<lock_reply> locks;
  job_observation job;
};

// What the actor must do, in order (see step_result for where the status write goes).
namespace phase_action {
struct add_finalizer {
  friend bool operator==(const add_finalizer&, const add_finalizer&) = default;
};
// Send `acquire, holder, paths` and call step again with the reply in observations.locks.
struct acquire_locks {
  std::string holder;              // "namespace/name/uid"
  std::vector<std::string> paths;  // canonical, sorted: the fixed global order
  friend bool operator==(const acquire_locks&, const acquire_locks&) = default;
};
// Create config::build_job(obj); AlreadyExists counts as success.
struct create_job {
  std::string name;
  friend bool operator==(const create_job&, const create_job&) = default;
};
// Delete the Job (propagationPolicy Background); NotFound counts as success.
struct delete_job {
  std::string name;
  friend bool operator==(const delete_job&, const delete_job&) = default;
};
// Send `release, holder` (drops held locks or a waiting entry).
struct release_locks {
  std::string holder;
  friend bool operator==(const release_locks&, const release_locks&) = default;
};
struct remove_finalizer {
  friend bool operator==(const remove_finalizer&, const remove_finalizer&) = default;
};
// A Kubernetes Event on the BucketSync.
struct emit_event {
  std::string type;  // "Normal" or "Warning"
  std::string reason;
  std::string message;
  friend bool operator==(const emit_event&, const emit_event&) = default;
};
}  // namespace phase_action

using action =
    std::variant<phase_action::add_finalizer, phase_action::acquire_locks, phase_action::create_job,
                 phase_action::delete_job, phase_action::release_locks,
                 phase_action::remove_finalizer, phase_action::emit_event>;

struct step_result {
  config::bucket_sync_phase next = config::bucket_sync_phase::none;  // == status.phase
  // Run in order; write `status` (when status_changed) after them, except remove_finalizer,
  // which is always last and comes after the status write.
  std::vector<action> actions;
  config::bucket_sync_status status;
  bool status_changed = false;  // false: skip the write
  // success: await a change (lock reply, Job event); requeue_after: look again then.
  reconcile_outcome outcome;
};

// "namespace/name/uid": the lock holder of a BucketSync.
std::string lock_holder(const config::bucket_sync& obj);

// The canonical, sorted lock paths of source and destination (docs/bucketsync-phases.md,
// "Lock paths"). Errors (invalid_argument) for a location a lock cannot name, and for source
// and destination overlapping on the same storage.
expected<std::vector<std::string>> lock_paths(const config::bucket_sync& obj);

// One step of the machine. obj.status is the status as last written (the actor feeds back
// step_result.status after a successful write). Idempotent: the same inputs give the same
// result and never a second create_job.
step_result step(const config::bucket_sync& obj, const observations& obs, config::sys_seconds now);

}  // namespace tidesync::actors
