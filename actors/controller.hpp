// The controller actor of one kind (docs/controller.md): listens to the informer caches,
// drops events caused by our own status writes, feeds its scheduler, runs each admitted key
// on that key's resource actor and reports outcomes and timings to metrics. The kind-specific
// parts (how to spawn a resource actor, which other resources map to which keys) are hooks,
// so BucketSync and BucketSyncPolicy share this one actor.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/controller_context.hpp"
#include "actors/interfaces.hpp"
#include "actors/scheduler.hpp"

namespace tidesync::actors {

struct controller_hooks {
  std::string name;  // "bucketsync": logs, the metrics label `controller` and the queue name
  std::shared_ptr<watched> own;  // the kind's own informer
  // Other watched resources (by plural) and how their changes map to keys of ours ("" when
  // the change concerns none, e.g. a Job we do not own).
  std::function<std::string(const std::string& resource, const std::string& key)> map;
  // Spawns the resource actor of `key`.
  std::function<resource_actor(caf::actor_system&, const std::string& key, controller_actor)> spawn;
  // Optional: refresh kind-specific gauges (every few seconds, on the controller's thread).
  std::function<void()> on_tick;
};

struct controller_state {
  static constexpr const char* name = "controller";

  controller_hooks hooks;
  std::shared_ptr<const controller_context> ctx;
  scheduler_actor scheduler;
  std::unordered_map<std::string, resource_actor> actors;
  // Per key: what of the object matters to us (uid, generation, deletion, finalizers,
  // annotations); an event that leaves it unchanged was our own status write.
  std::unordered_map<std::string, std::string> seen;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> enqueued_at;
  // Runs in progress and when they started (the actor clock): active workers, work duration
  // and the in-flight gauges.
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> running_since;
  uint64_t tick_generation = 0;
  // A `refresh` of the in-flight gauges is pending (one at a time, only while runs are).
  bool refresh_pending = false;
};

// Spawn: `sys.spawn(controller, hooks, ctx, scheduler_options, watchers)`. Subscribes to each
// watcher, enqueues every key already cached, and quits (with its scheduler and resource
// actors) on `send_exit`.
controller_actor::behavior_type controller(
    controller_actor::stateful_pointer<controller_state> self, controller_hooks hooks,
    std::shared_ptr<const controller_context> ctx, scheduler_options options,
    std::vector<watcher_actor> watchers);

// The part of an object a controller reacts to (see controller_state::seen). Pure.
std::string change_fingerprint(const json::value& object);

}  // namespace tidesync::actors
