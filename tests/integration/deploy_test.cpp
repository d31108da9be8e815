// What ships and what the docs show, against `tidesync simulate`: the kustomize overlays render
// and pass `kubectl apply --dry-run=server` (with the Prometheus Operator's kinds installed, as
// on a cluster that runs it), the rendered controller Deployment keeps its production settings,
// and every example manifest in deploy/examples, docs/examples and the docs' ```yaml blocks is
// accepted by `kubectl apply`, so none of them rots. A block that is not meant to be applied
// (an old design's manifest in a migration guide, a fragment) has the line
// `<!-- not-applied: why -->` right above its fence.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/apiserver/manifest.hpp"
#include "runtime/json/value.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/simulation.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tidesync;
using namespace tidesync::test;

const fs::path k_source = TIDESYNC_SOURCE_DIR;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class deploy : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/tidesync-deploy-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (sim_ && HasFailure()) std::cerr << sim_->all_logs();
    sim_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // `kubectl kustomize DIR` into a file; its path.
  std::string render(const std::string& overlay) {
    const auto out = dir_ / (overlay.substr(overlay.rfind('/') + 1) + ".yaml");
    auto r = run({"kubectl", "kustomize", (k_source / overlay).string(), "-o", out.string()});
    EXPECT_EQ(r.status, 0) << r.output;
    return out.string();
  }
  // The objects of a rendered file, by "Kind/name".
  std::map<std::string, json::value> objects(const std::string& file) {
    std::map<std::string, json::value> out;
    auto docs = apiserver::parse_manifests(read_file(file), file);
    EXPECT_TRUE(docs.has_value()) << docs.error().message;
    if (!docs) return out;
    for (auto& d : *docs)
      out[std::string(d.object.get_string("kind")) + "/" +
          std::string(d.object.at("metadata")->get_string("name"))] = std::move(d.object);
    return out;
  }
  // Starts the simulation with the Prometheus Operator's kinds served, as on a cluster that runs
  // the operator (deploy/monitoring needs them).
  void start(const std::vector<std::string>& args = {}) {
    sim_ = std::make_unique<simulation>(dir_, args);
    ASSERT_TRUE(sim_->ready()) << sim_->log();
    auto crds = sim_->kubectl(
        {"apply", "-f", (k_source / "tests/data/prometheus-operator-crds.yaml").string()});
    ASSERT_EQ(crds.status, 0) << crds.output;
  }
  fs::path dir_;
  std::unique_ptr<simulation> sim_;
};

TEST_F(deploy, the_overlays_pass_a_server_side_dry_run) {
  start();
  for (const std::string overlay : {"deploy/overlays/small", "deploy/overlays/ha"}) {
    SCOPED_TRACE(overlay);
    const std::string file = render(overlay);
    auto r = sim_->kubectl({"apply", "--dry-run=server", "-f", file});
    EXPECT_EQ(r.status, 0) << r.output;
    for (const char* line : {
             "namespace/tidesync-system configured (server dry run)",
             "customresourcedefinition.apiextensions.k8s.io/podfilesystemsyncs.tidesync.io",
             // simulate --controller-rbac made the controller's identity already.
             "serviceaccount/tidesync-controller configured (server dry run)",
             "clusterrole.rbac.authorization.k8s.io/tidesync-controller configured (server dry "
             "run)",
             "deployment.apps/tidesync-controller created (server dry run)",
             "service/tidesync-controller-metrics created (server dry run)",
             "service/tidesync-config created (server dry run)",
             "service/tidesync-webhook created (server dry run)",
             "configmap/tidesync-policy created (server dry run)",
             "configmap/tidesync-grafana-dashboard created (server dry run)",
             "servicemonitor.monitoring.coreos.com/tidesync-controller created (server dry run)",
             "prometheusrule.monitoring.coreos.com/tidesync created (server dry run)",
         })
      EXPECT_TRUE(contains(r.output, line)) << line << "\n" << r.output;
    if (overlay == "deploy/overlays/ha")
      EXPECT_TRUE(contains(
          r.output, "poddisruptionbudget.policy/tidesync-controller created (server dry run)"))
          << r.output;
  }
  // A dry run: nothing was made.
  EXPECT_NE(
      sim_->kubectl({"get", "deployment", "tidesync-controller", "-n", "tidesync-system"}).status,
      0);
  EXPECT_NE(sim_->kubectl({"get", "servicemonitor", "tidesync-controller", "-n", "tidesync-system"})
                .status,
            0);
}

