// The real kubectl against the real `tidesync simulate` binary: what a user types.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "runtime/json/value.hpp"
#include "tests/support/process.hpp"

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

using tidesync::test::child;
using tidesync::test::run;
using tidesync::test::run_result;

class kubectl_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto probe = run({"kubectl", "version", "--client"});
    ASSERT_EQ(probe.status, 0) << "these tests drive the real kubectl; it is not on PATH:\n"
                               << probe.output;
    char tmpl[] = "/tmp/tidesync-kubectl-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    start();
  }
  void TearDown() override {
    sim.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  void start(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{TIDESYNC_BINARY, "simulate", "--data-dir", dir + "/data"};
    for (auto& e : extra)
      argv.push_back(e);
    sim = std::make_unique<child>(argv);
    std::string line = sim->read_until(
        [](const std::string& l) { return l.rfind("tidesync simulate: API server on ", 0) == 0; });
    ASSERT_FALSE(line.empty()) << "simulate did not report its address:\n" << sim->output();
    auto at = line.find("kubeconfig at ");
    ASSERT_NE(at, std::string::npos);
    kubeconfig = line.substr(at + 14);
    auto p = line.find("127.0.0.1:");
    port = std::atoi(line.c_str() + p + 10);
    ASSERT_GT(port, 0);
    // Ready when /readyz says so (polled with a deadline).
    httplib::Client c("127.0.0.1", port);
    auto deadline = clock_type::now() + 10s;
    bool ready = false;
    while (!ready && clock_type::now() < deadline) {
      auto r = c.Get("/readyz");
      ready = r && r->status == 200;
      if (!ready) std::this_thread::sleep_for(20ms);
    }
    ASSERT_TRUE(ready);
  }

  run_result kubectl(std::vector<std::string> args) {
    std::vector<std::string> argv{"kubectl", "--kubeconfig", kubeconfig, "--cache-dir",
                                  dir + "/kube-cache"};
    for (auto& a : args)
      argv.push_back(a);
    return run(argv);
  }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  std::string dir, kubeconfig;
  int port = 0;
  std::unique_ptr<child> sim;
};

constexpr const char* kCrd = R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.test.tidesync.io
spec:
  group: test.tidesync.io
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo, shortNames: [gz]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
)";

constexpr const char* kGizmo = R"(apiVersion: test.tidesync.io/v1
kind: Gizmo
metadata:
  name: g1
spec:
  size: 42
)";

