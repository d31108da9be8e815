// PodFilesystemSync parsing and validation (config/podfilesystemsync.hpp): the seed's example,
// defaults, every bad field reported at once, placement rules and forbidden local roots.
#include <gtest/gtest.h>

#include <string>

#include "config/podfilesystemsync.hpp"
#include "runtime/json/value.hpp"

using namespace tidesync;
using namespace tidesync::config;

namespace {

json::value object(const std::string& spec) {
  auto v = json::parse(R"({"apiVersion":"tidesync.io/v1alpha1","kind":"PodFilesystemSync",
    "metadata":{"name":"cloud-press","namespace":"sites","uid":"u1","generation":3},"spec":)" +
                       spec + "}");
  EXPECT_TRUE(v.has_value()) << spec;
  return v ? std::move(*v) : json::value{};
}

// The seed's example (group and annotations renamed), as kubectl would send it.
constexpr const char* k_seed_spec = R"({
  "podSelector": {"matchLabels": {"my-pod-label": "test"}},
  "localPath": "/var/www/riotkit/wp-content",
  "remotePath": "/example-org-bucket",
  "initContainerPlacement": {"containerReference": "some-container-name", "placement": "before"},
  "syncOptions": {"method": "scheduler", "schedule": "@every 5m", "maxOneSyncPerMinutes": "15",
                  "permissions": {"uid": 1001, "gid": 1001},
                  "cleanUp": {"remote": true, "local": true},
                  "forceRemote": false, "forceLocal": false},
  "allowedDirectories": {"toRemote": true, "fromRemote": true},
  "restoreRemoteOnFirstRun": true,
  "env": {"REMOTE_TYPE": "s3", "REMOTE_PROVIDER": "Minio",
          "REMOTE_ENDPOINT": "http://localhost:9000", "REMOTE_ACL": "private"},
  "envFromSecret": [{"ref": "cloud-press-secret-envs"}],
  "automaticEncryption": {"enabled": true, "secretName": "cloud-press-remote-sync"}
})";

std::string error_of(const std::string& spec) {
  auto r = parse_podfilesystemsync(object(spec));
  EXPECT_FALSE(r.has_value()) << spec;
  return r ? std::string() : r.error().message;
}

constexpr const char* k_min = R"("podSelector":{"matchLabels":{"app":"a"}},"localPath":"/data",
    "remotePath":"bucket/{{ pod.metadata.name }}")";

}  // namespace

TEST(PodFilesystemSync, SeedExampleParses) {
  std::vector<std::string> warnings;
  auto r = parse_podfilesystemsync(object(k_seed_spec), &warnings);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  // The seed sets maxOneSyncPerMinutes with method scheduler, where it has no effect.
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("spec.syncOptions.maxOneSyncPerMinutes"), std::string::npos);
  const auto& s = r->spec;
  EXPECT_EQ(r->metadata.name, "cloud-press");
  EXPECT_EQ(s.pod_selector.to_string(), "my-pod-label=test");
  EXPECT_EQ(s.local_path, "/var/www/riotkit/wp-content");
  EXPECT_EQ(s.remote_path.source, "/example-org-bucket");
  EXPECT_EQ(*render(s.remote_path, json::value(json::object{})), "example-org-bucket");
  EXPECT_EQ(s.placement.container_reference, "some-container-name");
  EXPECT_EQ(s.placement.placement, container_placement::before);
  EXPECT_EQ(s.sync.method, sync_method::scheduler);
  EXPECT_EQ(s.sync.schedule, "@every 5m");
  EXPECT_EQ(s.sync.max_one_sync_per_minutes, 15);
  EXPECT_EQ(s.sync.permissions.uid, 1001);
  EXPECT_EQ(s.sync.permissions.gid, 1001);
  EXPECT_TRUE(s.sync.clean_up.remote && s.sync.clean_up.local);
  EXPECT_FALSE(s.sync.force_remote || s.sync.force_local);
  EXPECT_TRUE(s.directories.to_remote && s.directories.from_remote);
  EXPECT_TRUE(s.restore_remote_on_first_run);
  EXPECT_EQ(s.env.size(), 4u);
  EXPECT_EQ(s.env.at("REMOTE_ENDPOINT"), "http://localhost:9000");
  EXPECT_EQ(s.env_from_secret, std::vector<std::string>{"cloud-press-secret-envs"});
  EXPECT_TRUE(s.encryption.enabled);
  EXPECT_EQ(s.encryption.secret_name, "cloud-press-remote-sync");
  EXPECT_EQ(s.unhealthy_after_failures, 0);
}

