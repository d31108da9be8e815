// The resource actor of one DataSync (docs/datasync.md): gathers observations (the newest
// cached object, its claims, its Jobs and their pods, the queue actor's answer), calls the
// pure phase machine `datasync_step` (actors/datasync_phase.hpp), performs the actions through
// asynchronous API calls, writes status, sends Events and answers `done(key, outcome)` to its
// controller. One reconcile at a time (the scheduler runs a key once at a time).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/api_call.hpp"
#include "actors/controller_context.hpp"
#include "actors/datasync_phase.hpp"
#include "actors/interfaces.hpp"

namespace tidesync::actors {

// How often a DataSync past the retention whose volume a Pod still mounts looks again.
inline constexpr std::chrono::seconds k_prune_recheck{60};

struct datasync_actor_state {
  static constexpr const char* name = "datasync";

  std::string key;  // "namespace/name"
  std::shared_ptr<const controller_context> ctx;
  controller_actor controller;
  api_calls calls;

  // The run in progress.
  bool running = false;
  config::datasync obj;
  datasync_step_result result;
  datasync_observations obs;  // what `result` was stepped from
  size_t next_action = 0;
  // When this process saw the DataSync start syncing (tidesync_sync_duration_seconds).
  std::optional<std::chrono::steady_clock::time_point> sync_started;

  // Read-your-writes: the status we last wrote and the resourceVersion the server gave it,
  // used while the cache still shows an older version of the object.
  std::string written_uid;
  std::string written_rv;
  std::optional<config::datasync_status> written_status;
};

// Spawn: `sys.spawn(datasync_actor, key, ctx, controller)`.
resource_actor::behavior_type datasync_actor(
    resource_actor::stateful_pointer<datasync_actor_state> self, std::string key,
    std::shared_ptr<const controller_context> ctx, controller_actor controller);

// What a populate Job and its newest pod (null when none) say (pure). The agent's termination
// message (JSON: reason, message, digest, bytes) is read from the pod's terminated container.
populate_observation observe_populate_job(const json::value& job, const json::value* pod);

// The claims the Pods of `pod_list` (a PodList) mount, each with the names of the Pods mounting
// it. A Pod in phase Succeeded or Failed has stopped and mounts nothing; any other Pod
// (Pending, Running, Unknown, being deleted) counts. Pure.
std::map<std::string, std::vector<std::string>> claims_in_use(const json::value& pod_list);

}  // namespace tidesync::actors
