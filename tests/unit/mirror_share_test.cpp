// The share's state file, the revision-keeping decision and the child's result line (pure),
// and the share layout on a real directory.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/mirror/build.hpp"
#include "runtime/mirror/share.hpp"
#include "runtime/mirror/source.hpp"
#include "tests/support/files.hpp"

namespace tidesync::mirror {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const sys_clock::time_point t0 = sys_clock::time_point(std::chrono::seconds(1'800'000'000));

share_state state(std::string rev, std::string prev, sys_clock::time_point at) {
  share_state s;
  s.revision = std::move(rev);
  s.previous = std::move(prev);
  s.switched_at = at;
  s.files = 3;
  s.bytes = 42;
  return s;
}

TEST(MirrorShare, StateRoundTripsAndRefusesGarbage) {
  const auto s = state("sha256-0123456789abcdef", "r0", t0);
  auto back = parse_state(render_state(s));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, s);
  EXPECT_FALSE(parse_state("{"));
  EXPECT_FALSE(parse_state("[]"));
  EXPECT_FALSE(parse_state(R"({"revision":"../etc"})"));
  auto lax = parse_state(R"({"revision":"r1","previous":"../x"})");
  ASSERT_TRUE(lax);
  EXPECT_EQ(lax->previous, "") << "an invalid previous is dropped, never used as a path";
}

TEST(MirrorShare, ThePreviousRevisionStaysOneGracePeriod) {
  const std::vector<std::string> present{"a", "b", "c", "d"};
  const auto st = state("d", "c", t0);
  auto early = plan_prune(present, std::string("d"), st, t0 + 10s, 60s);
  EXPECT_EQ(early.keep, (std::set<std::string>{"c", "d"}));
  EXPECT_EQ(early.remove, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(early.recheck_at);
  EXPECT_EQ(*early.recheck_at, t0 + 60s);

  auto late = plan_prune(present, std::string("d"), st, t0 + 60s, 60s);
  EXPECT_EQ(late.keep, (std::set<std::string>{"d"}));
  EXPECT_EQ(late.remove, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(late.recheck_at);
}

TEST(MirrorShare, WithoutAMatchingStateOnlyCurrentStays) {
  const std::vector<std::string> present{"a", "b"};
  auto stale = plan_prune(present, std::string("b"), state("a", "", t0), t0, 60s);
  EXPECT_EQ(stale.keep, (std::set<std::string>{"b"}));
  EXPECT_EQ(stale.remove, (std::vector<std::string>{"a"}));
  auto none = plan_prune(present, std::nullopt, std::nullopt, t0, 60s);
  EXPECT_TRUE(none.keep.empty());
  EXPECT_EQ(none.remove, present);
  // A previous that is gone already needs no recheck.
  auto gone = plan_prune({"b"}, std::string("b"), state("b", "a", t0), t0, 60s);
  EXPECT_FALSE(gone.recheck_at);
}

TEST(MirrorShare, ReconcileKeepsTheOldTreeAGracePeriodFromNow) {
  const auto st = state("a", "", t0);
  EXPECT_EQ(reconcile_state(std::string("a"), st, t0 + 1h), st) << "agreeing state is kept";
  const auto fixed = reconcile_state(std::string("b"), st, t0 + 1h);
  EXPECT_EQ(fixed.revision, "b");
  EXPECT_EQ(fixed.previous, "a");
  EXPECT_EQ(fixed.switched_at, t0 + 1h);
  const auto fresh = reconcile_state(std::string("b"), std::nullopt, t0);
  EXPECT_EQ(fresh.revision, "b");
  EXPECT_EQ(fresh.previous, "");
}

TEST(MirrorShare, ResultLinesRoundTrip) {
  build_result r;
  r.outcome = build_outcome::built;
  r.revision = std::string(40, 'a');
  r.files = 7;
  r.bytes = 1234;
  r.message = "checked out";
  auto back = parse_result(render_result(r));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, r);
  for (auto o : {build_outcome::unchanged, build_outcome::reused}) {
    r.outcome = o;
    EXPECT_EQ(*parse_result(render_result(r)), r);
  }
  auto failed = parse_result(render_result(make_error(errc::not_found, "branch x does not exist")));
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().message, "branch x does not exist");
  EXPECT_EQ(parse_result("").error().code, errc::internal);
  EXPECT_EQ(parse_result(R"({"ok":true,"outcome":"built","revision":"../x"})").error().code,
            errc::internal);
}

TEST(MirrorShare, LayoutStateFileAndCounts) {
  test::temp_dir tmp;
  const fs::path share = tmp.path();
  const auto t = share_layout(share);
  EXPECT_EQ(t.link, share / "current");
  EXPECT_EQ(t.revisions, share / ".tidesync" / "revisions");
  EXPECT_EQ(default_cache(share), share / ".tidesync" / "cache");
  EXPECT_FALSE(read_state(share));
  fs::create_directories(share / ".tidesync");
  const auto st = state("r1", "r0", t0);
  ASSERT_TRUE(write_state(share, st));
  EXPECT_EQ(read_state(share), st);
  std::ofstream(state_file(share)) << "not json";
  EXPECT_FALSE(read_state(share)) << "a broken state is no state";

  test::write_file(share / "tree" / "a.txt", "abc");
  test::write_file(share / "tree" / "d" / "b.txt", "12345");
  fs::create_symlink("a.txt", share / "tree" / "link");
  const auto c = count_tree(share / "tree");
  EXPECT_EQ(c.files, 2u);
  EXPECT_EQ(c.bytes, 8u);
}

TEST(MirrorShare, LinkTreeSharesFilesAndSkipsSymlinks) {
  test::temp_dir tmp;
  test::write_file(tmp.path() / "from" / "a.txt", "abc");
  test::write_file(tmp.path() / "from" / "d" / "e" / "b.txt", "12345");
  fs::create_directories(tmp.path() / "from" / "empty");
  fs::create_symlink("a.txt", tmp.path() / "from" / "link");
  auto n = link_tree(tmp.path() / "from", tmp.path() / "to");
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 2u);
  EXPECT_EQ(fs::hard_link_count(tmp.path() / "to" / "a.txt"), 2u);
  EXPECT_EQ(test::read_file(tmp.path() / "to" / "d" / "e" / "b.txt"), "12345");
  EXPECT_TRUE(fs::is_directory(tmp.path() / "to" / "empty"));
  EXPECT_FALSE(fs::exists(fs::symlink_status(tmp.path() / "to" / "link")));
}

}  // namespace
}  // namespace tidesync::mirror
