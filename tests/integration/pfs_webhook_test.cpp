// PodFilesystemSync through `tidesync simulate` (embedded API server + controller): the
// controller registers its webhook, the API server calls it when labelled pods are created,
// the status lists the pods, agents' reports (HTTPS, per-pod tokens) reach the status, the
// automaticEncryption key Secret is created once and never replaced, and bad input is reported
// in status and Events or refused at admission. The pods are not run here (--no-kubelet): the
// agents are tested in pfs_e2e_test and agent_pfs_test.
//
// Every server binds 127.0.0.1 and is stopped by PID; every wait is a condition with a deadline.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "runtime/base64.hpp"
#include "runtime/json/value.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/simulation.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using tidesync::test::eventually;
using tidesync::test::read_file;
using tidesync::test::run_result;
using tidesync::test::write_file;
namespace json = tidesync::json;

const std::string k_binary = TIDESYNC_BINARY;

class pfs_webhook : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/tidesync-pfs-webhook-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    sim_ = std::make_unique<tidesync::test::simulation>(dir_,
                                                        std::vector<std::string>{"--no-kubelet"});
    ASSERT_TRUE(sim_->ready()) << sim_->log();
    apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n");
    // Registered once the controller has listed the PodFilesystemSyncs.
    ASSERT_TRUE(sim_->webhook_registered()) << sim_->log();
  }

  void TearDown() override {
    if (HasFailure()) std::cerr << "--- simulate log ---\n" << sim_->log();
    sim_.reset();  // stopped by PID
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  run_result kubectl(std::vector<std::string> args, const std::string& stdin_text = {}) {
    return sim_->kubectl(std::move(args), stdin_text);
  }
  void apply(const std::string& yaml) {
    auto r = sim_->apply(yaml);
    ASSERT_EQ(r.status, 0) << r.output;
  }
  json::value get(const std::string& what, const std::string& name) {
    return sim_->get(what, name, "web");
  }
  std::string condition(const std::string& name, const std::string& type) {
    return sim_->condition("podfilesystemsync", name, "web", type);
  }
  bool has_event(const std::string& reason, const std::string& object) {
    return sim_->has_event("web", reason, object);
  }

  static std::string pfs(const std::string& name, const std::string& extra = "",
                         const std::string& app = "press") {
    return "apiVersion: tidesync.io/v1alpha1\nkind: PodFilesystemSync\n"
           "metadata: {name: " +
           name + ", namespace: web}\nspec:\n  podSelector: {matchLabels: {app: " + app +
           "}}\n  localPath: /data\n  remotePath: 'bucket/{{ pod.metadata.name }}'\n" + extra;
  }
  static std::string pod(const std::string& name, const std::string& labels) {
    return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
           ", namespace: web, labels: " + labels +
           "}\nspec:\n  containers: [{name: app, image: nginx, volumeMounts: [{name: d, "
           "mountPath: /data}]}]\n  volumes: [{name: d, emptyDir: {}}]\n";
  }
  // The env of the pod's container `container` (init containers included).
  std::map<std::string, std::string> env_of(const std::string& pod_name,
                                            const std::string& container) {
    std::map<std::string, std::string> out;
    auto p = get("pod", pod_name);
    for (const char* list : {"initContainers", "containers"})
      if (const auto* cs = p.at_path({"spec", list}); cs && cs->is_array())
        for (const auto& c : cs->as_array())
          if (c.get_string("name") == container && c.at("env") && c.at("env")->is_array())
            for (const auto& e : c.at("env")->as_array())
              out[std::string(e.get_string("name"))] = std::string(e.get_string("value"));
    return out;
  }
  // POSTs a report as the agent of `pod_name` would, with `token`; the HTTP status.
  int report(const std::map<std::string, std::string>& env, const std::string& pod_name,
             const std::string& token, const std::string& result) {
    const std::string url = env.at("TIDESYNC_REPORT_URL");  // https://127.0.0.1:PORT/report
    auto hostport = url.substr(8, url.find('/', 8) - 8);
    const fs::path ca = dir_ / "ca.pem";
    write_file(ca, env.at("TIDESYNC_REPORT_CA"));
    httplib::SSLClient c(hostport.substr(0, hostport.find(':')),
                         std::stoi(hostport.substr(hostport.find(':') + 1)));
    c.set_ca_cert_path(ca.c_str());
    c.enable_server_certificate_verification(true);
    c.set_connection_timeout(5);
    json::value body(json::object{{"namespace", "web"},
                                  {"pod", pod_name},
                                  {"podFilesystemSync", env.at("TIDESYNC_PFS_NAME")},
                                  {"container", "sidecar"},
                                  {"kind", "sync"},
                                  {"time", "2026-12-07T10:00:00Z"},
                                  {"bytes", 2048},
                                  {"files", 3},
                                  {"result", result},
                                  {"consecutiveFailures", result == "Failed" ? 1 : 0},
                                  {"message", result == "Failed" ? "bucket unreachable" : ""}});
    auto r = c.Post("/report", {{"Authorization", "Bearer " + token}}, json::dump(body),
                    "application/json");
    return r ? r->status : -1;
  }

  fs::path dir_;
  std::unique_ptr<tidesync::test::simulation> sim_;
};

