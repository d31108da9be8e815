// SharedVolume / ClusterSharedVolume parsing (config/sharedvolume.hpp): defaults, each source,
// the storage options, and every bad value with a message that says what to write.
#include <gtest/gtest.h>

#include <string>

#include "config/sharedvolume.hpp"

using namespace tidesync;
using namespace tidesync::config;

namespace {

expected<sharedvolume> parse(const std::string& spec, const std::string& kind = "SharedVolume") {
  auto v = json::parse(R"({"apiVersion":"tidesync.io/v1alpha1","kind":")" + kind +
                       R"(","metadata":{"name":"docs","namespace":"team-a"},"spec":)" + spec + "}");
  EXPECT_TRUE(v.has_value()) << spec;
  return parse_sharedvolume(*v);
}

// The error message of a spec that must be refused.
std::string refused(const std::string& spec) {
  auto r = parse(spec);
  EXPECT_FALSE(r.has_value()) << spec;
  return r ? std::string() : r.error().message;
}

}  // namespace

TEST(SharedVolumeSpec, DefaultsWithAGitSource) {
  auto v = parse(R"({"source":{"git":{"url":"https://git.example.com/org/docs.git"}}})");
  ASSERT_TRUE(v.has_value()) << v.error().message;
  EXPECT_FALSE(v->cluster);
  EXPECT_EQ(v->spec.source.type, volume_source_type::git);
  EXPECT_EQ(v->spec.source.url, "https://git.example.com/org/docs.git");
  EXPECT_TRUE(v->spec.source.ref.branch.empty() && v->spec.source.ref.commit.empty());
  EXPECT_EQ(v->spec.sync_interval, std::chrono::seconds(300));
  EXPECT_EQ(v->spec.sync_timeout, std::chrono::seconds(600));
  EXPECT_FALSE(v->spec.storage.external);
  EXPECT_EQ(v->spec.storage.size, "1Gi");
  EXPECT_TRUE(v->spec.read_only);
}

TEST(SharedVolumeSpec, EverySourceAndStorage) {
  for (const char* url : {"ssh://git@host/org/repo.git", "git@github.com:org/repo.git",
                          "file:///srv/repo", "http://git.local/repo"}) {
    auto v = parse(std::string(R"({"source":{"git":{"url":")") + url +
                   R"(","ref":{"tag":"v1.2.0"},"secretRef":{"name":"k"}}}})");
    ASSERT_TRUE(v.has_value()) << url << ": " << v.error().message;
    EXPECT_EQ(v->spec.source.ref.tag, "v1.2.0");
    EXPECT_EQ(v->spec.source.secret_name, "k");
  }
  auto s3 = parse(R"({"source":{"s3":{"remote":"bucket/models","secretRef":{"name":"store"}}},
    "syncInterval":"15m","syncTimeout":"1h","storage":{"external":{"server":"10.0.0.5",
    "path":"/exports/models"}},"readOnly":false})",
                  "ClusterSharedVolume");
  ASSERT_TRUE(s3.has_value()) << s3.error().message;
  EXPECT_TRUE(s3->cluster);
  EXPECT_EQ(s3->spec.source.type, volume_source_type::s3);
  EXPECT_EQ(s3->spec.source.remote, "bucket/models");
  EXPECT_EQ(s3->spec.sync_interval, std::chrono::minutes(15));
  EXPECT_EQ(s3->spec.sync_timeout, std::chrono::hours(1));
  EXPECT_TRUE(s3->spec.storage.external);
  EXPECT_EQ(s3->spec.storage.server, "10.0.0.5");
  EXPECT_EQ(s3->spec.storage.path, "/exports/models");
  EXPECT_FALSE(s3->spec.read_only);
  auto sftp = parse(R"({"source":{"sftp":{"remote":"/data/share","secretRef":{"name":"ssh"}}},
    "storage":{"dynamic":{"size":"500Mi","storageClassName":"fast"}}})");
  ASSERT_TRUE(sftp.has_value()) << sftp.error().message;
  EXPECT_EQ(sftp->spec.storage.size, "500Mi");
  EXPECT_EQ(sftp->spec.storage.storage_class_name, std::optional<std::string>("fast"));
  auto http = parse(R"({"source":{"http":{"url":"https://files.example.com/dist/"}}})");
  ASSERT_TRUE(http.has_value()) << http.error().message;
  EXPECT_EQ(http->spec.source.type, volume_source_type::http);
}

