// SharedVolume (namespaced) and ClusterSharedVolume (cluster-scoped), tidesync.io/v1alpha1: a
// volume filled from Git, S3, SFTP or HTTP(S) on a schedule, served over NFS and mounted into
// the pods that ask for it (docs/sharedvolume.md). Spec and status types, parsing with every
// validation, and the status JSON the controller patches. The reference is
// docs/crds/sharedvolume.md; the CRDs are deploy/crds/tidesync.io_{,cluster}sharedvolumes.yaml.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/condition.hpp"
#include "config/object_meta.hpp"
#include "config/validation.hpp"
#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::config {

inline constexpr std::string_view k_sharedvolume_kind = "SharedVolume";
inline constexpr std::string_view k_cluster_sharedvolume_kind = "ClusterSharedVolume";
inline constexpr std::chrono::seconds k_default_sync_interval{300};
inline constexpr std::chrono::seconds k_min_sync_interval{10};
inline constexpr std::chrono::seconds k_default_sync_timeout{600};
inline constexpr std::string_view k_default_shared_volume_size = "1Gi";

enum class volume_source_type { git, s3, sftp, http };
std::string_view to_string(volume_source_type t);

struct git_ref {
  std::string branch, tag, commit;  // at most one set; none: the remote's HEAD
};

struct volume_source {
  volume_source_type type = volume_source_type::git;
  std::string
      url;      // git: https://, http://, ssh://, scp-like user@host:path, file://; http: the URL
  git_ref ref;  // git only
  std::string
      remote;  // s3: BUCKET/PREFIX; sftp: PATH (on the remote of the Secret's REMOTE_* keys)
  std::string secret_name;  // "" : none (public git/http)
};

struct volume_storage {
  bool external = false;
  // dynamic: the NFS server's backing claim.
  std::string size = std::string(k_default_shared_volume_size);  // a quantity, as written
  std::optional<std::string> storage_class_name;                 // unset: the cluster default
  // external: an NFS server the user runs.
  std::string server;
  std::string path = "/";
};

struct sharedvolume_spec {
  volume_source source;
  std::chrono::seconds sync_interval = k_default_sync_interval;
  std::chrono::seconds sync_timeout = k_default_sync_timeout;
  volume_storage storage;
  bool read_only = true;
};

struct volume_consumers {
  std::string ns;
  int64_t pods = 0;
  friend bool operator==(const volume_consumers&, const volume_consumers&) = default;
};

struct sharedvolume_status {
  std::string phase;  // Pending, Syncing, Ready, Failed, Deleting ("" : not yet reconciled)
  int64_t observed_generation = 0;
  std::vector<condition> conditions;
  std::string nfs_server, nfs_path;
  std::string revision;
  std::optional<sys_seconds> last_sync_time;
  std::string last_sync_result;  // Succeeded, Failed
  std::string last_sync_message;
  std::vector<volume_consumers> consumers;
};

struct sharedvolume {
  bool cluster = false;  // ClusterSharedVolume
  object_meta metadata;
  sharedvolume_spec spec;
  sharedvolume_status status;
};

// Parses either kind (by `kind`). Every problem in the spec is reported in one errc::invalid
// error whose message lists each field with what to write instead; unknown fields are warnings
// (appended to `warnings` when given).
expected<sharedvolume> parse_sharedvolume(const json::value& object,
                                          std::vector<std::string>* warnings = nullptr);

// The full status object for a merge patch {"status": ...}.
json::value to_json(const sharedvolume_status& s);

// The field names the parser reads and the status writes, in CRD order (checked against the CRDs
// by tests/unit/config_crd_test.cpp).
const std::vector<std::string_view>& sharedvolume_spec_fields();
const std::vector<std::string_view>& sharedvolume_source_fields();
const std::vector<std::string_view>& sharedvolume_storage_fields();
const std::vector<std::string_view>& sharedvolume_status_fields();

}  // namespace tidesync::config
