// The DataSync phase machine (actors/datasync_phase.hpp, docs/datasync.md): every transition
// (new → Queued → Syncing → Succeeded | Failed, retries back to Queued), idempotence, the
// cleanup of stale Jobs, a spec change mid-sync, and the queue-position write rule.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "actors/datasync_logic.hpp"
#include "actors/datasync_phase.hpp"
#include "actors/datasync_types.hpp"
#include "config/condition.hpp"
#include "config/datasync.hpp"
#include "config/datasync_job.hpp"
#include "runtime/rfc3339.hpp"

using namespace std::chrono;
using namespace tidesync;
using namespace tidesync::actors;
using config::datasync_phase;
using config::datasync_vm_phase;
namespace da = tidesync::actors::datasync_action;
using st = populate_observation::state;

namespace {

const config::sys_seconds t0 = config::sys_seconds{seconds{1705316400}};

const std::string k_digest_want = "sha256:" + std::string(64, 'a');
const std::string k_digest_got = "sha256:" + std::string(64, 'b');

config::datasync_vm make_vm(std::string name, config::datasync_source_type type, std::string url,
                            std::optional<int64_t> size = std::nullopt) {
  config::datasync_vm vm;
  vm.name = std::move(name);
  vm.source_type = type;
  vm.url = std::move(url);
  vm.size = size;
  return vm;
}

config::datasync make_ds(int64_t generation = 3) {
  config::datasync ds;
  ds.metadata.name = "ws-v1";
  ds.metadata.namespace_ = "default";
  ds.metadata.uid = "u1";
  ds.metadata.generation = generation;
  ds.spec.workspace_id = "ws";
  ds.spec.vms.push_back(make_vm("base", config::datasync_source_type::http,
                                "https://images.example.com/base.qcow2", int64_t{1} << 30));
  ds.spec.vms.push_back(
      make_vm("data", config::datasync_source_type::s3, "s3://images/data.qcow2"));
  return ds;
}

// The Job a VM runs at the object's generation and retry count.
std::string job_of(const config::datasync& ds, const std::string& vm) {
  return config::datasync_job_name(ds.metadata.name, vm, ds.metadata.generation,
                                   ds.status.retry_count);
}

populate_observation job(std::string name, std::string vm, st what = st::active) {
  populate_observation j;
  j.name = std::move(name);
  j.vm = std::move(vm);
  j.what = what;
  return j;
}

populate_observation succeeded_job(std::string name, std::string vm, std::string digest,
                                   int64_t bytes) {
  auto j = job(std::move(name), std::move(vm), st::succeeded);
  j.exit_code = datasync::k_exit_ok;
  j.digest = std::move(digest);
  j.bytes = bytes;
  return j;
}

populate_observation failed_job(std::string name, std::string vm, int exit_code, std::string reason,
                                std::string message) {
  auto j = job(std::move(name), std::move(vm), st::failed);
  j.exit_code = exit_code;
  j.reason = std::move(reason);
  j.message = std::move(message);
  return j;
}

queue_answer waiting(int64_t position, int64_t syncing = 4, int64_t concurrency = 4) {
  queue_answer q;
  q.granted = false;
  q.position = position;
  q.syncing = syncing;
  q.concurrency = concurrency;
  return q;
}

queue_answer granted(int64_t syncing = 1, int64_t concurrency = 4) {
  queue_answer q;
  q.granted = true;
  q.syncing = syncing;
  q.concurrency = concurrency;
  return q;
}

template <class T>
std::vector<T> all(const datasync_step_result& r) {
  std::vector<T> out;
  for (const auto& a : r.actions)
    if (const T* t = std::get_if<T>(&a)) out.push_back(*t);
  return out;
}

std::vector<da::emit_event> events(const datasync_step_result& r) {
  return all<da::emit_event>(r);
}

std::vector<std::string> deleted(const datasync_step_result& r) {
  std::vector<std::string> out;
  for (const auto& d : all<da::delete_job>(r))
    out.push_back(d.name);
  return out;
}

const config::condition* ready(const datasync_step_result& r) {
  return config::find_condition(r.status.conditions, config::condition_type::ready);
}

const config::datasync_vm_status* vm_status(const datasync_step_result& r,
                                            const std::string& name) {
  for (const auto& v : r.status.vms)
    if (v.name == name) return &v;
  return nullptr;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Drives the machine like the resource actor: feeds the written status back and keeps the
// workspace label as the actions leave it.
struct driver {
  config::datasync obj = make_ds();
  datasync_observations obs;

  datasync_step_result run(config::sys_seconds now) {
    auto r = datasync_step(obj, obs, now);
    for (const auto& a : r.actions)
      if (std::holds_alternative<da::label_workspace>(a)) obs.has_workspace_label = true;
    obj.status = r.status;
    return r;
  }
};

// An object the machine has queued (status as written by the first step).
config::datasync queued_ds(int64_t generation = 3) {
  auto ds = make_ds(generation);
  datasync_observations obs;
  obs.has_workspace_label = true;
  ds.status = datasync_step(ds, obs, t0).status;
  return ds;
}

// An object the machine has admitted (Syncing, no Job created yet).
config::datasync syncing_ds(int64_t generation = 3) {
  auto ds = queued_ds(generation);
  datasync_observations obs;
  obs.has_workspace_label = true;
  obs.queue = granted();
  ds.status = datasync_step(ds, obs, t0 + 1s).status;
  EXPECT_EQ(ds.status.phase, datasync_phase::syncing);
  return ds;
}

datasync_observations syncing_obs() {
  datasync_observations obs;
  obs.has_workspace_label = true;
  obs.queue = granted();
  obs.claims = {"base", "data"};
  return obs;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// New object

TEST(DatasyncPhase, NewObjectIsQueuedAndLabelled) {
  auto ds = make_ds();
  datasync_observations obs;
  obs.has_workspace_label = false;
  auto r = datasync_step(ds, obs, t0);

  ASSERT_EQ(r.actions.size(), 2U);
  EXPECT_TRUE(std::holds_alternative<da::label_workspace>(r.actions[0]));
  EXPECT_EQ(std::get<da::emit_event>(r.actions[1]),
            (da::emit_event{"Normal", "Queued", "queued with 2 VMs"}));

  EXPECT_TRUE(r.status_changed);
  EXPECT_EQ(r.status.phase, datasync_phase::queued);
  EXPECT_EQ(r.status.observed_generation, 3);
  EXPECT_EQ(r.status.retry_count, 0);
  EXPECT_EQ(r.status.queue_position, std::nullopt);
  EXPECT_EQ(r.status.next_retry_time, std::nullopt);
  EXPECT_EQ(r.status.message, "queued");
  EXPECT_EQ(r.status.last_reconciled_time, t0);
  ASSERT_EQ(r.status.vms.size(), 2U);
  EXPECT_EQ(r.status.vms[0].name, "base");
  EXPECT_EQ(r.status.vms[0].phase, datasync_vm_phase::pending);
  EXPECT_EQ(r.status.vms[0].size, int64_t{1} << 30) << "the spec's size is known up front";
  EXPECT_EQ(r.status.vms[0].bytes, 0);
  EXPECT_EQ(r.status.vms[1].name, "data");
  EXPECT_EQ(r.status.vms[1].phase, datasync_vm_phase::pending);
  EXPECT_EQ(r.status.vms[1].size, std::nullopt);

  const auto* c = ready(r);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->status, "False");
  EXPECT_EQ(c->reason, "Queued");
  EXPECT_EQ(c->observed_generation, 3);
  EXPECT_EQ(c->last_transition_time, t0);
  EXPECT_EQ(r.outcome, reconcile_outcome::success());
}

TEST(DatasyncPhase, NewObjectWithWorkspaceLabelHasOnlyTheEvent) {
  auto ds = make_ds();
  datasync_observations obs;
  obs.has_workspace_label = true;
  auto r = datasync_step(ds, obs, t0);
  EXPECT_TRUE(all<da::label_workspace>(r).empty());
  ASSERT_EQ(r.actions.size(), 1U);
  EXPECT_EQ(std::get<da::emit_event>(r.actions[0]).reason, "Queued");
  EXPECT_EQ(r.status.phase, datasync_phase::queued);
  EXPECT_EQ(r.outcome, reconcile_outcome::success());
}

TEST(DatasyncPhase, VmsFollowSpecOrder) {
  auto ds = make_ds();
  ds.spec.vms.insert(ds.spec.vms.begin(),
                     make_vm("zeta", config::datasync_source_type::pvc, "pvc://golden/z.img"));
  datasync_observations obs;
  obs.has_workspace_label = true;
  auto r = datasync_step(ds, obs, t0);
  ASSERT_EQ(r.status.vms.size(), 3U);
  EXPECT_EQ(r.status.vms[0].name, "zeta");
  EXPECT_EQ(r.status.vms[1].name, "base");
  EXPECT_EQ(r.status.vms[2].name, "data");
  for (const auto& v : r.status.vms)
    EXPECT_EQ(v.phase, datasync_vm_phase::pending) << v.name;
  EXPECT_EQ(events(r).at(0).message, "queued with 3 VMs");
}

TEST(DatasyncPhase, LabelIsRequestedInAnyPhaseUntilSeen) {
  auto ds = syncing_ds();
  auto obs = syncing_obs();
  obs.has_workspace_label = false;
  auto r = datasync_step(ds, obs, t0 + 2s);
  ASSERT_FALSE(r.actions.empty());
  EXPECT_TRUE(std::holds_alternative<da::label_workspace>(r.actions[0]));
  EXPECT_EQ(all<da::label_workspace>(r).size(), 1U);
  obs.has_workspace_label = true;
  r = datasync_step(ds, obs, t0 + 2s);
  EXPECT_TRUE(all<da::label_workspace>(r).empty());
}

// ---------------------------------------------------------------------------------------------
// Invalid spec

TEST(DatasyncPhase, InvalidSpecFailsOnceAndIsIdempotent) {
  driver d;
  d.obs.spec_error = "spec.vms[0].url: has no bucket";
  auto r = d.run(t0);
  EXPECT_TRUE(r.status_changed);
  EXPECT_EQ(r.status.phase, datasync_phase::failed);
  EXPECT_EQ(r.status.observed_generation, 3);
  EXPECT_EQ(r.status.message.rfind("invalid spec: ", 0), 0U) << r.status.message;
  EXPECT_EQ(r.status.message, "invalid spec: spec.vms[0].url: has no bucket");
  EXPECT_TRUE(r.status.vms.empty());
  EXPECT_EQ(r.status.retry_count, 0);
  const auto* c = ready(r);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->status, "False");
  EXPECT_EQ(c->reason, "InvalidSpec");
  EXPECT_EQ(c->message, r.status.message);
  ASSERT_EQ(events(r).size(), 1U);
  EXPECT_EQ(events(r)[0], (da::emit_event{"Warning", "InvalidSpec", r.status.message}));
  EXPECT_TRUE(all<da::label_workspace>(r).empty()) << "nothing else happens to a bad spec";
  EXPECT_EQ(r.outcome, reconcile_outcome::success());

  // Again with the written status: nothing to write, no second event.
  r = d.run(t0 + 10s);
  EXPECT_FALSE(r.status_changed);
  EXPECT_TRUE(r.actions.empty());
  EXPECT_EQ(r.status.last_reconciled_time, t0);
  EXPECT_EQ(r.status.phase, datasync_phase::failed);
  EXPECT_EQ(r.outcome, reconcile_outcome::success());
}

TEST(DatasyncPhase, InvalidSpecMidSyncStopsUnfinishedJobsOnly) {
  auto ds = syncing_ds(3);
  ds.status.retry_count = 1;
  ds.status.queue_position = 4;
  ds.metadata.generation = 4;
  datasync_observations obs;
  obs.has_workspace_label = true;
  obs.spec_error = "spec.vms[1].checksum: has 3 hex digits, not 64";
  obs.jobs = {job("old-active", "base"), failed_job("old-failed", "data", 1, "Error", "boom"),
              succeeded_job("old-done", "data", k_digest_want, 10)};
  auto r = datasync_step(ds, obs, t0 + 5s);
  EXPECT_EQ(r.status.phase, datasync_phase::failed);
  EXPECT_EQ(r.status.observed_generation, 4);
  EXPECT_EQ(r.status.retry_count, 0);
  EXPECT_EQ(r.status.queue_position, std::nullopt);
  EXPECT_EQ(deleted(r), std::vector<std::string>{"old-active"});
  EXPECT_EQ(events(r).size(), 1U);
}

// ---------------------------------------------------------------------------------------------
// Queued

TEST(DatasyncPhase, QueuedWithoutAnswerOnlyAsksTheQueue) {
  auto ds = queued_ds();
  datasync_observations obs;
  obs.has_workspace_label = true;
  // Even stale Jobs wait for the answer: the step runs again with it.
  obs.jobs = {job("stale", "base")};
  auto r = datasync_step(ds, obs, t0 + 1s);
  ASSERT_EQ(r.actions.size(), 1U);
  EXPECT_TRUE(std::holds_alternative<da::ask_queue>(r.actions[0]));
  EXPECT_FALSE(r.status_changed);
  EXPECT_EQ(r.outcome, reconcile_outcome::success());
}

TEST(DatasyncPhase, SyncingWithoutAnswerOnlyAsksTheQueue) {
  auto ds = syncing_ds();
  auto obs = syncing_obs();
  obs.queue.reset();
  auto r = datasync_step(ds, obs, t0 + 2s);
  ASSERT_EQ(r.actions.size(), 1U);
  EXPECT_TRUE(std::holds_alternative<da::ask_queue>(r.actions[0]));
  EXPECT_FALSE(r.status_changed);
}

// The header promises "When the actions hold ask_queue, nothing else is in them". Without
// the workspace label the step also returns label_workspace before ask_queue (the actor only
// asks and drops it; the next step emits it again, so no harm is done today). Disabled: it
// fails against the current code; see the report.
TEST(DatasyncPhase, AskQueueIsAloneEvenWithoutTheWorkspaceLabel) {
  auto ds = queued_ds();
  datasync_observations obs;
  obs.has_workspace_label = false;
  auto r = datasync_step(ds, obs, t0 + 1s);
  ASSERT_EQ(r.actions.size(), 1U);
  EXPECT_TRUE(std::holds_alternative<da::ask_queue>(r.actions[0]));
}

TEST(DatasyncPhase, QueuedNotGrantedWritesThePosition) {
  driver d;
  d.obj = queued_ds();
  d.obs.has_workspace_label = true;
  d.obs.queue = waiting(7, 4, 4);
  auto r = d.run(t0 + 1s);
  EXPECT_TRUE(r.status_changed);
  EXPECT_EQ(r.status.phase, datasync_phase::queued);
  EXPECT_EQ(r.status.queue_position, 7);
  EXPECT_TRUE(contains(r.status.message, "position 7")) << r.status.message;
  EXPECT_EQ(r.status.message, "waiting for a slot: 4 of 4 syncing; position 7 in the queue");
  EXPECT_EQ(ready(r)->status, "False");
  EXPECT_EQ(ready(r)->reason, "Queued");
  EXPECT_EQ(ready(r)->message, r.status.message);
  EXPECT_EQ(ready(r)->last_transition_time, t0) << "still False: the time stays";
  EXPECT_TRUE(r.actions.empty());
  EXPECT_EQ(r.outcome, reconcile_outcome::success());

  // One place up is not worth a write: the status keeps 7.
  d.obs.queue = waiting(6, 4, 4);
  r = d.run(t0 + 2s);
  EXPECT_FALSE(r.status_changed);
  EXPECT_EQ(r.status.queue_position, 7);
  EXPECT_TRUE(contains(r.status.message, "position 7")) << r.status.message;

  // Halved: written.
  d.obs.queue = waiting(3, 4, 4);
  r = d.run(t0 + 3s);
  EXPECT_TRUE(r.status_changed);
  EXPECT_EQ(r.status.queue_position, 3);
  EXPECT_TRUE(contains(r.status.message, "position 3")) << r.status.message;

  // The last places exactly.
  d.obs.queue = waiting(2, 4, 4);
  r = d.run(t0 + 4s);
  EXPECT_EQ(r.status.queue_position, 2);

  // Position 0 (the queue's cache lags): what is written stays.
  d.obs.queue = waiting(0, 4, 4);
  r = d.run(t0 + 5s);
  EXPECT_FALSE(r.status_changed);
  EXPECT_EQ(r.status.queue_position, 2);

  // Moved back: written.
  d.obs.queue = waiting(9, 4, 4);
  r = d.run(t0 + 6s);
  EXPECT_TRUE(r.status_changed);
  EXPECT_EQ(r.status.queue_position, 9);
  EXPECT_EQ(r.status.phase, datasync_phase::queued);
  EXPECT_TRUE(events(r).empty());
}

TEST(DatasyncPhase, QueuedWithoutPositionSaysNoPosition) {
  auto ds = queued_ds();
  datasync_observations obs;
  obs.has_workspace_label = true;
  obs.queue = waiting(0, 2, 2);
  auto r = datasync_step(ds, obs, t0 + 1s);
  EXPECT_EQ(r.status.queue_position, std::nullopt);
  EXPECT_EQ(r.status.message, "waiting for a slot: 2 of 2 syncing");
}

TEST(DatasyncPhase, GrantedStartsSyncing) {
  driver d;
  d.obj = queued_ds();
  d.obs.has_workspace_label = true;
  d.obs.queue = waiting(2);
  d.run(t0 + 1s);
  ASSERT_EQ(d.obj.status.queue_position, 2);

  d.obs.queue = granted(1, 4);
  auto r = d.run(t0 + 2s);
  EXPECT_TRUE(r.status_changed);
  EXPECT_EQ(r.status.phase, datasync_phase::syncing);
  EXPECT_EQ(r.status.queue_position, std::nullopt);
  EXPECT_EQ(r.status.next_retry_time, std::nullopt);
  EXPECT_EQ(r.status.message, "syncing 2 VMs");
  EXPECT_EQ(ready(r)->status, "False");
  EXPECT_EQ(ready(r)->reason, "Syncing");
  ASSERT_EQ(events(r).size(), 1U);
  EXPECT_EQ(events(r)[0].type, "Normal");
  EXPECT_EQ(events(r)[0].reason, "Started");
  EXPECT_EQ(events(r)[0].message, "admitted (1 of 4 slots in use); syncing 2 VMs");
  EXPECT_TRUE(all<da::create_job>(r).empty()) << "the Jobs come after Syncing is read back";
  EXPECT_TRUE(all<da::create_claim>(r).empty());
  EXPECT_EQ(r.outcome, reconcile_outcome::requeue(milliseconds(0)));
}

// ---------------------------------------------------------------------------------------------
// Syncing

TEST(DatasyncPhase, SyncingCreatesClaimsAndJobsForEveryVm) {
  auto ds = syncing_ds();
  auto obs = syncing_obs();
  obs.claims.clear();
  auto r = datasync_step(ds, obs, t0 + 2s);
  const auto base = config::datasync_job_name("ws-v1", "base", 3, 0);
  const auto data = config::datasync_job_name("ws-v1", "data", 3, 0);
  ASSERT_EQ(r.actions.size(), 4U);
  EXPECT_EQ(std::get<da::create_claim>(r.actions[0]), (da::create_claim{"base"}));
  EXPECT_EQ(std::get<da::create_job>(r.actions[1]), (da::create_job{"base", base}));
  EXPECT_EQ(std::get<da::create_claim>(r.actions[2]), (da::create_claim{"data"}));
  EXPECT_EQ(std::get<da::create_job>(r.actions[3]), (da::create_job{"data", data}));
  EXPECT_EQ(r.status.phase, datasync_phase::syncing);
  EXPECT_EQ(vm_status(r, "base")->phase, datasync_vm_phase::syncing);
  EXPECT_EQ(vm_status(r, "data")->phase, datasync_vm_phase::syncing);
  EXPECT_EQ(r.status.message, "syncing: 0 of 2 VMs done");
  EXPECT_EQ(ready(r)->reason, "Syncing");
  EXPECT_TRUE(events(r).empty());
  EXPECT_EQ(r.outcome, reconcile_outcome::success());

  // The same inputs give the same actions (the cache has not seen the Jobs yet).
  auto again = datasync_step(ds, obs, t0 + 3s);
  EXPECT_EQ(again.actions, r.actions);
}

TEST(DatasyncPhase, AClaimNameTakenBySomeoneElseFailsAndStopsTheOthers) {
  auto ds = syncing_ds();
  auto obs = syncing_obs();
  obs.claims = {"base"};
  obs.foreign_claims = {"data"};
  const auto base = job_of(ds, "base");
  obs.jobs = {job(base, "base")};
  auto r = datasync_step(ds, obs, t0 + 2s);
  EXPECT_EQ(r.status.phase, datasync_phase::failed);
  EXPECT_EQ(ready(r)->reason, "ClaimConflict");
  EXPECT_NE(r.status.message.find("PersistentVolumeClaim ws-v1-data in namespace default already "
                                  "exists and is not owned by this DataSync"),
            std::string::npos)
      << r.status.message;
  EXPECT_TRUE(all<da::create_job>(r).empty());
  EXPECT_TRUE(all<da::create_claim>(r).empty());
  EXPECT_EQ(deleted(r), (std::vector<std::string>{base})) << "the running download stops";
  ASSERT_EQ(events(r).size(), 1U);
  EXPECT_EQ(events(r)[0].reason, "ClaimConflict");
  EXPECT_EQ(r.outcome, reconcile_outcome::success());
}

TEST(DatasyncPhase, AForeignClaimOfAFinishedVmDoesNotMatter) {
  auto ds = syncing_ds();
  ds.status.vms[1].phase = datasync_vm_phase::succeeded;
  auto obs = syncing_obs();
  obs.foreign_claims = {"data"};
  auto r = datasync_step(ds, obs, t0 + 2s);
  EXPECT_EQ(r.status.phase, datasync_phase::syncing);
}

TEST(DatasyncPhase, SyncingWithClaimsOnlyCreatesJobs) {
  auto ds = syncing_ds();
  auto obs = syncing_obs();  // both claims exist
  auto r = datasync_step(ds, obs, t0 + 2s);
  EXPECT_TRUE(all<da::create_claim>(r).empty());
  EXPECT_EQ(
      all<da::create_job>(r),
      (std::vector<da::create_job>{{"base", config::datasync_job_name("ws-v1", "base", 3, 0)},
                                   {"data", config::datasync_job_name("ws-v1", "data", 3, 0)}}));

  // One claim missing: only that one is created.
  obs.claims = {"data"};
  r = datasync_step(ds, obs, t0 + 2s);
  EXPECT_EQ(all<da::create_claim>(r), std::vector<da::create_claim>{{"base"}});
  EXPECT_EQ(all<da::create_job>(r).size(), 2U);
}

TEST(DatasyncPhase, JobNamesFollowTheRetryCount) {
  auto ds = syncing_ds();
  ds.status.retry_count = 2;
  auto r = datasync_step(ds, syncing_obs(), t0 + 2s);
  EXPECT_EQ(
      all<da::create_job>(r),
      (std::vector<da::create_job>{{"base", config::datasync_job_name("ws-v1", "base", 3, 2)},
                                   {"data", config::datasync_job_name("ws-v1", "data", 3, 2)}}));
}

TEST(DatasyncPhase, ActiveJobsAreWaitedFor) {
  auto ds = syncing_ds();
  auto obs = syncing_obs();
  obs.jobs = {job(job_of(ds, "base"), "base"), job(job_of(ds, "data"), "data")};
  driver d;
  d.obj = ds;
  d.obs = obs;
  auto r = d.run(t0 + 5s);
  EXPECT_TRUE(r.actions.empty());
  EXPECT_EQ(r.status.phase, datasync_phase::syncing);
  EXPECT_EQ(r.status.message, "syncing: 0 of 2 VMs done");
  // Quiet once written.
  r = d.run(t0 + 6s);
  EXPECT_TRUE(r.actions.empty());
  EXPECT_FALSE(r.status_changed);
}

TEST(DatasyncPhase, AllJobsSucceeded) {
  driver d;
  d.obj = syncing_ds();
  d.obs = syncing_obs();
  const auto base = job_of(d.obj, "base");
  const auto data = job_of(d.obj, "data");
  auto data_job = succeeded_job(data, "data", k_digest_got, 5000);
  data_job.message = "downloaded 5000 bytes, sha256 verified";
  d.obs.jobs = {succeeded_job(base, "base", k_digest_want, int64_t{1} << 30), data_job};
  auto r = d.run(t0 + 100s);

  EXPECT_TRUE(r.status_changed);
  EXPECT_EQ(r.status.phase, datasync_phase::succeeded);
  EXPECT_EQ(r.status.message, "all 2 VMs synced and verified");
  EXPECT_EQ(ready(r)->status, "True");
  EXPECT_EQ(ready(r)->reason, "Succeeded");
  EXPECT_EQ(ready(r)->last_transition_time, t0 + 100s);

  const auto* vb = vm_status(r, "base");
  ASSERT_NE(vb, nullptr);
  EXPECT_EQ(vb->phase, datasync_vm_phase::succeeded);
  EXPECT_EQ(vb->digest, k_digest_want);
  EXPECT_EQ(vb->bytes, int64_t{1} << 30);
  EXPECT_EQ(vb->size, int64_t{1} << 30);
  EXPECT_EQ(vb->message, std::nullopt);
  const auto* vd = vm_status(r, "data");
  ASSERT_NE(vd, nullptr);
  EXPECT_EQ(vd->phase, datasync_vm_phase::succeeded);
  EXPECT_EQ(vd->digest, k_digest_got);
  EXPECT_EQ(vd->bytes, 5000);
  EXPECT_EQ(vd->size, 5000) << "learnt from the Job when the spec had none";

  auto ev = events(r);
  ASSERT_EQ(ev.size(), 3U);
  EXPECT_EQ(ev[0], (da::emit_event{"Normal", "VMSynced", "VM base: synced"}));
  EXPECT_EQ(ev[1], (da::emit_event{"Normal", "VMSynced",
                                   "VM data: downloaded 5000 bytes, sha256 verified"}));
  EXPECT_EQ(ev[2], (da::emit_event{"Normal", "Succeeded", r.status.message}));
  EXPECT_EQ(deleted(r), (std::vector<std::string>{base, data}));
  EXPECT_TRUE(all<da::create_job>(r).empty());
  EXPECT_EQ(r.outcome, reconcile_outcome::success());

  // Succeeded: the Jobs being deleted are left alone, nothing else happens.
  for (auto& j : d.obs.jobs)
    j.deleting = true;
  r = d.run(t0 + 101s);
  EXPECT_TRUE(r.actions.empty());
  EXPECT_FALSE(r.status_changed);
  EXPECT_EQ(r.status.last_reconciled_time, t0 + 100s);

  // A Job the cache still shows without its deletionTimestamp is deleted (again).
  d.obs.jobs[0].deleting = false;
  r = d.run(t0 + 102s);
  EXPECT_EQ(deleted(r), std::vector<std::string>{base});
  EXPECT_FALSE(r.status_changed);
}

TEST(DatasyncPhase, AVmSucceededEarlierIsNotRunAgain) {
  auto ds = syncing_ds();
  ds.status.vms[1].phase = datasync_vm_phase::succeeded;
  ds.status.vms[1].digest = k_digest_got;
  auto obs = syncing_obs();
  auto r = datasync_step(ds, obs, t0 + 2s);
  EXPECT_EQ(all<da::create_job>(r), (std::vector<da::create_job>{{"base", job_of(ds, "base")}}));
  EXPECT_EQ(r.status.message, "syncing: 1 of 2 VMs done");

  obs.jobs = {succeeded_job(job_of(ds, "base"), "base", k_digest_want, 10)};
  r = datasync_step(ds, obs, t0 + 3s);
  EXPECT_EQ(r.status.phase, datasync_phase::succeeded);
  EXPECT_EQ(vm_status(r, "data")->digest, k_digest_got);
  EXPECT_EQ(deleted(r), std::vector<std::string>{job_of(ds, "base")});
}

// The Job and pod caches are separate watch streams: a Job seen Failed before its pod's exit
// code is not classified (a missing source would otherwise be retried as transient) until the
// pod's status arrives, for at most k_pod_status_grace.
TEST(DatasyncPhase, AFailedJobWaitsForItsPodsExitCode) {
  auto ds = syncing_ds();
  auto obs = syncing_obs();
  const auto base = job_of(ds, "base");
  auto pending = job(base, "base", st::failed);
  pending.reason = "BackoffLimitExceeded";
  pending.failed_at = t0 + 10s;
  pending.pod_unsettled = true;
  obs.jobs = {pending, job(job_of(ds, "data"), "data")};
  auto r = datasync_step(ds, obs, t0 + 12s);
  EXPECT_EQ(r.status.phase, datasync_phase::syncing);
  EXPECT_EQ(vm_status(r, "base")->phase, datasync_vm_phase::syncing);
  EXPECT_TRUE(deleted(r).empty());
  EXPECT_TRUE(events(r).empty());
  EXPECT_EQ(r.outcome, reconcile_outcome::requeue(k_pod_status_grace - 2s));

  // The pod's exit code arrives: MissingSource, at once.
  obs.jobs[0] = failed_job(base, "base", datasync::k_exit_missing_source, "MissingSource", "404");
  r = datasync_step(ds, obs, t0 + 13s);
  EXPECT_EQ(r.status.phase, datasync_phase::failed);
  EXPECT_EQ(ready(r)->reason, "MissingSource");

  // It never arrives: after the grace the failure counts without it (transient: retried).
  obs.jobs[0] = pending;
  obs.jobs[1] = failed_job(job_of(ds, "data"), "data", datasync::k_exit_unknown, "", "");
  r = datasync_step(ds, obs, t0 + 10s + k_pod_status_grace);
  EXPECT_EQ(r.status.phase, datasync_phase::queued);
  EXPECT_EQ(r.status.retry_count, 1);
}

TEST(DatasyncPhase, MissingSourceFailsAtOnceAndStopsTheOthers) {
  driver d;
  d.obj = syncing_ds();
  d.obs = syncing_obs();
  const auto base = job_of(d.obj, "base");
  const auto data = job_of(d.obj, "data");
  d.obs.jobs = {failed_job(base, "base", datasync::k_exit_missing_source, "MissingSource",
                           "GET https://images.example.com/base.qcow2: 404 Not Found"),
                job(data, "data", st::active)};
  auto r = d.run(t0 + 30s);

  EXPECT_EQ(r.status.phase, datasync_phase::failed);
  EXPECT_EQ(ready(r)->status, "False");
  EXPECT_EQ(ready(r)->reason, "MissingSource");
  EXPECT_TRUE(contains(r.status.message, "404 Not Found")) << r.status.message;
  EXPECT_TRUE(contains(r.status.message, "VM base")) << r.status.message;
  EXPECT_TRUE(contains(r.status.message, "not retried")) << r.status.message;
  EXPECT_EQ(r.status.retry_count, 0);
  EXPECT_EQ(r.status.next_retry_time, std::nullopt);
  EXPECT_EQ(deleted(r), std::vector<std::string>{data});

  const auto* vb = vm_status(r, "base");
  EXPECT_EQ(vb->phase, datasync_vm_phase::failed);
  ASSERT_TRUE(vb->message.has_value());
  EXPECT_EQ(vb->message->rfind("MissingSource: ", 0), 0U) << *vb->message;
  const auto* vd = vm_status(r, "data");
  EXPECT_EQ(vd->phase, datasync_vm_phase::pending);
  EXPECT_EQ(vd->message, "stopped: another VM failed");

  auto ev = events(r);
  ASSERT_EQ(ev.size(), 2U);
  EXPECT_EQ(ev[0].type, "Warning");
  EXPECT_EQ(ev[0].reason, "VMFailed");
  EXPECT_TRUE(contains(ev[0].message, "[MissingSource]")) << ev[0].message;
  EXPECT_EQ(ev[1], (da::emit_event{"Warning", "MissingSource", r.status.message}));
  EXPECT_EQ(r.outcome, reconcile_outcome::success());

  // Failed: the still-running Job (its deletion not seen yet) is deleted, the failed one kept
  // for `kubectl logs`; no further event.
  r = d.run(t0 + 31s);
  EXPECT_EQ(deleted(r), std::vector<std::string>{data});
  EXPECT_TRUE(events(r).empty());
  EXPECT_FALSE(r.status_changed);
  d.obs.jobs[1].deleting = true;
  r = d.run(t0 + 32s);
  EXPECT_TRUE(r.actions.empty());
}

TEST(DatasyncPhase, UnauthorizedIsTerminalToo) {
  auto ds = syncing_ds();
  auto obs = syncing_obs();
  obs.jobs = {failed_job(job_of(ds, "base"), "base", datasync::k_exit_unauthorized, "Unauthorized",
                         "403 Forbidden"),
              job(job_of(ds, "data"), "data")};
  auto r = datasync_step(ds, obs, t0 + 30s);
  EXPECT_EQ(r.status.phase, datasync_phase::failed);
  EXPECT_EQ(ready(r)->reason, "Unauthorized");
  EXPECT_EQ(deleted(r), std::vector<std::string>{job_of(ds, "data")});
}

// A terminal failure is seen while another VM's Job is not in the cache (not created yet, or
// deleted by someone): the step creates that Job and deletes it again in the same action list,
// starting a download for a DataSync it is failing. Disabled: it fails against the current
// code; see the report.
TEST(DatasyncPhase, TerminalFailureCreatesNoNewJob) {
  auto ds = syncing_ds();
  auto obs = syncing_obs();
  obs.jobs = {failed_job(job_of(ds, "base"), "base", datasync::k_exit_missing_source, "", "404")};
  auto r = datasync_step(ds, obs, t0 + 30s);
  EXPECT_EQ(r.status.phase, datasync_phase::failed);
  EXPECT_TRUE(all<da::create_job>(r).empty());
  EXPECT_TRUE(all<da::create_claim>(r).empty());
  EXPECT_TRUE(deleted(r).empty());
}

TEST(DatasyncPhase, ChecksumMismatchRetriesAfterTheBackoff) {
  driver d;
  d.obj = syncing_ds();
  d.obs = syncing_obs();
  d.obs.queue->retry_backoff_seconds = 120;
  d.obs.queue->retry_limit = 2;
  const auto base0 = job_of(d.obj, "base");
  const auto data0 = job_of(d.obj, "data");
  const std::string mismatch = "checksum mismatch: want " + k_digest_want + ", got " + k_digest_got;
  d.obs.jobs = {
      failed_job(base0, "base", datasync::k_exit_checksum_mismatch, "ChecksumMismatch", mismatch),
      succeeded_job(data0, "data", k_digest_got, 5000)};
  const auto now = t0 + 50s;
  auto r = d.run(now);

  EXPECT_TRUE(r.status_changed);
  EXPECT_EQ(r.status.phase, datasync_phase::queued);
  EXPECT_EQ(r.status.retry_count, 1);
  EXPECT_EQ(r.status.next_retry_time, now + 120s);
  EXPECT_EQ(r.status.queue_position, std::nullopt);
  EXPECT_EQ(ready(r)->status, "False");
  EXPECT_EQ(ready(r)->reason, "Retrying");
  EXPECT_TRUE(contains(r.status.message, k_digest_want)) << r.status.message;
  EXPECT_TRUE(contains(r.status.message, k_digest_got)) << r.status.message;
  EXPECT_TRUE(contains(r.status.message, "retry 1 of 2")) << r.status.message;
  EXPECT_TRUE(contains(r.status.message, rfc3339::format(now + 120s))) << r.status.message;
  EXPECT_EQ(vm_status(r, "base")->phase, datasync_vm_phase::pending) << "runs again";
  EXPECT_EQ(vm_status(r, "data")->phase, datasync_vm_phase::succeeded) << "kept";
  EXPECT_EQ(vm_status(r, "data")->digest, k_digest_got);
  auto ev = events(r);
  ASSERT_EQ(ev.size(), 3U);
  EXPECT_EQ(ev[0].reason, "VMFailed");
  EXPECT_TRUE(contains(ev[0].message, "[ChecksumMismatch]")) << ev[0].message;
  EXPECT_EQ(ev[1].reason, "VMSynced");
  EXPECT_EQ(ev[2], (da::emit_event{"Warning", "Retrying", r.status.message}));
  EXPECT_TRUE(all<da::create_job>(r).empty());
  EXPECT_EQ(r.outcome, reconcile_outcome::success());

  // Queued for the retry: the Jobs of retry 0 are stale now and go; the message says when.
  d.obs.queue = waiting(1);
  d.obs.queue->retry_backoff_seconds = 120;
  r = d.run(now + 1s);
  EXPECT_EQ(r.status.phase, datasync_phase::queued);
  EXPECT_EQ(deleted(r), (std::vector<std::string>{base0, data0}));
  EXPECT_EQ(ready(r)->reason, "Retrying");
  EXPECT_EQ(r.status.message,
            "waiting until " + rfc3339::format(now + 120s) + " to retry; position 1 in the queue");

  // Admitted after the backoff: Started names the retry, only the failed VM runs again.
  d.obs.queue = granted(0, 4);
  d.obs.jobs.clear();
  r = d.run(now + 121s);
  EXPECT_EQ(r.status.phase, datasync_phase::syncing);
  EXPECT_EQ(r.status.next_retry_time, std::nullopt);
  EXPECT_EQ(r.status.retry_count, 1);
  EXPECT_EQ(r.status.message, "syncing 1 VM");
  ASSERT_EQ(events(r).size(), 1U);
  EXPECT_EQ(events(r)[0].reason, "Started");
  EXPECT_TRUE(contains(events(r)[0].message, "(retry 1)")) << events(r)[0].message;

  r = d.run(now + 122s);
  EXPECT_EQ(
      all<da::create_job>(r),
      (std::vector<da::create_job>{{"base", config::datasync_job_name("ws-v1", "base", 3, 1)}}));
}

TEST(DatasyncPhase, BackoffDoublesWithTheRetryCount) {
  auto ds = syncing_ds();
  ds.status.retry_count = 1;
  auto obs = syncing_obs();
  obs.queue->retry_backoff_seconds = 120;
  obs.queue->retry_backoff_limit_seconds = 3600;
  obs.queue->retry_limit = 5;
  obs.jobs = {failed_job(job_of(ds, "base"), "base", datasync::k_exit_checksum_mismatch, "",
                         "want " + k_digest_want + " got " + k_digest_got),
              succeeded_job(job_of(ds, "data"), "data", k_digest_got, 1)};
  auto r = datasync_step(ds, obs, t0);
  EXPECT_EQ(r.status.phase, datasync_phase::queued);
  EXPECT_EQ(r.status.retry_count, 2);
  EXPECT_EQ(r.status.next_retry_time, t0 + 240s);
}

TEST(DatasyncPhase, ChecksumMismatchAtTheRetryLimitFails) {
  auto ds = syncing_ds();
  ds.status.retry_count = 2;
  auto obs = syncing_obs();
  obs.queue->retry_limit = 2;
  const std::string mismatch = "checksum mismatch: want " + k_digest_want + ", got " + k_digest_got;
  obs.jobs = {failed_job(job_of(ds, "base"), "base", datasync::k_exit_checksum_mismatch,
                         "ChecksumMismatch", mismatch),
              succeeded_job(job_of(ds, "data"), "data", k_digest_got, 1)};
  auto r = datasync_step(ds, obs, t0 + 50s);
  EXPECT_EQ(r.status.phase, datasync_phase::failed);
  EXPECT_EQ(r.status.retry_count, 2);
  EXPECT_EQ(r.status.next_retry_time, std::nullopt);
  EXPECT_EQ(ready(r)->status, "False");
  EXPECT_EQ(ready(r)->reason, "RetryLimitExceeded");
  EXPECT_TRUE(contains(r.status.message, k_digest_want)) << r.status.message;
  EXPECT_TRUE(contains(r.status.message, k_digest_got)) << r.status.message;
  EXPECT_TRUE(contains(r.status.message, "gave up after 2 retries")) << r.status.message;
  auto ev = events(r);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back(), (da::emit_event{"Warning", "RetryLimitExceeded", r.status.message}));
  EXPECT_TRUE(deleted(r).empty()) << "finished Jobs stay for kubectl logs";
}