const std::string k_labelled = "{app: press, tidesync.io/volume-syncing: \"true\"}";

TEST_F(pfs_webhook, labelled_pods_are_injected_and_reports_reach_the_status) {
  apply(pfs("press", "  automaticEncryption: {enabled: true, secretName: press-key}\n"));
  // The selector matches nothing yet: said in the status and an Event.
  ASSERT_TRUE(
      eventually([&] { return condition("press", "PodsSelected") == "False NoMatchingPods"; }, 20s))
      << json::dump(get("podfilesystemsync", "press"));
  EXPECT_TRUE(eventually([&] { return has_event("NoMatchingPods", "press"); }, 20s));
  // The key Secret was made, with obscured keys, and an Event says to back it up.
  ASSERT_TRUE(eventually([&] { return !get("secret", "press-key").is_null(); }, 20s));
  auto key = get("secret", "press-key");
  EXPECT_NE(key.at_path({"data", "RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD"}), nullptr);
  EXPECT_NE(key.at_path({"data", "RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD2"}), nullptr);
  EXPECT_TRUE(eventually([&] { return has_event("EncryptionKeyCreated", "press"); }, 20s));

  // The API server sends only labelled pods; a labelled pod of another selector is untouched.
  apply(pod("press-0", k_labelled));
  apply(pod("press-1", k_labelled));
  apply(pod("plain", "{app: press}"));
  apply(pod("other", "{app: other, tidesync.io/volume-syncing: \"true\"}"));
  auto injected = get("pod", "press-0");
  ASSERT_NE(injected.at_path({"spec", "initContainers"}), nullptr) << json::dump(injected);
  EXPECT_EQ(injected.at_path({"spec", "initContainers"})->as_array().size(), 2u);
  EXPECT_EQ(injected.at_path({"metadata", "annotations", "tidesync.io/injected-by"})->as_string(),
            "press");
  EXPECT_EQ(get("pod", "plain").at_path({"spec", "initContainers"}), nullptr);
  EXPECT_EQ(get("pod", "other").at_path({"spec", "initContainers"}), nullptr);

  ASSERT_TRUE(
      eventually([&] { return condition("press", "PodsSelected") == "True PodsSelected"; }, 20s));
  EXPECT_EQ(condition("press", "Synced"), "Unknown NoReports");

  // A report with the pod's token reaches the status; a bad token and another pod's token are
  // refused.
  auto env0 = env_of("press-0", "volume-syncing-sidecar");
  auto env1 = env_of("press-1", "volume-syncing-sidecar");
  ASSERT_EQ(env0.count("TIDESYNC_REPORT_TOKEN"), 1u);
  EXPECT_NE(env0["TIDESYNC_REPORT_TOKEN"], env1["TIDESYNC_REPORT_TOKEN"]);
  EXPECT_EQ(report(env0, "press-0", "nope.nope", "Succeeded"), 401);
  EXPECT_EQ(report(env0, "press-0", env1["TIDESYNC_REPORT_TOKEN"], "Succeeded"), 403);
  EXPECT_EQ(report(env0, "press-0", env0["TIDESYNC_REPORT_TOKEN"], "Succeeded"), 202);
  EXPECT_EQ(report(env1, "press-1", env1["TIDESYNC_REPORT_TOKEN"], "Failed"), 202);
  ASSERT_TRUE(eventually([&] { return condition("press", "Synced") == "False SyncFailed"; }, 20s))
      << json::dump(get("podfilesystemsync", "press"));
  auto st = get("podfilesystemsync", "press");
  const auto& pods = st.at_path({"status", "pods"})->as_array();
  ASSERT_EQ(pods.size(), 2u) << json::dump(st);
  EXPECT_EQ(pods[0].get_string("name"), "press-0");
  EXPECT_EQ(pods[0].get_string("result"), "Succeeded");
  EXPECT_EQ(pods[0].at("bytes")->as_int(), 2048);
  EXPECT_EQ(pods[1].get_string("result"), "Failed");
  EXPECT_TRUE(eventually([&] { return has_event("SyncFailed", "press"); }, 20s));

  // Nothing secret in the status or the Events.
  auto events = kubectl({"get", "events", "-n", "web", "-o", "json"});
  for (const auto& [k, v] : key.at("data")->as_object()) {
    auto plain = tidesync::base64::decode(v.as_string());
    ASSERT_TRUE(plain);
    EXPECT_EQ(json::dump(st).find(*plain), std::string::npos);
    EXPECT_EQ(events.output.find(*plain), std::string::npos);
  }
  EXPECT_EQ(json::dump(st).find(env0["TIDESYNC_REPORT_TOKEN"]), std::string::npos);

  // The key Secret is never replaced: deleting the PodFilesystemSync and making it again keeps it.
  auto before = json::dump(*get("secret", "press-key").at("data"));
  ASSERT_EQ(kubectl({"delete", "podfilesystemsync", "-n", "web", "press"}).status, 0);
  apply(pfs("press", "  automaticEncryption: {enabled: true, secretName: press-key}\n"));
  ASSERT_TRUE(eventually([&] { return condition("press", "Ready") == "True Selecting"; }, 20s));
  EXPECT_EQ(json::dump(*get("secret", "press-key").at("data")), before);
}

