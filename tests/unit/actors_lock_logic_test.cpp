// The pure lock logic: normalising rclone paths, conflicts, and the lock table (all-or-nothing
// sets, FIFO among overlapping waiters, adoption, TTL reclaim), plus a randomised property
// test of safety, FIFO and liveness. Rules: docs/locks.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "actors/lock_logic.hpp"

namespace tidesync::actors {
namespace {

using namespace std::chrono_literals;
using kind = lock_table::request_result::kind;
using tp = lock_table::time_point;

const tp t0 = tp{} + 1000000s;

bucket_path bp(std::string_view s) {
  auto r = normalize(s);
  EXPECT_TRUE(r.has_value()) << s;
  return r ? *r : bucket_path{};
}

std::vector<bucket_path> set(std::initializer_list<std::string_view> xs) {
  std::vector<bucket_path> out;
  for (auto x : xs)
    out.push_back(bp(x));
  return out;
}

std::string canon(std::string_view s) {
  auto r = normalize(s);
  return r ? r->canonical() : "error: " + r.error().message;
}

TEST(LockNormalize, CanonicalForms) {
  EXPECT_EQ(canon("S3:Bucket/a//b/"), "s3:bucket/a/b");
  EXPECT_EQ(canon("s3:/bucket/./a"), "s3:bucket/a");
  EXPECT_EQ(canon("s3:bucket/A/B"), "s3:bucket/A/B");  // case kept below the bucket
  EXPECT_EQ(canon("s3:"), "s3:");
  EXPECT_EQ(canon("s3:/"), "s3:");
  EXPECT_EQ(canon("/data/x"), "data/x");
  EXPECT_EQ(canon("data/x/"), "data/x");
  EXPECT_EQ(canon("my remote:b"), "my remote:b");
  EXPECT_EQ(canon("a.b+c@d_e-f:B"), "a.b+c@d_e-f:b");
  // A ':' after a '/' is part of a local path (rclone's rule).
  EXPECT_EQ(canon("dir/a:b"), "dir/a:b");
  auto n = normalize("Gcs:Bkt/Some/Dir");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->remote, "gcs");
  EXPECT_EQ(n->segments, (std::vector<std::string>{"bkt", "Some", "Dir"}));
}

TEST(LockNormalize, Rejections) {
  for (auto bad : {"", "s3:b/../c", "s3:..", "../x", ":s3,provider=AWS:b", "-bad:b", " sp:b",
                   "sp :b", "bad!name:b", "s3:b/\x01x", "/", "//"}) {
    auto r = normalize(bad);
    EXPECT_FALSE(r.has_value()) << "accepted: " << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, errc::invalid_argument);
      EXPECT_NE(r.error().message.find("bucket path"), std::string::npos);
    }
  }
  EXPECT_NE(normalize("s3:b/../c").error().message.find(".."), std::string::npos);
  EXPECT_NE(normalize(":s3:b").error().message.find("on-the-fly"), std::string::npos);
}

TEST(LockNormalize, SetIsSortedAndUnique) {
  auto s = normalize_set({"s3:b/z", "gcs:a", "S3:B/z/", "s3:b/a"});
  ASSERT_TRUE(s);
  std::vector<std::string> c;
  for (auto& p : *s)
    c.push_back(p.canonical());
  EXPECT_EQ(c, (std::vector<std::string>{"gcs:a", "s3:b/a", "s3:b/z"}));
  EXPECT_FALSE(normalize_set({}));
  EXPECT_FALSE(normalize_set({"s3:b", "s3:.."}));
}

TEST(LockConflicts, PerSegmentPrefix) {
  EXPECT_TRUE(conflicts(bp("s3:b/a"), bp("s3:b/a")));
  EXPECT_TRUE(conflicts(bp("s3:b/a"), bp("s3:b/a/x")));
  EXPECT_TRUE(conflicts(bp("s3:b/a/x"), bp("s3:b/a")));
  EXPECT_TRUE(conflicts(bp("s3:b/a"), bp("s3:b")));
  EXPECT_TRUE(conflicts(bp("s3:b/a"), bp("s3:")));
  EXPECT_FALSE(conflicts(bp("s3:b/a"), bp("s3:b/ab")));
  EXPECT_FALSE(conflicts(bp("s3:b/ab"), bp("s3:b/a")));
  EXPECT_FALSE(conflicts(bp("s3:b/a"), bp("gcs:b/a")));
  EXPECT_FALSE(conflicts(bp("s3:b/a"), bp("s3:c/a")));
  EXPECT_TRUE(conflicts(bp("S3:B/a"), bp("s3:b/a/")));
  EXPECT_FALSE(conflicts(bp("s3:b/A"), bp("s3:b/a")));
}

