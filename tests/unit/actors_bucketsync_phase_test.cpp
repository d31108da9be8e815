// The BucketSync phase machine (actors/bucketsync_phase.hpp, docs/bucketsync-phases.md):
// every transition, idempotence, adoption after a restart, deletion in every phase, failures.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "actors/bucketsync_phase.hpp"
#include "config/bucketsync.hpp"
#include "config/condition.hpp"

using namespace std::chrono;
using namespace tidesync;
using namespace tidesync::actors;
using config::bucket_sync_phase;
namespace pa = tidesync::actors::phase_action;

namespace {

const config::sys_seconds t0 = config::sys_seconds{seconds{1705316400}};

config::bucket_sync make_sync() {
  config::bucket_sync bs;
  bs.metadata.name = "run-1";
  bs.metadata.namespace_ = "default";
  bs.metadata.uid = "u1";
  bs.metadata.generation = 1;
  bs.spec.source = "s3:src-bucket/a";
  bs.spec.destination = "gcs:dst-bucket/b";
  return bs;
}

template <class T>
std::vector<T> all(const step_result& r) {
  std::vector<T> out;
  for (const auto& a : r.actions)
    if (const T* t = std::get_if<T>(&a)) out.push_back(*t);
  return out;
}

std::vector<pa::emit_event> events(const step_result& r) {
  return all<pa::emit_event>(r);
}

const config::condition* cond(const step_result& r, std::string_view type) {
  return config::find_condition(r.status.conditions, type);
}

lock_reply granted() {
  return lock_reply{};
}
lock_reply waiting(std::string blocker, std::string path, uint64_t position) {
  lock_reply l;
  l.what = lock_reply::kind::waiting;
  l.blocker = std::move(blocker);
  l.path = std::move(path);
  l.position = position;
  return l;
}

job_observation job(job_observation::state s) {
  job_observation j;
  j.what = s;
  return j;
}

// Drives the machine like the resource actor: feeds the written status back and keeps the
// finalizer as the actions leave it.
struct driver {
  config::bucket_sync obj = make_sync();
  observations obs;

  step_result run(config::sys_seconds now) {
    step_result r = step(obj, obs, now);
    for (const auto& a : r.actions) {
      if (std::holds_alternative<pa::add_finalizer>(a)) obs.has_finalizer = true;
      if (std::holds_alternative<pa::remove_finalizer>(a)) obs.has_finalizer = false;
    }
    EXPECT_EQ(r.next, r.status.phase);
    obj.status = r.status;
    return r;
  }
};

}  // namespace

