// SharedVolume decisions (actors/sharedvolume_logic.hpp): the status in each state, which pods
// consume a volume, which namespaces lose their claim, and syncer reports.
#include <gtest/gtest.h>

#include "actors/sharedvolume_logic.hpp"

using namespace tidesync;
using namespace tidesync::actors;

namespace {

config::sharedvolume volume(const std::string& storage = "") {
  auto v = json::parse(R"({"apiVersion":"tidesync.io/v1alpha1","kind":"SharedVolume",
    "metadata":{"name":"docs","namespace":"team-a","generation":2},
    "spec":{"source":{"git":{"url":"https://a/b"}})" +
                       storage + "}}");
  auto r = config::parse_sharedvolume(*v);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  return r ? std::move(*r) : config::sharedvolume{};
}

std::string cond(const config::sharedvolume_status& s, const char* type) {
  const auto* c = config::find_condition(s.conditions, type);
  return c ? c->status + " " + c->reason : "";
}

config::sys_seconds at(int64_t s) {
  return config::sys_seconds(std::chrono::seconds(s));
}

json::value pod(const std::string& ns, const std::string& name, const std::string& annotations,
                const std::string& phase = "Running") {
  return *json::parse(R"({"metadata":{"namespace":")" + ns + R"(","name":")" + name +
                      R"(","annotations":)" + annotations + R"(},"status":{"phase":")" + phase +
                      R"("}})");
}

}  // namespace

TEST(SharedVolumeStatus, FromPendingToReadyAndDeleting) {
  auto v = volume();
  const std::pair<std::string, std::string> nfs{"sv-docs-nfs.team-a.svc.cluster.local", "/"};
  volume_observation o;
  auto s = volume_status(v, o, nfs, at(1));
  EXPECT_EQ(s.phase, "Pending");
  EXPECT_EQ(cond(s, "ServerReady"), "False Starting");
  EXPECT_EQ(cond(s, "Ready"), "False ServerNotReady");
  EXPECT_EQ(s.observed_generation, 2);
  o.server_ready = true;
  s = volume_status(v, o, nfs, at(2));
  EXPECT_EQ(s.phase, "Syncing");
  EXPECT_EQ(cond(s, "Synced"), "Unknown NotSyncedYet");
  v.status.last_sync_result = "Failed";
  v.status.last_sync_message = "repository not found";
  s = volume_status(v, o, nfs, at(3));
  EXPECT_EQ(s.phase, "Failed");
  EXPECT_EQ(cond(s, "Ready"), "False SyncFailed");
  v.status.last_sync_result = "Succeeded";
  v.status.revision = "4f2c9e1";
  o.consumers = {{"team-a", {"r-0", "r-1"}}};
  s = volume_status(v, o, nfs, at(4));
  EXPECT_EQ(s.phase, "Ready");
  EXPECT_EQ(cond(s, "Ready"), "True Ready");
  ASSERT_EQ(s.consumers.size(), 1u);
  EXPECT_EQ(s.consumers[0].pods, 2);
  // A later failure keeps it Ready on the revision it serves, and says why in Synced.
  v.status.last_sync_result = "Failed";
  s = volume_status(v, o, nfs, at(5));
  EXPECT_EQ(s.phase, "Ready");
  EXPECT_EQ(cond(s, "Synced"), "False SyncFailed");
  v.metadata.deletion_timestamp = at(6);
  s = volume_status(v, o, nfs, at(6));
  EXPECT_EQ(s.phase, "Deleting");
  EXPECT_EQ(cond(s, "Ready"), "False ConsumersRemain");
  EXPECT_NE(config::find_condition(s.conditions, "Ready")->message.find("team-a/r-0, team-a/r-1"),
            std::string::npos);
  // External storage is ready by definition.
  auto ext = volume(R"(,"storage":{"external":{"server":"n","path":"/x"}})");
  s = volume_status(ext, {}, {"n", "/x"}, at(1));
  EXPECT_EQ(cond(s, "ServerReady"), "True External");
}

TEST(SharedVolumeConsumers, PodsNamingTheVolumeInItsScope) {
  config::volume_ref sv{false, "team-a", "docs"};
  config::volume_ref csv{true, "", "docs"};
  std::vector<json::value> pods{
      pod("team-a", "r-0", R"({"tidesync.io/shared-volume":"docs"})"),
      pod("team-a", "r-1", R"({"tidesync.io/shared-volume":"other, docs"})"),
      pod("team-a", "done", R"({"tidesync.io/shared-volume":"docs"})", "Succeeded"),
      pod("team-b", "r-2", R"({"tidesync.io/shared-volume":"docs"})"),
      pod("team-b", "c-0", R"({"tidesync.io/cluster-shared-volume":"docs"})"),
      pod("team-c", "c-1", R"({"tidesync.io/cluster-shared-volume":"docs,x"})"),
  };
  auto a = consumers_of(sv, pods);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a["team-a"], (std::vector<std::string>{"r-0", "r-1"}));
  auto c = consumers_of(csv, pods);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_EQ(c["team-b"], std::vector<std::string>{"c-0"});
  EXPECT_EQ(c["team-c"], std::vector<std::string>{"c-1"});
}

TEST(SharedVolumeConsumers, ClaimsGoAfterTheGraceWithoutConsumers) {
  std::map<std::string, std::optional<config::sys_seconds>> claims{
      {"team-a", at(100)}, {"team-b", at(100)}, {"team-c", at(195)}, {"team-d", std::nullopt}};
  std::map<std::string, std::vector<std::string>> consumers{{"team-a", {"r-0"}}};
  EXPECT_EQ(claims_to_remove(claims, consumers, at(200), std::chrono::seconds(30)),
            (std::vector<std::string>{"team-b", "team-d"}));
}

TEST(SharedVolumeReport, ValidatedAndPatched) {
  auto r = parse_volume_report(*json::parse(R"({"kind":"ClusterSharedVolume","name":"models",
    "result":"Failed","message":"timeout\nafter 10m","time":"2026-12-07T10:00:00Z"})"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_TRUE(r->ref.cluster);
  EXPECT_EQ(r->message, "timeout after 10m");
  auto p = volume_report_patch(*r);
  EXPECT_EQ(p.at_path({"status", "revision"}), nullptr) << "a failure keeps the served revision";
  EXPECT_EQ(p.at_path({"status", "lastSyncResult"})->as_string(), "Failed");
  for (
      const char* bad : {
          R"({"kind":"Pod","name":"x","result":"Failed","time":"2026-12-07T10:00:00Z"})",
          R"({"kind":"SharedVolume","name":"x","result":"Failed","time":"2026-12-07T10:00:00Z"})",
          R"({"kind":"SharedVolume","namespace":"a","name":"x","result":"Succeeded","time":"2026-12-07T10:00:00Z"})",
          R"({"kind":"SharedVolume","namespace":"a","name":"x","result":"Meh","time":"2026-12-07T10:00:00Z"})",
          R"({"kind":"SharedVolume","namespace":"a","name":"x","result":"Failed","time":"now"})",
      })
    EXPECT_FALSE(parse_volume_report(*json::parse(bad)).has_value()) << bad;
}
