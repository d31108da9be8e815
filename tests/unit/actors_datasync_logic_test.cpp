// The DataSync controller's pure decisions (docs/datasync.md): policy parsing, FIFO admission,
// failure classification and retry backoff, pruning. Time is an input; nothing sleeps.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <random>
#include <set>
#include <tuple>

#include "actors/datasync_logic.hpp"

namespace tidesync::datasync {
namespace {

using namespace std::chrono_literals;
using data = std::map<std::string, std::string>;
using kind = policy_problem::kind;

const sys_seconds t0{std::chrono::hours(24 * 20000)};  // 2024-10-04T00:00:00Z

// ---------------------------------------------------------------------------------------------
// Policy

TEST(DatasyncPolicy, MissingConfigMapGivesDefaultsWithoutProblems) {
  auto r = parse_policy(nullptr);
  EXPECT_TRUE(r.from_defaults);
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.policy, datasync_policy{});
  EXPECT_EQ(r.policy.concurrency, 4);
  EXPECT_EQ(r.policy.retry_limit, 2);
  EXPECT_EQ(r.policy.retry_backoff, 5min);
  EXPECT_EQ(r.policy.retry_backoff_limit, 1h);
  EXPECT_EQ(r.policy.version_retention, 0);
}

TEST(DatasyncPolicy, EmptyConfigMapIsDefaultsButNotFromDefaults) {
  data d;
  auto r = parse_policy(&d);
  EXPECT_FALSE(r.from_defaults);
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.policy, datasync_policy{});
}

TEST(DatasyncPolicy, ReadsEveryKey) {
  data d{{"concurrency", "3"},
         {"retryLimit", "0"},
         {"retryBackoffDuration", "30s"},
         {"retryBackoffLimit", "1h30m"},
         {"versionRetention", " 2\n"}};  // white space around a value is fine
  auto r = parse_policy(&d);
  EXPECT_TRUE(r.problems.empty()) << r.problems.front().message;
  EXPECT_EQ(r.policy.concurrency, 3);
  EXPECT_EQ(r.policy.retry_limit, 0);
  EXPECT_EQ(r.policy.retry_backoff, 30s);
  EXPECT_EQ(r.policy.retry_backoff_limit, 90min);
  EXPECT_EQ(r.policy.version_retention, 2);
}

TEST(DatasyncPolicy, RangeEdgesAreAccepted) {
  data lo{{"concurrency", "1"},
          {"retryLimit", "0"},
          {"retryBackoffDuration", "1s"},
          {"retryBackoffLimit", "1s"},
          {"versionRetention", "0"}};
  auto r = parse_policy(&lo);
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.policy.concurrency, 1);
  EXPECT_EQ(r.policy.retry_backoff_limit, 1s);
  data hi{{"concurrency", "1000"},
          {"retryLimit", "100"},
          {"retryBackoffDuration", "168h"},
          {"retryBackoffLimit", "168h"},
          {"versionRetention", "1000"}};
  r = parse_policy(&hi);
  EXPECT_TRUE(r.problems.empty()) << r.problems.front().message;
  EXPECT_EQ(r.policy.concurrency, 1000);
  EXPECT_EQ(r.policy.retry_limit, 100);
  EXPECT_EQ(r.policy.retry_backoff, 168h);
  EXPECT_EQ(r.policy.version_retention, 1000);
}

struct bad_case {
  std::string key;
  std::string value;
  std::string used;  // the default put in its place
};