TEST(BucketSyncPhase, HappyPath) {
  driver d;
  // First step: Initialize, finalizer, one acquire for both paths in canonical order.
  auto r = d.run(t0);
  EXPECT_EQ(r.next, bucket_sync_phase::initialize);
  ASSERT_EQ(r.actions.size(), 3U);
  EXPECT_EQ(std::get<pa::emit_event>(r.actions[0]).reason, "Started");
  EXPECT_TRUE(std::holds_alternative<pa::add_finalizer>(r.actions[1]));
  EXPECT_EQ(std::get<pa::acquire_locks>(r.actions[2]),
            (pa::acquire_locks{"default/run-1/u1", {"gcs:dst-bucket/b", "s3:src-bucket/a"}}));
  EXPECT_TRUE(r.status_changed);
  EXPECT_EQ(r.status.start_time, t0);
  EXPECT_EQ(r.status.observed_generation, 1);
  EXPECT_EQ(r.status.last_reconciled_time, t0);
  ASSERT_NE(cond(r, "Ready"), nullptr);
  EXPECT_EQ(cond(r, "Ready")->status, "False");
  EXPECT_EQ(cond(r, "Ready")->reason, "Initializing");
  EXPECT_EQ(r.outcome, reconcile_outcome::success());

  // Granted: Sync in the same step, the Job is created once.
  d.obs.locks = granted();
  r = d.run(t0 + 1s);
  EXPECT_EQ(r.next, bucket_sync_phase::sync);
  EXPECT_EQ(all<pa::create_job>(r), std::vector<pa::create_job>{{"run-1"}});
  EXPECT_EQ(r.status.job, "run-1");
  EXPECT_EQ(cond(r, "Ready")->status, "Unknown");
  EXPECT_EQ(cond(r, "Ready")->reason, "Syncing");
  ASSERT_EQ(events(r).size(), 2U);
  EXPECT_EQ(events(r)[0].reason, "LocksAcquired");
  EXPECT_EQ(events(r)[1].reason, "JobCreated");
  EXPECT_EQ(r.outcome, reconcile_outcome::requeue(k_job_grace));
  EXPECT_EQ(cond(r, "WaitingForLock"), nullptr) << "never waited";

  // Same observations again (the cache has not seen the Job yet): no second create, no event.
  r = d.run(t0 + 5s);
  EXPECT_TRUE(r.actions.empty());
  EXPECT_EQ(r.next, bucket_sync_phase::sync);
  EXPECT_EQ(r.outcome, reconcile_outcome::requeue(k_job_grace - 4s));

  d.obs.job = job(job_observation::state::active);
  r = d.run(t0 + 10s);
  EXPECT_TRUE(r.actions.empty());
  EXPECT_EQ(r.outcome, reconcile_outcome::success());
  r = d.run(t0 + 11s);
  EXPECT_TRUE(r.actions.empty());

  // Succeeded: Finalize deletes the Job and waits for it to go before releasing.
  d.obs.job = job(job_observation::state::succeeded);
  r = d.run(t0 + 100s);
  EXPECT_EQ(r.next, bucket_sync_phase::finalize);
  EXPECT_EQ(all<pa::delete_job>(r), std::vector<pa::delete_job>{{"run-1"}});
  EXPECT_TRUE(all<pa::release_locks>(r).empty());
  EXPECT_EQ(events(r).at(0).reason, "JobSucceeded");
  d.obs.job.deleting = true;
  r = d.run(t0 + 101s);
  EXPECT_TRUE(r.actions.empty()) << "no second delete while it is being deleted";
  EXPECT_EQ(r.next, bucket_sync_phase::finalize);

  // Gone: release, Finished, Ready=True, finalizer removed last.
  d.obs.job = job(job_observation::state::absent);
  r = d.run(t0 + 102s);
  EXPECT_EQ(r.next, bucket_sync_phase::finished);
  EXPECT_EQ(all<pa::release_locks>(r), std::vector<pa::release_locks>{{"default/run-1/u1"}});
  ASSERT_FALSE(r.actions.empty());
  EXPECT_TRUE(std::holds_alternative<pa::remove_finalizer>(r.actions.back()));
  EXPECT_EQ(r.status.finish_time, t0 + 102s);
  EXPECT_EQ(r.status.error, std::nullopt);
  EXPECT_EQ(r.status.start_time, t0);
  EXPECT_EQ(cond(r, "Ready")->status, "True");
  EXPECT_EQ(cond(r, "Ready")->reason, "Succeeded");
  EXPECT_EQ(events(r).at(0).type, "Normal");
  EXPECT_EQ(events(r).at(0).reason, "Succeeded");
  EXPECT_FALSE(d.obs.has_finalizer);

  // Finished is terminal and quiet.
  r = d.run(t0 + 200s);
  EXPECT_TRUE(r.actions.empty());
  EXPECT_FALSE(r.status_changed);
  EXPECT_EQ(r.status.last_reconciled_time, t0 + 102s);
}

