// The BucketSyncPolicy reconcile decision (actors/bucketsync_policy_logic.hpp,
// docs/bucketsync-policy.md): first reconcile, due fires, missed runs and the starting
// deadline, Forbid/Allow, suspend, the manual trigger's exactly-once handshake, history
// pruning, invalid specs, time zones, @every anchors and requeue timing.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "actors/bucketsync_policy_logic.hpp"
#include "config/bucketsync.hpp"
#include "config/condition.hpp"
#include "runtime/json/value.hpp"
#include "runtime/rfc3339.hpp"

using namespace std::chrono;
using namespace tidesync;
using namespace tidesync::actors;
using config::bucket_sync_phase;
using config::sys_seconds;

namespace {

sys_seconds at(const char* text) {
  auto t = rfc3339::parse(text);
  EXPECT_TRUE(t.has_value()) << text;
  return t.value_or(sys_seconds{});
}

json::value policy_json(const std::string& schedule = "0 2 * * *",
                        const char* created = "2024-01-15T01:30:00Z") {
  auto v = json::parse(R"({
    "apiVersion": "tidesync.io/v1alpha1", "kind": "BucketSyncPolicy",
    "metadata": {"name": "nightly", "namespace": "default", "uid": "pu1", "generation": 1,
                 "resourceVersion": "7"},
    "spec": {"source": "s3:photos/2024", "destination": "gcs:backup/2024",
             "jobLabels": {"workload-type": "backup"}}
  })");
  EXPECT_TRUE(v.has_value());
  (*v)["metadata"]["creationTimestamp"] = created;
  (*v)["spec"]["schedule"] = schedule;
  return *v;
}

const config::condition* cond(const policy_result& r, std::string_view type) {
  return config::find_condition(r.status.conditions, type);
}

std::vector<std::string> reasons(const policy_result& r) {
  std::vector<std::string> out;
  for (const auto& e : r.events)
    out.push_back(e.reason);
  return out;
}

std::string name_of(const json::value& obj) {
  return std::string(obj.at("metadata")->get_string("name"));
}

// Drives the step like the policy controller: creates appear in the cache (creation time =
// now), removes drop the child, the status and the annotation removal are written back.
struct world {
  json::value policy = policy_json();
  std::vector<policy_child> children;

  policy_result run(sys_seconds now, bool apply = true) {
    policy_result r = policy_step(policy, children, now);
    if (!apply) return r;
    for (const auto& obj : r.create) {
      policy_child c = child_from(obj);
      c.creation_time = now;
      children.push_back(c);
    }
    for (const auto& n : r.remove)
      std::erase_if(children, [&](const policy_child& c) { return c.name == n; });
    if (r.status_changed) policy["status"] = config::to_json(r.status);
    if (r.remove_sync_now_annotation)
      policy["metadata"]["annotations"].as_object().erase(config::k_sync_now_annotation);
    return r;
  }

  policy_child& child(const std::string& name) {
    for (auto& c : children)
      if (c.name == name) return c;
    ADD_FAILURE() << "no child " << name;
    return children.front();
  }

  void finish(const std::string& name, sys_seconds when,
              std::optional<std::string> error = std::nullopt) {
    auto& c = child(name);
    c.phase = bucket_sync_phase::finished;
    c.finish_time = when;
    c.error = std::move(error);
  }

  void annotate(const std::string& value) {
    policy["metadata"]["annotations"][config::k_sync_now_annotation] = value;
  }
};

}  // namespace

TEST(BucketSyncPolicyStep, FirstReconcileSetsNextSyncTimeAndDoesNotRun) {
  world w;
  auto r = w.run(at("2024-01-15T01:30:10Z"));
  EXPECT_TRUE(r.create.empty());
  EXPECT_TRUE(r.remove.empty());
  EXPECT_TRUE(r.events.empty());
  EXPECT_TRUE(r.status_changed);
  EXPECT_EQ(r.status.next_sync_time, at("2024-01-15T02:00:00Z"));
  EXPECT_EQ(r.status.last_schedule_time, std::nullopt);
  EXPECT_EQ(r.status.last_sync, std::nullopt);
  EXPECT_EQ(r.status.error, std::nullopt);
  EXPECT_EQ(r.status.observed_generation, 1);
  EXPECT_EQ(r.status.last_reconciled_time, at("2024-01-15T01:30:10Z"));
  ASSERT_NE(cond(r, "Ready"), nullptr);
  EXPECT_EQ(cond(r, "Ready")->status, "True");
  EXPECT_EQ(cond(r, "Ready")->reason, "Scheduled");
  EXPECT_NE(cond(r, "Ready")->message.find("2024-01-15T02:00:00Z"), std::string::npos);
  // Requeue exactly at the fire: 29 min 50 s.
  EXPECT_EQ(r.outcome, reconcile_outcome::requeue(seconds{1790}));
  ASSERT_NE(cond(r, "SyncNowCompleted"), nullptr);
  EXPECT_EQ(cond(r, "SyncNowCompleted")->status, "False");
}