TEST(DatasyncPolicy, EachBadValueFallsBackToItsDefaultAndOthersStillApply) {
  const std::vector<bad_case> cases = {
      {"concurrency", "0", "4"},
      {"concurrency", "1001", "4"},
      {"concurrency", "-1", "4"},
      {"concurrency", "abc", "4"},
      {"concurrency", "3.5", "4"},
      {"concurrency", "", "4"},
      {"concurrency", "99999999999999999999999", "4"},
      {"retryLimit", "-1", "2"},
      {"retryLimit", "101", "2"},
      {"retryLimit", "two", "2"},
      {"versionRetention", "-3", "0"},
      {"versionRetention", "1001", "0"},
      {"versionRetention", "3 versions", "0"},
      {"retryBackoffDuration", "5", "5m"},
      {"retryBackoffDuration", "5x", "5m"},
      {"retryBackoffDuration", "0s", "5m"},
      {"retryBackoffDuration", "500ms", "5m"},
      {"retryBackoffDuration", "-5m", "5m"},
      {"retryBackoffDuration", "169h", "5m"},
      {"retryBackoffDuration", "", "5m"},
      {"retryBackoffLimit", "2d", "1h"},
      {"retryBackoffLimit", "9999999h", "1h"},
      {"retryBackoffLimit", "soon", "1h"},
  };
  // Every other key gets a valid non-default value, which must survive the bad one.
  const data good{{"concurrency", "7"},
                  {"retryLimit", "5"},
                  {"retryBackoffDuration", "2m"},
                  {"retryBackoffLimit", "30m"},
                  {"versionRetention", "3"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.key + "=\"" + c.value + "\"");
    data d = good;
    d[c.key] = c.value;
    auto r = parse_policy(&d);
    ASSERT_EQ(r.problems.size(), 1u);
    const auto& p = r.problems[0];
    EXPECT_EQ(p.what, kind::invalid);
    EXPECT_EQ(p.key, c.key);
    EXPECT_EQ(p.value, c.value);
    EXPECT_EQ(p.used, c.used);
    // The message names the key, the value and what is used instead.
    EXPECT_NE(p.message.find(c.key), std::string::npos) << p.message;
    EXPECT_NE(p.message.find("\"" + c.value + "\""), std::string::npos) << p.message;
    EXPECT_NE(p.message.find("using " + c.used), std::string::npos) << p.message;
    datasync_policy want{7, 5, 2min, 30min, 3};
    if (c.key == "concurrency") want.concurrency = 4;
    if (c.key == "retryLimit") want.retry_limit = 2;
    if (c.key == "versionRetention") want.version_retention = 0;
    if (c.key == "retryBackoffDuration") want.retry_backoff = 5min;
    if (c.key == "retryBackoffLimit") want.retry_backoff_limit = 1h;
    EXPECT_EQ(r.policy, want);
  }
}

TEST(DatasyncPolicy, UnknownKeysAreIgnoredWithAWarning) {
  data d{{"concurrency", "2"}, {"Concurrency", "9"}, {"maxBandwidth", "10M"}};
  auto r = parse_policy(&d);
  EXPECT_EQ(r.policy.concurrency, 2);
  ASSERT_EQ(r.problems.size(), 2u);
  for (const auto& p : r.problems) {
    EXPECT_EQ(p.what, kind::unknown_key);
    EXPECT_TRUE(p.used.empty());
    EXPECT_NE(p.message.find("ignored"), std::string::npos) << p.message;
  }
  // Map order: "Concurrency" < "maxBandwidth".
  EXPECT_EQ(r.problems[0].key, "Concurrency");
  EXPECT_EQ(r.problems[0].value, "9");
  EXPECT_NE(r.problems[0].message.find("did you mean \"concurrency\""), std::string::npos)
      << r.problems[0].message;
  EXPECT_EQ(r.problems[1].key, "maxBandwidth");
  EXPECT_NE(r.problems[1].message.find("known keys"), std::string::npos);
}

TEST(DatasyncPolicy, LimitBelowDurationBecomesTheDuration) {
  data d{{"retryBackoffDuration", "10m"}, {"retryBackoffLimit", "5m"}};
  auto r = parse_policy(&d);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].key, "retryBackoffLimit");
  EXPECT_EQ(r.problems[0].value, "5m");
  EXPECT_EQ(r.problems[0].used, "10m");
  EXPECT_NE(r.problems[0].message.find("retryBackoffDuration"), std::string::npos);
  EXPECT_EQ(r.policy.retry_backoff, 10min);
  EXPECT_EQ(r.policy.retry_backoff_limit, 10min);
}

TEST(DatasyncPolicy, DefaultLimitBelowAnExplicitDurationIsReportedToo) {
  data d{{"retryBackoffDuration", "2h"}};
  auto r = parse_policy(&d);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].key, "retryBackoffLimit");
  EXPECT_EQ(r.problems[0].value, "1h");
  EXPECT_EQ(r.policy.retry_backoff_limit, 2h);
}