TEST(BucketSyncPhase, WaitingForLockNamesTheHolder) {
  driver d;
  d.run(t0);
  d.obs.locks = waiting("default/other/u2", "s3:src-bucket", 2);
  auto r = d.run(t0 + 1s);
  EXPECT_EQ(r.next, bucket_sync_phase::initialize);
  const auto* w = cond(r, "WaitingForLock");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->status, "True");
  EXPECT_EQ(w->reason, "LockHeld");
  EXPECT_NE(w->message.find("default/other/u2"), std::string::npos) << w->message;
  EXPECT_NE(w->message.find("s3:src-bucket"), std::string::npos);
  EXPECT_NE(w->message.find("position 2"), std::string::npos);
  EXPECT_EQ(w->last_transition_time, t0 + 1s);
  EXPECT_EQ(cond(r, "Ready")->reason, "WaitingForLock");
  EXPECT_TRUE(all<pa::create_job>(r).empty());
  ASSERT_EQ(events(r).size(), 1U);
  EXPECT_EQ(events(r)[0].reason, "WaitingForLock");
  EXPECT_EQ(r.outcome, reconcile_outcome::success());

  // Still waiting: no new event, condition time kept.
  r = d.run(t0 + 30s);
  EXPECT_TRUE(r.actions.empty());
  EXPECT_EQ(cond(r, "WaitingForLock")->last_transition_time, t0 + 1s);

  // Granted later: WaitingForLock turns False, the Job is created.
  d.obs.locks = granted();
  r = d.run(t0 + 60s);
  EXPECT_EQ(r.next, bucket_sync_phase::sync);
  EXPECT_EQ(cond(r, "WaitingForLock")->status, "False");
  EXPECT_EQ(cond(r, "WaitingForLock")->reason, "LockAcquired");
  EXPECT_EQ(all<pa::create_job>(r).size(), 1U);
}

TEST(BucketSyncPhase, JobFailureReachesStatusErrorThenFinished) {
  driver d;
  d.run(t0);
  d.obs.locks = granted();
  d.run(t0 + 1s);
  d.obs.job = job(job_observation::state::failed);
  d.obs.job.reason = "DeadlineExceeded";
  d.obs.job.message = "Job was active longer than specified deadline";
  auto r = d.run(t0 + 50s);
  EXPECT_EQ(r.next, bucket_sync_phase::finalize);
  EXPECT_EQ(r.status.error,
            "Job run-1 failed: DeadlineExceeded: Job was active longer than specified deadline");
  EXPECT_EQ(cond(r, "Ready")->status, "False");
  EXPECT_EQ(cond(r, "Ready")->reason, "JobFailed");
  EXPECT_EQ(cond(r, "Ready")->message, *r.status.error);
  EXPECT_EQ(events(r).at(0).type, "Warning");
  EXPECT_EQ(events(r).at(0).reason, "JobFailed");
  EXPECT_EQ(all<pa::delete_job>(r).size(), 1U);

  d.obs.job = job(job_observation::state::absent);
  r = d.run(t0 + 52s);
  EXPECT_EQ(r.next, bucket_sync_phase::finished);
  EXPECT_EQ(r.status.error,
            "Job run-1 failed: DeadlineExceeded: Job was active longer than specified deadline");
  EXPECT_EQ(cond(r, "Ready")->reason, "JobFailed");
  EXPECT_EQ(all<pa::release_locks>(r).size(), 1U);
  EXPECT_EQ(events(r).at(0).type, "Warning");
  EXPECT_EQ(events(r).at(0).reason, "Failed");
  EXPECT_TRUE(std::holds_alternative<pa::remove_finalizer>(r.actions.back()));
}