TEST(BucketSyncPolicyStep, DueFireCreatesExactlyOneCompleteChild) {
  world w;
  w.run(at("2024-01-15T01:30:10Z"));
  const sys_seconds now = at("2024-01-15T02:00:01Z");
  // The same inputs twice give the same object: a retried create gets AlreadyExists.
  auto again = w.run(now, false);
  auto r = w.run(now);
  ASSERT_EQ(r.create.size(), 1U);
  ASSERT_EQ(again.create.size(), 1U);
  EXPECT_EQ(r.create[0], again.create[0]);
  const json::value& obj = r.create[0];
  const std::string name = "nightly-1705284000";  // unix seconds of 2024-01-15T02:00:00Z
  EXPECT_EQ(name_of(obj), name);
  EXPECT_EQ(obj.get_string("apiVersion"), "tidesync.io/v1alpha1");
  EXPECT_EQ(obj.get_string("kind"), "BucketSync");
  const json::value& md = *obj.at("metadata");
  EXPECT_EQ(md.get_string("namespace"), "default");
  EXPECT_EQ(md.at_path({"labels", "tidesync.io/policy"})->as_string(), "nightly");
  EXPECT_EQ(md.at_path({"labels", "tidesync.io/trigger"})->as_string(), "schedule");
  EXPECT_EQ(md.at_path({"labels", "workload-type"})->as_string(), "backup");
  EXPECT_EQ(md.at_path({"annotations", "tidesync.io/scheduled-time"})->as_string(),
            "2024-01-15T02:00:00Z");
  const json::value& owner = md.at("ownerReferences")->as_array().at(0);
  EXPECT_EQ(owner.get_string("kind"), "BucketSyncPolicy");
  EXPECT_EQ(owner.get_string("name"), "nightly");
  EXPECT_EQ(owner.get_string("uid"), "pu1");
  EXPECT_TRUE(owner.get_bool("controller"));
  EXPECT_TRUE(owner.get_bool("blockOwnerDeletion"));
  // The spec is the policy's sync template plus policyRef; jobLabels are inherited.
  EXPECT_EQ(obj.at_path({"spec", "source"})->as_string(), "s3:photos/2024");
  EXPECT_EQ(obj.at_path({"spec", "destination"})->as_string(), "gcs:backup/2024");
  EXPECT_EQ(obj.at_path({"spec", "policyRef", "name"})->as_string(), "nightly");
  EXPECT_EQ(obj.at_path({"spec", "jobLabels", "workload-type"})->as_string(), "backup");
  EXPECT_EQ(obj.at_path({"spec", "schedule"}), nullptr);
  // The created object is a valid BucketSync.
  EXPECT_TRUE(config::parse_bucket_sync(obj).has_value());

  EXPECT_EQ(r.status.last_schedule_time, at("2024-01-15T02:00:00Z"));
  EXPECT_EQ(r.status.last_sync, name);
  EXPECT_EQ(r.status.last_sync_time, now);
  EXPECT_EQ(r.status.active, std::vector<std::string>{name});
  EXPECT_EQ(r.status.next_sync_time, at("2024-01-16T02:00:00Z"));
  EXPECT_EQ(reasons(r), std::vector<std::string>{"SyncCreated"});
  EXPECT_EQ(r.outcome, reconcile_outcome::requeue(k_max_policy_requeue));

  // Again, with the child in the cache: no second run, no event.
  r = w.run(now + 2s);
  EXPECT_TRUE(r.create.empty());
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(r.status.active, std::vector<std::string>{name});
}