TEST_F(pfs_webhook, bad_input_is_reported_or_refused) {
  // A Secret that is not a valid key: reported, never replaced.
  apply(
      "apiVersion: v1\nkind: Secret\nmetadata: {name: broken-key, namespace: web}\n"
      "stringData: {RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD: not-obscured}\n");
  apply(pfs("enc", "  automaticEncryption: {enabled: true, secretName: broken-key}\n", "enc"));
  ASSERT_TRUE(
      eventually([&] { return condition("enc", "Ready") == "False EncryptionKeyInvalid"; }, 20s))
      << json::dump(get("podfilesystemsync", "enc"));
  EXPECT_TRUE(eventually([&] { return has_event("EncryptionKeyInvalid", "enc"); }, 20s));
  EXPECT_EQ(get("secret", "broken-key").at_path({"data", "RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD2"}),
            nullptr);

  // envFromSecret naming a Secret that does not exist: not Ready, an Event; pods are still
  // injected (their agents wait for the Secret); creating it clears the condition.
  apply(pfs("keys", "  envFromSecret: [{ref: keys-missing}]\n", "keys"));
  ASSERT_TRUE(
      eventually([&] { return condition("keys", "Ready") == "False SecretNotFound"; }, 20s));
  EXPECT_TRUE(eventually([&] { return has_event("SecretNotFound", "keys"); }, 20s));
  apply(pod("keys-0", "{app: keys, tidesync.io/volume-syncing: \"true\"}"));
  EXPECT_NE(get("pod", "keys-0").at_path({"spec", "initContainers"}), nullptr);
  apply(
      "apiVersion: v1\nkind: Secret\nmetadata: {name: keys-missing, namespace: web}\n"
      "stringData: {REMOTE_TYPE: s3}\n");
  EXPECT_TRUE(eventually([&] { return condition("keys", "Ready") == "True Selecting"; }, 60s));

  // A remotePath the pod cannot fill (a missing annotation) while restoring: refused at
  // admission with a message that says why.
  apply(
      "apiVersion: tidesync.io/v1alpha1\nkind: PodFilesystemSync\nmetadata: {name: site, "
      "namespace: web}\nspec:\n  podSelector: {matchLabels: {app: site}}\n  localPath: /data\n"
      "  remotePath: 'bucket/{{ pod.metadata.annotations[\"site\"] }}'\n");
  ASSERT_TRUE(eventually([&] { return condition("site", "Ready") == "True Selecting"; }, 20s));
  auto refused =
      kubectl({"apply"}, pod("site-0", "{app: site, tidesync.io/volume-syncing: \"true\"}"));
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.output.find("denied the request"), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("site"), std::string::npos) << refused.output;

  // Two PodFilesystemSyncs selecting one pod: refused, naming both.
  apply(pfs("twin-a", "", "twin"));
  apply(pfs("twin-b", "", "twin"));
  ASSERT_TRUE(eventually([&] { return condition("twin-b", "Ready") == "True Selecting"; }, 20s));
  auto twin =
      kubectl({"apply"}, pod("twin-0", "{app: twin, tidesync.io/volume-syncing: \"true\"}"));
  EXPECT_NE(twin.status, 0);
  EXPECT_NE(twin.output.find("twin-a, twin-b"), std::string::npos) << twin.output;

  // An invalid spec the CRD schema lets through: InvalidSpec with the parser's message.
  apply(
      "apiVersion: tidesync.io/v1alpha1\nkind: PodFilesystemSync\nmetadata: {name: tpl, "
      "namespace: web}\nspec:\n  podSelector: {matchLabels: {app: tpl}}\n  localPath: /data\n"
      "  remotePath: 'bucket/{{ pod.spec.nodeName }}'\n");
  ASSERT_TRUE(eventually([&] { return condition("tpl", "Ready") == "False InvalidSpec"; }, 20s))
      << json::dump(get("podfilesystemsync", "tpl"));
  EXPECT_TRUE(eventually([&] { return has_event("InvalidSpec", "tpl"); }, 20s));
  // Its pods are admitted untouched (an invalid PodFilesystemSync selects nothing).
  apply(pod("tpl-0", "{app: tpl, tidesync.io/volume-syncing: \"true\"}"));
  EXPECT_EQ(get("pod", "tpl-0").at_path({"spec", "initContainers"}), nullptr);
}

}  // namespace
