// Plain data exchanged with the lock manager: the answer to acquire/await and its options.
//
// No CAF here; the `inspect` functions live in actors/type_ids.hpp. Rules: docs/locks.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "actors/lock_logic.hpp"

namespace tidesync::actors {

// The lock manager's answer to `acquire` and `await_lock`.
struct lock_reply {
  enum class kind : uint8_t {
    granted,   // every path of the set is held by the caller
    waiting,   // queued behind `blocker` (for a WaitingForLock condition)
    rejected,  // bad paths, a different set while holding/waiting, or withdrawn; see message
  };
  kind what = kind::granted;
  std::string blocker;           // waiting: the holder in the way ("namespace/name/uid")
  bool blocker_waiting = false;  // waiting: the blocker is itself an earlier waiter
  std::string path;              // waiting: the canonical path in dispute
  uint64_t position = 0;         // waiting: 1-based among all waiters
  std::string message;           // rejected: why, for status.error

  friend bool operator==(const lock_reply&, const lock_reply&) = default;
};

// "granted", "waiting", "rejected" (also used by CAF to print).
inline std::string to_string(lock_reply::kind k) {
  switch (k) {
    case lock_reply::kind::granted:
      return "granted";
    case lock_reply::kind::waiting:
      return "waiting";
    case lock_reply::kind::rejected:
      return "rejected";
  }
  return "unknown";
}

struct lock_options {
  // A gone holder's lock is reclaimed this long after its last renewal (leaseDurationSeconds).
  std::chrono::seconds ttl{600};
  // How often held locks are renewed and stale ones reclaimed; zero means ttl / 3.
  std::chrono::milliseconds renew_interval{0};
  // The wall-clock time at spawn (Lease times are wall-clock); unset means system_clock::now().
  // Later times are this plus the actor clock's elapsed time, so tests under CAF's test
  // coordinator get deterministic Lease times.
  std::optional<lock_table::time_point> wall_start;
  // The controller's namespace, where the Leases live.
  std::string lease_namespace = "tidesync-system";
};

}  // namespace tidesync::actors