// The settings a production install depends on survive every overlay.
TEST_F(deploy, the_rendered_controller_keeps_its_production_settings) {
  start();
  for (const auto& [overlay, replicas] : std::vector<std::pair<std::string, int64_t>>{
           {"deploy/overlays/small", 1}, {"deploy/overlays/ha", 3}}) {
    SCOPED_TRACE(overlay);
    auto objs = objects(render(overlay));
    ASSERT_TRUE(objs.count("Deployment/tidesync-controller"));
    const auto& d = objs["Deployment/tidesync-controller"];
    EXPECT_EQ(d.at("spec")->get_int("replicas"), replicas);
    const auto* pod = d.at_path({"spec", "template", "spec"});
    ASSERT_NE(pod, nullptr);
    EXPECT_EQ(pod->get_string("serviceAccountName"), "tidesync-controller");
    EXPECT_TRUE(pod->at("securityContext")->get_bool("runAsNonRoot"));
    const auto& c = pod->at("containers")->as_array().at(0);
    EXPECT_TRUE(c.at("securityContext")->get_bool("readOnlyRootFilesystem"));
    EXPECT_FALSE(c.at("securityContext")->get_bool("allowPrivilegeEscalation", true));
    EXPECT_NE(c.at("livenessProbe"), nullptr);
    EXPECT_NE(c.at("readinessProbe"), nullptr);
    EXPECT_NE(c.at_path({"resources", "requests", "memory"}), nullptr);
    EXPECT_NE(c.at_path({"resources", "limits", "memory"}), nullptr);
    std::set<std::string> args;
    for (const auto& a : c.at("args")->as_array())
      args.insert(a.as_string());
    EXPECT_TRUE(args.count("--leader-elect"));
    EXPECT_TRUE(args.count("--webhook-addr=0.0.0.0:9443"));
    // The image the Dockerfile builds, the version the binary reports.
    EXPECT_EQ(c.get_string("image"), "tidesync/tidesync:0.1.0");
    // The ServiceMonitor selects the metrics Service by a label it really has.
    ASSERT_TRUE(objs.count("ServiceMonitor/tidesync-controller"));
    ASSERT_TRUE(objs.count("Service/tidesync-controller-metrics"));
    EXPECT_EQ(objs["ServiceMonitor/tidesync-controller"]
                  .at_path({"spec", "selector", "matchLabels"})
                  ->get_string("app.kubernetes.io/name"),
              objs["Service/tidesync-controller-metrics"]
                  .at_path({"metadata", "labels"})
                  ->get_string("app.kubernetes.io/name"));
    if (replicas > 1) {
      ASSERT_TRUE(objs.count("PodDisruptionBudget/tidesync-controller"));
      EXPECT_LT(objs["PodDisruptionBudget/tidesync-controller"].at("spec")->get_int("minAvailable"),
                replicas);
    }
  }
}

struct example {
  std::string where;  // file, or file:line of a docs block
  std::string yaml;
};

// Every manifest a reader may copy: the example files, and the docs' ```yaml blocks that hold a
// whole object (top-level apiVersion and kind) and are not marked not-applied.
std::vector<example> examples() {
  std::vector<example> out;
  for (const char* d : {"deploy/examples", "docs/examples"}) {
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(k_source / d))
      if (e.is_regular_file() &&
          (e.path().extension() == ".yaml" || e.path().extension() == ".yml"))
        files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files)
      out.push_back({fs::relative(f, k_source).string(), read_file(f)});
  }
  std::vector<fs::path> docs;
  for (const auto& e : fs::recursive_directory_iterator(k_source / "docs"))
    if (e.is_regular_file() && e.path().extension() == ".md") docs.push_back(e.path());
  docs.push_back(k_source / "README.md");
  std::sort(docs.begin(), docs.end());
  for (const auto& f : docs) {
    std::istringstream in(read_file(f));
    std::string line, previous, block;
    int n = 0, start = 0;
    bool in_block = false, skip = false;
    while (std::getline(in, line)) {
      ++n;
      if (!in_block && (line == "```yaml" || line == "```yml")) {
        in_block = true;
        skip = previous.rfind("<!-- not-applied:", 0) == 0;
        block.clear();
        start = n;
      } else if (in_block && line.rfind("```", 0) == 0) {
        in_block = false;
        static const std::regex api("(^|\n)apiVersion:"), kind("(^|\n)kind:");
        if (!skip && std::regex_search(block, api) && std::regex_search(block, kind))
          out.push_back({fs::relative(f, k_source).string() + ":" + std::to_string(start), block});
      } else if (in_block) {
        block += line + "\n";
      }
      if (!line.empty()) previous = line;
    }
  }
  return out;
}

TEST_F(deploy, every_example_is_accepted_by_kubectl_apply) {
  // The controller runs (its admission webhook sees the example pods); pods are not started.
  start({"--no-kubelet"});
  ASSERT_TRUE(sim_->webhook_registered());
  auto all = examples();
  // Pods last: they name volumes and claims of other examples, which exist by then.
  static const std::regex pod("(^|\n)kind: Pod\n");
  std::stable_partition(all.begin(), all.end(),
                        [](const example& e) { return !std::regex_search(e.yaml, pod); });
  EXPECT_GE(all.size(), 20u) << "the examples were not found";
  static const std::regex ns_re("[\\s{,]namespace: *([a-z0-9-]+)");
  for (const auto& e : all) {
    SCOPED_TRACE(e.where);
    // The namespaces an example puts objects in exist, as on a cluster it is written for.
    for (std::sregex_iterator it(e.yaml.begin(), e.yaml.end(), ns_re), end; it != end; ++it) {
      auto r = sim_->kubectl({"create", "namespace", (*it)[1].str()});
      EXPECT_TRUE(r.status == 0 || contains(r.output, "AlreadyExists")) << r.output;
    }
    // A CRD and its objects in one file: the CRDs go first, as on any cluster (kubectl cannot
    // map or validate the objects of a kind that is not served yet).
    std::string crds, rest;
    std::istringstream docs(e.yaml);
    std::string line, doc;
    auto flush = [&] {
      (doc.find("\nkind: CustomResourceDefinition") != std::string::npos ||
               doc.rfind("kind: CustomResourceDefinition", 0) == 0
           ? crds
           : rest) += "---\n" + doc;
      doc.clear();
    };
    while (std::getline(docs, line)) {
      if (line == "---") {
        flush();
      } else {
        doc += line + "\n";
      }
    }
    flush();
    if (crds.find("CustomResourceDefinition") != std::string::npos) {
      auto c = sim_->apply(crds);
      EXPECT_EQ(c.status, 0) << e.where << ": its CRDs are not accepted:\n" << c.output;
    }
    auto r = sim_->apply(rest);
    EXPECT_EQ(r.status, 0) << e.where << " is not accepted by kubectl apply:\n" << r.output;
  }
}

}  // namespace
