// PodFilesystemSync end to end in `tidesync simulate` (issue 8): the controller's webhook
// injects the agents into labelled pods, the simulated kubelet runs them (the app container is a
// placeholder: the test writes into the pod's volume folder as the app would), and s3rver is the
// remote. A pod starts with its files restored; files it writes reach the remote on the next
// schedule; deleting the pod runs a last sync; a second pod of the same template restores what
// the first wrote; the sidecar's safety valve never lets an empty volume empty the remote.
//
// Every server binds 127.0.0.1 and is stopped by PID; every wait is a condition with a deadline.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/transfer/s3_client.hpp"
#include "tests/support/files.hpp"
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

const std::string k_bucket = "pfs-e2e";

class pfs_e2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { s3_.start("pfse2e", {k_bucket}); }
  static void TearDownTestSuite() { s3_.stop(); }

  void SetUp() override {
    TIDESYNC_REQUIRE_S3RVER_SUITE(s3_);
    char tmpl[] = "/var/tmp/tidesync-pfs-e2e-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    sim_ = std::make_unique<tidesync::test::simulation>(dir_);
    ASSERT_TRUE(sim_->ready()) << sim_->log();
    tidesync::transfer::s3_config cfg;
    cfg.endpoint = s3_.endpoint();
    cfg.access_key_id = "S3RVER";
    cfg.secret_access_key = "S3RVER";
    s3_client_ = std::make_unique<tidesync::transfer::s3_client>(loop_, cfg);
    apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n");
    apply(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: store, namespace: web}\nstringData:\n"
        "  REMOTE_TYPE: s3\n  REMOTE_PROVIDER: Other\n  REMOTE_ACCESS_KEY_ID: S3RVER\n"
        "  REMOTE_SECRET_ACCESS_KEY: S3RVER\n  REMOTE_REGION: us-east-1\n  REMOTE_ENDPOINT: " +
        s3_.endpoint() + "\n");
    ASSERT_TRUE(sim_->webhook_registered()) << sim_->log();
  }

  void TearDown() override {
    if (HasFailure()) std::cerr << sim_->all_logs();
    sim_.reset();  // stopped by PID: the kubelet stops the pods' processes
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  void apply(const std::string& yaml) {
    auto r = sim_->apply(yaml);
    ASSERT_EQ(r.status, 0) << r.output;
  }

  // A PodFilesystemSync of pods labelled app=<name>, one remote folder per `site` label.
  void make_sync(const std::string& name, const std::string& extra) {
    apply("apiVersion: tidesync.io/v1alpha1\nkind: PodFilesystemSync\nmetadata: {name: " + name +
          ", namespace: web}\nspec:\n  podSelector: {matchLabels: {app: " + name +
          "}}\n  localPath: /var/www\n  remotePath: '" + k_bucket + "/" + name +
          "/{{ pod.metadata.labels[\"site\"] }}'\n  envFromSecret: [{ref: store}]\n" + extra);
  }
  // A pod of `app` whose volume is the claim `claim` (its folder: volume(claim)).
  void make_pod(const std::string& name, const std::string& app, const std::string& site,
                const std::string& claim) {
    apply("apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
          ", namespace: web, labels: {app: " + app + ", site: " + site +
          ", tidesync.io/volume-syncing: \"true\"}}\nspec:\n  terminationGracePeriodSeconds: 30\n"
          "  containers: [{name: app, image: nginx, volumeMounts: [{name: www, mountPath: "
          "/var/www}]}]\n  volumes: [{name: www, persistentVolumeClaim: {claimName: " +
          claim + "}}]\n");
  }
  [[nodiscard]] fs::path volume(const std::string& claim) const {
    return sim_->data_dir() / "volumes" / "web" / claim;
  }
  std::string phase(const std::string& pod) {
    auto p = sim_->get("pod", pod, "web");
    const auto* ph = p.at_path({"status", "phase"});
    return ph != nullptr && ph->is_string() ? ph->as_string() : "";
  }
  // Whether the sidecar of `pod` has started (its init container, the restore, has finished).
  bool sidecar_running(const std::string& pod) {
    auto p = sim_->get("pod", pod, "web");
    if (const auto* cs = p.at_path({"status", "initContainerStatuses"}); cs && cs->is_array())
      for (const auto& c : cs->as_array())
        if (c.get_string("name") == "volume-syncing-sidecar" &&
            c.at_path({"state", "running"}) != nullptr)
          return true;
    return false;
  }
  // Keys under `prefix` in the bucket, relative to it.
  std::set<std::string> remote(const std::string& prefix) {
    std::set<std::string> out;
    tidesync::transfer::list_request req;
    req.prefix = prefix + "/";
    if (auto l = s3_client_->list_sync(k_bucket, req))
      for (const auto& o : *l)
        out.insert(o.key.substr(req.prefix.size()));
    return out;
  }
  std::string remote_body(const std::string& key) {
    auto b = s3_client_->get_sync(k_bucket, key);
    return b ? *b : std::string("<missing>");
  }
  void put(const std::string& key, const std::string& body) {
    ASSERT_TRUE(s3_client_->put_sync(k_bucket, key, body));
  }

  fs::path dir_;
  std::unique_ptr<tidesync::test::simulation> sim_;
  tidesync::http::loop loop_;
  std::unique_ptr<tidesync::transfer::s3_client> s3_client_;
  static inline tidesync::test::s3rver_suite s3_;
};

