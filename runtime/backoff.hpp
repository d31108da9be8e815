// Jittered exponential backoff, as client-go and kube-rs use for watch reconnects.
//
// Pure: the caller passes the current time, so tests run without sleeping, and the random
// source is seeded, so a test can pin the jitter.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>

namespace tidesync {

struct backoff_options {
  std::chrono::milliseconds initial{800};
  // Cap on the un-jittered delay; the jittered delay may exceed it by `jitter`.
  std::chrono::milliseconds max{30'000};
  double factor = 2.0;
  // Relative jitter: the delay is multiplied by a uniform factor in [1 - jitter, 1 + jitter].
  double jitter = 0.2;
  // A failure that comes more than this long after the previous one starts the sequence over:
  // the connection was healthy in between, so this is a new incident, not a continuing one.
  std::chrono::milliseconds reset_after{std::chrono::minutes(2)};
  // Seed of the jitter's random source; 0 picks a random seed.
  uint64_t seed = 0;
};

class backoff {
 public:
  using clock = std::chrono::steady_clock;

  explicit backoff(backoff_options options = {});

  // Records a failure at `now` and returns how long to wait before the next attempt.
  std::chrono::milliseconds next(clock::time_point now);
  std::chrono::milliseconds next() { return next(clock::now()); }

  // Starts over (call after a success that proves health, e.g. a watch that delivered events).
  void reset();

  // Failures counted in the current sequence.
  [[nodiscard]] int attempts() const { return attempts_; }
  [[nodiscard]] const backoff_options& options() const { return options_; }

 private:
  backoff_options options_;
  std::mt19937_64 rng_;
  int attempts_ = 0;
  std::optional<clock::time_point> last_failure_;
};

}  // namespace tidesync