TEST(DatasyncPolicy, InvalidDurationFallsBackBeforeTheLimitCheck) {
  // The bad duration becomes 5m; then a 1m limit is below it: two problems, limit 5m.
  data d{{"retryBackoffDuration", "soon"}, {"retryBackoffLimit", "1m"}};
  auto r = parse_policy(&d);
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_EQ(r.problems[0].key, "retryBackoffDuration");
  EXPECT_EQ(r.problems[1].key, "retryBackoffLimit");
  EXPECT_EQ(r.policy.retry_backoff, 5min);
  EXPECT_EQ(r.policy.retry_backoff_limit, 5min);
}

// ---------------------------------------------------------------------------------------------
// Admission

queued_item item(std::string ns, std::string name, sys_seconds created,
                 std::optional<sys_seconds> not_before = {}) {
  queued_item q;
  q.uid = "uid-" + ns + "-" + name;
  q.ns = std::move(ns);
  q.name = std::move(name);
  q.created = created;
  q.not_before = not_before;
  return q;
}

datasync_policy with_concurrency(int c) {
  datasync_policy p;
  p.concurrency = c;
  return p;
}

std::vector<std::string> started(const std::vector<queued_item>& q, const admission& a) {
  std::vector<std::string> out;
  for (auto i : a.start)
    out.push_back(queue_key(q[i].ns, q[i].name));
  return out;
}

std::string pad(int i) {
  std::string s = std::to_string(i);
  return std::string(3 - s.size(), '0') + s;
}

TEST(DatasyncAdmission, TwentyWithConcurrencyThreeStartTheOldest) {
  std::vector<queued_item> q;
  for (int i = 0; i < 20; ++i)
    q.push_back(item("ns", "ds-" + pad(i), t0 + std::chrono::seconds(i)));
  std::shuffle(q.begin(), q.end(), std::mt19937(7));  // input order must not matter
  auto a = admit(q, 0, with_concurrency(3), t0 + 60s);
  EXPECT_EQ(started(q, a), (std::vector<std::string>{"ns/ds-000", "ns/ds-001", "ns/ds-002"}));
  ASSERT_EQ(a.positions.size(), 17u);
  for (int i = 3; i < 20; ++i)
    EXPECT_EQ(a.positions.at("ns/ds-" + pad(i)), i - 2);
  EXPECT_EQ(a.free_slots, 0);
  EXPECT_FALSE(a.wake_at);
}

TEST(DatasyncAdmission, TiesBreakByNamespaceThenName) {
  std::vector<queued_item> q = {item("b", "a", t0), item("a", "z", t0), item("a", "y", t0),
                                item("a", "a", t0 + 1s)};
  auto a = admit(q, 0, with_concurrency(1), t0);
  EXPECT_EQ(started(q, a), std::vector<std::string>{"a/y"});
  EXPECT_EQ(a.positions.at("a/z"), 1);
  EXPECT_EQ(a.positions.at("b/a"), 2);
  EXPECT_EQ(a.positions.at("a/a"), 3);  // created later, despite sorting first by name
}

// A DataSync whose Queued status is not written yet holds its place: nothing younger starts
// before it (a burst of creations starts in creation order), and it does not start itself.
TEST(DatasyncAdmission, PendingHoldsItsPlaceAndStopsYoungerOnes) {
  std::vector<queued_item> q = {item("ns", "a", t0), item("ns", "b", t0 + 1s),
                                item("ns", "c", t0 + 2s), item("ns", "d", t0 + 3s)};
  q[1].pending = true;
  auto a = admit(q, 0, with_concurrency(3), t0 + 10s);
  EXPECT_EQ(started(q, a), std::vector<std::string>{"ns/a"});
  EXPECT_EQ(a.positions.at("ns/b"), 1);
  EXPECT_EQ(a.positions.at("ns/c"), 2);
  EXPECT_EQ(a.positions.at("ns/d"), 3);
  EXPECT_EQ(a.free_slots, 2);
  EXPECT_FALSE(a.wake_at) << "the pending one's write is a change: admission runs again then";
  q[1].pending = false;  // written (and a syncing): b and c take the two free slots
  q.erase(q.begin());
  a = admit(q, 1, with_concurrency(3), t0 + 10s);
  EXPECT_EQ(started(q, a), (std::vector<std::string>{"ns/b", "ns/c"}));
}

