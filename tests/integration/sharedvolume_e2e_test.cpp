// SharedVolume end to end in `tidesync simulate` (issue 9): the controller makes the NFS server
// (a placeholder pod; the share is a local folder) and the syncer Deployment, whose pod runs
// `tidesync agent mirror` from a Git repository made here (and from an s3rver bucket); two
// pods that name the volume read the same files through the claim the webhook made; a new
// commit reaches them on the next interval; a sync that fails keeps the tree they read and the
// status says why.
//
// Every server binds 127.0.0.1 and is stopped by PID; every wait is a condition with a deadline.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/transfer/s3_client.hpp"
#include "tests/support/files.hpp"
#include "tests/support/git_repo.hpp"
#include "tests/support/process.hpp"
#include "tests/support/s3rver.hpp"
#include "tests/support/simulation.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using tidesync::test::eventually;
using tidesync::test::read_file;
using tidesync::test::write_file;
namespace json = tidesync::json;

const std::string k_bucket = "sv-e2e";

class sharedvolume_e2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { s3_.start("sve2e", {k_bucket}); }
  static void TearDownTestSuite() { s3_.stop(); }

  void SetUp() override {
    TIDESYNC_REQUIRE_S3RVER_SUITE(s3_);
    char tmpl[] = "/var/tmp/tidesync-sv-e2e-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    sim_ = std::make_unique<tidesync::test::simulation>(dir_);
    ASSERT_TRUE(sim_->ready()) << sim_->log();
    apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n");
    ASSERT_TRUE(sim_->webhook_registered()) << sim_->log();
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << sim_->all_logs();
    sim_.reset();
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  void apply(const std::string& yaml) {
    auto r = sim_->apply(yaml);
    ASSERT_EQ(r.status, 0) << r.output;
  }
  std::string jsonpath(const std::string& kind, const std::string& name, const std::string& path) {
    auto r = sim_->kubectl({"get", kind, name, "-n", "team-a", "-o", "jsonpath=" + path});
    return r.status == 0 ? r.output : std::string();
  }
  // The share as the simulated NFS server serves it.
  [[nodiscard]] fs::path share(const std::string& base) const {
    return sim_->data_dir() / "nfs" / (base + "-nfs.team-a.svc.cluster.local");
  }
  // A pod that names the volume and copies what it reads at /docs/current into its own emptyDir
  // (a real reader: rclone, as the app would read).
  void reader(const std::string& name, const std::string& volume) {
    apply("apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
          ", namespace: team-a, annotations: {tidesync.io/shared-volume: " + volume +
          ", tidesync.io/shared-volume-mount-path: /docs}}\nspec:\n  restartPolicy: Never\n"
          "  containers:\n  - name: read\n    image: rclone/rclone:1.68.2\n"
          "    args: [copy, --copy-links, /docs/current, /out]\n"
          "    volumeMounts: [{name: out, mountPath: /out}]\n"
          "  volumes: [{name: out, emptyDir: {}}]\n");
  }
  [[nodiscard]] fs::path reader_out(const std::string& pod) const {
    return sim_->data_dir() / "pods" / "team-a" / pod / "volumes" / "out";
  }
  std::string phase(const std::string& pod) { return jsonpath("pod", pod, "{.status.phase}"); }

  fs::path dir_;
  std::unique_ptr<tidesync::test::simulation> sim_;
  static inline tidesync::test::s3rver_suite s3_;
};