TEST(PodFilesystemSync, Defaults) {
  auto r = parse_podfilesystemsync(object(std::string("{") + k_min + "}"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const auto& s = r->spec;
  EXPECT_EQ(s.placement.placement, container_placement::last);
  EXPECT_EQ(s.placement.container_reference, "");
  EXPECT_EQ(s.sync.method, sync_method::scheduler);
  EXPECT_EQ(s.sync.schedule, "@every 5m");
  EXPECT_FALSE(s.sync.max_one_sync_per_minutes.has_value());
  EXPECT_FALSE(s.sync.permissions.uid.has_value());
  EXPECT_TRUE(s.sync.clean_up.remote && s.sync.clean_up.local);
  EXPECT_FALSE(s.sync.force_remote || s.sync.force_local);
  EXPECT_TRUE(s.directories.to_remote && s.directories.from_remote);
  EXPECT_TRUE(s.restore_remote_on_first_run);
  EXPECT_TRUE(s.env.empty() && s.env_from_secret.empty());
  EXPECT_FALSE(s.encryption.enabled);
  EXPECT_EQ(s.unhealthy_after_failures, 0);
}

TEST(PodFilesystemSync, ValuesAndNormalisation) {
  auto r = parse_podfilesystemsync(object(R"({"podSelector":{"matchExpressions":[{"key":"app",
      "operator":"In","values":["a","b"]}]},"localPath":"/var//data/","remotePath":"b",
      "syncOptions":{"method":"fsnotify","maxOneSyncPerMinutes":5,"schedule":"0 30 * * * *"},
      "unhealthyAfterFailures":3})"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->spec.local_path, "/var/data");
  EXPECT_EQ(r->spec.sync.method, sync_method::fsnotify);
  EXPECT_EQ(r->spec.sync.max_one_sync_per_minutes, 5);
  EXPECT_EQ(r->spec.sync.schedule, "0 30 * * * *");
  EXPECT_EQ(r->spec.unhealthy_after_failures, 3);
  EXPECT_EQ(r->spec.pod_selector.to_string(), "app in (a,b)");
}

TEST(PodFilesystemSync, EveryProblemAtOnce) {
  auto m = error_of(R"({"podSelector":{},"localPath":"relative/dir",
      "remotePath":"b/{{ pod.spec.nodeName }}",
      "initContainerPlacement":{"placement":"middle"},
      "syncOptions":{"method":"inotify","schedule":"every five minutes",
                     "maxOneSyncPerMinutes":"0","permissions":{"uid":-1,"gid":2147483648},
                     "cleanUp":{"remote":"yes"},"forceLocal":1},
      "allowedDirectories":{"toRemote":"no"},"restoreRemoteOnFirstRun":"true",
      "env":{"1BAD":"x","GOOD":5,"bad-name":"y"},
      "envFromSecret":[{"ref":"Not_A_Secret"},{},"x"],
      "automaticEncryption":{"enabled":true},
      "unhealthyAfterFailures":-2})");
  for (const char* field : {"spec.podSelector",
                            "spec.localPath",
                            "spec.remotePath",
                            "spec.initContainerPlacement.placement",
                            "spec.syncOptions.method",
                            "spec.syncOptions.schedule",
                            "spec.syncOptions.maxOneSyncPerMinutes",
                            "spec.syncOptions.permissions.uid",
                            "spec.syncOptions.permissions.gid",
                            "spec.syncOptions.cleanUp.remote",
                            "spec.syncOptions.forceLocal",
                            "spec.allowedDirectories.toRemote",
                            "spec.restoreRemoteOnFirstRun",
                            "spec.env.1BAD",
                            "spec.env.GOOD",
                            "spec.env.bad-name",
                            "spec.envFromSecret[0].ref",
                            "spec.envFromSecret[1].ref",
                            "spec.envFromSecret[2]",
                            "spec.automaticEncryption.secretName",
                            "spec.unhealthyAfterFailures"})
    EXPECT_NE(m.find(std::string(field) + ":"), std::string::npos) << field << " in " << m;
  EXPECT_NE(m.find("PodFilesystemSync sites/cloud-press"), std::string::npos) << m;
  EXPECT_NE(m.find("selects every pod"), std::string::npos) << m;
  EXPECT_NE(m.find("pod.spec.nodeName"), std::string::npos) << m;
}

