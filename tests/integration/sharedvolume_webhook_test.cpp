// SharedVolume and ClusterSharedVolume through `tidesync simulate` without a kubelet: the
// controller's objects, the mounting webhook (PV/PVC made, pods patched, unknown volumes
// refused), syncer reports reaching the status, a namespace's claim removed with its last
// consumer, and deletion waiting for consumers. The syncer and NFS server do not run here
// (--no-kubelet); sharedvolume_e2e_test runs them.
//
// Every server binds 127.0.0.1 and is stopped by PID; every wait is a condition with a deadline.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/json/value.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/simulation.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using tidesync::test::eventually;
using tidesync::test::write_file;
namespace json = tidesync::json;

class sharedvolume_webhook : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/tidesync-sv-webhook-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    sim_ = std::make_unique<tidesync::test::simulation>(
        dir_, std::vector<std::string>{"--no-kubelet", "--volume-claim-grace", "1s"});
    ASSERT_TRUE(sim_->ready()) << sim_->log();
    for (const char* ns : {"team-a", "team-b", "team-c"})
      apply(std::string("apiVersion: v1\nkind: Namespace\nmetadata: {name: ") + ns + "}\n");
    ASSERT_TRUE(sim_->webhook_registered()) << sim_->log();
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "--- simulate log ---\n" << sim_->log();
    sim_.reset();
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  void apply(const std::string& yaml) {
    auto r = sim_->apply(yaml);
    ASSERT_EQ(r.status, 0) << r.output;
  }
  json::value get(const std::string& kind, const std::string& name, const std::string& ns) {
    return sim_->get(kind, name, ns);
  }
  bool exists(const std::string& kind, const std::string& name, const std::string& ns = "") {
    std::vector<std::string> args{"get", kind, name, "-o", "name"};
    if (!ns.empty()) args.insert(args.end(), {"-n", ns});
    return sim_->kubectl(args).status == 0;
  }
  std::string status_of(const std::string& kind, const std::string& name, const std::string& ns,
                        const std::string& jsonpath) {
    std::vector<std::string> args{"get", kind, name, "-o", "jsonpath=" + jsonpath};
    if (!ns.empty()) args.insert(args.end(), {"-n", ns});
    auto r = sim_->kubectl(args);
    return r.status == 0 ? r.output : std::string();
  }
  static std::string pod(const std::string& name, const std::string& ns,
                         const std::string& annotations) {
    return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + ", namespace: " + ns +
           ", annotations: " + annotations +
           "}\nspec:\n  containers: [{name: app, image: nginx}]\n";
  }
  // The syncer Deployment's env (its report URL, CA and token).
  std::map<std::string, std::string> syncer_env(const std::string& name, const std::string& ns) {
    std::map<std::string, std::string> out;
    auto d = get("deployment", name, ns);
    const auto* cs = d.at_path({"spec", "template", "spec", "containers"});
    if (cs == nullptr) return out;
    for (const auto& e : cs->as_array()[0].at("env")->as_array())
      out[std::string(e.get_string("name"))] = std::string(e.get_string("value"));
    return out;
  }
  int report(const std::map<std::string, std::string>& env, json::value body,
             const std::string& token) {
    const std::string url = env.at("TIDESYNC_REPORT_URL");
    auto hostport = url.substr(8, url.find('/', 8) - 8);
    const fs::path ca = dir_ / "ca.pem";
    write_file(ca, env.at("TIDESYNC_REPORT_CA"));
    httplib::SSLClient c(hostport.substr(0, hostport.find(':')),
                         std::stoi(hostport.substr(hostport.find(':') + 1)));
    c.set_ca_cert_path(ca.c_str());
    c.enable_server_certificate_verification(true);
    c.set_connection_timeout(5);
    auto r = c.Post(url.substr(url.find('/', 8)), {{"Authorization", "Bearer " + token}},
                    json::dump(body), "application/json");
    return r ? r->status : -1;
  }

  fs::path dir_;
  std::unique_ptr<tidesync::test::simulation> sim_;
};

