// `tidesync simulate --controller-rbac`: the controller runs as the ServiceAccount of the file,
// and the embedded API server answers what that RBAC does not allow with 403 Forbidden, as a
// cluster would. (Every other integration test runs the controller under deploy/base/rbac.yaml
// and fails on a denial; this one shows that a missing rule is caught.)
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/simulation.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace tidesync::test;

class simulate_rbac : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/tidesync-simulate-rbac-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    controller_.reset();
    sim_.reset();
    if (HasFailure()) {
      std::cerr << "--- simulate log ---\n" << read_file(dir_ / "simulate.log");
      std::cerr << "--- controller log ---\n" << read_file(dir_ / "controller.log");
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // simulate --no-controller with `rbac`, and `tidesync controller` with the kubeconfig it
  // writes for that identity.
  void start(const std::string& rbac, const std::string& controller_flags = {}) {
    const auto data = dir_ / "sim";
    sim_ = std::make_unique<child>(std::vector<std::string>{
        "sh", "-c",
        "exec '" + std::string(TIDESYNC_BINARY) +
            "' simulate --port 0 --no-controller --data-dir '" + data.string() +
            "' --controller-rbac '" + rbac + "' '" + std::string(TIDESYNC_SOURCE_DIR) +
            "/deploy/crds' > '" + (dir_ / "simulate.log").string() + "' 2>&1"});
    ASSERT_TRUE(eventually([&] { return fs::exists(data / "kubeconfig"); }, 30s))
        << read_file(dir_ / "simulate.log");
    ASSERT_TRUE(fs::exists(data / "controller-kubeconfig"));
    EXPECT_EQ(fs::status(data / "controller-kubeconfig").permissions() & fs::perms::group_read,
              fs::perms::none);
    controller_ = std::make_unique<child>(std::vector<std::string>{
        "sh", "-c",
        "exec '" + std::string(TIDESYNC_BINARY) + "' controller --kubeconfig '" +
            (data / "controller-kubeconfig").string() + "' --health-addr 0 --metrics-addr 0 " +
            controller_flags + " > '" + (dir_ / "controller.log").string() + "' 2>&1"});
  }
  fs::path dir_;
  std::unique_ptr<child> sim_, controller_;
};

TEST_F(simulate_rbac, a_permission_the_rbac_lacks_is_forbidden) {
  // The shipped RBAC without bucketsyncpolicies: the controller's list of them is refused.
  std::string rbac = read_file(simulation::rbac_manifest());
  const std::string from = "resources: [\"bucketsyncpolicies\"]";
  const auto at = rbac.find(from);
  ASSERT_NE(at, std::string::npos) << "deploy/base/rbac.yaml changed; update this test";
  rbac.replace(at, from.size(), "resources: [\"nothing\"]");
  write_file(dir_ / "rbac.yaml", rbac);
  start((dir_ / "rbac.yaml").string());
  const std::string denied =
      "RBAC denied: bucketsyncpolicies.tidesync.io is forbidden: User "
      "\"system:serviceaccount:tidesync-system:tidesync-controller\" cannot list resource "
      "\"bucketsyncpolicies\" in API group \"tidesync.io\" at the cluster scope";
  EXPECT_TRUE(eventually(
      [&] { return read_file(dir_ / "simulate.log").find(denied) != std::string::npos; }, 30s));
  // What it may do, it does: the BucketSync list is not refused.
  EXPECT_EQ(read_file(dir_ / "simulate.log").find("cannot list resource \"bucketsyncs\""),
            std::string::npos);
}

TEST_F(simulate_rbac, the_shipped_rbac_lets_the_controller_start_and_lead) {
  start(simulation::rbac_manifest(),
        "--webhook-addr 127.0.0.1:0 --webhook-url 'https://127.0.0.1:{port}/mutate-pods'");
  // It makes its webhook certificate Secret and registers the webhook, with no denial.
  const std::string kubeconfig = (dir_ / "sim/kubeconfig").string();
  EXPECT_TRUE(eventually(
      [&] {
        return run({"kubectl", "--kubeconfig", kubeconfig, "get", "mutatingwebhookconfiguration",
                    "tidesync-pod-injection"})
                   .status == 0;
      },
      30s));
  EXPECT_EQ(run({"kubectl", "--kubeconfig", kubeconfig, "get", "secret", "tidesync-webhook-tls",
                 "-n", "tidesync-system"})
                .status,
            0);
  controller_.reset();
  sim_.reset();
  simulation::expect_no_rbac_denial(dir_ / "simulate.log");
}

TEST(simulate_rbac_flags, a_file_without_a_service_account_is_refused) {
  char tmpl[] = "/var/tmp/tidesync-simulate-rbac-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir = tmpl;
  write_file(dir / "rbac.yaml",
             "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: "
             "x}\nrules: []\n");
  auto r = run({TIDESYNC_BINARY, "simulate", "--data-dir", (dir / "sim").string(),
                "--controller-rbac", (dir / "rbac.yaml").string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("has no ServiceAccount: it names the controller's identity"),
            std::string::npos)
      << r.output;
  auto missing = run({TIDESYNC_BINARY, "simulate", "--data-dir", (dir / "sim").string(),
                      "--controller-rbac", (dir / "nope.yaml").string()});
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.output.find("nope.yaml does not exist"), std::string::npos) << missing.output;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