TEST(DatasyncPhase, TransientFailureWaitsForTheOthersThenRetries) {
  driver d;
  d.obj = syncing_ds();
  d.obs = syncing_obs();
  const auto base = job_of(d.obj, "base");
  const auto data = job_of(d.obj, "data");
  d.obs.jobs = {failed_job(base, "base", 1, "Error", "connection reset by peer"),
                job(data, "data", st::active)};
  auto r = d.run(t0 + 10s);
  EXPECT_EQ(r.status.phase, datasync_phase::syncing) << "the other VM is still downloading";
  EXPECT_EQ(r.status.retry_count, 0);
  EXPECT_EQ(r.status.message, "syncing: 0 of 2 VMs done, 1 failed");
  EXPECT_EQ(ready(r)->reason, "Syncing");
  EXPECT_EQ(vm_status(r, "base")->phase, datasync_vm_phase::failed);
  ASSERT_TRUE(vm_status(r, "base")->message.has_value());
  EXPECT_EQ(*vm_status(r, "base")->message, "Transient: connection reset by peer");
  EXPECT_EQ(vm_status(r, "data")->phase, datasync_vm_phase::syncing);
  ASSERT_EQ(events(r).size(), 1U);
  EXPECT_EQ(events(r)[0].type, "Warning");
  EXPECT_EQ(events(r)[0].reason, "VMFailed");
  EXPECT_EQ(events(r)[0].message, "VM base: connection reset by peer (exit code 1) [Transient]");
  EXPECT_TRUE(deleted(r).empty());
  EXPECT_TRUE(all<da::create_job>(r).empty());

  // Same again: no second VMFailed, nothing to write.
  r = d.run(t0 + 11s);
  EXPECT_TRUE(r.actions.empty());
  EXPECT_FALSE(r.status_changed);

  // The other one finished: retry.
  d.obs.jobs[1] = succeeded_job(data, "data", k_digest_got, 7);
  r = d.run(t0 + 20s);
  EXPECT_EQ(r.status.phase, datasync_phase::queued);
  EXPECT_EQ(r.status.retry_count, 1);
  EXPECT_EQ(r.status.next_retry_time, t0 + 20s + 300s) << "the default backoff";
  EXPECT_EQ(ready(r)->reason, "Retrying");
  EXPECT_EQ(r.status.message.rfind("transient failure; retry 1 of 2", 0), 0U) << r.status.message;
  EXPECT_TRUE(contains(r.status.message, "connection reset by peer")) << r.status.message;
  EXPECT_EQ(vm_status(r, "base")->phase, datasync_vm_phase::pending);
  EXPECT_EQ(vm_status(r, "data")->phase, datasync_vm_phase::succeeded);
}