TEST(LockTable, GrantWaitReleaseFifo) {
  lock_table t;
  auto r = t.request("ns/a/1", set({"s3:src", "s3:dst"}), t0);
  EXPECT_EQ(r.what, kind::granted);
  // b wants the destination's sub-path: waits for a.
  r = t.request("ns/b/2", set({"gcs:other", "s3:dst/sub"}), t0 + 1s);
  EXPECT_EQ(r.what, kind::waiting);
  EXPECT_EQ(r.blocker, "ns/a/1");
  EXPECT_FALSE(r.blocker_waiting);
  EXPECT_EQ(r.path, "s3:dst/sub");
  EXPECT_EQ(r.position, 1u);
  // c wants gcs:other only: nothing held there, but b waits for it first (FIFO).
  r = t.request("ns/c/3", set({"gcs:other/x"}), t0 + 2s);
  EXPECT_EQ(r.what, kind::waiting);
  EXPECT_EQ(r.blocker, "ns/b/2");
  EXPECT_TRUE(r.blocker_waiting);
  EXPECT_EQ(r.path, "gcs:other/x");
  EXPECT_EQ(r.position, 2u);
  // d overlaps nobody: it passes the waiters.
  EXPECT_EQ(t.request("ns/d/4", set({"s3:dstx"}), t0).what, kind::granted);
  EXPECT_EQ(t.holder_of(bp("s3:dst/sub/deeper")), "ns/a/1");
  EXPECT_EQ(t.holder_of(bp("s3:")), "ns/a/1");  // an ancestor sees the first descendant
  EXPECT_EQ(t.holder_of(bp("s3:dstx")), "ns/d/4");
  EXPECT_FALSE(t.holder_of(bp("s3:ds")));
  EXPECT_EQ(t.waiting_position("ns/c/3"), 2u);
  EXPECT_EQ(t.waiters(), (std::vector<std::string>{"ns/b/2", "ns/c/3"}));
  EXPECT_EQ(t.check_invariants(), "");

  auto granted = t.release("ns/a/1", t0 + 10s);
  EXPECT_EQ(granted, (std::vector<std::string>{"ns/b/2"}));  // c still behind b
  EXPECT_TRUE(t.holds("ns/b/2"));
  EXPECT_EQ(t.acquired_at("ns/b/2"), t0 + 10s);
  EXPECT_EQ(t.waiting_position("ns/c/3"), 1u);
  r = t.request("ns/c/3", set({"gcs:other/x"}), t0 + 11s);  // asks again: still b
  EXPECT_EQ(r.blocker, "ns/b/2");
  EXPECT_FALSE(r.blocker_waiting);
  EXPECT_EQ(r.path, "gcs:other/x");
  EXPECT_EQ(t.release("ns/b/2", t0 + 12s), (std::vector<std::string>{"ns/c/3"}));
  EXPECT_EQ(t.check_invariants(), "");
  EXPECT_TRUE(t.release("ns/zz/9", t0).empty());  // unknown: ignored
}

TEST(LockTable, IdempotentRequestsAndRejections) {
  lock_table t;
  EXPECT_EQ(t.request("a", set({"s3:x", "s3:y"}), t0).what, kind::granted);
  EXPECT_EQ(t.request("a", set({"s3:y", "S3:x/"}), t0).what, kind::granted);  // same set
  auto r = t.request("a", set({"s3:x"}), t0);
  EXPECT_EQ(r.what, kind::rejected);
  EXPECT_NE(r.message.find("release first"), std::string::npos);
  EXPECT_EQ(t.request("b", {}, t0).what, kind::rejected);
  EXPECT_EQ(t.request("b", set({"s3:x/1"}), t0).position, 1u);
  EXPECT_EQ(t.request("c", set({"s3:y/1"}), t0).position, 2u);
  EXPECT_EQ(t.request("b", set({"s3:x/1"}), t0 + 5s).position, 1u);  // keeps its place
  EXPECT_EQ(t.request("b", set({"s3:x/2"}), t0).what, kind::rejected);
  EXPECT_EQ(t.waiters().size(), 2u);
  // A waiter that gives up (deleted) unblocks nobody here, but leaves the queue.
  EXPECT_TRUE(t.release("b", t0).empty());
  EXPECT_EQ(t.waiting_position("c"), 1u);
  EXPECT_EQ(t.release("a", t0), (std::vector<std::string>{"c"}));
  EXPECT_EQ(t.check_invariants(), "");
}

