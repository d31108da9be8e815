// BucketSyncPolicy and BucketSync (tidesync.io/v1alpha1): spec and status types, parsing with
// validation, and the status JSON the controllers patch. Field names follow the seed
// (docs/crds/bucketsync.md); deploy/crds/ holds the matching CRDs, and a unit test checks that
// the CRD schemas and the field lists below agree.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/condition.hpp"
#include "config/env_var.hpp"
#include "config/object_meta.hpp"
#include "config/validation.hpp"
#include "runtime/error.hpp"
#include "runtime/json/value.hpp"
#include "runtime/tz.hpp"

namespace tidesync::config {

inline constexpr std::string_view k_bucket_sync_policy_kind = "BucketSyncPolicy";
inline constexpr std::string_view k_bucket_sync_kind = "BucketSync";
// Manual trigger on a BucketSyncPolicy: run now; removed when that sync completes.
inline constexpr std::string_view k_sync_now_annotation = "tidesync.io/sync-now";
// The image the Job runs when spec.image is empty.
inline constexpr std::string_view k_default_rclone_image = "rclone/rclone:1.68.2";

// An rclone location "remote:path" split at the first ':' (remote empty when there is none,
// e.g. "my-bucket" or "/data"). Used for bucket locks and the Job's arguments.
struct rclone_location {
  std::string remote;
  std::string path;
};
rclone_location split_location(std::string_view location);

enum class concurrency_policy { forbid, allow };
std::string_view to_string(concurrency_policy p);

// Fields a BucketSyncPolicy and the BucketSyncs it creates share.
struct sync_template {
  std::string source;                             // rclone notation, "remote:path" or "bucket/path"
  std::string destination;                        // same
  std::vector<env_var> source_env;                // → RCLONE_CONFIG_SOURCE_<NAME>
  std::vector<env_var> destination_env;           // → RCLONE_CONFIG_DESTINATION_<NAME>
  std::map<std::string, std::string> job_labels;  // on the Job's pod
  std::optional<std::chrono::seconds> timeout;    // Job activeDeadlineSeconds; none: no limit
  std::string image;                              // empty: k_default_rclone_image
  std::vector<std::string> rclone_flags;          // extra flags, each starting with '-'
};

struct bucket_sync_policy_spec : sync_template {
  std::string schedule;   // cron, validated with cron::schedule::parse
  std::string time_zone;  // IANA name; empty: the schedule's CRON_TZ= prefix, else UTC
  std::optional<int64_t> starting_deadline_seconds;
  bool suspend = false;
  std::optional<int64_t> sync_history_limit;  // ≥ 1; none: keep every BucketSync
  concurrency_policy concurrency = concurrency_policy::forbid;
};

struct bucket_sync_policy_status {
  std::optional<sys_seconds> last_sync_time;      // when the latest BucketSync was created
  std::optional<sys_seconds> last_schedule_time;  // the cron fire time it was created for
  std::optional<sys_seconds> next_sync_time;
  std::optional<std::string> last_sync;  // name of that BucketSync
  std::vector<std::string> active;       // BucketSyncs not Finished yet
  std::optional<std::string> error;
  std::optional<sys_seconds> last_reconciled_time;
  int64_t observed_generation = 0;
  std::vector<condition> conditions;
};

struct bucket_sync_policy {
  object_meta metadata;
  bucket_sync_policy_spec spec;
  bucket_sync_policy_status status;
};

// Who created a BucketSync (absent for one created by hand).
struct policy_reference {
  std::string name;  // a BucketSyncPolicy in the same namespace
};

struct bucket_sync_spec : sync_template {
  std::optional<policy_reference> policy_ref;
};

enum class bucket_sync_phase { none, initialize, sync, finalize, finished };
// "", "Initialize", "Sync", "Finalize", "Finished".
std::string_view to_string(bucket_sync_phase p);
std::optional<bucket_sync_phase> parse_phase(std::string_view s);

struct bucket_sync_status {
  bucket_sync_phase phase = bucket_sync_phase::none;
  std::optional<std::string> job;
  std::optional<sys_seconds> start_time;
  std::optional<sys_seconds> finish_time;
  std::optional<std::string> error;
  std::optional<sys_seconds> last_reconciled_time;
  int64_t observed_generation = 0;
  std::vector<condition> conditions;
};

struct bucket_sync {
  object_meta metadata;
  bucket_sync_spec spec;
  bucket_sync_status status;
};

// Parses a whole object (apiVersion, kind, metadata, spec, status). Every problem in the spec
// is reported in one errc::invalid error whose `causes` list each field (path, reason, what to
// write instead). Unknown spec fields and unreadable status fields go to `warnings` (filled
// on success and on failure). `zoneinfo_root` is where spec.timeZone is looked up.
expected<bucket_sync_policy> parse_bucket_sync_policy(
    const json::value& object, std::vector<std::string>* warnings = nullptr,
    const std::string& zoneinfo_root = std::string(tz::default_root));
expected<bucket_sync> parse_bucket_sync(const json::value& object,
                                        std::vector<std::string>* warnings = nullptr);

// Like parse_bucket_sync, but always returns what could be read: a BucketSync whose spec is
// invalid still has metadata and status, which the controller needs to finish it with the
// error. `problem` gets the error parse_bucket_sync would return (reset when there is none).
bucket_sync parse_bucket_sync_partial(const json::value& object, std::optional<error>* problem,
                                      std::vector<std::string>* warnings = nullptr);

// The spec parsers on their own (`spec` is the object under .spec; paths start with "spec").
bucket_sync_policy_spec parse_bucket_sync_policy_spec(
    const json::value& spec, problems& p,
    const std::string& zoneinfo_root = std::string(tz::default_root));
bucket_sync_spec parse_bucket_sync_spec(const json::value& spec, problems& p);

// Lenient status readers (status is our own output; bad fields become warnings).
bucket_sync_policy_status parse_bucket_sync_policy_status(const json::value* status, problems& p);
bucket_sync_status parse_bucket_sync_status(const json::value* status, problems& p);

// The full status object for a merge patch {"status": ...}: every field is present, unset
// ones as null, so a patch also clears stale values (an old error, a finished job).
json::value to_json(const bucket_sync_policy_status& s);
json::value to_json(const bucket_sync_status& s);

// The spec as JSON (what a policy writes into the BucketSync it creates).
json::value to_json(const bucket_sync_spec& s);

// The BucketSync spec a policy's run gets: its sync_template plus a policyRef.
bucket_sync_spec sync_spec_for(const bucket_sync_policy& policy);

// The spec/status field names the parsers read, in CRD order. The CRD test compares them with
// deploy/crds/*.yaml so the schema and the code cannot drift apart.
const std::vector<std::string_view>& bucket_sync_policy_spec_fields();
const std::vector<std::string_view>& bucket_sync_spec_fields();
const std::vector<std::string_view>& bucket_sync_policy_status_fields();
const std::vector<std::string_view>& bucket_sync_status_fields();

}  // namespace tidesync::config
