// The --bwlimit token bucket (pure reservation arithmetic) and rclone's size syntax.
#include <gtest/gtest.h>

#include "runtime/transfer/token_bucket.hpp"

namespace {

using namespace tidesync::transfer;
using namespace std::chrono_literals;
using clock_type = token_bucket::clock;

TEST(token_bucket, a_full_bucket_lets_a_burst_through_then_paces) {
  token_bucket b(1000.0);  // 1000 B/s, burst one second
  const auto t0 = clock_type::time_point(100s);
  EXPECT_EQ(b.reserve(t0, 1000), 0ns) << "the first second's worth passes at once";
  EXPECT_EQ(b.reserve(t0, 500), 500ms) << "then every byte waits its turn";
  EXPECT_EQ(b.reserve(t0, 500), 1000ms) << "takers queue in arrival order";
}

TEST(token_bucket, idle_time_refills_up_to_the_burst_only) {
  token_bucket b(1000.0, 2000);
  const auto t0 = clock_type::time_point(100s);
  EXPECT_EQ(b.reserve(t0, 2000), 0ns);
  // An hour idle refills 2000 bytes, not 3.6 MB.
  const auto t1 = t0 + 1h;
  EXPECT_EQ(b.reserve(t1, 2000), 0ns);
  EXPECT_EQ(b.reserve(t1, 1000), 1s);
}

TEST(token_bucket, the_long_run_rate_holds_for_many_small_takes) {
  token_bucket b(1'000'000.0, 1);  // 1 MB/s, no burst to speak of
  auto now = clock_type::time_point(100s);
  std::chrono::nanoseconds waited{0};
  for (int i = 0; i < 1000; ++i) {
    auto w = b.reserve(now, 10'000);  // 10 MB in total
    waited = w;
  }
  // The last of 10 MB at 1 MB/s is scheduled ~10 s out.
  EXPECT_NEAR(std::chrono::duration<double>(waited).count(), 10.0, 0.01);
}

TEST(parse_size, rclone_suffixes_and_bare_kib) {
  EXPECT_EQ(*parse_size("10M"), 10ull << 20);
  EXPECT_EQ(*parse_size("10MiB/s"), 10ull << 20);
  EXPECT_EQ(*parse_size("1.5G"), 3ull << 29);
  EXPECT_EQ(*parse_size("512k"), 512ull << 10);
  EXPECT_EQ(*parse_size("512"), 512ull << 10) << "a bare number is KiB, as in rclone";
  EXPECT_EQ(*parse_size("100B"), 100u);
  EXPECT_EQ(*parse_size("off"), 0u);
  EXPECT_EQ(*parse_size("2T"), 2ull << 40);
}

TEST(parse_size, bad_input_names_the_text) {
  for (const char* bad : {"", "ten", "10X", "-1M", "1e400", "10 M", "M"}) {
    auto r = parse_size(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("is not a size"), std::string::npos) << bad;
  }
}

}  // namespace
