// What the controller makes for a SharedVolume / ClusterSharedVolume and how the webhook mounts
// it (config/sharedvolume_objects.hpp): names, namespaces, owners, the syncer's command line and
// credentials for each source, consumer PV/PVC binding, and the pod patch.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "config/sharedvolume_objects.hpp"

using namespace tidesync;
using namespace tidesync::config;
using kind = mount_decision::kind;

namespace {

sharedvolume volume(const std::string& spec, bool cluster = false,
                    const std::string& name = "docs") {
  auto v =
      json::parse(std::string(R"({"apiVersion":"tidesync.io/v1alpha1","kind":")") +
                  (cluster ? "ClusterSharedVolume" : "SharedVolume") + R"(","metadata":{"name":")" +
                  name + R"(",)" + (cluster ? "" : R"("namespace":"team-a",)") +
                  R"("uid":"u-1","generation":3},"spec":)" + spec + "}");
  auto r = parse_sharedvolume(*v);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  return r ? std::move(*r) : sharedvolume{};
}

std::map<std::string, std::string> env_of(const json::value& deployment) {
  std::map<std::string, std::string> out;
  const auto& c = deployment.at_path({"spec", "template", "spec", "containers"})->as_array()[0];
  for (const auto& e : c.at("env")->as_array())
    out[std::string(e.get_string("name"))] =
        e.at("value") ? std::string(e.get_string("value")) : json::dump(*e.at("valueFrom"));
  return out;
}

std::string args_of(const json::value& deployment) {
  return json::dump(
      *deployment.at_path({"spec", "template", "spec", "containers"})->as_array()[0].at("args"));
}

json::value pod(const std::string& annotations) {
  return *json::parse(R"({"metadata":{"name":"p","annotations":)" + annotations +
                      R"(},"spec":{"initContainers":[{"name":"i","image":"x"}],
    "containers":[{"name":"a","image":"x"},{"name":"b","image":"y","volumeMounts":[{"name":"v","mountPath":"/v"}]}],
    "volumes":[{"name":"v","emptyDir":{}}]}})");
}

}  // namespace

