#include <gtest/gtest.h>

#include "runtime/k8s/rate_limiter.hpp"

using namespace std::chrono_literals;
using tidesync::k8s::token_bucket;

TEST(TokenBucket, BurstIsImmediateThenPacedAtQps) {
  const auto t0 = token_bucket::clock::time_point{} + 1h;
  token_bucket b(10, 3, t0);  // 10 QPS: one token per 100 ms
  EXPECT_EQ(b.reserve(t0), t0);
  EXPECT_EQ(b.reserve(t0), t0);
  EXPECT_EQ(b.reserve(t0), t0);
  // The bucket is empty: later requests are scheduled 100 ms apart, in call order.
  auto r4 = b.reserve(t0);
  auto r5 = b.reserve(t0);
  auto r6 = b.reserve(t0);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(r4 - t0), 100ms);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(r5 - t0), 200ms);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(r6 - t0), 300ms);
  EXPECT_LT(b.tokens(t0), -2.9);
}

TEST(TokenBucket, RefillsOverTimeUpToBurst) {
  const auto t0 = token_bucket::clock::time_point{} + 1h;
  token_bucket b(2, 4, t0);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(b.reserve(t0), t0);
  EXPECT_NEAR(b.tokens(t0), 0, 1e-9);
  EXPECT_NEAR(b.tokens(t0 + 1s), 2, 1e-9);
  EXPECT_NEAR(b.tokens(t0 + 1h), 4, 1e-9);  // never more than the burst
  const auto t1 = t0 + 1s;
  EXPECT_EQ(b.reserve(t1), t1);
  EXPECT_EQ(b.reserve(t1), t1);
  EXPECT_GT(b.reserve(t1), t1);
}

TEST(TokenBucket, ZeroQpsMeansUnlimited) {
  const auto t0 = token_bucket::clock::time_point{} + 1h;
  token_bucket b(0, 1, t0);
  for (int i = 0; i < 1000; ++i)
    EXPECT_EQ(b.reserve(t0), t0);
}

TEST(TokenBucket, DebtIsPaidBackBeforeNewBurst) {
  const auto t0 = token_bucket::clock::time_point{} + 1h;
  token_bucket b(1, 1, t0);
  EXPECT_EQ(b.reserve(t0), t0);
  EXPECT_EQ(b.reserve(t0), t0 + 1s);
  EXPECT_EQ(b.reserve(t0), t0 + 2s);
  // At t0+1s the second request goes; the third is still owed, so a new one waits behind it.
  EXPECT_EQ(b.reserve(t0 + 1s), t0 + 3s);
}
