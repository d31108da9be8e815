// The scheduler's pure decisions (docs/scheduler.md), driven directly with explicit time.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "actors/scheduler_logic.hpp"

namespace tidesync::actors {
namespace {

using namespace std::chrono_literals;
using logic = scheduler_logic;
using result = logic::done_result;

const logic::time_point t0{std::chrono::hours(1)};

std::vector<std::string> keys(const std::vector<logic::run_order>& orders) {
  std::vector<std::string> out;
  for (auto& o : orders)
    out.push_back(o.key);
  return out;
}

scheduler_options opts(uint32_t global, uint32_t retry_limit = 3) {
  scheduler_options o;
  o.limits.global = global;
  o.retry.base = 1000ms;
  o.retry.factor = 2;
  o.retry.max = 60s;
  o.retry.jitter = 0;
  o.retry.limit = retry_limit;
  return o;
}

// Random source that always answers `u`.
logic::random_source fixed(double u) {
  return [u] { return u; };
}

TEST(SchedulerLogic, AdmitsInArrivalOrderUpToTheGlobalLimit) {
  logic s(opts(2));
  for (auto k : {"ns/a", "ns/b", "ns/c", "ns/d"})
    EXPECT_TRUE(s.enqueue(k, t0));
  EXPECT_EQ(keys(s.admit(t0)), (std::vector<std::string>{"ns/a", "ns/b"}));
  EXPECT_TRUE(s.admit(t0).empty());
  EXPECT_EQ(s.positions(), (std::map<std::string, uint64_t>{{"ns/c", 1}, {"ns/d", 2}}));
  EXPECT_EQ(s.position("ns/d"), 2u);
  EXPECT_EQ(s.position("ns/a"), std::nullopt);  // running keys have no position
  EXPECT_EQ(s.done("ns/a", reconcile_outcome::success(), t0 + 1s), result::idle);
  auto next = s.admit(t0 + 2s);
  ASSERT_EQ(keys(next), (std::vector<std::string>{"ns/c"}));
  EXPECT_EQ(next[0].attempt, 1u);
  EXPECT_EQ(next[0].waited, 2s);
  EXPECT_EQ(s.check_invariants(), "");
}

TEST(SchedulerLogic, DuplicateEnqueueKeepsFirstPosition) {
  logic s(opts(0));  // paused: everything stays queued
  s.enqueue("ns/a", t0);
  s.enqueue("ns/b", t0);
  EXPECT_FALSE(s.enqueue("ns/a", t0));
  EXPECT_EQ(s.position("ns/a"), 1u);
  EXPECT_EQ(s.stats().queued, 2u);
  EXPECT_EQ(s.stats().adds, 2u);
}

TEST(SchedulerLogic, SingleFlightDirtyKeyRunsOnceMoreAtTheBack) {
  logic s(opts(1));
  s.enqueue("ns/a", t0);
  ASSERT_EQ(keys(s.admit(t0)), (std::vector<std::string>{"ns/a"}));
  s.enqueue("ns/b", t0);
  EXPECT_TRUE(s.enqueue("ns/a", t0));   // marks it dirty
  EXPECT_FALSE(s.enqueue("ns/a", t0));  // already dirty
  EXPECT_FALSE(s.is_queued("ns/a"));
  EXPECT_TRUE(s.admit(t0).empty());  // never twice at once
  EXPECT_EQ(s.done("ns/a", reconcile_outcome::success(), t0), result::queued);
  EXPECT_EQ(s.positions(), (std::map<std::string, uint64_t>{{"ns/b", 1}, {"ns/a", 2}}));
  EXPECT_EQ(keys(s.admit(t0)), (std::vector<std::string>{"ns/b"}));
  s.done("ns/b", reconcile_outcome::success(), t0);
  EXPECT_EQ(keys(s.admit(t0)), (std::vector<std::string>{"ns/a"}));
  EXPECT_EQ(s.done("ns/a", reconcile_outcome::success(), t0), result::idle);
  EXPECT_TRUE(s.admit(t0).empty());
  EXPECT_EQ(s.check_invariants(), "");
}

TEST(SchedulerLogic, RequeueAfterDelaysTheKey) {
  logic s(opts(4));
  s.enqueue("ns/a", t0);
  s.admit(t0);
  EXPECT_EQ(s.done("ns/a", reconcile_outcome::requeue(30s), t0), result::delayed);
  EXPECT_EQ(s.next_due(), t0 + 30s);
  EXPECT_EQ(s.advance(t0 + 29s), 0u);
  EXPECT_TRUE(s.admit(t0 + 29s).empty());
  EXPECT_EQ(s.advance(t0 + 30s), 1u);
  auto runs = s.admit(t0 + 30s);
  ASSERT_EQ(keys(runs), (std::vector<std::string>{"ns/a"}));
  EXPECT_EQ(runs[0].attempt, 1u);
  EXPECT_EQ(s.next_due(), std::nullopt);
}

TEST(SchedulerLogic, TransientErrorsBackOffExponentiallyThenGiveUp) {
  logic s(opts(4, /*retry_limit=*/3));
  s.enqueue("ns/a", t0);
  auto t = t0;
  std::vector<std::chrono::milliseconds> delays;
  for (uint32_t attempt = 1; attempt <= 4; ++attempt) {
    auto runs = s.admit(t);
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].attempt, attempt);
    auto r = s.done("ns/a", reconcile_outcome::transient("boom"), t);
    if (attempt == 4) {
      EXPECT_EQ(r, result::gave_up);
      break;
    }
    ASSERT_EQ(r, result::delayed);
    auto due = *s.next_due();
    delays.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(due - t));
    t = due;
    s.advance(t);
  }
  EXPECT_EQ(delays, (std::vector<std::chrono::milliseconds>{1000ms, 2000ms, 4000ms}));
  EXPECT_FALSE(s.is_delayed("ns/a"));
  EXPECT_EQ(s.failures("ns/a"), 0u);
  EXPECT_EQ(s.stats().gave_up, 1u);
  EXPECT_EQ(s.stats().retries, 3u);
  // A new event starts over at attempt 1.
  s.enqueue("ns/a", t);
  EXPECT_EQ(s.admit(t)[0].attempt, 1u);
}