TEST(DatasyncPhase, TransientFailureAtTheRetryLimitFails) {
  auto ds = syncing_ds();
  ds.status.retry_count = 2;
  auto obs = syncing_obs();
  obs.jobs = {
      failed_job(job_of(ds, "base"), "base", datasync::k_exit_unknown, "DeadlineExceeded", ""),
      succeeded_job(job_of(ds, "data"), "data", k_digest_got, 7)};
  auto r = datasync_step(ds, obs, t0);
  EXPECT_EQ(r.status.phase, datasync_phase::failed);
  EXPECT_EQ(ready(r)->reason, "RetryLimitExceeded");
  EXPECT_TRUE(contains(r.status.message, "VM base: DeadlineExceeded")) << r.status.message;
}

// ---------------------------------------------------------------------------------------------
// Stale Jobs

TEST(DatasyncPhase, StaleJobsAreDeletedWhileQueued) {
  auto ds = queued_ds();
  ds.status.retry_count = 1;
  datasync_observations obs;
  obs.has_workspace_label = true;
  obs.queue = waiting(3);
  const auto old_gen = config::datasync_job_name("ws-v1", "base", 2, 0);
  const auto old_retry = config::datasync_job_name("ws-v1", "data", 3, 0);
  const auto gone = config::datasync_job_name("ws-v1", "data", 1, 0);
  auto being_deleted = job(gone, "data");
  being_deleted.deleting = true;
  obs.jobs = {job(old_gen, "base"), failed_job(old_retry, "data", 1, "", "x"), being_deleted,
              job(job_of(ds, "base"), "base")};
  auto r = datasync_step(ds, obs, t0 + 1s);
  EXPECT_EQ(deleted(r), (std::vector<std::string>{old_gen, old_retry}));
  EXPECT_EQ(r.status.phase, datasync_phase::queued);
}

