#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "runtime/archive/revision.hpp"

namespace tidesync::archive {
namespace {

using namespace std::chrono;

system_clock::time_point at(int y, unsigned mo, unsigned d, int h, int mi, int s) {
  return sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi} + seconds{s};
}

TEST(ArchiveRevision, SeedIsTheUtcSecond) {
  EXPECT_EQ(make_revision(at(2026, 2, 5, 10, 30, 0), ""), "2026-02-05T10-30-00Z");
  EXPECT_EQ(make_revision(at(2026, 2, 5, 10, 30, 0) + milliseconds{999}, ""),
            "2026-02-05T10-30-00Z");
  EXPECT_EQ(make_revision(at(2026, 2, 5, 10, 30, 1), "2026-02-05T10-30-00Z"),
            "2026-02-05T10-30-01Z");
  EXPECT_TRUE(valid_revision(make_revision(at(2026, 2, 5, 10, 30, 0), "")));
}

TEST(ArchiveRevision, SameSecondGetsIncreasingSuffixes) {
  auto t = at(2026, 2, 5, 10, 30, 0);
  std::string prev;
  std::vector<std::string> seen;
  for (int i = 0; i < 12000; ++i) {
    std::string next = make_revision(t, prev);
    ASSERT_GT(next, prev) << "call " << i;
    ASSERT_TRUE(valid_revision(next)) << next;
    seen.push_back(next);
    prev = next;
  }
  EXPECT_EQ(seen[0], "2026-02-05T10-30-00Z");
  EXPECT_EQ(seen[1], "2026-02-05T10-30-00Z-0001");
  EXPECT_EQ(seen[2], "2026-02-05T10-30-00Z-0002");
  EXPECT_EQ(seen[9999], "2026-02-05T10-30-00Z-9999");
  EXPECT_EQ(seen[10000], "2026-02-05T10-30-00Z-9999-0001");
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  // A later second sorts after every suffixed revision of the earlier one.
  std::string later = make_revision(t + seconds{1}, prev);
  EXPECT_EQ(later, "2026-02-05T10-30-01Z");
  EXPECT_GT(later, prev);
}

TEST(ArchiveRevision, ClockGoingBackStillIncreases) {
  std::string prev = "2026-02-05T10-30-00Z-0003";
  std::string next = make_revision(at(2026, 2, 5, 9, 0, 0), prev);
  EXPECT_EQ(next, "2026-02-05T10-30-00Z-0004");
  EXPECT_EQ(make_revision(at(2026, 2, 5, 9, 0, 0), "2026-02-05T10-30-00Z"),
            "2026-02-05T10-30-00Z-0001");
}

TEST(ArchiveRevision, AcrossManySecondsAndCalls) {
  auto t = at(2026, 12, 31, 23, 59, 58);
  std::string prev;
  for (int s = 0; s < 5; ++s) {
    for (int i = 0; i < 7; ++i) {
      std::string next = make_revision(t + seconds{s} + milliseconds{i * 100}, prev);
      ASSERT_GT(next, prev);
      prev = next;
    }
  }
  EXPECT_EQ(prev, "2027-01-01T00-00-02Z-0006");
}

TEST(ArchiveRevision, ValidRevision) {
  EXPECT_TRUE(valid_revision("2026-02-05T10-30-00Z"));
  EXPECT_TRUE(valid_revision("a.b_c-D9"));
  EXPECT_TRUE(valid_revision(std::string(128, 'a')));
  EXPECT_FALSE(valid_revision(std::string(129, 'a')));
  EXPECT_FALSE(valid_revision(""));
  EXPECT_FALSE(valid_revision("."));
  EXPECT_FALSE(valid_revision(".."));
  EXPECT_FALSE(valid_revision("a/b"));
  EXPECT_FALSE(valid_revision("a b"));
  EXPECT_FALSE(valid_revision("a:b"));
  EXPECT_FALSE(valid_revision(std::string("a\0b", 3)));
}

const std::string k_sum = "sha256:" + std::string(64, 'a');

TEST(ArchiveLatest, RoundTrip) {
  latest l{"2026-02-05T10-30-00Z-0001", "sha256:0123456789abcdef" + std::string(48, '0'),
           floor<seconds>(at(2026, 2, 5, 10, 30, 7))};
  std::string text = render_latest(l);
  EXPECT_EQ(text, "{\"revision\":\"2026-02-05T10-30-00Z-0001\",\"checksum\":\"" + l.checksum +
                      "\",\"updated_at\":\"2026-02-05T10:30:07Z\"}\n");
  auto back = parse_latest(text);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, l);
}

TEST(ArchiveLatest, UnknownFieldsIgnoredAndOffsetsAccepted) {
  auto l = parse_latest(R"({"revision":"r1","checksum":")" + k_sum +
                        R"(","updated_at":"2026-02-05T12:30:00+02:00","size":5})");
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_EQ(l->updated_at, floor<seconds>(at(2026, 2, 5, 10, 30, 0)));
}

void expect_error(const std::string& text, const std::string& needle) {
  auto l = parse_latest(text);
  ASSERT_FALSE(l) << text;
  EXPECT_EQ(l.error().code, errc::parse_error);
  EXPECT_NE(l.error().message.find(needle), std::string::npos)
      << "message: " << l.error().message << "\nwanted: " << needle;
}

TEST(ArchiveLatest, Errors) {
  const std::string at_ok = R"("updated_at":"2026-02-05T10:30:00Z")";
  expect_error("{", "not valid JSON");
  expect_error("[]", "must be a JSON object");
  expect_error(R"({"checksum":")" + k_sum + "\"," + at_ok + "}", "no \"revision\"");
  expect_error(R"({"revision":5,"checksum":")" + k_sum + "\"," + at_ok + "}",
               "\"revision\" must be a string");
  expect_error(R"({"revision":"../x","checksum":")" + k_sum + "\"," + at_ok + "}",
               "not a valid revision name");
  expect_error(R"({"revision":"r1",)" + at_ok + "}", "no \"checksum\"");
  expect_error(R"({"revision":"r1","checksum":"md5:abc",)" + at_ok + "}",
               "\"checksum\" \"md5:abc\" must be");
  expect_error(
      R"({"revision":"r1","checksum":"sha256:)" + std::string(64, 'A') + "\"," + at_ok + "}",
      "lower-case hex");
  expect_error(
      R"({"revision":"r1","checksum":"sha256:)" + std::string(63, 'a') + "\"," + at_ok + "}",
      "64 lower-case hex");
  expect_error(R"({"revision":"r1","checksum":")" + k_sum + "\"}", "no \"updated_at\"");
  expect_error(R"({"revision":"r1","checksum":")" + k_sum + R"(","updated_at":"yesterday"})",
               "\"updated_at\" \"yesterday\" is not an RFC 3339 time");
  expect_error(R"({"revision":"r1","checksum":")" + k_sum + R"(","updated_at":17})",
               "\"updated_at\" must be a string");
}

TEST(ArchiveLatest, ValidChecksum) {
  EXPECT_TRUE(valid_checksum(k_sum));
  EXPECT_FALSE(valid_checksum("sha256:"));
  EXPECT_FALSE(valid_checksum("SHA256:" + std::string(64, 'a')));
  EXPECT_FALSE(valid_checksum("sha256:" + std::string(64, 'g')));
}

}  // namespace
}  // namespace tidesync::archive
