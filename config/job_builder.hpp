// The batch/v1 Job that runs `rclone sync` for one BucketSync (docs/bucketsync-phases.md).
//
// Pure: builds JSON from the parsed BucketSync. The name is a function of the BucketSync's
// name alone, so a restarted controller finds the Job it created instead of creating another.
// Secret and ConfigMap values are never read: valueFrom stays a reference for the kubelet.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/bucketsync.hpp"
#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::config {

// Label on the Job and its pod naming the BucketSync (its name, or the Job name when the
// BucketSync's name is not a valid label value).
inline constexpr std::string_view k_bucket_sync_label = "tidesync.io/bucketsync";
inline constexpr std::string_view k_managed_by_label = "app.kubernetes.io/managed-by";
inline constexpr std::string_view k_rclone_container = "rclone";
// The writable emptyDir rclone uses with a read-only root filesystem.
inline constexpr std::string_view k_scratch_volume = "tmp";
inline constexpr std::string_view k_scratch_path = "/tmp";

struct job_settings {
  std::string default_image = std::string(k_default_rclone_image);  // when spec.image is empty
  int64_t run_as_user = 65532;  // and group; the distroless "nonroot" uid
  std::string service_account;  // empty: the namespace's default
};

// A container securityContext with nothing extra: non-root as `uid` (user and group), a
// read-only root filesystem, no privilege escalation, every capability dropped. Shared by every
// Job tidesync builds.
json::value restricted_container_security(int64_t uid);

// The Job's name: the BucketSync's name when it is a DNS-1123 label (≤ 63 characters,
// [a-z0-9-]); otherwise a slug of it cut to 52 characters + "-" + 10 hex digits of the
// FNV-1a 64-bit hash of the whole name (the slug is lossy, the hash keeps names apart).
std::string job_name(std::string_view bucket_sync_name);
std::string job_name(const bucket_sync& obj);

// The value of the tidesync.io/bucketsync label for a BucketSync.
std::string bucket_sync_label_value(std::string_view bucket_sync_name);

// The Job (apiVersion batch/v1) for `obj`: owned by it (controller, blockOwnerDeletion),
// labels = jobLabels + managed-by + tidesync.io/bucketsync (ours win), backoffLimit 0,
// activeDeadlineSeconds = spec.timeout, a pod that runs `rclone sync <src> <dst> <flags>` as a
// non-root user with a read-only root, no capabilities, and an emptyDir at /tmp (HOME,
// RCLONE_CONFIG and RCLONE_CACHE_DIR point there). Errors (invalid_argument): missing
// name/namespace/uid, bad env names (config::rclone_env).
expected<json::value> build_job(const bucket_sync& obj, const job_settings& settings = {});

}  // namespace tidesync::config
