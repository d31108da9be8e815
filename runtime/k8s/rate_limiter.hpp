// Client-side rate limit for API requests: a token bucket (QPS refill, burst capacity), as
// client-go's default limiter (20 QPS, burst 30).
//
// It hands out *reservations* instead of blocking: `reserve(now)` takes a token (possibly
// going into debt) and returns the time at which the caller may send. Requests that arrive
// while the bucket is empty get increasing start times, so they leave in arrival order, and no
// thread ever waits: the client schedules the send on its event loop at that time.
// Pure (time is an argument); thread-safety is the caller's job.
#pragma once

#include <chrono>

namespace tidesync::k8s {

class token_bucket {
 public:
  using clock = std::chrono::steady_clock;

  // `qps` <= 0 disables the limit (every reservation is immediate). `burst` is at least 1.
  token_bucket(double qps, int burst, clock::time_point now = clock::now());

  // Takes one token and returns when the request may be sent (`now` when a token was
  // available). Reservations are served in call order.
  clock::time_point reserve(clock::time_point now);

  // Tokens available at `now` (negative while requests are queued). For tests and metrics.
  [[nodiscard]] double tokens(clock::time_point now) const;

 private:
  void refill(clock::time_point now);

  double qps_;
  double burst_;
  double tokens_;
  clock::time_point last_;
};

}  // namespace tidesync::k8s