TEST(SchedulerLogic, BackoffIsCappedAndJittered) {
  auto o = opts(1);
  o.retry.jitter = 0.5;
  logic low(o, fixed(0.0));
  EXPECT_EQ(low.backoff(1), std::chrono::milliseconds(500));
  logic high(o, fixed(0.999999));
  EXPECT_NEAR(std::chrono::duration<double>(high.backoff(3)).count(), 6.0, 0.001);
  // 2^40 s would overflow nothing: capped at max (60 s) before jitter.
  EXPECT_EQ(low.backoff(40), std::chrono::seconds(30));
  logic any(o);  // the default random source stays within the jitter band
  for (int i = 0; i < 100; ++i) {
    auto d = any.backoff(2);
    EXPECT_GE(d, 1000ms);
    EXPECT_LE(d, 3000ms);
  }
}

TEST(SchedulerLogic, SuccessResetsTheRetryCount) {
  logic s(opts(1));
  s.enqueue("ns/a", t0);
  s.admit(t0);
  s.done("ns/a", reconcile_outcome::transient("x"), t0);
  s.advance(t0 + 1h);
  EXPECT_EQ(s.admit(t0 + 1h)[0].attempt, 2u);
  s.done("ns/a", reconcile_outcome::requeue(1s), t0 + 1h);
  EXPECT_EQ(s.failures("ns/a"), 0u);
  s.advance(t0 + 2h);
  EXPECT_EQ(s.admit(t0 + 2h)[0].attempt, 1u);
}

TEST(SchedulerLogic, TerminalErrorIsNotRetried) {
  logic s(opts(1));
  s.enqueue("ns/a", t0);
  s.admit(t0);
  EXPECT_EQ(s.done("ns/a", reconcile_outcome::terminal("bad spec"), t0), result::idle);
  EXPECT_EQ(s.next_due(), std::nullopt);
  EXPECT_EQ(s.stats().queued + s.stats().delayed + s.stats().running, 0u);
}

