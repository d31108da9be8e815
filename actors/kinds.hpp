// The kinds plugged into the generic controller (actors/controller.hpp): how a
// BucketSync and a BucketSyncPolicy get their resource actors, and which changes of other
// resources wake them (a Job → its BucketSync; a BucketSync → its policy).
#pragma once

#include <memory>
#include <string>

#include "actors/api_call.hpp"
#include "actors/bucketsync_policy_logic.hpp"
#include "actors/controller.hpp"
#include "actors/controller_context.hpp"

namespace tidesync::actors {

controller_hooks bucket_sync_hooks(std::shared_ptr<const controller_context> ctx);
controller_hooks policy_hooks(std::shared_ptr<const controller_context> ctx);
// DataSync (docs/datasync.md): its Jobs and claims map to their owner; a populate pod maps
// through its Job.
controller_hooks datasync_hooks(std::shared_ptr<const controller_context> ctx);

// "namespace/name" of the object's controller ownerReference of `kind`, "" when none.
std::string controller_owner_key(const json::value& object, std::string_view kind);

// Whether `holder` ("namespace/name/uid") is a BucketSync in the cache with that uid that has
// not Finished (the lock manager's liveness question, answered from the informer cache).
bool bucket_sync_alive(const watch::cache& bucket_syncs, std::string_view holder);

struct policy_actor_state {
  static constexpr const char* name = "bucketsyncpolicy";

  std::string key;
  std::shared_ptr<const controller_context> ctx;
  controller_actor controller;
  api_calls calls;

  bool running = false;
  std::string ns;
  std::string name_;
  policy_result result;
  size_t next_create = 0;
  size_t next_remove = 0;

  // Read-your-writes (see bucket_sync_actor_state).
  std::string written_uid;
  std::string written_rv;
  std::optional<config::bucket_sync_policy_status> written_status;
};

resource_actor::behavior_type policy_actor(
    resource_actor::stateful_pointer<policy_actor_state> self, std::string key,
    std::shared_ptr<const controller_context> ctx, controller_actor controller);

}  // namespace tidesync::actors