TEST(BucketSyncPolicyStep, NoSecondRunWhenTheStatusWriteWasLostOrTheCacheLags) {
  world w;
  w.run(at("2024-01-15T01:30:10Z"));
  const json::value before = w.policy;
  const sys_seconds now = at("2024-01-15T02:00:01Z");
  auto r = w.run(now);
  ASSERT_EQ(r.create.size(), 1U);
  const json::value after = w.policy;

  // Status write lost (old status), child in the cache: found by its scheduled-time.
  w.policy = before;
  r = w.run(now + 5s);
  EXPECT_TRUE(r.create.empty());
  EXPECT_EQ(r.status.last_schedule_time, at("2024-01-15T02:00:00Z"));
  EXPECT_EQ(r.status.last_sync, "nightly-1705284000");

  // Status written, the cache does not show the child yet: lastScheduleTime says it ran, and
  // it counts as active (a manual run waits behind it under Forbid).
  w.policy = after;
  w.children.clear();
  w.annotate("");
  r = w.run(now + 5s, false);
  EXPECT_TRUE(r.create.empty());
  EXPECT_EQ(r.status.active, std::vector<std::string>{"nightly-1705284000"});
  EXPECT_EQ(cond(r, "SyncNowCompleted")->reason, "Waiting");
}

TEST(BucketSyncPolicyStep, DowntimeStartsAtMostOneRun) {
  world w;
  auto status = config::bucket_sync_policy_status{};
  status.last_schedule_time = at("2024-01-10T02:00:00Z");
  w.policy["status"] = config::to_json(status);
  auto r = w.run(at("2024-01-15T05:00:00Z"));
  ASSERT_EQ(r.create.size(), 1U);
  EXPECT_EQ(name_of(r.create[0]), "nightly-1705284000") << "the latest missed fire";
  EXPECT_NE(r.events.at(0).message.find("5 fires were missed"), std::string::npos)
      << r.events.at(0).message;
  r = w.run(at("2024-01-15T05:00:10Z"));
  EXPECT_TRUE(r.create.empty());
}

TEST(BucketSyncPolicyStep, StartingDeadlineSkipsALateRunOnce) {
  world w;
  w.policy["spec"]["startingDeadlineSeconds"] = 3600;
  auto status = config::bucket_sync_policy_status{};
  status.last_schedule_time = at("2024-01-10T02:00:00Z");
  w.policy["status"] = config::to_json(status);
  auto r = w.run(at("2024-01-15T05:00:00Z"));
  EXPECT_TRUE(r.create.empty());
  EXPECT_EQ(cond(r, "Ready")->status, "True");
  EXPECT_EQ(cond(r, "Ready")->reason, "MissedSchedule");
  EXPECT_NE(cond(r, "Ready")->message.find("2024-01-15T02:00:00Z"), std::string::npos);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].type, "Warning");
  EXPECT_EQ(r.events[0].reason, "MissedSchedule");
  EXPECT_EQ(r.status.next_sync_time, at("2024-01-16T02:00:00Z"));
  // Looked at again: still skipped, no second event.
  r = w.run(at("2024-01-15T05:10:00Z"));
  EXPECT_TRUE(r.create.empty());
  EXPECT_TRUE(r.events.empty());
  // The next fire on time runs normally.
  r = w.run(at("2024-01-16T02:00:30Z"));
  ASSERT_EQ(r.create.size(), 1U);
  EXPECT_EQ(cond(r, "Ready")->reason, "Scheduled");

  // Within the deadline a late run still starts.
  world w2;
  w2.policy["spec"]["startingDeadlineSeconds"] = 3600;
  w2.policy["status"] = config::to_json(status);
  EXPECT_EQ(w2.run(at("2024-01-15T02:59:00Z")).create.size(), 1U);
}

TEST(BucketSyncPolicyStep, ForbidDefersAFireWhileARunIsActive) {
  world w;
  w.run(at("2024-01-15T01:30:10Z"));
  auto r = w.run(at("2024-01-15T02:00:00Z"));
  ASSERT_EQ(r.create.size(), 1U);
  const std::string first = name_of(r.create[0]);
  w.child(first).phase = bucket_sync_phase::sync;  // still running a day later

  r = w.run(at("2024-01-16T02:00:05Z"));
  EXPECT_TRUE(r.create.empty());
  EXPECT_EQ(reasons(r), std::vector<std::string>{"SyncSkipped"});
  EXPECT_NE(r.events[0].message.find(first), std::string::npos);
  EXPECT_EQ(cond(r, "Ready")->reason, "SyncSkipped");
  EXPECT_EQ(r.status.last_schedule_time, at("2024-01-15T02:00:00Z")) << "not advanced";
  EXPECT_EQ(r.status.active, std::vector<std::string>{first});
  r = w.run(at("2024-01-16T02:30:00Z"));
  EXPECT_TRUE(r.create.empty());
  EXPECT_TRUE(r.events.empty()) << "recorded once";

  // The active run finishes: the deferred fire starts (no deadline), once.
  w.finish(first, at("2024-01-16T03:00:00Z"));
  r = w.run(at("2024-01-16T03:00:01Z"));
  ASSERT_EQ(r.create.size(), 1U);
  EXPECT_EQ(name_of(r.create[0]), "nightly-1705370400");
  EXPECT_EQ(cond(r, "Ready")->reason, "Scheduled");
  EXPECT_EQ(r.status.active, std::vector<std::string>{"nightly-1705370400"});
}

