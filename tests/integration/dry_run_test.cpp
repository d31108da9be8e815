// Server-side dry run end to end: the real kubectl (`apply/create/patch/delete
// --dry-run=server`) against the real `tidesync simulate` binary. kubectl's apply GETs each
// object, then POSTs the new ones and PATCHes the existing ones with dryRun=All (and
// fieldManager, fieldValidation=Strict): both paths must answer as a real write would and
// change nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "runtime/json/value.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/simulation.hpp"

namespace {

using namespace std::chrono_literals;
using tidesync::test::child;
using tidesync::test::run_result;
namespace json = tidesync::json;

// What exists before the dry run: a namespace with a ConfigMap and a Deployment.
constexpr const char* kBase = R"(apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  mode: slow
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
)";

// New objects of every kind the brief names (cluster-scoped and in a namespace) and changes to
// the existing two.
constexpr const char* kDryRun = R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.test.tidesync.io
spec:
  group: test.tidesync.io
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: v1
kind: Namespace
metadata:
  name: brand-new
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: gizmo-reader
rules:
- apiGroups: [test.tidesync.io]
  resources: [gizmos]
  verbs: [get, list, watch]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: gizmo-defaults
webhooks:
- name: gizmos.test.tidesync.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Ignore
  clientConfig:
    url: https://127.0.0.1:1/mutate
  rules:
  - operations: [CREATE]
    apiGroups: [test.tidesync.io]
    apiVersions: [v1]
    resources: [gizmos]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  mode: fast
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: extra
  namespace: shop
data:
  mode: new
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.26
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports:
  - port: 80
)";

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

class dry_run_e2e : public ::testing::Test {
 protected:
  void SetUp() override {
    // No controller: nothing else writes, so every change is the test's own.
    sim_ = std::make_unique<tidesync::test::simulation>(
        dir_.path(), std::vector<std::string>{"--no-controller"});
    ASSERT_TRUE(sim_->ready()) << sim_->log();
    auto base = sim_->apply(kBase);
    ASSERT_EQ(base.status, 0) << base.output;
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << sim_->all_logs();
    sim_.reset();  // stopped by PID
  }

  run_result kubectl(std::vector<std::string> args, const std::string& stdin_text = {}) {
    return sim_->kubectl(std::move(args), stdin_text);
  }
  // `kubectl get KIND NAME` fails with NotFound.
  void expect_absent(const std::string& kind, const std::string& name, const std::string& ns = "") {
    std::vector<std::string> args{"get", kind, name};
    if (!ns.empty()) args.insert(args.end(), {"-n", ns});
    auto r = kubectl(args);
    EXPECT_NE(r.status, 0) << kind << "/" << name << " was stored:\n" << r.output;
    EXPECT_TRUE(contains(r.output, "NotFound")) << r.output;
  }
  std::string jsonpath(const std::string& what, const std::string& path) {
    auto r = kubectl({"get", what, "-n", "shop", "-o", "jsonpath=" + path});
    EXPECT_EQ(r.status, 0) << r.output;
    return r.output;
  }

  tidesync::test::temp_dir dir_{"tidesync-dry-run"};
  std::unique_ptr<tidesync::test::simulation> sim_;
};

