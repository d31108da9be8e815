#include <gtest/gtest.h>

#include "runtime/backoff.hpp"

using namespace std::chrono_literals;
using tidesync::backoff;
using tidesync::backoff_options;

namespace {

backoff_options no_jitter() {
  backoff_options o;
  o.jitter = 0;
  o.seed = 1;
  return o;
}

}  // namespace

TEST(Backoff, DoublesFromInitialUpToMax) {
  backoff b(no_jitter());
  auto t = backoff::clock::time_point{} + 1h;
  std::vector<int64_t> got;
  for (int i = 0; i < 8; ++i) {
    got.push_back(b.next(t).count());
    t += 1s;
  }
  EXPECT_EQ(got, (std::vector<int64_t>{800, 1600, 3200, 6400, 12800, 25600, 30000, 30000}));
  EXPECT_EQ(b.attempts(), 8);
}

TEST(Backoff, ResetStartsOver) {
  backoff b(no_jitter());
  auto t = backoff::clock::time_point{} + 1h;
  b.next(t);
  b.next(t);
  EXPECT_EQ(b.next(t), 3200ms);
  b.reset();
  EXPECT_EQ(b.next(t), 800ms);
}

TEST(Backoff, HealthyPeriodResetsTheSequence) {
  backoff b(no_jitter());
  auto t = backoff::clock::time_point{} + 1h;
  for (int i = 0; i < 5; ++i)
    b.next(t);
  // Within the healthy window: still growing.
  t += 119s;
  EXPECT_EQ(b.next(t), 25600ms);
  // More than 2 minutes after the last failure: a new incident.
  t += 121s;
  EXPECT_EQ(b.next(t), 800ms);
  EXPECT_EQ(b.attempts(), 1);
}

TEST(Backoff, JitterStaysInBandAndVaries) {
  backoff_options o;
  o.jitter = 0.25;
  o.seed = 42;
  auto t = backoff::clock::time_point{} + 1h;
  std::set<int64_t> seen;
  for (int i = 0; i < 50; ++i) {
    backoff b(o);
    o.seed++;
    auto d = b.next(t).count();
    EXPECT_GE(d, 600);
    EXPECT_LE(d, 1000);
    seen.insert(d);
  }
  EXPECT_GT(seen.size(), 10u);  // really random, not a constant
  // At the cap the jitter still applies around max.
  backoff b(o);
  for (int i = 0; i < 20; ++i) {
    auto d = b.next(t).count();
    EXPECT_LE(d, 37500);
  }
  auto d = b.next(t).count();
  EXPECT_GE(d, 22500);
}

TEST(Backoff, SameSeedSameSequence) {
  backoff_options o;
  o.seed = 7;
  backoff a(o), b(o);
  auto t = backoff::clock::time_point{} + 1h;
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(a.next(t), b.next(t));
}