TEST_F(kubectl_test, apply_get_patch_status_watch_delete) {
  auto crd = kubectl({"apply", "-f", write("crd.yaml", kCrd)});  // validation stays on
  ASSERT_EQ(crd.status, 0) << crd.output;
  auto established = kubectl(
      {"wait", "--for=condition=Established", "--timeout=10s", "crd/gizmos.test.tidesync.io"});
  ASSERT_EQ(established.status, 0) << established.output;
  auto obj = kubectl({"apply", "-f", write("gizmo.yaml", kGizmo)});
  ASSERT_EQ(obj.status, 0) << obj.output;
  EXPECT_NE(obj.output.find("gizmo.test.tidesync.io/g1 created"), std::string::npos) << obj.output;

  auto got = kubectl({"get", "gizmo", "g1", "-o", "json"});
  ASSERT_EQ(got.status, 0) << got.output;
  auto doc = tidesync::json::parse(got.output);
  ASSERT_TRUE(doc.has_value()) << got.output;
  EXPECT_EQ(doc->at_path({"spec", "size"})->as_int(), 42);
  EXPECT_EQ(doc->at("metadata")->get_int("generation"), 1);

  auto table = kubectl({"get", "gz"});
  ASSERT_EQ(table.status, 0) << table.output;
  EXPECT_NE(table.output.find("SIZE"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("PHASE"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("42"), std::string::npos) << table.output;

  child watcher({"kubectl", "--kubeconfig", kubeconfig, "--cache-dir", dir + "/kube-cache", "get",
                 "gizmos", "-w"});
  ASSERT_FALSE(
      watcher.read_until([](const std::string& l) { return l.rfind("g1", 0) == 0; }).empty())
      << watcher.output();
  auto patch = kubectl({"patch", "gizmo", "g1", "--subresource=status", "--type=merge", "-p",
                        R"({"status":{"phase":"Synced"}})"});
  ASSERT_EQ(patch.status, 0) << patch.output;
  auto seen = watcher.read_until(
      [](const std::string& l) { return l.find("Synced") != std::string::npos; });
  EXPECT_FALSE(seen.empty()) << "kubectl get -w did not show the change:\n" << watcher.output();
  watcher.stop();

  auto after =
      kubectl({"get", "gizmo", "g1", "-o", "jsonpath={.status.phase} {.metadata.generation}"});
  EXPECT_EQ(after.output, "Synced 1") << "a status change does not bump generation";

  auto del = kubectl({"delete", "gizmo", "g1", "--timeout=10s"});
  ASSERT_EQ(del.status, 0) << del.output;
  auto gone = kubectl({"get", "gizmo", "g1"});
  EXPECT_NE(gone.status, 0);
  EXPECT_NE(gone.output.find("NotFound"), std::string::npos) << gone.output;
}

TEST_F(kubectl_test, bad_input_gets_4xx_and_the_server_stays_up) {
  httplib::Client c("127.0.0.1", port);
  auto malformed =
      c.Post("/api/v1/namespaces/default/configmaps", "{\"metadata\":", "application/json");
  ASSERT_TRUE(malformed);
  EXPECT_EQ(malformed->status, 400);
  EXPECT_NE(malformed->body.find("\"reason\":\"BadRequest\""), std::string::npos)
      << malformed->body;
  auto unknown = c.Get("/apis/nope.example.com/v1/widgets");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  auto wrong_type = c.Post("/api/v1/namespaces/default/configmaps", "<xml/>", "application/xml");
  ASSERT_TRUE(wrong_type);
  EXPECT_EQ(wrong_type->status, 415);
  auto k = kubectl({"get", "nosuchthings"});
  EXPECT_NE(k.status, 0);
  EXPECT_NE(k.output.find("the server doesn't have a resource type \"nosuchthings\""),
            std::string::npos)
      << k.output;
  auto ok = kubectl({"get", "namespaces"});
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_NE(ok.output.find("kube-system"), std::string::npos);
}

TEST_F(kubectl_test, state_survives_a_restart_and_manifests_apply_at_start) {
  auto cm = kubectl({"create", "configmap", "kept", "--from-literal=a=1"});
  ASSERT_EQ(cm.status, 0) << cm.output;
  EXPECT_EQ(sim->stop(), 0) << sim->output();
  EXPECT_TRUE(fs::exists(dir + "/data/state.json"));
  start({std::string(TIDESYNC_SOURCE_DIR) + "/deploy/examples/demo.yaml"});
  auto got = kubectl({"get", "configmap", "kept", "-o", "jsonpath={.data.a}"});
  EXPECT_EQ(got.output, "1");
  auto demo = kubectl({"get", "greetings", "-n", "demo"});
  EXPECT_EQ(demo.status, 0) << demo.output;
  EXPECT_NE(demo.output.find("MESSAGE"), std::string::npos) << demo.output;
}

// The simulation the README's main command (scripts/demo.sh) starts, and the README's "on its
// own" command: `tidesync simulate deploy/crds deploy/examples` applies our CRDs and every
// example (the demo policy with its Secret and ConfigMap among them: they pass the CRD schema),
// and the example Job really syncs files (rclone run by the simulated kubelet) into the claim's
// folder under the data dir. The demo itself, with s3rver, is tests/integration/demo_test.cpp.
TEST_F(kubectl_test, readme_example_really_syncs_data) {
  EXPECT_EQ(sim->stop(), 0) << sim->output();
  start({std::string(TIDESYNC_SOURCE_DIR) + "/deploy/crds",
         std::string(TIDESYNC_SOURCE_DIR) + "/deploy/examples"});
  auto done =
      kubectl({"wait", "--for=condition=complete", "job/demo-sync", "-n", "demo", "--timeout=60s"});
  ASSERT_EQ(done.status, 0) << done.output << "\n" << sim->output();
  std::ifstream synced(dir + "/data/volumes/demo/demo-output/synced/hello.txt");
  std::string text((std::istreambuf_iterator<char>(synced)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "hello from tidesync simulate\n");
  EXPECT_TRUE(fs::exists(dir + "/data/volumes/demo/demo-output/synced/settings.json"));
  auto policies = kubectl({"get", "bucketsyncpolicies", "-A"});
  EXPECT_EQ(policies.status, 0) << policies.output;
  EXPECT_NE(policies.output.find("nightly-backup"), std::string::npos) << policies.output;
  EXPECT_NE(policies.output.find("demo-backup"), std::string::npos) << policies.output;
  auto demo_refs = kubectl({"get", "secret/demo-s3-credentials", "configmap/demo-s3-endpoint", "-n",
                            "default", "-o", "name"});
  EXPECT_EQ(demo_refs.status, 0) << demo_refs.output;
  auto schedule = kubectl({"get", "bucketsyncpolicy", "demo-backup", "-n", "default", "-o",
                           "jsonpath={.spec.schedule} {.spec.syncHistoryLimit}"});
  EXPECT_EQ(schedule.output, "@every 5m 3") << schedule.output;
}

TEST(simulate_cli, bad_yaml_names_the_file_and_exits_2) {
  char tmpl[] = "/tmp/tidesync-badyaml-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  std::string path = dir + "/bad.yaml";
  std::ofstream(path) << "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [oops\n";
  auto r = run({TIDESYNC_BINARY, "simulate", "--data-dir", dir + "/data", path});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find(path + " (document 2)"), std::string::npos) << r.output;
  auto usage = run({TIDESYNC_BINARY, "simulate", "--bogus"});
  EXPECT_EQ(usage.status, 2);
  auto help = run({TIDESYNC_BINARY, "simulate", "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.output.find("--no-controller"), std::string::npos);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
