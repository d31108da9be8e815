// Bucket locks as a pure class: normalising rclone paths, deciding conflicts, and the lock
// table (all-or-nothing sets, FIFO among overlapping waiters, adoption from Leases, TTL
// reclaim). No CAF, no clocks (time is a parameter); the lock manager actor
// (actors/lock_manager.hpp) wraps it. Rules: docs/locks.md.
//
// Costs (H held paths, W waiters, P paths per holder, d path depth): a conflict check against
// held locks is O(P·d·log H) plus the conflicting entries found; a request also compares with
// every earlier waiter, O(W·P²); a release rescans the waiters, O(W·(W·P² + P·d·log H)).
// Waiters are few in practice (one per BucketSync blocked on a busy bucket).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/error.hpp"

namespace tidesync::actors {

// A normalised rclone location: remote (lower case, "" for the local file system) and path
// segments (the first, the bucket, lower case; the rest as written).
struct bucket_path {
  std::string remote;
  std::vector<std::string> segments;

  // "remote:seg/seg", "remote:" for a whole remote, "seg/seg" without a remote.
  [[nodiscard]] std::string canonical() const;

  friend bool operator==(const bucket_path&, const bucket_path&) = default;
  // Orders by remote, then segment by segment: the fixed global order of a holder's set.
  friend bool operator<(const bucket_path& a, const bucket_path& b);
};

// Parses and normalises `[remote:]path` (docs/locks.md, "What a bucket is"). Errors
// (invalid_argument) say what is wrong: empty input, `..`, an on-the-fly backend, a bad
// remote name, control characters.
expected<bucket_path> normalize(std::string_view remote_path);

// Normalises every entry, then sorts and removes duplicates. An empty list is an error.
expected<std::vector<bucket_path>> normalize_set(const std::vector<std::string>& remote_paths);

// Same remote and the segments of one are a prefix of the other's.
bool conflicts(const bucket_path& a, const bucket_path& b);

class lock_table {
 public:
  using clock = std::chrono::system_clock;  // Lease times are wall-clock times
  using time_point = clock::time_point;
  // Whether a holder ("namespace/name/uid") still exists and is not Finished.
  using alive_fn = std::function<bool(std::string_view holder)>;

  struct request_result {
    enum class kind : uint8_t {
      granted,   // the holder holds every path it asked for
      waiting,   // queued; `blocker` is in the way
      rejected,  // the holder holds a different set (release first), or the set is empty
    };
    kind what = kind::granted;
    // waiting: the holder of a conflicting lock, or (blocker_waiting) the earliest earlier
    // waiter it queues behind; `path` is the canonical path in dispute.
    std::string blocker;
    bool blocker_waiting = false;
    std::string path;
    uint64_t position = 0;  // waiting: 1-based among all waiters
    std::string message;    // rejected: why
  };

  // Holders reclaimed by reclaim_stale() and the waiters that were granted as a result.
  struct reclaim_result {
    std::vector<std::string> reclaimed;
    std::vector<std::string> dropped_waiters;
    std::vector<std::string> granted;
  };

  lock_table() = default;
  lock_table(const lock_table&) = delete;
  lock_table& operator=(const lock_table&) = delete;

  // Asks for `paths` (all or nothing), rules 1-2 of docs/locks.md. `paths` need not be
  // sorted or unique. Asking again with the same set is idempotent (and counts as a renewal
  // of a waiter's request); a different set while holding or waiting is rejected.
  request_result request(const std::string& holder, std::vector<bucket_path> paths, time_point now);

  // Drops the holder's locks or its waiting entry. Returns the holders granted as a result
  // (acquired at `now`), in FIFO order. Unknown holders are ignored.
  std::vector<std::string> release(std::string_view holder, time_point now);

  // Installs `paths` as held by `holder` (restart recovery from Leases), merged with what it
  // already holds. Fails (conflict) if a path conflicts with another holder's lock, and
  // (invalid_argument) for an empty set or a holder that is waiting. `acquired` defaults to
  // `renewed`.
  expected<void> adopt(const std::string& holder, std::vector<bucket_path> paths,
                       time_point renewed, std::optional<time_point> acquired = {});

  // Moves the holder's renew time to `now` (held) or its request time (waiting). False if
  // the table knows nothing of it.
  bool renew(std::string_view holder, time_point now);

  // Reclaims every lock whose holder is not alive and was not renewed for `ttl`, and drops
  // every waiter that is not alive and has not asked again for `ttl`; grants what that frees.
  reclaim_result reclaim_stale(time_point now, std::chrono::seconds ttl, const alive_fn& alive);

  // The holder of a held lock conflicting with `path` (an ancestor's or the same path's
  // first, then a descendant's).
  [[nodiscard]] std::optional<std::string> holder_of(const bucket_path& path) const;
  // 1-based position among the waiters, if waiting.
  [[nodiscard]] std::optional<uint64_t> waiting_position(std::string_view holder) const;
  [[nodiscard]] bool holds(std::string_view holder) const;
  [[nodiscard]] bool is_waiting(std::string_view holder) const;
  // The sorted set held or waited for (empty if unknown).
  [[nodiscard]] std::vector<bucket_path> paths_of(std::string_view holder) const;
  [[nodiscard]] std::optional<time_point> acquired_at(std::string_view holder) const;
  [[nodiscard]] std::optional<time_point> renewed_at(std::string_view holder) const;
  // Holders (any order) and waiters (FIFO order).
  [[nodiscard]] std::vector<std::string> holders() const;
  [[nodiscard]] std::vector<std::string> waiters() const;
  [[nodiscard]] std::size_t held_paths() const { return index_.size(); }

  // Cross-checks the indexes and the safety/liveness rules: no two holders on conflicting
  // paths, and every waiter is blocked (by a conflicting lock or an earlier overlapping
  // waiter). Returns "" or the first violation. For tests: O(W²·P² + H²·P²).
  [[nodiscard]] std::string check_invariants() const;

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct held_set {
    std::vector<bucket_path> paths;
    time_point acquired{};
    time_point renewed{};
  };
  struct waiter {
    std::string holder;
    std::vector<bucket_path> paths;
    time_point asked{};  // last request (renewed by asking again)
  };

  // A held lock of someone other than `holder` that conflicts with `p`, as (key, holder).
  [[nodiscard]] const std::pair<const std::string, std::string>* held_conflict(
      const bucket_path& p, std::string_view holder) const;
  // The earliest waiter before `seq` whose paths overlap `paths`.
  [[nodiscard]] const waiter* earlier_overlap(const std::vector<bucket_path>& paths, uint64_t seq,
                                              std::string* path) const;
  void grant(const std::string& holder, std::vector<bucket_path> paths, time_point acquired,
             time_point renewed);
  void drop_held(std::string_view holder);
  std::vector<std::string> grant_waiters(time_point now);
  [[nodiscard]] uint64_t position_of(uint64_t seq) const;

  std::unordered_map<std::string, held_set, string_hash, std::equal_to<>> held_;
  // "remote:seg/seg" of every held path -> holder. Keys with a common prefix are contiguous,
  // so the descendants of a path are one range.
  std::map<std::string, std::string> index_;
  std::map<uint64_t, waiter> waiters_;  // by arrival
  std::unordered_map<std::string, uint64_t, string_hash, std::equal_to<>> waiter_seq_;
  uint64_t next_seq_ = 0;
};

}  // namespace tidesync::actors