TEST_F(sharedvolume_webhook, mounts_reports_and_cleans_up_a_sharedvolume) {
  apply(
      "apiVersion: tidesync.io/v1alpha1\nkind: SharedVolume\nmetadata: {name: docs, namespace: "
      "team-a}\nspec:\n  source: {git: {url: \"https://git.example.com/docs.git\", ref: {branch: "
      "main}}}\n  storage: {external: {server: nfs.example.com, path: /exports/docs}}\n");
  // External storage: the syncer at once, the finalizer, and a status waiting for the first sync.
  ASSERT_TRUE(eventually([&] { return exists("deployment", "sv-docs-syncer", "team-a"); }, 20s));
  EXPECT_FALSE(exists("deployment", "sv-docs-nfs", "team-a"));
  ASSERT_TRUE(eventually(
      [&] {
        return sim_->condition("sharedvolume", "docs", "team-a", "Ready") ==
               "False WaitingForFirstSync";
      },
      20s));
  EXPECT_EQ(status_of("sharedvolume", "docs", "team-a", "{.metadata.finalizers[0]}"),
            "tidesync.io/shared-volume");
  EXPECT_EQ(status_of("sharedvolume", "docs", "team-a", "{.status.nfs.server}"), "nfs.example.com");

  // A server-side dry run of such a pod is answered (mounted) but makes nothing: no claim.
  auto dry = sim_->kubectl(
      {"apply", "--dry-run=server"},
      pod("reader-0", "team-a",
          "{tidesync.io/shared-volume: docs, tidesync.io/shared-volume-mount-path: /docs}"));
  EXPECT_EQ(dry.status, 0) << dry.output;
  EXPECT_NE(dry.output.find("pod/reader-0 created (server dry run)"), std::string::npos)
      << dry.output;
  EXPECT_FALSE(exists("persistentvolumeclaim", "tidesync-sv-docs", "team-a"));
  EXPECT_FALSE(exists("pod", "reader-0", "team-a"));
  // A pod naming it gets it mounted; its namespace gets the claim and the PV.
  apply(pod("reader-0", "team-a",
            "{tidesync.io/shared-volume: docs, tidesync.io/shared-volume-mount-path: /docs}"));
  auto p = get("pod", "reader-0", "team-a");
  const auto& mount =
      p.at_path({"spec", "containers"})->as_array()[0].at("volumeMounts")->as_array().at(0);
  EXPECT_EQ(mount.get_string("name"), "tidesync-sv-docs");
  EXPECT_EQ(mount.get_string("mountPath"), "/docs");
  EXPECT_TRUE(mount.at("readOnly")->as_bool());
  EXPECT_TRUE(exists("persistentvolumeclaim", "tidesync-sv-docs", "team-a"));
  auto pv = status_of("persistentvolumeclaim", "tidesync-sv-docs", "team-a", "{.spec.volumeName}");
  ASSERT_FALSE(pv.empty());
  EXPECT_EQ(status_of("persistentvolume", pv, "", "{.spec.nfs.server}:{.spec.nfs.path}"),
            "nfs.example.com:/exports/docs");
  ASSERT_TRUE(eventually(
      [&] {
        return status_of("sharedvolume", "docs", "team-a", "{.status.consumers[0].pods}") == "1";
      },
      20s));
  // A pod naming a volume that does not exist is refused with a message that says so.
  auto refused = sim_->apply(pod("reader-1", "team-a", "{tidesync.io/shared-volume: nope}"));
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.output.find("SharedVolume team-a/nope does not exist"), std::string::npos)
      << refused.output;

  // The syncer's report (its token from the Deployment) makes it Ready; a bad token is refused;
  // a failed sync keeps the served revision and says why.
  auto env = syncer_env("sv-docs-syncer", "team-a");
  ASSERT_EQ(env.count("TIDESYNC_REPORT_TOKEN"), 1u);
  json::value ok(json::object{{"kind", "SharedVolume"},
                              {"namespace", "team-a"},
                              {"name", "docs"},
                              {"revision", "4f2c9e1a"},
                              {"result", "Succeeded"},
                              {"time", "2026-12-07T10:00:00Z"}});
  EXPECT_EQ(report(env, ok, "docs.0000"), 401);
  EXPECT_EQ(report(env, ok, env["TIDESYNC_REPORT_TOKEN"]), 202);
  ASSERT_TRUE(eventually(
      [&] { return sim_->condition("sharedvolume", "docs", "team-a", "Ready") == "True Ready"; },
      20s));
  EXPECT_EQ(status_of("sharedvolume", "docs", "team-a", "{.status.phase} {.status.revision}"),
            "Ready 4f2c9e1a");
  json::value failed = ok;
  failed.as_object().set("result", "Failed");
  failed.as_object().set("revision", "");
  failed.as_object().set("message", "authentication required");
  EXPECT_EQ(report(env, failed, env["TIDESYNC_REPORT_TOKEN"]), 202);
  ASSERT_TRUE(eventually(
      [&] {
        return sim_->condition("sharedvolume", "docs", "team-a", "Synced") == "False SyncFailed";
      },
      20s));
  EXPECT_EQ(status_of("sharedvolume", "docs", "team-a", "{.status.revision}"), "4f2c9e1a");
  EXPECT_EQ(sim_->condition("sharedvolume", "docs", "team-a", "Ready"), "True Ready");

  // The last consumer of the namespace leaves: its claim and PV go (after the grace).
  ASSERT_EQ(sim_->kubectl({"delete", "pod", "-n", "team-a", "reader-0"}).status, 0);
  EXPECT_TRUE(eventually(
      [&] {
        return !exists("persistentvolumeclaim", "tidesync-sv-docs", "team-a") &&
               !exists("persistentvolume", pv);
      },
      30s));
  // Deleting the volume removes its syncer and then the volume.
  ASSERT_EQ(
      sim_->kubectl({"delete", "sharedvolume", "-n", "team-a", "docs", "--wait=false"}).status, 0);
  EXPECT_TRUE(eventually(
      [&] {
        return !exists("sharedvolume", "docs", "team-a") &&
               !exists("deployment", "sv-docs-syncer", "team-a");
      },
      30s));
}

