// The resource actor of one BucketSync: gathers observations (the newest cached object, its
// Job, the lock manager's answer), calls the pure phase machine `step`
// (actors/bucketsync_phase.hpp), performs the actions through asynchronous API calls, writes
// status and answers `done(key, outcome)` to its controller. One reconcile at a time (the
// scheduler runs a key once at a time). Rules: docs/bucketsync-phases.md, docs/controller.md.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "actors/api_call.hpp"
#include "actors/bucketsync_phase.hpp"
#include "actors/controller_context.hpp"
#include "actors/interfaces.hpp"

namespace tidesync::actors {

struct bucket_sync_actor_state {
  static constexpr const char* name = "bucketsync";

  std::string key;  // "namespace/name"
  std::shared_ptr<const controller_context> ctx;
  controller_actor controller;
  api_calls calls;

  // The run in progress.
  bool running = false;
  std::chrono::steady_clock::time_point run_started{};
  config::bucket_sync obj;
  step_result result;
  size_t next_action = 0;
  std::string resource_version;  // of the object the run started from (then of our writes)
  std::vector<std::string> finalizers;

  // Read-your-writes: the status we last wrote and the resourceVersion the server gave it.
  // Used while the cache still shows an older version of the object.
  std::string written_uid;
  std::string written_rv;
  std::optional<config::bucket_sync_status> written_status;

  // Lock bookkeeping: our holder id, and whether a deferred await_lock is outstanding.
  std::string holder;
  bool awaiting_lock = false;
  // Since when this sync waits for a lock (tidesync_lock_wait_seconds, tidesync_lock_waiters).
  std::optional<std::chrono::steady_clock::time_point> waiting_since;
};

// Spawn: `sys.spawn(bucket_sync_actor, key, ctx, controller)`.
resource_actor::behavior_type bucket_sync_actor(
    resource_actor::stateful_pointer<bucket_sync_actor_state> self, std::string key,
    std::shared_ptr<const controller_context> ctx, controller_actor controller);

// What the Job in the cache says, for `step` (absent when `job` is null). `owner_uid` is the
// BucketSync's uid: the Job counts as ours when its controller ownerReference has it.
job_observation observe_job(const json::value* job, std::string_view owner_uid);

}  // namespace tidesync::actors