TEST(SchedulerLogic, EnqueueOfADelayedKeyRunsItNowKeepingItsFailures) {
  logic s(opts(1));
  s.enqueue("ns/a", t0);
  s.admit(t0);
  s.done("ns/a", reconcile_outcome::transient("x"), t0);
  EXPECT_TRUE(s.enqueue("ns/a", t0 + 1ms));
  EXPECT_EQ(s.next_due(), std::nullopt);
  EXPECT_EQ(s.admit(t0 + 1ms)[0].attempt, 2u);
}

TEST(SchedulerLogic, PerNamespaceLimitsDoNotBlockOtherNamespaces) {
  auto o = opts(10);
  o.limits.per_namespace = {{"slow", 1}};
  logic s(o);
  for (auto k : {"slow/a", "slow/b", "slow/c", "fast/a", "fast/b", "cluster-scoped"})
    s.enqueue(k, t0);
  EXPECT_EQ(keys(s.admit(t0)),
            (std::vector<std::string>{"slow/a", "fast/a", "fast/b", "cluster-scoped"}));
  EXPECT_EQ(s.running_in("slow"), 1u);
  EXPECT_EQ(s.running_in(""), 1u);
  EXPECT_EQ(s.positions(), (std::map<std::string, uint64_t>{{"slow/b", 1}, {"slow/c", 2}}));
  s.done("slow/a", reconcile_outcome::success(), t0);
  EXPECT_EQ(keys(s.admit(t0)), (std::vector<std::string>{"slow/b"}));
  EXPECT_EQ(s.check_invariants(), "");
}

TEST(SchedulerLogic, LimitChangesAtRunTime) {
  logic s(opts(1));
  for (auto k : {"ns/a", "ns/b", "ns/c", "ns/d"})
    s.enqueue(k, t0);
  EXPECT_EQ(keys(s.admit(t0)), (std::vector<std::string>{"ns/a"}));
  s.set_limits({3, {}});  // raising admits at once
  EXPECT_EQ(keys(s.admit(t0)), (std::vector<std::string>{"ns/b", "ns/c"}));
  s.set_limits({1, {{"ns", 5}}});  // lowering stops nothing
  EXPECT_EQ(s.stats().running, 3u);
  s.done("ns/a", reconcile_outcome::success(), t0);
  EXPECT_TRUE(s.admit(t0).empty());
  s.done("ns/b", reconcile_outcome::success(), t0);
  EXPECT_TRUE(s.admit(t0).empty());
  s.done("ns/c", reconcile_outcome::success(), t0);
  EXPECT_EQ(keys(s.admit(t0)), (std::vector<std::string>{"ns/d"}));
  // A per-namespace limit tighter than the global one.
  s.set_limits({10, {{"ns", 1}}});
  s.enqueue("ns/e", t0);
  EXPECT_TRUE(s.admit(t0).empty());
  EXPECT_EQ(s.check_invariants(), "");
}

TEST(SchedulerLogic, ForgetDropsQueuedDelayedAndRunningKeys) {
  logic s(opts(1));
  s.enqueue("ns/a", t0);
  s.enqueue("ns/b", t0);
  s.admit(t0);
  EXPECT_TRUE(s.forget("ns/b"));  // queued
  EXPECT_TRUE(s.positions().empty());
  s.enqueue("ns/a", t0);          // dirty...
  EXPECT_TRUE(s.forget("ns/a"));  // ...then deleted while running
  EXPECT_EQ(s.done("ns/a", reconcile_outcome::transient("x"), t0), result::dropped);
  EXPECT_TRUE(s.admit(t0).empty());
  s.enqueue("ns/c", t0);
  s.admit(t0);
  s.done("ns/c", reconcile_outcome::transient("x"), t0);
  EXPECT_TRUE(s.forget("ns/c"));  // delayed
  EXPECT_EQ(s.next_due(), std::nullopt);
  EXPECT_FALSE(s.forget("ns/zzz"));
  EXPECT_EQ(s.stats().forgotten, 3u);
  EXPECT_EQ(s.check_invariants(), "");
}

