// The scheduler's decisions, as a pure class: which key runs next, what a finished run leads
// to, when a delayed key is due. No CAF, no clocks (time is a parameter), injectable
// randomness; the scheduler actor (actors/scheduler.hpp) wraps it. Rules: docs/scheduler.md.
//
// Costs: enqueue, admit (per key), done and forget are O(log n); position() is O(n),
// positions() O(n). A namespace at its limit never makes admission scan past its keys.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "actors/scheduler_types.hpp"

namespace tidesync::actors {

class scheduler_logic {
 public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;
  // Returns a uniform number in [0, 1). Used only for backoff jitter.
  using random_source = std::function<double()>;

  // "Run `key` now": the `attempt`-th consecutive try (1 + transient failures so far);
  // `waited` is how long it sat in the queue (workqueue_queue_duration_seconds).
  struct run_order {
    std::string key;
    uint32_t attempt = 1;
    clock::duration waited{0};
  };

  // What done() did with the key.
  enum class done_result {
    idle,     // finished; no entry left
    queued,   // back in the queue at once (dirty, or requeue_after <= 0)
    delayed,  // waiting for a requeue-after or a retry backoff
    gave_up,  // retry limit exhausted: report the key failed (it may be queued again if
              // it was dirty)
    dropped,  // the key was forgotten while it ran; result ignored
    unknown,  // the key was not running: a stale or duplicate done, ignored
  };

  // `random` defaults to a randomly seeded Mersenne Twister.
  explicit scheduler_logic(scheduler_options options = {}, random_source random = {});

  scheduler_logic(const scheduler_logic&) = delete;
  scheduler_logic& operator=(const scheduler_logic&) = delete;

  // Asks for `key` to run (rules 1-3, 8). Returns true if this changed anything (a new queue
  // entry, a running key newly dirty, a delayed key moved up); false for a collapsed duplicate.
  bool enqueue(std::string_view key, time_point now);

  // Drops `key` (rule 9). Returns false if the scheduler knew nothing of it.
  bool forget(std::string_view key);

  // Replaces the limits (rules 4-5). Call admit() afterwards: raising a limit admits at once.
  void set_limits(scheduler_limits limits);

  // A run of `key` finished (rule 6).
  done_result done(std::string_view key, const reconcile_outcome& outcome, time_point now);

  // Moves every delayed key due at or before `now` to the back of the queue, earliest due
  // first. Returns how many moved.
  std::size_t advance(time_point now);

  // Admits queued keys in arrival order while the limits allow; they are running after this.
  std::vector<run_order> admit(time_point now);

  // Earliest due time of a delayed key, if any (when the caller should call advance()).
  [[nodiscard]] std::optional<time_point> next_due() const;

  // 1-based queue position of `key`, if queued.
  [[nodiscard]] std::optional<uint64_t> position(std::string_view key) const;
  // Positions of every queued key.
  [[nodiscard]] std::map<std::string, uint64_t> positions() const;

  [[nodiscard]] scheduler_stats stats() const;
  [[nodiscard]] const scheduler_limits& limits() const { return options_.limits; }
  [[nodiscard]] bool is_queued(std::string_view key) const;
  [[nodiscard]] bool is_running(std::string_view key) const;
  [[nodiscard]] bool is_delayed(std::string_view key) const;
  // Consecutive transient failures recorded for `key` (0 if none or unknown).
  [[nodiscard]] uint32_t failures(std::string_view key) const;
  // Keys running in `ns` ("" for cluster-scoped keys).
  [[nodiscard]] uint32_t running_in(std::string_view ns) const;

  // The delay before retry number `failures` (>= 1), drawing one random number.
  clock::duration backoff(uint32_t failures);

  // Cross-checks every internal index; returns "" or a description of the first violation.
  // For tests: O(n log n).
  [[nodiscard]] std::string check_invariants() const;

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  enum class state : uint8_t { queued, running, delayed };

  struct ns_state;

  struct entry {
    std::string key;
    ns_state* ns = nullptr;
    state st = state::queued;
    bool dirty = false;      // running: an enqueue arrived meanwhile
    bool forgotten = false;  // running: forget arrived meanwhile
    uint32_t failures = 0;   // consecutive transient failures
    uint64_t seq = 0;        // queued: arrival order; delayed: tie-break among equal due times
    time_point since{};      // queued: when it entered the queue
    time_point due{};        // delayed: when it becomes queued
  };

  struct ns_state {
    std::string name;
    std::map<uint64_t, entry*> queue;  // this namespace's queued keys, by seq
    uint32_t running = 0;
    uint32_t members = 0;  // entries in any state; the namespace is erased at 0
    std::optional<uint32_t> limit;
    std::optional<uint64_t> ready_seq;  // set while listed in ready_
  };

  ns_state& namespace_of(std::string_view key);
  void release_namespace(ns_state& ns);
  void push_back(entry& e, time_point now);
  void unqueue(entry& e);
  void undelay(entry& e);
  void delay(entry& e, time_point due);
  void refresh_ready(ns_state& ns);
  void erase(entry& e);
  [[nodiscard]] bool has_room(const ns_state& ns) const {
    return !ns.limit || ns.running < *ns.limit;
  }

  scheduler_options options_;
  random_source random_;

  std::unordered_map<std::string, entry, string_hash, std::equal_to<>> entries_;
  std::unordered_map<std::string, ns_state, string_hash, std::equal_to<>> namespaces_;
  std::map<uint64_t, entry*> queue_;  // every queued key, by seq = arrival order
  // (head seq, namespace) of every namespace with queued keys and room under its limit: the
  // smallest element is the next key to admit.
  std::set<std::pair<uint64_t, ns_state*>> ready_;
  std::map<std::pair<time_point, uint64_t>, entry*> delayed_;
  uint64_t next_seq_ = 0;
  uint32_t running_ = 0;
  scheduler_stats counters_;  // the counter fields only; gauges are computed
};

// client-go's in-flight workqueue gauges, from the start times of the runs in progress.
struct in_flight_work {
  double unfinished_seconds = 0;       // workqueue_unfinished_work_seconds: the sum of their ages
  double longest_running_seconds = 0;  // workqueue_longest_running_processor_seconds: the oldest
};

// Measures the runs that started at `running_since` (key -> start) as of `now`, in seconds,
// as client-go's updateUnfinishedWork does. A start after `now` counts as age 0; no run gives
// zeros.
in_flight_work measure_in_flight(
    const std::unordered_map<std::string, scheduler_logic::time_point>& running_since,
    scheduler_logic::time_point now);

}  // namespace tidesync::actors
