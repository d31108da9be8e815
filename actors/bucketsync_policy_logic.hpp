// The BucketSyncPolicy reconcile decision as a pure function (docs/bucketsync-policy.md).
//
// Given the policy as cached, the BucketSyncs it owns and `now`, `policy_step` says which
// BucketSyncs to create (cron fire or the tidesync.io/sync-now trigger), which to delete
// (syncHistoryLimit), whether to drop the trigger annotation, the complete new status, the
// events and when to look again. No CAF, no I/O, no clock: time is an input. The policy
// controller actor gathers the inputs, runs the result and reports `outcome` to the scheduler.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "actors/bucketsync_phase.hpp"
#include "actors/scheduler_types.hpp"
#include "config/bucketsync.hpp"
#include "runtime/json/value.hpp"
#include "runtime/tz.hpp"

namespace tidesync::actors {

// Label on every BucketSync a policy creates: the policy's name (when it is a valid label value).
inline constexpr std::string_view k_policy_label = "tidesync.io/policy";
// Label saying why a BucketSync exists: "schedule" or "manual".
inline constexpr std::string_view k_trigger_label = "tidesync.io/trigger";
// Annotation on a cron run: the RFC 3339 fire time it was created for.
inline constexpr std::string_view k_scheduled_time_annotation = "tidesync.io/scheduled-time";
// A manual run carries config::k_sync_now_annotation with the policy's annotation value.
// Every run carries the controller's clock when it created it, in microseconds since the epoch:
// creationTimestamp has whole seconds, and two runs of one second (a manual run right after
// another) must still prune in the order they were made.
inline constexpr std::string_view k_created_annotation = "tidesync.io/created-at-us";

// The policy condition that makes the manual trigger exactly-once (see docs/bucketsync-policy.md):
// False (NotRequested / Waiting / Running) while no requested sync has completed, True
// (Completed) from the moment the requested sync finished until the annotation is seen gone.
// Its lastTransitionTime is part of the manual run's name, so it must not change while a
// request runs, and a new request after a completed one gets a new name.
inline constexpr std::string_view k_sync_now_condition = "SyncNowCompleted";

// The longest requeue: a fire further away is approached in steps of this (guards against
// wall-clock jumps and lost events; a step before the fire just computes the same result).
inline constexpr std::chrono::seconds k_max_policy_requeue{3600};
// A BucketSync created in a recent step that the cache does not show yet still counts as
// active (Forbid) for this long after status.lastSyncTime.
inline constexpr std::chrono::seconds k_child_cache_grace{60};

// A BucketSync this policy created (owner reference / spec.policyRef), as the cache shows it.
struct policy_child {
  std::string name;
  config::bucket_sync_phase phase = config::bucket_sync_phase::none;
  std::optional<config::sys_seconds> creation_time;
  std::optional<config::sys_seconds> finish_time;
  std::optional<std::string> error;                // status.error (Finished with an error = failed)
  std::map<std::string, std::string> annotations;  // scheduled-time / sync-now, see above
  bool deleting = false;                           // metadata.deletionTimestamp is set
};

struct policy_result {
  // BucketSyncs to create, complete objects (apiVersion, kind, metadata with name, namespace,
  // labels, annotations, ownerReferences → the policy; spec from config::sync_spec_for).
  // Names are deterministic: a retried create gets AlreadyExists (count it as success).
  std::vector<json::value> create;
  // Children to delete (history limit), oldest first. NotFound counts as success.
  std::vector<std::string> remove;
  // The manual run the annotation asked for has finished: remove tidesync.io/sync-now from the
  // policy (a JSON merge patch {"metadata":{"annotations":{"tidesync.io/sync-now":null}}}).
  // Write `status` BEFORE removing the annotation: the status records that the request is done.
  bool remove_sync_now_annotation = false;
  config::bucket_sync_policy_status status;      // the complete new status
  bool status_changed = false;                   // false: skip the write
  std::vector<phase_action::emit_event> events;  // Kubernetes Events on the policy
  // requeue_after: the next fire (at most k_max_policy_requeue away); success: await a
  // change (suspended, deleting, a schedule with no next fire); terminal_error: bad spec.
  reconcile_outcome outcome;
};

// One reconcile of a policy. `policy_json` is the object as cached; a spec that does not parse
// (bad cron, missing source, unknown zone, a schedule that never fires) gives status.error +
// Ready=False InvalidSpec with the message, a Warning event (when the error is new) and
// terminal_error; nothing is created or pruned. Order for the actor: create, remove, write
// status (when changed), then remove the annotation, then emit events.
// Idempotent: the same inputs give the same creates (same names), never a second run.
policy_result policy_step(const json::value& policy_json, const std::vector<policy_child>& children,
                          config::sys_seconds now,
                          const std::string& zoneinfo_root = std::string(tz::default_root));

// Reads a policy_child from a cached BucketSync object (lenient: missing fields stay empty).
policy_child child_from(const json::value& bucket_sync_json);

// The name of the cron run for fire time `scheduled`: "<policy>-<unix seconds>" (the seed's
// form), with a long policy name shortened so the result is at most 63 characters.
std::string scheduled_child_name(std::string_view policy, config::sys_seconds scheduled);
// The name of the manual run for annotation value `value` requested while the SyncNowCompleted
// condition last changed at `since`: "<policy>-manual-<10 hex digits>", at most 63 characters.
std::string manual_child_name(std::string_view policy, std::string_view value,
                              config::sys_seconds since);

}  // namespace tidesync::actors
