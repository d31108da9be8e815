// SharedVolume and ClusterSharedVolume in the controller (docs/sharedvolume.md): one detached
// listener actor reconciles each volume from the watches of both kinds, of the consumer pods
// (label tidesync.io/shared-volume-consumer) and of the Deployments and claims the volumes own
// (label tidesync.io/shared-volume-id): the finalizer, the NFS server (dynamic storage), the
// syncer, the status, consumer claims of namespaces without consumers, and deletion. Only the
// leader writes. The webhook's mounting (`/mount-volumes`) and the syncers' reports
// (`/volume-report`) are handlers any replica serves.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "actors/interfaces.hpp"
#include "actors/watcher.hpp"
#include "config/admission.hpp"
#include "config/sharedvolume_objects.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/webhook/server.hpp"

namespace tidesync::actors {

inline k8s::resource sharedvolumes_resource() {
  return {"tidesync.io", "v1alpha1", "sharedvolumes", "SharedVolume", true};
}
inline k8s::resource clustersharedvolumes_resource() {
  return {"tidesync.io", "v1alpha1", "clustersharedvolumes", "ClusterSharedVolume", false};
}

struct sharedvolume_settings {
  std::shared_ptr<watched> volumes;          // SharedVolumes
  std::shared_ptr<watched> cluster_volumes;  // ClusterSharedVolumes
  std::shared_ptr<watched> consumers;        // pods labelled as consumers
  std::shared_ptr<watched> deployments;      // owned Deployments (by label)
  std::shared_ptr<watched> claims;           // owned PersistentVolumeClaims (by label)
  k8s::client* client = nullptr;
  k8s::client* events = nullptr;  // null: `client`
  std::function<bool()> leading = [] { return true; };
  config::volume_settings objects;  // images, the report URL and CA (the token is per volume)
  std::string report_key;           // signs each syncer's token
  std::chrono::seconds claim_grace{30};
};

// Spawn detached and subscribe it to the five watchers.
listener_actor spawn_sharedvolume_controller(caf::actor_system& sys, sharedvolume_settings s);

// The syncer's token for a volume (webhook::report_token over kind, namespace and name).
std::string volume_report_token(const std::string& report_key, const config::volume_ref& r);

// POST /volume-report: 202 when recorded in the volume's status; 401 for a bad token; 404 when
// the volume is gone; 400 for a malformed report.
webhook::post_handler make_volume_report_handler(k8s::client& client, std::string report_key);

// POST /mount-volumes: the AdmissionReview answer for pods naming shared volumes; the PV and
// PVC of the pod's namespace are created (when missing) before a patch is returned.
webhook::review_handler make_mount_handler(k8s::client& client, std::shared_ptr<watched> volumes,
                                           std::shared_ptr<watched> cluster_volumes,
                                           config::volume_settings objects);

}  // namespace tidesync::actors