TEST(BucketSyncPolicyStep, ForbidWithDeadlineMissesTheRunIfTheActiveOneTakesTooLong) {
  world w;
  w.policy["spec"]["startingDeadlineSeconds"] = 600;
  w.run(at("2024-01-15T01:30:10Z"));
  auto r = w.run(at("2024-01-15T02:00:00Z"));
  const std::string first = name_of(r.create.at(0));
  w.child(first).phase = bucket_sync_phase::initialize;
  EXPECT_TRUE(w.run(at("2024-01-16T02:00:00Z")).create.empty());
  w.finish(first, at("2024-01-16T02:30:00Z"));
  r = w.run(at("2024-01-16T02:30:01Z"));
  EXPECT_TRUE(r.create.empty());
  EXPECT_EQ(reasons(r), std::vector<std::string>{"MissedSchedule"});
}

TEST(BucketSyncPolicyStep, AllowStartsWhileARunIsActive) {
  world w;
  w.policy["spec"]["concurrencyPolicy"] = "Allow";
  w.run(at("2024-01-15T01:30:10Z"));
  auto r = w.run(at("2024-01-15T02:00:00Z"));
  const std::string first = name_of(r.create.at(0));
  w.child(first).phase = bucket_sync_phase::sync;
  r = w.run(at("2024-01-16T02:00:00Z"));
  ASSERT_EQ(r.create.size(), 1U);
  EXPECT_EQ(r.status.active, (std::vector<std::string>{first, "nightly-1705370400"}));
}

TEST(BucketSyncPolicyStep, SuspendStopsCronRunsButNotTheManualTrigger) {
  world w;
  w.policy["spec"]["suspend"] = true;
  auto r = w.run(at("2024-01-15T02:00:00Z"));
  EXPECT_TRUE(r.create.empty());
  EXPECT_EQ(r.status.next_sync_time, std::nullopt);
  EXPECT_EQ(cond(r, "Ready")->status, "False");
  EXPECT_EQ(cond(r, "Ready")->reason, "Suspended");
  EXPECT_EQ(r.outcome, reconcile_outcome::success());

  w.annotate("");
  r = w.run(at("2024-01-15T02:01:00Z"));
  ASSERT_EQ(r.create.size(), 1U);
  EXPECT_NE(name_of(r.create[0]).find("nightly-manual-"), std::string::npos);

  // Resumed: the latest missed fire (02:00) starts once it is no longer blocked (Forbid).
  w.finish(name_of(r.create[0]), at("2024-01-15T02:05:00Z"));
  w.policy["spec"]["suspend"] = false;
  r = w.run(at("2024-01-15T02:06:00Z"));
  ASSERT_EQ(r.create.size(), 1U);
  EXPECT_EQ(name_of(r.create[0]), "nightly-1705284000");
  EXPECT_TRUE(r.remove_sync_now_annotation);
}

