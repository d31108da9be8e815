#include "runtime/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace tidesync {

backoff::backoff(backoff_options options)
    : options_(options), rng_(options.seed != 0 ? options.seed : std::random_device{}()) {}

std::chrono::milliseconds backoff::next(clock::time_point now) {
  if (last_failure_ && now - *last_failure_ > options_.reset_after) attempts_ = 0;
  last_failure_ = now;
  const double initial = static_cast<double>(options_.initial.count());
  const double cap = static_cast<double>(options_.max.count());
  // Clamp the exponent so pow() cannot overflow after many failures.
  const int exponent = std::min(attempts_, 64);
  double base = std::min(initial * std::pow(std::max(options_.factor, 1.0), exponent), cap);
  ++attempts_;
  const double j = std::clamp(options_.jitter, 0.0, 1.0);
  if (j > 0) {
    std::uniform_real_distribution<double> dist(1.0 - j, 1.0 + j);
    base *= dist(rng_);
  }
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(base)));
}

void backoff::reset() {
  attempts_ = 0;
  last_failure_.reset();
}

}  // namespace tidesync
