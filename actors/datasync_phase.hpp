// The DataSync phase machine as a pure function (docs/datasync.md).
//
// (new or changed spec) → Queued → (admitted by the queue actor) Syncing → Succeeded | Failed;
// a retryable failure goes back to Queued with retryCount + 1 and a nextRetryTime. The
// resource actor gathers `datasync_observations` (the newest cached object, its PVCs, Jobs and
// their pods, the queue actor's answer), calls `datasync_step`, runs the actions, writes
// `status` and hands `outcome` to the scheduler. No CAF, no I/O; time is an input.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "actors/datasync_types.hpp"
#include "actors/scheduler_types.hpp"
#include "config/datasync.hpp"

namespace tidesync::actors {

// One populate Job of the DataSync, as the caches show it (the Job and its newest pod).
struct populate_observation {
  enum class state : uint8_t { active, succeeded, failed };
  std::string name;  // the Job
  std::string vm;    // its tidesync.io/datasync-vm label
  state what = state::active;
  bool deleting = false;  // it has a deletionTimestamp
  // failed/succeeded: what the pod's container said. exit_code is datasync::k_exit_unknown
  // without a terminated container; reason/message come from the agent's termination message
  // (JSON) or, without one, from the Job's Failed condition.
  int exit_code = datasync::k_exit_unknown;
  std::string reason;
  std::string message;
  std::optional<std::string> digest;
  int64_t bytes = 0;
  // failed: when the Job's Failed condition turned True.
  std::optional<config::sys_seconds> failed_at;
  // A pod of the Job is known whose populate container has not terminated yet in the cache:
  // the Job and pod caches are separate watch streams, so a Job can be seen Failed before its
  // pod's exit code arrives (docs/datasync.md, "Classifying a failure").
  bool pod_unsettled = false;
};

// How long a failed Job whose pod's exit code is not in the cache yet is treated as still
// running before it is classified without one (as transient).
inline constexpr std::chrono::seconds k_pod_status_grace{30};

struct datasync_observations {
  // Why the spec is invalid (one message listing every problem); nullopt when it is valid.
  std::optional<std::string> spec_error;
  // metadata.labels[tidesync.io/workspace] == spec.workspaceId.
  bool has_workspace_label = false;
  // The queue actor's answer; nullopt when not asked yet (the step asks for it when needed).
  std::optional<queue_answer> queue;
  // Every Job the DataSync owns (by its label), current or not.
  std::vector<populate_observation> jobs;
  // Names of VMs whose claim exists (and is owned by this DataSync).
  std::set<std::string> claims;
  // Names of VMs whose claim name is taken by a PersistentVolumeClaim this DataSync does not
  // own (a user's claim, or another DataSync's whose name and VM join to the same name).
  // tidesync never writes into such a volume: the DataSync fails with reason ClaimConflict.
  std::set<std::string> foreign_claims;
};

namespace datasync_action {
// Set metadata.labels[tidesync.io/workspace] (pruning finds versions by it).
struct label_workspace {
  friend bool operator==(const label_workspace&, const label_workspace&) = default;
};
// Ask the queue actor (`ask, key`) and step again with the answer in observations.queue.
struct ask_queue {
  friend bool operator==(const ask_queue&, const ask_queue&) = default;
};
// Create config::build_datasync_claim for the VM; AlreadyExists counts as success.
struct create_claim {
  std::string vm;
  friend bool operator==(const create_claim&, const create_claim&) = default;
};
// Create config::build_populate_job for the VM (current generation and retry count).
struct create_job {
  std::string vm;
  std::string name;
  friend bool operator==(const create_job&, const create_job&) = default;
};
// Delete the Job (propagationPolicy Background); NotFound counts as success.
struct delete_job {
  std::string name;
  friend bool operator==(const delete_job&, const delete_job&) = default;
};
// A Kubernetes Event on the DataSync (sent after the status write).
struct emit_event {
  std::string type;  // "Normal" or "Warning"
  std::string reason;
  std::string message;
  friend bool operator==(const emit_event&, const emit_event&) = default;
};
}  // namespace datasync_action

using datasync_step_action =
    std::variant<datasync_action::label_workspace, datasync_action::ask_queue,
                 datasync_action::create_claim, datasync_action::create_job,
                 datasync_action::delete_job, datasync_action::emit_event>;

struct datasync_step_result {
  // Run in order, then write `status` when status_changed, then send the events. When the
  // actions hold ask_queue, nothing else is in them: ask, then step again.
  std::vector<datasync_step_action> actions;
  config::datasync_status status;
  bool status_changed = false;
  // success: await a change (a Job, the queue's wake); requeue_after: look again then.
  reconcile_outcome outcome;
};

// Whether a queue position is worth a status write, given the one last written: always the
// first, the last three places exactly, otherwise only when it moved back or halved. A long
// queue so costs O(log n) writes per DataSync instead of one per admission.
bool position_worth_writing(std::optional<int64_t> written, int64_t position);

// One step. obj.status is the status as last written (the actor feeds back the written
// status while the cache lags). Idempotent: the same inputs give the same result, and a Job
// is only ever created under its deterministic name.
datasync_step_result datasync_step(const config::datasync& obj, const datasync_observations& obs,
                                   config::sys_seconds now);

// Bytes of the VMs that reached Succeeded between two statuses (each VM counts once, when it
// gets there): what tidesync_sync_bytes_total{kind="DataSync"} adds.
int64_t newly_synced_bytes(const config::datasync_status& before,
                           const config::datasync_status& after);

}  // namespace tidesync::actors