TEST_F(pfs_e2e, restore_on_start_sync_on_schedule_last_sync_on_delete_and_a_second_pod_restores) {
  // The remote already holds the site.
  put("press/example/index.html", "<h1>hello</h1>");
  put("press/example/assets/app.css", "body{}");
  make_sync("press", "  syncOptions: {schedule: \"@every 2s\"}\n");

  // 1. The pod starts with its files restored, before the app (and the sidecar) start.
  make_pod("press-0", "press", "example", "press-0-www");
  ASSERT_TRUE(
      eventually([&] { return phase("press-0") == "Running" && sidecar_running("press-0"); }, 60s))
      << json::dump(sim_->get("pod", "press-0", "web"));
  EXPECT_EQ(read_file(volume("press-0-www") / "index.html"), "<h1>hello</h1>");
  EXPECT_EQ(read_file(volume("press-0-www") / "assets" / "app.css"), "body{}");

  // 2. A file the app writes reaches the remote on the next schedule.
  write_file(volume("press-0-www") / "uploads" / "photo.jpg", "JPEG...");
  ASSERT_TRUE(
      eventually([&] { return remote("press/example").count("uploads/photo.jpg") == 1; }, 30s))
      << sim_->log();
  EXPECT_EQ(remote_body("press/example/uploads/photo.jpg"), "JPEG...");
  // The agents reported their runs with the pod's token: the status lists the pod's last sync.
  EXPECT_TRUE(eventually(
      [&] {
        auto st = sim_->get("podfilesystemsync", "press", "web");
        const auto* pods = st.at_path({"status", "pods"});
        return pods != nullptr && pods->is_array() && pods->as_array().size() == 1 &&
               pods->as_array()[0].get_string("result") == "Succeeded" &&
               pods->as_array()[0].get_string("kind") == "sync" &&
               sim_->condition("podfilesystemsync", "press", "web", "Synced") == "True Succeeded";
      },
      30s))
      << json::dump(sim_->get("podfilesystemsync", "press", "web"));

  // 3. Deleting the pod runs one last sync: a file written just before is on the remote once
  //    the pod is gone (the schedule is too slow to explain it only if the delete waits for it,
  //    so the pod must still be terminating until the sidecar has synced and exited).
  write_file(volume("press-0-www") / "last-words.txt", "bye");
  auto del = sim_->kubectl({"delete", "pod", "-n", "web", "press-0", "--wait=true"});
  ASSERT_EQ(del.status, 0) << del.output;
  EXPECT_TRUE(
      eventually([&] { return remote("press/example").count("last-words.txt") == 1; }, 30s));
  const auto sidecar_log =
      read_file(sim_->data_dir() / "logs" / "web" / "press-0" / "volume-syncing-sidecar.log");
  EXPECT_NE(sidecar_log.find("one last sync before exit"), std::string::npos) << sidecar_log;

  // 4. A second pod of the same template (same site, a new volume) restores what the first wrote.
  make_pod("press-1", "press", "example", "press-1-www");
  ASSERT_TRUE(eventually([&] { return sidecar_running("press-1"); }, 60s))
      << json::dump(sim_->get("pod", "press-1", "web"));
  EXPECT_EQ(read_file(volume("press-1-www") / "last-words.txt"), "bye");
  EXPECT_EQ(read_file(volume("press-1-www") / "uploads" / "photo.jpg"), "JPEG...");
  EXPECT_EQ(read_file(volume("press-1-www") / "index.html"), "<h1>hello</h1>");
  EXPECT_FALSE(fs::exists(volume("press-1-www") / ".tidesync-initialized"))
      << "the first-run marker stays on the remote";
}