TEST(DatasyncAdmission, BackoffKeepsItsPlaceButIsSkipped) {
  const sys_seconds now = t0 + 100s;
  std::vector<queued_item> q = {
      item("ns", "a", t0, now + 60s),       // waiting
      item("ns", "b", t0 + 1s),             //
      item("ns", "c", t0 + 2s, now),        // backoff just over: may start
      item("ns", "d", t0 + 3s, now - 10s),  // backoff long over
      item("ns", "e", t0 + 4s, now + 30s),  // waiting, expires first
  };
  auto a = admit(q, 0, with_concurrency(2), now);
  EXPECT_EQ(started(q, a), (std::vector<std::string>{"ns/b", "ns/c"}));
  EXPECT_EQ(a.positions, (std::map<std::string, int>{{"ns/a", 1}, {"ns/d", 2}, {"ns/e", 3}}));
  EXPECT_FALSE(a.wake_at) << "no free slot: the next change runs admission";

  a = admit(q, 0, with_concurrency(10), now);
  EXPECT_EQ(started(q, a), (std::vector<std::string>{"ns/b", "ns/c", "ns/d"}));
  EXPECT_EQ(a.positions, (std::map<std::string, int>{{"ns/a", 1}, {"ns/e", 2}}));
  EXPECT_EQ(a.free_slots, 7);
  ASSERT_TRUE(a.wake_at);
  EXPECT_EQ(*a.wake_at, now + 30s);

  // At the wake time "e" starts even though "a", older, still waits.
  std::vector<queued_item> rest = {q[0], q[4]};
  a = admit(rest, 3, with_concurrency(10), now + 30s);
  EXPECT_EQ(started(rest, a), std::vector<std::string>{"ns/e"});
  EXPECT_EQ(a.positions.at("ns/a"), 1);
  EXPECT_EQ(a.wake_at, now + 60s);
}

TEST(DatasyncAdmission, LoweredConcurrencyAdmitsNoneRaisedAdmitsMore) {
  std::vector<queued_item> q;
  for (int i = 0; i < 5; ++i)
    q.push_back(item("ns", "q" + std::to_string(i), t0 + std::chrono::seconds(i)));
  auto a = admit(q, 3, with_concurrency(1), t0);  // policy went 3 → 1 with 3 running
  EXPECT_TRUE(a.start.empty());
  EXPECT_EQ(a.positions.size(), 5u);
  EXPECT_EQ(a.free_slots, 0);
  a = admit(q, 3, with_concurrency(3), t0);
  EXPECT_TRUE(a.start.empty());
  a = admit(q, 3, with_concurrency(5), t0);  // 3 → 5
  EXPECT_EQ(started(q, a), (std::vector<std::string>{"ns/q0", "ns/q1"}));
  EXPECT_EQ(a.positions.at("ns/q2"), 1);
  a = admit({}, 0, with_concurrency(5), t0);
  EXPECT_TRUE(a.start.empty());
  EXPECT_TRUE(a.positions.empty());
  EXPECT_EQ(a.free_slots, 5);
  EXPECT_FALSE(a.wake_at);
}

// A simulated controller: each tick admits, finishes some syncs (some failing into a backoff)
// and creates new DataSyncs. `concurrency_changes` also moves the policy at random.
struct sim_result {
  std::vector<std::string> start_order;
  std::vector<std::string> creation_order;  // by (created, ns, name)
  int max_syncing = 0;
};

