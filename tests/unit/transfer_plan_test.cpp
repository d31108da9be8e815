#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "runtime/transfer/filter.hpp"
#include "runtime/transfer/plan.hpp"

namespace tidesync::transfer {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::system_clock;

const clock::time_point t0 = clock::time_point(1700000000s);

entry file(std::string path, uint64_t size, clock::time_point mtime = t0) {
  entry e;
  e.path = std::move(path);
  e.size = size;
  e.mtime = mtime;
  return e;
}

entry dir(std::string path) {
  entry e;
  e.path = std::move(path);
  e.dir = true;
  return e;
}

entry with_md5(entry e, std::string md5) {
  e.md5 = std::move(md5);
  return e;
}

entry with_sha(entry e, std::string sha) {
  e.sha256 = std::move(sha);
  return e;
}

plan_options sync_opts() {
  return plan_options{};
}

plan_options copy_opts() {
  plan_options o;
  o.m = mode::copy;
  return o;
}

plan must(const std::vector<entry>& src, const std::vector<entry>& dst, const plan_options& o) {
  auto p = make_plan(src, dst, o);
  EXPECT_TRUE(p.has_value()) << (p ? "" : p.error().message);
  return p ? std::move(*p) : plan{};
}

std::vector<std::string> paths(const std::vector<action>& v) {
  std::vector<std::string> out;
  for (const auto& a : v)
    out.push_back(a.path);
  return out;
}

std::string reason_of(const plan& p, const std::string& path) {
  for (const auto& a : p.copies) {
    if (a.path == path) return a.reason;
  }
  return "";
}

TEST(TransferPlan, EmptyBothSidesIsNothingToDo) {
  auto p = must({}, {}, sync_opts());
  EXPECT_TRUE(p.nothing_to_do());
  EXPECT_EQ(p.unchanged, 0u);
}

TEST(TransferPlan, NewFilesAreCopiedSortedWithBytes) {
  auto p = must({file("b", 10), file("a/x", 5), file("a b/ü.txt", 0)}, {}, sync_opts());
  EXPECT_EQ(paths(p.copies), (std::vector<std::string>{"a b/ü.txt", "a/x", "b"}));
  for (const auto& a : p.copies)
    EXPECT_EQ(a.reason, "new");
  EXPECT_EQ(p.bytes_to_copy, 15u);
  EXPECT_TRUE(p.deletes.empty());
}

TEST(TransferPlan, EqualSizeAndTimeIsUnchanged) {
  auto p = must({file("a", 3), file("empty", 0)}, {file("empty", 0), file("a", 3)}, sync_opts());
  EXPECT_TRUE(p.nothing_to_do());
  EXPECT_EQ(p.unchanged, 2u);
}

TEST(TransferPlan, SizeDiffers) {
  auto p = must({file("a", 3)}, {file("a", 4)}, sync_opts());
  ASSERT_EQ(p.copies.size(), 1u);
  EXPECT_EQ(p.copies[0].reason, "size differs");
  EXPECT_EQ(p.bytes_to_copy, 3u);
}

TEST(TransferPlan, ModifyWindow) {
  auto o = sync_opts();
  o.modify_window = 1s;
  auto within = must({file("a", 1, t0)}, {file("a", 1, t0 + 1s)}, o);
  EXPECT_EQ(within.unchanged, 1u);
  auto outside = must({file("a", 1, t0)}, {file("a", 1, t0 + 1001ms)}, o);
  EXPECT_EQ(reason_of(outside, "a"), "modtime differs");
  o.modify_window = 1ns;
  auto precise = must({file("a", 1, t0)}, {file("a", 1, t0 + 2ns)}, o);
  EXPECT_EQ(reason_of(precise, "a"), "modtime differs");
}

TEST(TransferPlan, NewerDestinationIsStillOverwritten) {
  // sync makes the destination equal the source, whichever side is newer
  auto p = must({file("a", 1, t0)}, {file("a", 1, t0 + 1h)}, sync_opts());
  EXPECT_EQ(reason_of(p, "a"), "modtime differs");
}

TEST(TransferPlan, ModtimeDiffersButSameHashOnlySetsModtime) {
  auto p = must({with_md5(file("a", 1, t0), "aa")}, {with_md5(file("a", 1, t0 + 1h), "aa")},
                sync_opts());
  EXPECT_TRUE(p.copies.empty());
  EXPECT_EQ(paths(p.set_modtimes), std::vector<std::string>{"a"});
  EXPECT_EQ(p.bytes_to_copy, 0u);
  auto q = must({with_md5(file("a", 1, t0), "aa")}, {with_md5(file("a", 1, t0 + 1h), "bb")},
                sync_opts());
  EXPECT_EQ(reason_of(q, "a"), "checksum differs");
}

TEST(TransferPlan, ChecksumModeComparesHashesIgnoringTimes) {
  auto o = sync_opts();
  o.checksum = true;
  auto same = must({with_sha(file("a", 1, t0), "s1")}, {with_sha(file("a", 1, t0 + 1h), "s1")}, o);
  EXPECT_TRUE(same.nothing_to_do());
  EXPECT_EQ(same.unchanged, 1u);
  auto differ = must({with_sha(file("a", 1), "s1")}, {with_sha(file("a", 1), "s2")}, o);
  EXPECT_EQ(reason_of(differ, "a"), "checksum differs");
  // sha256 is preferred over md5 when both sides have both
  auto prefer = must({with_md5(with_sha(file("a", 1), "s1"), "m1")},
                     {with_md5(with_sha(file("a", 1), "s1"), "m2")}, o);
  EXPECT_TRUE(prefer.copies.empty());
  // a hash in common: md5 on both sides, sha256 on one only
  auto md5only =
      must({with_md5(with_sha(file("a", 1), "s1"), "m1")}, {with_md5(file("a", 1), "m2")}, o);
  EXPECT_EQ(reason_of(md5only, "a"), "checksum differs");
  // size still decides first
  auto size = must({with_sha(file("a", 1), "s1")}, {with_sha(file("a", 2), "s1")}, o);
  EXPECT_EQ(reason_of(size, "a"), "size differs");
}

TEST(TransferPlan, ChecksumWithoutCommonHashFallsBackToSizeWithAWarning) {
  auto o = sync_opts();
  o.checksum = true;
  auto p = must({with_md5(file("a", 1, t0), "m"), file("b", 2, t0)},
                {with_sha(file("a", 1, t0 + 1h), "s"), file("b", 2, t0 + 1h)}, o);
  EXPECT_TRUE(p.copies.empty());
  EXPECT_EQ(p.unchanged, 2u);
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_NE(p.warnings[0].find("2 file(s)"), std::string::npos);
}

TEST(TransferPlan, SizeOnly) {
  auto o = sync_opts();
  o.size_only = true;
  auto p = must({with_md5(file("a", 1, t0), "x"), file("b", 1)},
                {with_md5(file("a", 1, t0 + 1h), "y"), file("b", 2)}, o);
  EXPECT_EQ(paths(p.copies), std::vector<std::string>{"b"});
  EXPECT_EQ(p.unchanged, 1u);
  o.checksum = true;
  EXPECT_FALSE(make_plan({}, {}, o).has_value());
}

TEST(TransferPlan, SyncDeletesExtrasCopyDoesNot) {
  std::vector<entry> src = {file("keep", 1)};
  std::vector<entry> dst = {file("keep", 1), file("z-extra", 1), file("a/extra", 1),
                            dir("a"),        dir("a/b"),         file("a/b/c", 1)};
  auto s = must(src, dst, sync_opts());
  EXPECT_EQ(s.deletes, (std::vector<std::string>{"a/b/c", "a/extra", "z-extra"}));
  EXPECT_EQ(s.rmdirs, (std::vector<std::string>{"a/b", "a"}));  // deepest first
  auto c = must(src, dst, copy_opts());
  EXPECT_TRUE(c.deletes.empty());
  EXPECT_TRUE(c.rmdirs.empty());
  EXPECT_TRUE(c.nothing_to_do());
}

TEST(TransferPlan, DirectoriesAreCreatedAndComparedByName) {
  auto p = must({dir("d"), dir("d/e"), file("d/e/f", 1), dir("same")}, {dir("same")}, copy_opts());
  EXPECT_EQ(p.mkdirs, (std::vector<std::string>{"d", "d/e"}));
  EXPECT_EQ(paths(p.copies), std::vector<std::string>{"d/e/f"});
  EXPECT_EQ(p.unchanged, 1u);
}

TEST(TransferPlan, FileAgainstDirectoryOfTheSameNameIsSkippedWithAWarning) {
  auto p = must({file("x", 1), dir("y"), file("y/inner", 1)},
                {dir("x"), file("x/old", 1), file("y", 1)}, sync_opts());
  EXPECT_TRUE(reason_of(p, "x").empty());
  EXPECT_EQ(paths(p.copies), std::vector<std::string>{"y/inner"});
  EXPECT_EQ(p.deletes, std::vector<std::string>{"x/old"});
  ASSERT_EQ(p.warnings.size(), 2u);
  EXPECT_NE(p.warnings[0].find("\"x\" is a file on the source but a directory"), std::string::npos);
  EXPECT_NE(p.warnings[1].find("\"y\" is a directory on the source but a file"), std::string::npos);
}

TEST(TransferPlan, CaseSensitivePaths) {
  auto p = must({file("Readme", 1)}, {file("README", 1)}, sync_opts());
  EXPECT_EQ(paths(p.copies), std::vector<std::string>{"Readme"});
  EXPECT_EQ(p.deletes, std::vector<std::string>{"README"});
}

TEST(TransferPlan, MaxDelete) {
  auto o = sync_opts();
  o.max_delete = 2;
  std::vector<entry> dst = {file("a", 1), file("b", 1), file("c", 1)};
  auto p = make_plan({file("x", 1)}, dst, o);
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message.find("would delete 3 file(s)"), std::string::npos);
  EXPECT_NE(p.error().message.find("--max-delete 2"), std::string::npos);
  o.max_delete = 3;
  EXPECT_TRUE(make_plan({file("x", 1)}, dst, o).has_value());
  o.max_delete = 0;
  o.dry_run = true;  // a dry run still shows the plan, with the refusal as a warning
  auto d = must({file("x", 1)}, dst, o);
  EXPECT_EQ(d.deletes.size(), 3u);
  ASSERT_EQ(d.warnings.size(), 1u);
  EXPECT_NE(d.warnings[0].find("--max-delete 0"), std::string::npos);
  o.dry_run = false;
  o.m = mode::copy;  // copy never deletes, so the limit cannot trip
  EXPECT_TRUE(make_plan({file("x", 1)}, dst, o).has_value());
}