TEST_F(pfs_e2e, an_empty_volume_never_empties_the_remote) {
  // No restore (fromRemote off): the pod starts with an empty volume while the remote holds
  // files. The sidecar's sync would delete them all: the safety valve refuses, the remote keeps
  // its files, and the sidecar says why.
  put("guarded/example/keep-1.txt", "one");
  put("guarded/example/keep-2.txt", "two");
  make_sync("guarded",
            "  allowedDirectories: {fromRemote: false, toRemote: true}\n"
            "  syncOptions: {schedule: \"@every 2s\"}\n");
  make_pod("guarded-0", "guarded", "example", "guarded-0-www");
  ASSERT_TRUE(eventually([&] { return sidecar_running("guarded-0"); }, 60s))
      << json::dump(sim_->get("pod", "guarded-0", "web"));
  const fs::path log =
      sim_->data_dir() / "logs" / "web" / "guarded-0" / "volume-syncing-sidecar.log";
  ASSERT_TRUE(eventually(
      [&] { return read_file(log).find("would delete all 2 file(s)") != std::string::npos; }, 30s))
      << read_file(log);
  EXPECT_EQ(remote("guarded/example"), (std::set<std::string>{"keep-1.txt", "keep-2.txt"}));
  // The status says so, from the sidecar's report.
  EXPECT_TRUE(eventually(
      [&] {
        return sim_->condition("podfilesystemsync", "guarded", "web", "Synced") ==
               "False SyncFailed";
      },
      30s))
      << json::dump(sim_->get("podfilesystemsync", "guarded", "web"));
  EXPECT_NE(json::dump(sim_->get("podfilesystemsync", "guarded", "web")).find("would delete all"),
            std::string::npos);
  // Deleting the pod (a last sync of the still empty volume) keeps them too.
  ASSERT_EQ(sim_->kubectl({"delete", "pod", "-n", "web", "guarded-0", "--wait=true"}).status, 0);
  EXPECT_EQ(remote("guarded/example"), (std::set<std::string>{"keep-1.txt", "keep-2.txt"}));
}

TEST_F(pfs_e2e, automatic_encryption_keeps_only_ciphertext_on_the_remote) {
  make_sync("vault",
            "  syncOptions: {schedule: \"@every 2s\"}\n"
            "  automaticEncryption: {enabled: true, secretName: vault-key}\n");
  // The controller makes the key Secret once.
  ASSERT_TRUE(eventually([&] { return !sim_->get("secret", "vault-key", "web").is_null(); }, 30s));
  const auto key_before = json::dump(*sim_->get("secret", "vault-key", "web").at("data"));

  make_pod("vault-0", "vault", "alpha", "vault-0-www");
  ASSERT_TRUE(eventually([&] { return sidecar_running("vault-0"); }, 60s))
      << json::dump(sim_->get("pod", "vault-0", "web"));
  write_file(volume("vault-0-www") / "plans" / "secret-plan.txt", "PLAINTEXT-MARKER-7f3a");
  // Synced: the bucket holds the file, but neither its name nor its content in plain text
  // (the first-run marker is the only plain object, and says nothing of the data).
  ASSERT_TRUE(eventually([&] { return remote("vault/alpha").size() >= 2; }, 30s)) << sim_->log();
  for (const auto& key : remote("vault/alpha")) {
    EXPECT_EQ(key.find("secret-plan"), std::string::npos) << key;
    EXPECT_EQ(key.find("plans"), std::string::npos) << key;
    if (key == ".tidesync-initialized") continue;
    EXPECT_EQ(remote_body("vault/alpha/" + key).find("PLAINTEXT-MARKER"), std::string::npos) << key;
    EXPECT_EQ(remote_body("vault/alpha/" + key).rfind("RCLONE\0\0", 0), 0u)
        << key << ": an rclone-crypt file starts with its magic";
  }
  // A new pod (a new volume) restores the plain files with the same key, which was not replaced.
  ASSERT_EQ(sim_->kubectl({"delete", "pod", "-n", "web", "vault-0", "--wait=true"}).status, 0);
  make_pod("vault-1", "vault", "alpha", "vault-1-www");
  ASSERT_TRUE(eventually([&] { return sidecar_running("vault-1"); }, 60s))
      << json::dump(sim_->get("pod", "vault-1", "web"));
  EXPECT_EQ(read_file(volume("vault-1-www") / "plans" / "secret-plan.txt"),
            "PLAINTEXT-MARKER-7f3a");
  EXPECT_EQ(json::dump(*sim_->get("secret", "vault-key", "web").at("data")), key_before);
}

TEST_F(pfs_e2e, fsnotify_syncs_a_change_without_a_schedule) {
  // At most one sync per minute: the sidecar syncs at start, then the first change after that
  // minute. No schedule runs in this mode, so the file can only arrive through inotify.
  make_sync("notes", "  syncOptions: {method: fsnotify, maxOneSyncPerMinutes: \"1\"}\n");
  make_pod("notes-0", "notes", "team", "notes-0-www");
  ASSERT_TRUE(eventually([&] { return sidecar_running("notes-0"); }, 60s))
      << json::dump(sim_->get("pod", "notes-0", "web"));
  const fs::path log = sim_->data_dir() / "logs" / "web" / "notes-0" / "volume-syncing-sidecar.log";
  write_file(volume("notes-0-www") / "todo.md", "- ship it");
  ASSERT_TRUE(eventually([&] { return remote("notes/team").count("todo.md") == 1; }, 100s))
      << read_file(log);
  EXPECT_EQ(remote_body("notes/team/todo.md"), "- ship it");
}

}  // namespace
