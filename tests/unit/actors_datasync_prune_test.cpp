// What the DataSync actor reads from its caches: the populate Job and its pod
// (actors/datasync_actor.hpp, observe_populate_job); and what pruning reads from the cluster
// (docs/datasync.md, "Pruning"): which claims the Pods of a namespace mount
// (actors/datasync_actor.hpp, claims_in_use) and what the queue actor records of a DataSync for
// waking older versions (actors/datasync_queue.hpp, read_queue_entry).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "actors/datasync_actor.hpp"
#include "actors/datasync_queue.hpp"
#include "runtime/json/value.hpp"

using namespace tidesync;
using namespace tidesync::actors;

namespace {

json::value parse(const std::string& text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? std::move(*v) : json::value{};
}

}  // namespace

TEST(ClaimsInUse, EveryClaimOfEveryPodThatHasNotStopped) {
  auto pods = parse(R"({"kind":"PodList","items":[
    {"metadata":{"name":"running"},"status":{"phase":"Running"},
     "spec":{"volumes":[{"name":"a","persistentVolumeClaim":{"claimName":"v1-disk"}},
                        {"name":"tmp","emptyDir":{}},
                        {"name":"b","persistentVolumeClaim":{"claimName":"v1-data"}}]}},
    {"metadata":{"name":"pending"},
     "spec":{"volumes":[{"name":"a","persistentVolumeClaim":{"claimName":"v1-disk"}}]}},
    {"metadata":{"name":"terminating","deletionTimestamp":"2026-01-01T00:00:00Z"},
     "status":{"phase":"Running"},
     "spec":{"volumes":[{"name":"a","persistentVolumeClaim":{"claimName":"v2-disk"}}]}},
    {"metadata":{"name":"done"},"status":{"phase":"Succeeded"},
     "spec":{"volumes":[{"name":"a","persistentVolumeClaim":{"claimName":"v3-disk"}}]}},
    {"metadata":{"name":"crashed"},"status":{"phase":"Failed"},
     "spec":{"volumes":[{"name":"a","persistentVolumeClaim":{"claimName":"v3-disk"}}]}},
    {"metadata":{"name":"novolumes"},"spec":{}}
  ]})");
  auto in_use = claims_in_use(pods);
  ASSERT_EQ(in_use.size(), 3U);
  EXPECT_EQ(in_use["v1-disk"], (std::vector<std::string>{"running", "pending"}));
  EXPECT_EQ(in_use["v1-data"], (std::vector<std::string>{"running"}));
  EXPECT_EQ(in_use["v2-disk"], (std::vector<std::string>{"terminating"}))
      << "a Pod being deleted still mounts its volumes";
  EXPECT_EQ(in_use.count("v3-disk"), 0U) << "stopped Pods mount nothing";
}

TEST(ClaimsInUse, SameClaimTwiceInOnePodNamesThePodOnce) {
  auto pods = parse(R"({"items":[{"metadata":{"name":"p"},"spec":{"volumes":[
    {"name":"a","persistentVolumeClaim":{"claimName":"c"}},
    {"name":"b","persistentVolumeClaim":{"claimName":"c","readOnly":true}}]}}]})");
  EXPECT_EQ(claims_in_use(pods)["c"], (std::vector<std::string>{"p"}));
}

TEST(ClaimsInUse, NotAListIsEmpty) {
  EXPECT_TRUE(claims_in_use(parse(R"({"kind":"Status"})")).empty());
  EXPECT_TRUE(claims_in_use(parse(R"({"items":{}})")).empty());
}

TEST(ReadQueueEntry, SucceededForTheCurrentGenerationWithItsWorkspace) {
  auto e = read_queue_entry(parse(R"({"metadata":{"name":"v1","uid":"u","generation":2,
    "creationTimestamp":"2026-01-01T00:00:00Z","labels":{"tidesync.io/workspace":"ws"}},
    "status":{"phase":"Succeeded","observedGeneration":2}})"));
  EXPECT_TRUE(e.succeeded);
  EXPECT_EQ(e.workspace, "ws");
  EXPECT_EQ(e.what, queue_entry::state::other);
}

TEST(ReadQueueEntry, SucceededForAnOlderGenerationIsPendingNotSucceeded) {
  auto e = read_queue_entry(parse(R"({"metadata":{"name":"v1","uid":"u","generation":3},
    "status":{"phase":"Succeeded","observedGeneration":2}})"));
  EXPECT_FALSE(e.succeeded);
  EXPECT_EQ(e.what, queue_entry::state::pending);
  EXPECT_EQ(e.workspace, "");
}

TEST(ReadQueueEntry, BeingDeletedIsNotSucceeded) {
  auto e = read_queue_entry(parse(R"({"metadata":{"name":"v1","uid":"u","generation":2,
    "deletionTimestamp":"2026-01-01T00:00:00Z"},
    "status":{"phase":"Succeeded","observedGeneration":2}})"));
  EXPECT_FALSE(e.succeeded);
}

TEST(ObservePopulateJob, AFailedJobWithoutItsPodsExitCodeIsUnsettled) {
  auto job = parse(R"({"metadata":{"name":"j","labels":{"tidesync.io/datasync-vm":"disk"}},
    "status":{"conditions":[{"type":"Failed","status":"True","reason":"BackoffLimitExceeded",
    "lastTransitionTime":"2026-01-01T00:00:10Z"}]}})");
  auto running = parse(R"({"status":{"containerStatuses":[
    {"name":"populate","state":{"running":{}}}]}})");
  auto o = observe_populate_job(job, &running);
  EXPECT_EQ(o.what, populate_observation::state::failed);
  EXPECT_EQ(o.vm, "disk");
  EXPECT_TRUE(o.pod_unsettled);
  ASSERT_TRUE(o.failed_at.has_value());
  EXPECT_EQ(o.failed_at->time_since_epoch().count() % 60, 10);
  auto no_status = parse(R"({"metadata":{"name":"p"}})");
  EXPECT_TRUE(observe_populate_job(job, &no_status).pod_unsettled);
  EXPECT_FALSE(observe_populate_job(job, nullptr).pod_unsettled) << "no pod: nothing to wait for";

  auto exited = parse(R"({"status":{"containerStatuses":[{"name":"populate","state":{
    "terminated":{"exitCode":3,"message":"{\"reason\":\"MissingSource\",\"message\":\"404\"}"}}}]}})");
  o = observe_populate_job(job, &exited);
  EXPECT_FALSE(o.pod_unsettled);
  EXPECT_EQ(o.exit_code, 3);
  EXPECT_EQ(o.reason, "MissingSource");
}