TEST(BucketSyncPolicyStep, ManualTriggerRunsOnceAndIsRemovedWhenDone) {
  world w;
  w.run(at("2024-01-15T01:30:10Z"));
  w.annotate("");
  const json::value unwritten = w.policy;
  auto r = w.run(at("2024-01-15T01:40:00Z"));
  ASSERT_EQ(r.create.size(), 1U);
  const std::string name = name_of(r.create[0]);
  EXPECT_EQ(name.rfind("nightly-manual-", 0), 0U) << name;
  EXPECT_EQ(name.size(), std::string("nightly-manual-").size() + 10);
  const json::value& md = *r.create[0].at("metadata");
  EXPECT_EQ(md.at_path({"annotations", "tidesync.io/sync-now"})->as_string(), "");
  EXPECT_EQ(md.at_path({"labels", "tidesync.io/trigger"})->as_string(), "manual");
  EXPECT_FALSE(r.remove_sync_now_annotation);
  EXPECT_EQ(cond(r, "SyncNowCompleted")->reason, "Running");
  EXPECT_EQ(r.status.last_sync, name);
  EXPECT_EQ(reasons(r), std::vector<std::string>{"SyncCreated"});

  // Controller restarted before the status write: same name, found in the cache.
  auto again = policy_step(unwritten, w.children, at("2024-01-15T01:41:00Z"));
  EXPECT_TRUE(again.create.empty());
  // ... or not yet in the cache: the same name again (AlreadyExists), never a new one.
  again = policy_step(unwritten, {}, at("2024-01-15T01:41:00Z"));
  ASSERT_EQ(again.create.size(), 1U);
  EXPECT_EQ(name_of(again.create[0]), name);

  w.child(name).phase = bucket_sync_phase::sync;
  r = w.run(at("2024-01-15T01:45:00Z"));
  EXPECT_TRUE(r.create.empty());
  EXPECT_FALSE(r.remove_sync_now_annotation);

  // Finished: the annotation goes; the status (written first) says so.
  w.finish(name, at("2024-01-15T01:50:00Z"));
  const json::value annotated = w.policy;
  r = w.run(at("2024-01-15T01:50:01Z"));
  EXPECT_TRUE(r.create.empty());
  EXPECT_TRUE(r.remove_sync_now_annotation);
  EXPECT_EQ(cond(r, "SyncNowCompleted")->status, "True");
  EXPECT_EQ(reasons(r), std::vector<std::string>{"SyncNowCompleted"});
  EXPECT_EQ(r.events[0].type, "Normal");

  // The cache still shows the annotation with the new status: removed again, no new run.
  json::value lagging = annotated;
  lagging["status"] = config::to_json(r.status);
  auto lag = policy_step(lagging, w.children, at("2024-01-15T01:50:02Z"));
  EXPECT_TRUE(lag.create.empty());
  EXPECT_TRUE(lag.remove_sync_now_annotation);
  EXPECT_TRUE(lag.events.empty());

  // Annotation gone: the condition turns False, ready for the next request.
  r = w.run(at("2024-01-15T01:51:00Z"));
  EXPECT_FALSE(r.remove_sync_now_annotation);
  EXPECT_EQ(cond(r, "SyncNowCompleted")->status, "False");
  EXPECT_EQ(cond(r, "SyncNowCompleted")->last_transition_time, at("2024-01-15T01:51:00Z"));

  // The same (empty) value again later is a new request: a new run under a new name.
  w.annotate("");
  r = w.run(at("2024-01-15T01:55:00Z"));
  ASSERT_EQ(r.create.size(), 1U);
  EXPECT_NE(name_of(r.create[0]), name);
}

TEST(BucketSyncPolicyStep, ManualTriggerWaitsUnderForbidAndReportsFailure) {
  world w;
  w.run(at("2024-01-15T01:30:10Z"));
  auto r = w.run(at("2024-01-15T02:00:00Z"));
  const std::string cron_run = name_of(r.create.at(0));
  w.child(cron_run).phase = bucket_sync_phase::sync;
  w.annotate("2024-01-15T02:01");
  r = w.run(at("2024-01-15T02:01:00Z"));
  EXPECT_TRUE(r.create.empty());
  EXPECT_EQ(reasons(r), std::vector<std::string>{"SyncNowWaiting"});
  EXPECT_EQ(cond(r, "SyncNowCompleted")->reason, "Waiting");
  EXPECT_NE(cond(r, "SyncNowCompleted")->message.find(cron_run), std::string::npos);
  r = w.run(at("2024-01-15T02:02:00Z"));
  EXPECT_TRUE(r.events.empty()) << "recorded once";

  w.finish(cron_run, at("2024-01-15T02:10:00Z"));
  r = w.run(at("2024-01-15T02:10:01Z"));
  ASSERT_EQ(r.create.size(), 1U);
  const std::string manual = name_of(r.create[0]);
  EXPECT_EQ(r.create[0].at_path({"metadata", "annotations", "tidesync.io/sync-now"})->as_string(),
            "2024-01-15T02:01");

  w.finish(manual, at("2024-01-15T02:20:00Z"), "Job x failed: BackoffLimitExceeded");
  r = w.run(at("2024-01-15T02:20:01Z"));
  EXPECT_TRUE(r.remove_sync_now_annotation);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].type, "Warning");
  EXPECT_NE(cond(r, "SyncNowCompleted")->message.find("BackoffLimitExceeded"), std::string::npos);
}