sim_result simulate(uint32_t seed, bool failures, bool concurrency_changes) {
  std::mt19937 rng(seed);
  auto chance = [&](int percent) { return static_cast<int>(rng() % 100) < percent; };
  const char* namespaces[] = {"alpha", "beta", "gamma"};
  std::vector<queued_item> queue;
  std::vector<queued_item> syncing;
  std::vector<std::tuple<sys_seconds, std::string, std::string>> created;
  std::set<std::string> ever_started;
  sim_result out;
  datasync_policy policy = with_concurrency(3);
  sys_seconds now = t0;
  int next_id = 0;
  // Creates for 200 ticks, then runs until everything finished (bounded, in case it never does).
  for (int tick = 0; tick < 200 || ((!queue.empty() || !syncing.empty()) && tick < 20000); ++tick) {
    now += 1s;
    if (concurrency_changes && chance(5)) policy.concurrency = 1 + static_cast<int>(rng() % 5);
    // New DataSyncs, several in one second sometimes (ties on creationTimestamp).
    if (tick < 200) {
      int n = static_cast<int>(rng() % 3);
      for (int i = 0; i < n; ++i) {
        auto q = item(namespaces[rng() % 3], "ds-" + pad(next_id++), now);
        created.emplace_back(q.created, q.ns, q.name);
        queue.push_back(q);
      }
    }
    int before = static_cast<int>(syncing.size());
    auto a = admit(queue, before, policy, now);
    // Positions are 1..k over everything not started.
    EXPECT_EQ(a.positions.size() + a.start.size(), queue.size());
    std::vector<int> pos;
    for (auto& [k, p] : a.positions)
      pos.push_back(p);
    std::sort(pos.begin(), pos.end());
    for (std::size_t i = 0; i < pos.size(); ++i)
      EXPECT_EQ(pos[i], static_cast<int>(i) + 1);
    if (before >= policy.concurrency) {
      EXPECT_TRUE(a.start.empty());
    }
    std::vector<bool> take(queue.size(), false);
    for (auto i : a.start) {
      EXPECT_FALSE(queue[i].not_before && *queue[i].not_before > now) << "started in backoff";
      take[i] = true;
      auto key = queue_key(queue[i].ns, queue[i].name);
      if (ever_started.insert(key).second) out.start_order.push_back(key);
      syncing.push_back(queue[i]);
    }
    std::vector<queued_item> rest;
    for (std::size_t i = 0; i < queue.size(); ++i)
      if (!take[i]) rest.push_back(queue[i]);
    queue = std::move(rest);
    // Never above the limit, except that a lowered limit does not stop running syncs.
    EXPECT_LE(static_cast<int>(syncing.size()), std::max(before, policy.concurrency));
    if (!concurrency_changes) {
      EXPECT_LE(static_cast<int>(syncing.size()), policy.concurrency);
    }
    out.max_syncing = std::max(out.max_syncing, static_cast<int>(syncing.size()));
    // Finish some; a failure goes back to the queue (same creation time) with a backoff.
    std::vector<queued_item> still;
    for (auto& s : syncing) {
      if (!chance(30)) {
        still.push_back(s);
      } else if (failures && chance(30)) {
        s.not_before = now + std::chrono::seconds(1 + rng() % 10);
        queue.push_back(s);
      }
    }
    syncing = std::move(still);
  }
  std::sort(created.begin(), created.end());
  for (auto& [t, ns, name] : created)
    out.creation_order.push_back(queue_key(ns, name));
  EXPECT_TRUE(queue.empty()) << "the simulation should drain";
  return out;
}

TEST(DatasyncAdmission, SimulationNeverExceedsConcurrencyAndStartsInCreationOrder) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(seed);
    auto r = simulate(seed, /*failures=*/false, /*concurrency_changes=*/false);
    EXPECT_EQ(r.max_syncing, 3);
    EXPECT_EQ(r.start_order, r.creation_order);
  }
}

TEST(DatasyncAdmission, SimulationWithRetriesAndPolicyChangesStaysWithinLimits) {
  for (uint32_t seed = 11; seed <= 15; ++seed) {
    SCOPED_TRACE(seed);
    auto r = simulate(seed, /*failures=*/true, /*concurrency_changes=*/true);
    // Only a DataSync that already ran can wait out a backoff, so the first starts are
    // still in creation order: a retry never delays a DataSync that has not started yet
    // beyond its FIFO place, and every DataSync starts.
    EXPECT_EQ(r.start_order, r.creation_order);
    EXPECT_LE(r.max_syncing, 5);
  }
}