TEST(BucketSyncPhase, RestartDuringSyncAdoptsTheJob) {
  // The controller crashed after creating the Job, before writing status.job.
  driver d;
  d.obj.status.phase = bucket_sync_phase::sync;
  d.obj.status.start_time = t0;
  d.obj.status.observed_generation = 1;
  d.obs.has_finalizer = true;
  d.obs.locks = granted();  // adopted from the Leases
  d.obs.job = job(job_observation::state::active);
  auto r = d.run(t0 + 300s);
  EXPECT_TRUE(all<pa::create_job>(r).empty());
  EXPECT_EQ(r.status.job, "run-1");
  ASSERT_EQ(events(r).size(), 1U);
  EXPECT_EQ(events(r)[0].reason, "JobAdopted");
  EXPECT_EQ(r.next, bucket_sync_phase::sync);

  // Crash even earlier: the status still says Initialize. Locks are granted again (adopted),
  // the cache already shows the Job: adopted, never a second one.
  driver e;
  e.obj.status.phase = bucket_sync_phase::initialize;
  e.obj.status.observed_generation = 1;
  e.obs.has_finalizer = true;
  e.obs.locks = granted();
  e.obs.job = job(job_observation::state::active);
  r = e.run(t0 + 300s);
  EXPECT_TRUE(all<pa::create_job>(r).empty());
  EXPECT_EQ(r.status.job, "run-1");
  EXPECT_EQ(r.next, bucket_sync_phase::sync);

  // It then finishes normally.
  e.obs.job = job(job_observation::state::succeeded);
  e.run(t0 + 400s);
  e.obs.job = job(job_observation::state::absent);
  r = e.run(t0 + 401s);
  EXPECT_EQ(r.next, bucket_sync_phase::finished);
  EXPECT_EQ(all<pa::release_locks>(r).size(), 1U);
}

TEST(BucketSyncPhase, ForeignJobIsAConflictAndIsNotDeleted) {
  driver d;
  d.run(t0);
  d.obs.locks = granted();
  d.obs.job = job(job_observation::state::active);
  d.obs.job.owned = false;
  auto r = d.run(t0 + 1s);
  EXPECT_EQ(r.next, bucket_sync_phase::finished);
  EXPECT_EQ(cond(r, "Ready")->reason, "JobConflict");
  EXPECT_TRUE(all<pa::create_job>(r).empty());
  EXPECT_TRUE(all<pa::delete_job>(r).empty());
  EXPECT_EQ(all<pa::release_locks>(r).size(), 1U);
  ASSERT_TRUE(r.status.error.has_value());
  EXPECT_NE(r.status.error->find("not controlled"), std::string::npos);
}

TEST(BucketSyncPhase, JobDeletedBySomeoneElseFailsAfterTheGrace) {
  driver d;
  d.run(t0);
  d.obs.locks = granted();
  d.run(t0 + 1s);  // created; Ready turned Syncing at t0+1s
  auto r = d.run(t0 + 1s + k_job_grace - 1s);
  EXPECT_EQ(r.next, bucket_sync_phase::sync);
  EXPECT_EQ(r.outcome, reconcile_outcome::requeue(1s));
  r = d.run(t0 + 1s + k_job_grace);
  EXPECT_EQ(r.next, bucket_sync_phase::finished);
  EXPECT_EQ(cond(r, "Ready")->reason, "JobVanished");
  EXPECT_TRUE(all<pa::create_job>(r).empty());
}