TEST_F(sharedvolume_webhook, a_clustersharedvolume_serves_namespaces_and_waits_for_its_consumers) {
  apply(
      "apiVersion: tidesync.io/v1alpha1\nkind: ClusterSharedVolume\nmetadata: {name: models}\n"
      "spec:\n  source: {s3: {remote: artifacts/models, secretRef: {name: models-store}}}\n");
  // Dynamic storage in the controller's namespace: the NFS server first; no syncer until it is
  // available (it never is without a kubelet).
  ASSERT_TRUE(
      eventually([&] { return exists("deployment", "csv-models-nfs", "tidesync-system"); }, 20s));
  EXPECT_TRUE(exists("service", "csv-models-nfs", "tidesync-system"));
  EXPECT_TRUE(exists("persistentvolumeclaim", "csv-models-nfs-data", "tidesync-system"));
  ASSERT_TRUE(eventually(
      [&] {
        return sim_->condition("clustersharedvolume", "models", "", "ServerReady") ==
               "False Starting";
      },
      20s));
  EXPECT_FALSE(exists("deployment", "csv-models-syncer", "tidesync-system"));

  apply(pod("b-0", "team-b", "{tidesync.io/cluster-shared-volume: models}"));
  apply(pod("c-0", "team-c", "{tidesync.io/cluster-shared-volume: models}"));
  EXPECT_TRUE(exists("persistentvolumeclaim", "tidesync-csv-models", "team-b"));
  EXPECT_TRUE(exists("persistentvolumeclaim", "tidesync-csv-models", "team-c"));
  // team-b's last consumer leaves: only team-b's claim goes.
  ASSERT_EQ(sim_->kubectl({"delete", "pod", "-n", "team-b", "b-0"}).status, 0);
  ASSERT_TRUE(eventually(
      [&] { return !exists("persistentvolumeclaim", "tidesync-csv-models", "team-b"); }, 30s));
  EXPECT_TRUE(exists("persistentvolumeclaim", "tidesync-csv-models", "team-c"));

  // Deleting the volume waits for team-c's pod, and says so.
  ASSERT_EQ(sim_->kubectl({"delete", "clustersharedvolume", "models", "--wait=false"}).status, 0);
  ASSERT_TRUE(eventually(
      [&] {
        return sim_->condition("clustersharedvolume", "models", "", "Ready") ==
               "False ConsumersRemain";
      },
      20s));
  EXPECT_NE(
      status_of("clustersharedvolume", "models", "", "{.status.conditions}").find("team-c/c-0"),
      std::string::npos);
  EXPECT_TRUE(exists("deployment", "csv-models-nfs", "tidesync-system"));
  // A deleting volume takes no new consumers.
  auto late = sim_->apply(pod("c-1", "team-c", "{tidesync.io/cluster-shared-volume: models}"));
  EXPECT_NE(late.output.find("being deleted"), std::string::npos) << late.output;
  ASSERT_EQ(sim_->kubectl({"delete", "pod", "-n", "team-c", "c-0"}).status, 0);
  EXPECT_TRUE(eventually(
      [&] {
        return !exists("clustersharedvolume", "models") &&
               !exists("deployment", "csv-models-nfs", "tidesync-system") &&
               !exists("service", "csv-models-nfs", "tidesync-system") &&
               !exists("persistentvolumeclaim", "csv-models-nfs-data", "tidesync-system") &&
               !exists("persistentvolumeclaim", "tidesync-csv-models", "team-c");
      },
      30s));
}