TEST(SharedVolumeSpec, BadValuesSayWhatToWrite) {
  EXPECT_NE(refused(R"({})").find("spec.source"), std::string::npos);
  EXPECT_NE(refused(R"({"source":{}})").find("exactly one of git, s3, sftp or http"),
            std::string::npos);
  EXPECT_NE(refused(R"({"source":{"git":{"url":"https://a/b"},"http":{"url":"https://a/"}}})")
                .find("sets 2 sources"),
            std::string::npos);
  EXPECT_NE(refused(R"({"source":{"git":{"url":"-upload-pack=evil"}}})").find("must not start"),
            std::string::npos);
  EXPECT_NE(refused(R"({"source":{"git":{"url":"/just/a/path"}}})").find("scp-like"),
            std::string::npos);
  EXPECT_NE(
      refused(R"({"source":{"git":{"url":"https://a/b","ref":{"branch":"main","tag":"v1"}}}})")
          .find("only one of branch, tag and commit"),
      std::string::npos);
  EXPECT_NE(refused(R"({"source":{"git":{"url":"https://a/b","ref":{"branch":"a..b"}}}})")
                .find("spec.source.git.ref.branch"),
            std::string::npos);
  EXPECT_NE(refused(R"({"source":{"git":{"url":"https://a/b","ref":{"commit":"XYZ"}}}})")
                .find("commit SHA"),
            std::string::npos);
  EXPECT_NE(refused(R"({"source":{"s3":{"remote":"bucket/../etc"}}})").find("\"..\""),
            std::string::npos);
  EXPECT_NE(refused(R"({"source":{"s3":{"remote":"bucket"}}})").find("REMOTE_* keys"),
            std::string::npos);
  EXPECT_NE(refused(R"({"source":{"http":{"url":"ftp://x/"}}})").find("https://"),
            std::string::npos);
  EXPECT_NE(refused(R"({"source":{"http":{"url":"https://x/"}},"syncInterval":"1s"})").find("10s"),
            std::string::npos);
  EXPECT_NE(
      refused(R"({"source":{"http":{"url":"https://x/"}},"syncInterval":"often"})").find("often"),
      std::string::npos);
  EXPECT_NE(refused(R"({"source":{"http":{"url":"https://x/"}},"storage":{"dynamic":{},
    "external":{"server":"n"}}})")
                .find("not both"),
            std::string::npos);
  EXPECT_NE(refused(R"({"source":{"http":{"url":"https://x/"}},"storage":{"external":{}}})")
                .find("NFS server"),
            std::string::npos);
  EXPECT_NE(refused(R"({"source":{"http":{"url":"https://x/"}},"storage":{"external":{
    "server":"n","path":"exports"}}})")
                .find("absolute export path"),
            std::string::npos);
  EXPECT_NE(refused(R"({"source":{"http":{"url":"https://x/"}},"storage":{"dynamic":{
    "size":"lots"}}})")
                .find("1Gi"),
            std::string::npos);
  // Every problem at once.
  auto all = refused(R"({"source":{"git":{"url":""}},"syncTimeout":"x","readOnly":"yes"})");
  for (const char* f : {"spec.source.git.url", "spec.syncTimeout", "spec.readOnly"})
    EXPECT_NE(all.find(f), std::string::npos) << f << " in " << all;
}

TEST(SharedVolumeStatus, RoundTrips) {
  auto v = parse(R"({"source":{"git":{"url":"https://a/b"}}})");
  ASSERT_TRUE(v.has_value());
  sharedvolume_status s;
  s.phase = "Ready";
  s.observed_generation = 2;
  s.nfs_server = "docs-nfs.team-a.svc.cluster.local";
  s.nfs_path = "/";
  s.revision = "4f2c9e1";
  s.last_sync_time = sys_seconds(std::chrono::seconds(1'800'000'000));
  s.last_sync_result = "Succeeded";
  s.consumers = {{"team-a", 2}, {"team-b", 1}};
  auto obj = json::parse(R"({"apiVersion":"tidesync.io/v1alpha1","kind":"SharedVolume",
    "metadata":{"name":"docs","namespace":"team-a"},"spec":{"source":{"git":{"url":"https://a/b"}}}})");
  obj->as_object().set("status", to_json(s));
  auto back = parse_sharedvolume(*obj);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->status.phase, "Ready");
  EXPECT_EQ(back->status.nfs_server, s.nfs_server);
  EXPECT_EQ(back->status.revision, "4f2c9e1");
  EXPECT_EQ(back->status.last_sync_time, s.last_sync_time);
  EXPECT_EQ(back->status.consumers, s.consumers);
}