TEST(DatasyncPhase, StaleJobsAreDeletedWhileSyncing) {
  auto ds = syncing_ds();
  auto obs = syncing_obs();
  const auto stale = config::datasync_job_name("ws-v1", "base", 2, 1);
  obs.jobs = {job(stale, "base", st::succeeded), job(job_of(ds, "base"), "base"),
              job(job_of(ds, "data"), "data")};
  auto r = datasync_step(ds, obs, t0 + 2s);
  EXPECT_EQ(deleted(r), std::vector<std::string>{stale});
  EXPECT_TRUE(all<da::create_job>(r).empty());
  EXPECT_EQ(r.status.phase, datasync_phase::syncing);
}

TEST(DatasyncPhase, FailedDeletesOnlyUnfinishedJobs) {
  auto ds = syncing_ds();
  ds.status.phase = datasync_phase::failed;
  datasync_observations obs;
  obs.has_workspace_label = true;
  const auto stale_active = config::datasync_job_name("ws-v1", "base", 2, 0);
  const auto stale_failed = config::datasync_job_name("ws-v1", "data", 2, 0);
  const auto current_active = job_of(ds, "base");
  const auto current_failed = job_of(ds, "data");
  obs.jobs = {job(stale_active, "base"), failed_job(stale_failed, "data", 1, "", "x"),
              job(current_active, "base"), failed_job(current_failed, "data", 3, "", "404"),
              succeeded_job("done", "base", k_digest_want, 1)};
  auto r = datasync_step(ds, obs, t0 + 2s);
  EXPECT_EQ(deleted(r), (std::vector<std::string>{stale_active, current_active}));
  EXPECT_FALSE(r.status_changed);
  EXPECT_TRUE(events(r).empty());
  EXPECT_EQ(r.outcome, reconcile_outcome::success());
}