TEST(SharedVolumeObjects, NamesNamespacesAndOwners) {
  volume_settings s;
  auto v = volume(R"({"source":{"git":{"url":"https://git.example.com/docs.git"}}})");
  auto r = ref_of(v);
  EXPECT_EQ(object_base(r), "sv-docs");
  EXPECT_EQ(server_namespace(r, s), "team-a");
  EXPECT_EQ(nfs_address(v, s),
            (std::pair<std::string, std::string>{"sv-docs-nfs.team-a.svc.cluster.local", "/"}));
  auto dep = build_nfs_deployment(v, s);
  EXPECT_EQ(dep.at_path({"metadata", "name"})->as_string(), "sv-docs-nfs");
  EXPECT_EQ(dep.at_path({"metadata", "namespace"})->as_string(), "team-a");
  EXPECT_EQ(dep.at_path({"metadata", "ownerReferences"})->as_array()[0].get_string("uid"), "u-1");
  EXPECT_EQ(dep.at_path({"metadata", "labels", "tidesync.io/shared-volume-id"})->as_string(),
            volume_id(r));
  EXPECT_FALSE(
      dep.at_path({"metadata", "annotations", "tidesync.io/spec-hash"})->as_string().empty());
  EXPECT_EQ(build_nfs_service(v, s).at_path({"spec", "ports"})->as_array()[0].at("port")->as_int(),
            2049);
  EXPECT_EQ(
      build_nfs_claim(v, s).at_path({"spec", "resources", "requests", "storage"})->as_string(),
      "1Gi");
  // A ClusterSharedVolume's objects live in the controller's namespace, found by label only.
  auto c = volume(R"({"source":{"git":{"url":"https://git.example.com/docs.git"}}})", true);
  auto cr = ref_of(c);
  EXPECT_EQ(object_base(cr), "csv-docs");
  EXPECT_EQ(server_namespace(cr, s), "tidesync-system");
  EXPECT_NE(volume_id(cr), volume_id(r));
  EXPECT_EQ(build_nfs_deployment(c, s).at_path({"metadata", "ownerReferences"}), nullptr);
  // Long names stay within label limits and apart.
  auto l1 =
      volume(R"({"source":{"git":{"url":"https://a/b"}}})", false, std::string(60, 'a') + "-one");
  auto l2 =
      volume(R"({"source":{"git":{"url":"https://a/b"}}})", false, std::string(60, 'a') + "-two");
  EXPECT_LE(object_base(ref_of(l1)).size(), 40u);
  EXPECT_NE(object_base(ref_of(l1)), object_base(ref_of(l2)));
  // The hash changes with what the controller wants.
  auto v2 = volume(R"({"source":{"git":{"url":"https://git.example.com/docs.git"}},
    "storage":{"dynamic":{"size":"2Gi"}}})");
  EXPECT_NE(spec_hash(build_nfs_claim(v, s)), spec_hash(build_nfs_claim(v2, s)));
  EXPECT_EQ(spec_hash(build_nfs_claim(v, s)), spec_hash(build_nfs_claim(v, s)));
}

TEST(SharedVolumeObjects, TheSyncerForEachSource) {
  volume_settings s;
  s.report_url = "https://tidesync-webhook.tidesync-system.svc:443/volume-report";
  s.report_token = "docs.abc";
  auto https = volume(R"({"source":{"git":{"url":"https://git.example.com/docs.git",
    "ref":{"branch":"main"},"secretRef":{"name":"docs-git"}}},"syncInterval":"90s"})");
  auto dep = build_syncer_deployment(https, s, "3/now");
  EXPECT_EQ(args_of(dep),
            R"(["agent","mirror","--share","/share","--source-type","git",)"
            R"("--source","https://git.example.com/docs.git","--interval","1m30s","--timeout",)"
            R"("10m","--cache","/cache","--ref-branch","main"])");
  auto env = env_of(dep);
  EXPECT_EQ(env["GIT_USERNAME"],
            R"({"secretKeyRef":{"name":"docs-git","key":"username","optional":true}})");
  EXPECT_EQ(env["TIDESYNC_REPORT_TOKEN"], "docs.abc");
  EXPECT_EQ(env["TIDESYNC_VOLUME_KIND"], "SharedVolume");
  EXPECT_EQ(env["TIDESYNC_VOLUME_NAMESPACE"], "team-a");
  EXPECT_EQ(
      dep.at_path({"spec", "template", "metadata", "annotations", "tidesync.io/sync-generation"})
          ->as_string(),
      "3/now");
  const auto& vols = dep.at_path({"spec", "template", "spec", "volumes"})->as_array();
  EXPECT_EQ(json::dump(*vols[0].at("nfs")),
            R"({"server":"sv-docs-nfs.team-a.svc.cluster.local","path":"/"})");
  // SSH: the key and known_hosts as files, never in env.
  auto ssh = volume(R"({"source":{"git":{"url":"git@github.com:org/docs.git",
    "secretRef":{"name":"deploy-key"}}}})");
  env = env_of(build_syncer_deployment(ssh, s, "1"));
  EXPECT_EQ(env["GIT_SSH_KEY_FILE"], "/etc/tidesync/git-ssh/ssh-privatekey");
  EXPECT_EQ(env.count("GIT_PASSWORD"), 0u);
  // S3: the REMOTE_* keys by envFrom.
  auto s3 = volume(R"({"source":{"s3":{"remote":"bucket/models","secretRef":{"name":"store"}}}})");
  auto s3dep = build_syncer_deployment(s3, s, "1");
  EXPECT_NE(args_of(s3dep).find(R"("--source-type","s3","--source","bucket/models")"),
            std::string::npos);
  EXPECT_EQ(args_of(s3dep).find("--cache"), std::string::npos) << "a Git object store only";
  EXPECT_EQ(
      json::dump(
          *s3dep.at_path({"spec", "template", "spec", "containers"})->as_array()[0].at("envFrom")),
      R"([{"secretRef":{"name":"store"}}])");
  // An external server is mounted where it is.
  auto ext = volume(R"({"source":{"http":{"url":"https://f/"}},"storage":{"external":{
    "server":"10.0.0.5","path":"/exports/x"}}})");
  EXPECT_EQ(nfs_address(ext, s), (std::pair<std::string, std::string>{"10.0.0.5", "/exports/x"}));
}