// ---------------------------------------------------------------------------------------------
// Failures

TEST(DatasyncFailure, ClassifiesEveryExitCode) {
  EXPECT_EQ(classify(k_exit_missing_source, ""), failure_kind::missing_source);
  EXPECT_EQ(classify(k_exit_checksum_mismatch, ""), failure_kind::checksum_mismatch);
  EXPECT_EQ(classify(k_exit_unauthorized, ""), failure_kind::unauthorized);
  for (int code : {k_exit_ok, 1, 2, 6, 42, 126, 127, 137, 143, 255, k_exit_unknown})
    EXPECT_EQ(classify(code, ""), failure_kind::transient) << code;
  EXPECT_EQ(k_exit_missing_source, 3);
  EXPECT_EQ(k_exit_checksum_mismatch, 4);
  EXPECT_EQ(k_exit_unauthorized, 5);
}

TEST(DatasyncFailure, ClassifiesJobAndPodReasons) {
  for (const char* reason :
       {"DeadlineExceeded", "Evicted", "BackoffLimitExceeded", "OOMKilled", "Error", ""})
    EXPECT_EQ(classify(k_exit_unknown, reason), failure_kind::transient) << reason;
  // The agent's own reason word counts when the exit code was not seen.
  EXPECT_EQ(classify(k_exit_unknown, "MissingSource"), failure_kind::missing_source);
  EXPECT_EQ(classify(1, "ChecksumMismatch\n"), failure_kind::checksum_mismatch);
  EXPECT_EQ(classify(k_exit_unknown, " Unauthorized"), failure_kind::unauthorized);
  // Only the exact word: a message mentioning it stays transient.
  EXPECT_EQ(classify(1, "proxy said Unauthorized once"), failure_kind::transient);
  // An agent exit code wins over a Pod reason.
  EXPECT_EQ(classify(k_exit_checksum_mismatch, "Evicted"), failure_kind::checksum_mismatch);
  EXPECT_EQ(classify(k_exit_missing_source, "DeadlineExceeded"), failure_kind::missing_source);
  EXPECT_EQ(to_string(failure_kind::missing_source), "MissingSource");
  EXPECT_EQ(to_string(failure_kind::transient), "Transient");
}

TEST(DatasyncRetry, BackoffDoublesUpToTheCap) {
  datasync_policy p;
  p.retry_limit = 10;  // 5m first, 1h cap
  const std::vector<std::chrono::seconds> want = {5min, 10min, 20min, 40min, 1h, 1h, 1h};
  for (int n = 0; n < static_cast<int>(want.size()); ++n) {
    SCOPED_TRACE(n);
    auto d = decide_retry(failure_kind::transient, n, p, t0);
    EXPECT_TRUE(d.retry);
    EXPECT_EQ(d.reason, "Retrying");
    EXPECT_EQ(d.wait, want[n]);
    ASSERT_TRUE(d.next_retry_time);
    EXPECT_EQ(*d.next_retry_time, t0 + want[n]);
    EXPECT_EQ(backoff_for(n, p), want[n]);
  }
  // A cap that is not a power-of-two multiple of the first wait is reached exactly.
  p.retry_backoff = 7s;
  p.retry_backoff_limit = 100s;
  EXPECT_EQ(backoff_for(3, p), 56s);
  EXPECT_EQ(backoff_for(4, p), 100s);
  // Cap equal to the first wait: no growth.
  p.retry_backoff_limit = 7s;
  EXPECT_EQ(backoff_for(5, p), 7s);
}

TEST(DatasyncRetry, HugeRetryCountsDoNotOverflow) {
  datasync_policy p;
  p.retry_limit = 1000;
  p.retry_backoff = 1s;
  p.retry_backoff_limit = k_duration_max;
  auto d = decide_retry(failure_kind::transient, 200, p, t0);
  EXPECT_TRUE(d.retry);
  EXPECT_EQ(d.wait, k_duration_max);
  EXPECT_EQ(*d.next_retry_time, t0 + k_duration_max);
  EXPECT_EQ(backoff_for(INT_MAX, p), k_duration_max);
  EXPECT_EQ(backoff_for(-5, p), 1s);
}