TEST(BucketSyncPolicyStep, HistoryLimitKeepsTheNewestFinished) {
  world w;
  w.policy["spec"]["syncHistoryLimit"] = 2;
  auto add = [&](std::string name, const char* created, bucket_sync_phase phase) {
    policy_child c;
    c.name = std::move(name);
    c.creation_time = at(created);
    c.phase = phase;
    w.children.push_back(c);
  };
  add("nightly-4", "2024-01-14T02:00:00Z", bucket_sync_phase::finished);
  add("nightly-1", "2024-01-11T02:00:00Z", bucket_sync_phase::finished);
  add("nightly-0", "2024-01-10T02:00:00Z", bucket_sync_phase::sync);  // old but running
  add("nightly-3", "2024-01-13T02:00:00Z", bucket_sync_phase::finished);
  add("nightly-2", "2024-01-12T02:00:00Z", bucket_sync_phase::finished);
  auto r = w.run(at("2024-01-15T01:40:00Z"), false);
  EXPECT_EQ(r.remove, (std::vector<std::string>{"nightly-1", "nightly-2"}));
  // One already being deleted is not counted and not deleted again.
  w.children[1].deleting = true;
  r = w.run(at("2024-01-15T01:40:00Z"), false);
  EXPECT_EQ(r.remove, std::vector<std::string>{"nightly-2"});
  EXPECT_EQ(r.status.active, (std::vector<std::string>{"nightly-0"}));

  // Without a limit everything stays.
  world all;
  all.children = w.children;
  EXPECT_TRUE(all.run(at("2024-01-15T01:40:00Z"), false).remove.empty());
}

// A manual run created in the same second as the one before it: creationTimestamp ties, and its
// name (a hash) may sort first; the controller's creation clock decides which is older.
TEST(BucketSyncPolicyStep, HistoryLimitOrdersRunsOfOneSecondByTheirCreationClock) {
  world w;
  w.policy["spec"]["syncHistoryLimit"] = 1;
  auto add = [&](std::string name, const char* us) {
    policy_child c;
    c.name = std::move(name);
    c.creation_time = at("2024-01-15T01:30:10Z");
    c.phase = bucket_sync_phase::finished;
    c.annotations[std::string(k_created_annotation)] = us;
    w.children.push_back(c);
  };
  add("nightly-manual-0d21f81069", "1705282210100000");  // the first run
  add("nightly-manual-096707b50e", "1705282210900000");  // the second: its name sorts first
  auto r = w.run(at("2024-01-15T01:31:00Z"), false);
  EXPECT_EQ(r.remove, std::vector<std::string>{"nightly-manual-0d21f81069"});
  // Without the annotation (runs created by an older controller): by name, as before.
  for (auto& c : w.children)
    c.annotations.clear();
  r = w.run(at("2024-01-15T01:31:00Z"), false);
  EXPECT_EQ(r.remove, std::vector<std::string>{"nightly-manual-096707b50e"});
}

TEST(BucketSyncPolicyStep, HistoryLimitNeverPrunesAnUnacknowledgedManualRun) {
  world w;
  w.policy["spec"]["syncHistoryLimit"] = 1;
  w.run(at("2024-01-15T01:30:10Z"));
  w.annotate("x");
  auto r = w.run(at("2024-01-15T01:31:00Z"));
  const std::string manual = name_of(r.create.at(0));
  policy_child newer;
  newer.name = "by-hand";
  newer.creation_time = at("2024-01-15T01:32:00Z");
  newer.phase = bucket_sync_phase::finished;
  w.children.push_back(newer);
  w.finish(manual, at("2024-01-15T01:33:00Z"));
  r = w.run(at("2024-01-15T01:34:00Z"));
  EXPECT_TRUE(r.remove_sync_now_annotation);
  EXPECT_TRUE(r.remove.empty()) << "kept until the Completed status is written";
  r = w.run(at("2024-01-15T01:35:00Z"));
  EXPECT_EQ(r.remove, std::vector<std::string>{manual});
}