TEST(SharedVolumeObjects, ConsumerPvAndClaimBindToEachOther) {
  volume_settings s;
  auto v = volume(R"({"source":{"git":{"url":"https://a/b"}},"readOnly":false})", true);
  auto pv = build_consumer_pv(v, s, "team-b");
  auto pvc = build_consumer_claim(v, "team-b");
  EXPECT_EQ(pvc.at_path({"spec", "volumeName"})->as_string(),
            pv.at_path({"metadata", "name"})->as_string());
  EXPECT_EQ(pv.at_path({"spec", "claimRef", "name"})->as_string(),
            pvc.at_path({"metadata", "name"})->as_string());
  EXPECT_EQ(pv.at_path({"spec", "claimRef", "namespace"})->as_string(), "team-b");
  EXPECT_EQ(pv.at_path({"spec", "accessModes"})->as_array()[0].as_string(), "ReadWriteMany");
  EXPECT_EQ(pv.at_path({"spec", "persistentVolumeReclaimPolicy"})->as_string(), "Retain");
  EXPECT_NE(consumer_pv_name(ref_of(v), "team-b"), consumer_pv_name(ref_of(v), "team-c"));
}

TEST(SharedVolumeObjects, MountsFollowTheAnnotations) {
  auto docs = volume(R"({"source":{"git":{"url":"https://a/b"}}})");
  auto models = volume(R"({"source":{"git":{"url":"https://a/b"}}})", true, "models");
  volume_finder find = [&](const volume_ref& r) -> const sharedvolume* {
    if (r == ref_of(docs)) return &docs;
    if (r == ref_of(models)) return &models;
    return nullptr;
  };
  EXPECT_EQ(decide_mounts(pod("{}"), "team-a", find).what, kind::untouched);
  auto d = decide_mounts(pod(R"({"tidesync.io/shared-volume":"docs",
    "tidesync.io/cluster-shared-volume":"models",
    "tidesync.io/shared-volume-mount-path.models":"/models"})"),
                         "team-a", find);
  ASSERT_EQ(d.what, kind::patch) << d.message;
  ASSERT_EQ(d.uses.size(), 2u);
  auto patched = json::json_patch(pod("{}"), d.patch);
  ASSERT_TRUE(patched.has_value()) << patched.error().message;
  EXPECT_EQ(
      patched->at_path({"metadata", "labels", "tidesync.io/shared-volume-consumer"})->as_string(),
      "true");
  const auto& vols = patched->at_path({"spec", "volumes"})->as_array();
  ASSERT_EQ(vols.size(), 3u);
  EXPECT_EQ(
      json::dump(vols[1]),
      R"({"name":"tidesync-sv-docs","persistentVolumeClaim":{"claimName":"tidesync-sv-docs","readOnly":true}})");
  for (const char* list : {"containers", "initContainers"})
    for (const auto& c : patched->at_path({"spec", list})->as_array()) {
      std::map<std::string, std::string> at;
      for (const auto& m : c.at("volumeMounts")->as_array())
        at[std::string(m.get_string("name"))] = std::string(m.get_string("mountPath"));
      EXPECT_EQ(at["tidesync-sv-docs"], "/shared/docs");
      EXPECT_EQ(at["tidesync-csv-models"], "/models");
    }
  // Refused: a volume that does not exist, one being deleted, a bad or doubled path.
  d = decide_mounts(pod(R"({"tidesync.io/shared-volume":"nope"})"), "team-a", find);
  EXPECT_EQ(d.what, kind::refuse);
  EXPECT_NE(d.message.find("SharedVolume team-a/nope does not exist"), std::string::npos);
  docs.metadata.deletion_timestamp = sys_seconds(std::chrono::seconds(1));
  d = decide_mounts(pod(R"({"tidesync.io/shared-volume":"docs"})"), "team-a", find);
  EXPECT_EQ(d.what, kind::refuse);
  EXPECT_NE(d.message.find("being deleted"), std::string::npos);
  docs.metadata.deletion_timestamp.reset();
  d = decide_mounts(pod(R"({"tidesync.io/shared-volume":"docs",
    "tidesync.io/shared-volume-mount-path":"relative"})"),
                    "team-a", find);
  EXPECT_EQ(d.what, kind::refuse);
  d = decide_mounts(pod(R"({"tidesync.io/shared-volume":"docs",
    "tidesync.io/cluster-shared-volume":"models",
    "tidesync.io/shared-volume-mount-path.docs":"/x","tidesync.io/shared-volume-mount-path.models":"/x"})"),
                    "team-a", find);
  EXPECT_EQ(d.what, kind::refuse);
  EXPECT_NE(d.message.find("two shared volumes"), std::string::npos);
}