TEST(DatasyncRetry, StopsAtTheRetryLimit) {
  datasync_policy p;  // retryLimit 2
  EXPECT_TRUE(decide_retry(failure_kind::transient, 0, p, t0).retry);
  EXPECT_TRUE(decide_retry(failure_kind::transient, 1, p, t0).retry);
  auto d = decide_retry(failure_kind::transient, 2, p, t0);
  EXPECT_FALSE(d.retry);
  EXPECT_FALSE(d.next_retry_time);
  EXPECT_EQ(d.reason, "RetryLimitExceeded");
  EXPECT_NE(d.message.find("after 2 retries"), std::string::npos) << d.message;
  EXPECT_FALSE(decide_retry(failure_kind::transient, 3, p, t0).retry);
  p.retry_limit = 0;
  EXPECT_EQ(decide_retry(failure_kind::transient, 0, p, t0).reason, "RetryLimitExceeded");
}

TEST(DatasyncRetry, ChecksumMismatchRetriesThenFailsSayingWhy) {
  datasync_policy p;
  auto d = decide_retry(failure_kind::checksum_mismatch, 0, p, t0);
  EXPECT_TRUE(d.retry);
  EXPECT_EQ(d.reason, "Retrying");
  EXPECT_NE(d.message.find("checksum mismatch"), std::string::npos);
  EXPECT_NE(d.message.find("retry 1 of 2"), std::string::npos) << d.message;
  EXPECT_NE(d.message.find("2024-10-04T00:05:00Z"), std::string::npos) << d.message;
  d = decide_retry(failure_kind::checksum_mismatch, 2, p, t0);
  EXPECT_FALSE(d.retry);
  EXPECT_EQ(d.reason, "RetryLimitExceeded");
  EXPECT_NE(d.message.find("checksum mismatch"), std::string::npos) << d.message;
}

TEST(DatasyncRetry, TerminalKindsNeverRetry) {
  datasync_policy p;
  p.retry_limit = 100;
  auto d = decide_retry(failure_kind::missing_source, 0, p, t0);
  EXPECT_FALSE(d.retry);
  EXPECT_FALSE(d.next_retry_time);
  EXPECT_EQ(d.reason, "MissingSource");
  d = decide_retry(failure_kind::unauthorized, 0, p, t0);
  EXPECT_FALSE(d.retry);
  EXPECT_EQ(d.reason, "Unauthorized");
  EXPECT_NE(d.message.find("secretRef"), std::string::npos) << d.message;
}

// ---------------------------------------------------------------------------------------------
// Pruning

version_item version(std::string name, int age_rank, bool succeeded = true) {
  version_item v;
  v.version = name;
  v.created = t0 + std::chrono::seconds(age_rank);
  v.succeeded = succeeded;
  v.claims = {name + "-base", name + "-tools"};
  v.name = std::move(name);
  return v;
}

using strings = std::vector<std::string>;

TEST(DatasyncPrune, RetentionZeroKeepsEverything) {
  std::vector<version_item> items = {version("v1", 1), version("v2", 2), version("v3", 3)};
  auto plan = plan_prune(items, {}, 0);
  EXPECT_TRUE(plan.delete_claims.empty());
  EXPECT_TRUE(plan.kept_for_mount.empty());
  EXPECT_TRUE(plan.pruned_datasyncs.empty());
  EXPECT_TRUE(plan_prune(items, {}, -1).delete_claims.empty());
}

TEST(DatasyncPrune, KeepsTheNewestN) {
  std::vector<version_item> items = {version("v3", 3), version("v5", 5), version("v1", 1),
                                     version("v4", 4), version("v2", 2)};
  auto plan = plan_prune(items, {}, 2);
  // Oldest first.
  EXPECT_EQ(plan.delete_claims,
            (strings{"v1-base", "v1-tools", "v2-base", "v2-tools", "v3-base", "v3-tools"}));
  EXPECT_EQ(plan.pruned_datasyncs, (strings{"v1", "v2", "v3"}));
  EXPECT_TRUE(plan.kept_for_mount.empty());
  EXPECT_TRUE(plan_prune(items, {}, 5).delete_claims.empty());
  EXPECT_TRUE(plan_prune(items, {}, 50).delete_claims.empty());
}