TEST_F(sharedvolume_e2e, a_git_repository_reaches_two_pods_and_follows_new_commits) {
  tidesync::test::git_repo src(dir_ / "repo", dir_);
  const auto first =
      src.commit({{"README.md", "# docs v1\n"}, {"guide/intro.md", "hello\n"}}, "first");
  apply(
      "apiVersion: tidesync.io/v1alpha1\nkind: SharedVolume\nmetadata: {name: docs, "
      "namespace: team-a}\nspec:\n  source: {git: {url: \"file://" +
      src.dir().string() + "\", ref: {branch: main}}}\n  syncInterval: 10s\n");
  // Ready once the NFS server is up and the first sync is served, at the commit's SHA.
  ASSERT_TRUE(eventually(
      [&] { return sim_->condition("sharedvolume", "docs", "team-a", "Ready") == "True Ready"; },
      90s))
      << json::dump(sim_->get("sharedvolume", "docs", "team-a"));
  EXPECT_EQ(jsonpath("sharedvolume", "docs", "{.status.revision}"), first);
  EXPECT_EQ(read_file(share("sv-docs") / "current" / "README.md"), "# docs v1\n");

  // Two pods read the same files through the claim the webhook made in their namespace.
  reader("reader-0", "docs");
  reader("reader-1", "docs");
  for (const char* pod : {"reader-0", "reader-1"}) {
    ASSERT_TRUE(eventually([&] { return phase(pod) == "Succeeded"; }, 60s))
        << pod << ": " << json::dump(sim_->get("pod", pod, "team-a"));
    EXPECT_EQ(read_file(reader_out(pod) / "README.md"), "# docs v1\n") << pod;
    EXPECT_EQ(read_file(reader_out(pod) / "guide" / "intro.md"), "hello\n") << pod;
  }
  EXPECT_FALSE(jsonpath("persistentvolumeclaim", "tidesync-sv-docs", "{.spec.volumeName}").empty());

  // A new commit reaches the share on the next interval.
  const auto second = src.commit({{"README.md", "# docs v2\n"}}, "second");
  ASSERT_TRUE(eventually(
      [&] { return jsonpath("sharedvolume", "docs", "{.status.revision}") == second; }, 60s))
      << json::dump(sim_->get("sharedvolume", "docs", "team-a"));
  EXPECT_EQ(read_file(share("sv-docs") / "current" / "README.md"), "# docs v2\n");
  reader("reader-2", "docs");
  ASSERT_TRUE(eventually([&] { return phase("reader-2") == "Succeeded"; }, 60s));
  EXPECT_EQ(read_file(reader_out("reader-2") / "README.md"), "# docs v2\n");

  // The source goes away: the sync fails, the status says why, the served tree stays.
  fs::rename(src.dir(), dir_ / "repo-gone");
  ASSERT_TRUE(eventually(
      [&] {
        return sim_->condition("sharedvolume", "docs", "team-a", "Synced") == "False SyncFailed";
      },
      60s))
      << json::dump(sim_->get("sharedvolume", "docs", "team-a"));
  EXPECT_FALSE(jsonpath("sharedvolume", "docs", "{.status.lastSyncMessage}").empty());
  EXPECT_EQ(jsonpath("sharedvolume", "docs", "{.status.revision}"), second);
  EXPECT_EQ(sim_->condition("sharedvolume", "docs", "team-a", "Ready"), "True Ready");
  EXPECT_EQ(read_file(share("sv-docs") / "current" / "README.md"), "# docs v2\n");
}

TEST_F(sharedvolume_e2e, an_s3_prefix_fills_a_share) {
  {
    tidesync::http::loop loop;
    tidesync::transfer::s3_config cfg;
    cfg.endpoint = s3_.endpoint();
    cfg.access_key_id = "S3RVER";
    cfg.secret_access_key = "S3RVER";
    tidesync::transfer::s3_client client(loop, cfg);
    ASSERT_TRUE(client.put_sync(k_bucket, "models/a.bin", "weights-a"));
    ASSERT_TRUE(client.put_sync(k_bucket, "models/sub/b.bin", "weights-b"));
  }
  apply(
      "apiVersion: v1\nkind: Secret\nmetadata: {name: store, namespace: team-a}\nstringData:\n"
      "  REMOTE_TYPE: s3\n  REMOTE_PROVIDER: Other\n  REMOTE_ACCESS_KEY_ID: S3RVER\n"
      "  REMOTE_SECRET_ACCESS_KEY: S3RVER\n  REMOTE_REGION: us-east-1\n  REMOTE_ENDPOINT: " +
      s3_.endpoint() + "\n");
  apply(
      "apiVersion: tidesync.io/v1alpha1\nkind: SharedVolume\nmetadata: {name: models, "
      "namespace: team-a}\nspec:\n  source: {s3: {remote: " +
      k_bucket + "/models, secretRef: {name: store}}}\n  syncInterval: 10s\n");
  ASSERT_TRUE(eventually(
      [&] { return sim_->condition("sharedvolume", "models", "team-a", "Ready") == "True Ready"; },
      90s))
      << json::dump(sim_->get("sharedvolume", "models", "team-a"));
  EXPECT_EQ(read_file(share("sv-models") / "current" / "a.bin"), "weights-a");
  EXPECT_EQ(read_file(share("sv-models") / "current" / "sub" / "b.bin"), "weights-b");
  reader("model-reader", "models");
  ASSERT_TRUE(eventually([&] { return phase("model-reader") == "Succeeded"; }, 60s));
  EXPECT_EQ(read_file(reader_out("model-reader") / "sub" / "b.bin"), "weights-b");
}

}  // namespace
