// One bandwidth limit for the whole process (--bwlimit): every transfer takes its bytes from
// the same bucket, so the sum of all transfers stays under the rate however many run.
//
// Reservation model: the bucket holds up to `burst` bytes of credit; a take that exceeds the
// credit reserves the bytes anyway and is told how long to wait, so concurrent takers queue
// fairly in arrival order and large takes are never starved. `reserve` is pure (time is
// passed in) and unit-tested; `take` sleeps for the answer — sleeping is the limit itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>

#include "runtime/error.hpp"

namespace tidesync::transfer {

class token_bucket {
 public:
  using clock = std::chrono::steady_clock;

  // `rate` bytes per second (> 0); `burst` bytes of credit (default: one second of rate).
  explicit token_bucket(double rate, uint64_t burst = 0);

  // Reserves `bytes` at time `now`; returns how long the caller must wait before sending.
  std::chrono::nanoseconds reserve(clock::time_point now, uint64_t bytes);
  // reserve(clock::now()) and sleep for it.
  void take(uint64_t bytes);

  [[nodiscard]] double rate() const { return rate_; }

 private:
  std::mutex mu_;
  double rate_;
  double burst_;
  // The time at which the bucket is back to empty debt: credit at `now` is
  // min(burst, (now - free_at_) * rate).
  std::optional<clock::time_point> free_at_;
};

// Parses rclone's size/rate syntax (SizeSuffix): a number with an optional suffix B, K, M, G,
// T, P (binary multiples: 1K = 1024), case-insensitive, optional "i"/"iB" and trailing "/s"
// ("10M", "1.5G", "512k", "10MiB/s", "100B"). A bare number is KiB, as in rclone. "off" → 0.
// Errors name the text.
expected<uint64_t> parse_size(std::string_view text);

}  // namespace tidesync::transfer