TEST(DatasyncPrune, NeverDeletesAMountedClaim) {
  std::vector<version_item> items = {version("v1", 1), version("v2", 2), version("v3", 3)};
  auto plan = plan_prune(items, {"v1-base", "v3-tools", "unrelated"}, 1);
  EXPECT_EQ(plan.delete_claims, (strings{"v1-tools", "v2-base", "v2-tools"}));
  EXPECT_EQ(plan.kept_for_mount, strings{"v1-base"});
  EXPECT_EQ(plan.pruned_datasyncs, strings{"v2"});  // v1 still has a mounted volume
}

TEST(DatasyncPrune, IgnoresVersionsThatDidNotSucceed) {
  std::vector<version_item> items = {
      version("v0", 0, false),  // old and Failed: not ours to delete
      version("v1", 1),        version("v2", 2), version("v3", 3),
      version("v4", 4, false),  // newer but Failed: does not count toward N
      version("v5", 5, false),  // newest, still Syncing
  };
  auto plan = plan_prune(items, {}, 1);
  // v3 is the newest Succeeded: it stays even though v4 and v5 are newer.
  EXPECT_EQ(plan.delete_claims, (strings{"v1-base", "v1-tools", "v2-base", "v2-tools"}));
  EXPECT_EQ(plan.pruned_datasyncs, (strings{"v1", "v2"}));
}

TEST(DatasyncPrune, TiesGoneClaimsAndSharedClaims) {
  auto a = version("a", 1);
  auto b = version("b", 1);  // same second: "b" counts as newer
  auto plan = plan_prune({a, b}, {}, 1);
  EXPECT_EQ(plan.pruned_datasyncs, strings{"a"});
  // A DataSync whose volumes are already gone is pruned without deleting anything.
  auto gone = version("old", 0);
  gone.claims.clear();
  plan = plan_prune({gone, b}, {}, 1);
  EXPECT_TRUE(plan.delete_claims.empty());
  EXPECT_EQ(plan.pruned_datasyncs, strings{"old"});
  // A claim a kept DataSync also lists is never deleted.
  auto c = version("c", 0);
  c.claims.push_back("b-base");
  plan = plan_prune({c, b}, {}, 1);
  EXPECT_EQ(plan.delete_claims, (strings{"c-base", "c-tools"}));
  EXPECT_TRUE(plan.pruned_datasyncs.empty());
}

TEST(DatasyncPrune, RandomPlansNeverTouchMountedOrKeptClaims) {
  std::mt19937 rng(3);
  for (int round = 0; round < 200; ++round) {
    std::vector<version_item> items;
    std::set<std::string> mounted;
    int n = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < n; ++i) {
      auto v = version("v" + std::to_string(i), static_cast<int>(rng() % 4), rng() % 4 != 0);
      for (auto& c : v.claims)
        if (rng() % 3 == 0) mounted.insert(c);
      items.push_back(v);
    }
    int retention = static_cast<int>(rng() % 4);
    auto plan = plan_prune(items, mounted, retention);
    std::set<std::string> deleted(plan.delete_claims.begin(), plan.delete_claims.end());
    EXPECT_EQ(deleted.size(), plan.delete_claims.size()) << "duplicates";
    for (auto& c : plan.delete_claims)
      EXPECT_EQ(mounted.count(c), 0u) << c;
    for (auto& v : items) {
      if (v.succeeded && retention > 0) continue;
      for (auto& c : v.claims)
        EXPECT_EQ(deleted.count(c), 0u) << c;
    }
    // Succeeded versions whose claims survive: at least min(N, succeeded) of them untouched.
    int untouched = 0;
    int succeeded = 0;
    for (auto& v : items) {
      if (!v.succeeded) continue;
      ++succeeded;
      bool any = std::any_of(v.claims.begin(), v.claims.end(),
                             [&](const std::string& c) { return deleted.count(c) != 0; });
      untouched += any ? 0 : 1;
    }
    EXPECT_GE(untouched, std::min(retention, succeeded));
  }
}

}  // namespace
}  // namespace tidesync::datasync