TEST(BucketSyncPhase, InvalidSpecNeverCreatesAJob) {
  driver d;
  d.obs.spec_error = "BucketSync default/run-1 is invalid: spec.source: Required value";
  auto r = d.run(t0);
  EXPECT_EQ(r.next, bucket_sync_phase::finished);
  EXPECT_EQ(cond(r, "Ready")->status, "False");
  EXPECT_EQ(cond(r, "Ready")->reason, "InvalidSpec");
  EXPECT_EQ(cond(r, "Ready")->message, *d.obs.spec_error);
  EXPECT_EQ(r.status.error, d.obs.spec_error);
  EXPECT_EQ(r.status.observed_generation, 1);
  EXPECT_TRUE(all<pa::create_job>(r).empty());
  EXPECT_TRUE(all<pa::acquire_locks>(r).empty());
  EXPECT_TRUE(all<pa::add_finalizer>(r).empty()) << "added and removed in one step: neither";
  EXPECT_TRUE(all<pa::remove_finalizer>(r).empty());
  bool warned = false;
  for (const auto& e : events(r))
    warned |= e.type == "Warning" && e.reason == "InvalidSpec";
  EXPECT_TRUE(warned);

  // A location a lock cannot name, and overlapping paths on one storage, are spec errors too.
  driver bad;
  bad.obj.spec.source = "s3:b/../c";
  r = bad.run(t0);
  EXPECT_EQ(cond(r, "Ready")->reason, "InvalidSpec");
  EXPECT_NE(r.status.error->find("spec.source"), std::string::npos) << *r.status.error;
  driver overlap;
  overlap.obj.spec.source = "s3:bucket/a";
  overlap.obj.spec.destination = "s3:bucket/a/x";
  r = overlap.run(t0);
  EXPECT_EQ(cond(r, "Ready")->reason, "InvalidSpec");
  EXPECT_NE(r.status.error->find("overlap"), std::string::npos);
}

TEST(BucketSyncPhase, LockRejectedFails) {
  driver d;
  d.run(t0);
  lock_reply rejected;
  rejected.what = lock_reply::kind::rejected;
  rejected.message = "a different set while waiting";
  d.obs.locks = rejected;
  auto r = d.run(t0 + 1s);
  EXPECT_EQ(r.next, bucket_sync_phase::finished);
  EXPECT_EQ(cond(r, "Ready")->reason, "LockRejected");
  EXPECT_NE(r.status.error->find("a different set while waiting"), std::string::npos);
  EXPECT_EQ(all<pa::release_locks>(r).size(), 1U);
}

TEST(BucketSyncPhase, DeletionInEveryPhase) {
  const auto deleted_at = t0 + 10s;
  // Before our first step (no finalizer): nothing was started, nothing to do.
  {
    driver d;
    d.obj.metadata.deletion_timestamp = deleted_at;
    auto r = d.run(t0 + 11s);
    EXPECT_TRUE(r.actions.empty());
    EXPECT_FALSE(r.status_changed);
  }
  // Initialize, waiting for a lock: withdraw, Finished, finalizer removed.
  {
    driver d;
    d.run(t0);
    d.obs.locks = waiting("default/other/u2", "s3:src-bucket", 1);
    d.run(t0 + 1s);
    d.obj.metadata.deletion_timestamp = deleted_at;
    auto r = d.run(t0 + 11s);
    EXPECT_EQ(r.next, bucket_sync_phase::finished);
    EXPECT_EQ(r.status.error, "deleted during Initialize: the sync was stopped");
    EXPECT_EQ(all<pa::release_locks>(r).size(), 1U);
    EXPECT_TRUE(all<pa::acquire_locks>(r).empty());
    EXPECT_EQ(cond(r, "WaitingForLock")->status, "False");
    EXPECT_TRUE(std::holds_alternative<pa::remove_finalizer>(r.actions.back()));
    EXPECT_TRUE(all<pa::add_finalizer>(r).empty());
  }
  // Sync with a running Job: delete it, wait until gone, then release and remove.
  {
    driver d;
    d.run(t0);
    d.obs.locks = granted();
    d.run(t0 + 1s);
    d.obs.job = job(job_observation::state::active);
    d.obj.metadata.deletion_timestamp = deleted_at;
    auto r = d.run(t0 + 11s);
    EXPECT_EQ(r.next, bucket_sync_phase::finalize);
    EXPECT_EQ(r.status.error, "deleted during Sync: the sync was stopped");
    EXPECT_EQ(all<pa::delete_job>(r).size(), 1U);
    EXPECT_TRUE(all<pa::release_locks>(r).empty());
    EXPECT_TRUE(all<pa::remove_finalizer>(r).empty());
    d.obs.job = job(job_observation::state::absent);
    r = d.run(t0 + 12s);
    EXPECT_EQ(r.next, bucket_sync_phase::finished);
    EXPECT_EQ(all<pa::release_locks>(r).size(), 1U);
    EXPECT_TRUE(std::holds_alternative<pa::remove_finalizer>(r.actions.back()));
    EXPECT_EQ(r.status.error, "deleted during Sync: the sync was stopped");
  }
  // Finalize (Job already gone): finish and remove; the earlier outcome stays (no error).
  {
    driver d;
    d.obj.status.phase = bucket_sync_phase::finalize;
    d.obj.status.job = "run-1";
    d.obs.has_finalizer = true;
    d.obj.metadata.deletion_timestamp = deleted_at;
    auto r = d.run(t0 + 11s);
    EXPECT_EQ(r.next, bucket_sync_phase::finished);
    EXPECT_EQ(r.status.error, std::nullopt);
    EXPECT_EQ(all<pa::release_locks>(r).size(), 1U);
    EXPECT_TRUE(std::holds_alternative<pa::remove_finalizer>(r.actions.back()));
  }
  // Finished with our finalizer still there: only the finalizer goes.
  {
    driver d;
    d.obj.status.phase = bucket_sync_phase::finished;
    d.obs.has_finalizer = true;
    d.obj.metadata.deletion_timestamp = deleted_at;
    auto r = d.run(t0 + 11s);
    ASSERT_EQ(r.actions.size(), 1U);
    EXPECT_TRUE(std::holds_alternative<pa::remove_finalizer>(r.actions[0]));
    EXPECT_FALSE(r.status_changed);
  }
}

