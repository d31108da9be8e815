// What every controller and resource actor of one controller process shares: the API client,
// the informer caches, the lock manager, metrics and settings (docs/controller.md). Handed to
// actors at spawn (never sent in a message); immutable after start.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "actors/interfaces.hpp"
#include "actors/watcher.hpp"
#include "config/datasync_job.hpp"
#include "config/job_builder.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/k8s/resource.hpp"
#include "runtime/tz.hpp"

namespace tidesync::metrics {
class registry;
}

namespace tidesync::actors {

inline k8s::resource bucket_syncs_resource() {
  return {"tidesync.io", "v1alpha1", "bucketsyncs", "BucketSync", true};
}
inline k8s::resource bucket_sync_policies_resource() {
  return {"tidesync.io", "v1alpha1", "bucketsyncpolicies", "BucketSyncPolicy", true};
}

inline k8s::resource datasyncs_resource() {
  return {"tidesync.io", "v1alpha1", "datasyncs", "DataSync", true};
}

struct controller_context {
  k8s::client* client = nullptr;
  // Where Events are written: their own rate-limit budget (client-go's event recorder has its
  // own too), so Events never delay reconciles. The main client when null.
  k8s::client* events = nullptr;
  [[nodiscard]] k8s::client& events_client() const { return events ? *events : *client; }
  std::shared_ptr<watched> bucket_syncs;
  std::shared_ptr<watched> policies;
  std::shared_ptr<watched> jobs;
  lock_manager_actor locks;
  // DataSync (docs/datasync.md): the kind, the Jobs, pods and claims it owns (by label), the
  // ConfigMaps of the controller's namespace (the policy), and the admission queue.
  std::shared_ptr<watched> datasyncs;
  std::shared_ptr<watched> datasync_jobs;
  std::shared_ptr<watched> datasync_pods;
  std::shared_ptr<watched> datasync_claims;
  std::shared_ptr<watched> policy_config_maps;
  datasync_queue_actor datasync_queue;
  config::populate_settings populate;
  std::string controller_namespace = "tidesync-system";
  std::shared_ptr<metrics::registry> metrics;  // may be null
  config::job_settings job_settings;
  std::string zoneinfo_root = std::string(tz::default_root);
  // Wall-clock now, whole seconds (status times); tests may fix it.
  std::function<config::sys_seconds()> now;
};

}  // namespace tidesync::actors
