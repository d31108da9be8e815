// Plain data exchanged with the scheduler: reconcile outcomes, limits, options, statistics.
//
// No CAF here: the pure scheduler logic and its tests use these types directly; the
// `inspect` functions that let CAF carry them in messages live in actors/type_ids.hpp.
// Rules: docs/scheduler.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace tidesync::actors {

// What a reconcile of one key ended with (controller-runtime's Result + error, made explicit).
struct reconcile_outcome {
  enum class kind : uint8_t {
    success,          // done; idle until the next event
    requeue_after,    // done for now; run again after `after` (e.g. the next cron fire)
    transient_error,  // failed; retry with backoff up to the retry limit
    terminal_error,   // failed; retrying cannot help (bad spec); no retry
  };

  kind what = kind::success;
  std::chrono::milliseconds after{0};  // requeue_after only
  std::string message;                 // errors only: what went wrong, for status.error

  static reconcile_outcome success() { return {}; }
  static reconcile_outcome requeue(std::chrono::milliseconds d) {
    return {kind::requeue_after, d, {}};
  }
  static reconcile_outcome transient(std::string msg) {
    return {kind::transient_error, std::chrono::milliseconds{0}, std::move(msg)};
  }
  static reconcile_outcome terminal(std::string msg) {
    return {kind::terminal_error, std::chrono::milliseconds{0}, std::move(msg)};
  }

  friend bool operator==(const reconcile_outcome&, const reconcile_outcome&) = default;
};

// "success", "requeue_after", "transient_error", "terminal_error" (also used by CAF to print).
inline std::string to_string(reconcile_outcome::kind k) {
  switch (k) {
    case reconcile_outcome::kind::success:
      return "success";
    case reconcile_outcome::kind::requeue_after:
      return "requeue_after";
    case reconcile_outcome::kind::transient_error:
      return "transient_error";
    case reconcile_outcome::kind::terminal_error:
      return "terminal_error";
  }
  return "unknown";
}

// Concurrency limits. Replaced as a whole (the policy ConfigMap is re-read as a whole).
struct scheduler_limits {
  // Keys running at once in total. 0 pauses admission.
  uint32_t global = 4;
  // Optional per-namespace caps ("" is the namespace of cluster-scoped keys). A namespace
  // without an entry is bound by `global` only.
  std::map<std::string, uint32_t> per_namespace;

  friend bool operator==(const scheduler_limits&, const scheduler_limits&) = default;
};

// Retry policy for transient errors (docs/scheduler.md, rule 7).
struct retry_options {
  std::chrono::milliseconds base{1000};
  std::chrono::milliseconds max{5 * 60 * 1000};
  double factor = 2.0;
  // Relative jitter: the delay is multiplied by a uniform factor in [1 - jitter, 1 + jitter].
  double jitter = 0.2;
  // Retries after the first attempt; the (limit + 1)-th consecutive failure gives up.
  uint32_t limit = 8;
};

struct scheduler_options {
  scheduler_limits limits;
  retry_options retry;
};

// Gauges and counters, named after client-go's workqueue metrics where one exists.
struct scheduler_stats {
  uint64_t queued = 0;     // workqueue_depth
  uint64_t running = 0;    // keys admitted and not yet done
  uint64_t delayed = 0;    // waiting for a requeue-after or a retry backoff
  uint64_t adds = 0;       // workqueue_adds_total: enqueues that changed something
  uint64_t admitted = 0;   // runs started
  uint64_t retries = 0;    // workqueue_retries_total: backoff delays scheduled
  uint64_t gave_up = 0;    // keys reported failed after the retry limit
  uint64_t forgotten = 0;  // keys dropped by forget

  friend bool operator==(const scheduler_stats&, const scheduler_stats&) = default;
};

// The namespace part of a key: text before the first '/', or "" for cluster-scoped keys.
inline std::string_view key_namespace(std::string_view key) {
  auto slash = key.find('/');
  return slash == std::string_view::npos ? std::string_view{} : key.substr(0, slash);
}

}  // namespace tidesync::actors