TEST(BucketSyncPhase, GenerationChanges) {
  // While Finished: nothing, the status is not touched.
  driver d;
  d.obj.status.phase = bucket_sync_phase::finished;
  d.obj.status.observed_generation = 1;
  d.obj.metadata.generation = 2;
  d.obj.spec.source = "s3:elsewhere";
  auto r = d.run(t0);
  EXPECT_TRUE(r.actions.empty());
  EXPECT_FALSE(r.status_changed);
  EXPECT_EQ(r.status.observed_generation, 1);

  // While waiting in Initialize: withdraw and ask again for the new paths.
  driver w;
  w.run(t0);
  w.obs.locks = waiting("default/other/u2", "s3:src-bucket", 1);
  w.run(t0 + 1s);
  w.obj.metadata.generation = 2;
  w.obj.spec.source = "s3:new-bucket";
  r = w.run(t0 + 2s);
  EXPECT_EQ(r.status.observed_generation, 2);
  ASSERT_EQ(r.actions.size(), 2U);
  EXPECT_EQ(std::get<pa::release_locks>(r.actions[0]).holder, "default/run-1/u1");
  EXPECT_EQ(std::get<pa::acquire_locks>(r.actions[1]).paths,
            (std::vector<std::string>{"gcs:dst-bucket/b", "s3:new-bucket"}));
  EXPECT_EQ(r.next, bucket_sync_phase::initialize);
}

TEST(BucketSyncPhase, LockPaths) {
  auto bs = make_sync();
  bs.spec.source = "S3:Src-Bucket//a/";
  auto p = lock_paths(bs);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(*p, (std::vector<std::string>{"gcs:dst-bucket/b", "s3:src-bucket/a"}));
  // Bare buckets on env-configured remotes may be two endpoints: no overlap error; one lock.
  bs.spec.source = "my-bucket";
  bs.spec.destination = "my-bucket";
  bs.spec.source_env.push_back(config::env_var{"TYPE", std::string("s3"), std::nullopt});
  bs.spec.destination_env.push_back(config::env_var{"TYPE", std::string("s3"), std::nullopt});
  p = lock_paths(bs);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(*p, std::vector<std::string>{"my-bucket"});
  EXPECT_EQ(lock_holder(bs), "default/run-1/u1");
}
