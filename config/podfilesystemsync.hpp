// PodFilesystemSync (tidesync.io/v1alpha1): a folder inside selected pods restored from a remote
// by an init container and kept in sync by a sidecar (issue 8). Spec and status types, parsing
// with every validation (all problems reported at once, defaults applied), and the status JSON
// the controller patches. deploy/crds/tidesync.io_podfilesystemsyncs.yaml is the CRD; a unit
// test checks that it and the field lists below agree. Slice 1: data only, no controller yet.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/condition.hpp"
#include "config/object_meta.hpp"
#include "config/path_template.hpp"
#include "config/validation.hpp"
#include "runtime/error.hpp"
#include "runtime/json/value.hpp"
#include "runtime/k8s/selector.hpp"

namespace tidesync::config {

inline constexpr std::string_view k_podfilesystemsync_kind = "PodFilesystemSync";
// Pod annotations that override spec.syncOptions.permissions (they take precedence).
inline constexpr std::string_view k_volume_user_id_annotation = "tidesync.io/volume-user-id";
inline constexpr std::string_view k_volume_group_id_annotation = "tidesync.io/volume-group-id";
inline constexpr std::string_view k_default_pfs_schedule = "@every 5m";
inline constexpr int64_t k_max_posix_id = 2147483647;  // 2^31 - 1

// Where the restore init container goes among the pod's init containers.
enum class container_placement { before, after, first, last };
// "before", "after", "first", "last".
std::string_view to_string(container_placement p);
std::optional<container_placement> parse_container_placement(std::string_view s);

enum class sync_method { scheduler, fsnotify };
// "scheduler", "fsnotify".
std::string_view to_string(sync_method m);
std::optional<sync_method> parse_sync_method(std::string_view s);

struct init_container_placement {
  std::string container_reference;  // required by before/after, must be empty for first/last
  container_placement placement = container_placement::last;
};

struct sync_permissions {
  std::optional<int64_t> uid;  // 0..2^31-1; unset: the container's user
  std::optional<int64_t> gid;
};

struct sync_clean_up {
  bool remote = true;  // delete remote files that are gone locally (sync, not copy)
  bool local = true;   // delete local files that are gone remotely on restore
};

struct sync_options {
  sync_method method = sync_method::scheduler;
  std::string schedule = std::string(k_default_pfs_schedule);  // parses as runtime/cron.hpp
  std::optional<int64_t> max_one_sync_per_minutes;             // > 0; written as "15" or 15
  sync_permissions permissions;
  sync_clean_up clean_up;
  bool force_remote = false;  // disable the remote safety valves
  bool force_local = false;   // disable the local safety valves
};

struct allowed_directories {
  bool to_remote = true;    // add the sidecar that syncs to the remote
  bool from_remote = true;  // add the init container that restores from the remote
};

struct automatic_encryption {
  bool enabled = false;
  std::string secret_name;  // required when enabled
};

struct podfilesystemsync_spec {
  k8s::label_selector pod_selector;  // never empty (validated)
  std::string local_path;            // absolute, normalised (no trailing '/')
  path_template remote_path;
  init_container_placement placement;
  sync_options sync;
  allowed_directories directories;
  bool restore_remote_on_first_run = true;
  std::map<std::string, std::string> env;
  std::vector<std::string> env_from_secret;  // Secret names
  automatic_encryption encryption;
  int64_t unhealthy_after_failures = 0;  // 0: never turn the sidecar unhealthy
};

// One pod's last sync as its agents reported it (the pod annotation tidesync.io/last-sync).
struct pod_sync_status {
  std::string name;
  bool injected = true;  // false: the webhook did not add the agents (the pod runs unsynced)
  std::optional<sys_seconds> last_sync_time;
  std::string kind;  // restore, sync, final
  int64_t bytes = 0;
  int64_t files = 0;
  int64_t deleted = 0;
  int64_t consecutive_failures = 0;
  std::string result;  // "Succeeded", "Failed", "Skipped", "NotInjected"
  std::string message;
  friend bool operator==(const pod_sync_status&, const pod_sync_status&) = default;
};

struct podfilesystemsync_status {
  int64_t observed_generation = 0;
  std::vector<condition> conditions;
  std::vector<pod_sync_status> pods;         // the selected pods that exist, by name
  std::optional<pod_sync_status> last_sync;  // the latest report of any pod
};

struct podfilesystemsync {
  object_meta metadata;
  podfilesystemsync_spec spec;
  podfilesystemsync_status status;
};

// Parses a whole object. Every problem in the spec is reported in one errc::invalid error whose
// message lists each field with what to write instead; unknown fields and status problems are
// warnings (appended to `warnings` when given).
expected<podfilesystemsync> parse_podfilesystemsync(const json::value& object,
                                                    std::vector<std::string>* warnings = nullptr);

// Local paths that may never be a sync root ("/", "/bin", "/usr", "/etc", ...).
const std::vector<std::string_view>& forbidden_local_roots();

// The uid/gid for one pod: the pod annotations tidesync.io/volume-user-id / -group-id take
// precedence over spec.syncOptions.permissions. A bad annotation value is an error naming it.
expected<sync_permissions> effective_permissions(
    const sync_permissions& spec, const std::map<std::string, std::string>& pod_annotations);

// The full status object for a merge patch {"status": ...}.
json::value to_json(const podfilesystemsync_status& s);
json::value to_json(const pod_sync_status& p);

// The field names the parser reads and the status writes, in CRD order (checked against the
// CRD by tests/unit/config_crd_test.cpp).
const std::vector<std::string_view>& podfilesystemsync_spec_fields();
const std::vector<std::string_view>& podfilesystemsync_placement_fields();
const std::vector<std::string_view>& podfilesystemsync_sync_options_fields();
const std::vector<std::string_view>& podfilesystemsync_status_fields();
const std::vector<std::string_view>& podfilesystemsync_pod_status_fields();

}  // namespace tidesync::config