TEST_F(sharedvolume_webhook, an_invalid_spec_is_reported) {
  apply(
      "apiVersion: tidesync.io/v1alpha1\nkind: SharedVolume\nmetadata: {name: bad, namespace: "
      "team-a}\nspec:\n  source: {git: {url: \"/not/a/url\"}}\n  syncInterval: 1s\n");
  ASSERT_TRUE(eventually(
      [&] {
        return sim_->condition("sharedvolume", "bad", "team-a", "Ready") == "False InvalidSpec";
      },
      20s));
  auto msg = status_of("sharedvolume", "bad", "team-a",
                       "{.status.conditions[?(@.type==\"Ready\")].message}");
  EXPECT_NE(msg.find("spec.source.git.url"), std::string::npos) << msg;
  EXPECT_NE(msg.find("spec.syncInterval"), std::string::npos) << msg;
  EXPECT_TRUE(eventually([&] { return sim_->has_event("team-a", "InvalidSpec", "bad"); }, 20s));
}

}  // namespace

namespace {

TEST_F(sharedvolume_webhook, a_missing_secret_is_reported_and_sync_now_restarts_the_syncer) {
  apply(
      "apiVersion: tidesync.io/v1alpha1\nkind: SharedVolume\nmetadata: {name: site, namespace: "
      "team-a}\nspec:\n  source: {s3: {remote: bucket/site, secretRef: {name: site-store}}}\n"
      "  storage: {external: {server: nfs.example.com}}\n");
  ASSERT_TRUE(eventually(
      [&] {
        return sim_->condition("sharedvolume", "site", "team-a", "Ready") == "False SecretNotFound";
      },
      20s));
  EXPECT_NE(status_of("sharedvolume", "site", "team-a",
                      "{.status.conditions[?(@.type==\"Ready\")].message}")
                .find("team-a/site-store"),
            std::string::npos);
  EXPECT_TRUE(eventually([&] { return sim_->has_event("team-a", "SecretNotFound", "site"); }, 20s));
  // Creating it clears the condition (Secrets are looked at again every 10 s).
  apply(
      "apiVersion: v1\nkind: Secret\nmetadata: {name: site-store, namespace: team-a}\n"
      "stringData: {REMOTE_TYPE: s3}\n");
  ASSERT_TRUE(eventually(
      [&] {
        return sim_->condition("sharedvolume", "site", "team-a", "Ready") ==
               "False WaitingForFirstSync";
      },
      30s));
  // tidesync.io/sync-now changes the syncer's pod template: a new syncer pod, which syncs at start.
  auto generation = [&] {
    return status_of("deployment", "sv-site-syncer", "team-a",
                     "{.spec.template.metadata.annotations.tidesync\\.io/sync-generation}");
  };
  ASSERT_TRUE(eventually([&] { return !generation().empty(); }, 20s));
  const auto before = generation();
  ASSERT_EQ(sim_->kubectl({"annotate", "sharedvolume", "-n", "team-a", "site",
                           "tidesync.io/sync-now=now-1"})
                .status,
            0);
  ASSERT_TRUE(eventually([&] { return generation() == before + "/now-1"; }, 20s)) << generation();
}

}  // namespace
