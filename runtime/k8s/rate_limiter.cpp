#include "runtime/k8s/rate_limiter.hpp"

#include <algorithm>

namespace tidesync::k8s {

token_bucket::token_bucket(double qps, int burst, clock::time_point now)
    : qps_(qps), burst_(std::max(burst, 1)), tokens_(burst_), last_(now) {}

void token_bucket::refill(clock::time_point now) {
  if (now <= last_) return;  // time never runs backwards for the bucket
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + elapsed * qps_);
  last_ = now;
}

token_bucket::clock::time_point token_bucket::reserve(clock::time_point now) {
  if (qps_ <= 0) return now;
  refill(now);
  tokens_ -= 1.0;
  if (tokens_ >= 0) return now;
  // In debt: this reservation may go once the refill has paid the debt back.
  const auto wait = std::chrono::duration<double>(-tokens_ / qps_);
  return std::max(now, last_) + std::chrono::duration_cast<clock::duration>(wait);
}

double token_bucket::tokens(clock::time_point now) const {
  if (qps_ <= 0) return burst_;
  token_bucket copy = *this;
  copy.refill(now);
  return copy.tokens_;
}

}  // namespace tidesync::k8s
