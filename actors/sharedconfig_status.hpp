// The status of SharedConfigs (docs/sharedconfig.md, "The kind"): while the config API serves,
// every SharedConfig is reconciled from a watch, so its status shows what is in the store even
// before (or without) a publish through this controller, and a bad spec or Secret is reported.
//   spec invalid                         Ready=False InvalidSpec, the parser's message
//   no such Secret, store not usable     Ready=False SecretNotFound / InvalidStore
//   store unreachable                    Ready=False StoreUnavailable; looked at again in 30 s
//   latest.json present                  Ready=True Published: revision, checksum, updatedAt
//   nothing published yet                Ready=True Empty
// One detached actor (its reads go through the config API's backend and block) that only the
// leader lets write; a status already as it should be is not written again.
#pragma once

#include <functional>
#include <memory>

#include "actors/interfaces.hpp"
#include "actors/watcher.hpp"
#include "runtime/configapi/server.hpp"
#include "runtime/k8s/client.hpp"

namespace tidesync::actors {

struct sharedconfig_status_settings {
  configapi::backend* backend = nullptr;  // outlives the actor
  std::shared_ptr<watched> sharedconfigs;
  k8s::client* client = nullptr;
  std::function<bool()> leading = [] { return true; };
};

// Spawn detached and subscribe it to the SharedConfig watcher.
listener_actor spawn_sharedconfig_status(caf::actor_system& sys,
                                         sharedconfig_status_settings settings);

}  // namespace tidesync::actors