TEST(TransferPlan, BadListingsAreErrors) {
  for (const char* bad : {"", "/abs", "a//b", "a/./b", "../up", "a/..", "trailing/"}) {
    auto p = make_plan({file(bad, 1)}, {}, sync_opts());
    ASSERT_FALSE(p.has_value()) << bad;
    EXPECT_NE(p.error().message.find("source"), std::string::npos);
  }
  auto dup = make_plan({}, {file("a", 1), file("a", 2)}, sync_opts());
  ASSERT_FALSE(dup.has_value());
  EXPECT_NE(dup.error().message.find("duplicate path in destination listing: \"a\""),
            std::string::npos);
}

TEST(TransferPlan, FiltersApplyToBothSidesAndProtectExcludedDestinationFiles) {
  auto f = filter::from_flags({}, {"*.tmp", "cache/"});
  ASSERT_TRUE(f.has_value());
  auto o = sync_opts();
  o.rules = &*f;
  auto p = must({file("a.tmp", 1), file("b", 1), dir("cache"), file("cache/x", 1)},
                {file("old.tmp", 1), file("gone", 1), file("cache/y", 1)}, o);
  EXPECT_EQ(paths(p.copies), std::vector<std::string>{"b"});
  EXPECT_EQ(p.deletes, std::vector<std::string>{"gone"});  // old.tmp, cache/y stay
  EXPECT_TRUE(p.mkdirs.empty());
}

