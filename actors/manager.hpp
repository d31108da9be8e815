// The controller process's actor system and its wiring (docs/controller.md): informers and
// watcher actors, the lock manager with its Lease writer, the BucketSync, BucketSyncPolicy and
// DataSync controllers and the DataSync queue. The CLI (`tidesync controller`, `tidesync simulate`)
// creates one, starts watching, and starts the controllers when it leads.
//
// Threading: start_watching/start_controllers/stop block and must not run on the HTTP loop
// thread. No CAF in this header.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "actors/lock_types.hpp"
#include "actors/scheduler_types.hpp"
#include "config/admission.hpp"
#include "config/datasync_job.hpp"
#include "config/job_builder.hpp"
#include "config/pod_injection.hpp"
#include "config/sharedvolume_objects.hpp"
#include "runtime/configapi/server.hpp"
#include "runtime/error.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/tz.hpp"
#include "runtime/webhook/server.hpp"

namespace tidesync::metrics {
class registry;
}

namespace tidesync::actors {

struct manager_options {
  std::string ns = "tidesync-system";  // the controller's namespace: lock Leases live here
  std::string watch_namespace;         // "" : every namespace
  lock_options locks;                  // lease_namespace is set from `ns`
  scheduler_options bucket_syncs;      // concurrency of BucketSync reconciles
  scheduler_options policies;
  scheduler_options datasyncs;  // concurrency of DataSync reconciles (not of syncs: the policy)
  config::job_settings job;
  config::populate_settings populate;          // DataSync populate Jobs
  std::shared_ptr<metrics::registry> metrics;  // may be null
  std::string zoneinfo_root = std::string(tz::default_root);
  size_t threads = 0;  // CAF worker threads; 0: max(2, cores)
  // The client that writes lock Leases; null: the main one. A separate client has its own
  // rate-limit budget, so lock renewals (every held lock, every TTL/3) can never starve
  // reconciles: thousands of held locks would otherwise take the whole default budget. A
  // renewal that lags is harmless while the controller runs (the lock manager judges
  // holders from the cache, not from the Leases) and after a restart (a live holder's Lease
  // is adopted however old it is).
  k8s::client* lease_client = nullptr;
  // The client that writes Events; null: the main one (see controller_context::events).
  k8s::client* events_client = nullptr;
};

// The admission webhook and PodFilesystemSync (docs/podfilesystemsync.md).
struct webhook_settings {
  webhook::server_options server;             // the address; the TLS pair is filled in
  config::webhook_registration registration;  // service or URL; the caBundle is filled in
  std::vector<std::string> cert_names;        // the serving certificate's names
  std::string report_url;                     // where agents report; "" turns reports off
  config::injection_settings injection;       // image, native sidecars; reports filled in
  config::volume_settings volumes;  // SharedVolume objects: images; namespace and reports filled in
  std::chrono::seconds volume_claim_grace{30};
  // How often the Secret is checked for rotation, the configuration repaired and every
  // PodFilesystemSync's status recomputed.
  std::chrono::seconds check_every{300};
};

class manager {
 public:
  manager(k8s::client& client, http::loop& loop, manager_options options);
  ~manager();  // stop()
  manager(const manager&) = delete;
  manager& operator=(const manager&) = delete;

  // Starts the informers (watcher actors); returns at once. synced() tells when each has
  // listed once; unsynced() names those that have not (a missing CRD, missing RBAC).
  expected<void> start_watching();
  [[nodiscard]] std::string unsynced() const;
  // Lists the lock Leases (restart recovery), spawns the lock manager and the controllers;
  // they enqueue every cached object. Call once synced() (errc::unavailable before).
  expected<void> start_controllers();
  // Whether the informers have synced (readiness).
  [[nodiscard]] bool synced() const;
  [[nodiscard]] bool controllers_running() const;
  // Serves the config API (docs/sharedconfig.md) with the owner actors of this system as its
  // writer; `leading` says whether this replica may write. Returns the bound port.
  expected<uint16_t> start_config_api(configapi::server_options options,
                                      std::function<bool()> leading);
  // Serves the admission webhook and the agents' reports, keeps the TLS Secret and the
  // MutatingWebhookConfiguration, and runs the PodFilesystemSync status actor (which writes only
  // while `leading`). In registration.url and report_url, "{port}" becomes the bound port.
  // Returns the bound port. Errors say what to fix (RBAC, a taken address).
  expected<uint16_t> start_webhook(webhook_settings settings, std::function<bool()> leading);
  // Stops the webhook, the config API, the controllers and the lock manager, flushes Lease writes
  // (bounded), stops the informers. Idempotent. The loop must still run.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tidesync::actors