TEST(PodFilesystemSync, RequiredFieldsAndEmptySelector) {
  auto r = parse_podfilesystemsync(object("{}"));
  ASSERT_FALSE(r.has_value());
  std::vector<std::string> required;
  for (const auto& c : r.error().causes)
    if (c.reason == "FieldValueRequired") required.push_back(c.field);
  EXPECT_EQ(required,
            (std::vector<std::string>{"spec.podSelector", "spec.localPath", "spec.remotePath"}));
  EXPECT_NE(error_of(R"({"podSelector":{"matchLabels":{}},"localPath":"/d","remotePath":"b"})")
                .find("selects every pod"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"podSelector":{"matchExpressions":[{"key":"a","operator":"Near"}]},
      "localPath":"/d","remotePath":"b"})")
                .find("spec.podSelector"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"podSelector":{"matchLabels":{"a":"b"}},"localPath":"","remotePath":""})")
                .find("spec.remotePath"),
            std::string::npos);
  auto v = json::parse(R"({"kind":"PodFilesystemSync","metadata":{"name":"x"}})");
  EXPECT_FALSE(parse_podfilesystemsync(*v).has_value());
  v = json::parse(R"({"kind":"DataSync","metadata":{"name":"x"},"spec":{}})");
  EXPECT_FALSE(parse_podfilesystemsync(*v).has_value());
}

TEST(PodFilesystemSync, PlacementRules) {
  auto with = [](const std::string& placement) {
    return parse_podfilesystemsync(
        object(std::string("{") + k_min + R"(,"initContainerPlacement":)" + placement + "}"));
  };
  for (const char* p : {"first", "last"}) {
    auto ok = with(std::string(R"({"placement":")") + p + "\"}");
    ASSERT_TRUE(ok.has_value()) << ok.error().message;
    EXPECT_EQ(to_string(ok->spec.placement.placement), p);
    auto bad = with(std::string(R"({"placement":")") + p + R"(","containerReference":"db"})");
    ASSERT_FALSE(bad.has_value()) << p;
    EXPECT_NE(bad.error().message.find("takes no containerReference"), std::string::npos);
  }
  for (const char* p : {"before", "after"}) {
    auto ok = with(std::string(R"({"placement":")") + p + R"(","containerReference":"db"})");
    ASSERT_TRUE(ok.has_value()) << ok.error().message;
    EXPECT_EQ(ok->spec.placement.container_reference, "db");
    auto bad = with(std::string(R"({"placement":")") + p + "\"}");
    ASSERT_FALSE(bad.has_value()) << p;
    EXPECT_NE(bad.error().message.find("spec.initContainerPlacement.containerReference"),
              std::string::npos);
  }
  // The default placement is last: a reference alone is refused.
  auto bad = with(R"({"containerReference":"db"})");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("placement last takes no containerReference"),
            std::string::npos)
      << bad.error().message;
  bad = with(R"({"placement":"before","containerReference":"Bad_Name"})");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("not a container name"), std::string::npos);
}