TEST(TransferPlan, HundredThousandEntriesMergeCorrectly) {
  // Correctness at scale (no timing assertion): sources in reverse order, every third file
  // changed, every fifth destination entry extra.
  constexpr int n = 100000;
  std::vector<entry> src;
  std::vector<entry> dst;
  src.reserve(n);
  dst.reserve(n);
  char name[32];
  for (int i = n - 1; i >= 0; --i) {
    std::snprintf(name, sizeof name, "d%03d/f%06d", i % 1000, i);
    src.push_back(file(name, 100, t0));
  }
  size_t expect_copies = 0;
  size_t expect_deletes = 0;
  for (int i = 0; i < n; ++i) {
    if (i % 5 == 0) {
      std::snprintf(name, sizeof name, "extra/%06d", i);
      dst.push_back(file(name, 1));
      ++expect_deletes;
    }
    std::snprintf(name, sizeof name, "d%03d/f%06d", i % 1000, i);
    if (i % 3 == 0) {
      dst.push_back(file(name, 100, t0 + 1h));
      ++expect_copies;
    } else {
      dst.push_back(file(name, 100, t0));
    }
  }
  auto p = must(src, dst, sync_opts());
  EXPECT_EQ(p.copies.size(), expect_copies);
  EXPECT_EQ(p.deletes.size(), expect_deletes);
  EXPECT_EQ(p.unchanged, static_cast<size_t>(n) - expect_copies);
  EXPECT_TRUE(std::is_sorted(p.copies.begin(), p.copies.end(),
                             [](const action& x, const action& y) { return x.path < y.path; }));
  EXPECT_TRUE(std::is_sorted(p.deletes.begin(), p.deletes.end()));
}

}  // namespace
}  // namespace tidesync::transfer