TEST(DatasyncPhase, SucceededDeletesEveryJob) {
  auto ds = syncing_ds();
  ds.status.phase = datasync_phase::succeeded;
  datasync_observations obs;
  obs.has_workspace_label = true;
  obs.jobs = {job("a", "base", st::succeeded), job("b", "data", st::failed), job("c", "data")};
  auto r = datasync_step(ds, obs, t0 + 2s);
  EXPECT_EQ(deleted(r), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(r.status_changed);
}

// ---------------------------------------------------------------------------------------------
// Spec changes

TEST(DatasyncPhase, GenerationChangeWhileSyncingQueuesAgain) {
  auto ds = syncing_ds(3);
  ds.status.retry_count = 1;
  ds.status.vms[0].phase = datasync_vm_phase::succeeded;
  ds.status.vms[0].digest = k_digest_want;
  const auto base = job_of(ds, "base");
  const auto data = job_of(ds, "data");
  const auto older = config::datasync_job_name("ws-v1", "data", 3, 0);
  ds.metadata.generation = 4;
  auto obs = syncing_obs();
  auto being_deleted = failed_job(older, "data", 1, "", "x");
  being_deleted.deleting = true;
  obs.jobs = {succeeded_job(base, "base", k_digest_want, 1), job(data, "data"), being_deleted};
  auto r = datasync_step(ds, obs, t0 + 60s);

  EXPECT_TRUE(r.status_changed);
  EXPECT_EQ(r.status.phase, datasync_phase::queued);
  EXPECT_EQ(r.status.observed_generation, 4);
  EXPECT_EQ(r.status.retry_count, 0);
  EXPECT_EQ(r.status.next_retry_time, std::nullopt);
  ASSERT_EQ(r.status.vms.size(), 2U);
  for (const auto& v : r.status.vms) {
    EXPECT_EQ(v.phase, datasync_vm_phase::pending) << v.name;
    EXPECT_EQ(v.digest, std::nullopt) << v.name;
  }
  EXPECT_EQ(ready(r)->reason, "Queued");
  EXPECT_EQ(ready(r)->observed_generation, 4);
  EXPECT_EQ(deleted(r), (std::vector<std::string>{base, data}));
  ASSERT_EQ(events(r).size(), 1U);
  EXPECT_EQ(events(r)[0],
            (da::emit_event{"Normal", "Queued", "the spec changed (generation 4): queued again"}));
  EXPECT_TRUE(all<da::create_job>(r).empty());
  EXPECT_EQ(r.outcome, reconcile_outcome::success());
}

TEST(DatasyncPhase, GenerationChangeAfterFailedQueuesAgain) {
  auto ds = syncing_ds(3);
  ds.status.phase = datasync_phase::failed;
  ds.metadata.generation = 5;
  datasync_observations obs;
  obs.has_workspace_label = true;
  obs.jobs = {failed_job(config::datasync_job_name("ws-v1", "base", 3, 0), "base", 3, "", "404")};
  auto r = datasync_step(ds, obs, t0);
  EXPECT_EQ(r.status.phase, datasync_phase::queued);
  EXPECT_EQ(r.status.observed_generation, 5);
  EXPECT_EQ(deleted(r).size(), 1U) << "a new generation no longer needs the old logs";
}

// ---------------------------------------------------------------------------------------------
// position_worth_writing

TEST(PositionWorthWriting, Rules) {
  // The first position is always written; 0 (not queued, as the queue sees it) never is.
  EXPECT_TRUE(position_worth_writing(std::nullopt, 1));
  EXPECT_TRUE(position_worth_writing(std::nullopt, 1000));
  EXPECT_FALSE(position_worth_writing(std::nullopt, 0));
  EXPECT_FALSE(position_worth_writing(5, 0));
  EXPECT_FALSE(position_worth_writing(5, -1));
  // Unchanged: never.
  EXPECT_FALSE(position_worth_writing(1, 1));
  EXPECT_FALSE(position_worth_writing(3, 3));
  EXPECT_FALSE(position_worth_writing(100, 100));
  // The last three places exactly.
  EXPECT_TRUE(position_worth_writing(4, 3));
  EXPECT_TRUE(position_worth_writing(3, 2));
  EXPECT_TRUE(position_worth_writing(2, 1));
  EXPECT_TRUE(position_worth_writing(100, 3));
  // Moved back: always.
  EXPECT_TRUE(position_worth_writing(5, 6));
  EXPECT_TRUE(position_worth_writing(1, 2));
  // Otherwise only when halved.
  EXPECT_FALSE(position_worth_writing(100, 99));
  EXPECT_FALSE(position_worth_writing(100, 51));
  EXPECT_TRUE(position_worth_writing(100, 50));
  EXPECT_TRUE(position_worth_writing(100, 10));
  EXPECT_FALSE(position_worth_writing(9, 5));
  EXPECT_TRUE(position_worth_writing(9, 4));
  EXPECT_FALSE(position_worth_writing(7, 4));
}

TEST(PositionWorthWriting, ALongQueueCostsLogarithmicWrites) {
  std::optional<int64_t> written;
  int writes = 0;
  for (int64_t p = 1024; p >= 1; --p)
    if (position_worth_writing(written, p)) {
      written = p;
      ++writes;
    }
  EXPECT_EQ(written, 1);
  // 1024, 512, ..., 4 (9 writes), then 3, 2, 1.
  EXPECT_EQ(writes, 12);
}

TEST(DatasyncPhase, GenerationChangeAfterPruningDropsThePrunedCondition) {
  auto ds = syncing_ds(3);
  ds.status.phase = datasync_phase::succeeded;
  config::set_condition(ds.status.conditions,
                        config::make_condition("Pruned", "True", "Pruned", "deleted its volumes"),
                        t0);
  ds.metadata.generation = 4;
  datasync_observations obs;
  obs.has_workspace_label = true;
  auto r = datasync_step(ds, obs, t0 + 60s);
  EXPECT_EQ(r.status.phase, datasync_phase::queued);
  EXPECT_EQ(config::find_condition(r.status.conditions, "Pruned"), nullptr)
      << "the new generation recreates the volumes";
  EXPECT_NE(ready(r), nullptr);
}

namespace {

config::datasync_vm_status vm_status(std::string name, datasync_vm_phase phase, int64_t bytes) {
  config::datasync_vm_status v;
  v.name = std::move(name);
  v.phase = phase;
  v.bytes = bytes;
  return v;
}

TEST(DatasyncSyncedBytes, EachVmCountsOnceWhenItSucceeds) {
  config::datasync_status before, after;
  before.vms = {vm_status("a", datasync_vm_phase::syncing, 10),
                vm_status("b", datasync_vm_phase::succeeded, 200)};
  after.vms = {vm_status("a", datasync_vm_phase::succeeded, 100),
               vm_status("b", datasync_vm_phase::succeeded, 200),
               vm_status("c", datasync_vm_phase::succeeded, 7),
               vm_status("d", datasync_vm_phase::failed, 50)};
  // a and c got there now; b had already; d failed.
  EXPECT_EQ(newly_synced_bytes(before, after), 107);
  // The next status change of the same DataSync adds nothing.
  EXPECT_EQ(newly_synced_bytes(after, after), 0);
  // A VM whose agent reported no bytes adds nothing.
  after.vms = {vm_status("e", datasync_vm_phase::succeeded, 0)};
  EXPECT_EQ(newly_synced_bytes(before, after), 0);
}

}  // namespace
