// The coordination.k8s.io/v1 Lease that mirrors one held bucket lock: building it, reading it
// back, its name, and the staleness decision used by restart recovery. Pure: no CAF, no
// client; the lock manager's lease_sink (actors/lock_manager.hpp) is where these documents
// will be written to the API server. Rules: docs/locks.md, "One Lease per held lock".
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "actors/lock_logic.hpp"
#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::actors {

// Label on every lock Lease (value "true"): list them with `-l tidesync.io/lock=true`.
inline constexpr std::string_view lease_lock_label = "tidesync.io/lock";
// Annotation: the canonical bucket path this Lease locks.
inline constexpr std::string_view lease_path_annotation = "tidesync.io/lock-path";
// Annotation: JSON array of the canonical paths of the holder's whole set (all or nothing).
inline constexpr std::string_view lease_set_annotation = "tidesync.io/lock-set";

struct lease_record {
  std::string name;
  std::string lease_namespace;   // the controller's namespace
  std::string holder;            // holderIdentity: "namespace/name/uid" of the BucketSync
  std::string path;              // canonical path of this lock
  std::vector<std::string> set;  // canonical paths of the holder's set, sorted (contains path)
  lock_table::time_point acquire_time{};
  lock_table::time_point renew_time{};
  std::chrono::seconds duration{600};  // leaseDurationSeconds = the TTL
  std::string resource_version;        // as read; written back on update when not empty

  friend bool operator==(const lease_record&, const lease_record&) = default;
};

// "tidesync-lock-<slug>-<12 hex digits of FNV-1a 64 of the canonical path>", at most 63
// characters, a DNS-1123 label.
std::string lease_name(std::string_view canonical_path);

// The Lease document for `r` (name, namespace, labels, annotations, spec). `r.name` empty
// means lease_name(r.path).
json::value build_lease(const lease_record& r);

// Reads a Lease written by build_lease (or edited by a person). Errors (parse_error) name
// the missing or malformed field; a Lease without the path annotation is not a lock Lease.
// Paths are normalised again, so the set is canonical and sorted.
expected<lease_record> parse_lease(const json::value& lease);

// Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits,
// "2024-01-15T02:00:00.123456Z". Sub-microsecond parts are truncated.
std::string format_micro_time(lock_table::time_point t);
// Accepts RFC 3339 with or without a fraction (up to 9 digits) and with `Z` or an offset.
expected<lock_table::time_point> parse_micro_time(std::string_view s);

// True when `renewed` is at least `ttl` before `now`.
bool lease_stale(lock_table::time_point renewed, lock_table::time_point now,
                 std::chrono::seconds ttl);

// What restart recovery does with a Lease it finds (docs/locks.md, "Renewal, TTL and
// recovery").
enum class lease_verdict {
  adopt,    // the holder is alive: adopt its set and renew from now on
  hold,     // the holder is gone but the Lease is fresh: adopt, do not renew, reclaim when stale
  reclaim,  // the holder is gone and the Lease is stale: delete it, the lock is free
};
lease_verdict judge_lease(const lease_record& r, lock_table::time_point now,
                          std::chrono::seconds ttl, bool holder_alive);

}  // namespace tidesync::actors