TEST(PodFilesystemSync, ForbiddenLocalRoots) {
  for (auto root : forbidden_local_roots()) {
    for (std::string path : {std::string(root), std::string(root) + "/", "/" + std::string(root)}) {
      auto m = error_of(R"({"podSelector":{"matchLabels":{"a":"b"}},"localPath":")" + path +
                        R"(","remotePath":"b"})");
      EXPECT_NE(m.find("spec.localPath"), std::string::npos) << path << ": " << m;
      EXPECT_NE(m.find("system folder"), std::string::npos) << path << ": " << m;
    }
  }
  for (const char* path : {"/etc/../", "/usr/./lib", "/var/.."}) {
    auto m = error_of(R"({"podSelector":{"matchLabels":{"a":"b"}},"localPath":")" +
                      std::string(path) + R"(","remotePath":"b"})");
    EXPECT_NE(m.find("spec.localPath"), std::string::npos) << path << ": " << m;
  }
  // Folders below the roots are the application's own.
  for (const char* path : {"/etc/app", "/home/user/data", "/usr/local/share/app", "/data"}) {
    auto r = parse_podfilesystemsync(object(R"({"podSelector":{"matchLabels":{"a":"b"}},
        "localPath":")" + std::string(path) +
                                            R"(","remotePath":"b"})"));
    EXPECT_TRUE(r.has_value()) << path << ": " << r.error().message;
  }
}

TEST(PodFilesystemSync, WarningsForUnknownAndIgnoredFields) {
  std::vector<std::string> warnings;
  auto r = parse_podfilesystemsync(
      object(std::string("{") + k_min +
             R"(,"colour":"red","syncOptions":{"maxOneSyncPerMinutes":15}})"),
      &warnings);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("spec.colour"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("only used with method fsnotify"), std::string::npos);
}

TEST(PodFilesystemSync, EffectivePermissions) {
  sync_permissions spec;
  spec.uid = 1001;
  spec.gid = 1001;
  auto p = effective_permissions(spec, {{"tidesync.io/volume-user-id", "161"}});
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->uid, 161);
  EXPECT_EQ(p->gid, 1001);
  p = effective_permissions(
      spec, {{"tidesync.io/volume-user-id", "161"}, {"tidesync.io/volume-group-id", "1312"}});
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->gid, 1312);
  p = effective_permissions({}, {});
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE(p->uid.has_value());
  for (const char* bad : {"", "-1", "abc", "2147483648", "99999999999"}) {
    auto e = effective_permissions(spec, {{"tidesync.io/volume-group-id", bad}});
    ASSERT_FALSE(e.has_value()) << bad;
    EXPECT_NE(e.error().message.find("tidesync.io/volume-group-id"), std::string::npos);
  }
}

TEST(PodFilesystemSync, StatusRoundTrip) {
  podfilesystemsync_status s;
  s.observed_generation = 3;
  s.conditions.push_back(make_condition("Ready", "True", "Synced", "all pods synced"));
  pod_sync_status ps;
  ps.name = "press-0";
  ps.last_sync_time = std::chrono::sys_seconds(std::chrono::seconds(1767225600));
  ps.bytes = 1024;
  ps.files = 7;
  ps.result = "Succeeded";
  s.pods.push_back(ps);
  auto doc = object(std::string("{") + k_min + "}");
  doc.as_object()["status"] = to_json(s);
  auto r = parse_podfilesystemsync(doc);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status.observed_generation, 3);
  ASSERT_EQ(r->status.conditions.size(), 1u);
  ASSERT_EQ(r->status.pods.size(), 1u);
  EXPECT_EQ(r->status.pods[0].name, "press-0");
  EXPECT_EQ(r->status.pods[0].last_sync_time, ps.last_sync_time);
  EXPECT_EQ(r->status.pods[0].bytes, 1024);
  EXPECT_EQ(r->status.pods[0].files, 7);
  EXPECT_EQ(r->status.pods[0].result, "Succeeded");
  EXPECT_EQ(r->status.pods[0].message, "");
}