TEST(SchedulerLogic, ReEnqueueAfterForgetWhileRunningRunsAgain) {
  logic s(opts(1));
  s.enqueue("ns/a", t0);
  s.admit(t0);
  s.forget("ns/a");
  s.enqueue("ns/a", t0);  // re-created with the same name
  EXPECT_EQ(s.done("ns/a", reconcile_outcome::success(), t0), result::queued);
  EXPECT_EQ(keys(s.admit(t0)), (std::vector<std::string>{"ns/a"}));
}

TEST(SchedulerLogic, StaleDoneIsIgnored) {
  logic s(opts(1));
  EXPECT_EQ(s.done("ns/a", reconcile_outcome::success(), t0), result::unknown);
  s.enqueue("ns/a", t0);
  EXPECT_EQ(s.done("ns/a", reconcile_outcome::success(), t0), result::unknown);  // queued
  EXPECT_TRUE(s.is_queued("ns/a"));
}

TEST(SchedulerLogic, DelayedKeysWithEqualDueTimesKeepTheirOrder) {
  logic s(opts(10));
  for (auto k : {"ns/a", "ns/b", "ns/c"})
    s.enqueue(k, t0);
  s.admit(t0);
  for (auto k : {"ns/c", "ns/a", "ns/b"})
    s.done(k, reconcile_outcome::requeue(5s), t0);
  s.set_limits({0, {}});
  s.advance(t0 + 5s);
  EXPECT_EQ(s.positions(),
            (std::map<std::string, uint64_t>{{"ns/c", 1}, {"ns/a", 2}, {"ns/b", 3}}));
}

// Random enqueue/done/forget/limit/time sequences never break the invariants:
// single flight, limits respected at admission, FIFO among admissible keys, work
// conservation, retry limit, and the internal indexes agree.
TEST(SchedulerLogic, RandomisedOperationsKeepTheInvariants) {
  constexpr uint32_t retry_limit = 2;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    std::mt19937_64 rng(seed);
    auto pick = [&](std::size_t n) {
      return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
    };
    auto o = opts(3, retry_limit);
    o.retry.base = 10ms;
    o.retry.jitter = 0.3;
    logic s(o, [&rng] { return std::uniform_real_distribution<double>(0, 1)(rng); });
    std::vector<std::string> all;
    for (auto ns : {"a", "b", "c"})
      for (int i = 0; i < 6; ++i)
        all.push_back(std::string(ns) + "/k" + std::to_string(i));
    all.push_back("cluster");
    std::set<std::string> running;
    std::map<std::string, uint32_t> failures;  // model of consecutive transient failures
    std::set<std::string> forgotten;           // running keys forgotten (not re-enqueued)
    auto t = t0;
    for (int step = 0; step < 600; ++step) {
      SCOPED_TRACE("seed " + std::to_string(seed) + " step " + std::to_string(step));
      switch (pick(6)) {
        case 0:
        case 1: {
          auto key = all[pick(all.size())];
          s.enqueue(key, t);
          forgotten.erase(key);
          break;
        }
        case 2:
        case 3:
          if (!running.empty()) {
            auto it = running.begin();
            std::advance(it, pick(running.size()));
            auto key = *it;
            running.erase(it);
            reconcile_outcome out;
            switch (pick(4)) {
              case 0:
                out = reconcile_outcome::success();
                break;
              case 1:
                out = reconcile_outcome::requeue(std::chrono::milliseconds(pick(50)));
                break;
              case 2:
                out = reconcile_outcome::transient("t");
                break;
              default:
                out = reconcile_outcome::terminal("x");
                break;
            }
            auto r = s.done(key, out, t);
            ASSERT_NE(r, result::unknown);
            if (forgotten.erase(key)) {
              ASSERT_EQ(r, result::dropped);
              failures.erase(key);
            } else if (out.what == reconcile_outcome::kind::transient_error) {
              bool expect_give_up = ++failures[key] > retry_limit;
              ASSERT_EQ(r == result::gave_up, expect_give_up);
              if (expect_give_up) failures.erase(key);
            } else {
              ASSERT_NE(r, result::gave_up);
              failures.erase(key);
            }
          }
          break;
        case 4: {
          auto key = all[pick(all.size())];
          if (s.forget(key)) {
            failures.erase(key);
            if (running.count(key)) forgotten.insert(key);
          }
          break;
        }
        default:
          if (pick(4) == 0) {
            scheduler_limits l{static_cast<uint32_t>(pick(5)), {}};
            if (pick(2)) l.per_namespace["a"] = static_cast<uint32_t>(pick(3));
            if (pick(2)) l.per_namespace["b"] = static_cast<uint32_t>(1 + pick(2));
            s.set_limits(l);
          } else {
            t += std::chrono::milliseconds(pick(40));
          }
          break;
      }
      // Admission, as the actor does it after every message.
      s.advance(t);
      auto before = s.positions();
      auto admitted = s.admit(t);
      const auto& lim = s.limits();
      auto ns_limit = [&](std::string_view ns) -> std::optional<uint32_t> {
        auto it = lim.per_namespace.find(std::string(ns));
        if (it == lim.per_namespace.end()) return std::nullopt;
        return it->second;
      };
      uint64_t last_pos = 0;
      for (auto& order : admitted) {
        ASSERT_TRUE(running.insert(order.key).second) << "admitted twice: " << order.key;
        ASSERT_EQ(order.attempt, failures.count(order.key) ? failures[order.key] + 1 : 1);
        auto pos = before.at(order.key);
        ASSERT_GT(pos, last_pos) << "admitted out of arrival order";
        last_pos = pos;
        auto ns = key_namespace(order.key);
        if (auto l = ns_limit(ns)) {
          ASSERT_LE(s.running_in(ns), *l);
        }
      }
      if (!admitted.empty()) {
        ASSERT_LE(s.stats().running, lim.global);
      }
      ASSERT_EQ(s.stats().running, running.size());
      // Work conservation and FIFO: every key still queued is blocked by a limit.
      for (auto& [key, pos] : s.positions()) {
        auto ns = key_namespace(key);
        auto l = ns_limit(ns);
        bool blocked = s.stats().running >= lim.global || (l && s.running_in(ns) >= *l);
        ASSERT_TRUE(blocked) << key << " is admissible but still queued";
      }
      ASSERT_EQ(s.check_invariants(), "");
    }
  }
}