TEST(LockTable, WithdrawingAnEarlierWaiterGrantsALaterOne) {
  lock_table t;
  EXPECT_EQ(t.request("a", set({"s3:b/1"}), t0).what, kind::granted);
  EXPECT_EQ(t.request("b", set({"s3:b/1", "s3:b/2"}), t0).what, kind::waiting);
  EXPECT_EQ(t.request("c", set({"s3:b/2"}), t0).what, kind::waiting);  // behind b
  EXPECT_EQ(t.release("b", t0), (std::vector<std::string>{"c"}));
  EXPECT_EQ(t.check_invariants(), "");
}

TEST(LockTable, OwnOverlappingPathsAndRootLocks) {
  lock_table t;
  EXPECT_EQ(t.request("a", set({"s3:b", "s3:b/sub"}), t0).what, kind::granted);
  EXPECT_EQ(t.held_paths(), 2u);
  EXPECT_EQ(t.request("r", set({"s3:"}), t0).blocker, "a");
  EXPECT_EQ(t.request("g", set({"gcs:"}), t0).what, kind::granted);
  EXPECT_EQ(t.request("l", set({"data/x"}), t0).what, kind::granted);  // local, no remote
  EXPECT_EQ(t.request("l2", set({"/data"}), t0).blocker, "l");
  EXPECT_EQ(t.release("a", t0), (std::vector<std::string>{"r"}));
  EXPECT_EQ(t.check_invariants(), "");
}

TEST(LockTable, AdoptRenewAndReclaim) {
  lock_table t;
  ASSERT_TRUE(t.adopt("live", set({"s3:a"}), t0));
  ASSERT_TRUE(t.adopt("gone", set({"s3:b"}), t0 + 60s, t0));
  // Two Leases of one holder's set adopt the same set: merged, earliest acquire, latest renew.
  ASSERT_TRUE(t.adopt("gone", set({"s3:b", "s3:c"}), t0 + 30s));
  EXPECT_EQ(t.paths_of("gone"), set({"s3:b", "s3:c"}));
  EXPECT_EQ(t.acquired_at("gone"), t0);
  EXPECT_EQ(t.renewed_at("gone"), t0 + 60s);
  auto conflict = t.adopt("other", set({"s3:a/x"}), t0);
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().code, errc::conflict);
  EXPECT_FALSE(t.adopt("other", {}, t0));

  EXPECT_EQ(t.request("w", set({"s3:c/1"}), t0 + 61s).blocker, "gone");
  auto alive = [](std::string_view h) { return h == "live" || h == "w"; };
  // Not yet stale: the TTL runs from the last renewal.
  auto r = t.reclaim_stale(t0 + 60s + 599s, 600s, alive);
  EXPECT_TRUE(r.reclaimed.empty());
  EXPECT_TRUE(t.holds("gone"));
  // The live holder is never reclaimed, however old its renewal.
  r = t.reclaim_stale(t0 + 660s, 600s, alive);
  EXPECT_EQ(r.reclaimed, (std::vector<std::string>{"gone"}));
  EXPECT_EQ(r.granted, (std::vector<std::string>{"w"}));
  EXPECT_TRUE(t.holds("live"));
  EXPECT_EQ(t.acquired_at("w"), t0 + 660s);

  // Renewal moves the staleness clock; an unknown holder is not renewed.
  EXPECT_TRUE(t.renew("w", t0 + 2000s));
  EXPECT_FALSE(t.renew("nobody", t0));
  r = t.reclaim_stale(t0 + 2500s, 600s, [](std::string_view) { return false; });
  EXPECT_EQ(r.reclaimed, (std::vector<std::string>{"live"}));
  EXPECT_TRUE(t.holds("w"));
  EXPECT_EQ(t.check_invariants(), "");
}

