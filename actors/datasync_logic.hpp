// The DataSync controller's decisions as pure functions (docs/datasync.md): reading the policy
// ConfigMap, admission from the global FIFO queue, classifying a populate failure and deciding
// its retry, and planning which old versions' volumes to delete. No CAF, no I/O, no clock:
// time is an input, so the queue actor and the DataSync actors can be tested as transcripts.
//
// The inputs are small structs defined here rather than config/datasync types, so the queue
// actor can feed them from whatever its cache holds (and this file has no heavy includes).
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace tidesync::datasync {

using sys_seconds = std::chrono::sys_seconds;

// ---------------------------------------------------------------------------------------------
// Policy (the ConfigMap `tidesync-policy`)

inline constexpr std::string_view k_policy_config_map = "tidesync-policy";
inline constexpr std::string_view k_key_concurrency = "concurrency";
inline constexpr std::string_view k_key_retry_limit = "retryLimit";
inline constexpr std::string_view k_key_retry_backoff = "retryBackoffDuration";
inline constexpr std::string_view k_key_retry_backoff_limit = "retryBackoffLimit";
inline constexpr std::string_view k_key_version_retention = "versionRetention";
// Every key parse_policy reads; any other key is reported as unknown (docs/policy-configmap.md
// lists these, and tests/unit/docs_reference_test.cpp keeps the two in step).
inline constexpr std::string_view k_policy_keys[] = {k_key_concurrency, k_key_retry_limit,
                                                     k_key_retry_backoff, k_key_retry_backoff_limit,
                                                     k_key_version_retention};

// Accepted ranges (inclusive). Durations are whole seconds; longer than a week is almost
// certainly a typo ("5h" meant as "5m" is fine, "500h" is not) and would park a retry forever.
inline constexpr int k_concurrency_min = 1;
inline constexpr int k_concurrency_max = 1000;
inline constexpr int k_retry_limit_max = 100;
inline constexpr int k_version_retention_max = 1000;
inline constexpr std::chrono::seconds k_duration_min{1};
inline constexpr std::chrono::seconds k_duration_max{7 * 24 * 3600};

struct datasync_policy {
  int concurrency = 4;                      // DataSyncs in phase Syncing at once, cluster-wide
  int retry_limit = 2;                      // retries after the first attempt; then Failed
  std::chrono::seconds retry_backoff{300};  // the first wait, doubled per retry
  std::chrono::seconds retry_backoff_limit{3600};  // the cap of that doubling
  int version_retention = 0;  // newest N Succeeded versions per workspace; 0 keeps all

  friend bool operator==(const datasync_policy&, const datasync_policy&) = default;
};

// One thing wrong with the ConfigMap. The controller reports each as a Warning Event on the
// ConfigMap and a log line (once per change of the ConfigMap).
struct policy_problem {
  enum class kind {
    invalid,      // the value was not used; `used` is what is used instead
    unknown_key,  // the key means nothing to tidesync and was ignored (`used` is empty)
  };
  kind what = kind::invalid;
  std::string key;
  std::string value;    // as written
  std::string used;     // the value in effect instead, rendered like a ConfigMap value ("5m")
  std::string message;  // one sentence for people: key, value, why, what is used, what to write

  friend bool operator==(const policy_problem&, const policy_problem&) = default;
};

struct policy_result {
  datasync_policy policy;
  std::vector<policy_problem> problems;  // in key order, the backoff-limit check last
  bool from_defaults = false;            // no ConfigMap: every value is the default
};

// Reads the ConfigMap's `data`. nullptr (no ConfigMap) gives the defaults and no problem.
// Every key is read on its own: an invalid value falls back to that key's default and the
// others still apply. Integers are decimal (surrounding white space is ignored, YAML block
// scalars add a newline); durations are Go durations ("90s", "5m", "1h30m"). A
// retryBackoffLimit below retryBackoffDuration is a problem and the limit becomes the duration.
policy_result parse_policy(const std::map<std::string, std::string>* configmap_data);

// ---------------------------------------------------------------------------------------------
// Admission (the global FIFO)

// A DataSync in phase Queued, as the cache shows it.
struct queued_item {
  std::string ns;
  std::string name;
  std::string uid;
  sys_seconds created;                    // metadata.creationTimestamp
  std::optional<sys_seconds> not_before;  // status.nextRetryTime while waiting out a backoff
  // New or changed, its Queued status not written yet: it holds its place in the FIFO (nothing
  // younger starts before it, so a burst of creations starts in creation order) and has a
  // position, but does not start until it is written.
  bool pending = false;
};

struct admission {
  // Indexes into the input, in FIFO order: write phase Syncing for these (and read it back)
  // before creating anything.
  std::vector<std::size_t> start;
  // queue_key(ns, name) → 1-based position of every item not started, in FIFO order (1 is
  // next). Items waiting out a backoff keep their place and have a position too.
  std::map<std::string, int> positions;
  // When a free slot is left for an item that waits out a backoff: the earliest nextRetryTime
  // among them (run admission again then). nullopt when no slot is free (a slot frees only on
  // a DataSync change, which runs admission anyway) or nothing waits.
  std::optional<sys_seconds> wake_at;
  int free_slots = 0;  // slots left after `start` (0 when syncing >= concurrency)
};

// The key of `positions`: "<namespace>/<name>".
std::string queue_key(std::string_view ns, std::string_view name);

// Orders the queue by creation time, then namespace, then name (then uid, for two objects of
// one name that both exist in a stale cache), so every controller process computes the same
// order. Starts the oldest items not waiting out a backoff (not_before > now), up to
// max(0, concurrency - syncing) of them. An item in backoff is skipped, not waited for: a
// later item may start ahead of it, so a retrying DataSync does not hold a slot idle; it keeps
// its place and starts at the first admission after its nextRetryTime with a free slot.
// A pending item stops admission at its place (see queued_item::pending).
// A lowered concurrency never stops running syncs: nothing starts until syncing < concurrency.
// O(n log n); deterministic (independent of the input order).
admission admit(const std::vector<queued_item>& queue, int syncing, const datasync_policy& policy,
                sys_seconds now);

// ---------------------------------------------------------------------------------------------
// Failures and retries

// Exit codes of `tidesync agent populate` (the Job's container). Any other code, and a
// container killed by a signal (128 + n) or without an exit code (k_exit_unknown), is transient.
inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_missing_source = 3;     // 404 / NoSuchKey / missing PVC path
inline constexpr int k_exit_checksum_mismatch = 4;  // the data's sha256 is not spec checksum
inline constexpr int k_exit_unauthorized = 5;       // 401 / 403
inline constexpr int k_exit_unknown = -1;           // no terminated container to read

enum class failure_kind {
  missing_source,     // terminal: Failed at once
  checksum_mismatch,  // retried up to retryLimit
  unauthorized,       // terminal: a wrong Secret does not heal by itself
  transient,          // connection, 5xx, timeout, Job deadline, eviction: retried
};

// "MissingSource", "ChecksumMismatch", "Unauthorized", "Transient".
std::string_view to_string(failure_kind k);

// Classifies a failed populate. The exit code wins when it is one of the agent's codes above.
// Otherwise `reason_text` decides: the agent's own reason word ("MissingSource",
// "ChecksumMismatch", "Unauthorized", from its termination message, for when the controller
// only sees that) gives that kind; anything else — Job/Pod reasons such as
// "DeadlineExceeded", "BackoffLimitExceeded", "Evicted", "OOMKilled", or nothing — is transient.
failure_kind classify(int exit_code, std::string_view reason_text);

struct retry_decision {
  bool retry = false;
  std::optional<sys_seconds> next_retry_time;  // set when retry
  std::chrono::seconds wait{0};                // next_retry_time - now when retry
  // CamelCase, for the condition and the Event: "Retrying"; or why it Failed:
  // "MissingSource", "Unauthorized" (terminal kinds) or "RetryLimitExceeded" (a transient
  // failure or a checksum mismatch after retryLimit retries; the message names the kind).
  std::string reason;
  std::string message;  // e.g. "checksum mismatch; retry 2 of 2 at 2026-...Z (in 10m)"
};

// The wait before retry number `retry_count + 1`: min(retry_backoff × 2^retry_count,
// retry_backoff_limit). Overflow-safe for any count (doubling stops at the cap).
std::chrono::seconds backoff_for(int retry_count, const datasync_policy& policy);

// `retry_count` is status.retryCount: retries already made before this failure. Terminal
// kinds never retry; otherwise retry while retry_count < retry_limit, at now + backoff_for().
retry_decision decide_retry(failure_kind kind, int retry_count, const datasync_policy& policy,
                            sys_seconds now);

// ---------------------------------------------------------------------------------------------
// Pruning

// A DataSync of one workspace (label tidesync.io/workspace).
struct version_item {
  std::string name;
  std::string version;  // spec.version (informative; order is by creation time)
  sys_seconds created;
  bool succeeded = false;           // phase Succeeded
  std::vector<std::string> claims;  // its PVCs that still exist
};

struct prune_plan {
  std::vector<std::string> delete_claims;   // PVCs to delete now (oldest DataSync first)
  std::vector<std::string> kept_for_mount;  // would be deleted, but a Pod mounts them
  // DataSyncs past retention whose every claim is gone or in delete_claims: set Pruned=True.
  std::vector<std::string> pruned_datasyncs;
};

// Keeps the newest `retention` Succeeded DataSyncs (by creation time; for equal times the
// greater name counts as newer). Only older Succeeded ones are candidates; their claims are
// deleted unless a Pod mounts them (`mounted_claims`: every claimName of every Pod in the
// namespace) or a kept DataSync lists the same claim.
// A DataSync not Succeeded (Queued, Syncing, Failed) is never a candidate and does not count
// toward N: a newer version that failed or is still downloading must not make the older,
// working one disappear, and a Failed one's volumes hold the partial data a fixed spec resumes
// from (deleting those is the user's call). retention <= 0 keeps everything.
prune_plan plan_prune(const std::vector<version_item>& items,
                      const std::set<std::string>& mounted_claims, int retention);

}  // namespace tidesync::datasync