TEST(BucketSyncPolicyStep, InvalidSpecsAreReportedOnce) {
  struct bad_case {
    const char* what;
    std::function<void(json::value&)> edit;
    const char* needle;
  };
  std::vector<bad_case> cases{
      {"bad cron", [](json::value& p) { p["spec"]["schedule"] = "61 * * * *"; }, "minute"},
      {"missing source", [](json::value& p) { p["spec"].as_object().erase("source"); },
       "spec.source"},
      {"unknown zone", [](json::value& p) { p["spec"]["timeZone"] = "Mars/Olympus_Mons"; },
       "Mars/Olympus_Mons"},
      {"unknown CRON_TZ zone",
       [](json::value& p) { p["spec"]["schedule"] = "CRON_TZ=Mars/Olympus_Mons 0 2 * * *"; },
       "Mars/Olympus_Mons"},
      {"never fires", [](json::value& p) { p["spec"]["schedule"] = "0 0 30 2 *"; }, "never fires"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    world w;
    c.edit(w.policy);
    w.annotate("");
    auto r = w.run(at("2024-01-15T02:00:00Z"));
    EXPECT_TRUE(r.create.empty());
    EXPECT_FALSE(r.remove_sync_now_annotation);
    ASSERT_TRUE(r.status.error.has_value());
    EXPECT_NE(r.status.error->find(c.needle), std::string::npos) << *r.status.error;
    EXPECT_EQ(r.status.next_sync_time, std::nullopt);
    EXPECT_EQ(cond(r, "Ready")->status, "False");
    EXPECT_EQ(cond(r, "Ready")->reason, "InvalidSpec");
    EXPECT_EQ(cond(r, "Ready")->message, *r.status.error);
    ASSERT_EQ(r.events.size(), 1U);
    EXPECT_EQ(r.events[0].type, "Warning");
    EXPECT_EQ(r.outcome.what, reconcile_outcome::kind::terminal_error);
    EXPECT_EQ(r.outcome.message, *r.status.error);
    r = w.run(at("2024-01-15T02:01:00Z"));
    EXPECT_TRUE(r.events.empty()) << "same error, no second event";

    // Fixed: the error clears and the policy is scheduled again.
    json::value fixed = policy_json();
    w.policy["spec"] = fixed["spec"];
    w.policy["metadata"]["annotations"].as_object().erase(config::k_sync_now_annotation);
    r = w.run(at("2024-01-15T02:02:00Z"));
    EXPECT_EQ(r.status.error, std::nullopt);
    EXPECT_EQ(cond(r, "Ready")->reason, "Scheduled");
  }
}

TEST(BucketSyncPolicyStep, ScheduleInATimeZone) {
  world w;
  w.policy["spec"]["timeZone"] = "America/New_York";
  w.policy["metadata"]["creationTimestamp"] = "2024-01-15T00:00:00Z";
  auto r = w.run(at("2024-01-15T00:00:10Z"));
  EXPECT_EQ(r.status.next_sync_time, at("2024-01-15T07:00:00Z")) << "02:00 EST";
  r = w.run(at("2024-01-15T07:00:00Z"));
  ASSERT_EQ(r.create.size(), 1U);
  EXPECT_EQ(name_of(r.create[0]), "nightly-1705302000");
  EXPECT_EQ(r.status.next_sync_time, at("2024-01-16T07:00:00Z"));
  // In summer (EDT) the same wall time is an hour earlier in UTC.
  r = w.run(at("2024-07-01T12:00:00Z"));
  EXPECT_EQ(r.status.next_sync_time, at("2024-07-02T06:00:00Z"));
  EXPECT_NE(cond(r, "Ready")->message.find("America/New_York"), std::string::npos);
}

TEST(BucketSyncPolicyStep, EveryIsAnchoredAtTheCreationTime) {
  world w;
  w.policy = policy_json("@every 90m", "2024-01-15T10:17:23Z");
  auto r = w.run(at("2024-01-15T10:17:30Z"));
  EXPECT_TRUE(r.create.empty());
  EXPECT_EQ(r.status.next_sync_time, at("2024-01-15T11:47:23Z"));
  EXPECT_EQ(r.outcome, reconcile_outcome::requeue(k_max_policy_requeue)) << "89 min 53 s, capped";
  r = w.run(at("2024-01-15T11:47:23Z"));
  ASSERT_EQ(r.create.size(), 1U);
  EXPECT_EQ(r.status.last_schedule_time, at("2024-01-15T11:47:23Z"));
  EXPECT_EQ(r.status.next_sync_time, at("2024-01-15T13:17:23Z"));
}

TEST(BucketSyncPolicyStep, RequeueIsExactlyAtTheNextFireAndCapped) {
  world w;
  w.policy = policy_json("*/15 * * * *", "2024-01-15T01:00:00Z");
  EXPECT_EQ(w.run(at("2024-01-15T01:14:59Z")).outcome, reconcile_outcome::requeue(seconds{1}));
  w.policy = policy_json("@weekly", "2024-01-15T01:00:00Z");
  EXPECT_EQ(w.run(at("2024-01-15T01:00:05Z")).outcome,
            reconcile_outcome::requeue(k_max_policy_requeue));
}

TEST(BucketSyncPolicyStep, DeletingPolicyDoesNothing) {
  world w;
  w.policy["metadata"]["deletionTimestamp"] = "2024-01-15T02:00:00Z";
  w.annotate("");
  auto r = w.run(at("2024-01-15T02:00:00Z"));
  EXPECT_TRUE(r.create.empty());
  EXPECT_FALSE(r.status_changed);
  EXPECT_EQ(r.outcome, reconcile_outcome::success());
}

TEST(BucketSyncPolicyStep, ChildFromReadsACachedBucketSync) {
  auto obj = json::parse(R"({
    "apiVersion": "tidesync.io/v1alpha1", "kind": "BucketSync",
    "metadata": {"name": "nightly-1705284000", "namespace": "default",
                 "creationTimestamp": "2024-01-15T02:00:01Z",
                 "deletionTimestamp": "2024-01-15T03:00:00Z",
                 "annotations": {"tidesync.io/scheduled-time": "2024-01-15T02:00:00Z"}},
    "spec": {"source": "a:b", "destination": "c:d"},
    "status": {"phase": "Finished", "finishTime": "2024-01-15T02:10:00Z", "error": "boom"}
  })");
  ASSERT_TRUE(obj.has_value());
  policy_child c = child_from(*obj);
  EXPECT_EQ(c.name, "nightly-1705284000");
  EXPECT_EQ(c.phase, bucket_sync_phase::finished);
  EXPECT_EQ(c.creation_time, at("2024-01-15T02:00:01Z"));
  EXPECT_EQ(c.finish_time, at("2024-01-15T02:10:00Z"));
  EXPECT_EQ(c.error, "boom");
  EXPECT_TRUE(c.deleting);
  EXPECT_EQ(c.annotations.at("tidesync.io/scheduled-time"), "2024-01-15T02:00:00Z");

  // Lenient: a fresh object without status, and junk.
  auto fresh = json::parse(R"({"metadata": {"name": "x"}, "status": {"phase": "Bogus"}})");
  ASSERT_TRUE(fresh.has_value());
  c = child_from(*fresh);
  EXPECT_EQ(c.phase, bucket_sync_phase::none);
  EXPECT_EQ(c.error, std::nullopt);
  EXPECT_FALSE(c.deleting);
  EXPECT_EQ(child_from(json::value(42)).name, "");
}