TEST(SchedulerLogic, RequeueAfterZeroQueuesTheKeyAtOnce) {
  // What the controller counts as result="requeue" (controller-runtime's Requeue): no delay.
  logic s(opts(1));
  s.enqueue("ns/a", t0);
  ASSERT_EQ(keys(s.admit(t0)), std::vector<std::string>{"ns/a"});
  EXPECT_EQ(s.done("ns/a", reconcile_outcome::requeue(0ms), t0), result::queued);
  EXPECT_TRUE(s.is_queued("ns/a"));
  EXPECT_EQ(keys(s.admit(t0)), std::vector<std::string>{"ns/a"});
  EXPECT_EQ(s.done("ns/a", reconcile_outcome::requeue(1ms), t0), result::delayed);
}

TEST(SchedulerLogic, InFlightWorkSumsAndMaximisesTheAgesOfRunningKeys) {
  EXPECT_EQ(measure_in_flight({}, t0).unfinished_seconds, 0.0);
  EXPECT_EQ(measure_in_flight({}, t0).longest_running_seconds, 0.0);

  std::unordered_map<std::string, logic::time_point> running{
      {"ns/a", t0}, {"ns/b", t0 + 2s}, {"ns/c", t0 + 3500ms}};
  auto w = measure_in_flight(running, t0 + 4s);
  EXPECT_DOUBLE_EQ(w.unfinished_seconds, 4 + 2 + 0.5);
  EXPECT_DOUBLE_EQ(w.longest_running_seconds, 4);

  // Just started: age 0. A start "after now" (never on a steady clock) counts as 0, not less.
  w = measure_in_flight({{"ns/a", t0}, {"ns/b", t0 + 1s}}, t0);
  EXPECT_DOUBLE_EQ(w.unfinished_seconds, 0);
  EXPECT_DOUBLE_EQ(w.longest_running_seconds, 0);
}

}  // namespace
}  // namespace tidesync::actors
