// The objects a SharedVolume or ClusterSharedVolume owns (docs/sharedvolume.md, "What the
// controller makes") and the webhook's mounting decision, as pure functions of the parsed volume.
// Names are functions of the volume's kind, namespace and name, so a restarted controller finds
// what it made; Secret values are never read (the kubelet resolves references).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/sharedvolume.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::config {

// On everything a volume owns: a hash of (kind, namespace, name), a valid label value.
inline constexpr std::string_view k_shared_volume_id_label = "tidesync.io/shared-volume-id";
// On consumer pods (set by the webhook): the controller watches them by this label.
inline constexpr std::string_view k_shared_volume_consumer_label =
    "tidesync.io/shared-volume-consumer";
// Pod annotations: which volumes (comma-separated names) and where.
inline constexpr std::string_view k_shared_volume_annotation = "tidesync.io/shared-volume";
inline constexpr std::string_view k_cluster_shared_volume_annotation =
    "tidesync.io/cluster-shared-volume";
inline constexpr std::string_view k_shared_volume_mount_path_annotation =
    "tidesync.io/shared-volume-mount-path";
inline constexpr std::string_view k_shared_volume_finalizer = "tidesync.io/shared-volume";
// On the syncer's pod template: changes when the spec or the sync-now annotation does, so a new
// syncer pod (which syncs at start) runs.
inline constexpr std::string_view k_sync_generation_annotation = "tidesync.io/sync-generation";
// On owned objects: a hash of what the controller wants; a different hash means update.
inline constexpr std::string_view k_spec_hash_annotation = "tidesync.io/spec-hash";

struct volume_settings {
  std::string controller_namespace = "tidesync-system";
  std::string agent_image = "tidesync/tidesync:" TIDESYNC_VERSION;
  std::string nfs_image = "itsthenetwork/nfs-server-alpine:12";
  std::string cluster_domain = "cluster.local";
  // The syncer's reports (docs/sharedvolume.md): URL of /volume-report, the CA, the token.
  std::string report_url;
  std::string report_ca;
  std::string report_token;
};

// (kind, namespace, name) of a volume; namespace "" for a ClusterSharedVolume.
struct volume_ref {
  bool cluster = false;
  std::string ns;
  std::string name;
  friend bool operator==(const volume_ref&, const volume_ref&) = default;
  friend auto operator<=>(const volume_ref&, const volume_ref&) = default;
};
volume_ref ref_of(const sharedvolume& v);
std::string to_string(
    const volume_ref& r);  // "SharedVolume team-a/docs", "ClusterSharedVolume models"

std::string volume_id(const volume_ref& r);  // the label value (16 hex digits)
// Where its NFS server and syncer run: its own namespace, or the controller's.
std::string server_namespace(const volume_ref& r, const volume_settings& s);
// "sv-<name>" / "csv-<name>" (hashed when long): the base of the owned objects' names.
std::string object_base(const volume_ref& r);
// The NFS server as consumers mount it: the Service's DNS name and "/", or the external one.
std::pair<std::string, std::string> nfs_address(const sharedvolume& v, const volume_settings& s);

// Dynamic storage: the NFS server's backing claim, Deployment and Service.
json::value build_nfs_claim(const sharedvolume& v, const volume_settings& s);
json::value build_nfs_deployment(const sharedvolume& v, const volume_settings& s);
json::value build_nfs_service(const sharedvolume& v, const volume_settings& s);
// The syncer Deployment (`tidesync agent mirror`). `sync_generation` goes into its pod template.
json::value build_syncer_deployment(const sharedvolume& v, const volume_settings& s,
                                    std::string_view sync_generation);

// A consumer namespace's claim and its PV.
std::string consumer_claim_name(const volume_ref& r);
std::string consumer_pv_name(const volume_ref& r, std::string_view consumer_ns);
json::value build_consumer_pv(const sharedvolume& v, const volume_settings& s,
                              std::string_view consumer_ns);
json::value build_consumer_claim(const sharedvolume& v, std::string_view consumer_ns);

// The hash stored in k_spec_hash_annotation for an object the controller builds.
std::string spec_hash(const json::value& object);

// The webhook's decision for a pod of `ns`.
struct mount_decision {
  enum class kind { untouched, patch, refuse };
  kind what = kind::untouched;
  std::string message;                    // refuse: why and what to do
  json::value patch;                      // an RFC 6902 JSON patch
  std::vector<const sharedvolume*> uses;  // patch: the volumes whose PV/PVC `ns` needs
};
// `find` returns the volume a pod names (nullptr: none). Refused: a named volume that does not
// exist or is being deleted, a bad mount path, two volumes at one path.
using volume_finder = std::function<const sharedvolume*(const volume_ref&)>;
mount_decision decide_mounts(const json::value& pod, const std::string& ns,
                             const volume_finder& find);

}  // namespace tidesync::config