TEST(BucketSyncPolicyStep, NamesAreShortDeterministicAndDistinct) {
  const std::string long_a(80, 'a');
  const std::string long_b = long_a + "b";
  const sys_seconds t = at("2024-01-15T02:00:00Z");
  EXPECT_EQ(scheduled_child_name("nightly", t), "nightly-1705284000");
  for (const auto& n : {scheduled_child_name(long_a, t), scheduled_child_name(long_b, t),
                        manual_child_name(long_a, "", t), manual_child_name(long_b, "", t)}) {
    EXPECT_LE(n.size(), 63U) << n;
    EXPECT_NE(n.back(), '-');
  }
  EXPECT_NE(scheduled_child_name(long_a, t), scheduled_child_name(long_b, t));
  EXPECT_EQ(manual_child_name("p", "v", t), manual_child_name("p", "v", t));
  EXPECT_NE(manual_child_name("p", "v", t), manual_child_name("p", "w", t));
  EXPECT_NE(manual_child_name("p", "v", t), manual_child_name("p", "v", t + 1s));
  // A name cut at a '-' or '.' does not leave "--".
  const std::string dotted = std::string(41, 'x') + "-.-" + std::string(30, 'y');
  EXPECT_EQ(scheduled_child_name(dotted, t).find("--"), std::string::npos);
}