TEST_F(dry_run_e2e, kubectl_dry_run_server_answers_every_write_and_changes_nothing) {
  const std::string settings_rv = jsonpath("configmap/settings", "{.metadata.resourceVersion}");
  // A watch opened before: kubectl lists (printing the existing ConfigMap), then watches from
  // that list's resourceVersion, so any event after it reaches this output.
  child watcher({"kubectl", "--kubeconfig", sim_->kubeconfig(), "--cache-dir",
                 (dir_.path() / "kube-cache").string(), "get", "configmaps", "-n", "shop", "-w",
                 "--output-watch-events", "-o",
                 "jsonpath={.type} {.object.metadata.name} {.object.data.mode}{\"\\n\"}"});
  ASSERT_FALSE(
      watcher.read_until([](const std::string& l) { return l == "ADDED settings slow"; }).empty())
      << watcher.output();

  auto applied = kubectl({"apply", "--dry-run=server"}, kDryRun);
  ASSERT_EQ(applied.status, 0) << applied.output;
  for (const char* line : {
           "customresourcedefinition.apiextensions.k8s.io/gizmos.test.tidesync.io created "
           "(server dry run)",
           "namespace/brand-new created (server dry run)",
           "clusterrole.rbac.authorization.k8s.io/gizmo-reader created (server dry run)",
           "mutatingwebhookconfiguration.admissionregistration.k8s.io/gizmo-defaults created "
           "(server dry run)",
           "configmap/settings configured (server dry run)",
           "configmap/extra created (server dry run)",
           "deployment.apps/web configured (server dry run)",
           "service/web created (server dry run)",
       })
    EXPECT_TRUE(contains(applied.output, line)) << "missing \"" << line << "\" in:\n"
                                                << applied.output;

  // The other verbs' --dry-run=server: create (kubectl sends protobuf), patch, delete
  // (DeleteOptions.dryRun in the body).
  auto created = kubectl({"create", "configmap", "made", "-n", "shop", "--from-literal=mode=made",
                          "--dry-run=server", "-o", "jsonpath={.metadata.uid}"});
  ASSERT_EQ(created.status, 0) << created.output;
  EXPECT_FALSE(created.output.empty()) << "a dry-run create answers with the server's uid";
  auto patched =
      kubectl({"patch", "deployment", "web", "-n", "shop", "-p", R"({"spec":{"replicas":5}})",
               "--dry-run=server", "-o", "jsonpath={.spec.replicas} {.metadata.generation}"});
  ASSERT_EQ(patched.status, 0) << patched.output;
  EXPECT_EQ(patched.output, "5 2") << "the answer is the patched object";
  auto deleted = kubectl({"delete", "configmap", "settings", "-n", "shop", "--dry-run=server"});
  ASSERT_EQ(deleted.status, 0) << deleted.output;
  EXPECT_TRUE(contains(deleted.output, "configmap \"settings\" deleted (server dry run)"))
      << deleted.output;
  auto ns_deleted = kubectl({"delete", "namespace", "shop", "--dry-run=server", "--wait=false"});
  ASSERT_EQ(ns_deleted.status, 0) << ns_deleted.output;

  // Nothing was created...
  expect_absent("crd", "gizmos.test.tidesync.io");
  expect_absent("namespace", "brand-new");
  expect_absent("clusterrole", "gizmo-reader");
  expect_absent("mutatingwebhookconfiguration", "gizmo-defaults");
  expect_absent("configmap", "extra", "shop");
  expect_absent("configmap", "made", "shop");
  expect_absent("service", "web", "shop");
  // ...changed or deleted.
  EXPECT_EQ(jsonpath("configmap/settings", "{.data.mode} {.metadata.resourceVersion}"),
            "slow " + settings_rv);
  EXPECT_EQ(jsonpath("deployment/web",
                     "{.spec.replicas} {.spec.template.spec.containers[0].image} "
                     "{.metadata.generation}"),
            "1 nginx:1.25 1");
  auto ns = kubectl({"get", "namespace", "shop", "-o", "jsonpath={.status.phase}"});
  EXPECT_EQ(ns.output, "Active") << ns.output;

  // A real change now: it must be the first event after the initial listing.
  auto real = kubectl({"patch", "configmap", "settings", "-n", "shop", "--type=merge", "-p",
                       R"({"data":{"mode":"real"}})"});
  ASSERT_EQ(real.status, 0) << real.output;
  auto next = watcher.read_until([](const std::string& l) { return !l.empty(); }, 20s);
  EXPECT_EQ(next, "MODIFIED settings real") << "the watch saw something before the real change:\n"
                                            << watcher.output();
  watcher.stop();
}

// As on a real kube-apiserver: a dry run stores nothing, so the contents of a namespace that
// is new in the same manifest cannot be created ("namespaces ... not found").
TEST_F(dry_run_e2e, a_namespace_new_in_the_same_manifest_does_not_exist_for_its_contents) {
  auto r = kubectl({"apply", "--dry-run=server"}, R"(apiVersion: v1
kind: Namespace
metadata:
  name: fresh
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: inside
  namespace: fresh
)");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "namespace/fresh created (server dry run)")) << r.output;
  EXPECT_TRUE(contains(r.output, "namespaces \"fresh\" not found")) << r.output;
  expect_absent("namespace", "fresh");
}

// A value other than "All" is refused before anything is written (kubectl only sends "All":
// this is what another client would meet).
TEST_F(dry_run_e2e, a_bad_dry_run_value_is_refused) {
  const auto body = dir_.path() / "cm.json";
  tidesync::test::write_file(body, R"({"metadata":{"name":"raw"}})");
  auto r = kubectl(
      {"create", "--raw", "/api/v1/namespaces/shop/configmaps?dryRun=yes", "-f", body.string()});
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "supported values: \\\"All\\\"") ||
              contains(r.output, "supported values: \"All\""))
      << r.output;
  expect_absent("configmap", "raw", "shop");
}

}  // namespace
