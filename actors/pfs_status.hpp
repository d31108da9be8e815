// PodFilesystemSync in the controller (docs/podfilesystemsync.md): the status actor, the
// webhook's decider and the progress-report receiver.
//
// Status: one detached listener actor, fed by the PodFilesystemSync watch and the watch of
// labelled pods (tidesync.io/volume-syncing=true), reconciles each PodFilesystemSync from the
// caches (actors/pfs_logic.hpp): the selected pods with their last report, the Secrets it names
// (read on demand; a missing one is looked at again every 10 s), the automaticEncryption key
// Secret (created once when absent, never replaced), conditions, Events on transitions, and
// metrics. Only the leader writes.
//
// Reports: any replica verifies the token (runtime/webhook/tls_secret.hpp), checks that the pod
// carries the token's report id, and writes the report into the pod's annotation
// tidesync.io/last-sync, where the leader's status actor sees it through its pod watch.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "actors/interfaces.hpp"
#include "actors/watcher.hpp"
#include "config/admission.hpp"
#include "config/pod_injection.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/webhook/server.hpp"

namespace tidesync::metrics {
class registry;
}

namespace tidesync::actors {

inline k8s::resource podfilesystemsyncs_resource() {
  return {"tidesync.io", "v1alpha1", "podfilesystemsyncs", "PodFilesystemSync", true};
}

struct pfs_status_settings {
  std::shared_ptr<watched> syncs;  // PodFilesystemSyncs
  std::shared_ptr<watched> pods;   // pods labelled tidesync.io/volume-syncing=true
  k8s::client* client = nullptr;
  k8s::client* events = nullptr;  // null: `client`
  std::function<bool()> leading = [] { return true; };
  std::shared_ptr<metrics::registry> metrics;  // may be null
};

// Spawn detached and subscribe it to both watchers.
listener_actor spawn_pfs_status(caf::actor_system& sys, pfs_status_settings settings);

// The webhook's decision for a pod of `ns` from the PodFilesystemSync cache (invalid ones are
// skipped: their status says why), with a fresh random report id.
config::pod_decider make_pfs_decider(std::shared_ptr<watched> syncs,
                                     config::injection_settings settings);

// POST /report: 202 when recorded; 401 for a bad token; 403 when the pod does not carry the
// token's report id; 404 when the pod is gone; 400 for a malformed report.
webhook::post_handler make_report_handler(k8s::client& client, std::string report_key,
                                          std::shared_ptr<metrics::registry> metrics);

}  // namespace tidesync::actors