TEST(LockTable, StaleWaitersOfGoneHoldersAreDropped) {
  lock_table t;
  EXPECT_EQ(t.request("a", set({"s3:x"}), t0).what, kind::granted);
  EXPECT_EQ(t.request("ghost", set({"s3:x", "s3:y"}), t0).what, kind::waiting);
  EXPECT_EQ(t.request("c", set({"s3:y"}), t0 + 500s).blocker, "ghost");
  auto r = t.reclaim_stale(t0 + 600s, 600s, [](std::string_view h) { return h != "ghost"; });
  EXPECT_TRUE(r.reclaimed.empty());
  EXPECT_EQ(r.dropped_waiters, (std::vector<std::string>{"ghost"}));
  EXPECT_EQ(r.granted, (std::vector<std::string>{"c"}));
  EXPECT_TRUE(t.adopt("a", set({"s3:z"}), t0).has_value());
  EXPECT_EQ(t.paths_of("a"), set({"s3:x", "s3:z"}));
  EXPECT_EQ(t.check_invariants(), "");
}

// Random requests, releases, renewals and reclaims over a small universe of overlapping
// paths. Checks after every step: the table's invariants (no two holders on conflicting
// paths; every waiter blocked, i.e. nothing grantable is left waiting), and FIFO for every
// grant (no earlier, still waiting request overlaps the granted set). At the end, releasing
// holders one by one grants every waiter (no deadlock, no starvation).
TEST(LockTable, RandomisedSafetyFifoLiveness) {
  const std::vector<std::string> universe = {"s3:b", "s3:b/a",  "s3:b/a/x",  "s3:b/ab",
                                             "s3:c", "s3:c/d",  "gcs:b",     "gcs:b/a",
                                             "s3:",  "local/p", "local/p/q", "s3:b/a/y"};
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    std::mt19937 rng(seed);
    lock_table t;
    tp now = t0;
    // Request order of the current waiters, to check FIFO.
    std::map<std::string, uint64_t> asked_seq;
    std::map<std::string, std::vector<bucket_path>> wanted;
    uint64_t seq = 0;
    std::set<std::string> gone;
    auto pick_set = [&] {
      std::vector<bucket_path> s;
      auto n = 1 + rng() % 3;
      for (uint32_t i = 0; i < n; ++i)
        s.push_back(bp(universe[rng() % universe.size()]));
      return s;
    };
    auto check_fifo = [&](const std::vector<std::string>& granted) {
      for (const auto& g : granted) {
        for (const auto& w : t.waiters()) {
          if (asked_seq.at(w) >= asked_seq.at(g)) continue;
          for (const auto& p : wanted.at(g))
            for (const auto& q : wanted.at(w))
              ASSERT_FALSE(conflicts(p, q))
                  << "seed " << seed << ": " << g << " overtook earlier waiter " << w;
        }
      }
    };
    for (int step = 0; step < 400; ++step) {
      now += 1s;
      auto op = rng() % 10;
      auto who = "h" + std::to_string(rng() % 16);
      if (op < 5) {
        if (t.holds(who) || t.is_waiting(who)) continue;
        auto s = pick_set();
        auto r = t.request(who, s, now);
        asked_seq[who] = seq++;
        wanted[who] = s;
        ASSERT_NE(r.what, kind::rejected);
        if (r.what == kind::granted) {
          check_fifo({who});
        } else {
          ASSERT_FALSE(r.blocker.empty());
          ASSERT_EQ(t.waiting_position(who), r.position);
        }
      } else if (op < 8) {
        auto granted = t.release(who, now);
        check_fifo(granted);
      } else if (op == 8) {
        if (rng() % 2) gone.insert(who);
        t.renew(who, now);
      } else {
        auto r = t.reclaim_stale(
            now, 30s, [&](std::string_view h) { return gone.count(std::string(h)) == 0; });
        check_fifo(r.granted);
      }
      auto inv = t.check_invariants();
      ASSERT_EQ(inv, "") << "seed " << seed << " step " << step;
    }
    // Liveness: release holders in any order until nothing is left; every waiter gets its turn.
    for (int rounds = 0; !t.holders().empty(); ++rounds) {
      ASSERT_LT(rounds, 1000) << "seed " << seed;
      auto hs = t.holders();
      std::sort(hs.begin(), hs.end());
      auto granted = t.release(hs[rng() % hs.size()], now);
      check_fifo(granted);
      ASSERT_EQ(t.check_invariants(), "");
    }
    EXPECT_TRUE(t.waiters().empty()) << "seed " << seed << ": waiters left with nothing held";
  }
}

}  // namespace
}  // namespace tidesync::actors
