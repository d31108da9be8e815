// The admission webhook's pure decisions (config/pod_injection.hpp): pods without the label or
// without a selecting PodFilesystemSync are untouched; each initContainerPlacement option puts
// the restore container where it says, with the native sidecar right after it; conflicts and
// unrenderable pods are refused where starting would risk the remote's data.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "config/pod_injection.hpp"
#include "runtime/json/value.hpp"

using namespace tidesync;
using namespace tidesync::config;
using kind = injection_decision::kind;

namespace {

json::value parse(const std::string& text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? std::move(*v) : json::value{};
}

podfilesystemsync sync_named(const std::string& name, const std::string& extra = "") {
  auto obj = parse(R"({"apiVersion":"tidesync.io/v1alpha1","kind":"PodFilesystemSync",
    "metadata":{"name":")" +
                   name + R"(","namespace":"web"},"spec":{
    "podSelector":{"matchLabels":{"app":"press"}},"localPath":"/var/www/content",
    "remotePath":"sites/{{ pod.metadata.annotations[\"site\"] }}",
    "syncOptions":{"permissions":{"uid":1001,"gid":1002}},
    "env":{"REMOTE_TYPE":"s3"},"envFromSecret":[{"ref":"press-keys"}])" +
                   extra + "}}");
  auto r = parse_podfilesystemsync(obj);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  return r ? std::move(*r) : podfilesystemsync{};
}

json::value pod(
    const std::string& inits = "[]",
    const std::string& labels = R"({"app":"press","tidesync.io/volume-syncing":"true"})",
    const std::string& annotations = R"({"site":"example.org"})") {
  return parse(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"press-0","namespace":"web",
    "labels":)" +
               labels + R"(,"annotations":)" + annotations + R"(},"spec":{
    "initContainers":)" +
               inits + R"(,
    "containers":[{"name":"app","image":"wp","volumeMounts":[{"name":"content","mountPath":"/var/www/content/"}]}],
    "volumes":[{"name":"content","persistentVolumeClaim":{"claimName":"press"}}]}})");
}

// The initContainers the patch sets, by name.
std::vector<std::string> init_names(const injection_decision& d) {
  std::vector<std::string> out;
  for (const auto& op : d.patch.as_array())
    if (op.get_string("path") == "/spec/initContainers")
      for (const auto& c : op.at("value")->as_array())
        out.emplace_back(c.get_string("name"));
  return out;
}

const json::value* init_container(const injection_decision& d, std::string_view name) {
  for (const auto& op : d.patch.as_array())
    if (op.get_string("path") == "/spec/initContainers")
      for (const auto& c : op.at("value")->as_array())
        if (c.get_string("name") == name) return &c;
  return nullptr;
}

const std::string k_two_inits = R"([{"name":"migrate","image":"m"},{"name":"warm","image":"w"}])";

}  // namespace

TEST(PodInjection, PodsWithoutTheLabelOrASelectingSyncAreUntouched) {
  std::vector<podfilesystemsync> syncs{sync_named("press")};
  auto d = decide_injection(pod("[]", R"({"app":"press"})"), syncs, {});
  EXPECT_EQ(d.what, kind::untouched);
  EXPECT_NE(d.message.find("tidesync.io/volume-syncing"), std::string::npos);
  d = decide_injection(pod("[]", R"({"app":"other","tidesync.io/volume-syncing":"true"})"), syncs,
                       {});
  EXPECT_EQ(d.what, kind::untouched);
  EXPECT_NE(d.message.find("no PodFilesystemSync"), std::string::npos);
  d = decide_injection(pod(), {}, {});
  EXPECT_EQ(d.what, kind::untouched);
}

TEST(PodInjection, LastIsTheDefaultWithTheNativeSidecarAfterTheRestore) {
  auto d = decide_injection(pod(k_two_inits), {sync_named("press")}, {});
  ASSERT_EQ(d.what, kind::patch) << d.message;
  EXPECT_EQ(d.by, "press");
  EXPECT_EQ(init_names(d), (std::vector<std::string>{"migrate", "warm", "init-volume-restore",
                                                     "volume-syncing-sidecar"}));
  const auto* restore = init_container(d, "init-volume-restore");
  ASSERT_NE(restore, nullptr);
  EXPECT_EQ(json::dump(*restore->at("args")),
            R"(["agent","restore","--local","/var/www/content","--remote","sites/example.org"])");
  EXPECT_EQ(restore->at_path({"volumeMounts"})->as_array()[0].get_string("name"), "content");
  EXPECT_EQ(restore->at_path({"securityContext", "runAsUser"})->as_int(), 1001);
  EXPECT_EQ(restore->at_path({"securityContext", "runAsGroup"})->as_int(), 1002);
  EXPECT_TRUE(restore->at_path({"securityContext", "runAsNonRoot"})->as_bool());
  EXPECT_EQ(restore->at("restartPolicy"), nullptr);
  EXPECT_EQ(json::dump(*restore->at("envFrom")), R"([{"secretRef":{"name":"press-keys"}}])");
  const auto* sidecar = init_container(d, "volume-syncing-sidecar");
  ASSERT_NE(sidecar, nullptr);
  EXPECT_EQ(sidecar->get_string("restartPolicy"), "Always");
  EXPECT_EQ(json::dump(*sidecar->at("args")),
            R"(["agent","sidecar","--local","/var/www/content","--remote","sites/example.org",)"
            R"("--method","scheduler","--schedule","@every 5m"])");
  // The pod is marked, so a second admission (reinvocation) does nothing.
  EXPECT_NE(json::dump(d.patch).find(R"("path":"/metadata/annotations/tidesync.io~1injected-by")"),
            std::string::npos)
      << json::dump(d.patch);
}

TEST(PodInjection, EveryPlacementOption) {
  struct want {
    const char* placement;
    const char* reference;
    std::vector<std::string> order;
  };
  const std::vector<want> cases = {
      {"first", "", {"init-volume-restore", "volume-syncing-sidecar", "migrate", "warm"}},
      {"last", "", {"migrate", "warm", "init-volume-restore", "volume-syncing-sidecar"}},
      {"before", "warm", {"migrate", "init-volume-restore", "volume-syncing-sidecar", "warm"}},
      {"after", "migrate", {"migrate", "init-volume-restore", "volume-syncing-sidecar", "warm"}},
      {"before", "migrate", {"init-volume-restore", "volume-syncing-sidecar", "migrate", "warm"}},
      {"after", "warm", {"migrate", "warm", "init-volume-restore", "volume-syncing-sidecar"}},
  };
  for (const auto& c : cases) {
    auto s = sync_named("press", std::string(R"(,"initContainerPlacement":{"placement":")") +
                                     c.placement + R"(","containerReference":")" + c.reference +
                                     R"("})");
    auto d = decide_injection(pod(k_two_inits), {s}, {});
    ASSERT_EQ(d.what, kind::patch) << c.placement << " " << c.reference << ": " << d.message;
    EXPECT_EQ(init_names(d), c.order) << c.placement << " " << c.reference;
  }
  // A reference that is not an init container of this pod: refused (it restores), with why.
  auto s = sync_named(
      "press", R"(,"initContainerPlacement":{"placement":"after","containerReference":"nope"})");
  auto d = decide_injection(pod(k_two_inits), {s}, {});
  EXPECT_EQ(d.what, kind::refuse);
  EXPECT_NE(d.message.find("\"nope\""), std::string::npos) << d.message;
}

TEST(PodInjection, ClassicSidecarWhenNativeSidecarsAreOff) {
  injection_settings settings;
  settings.native_sidecars = false;
  auto d = decide_injection(pod(), {sync_named("press")}, settings);
  ASSERT_EQ(d.what, kind::patch) << d.message;
  EXPECT_EQ(init_names(d), std::vector<std::string>{"init-volume-restore"});
  auto text = json::dump(d.patch);
  EXPECT_NE(text.find(R"("path":"/spec/containers")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("name":"volume-syncing-sidecar")"), std::string::npos) << text;
}

TEST(PodInjection, AnnotationsOverrideUidAndGidAndOptionsBecomeFlags) {
  auto s = sync_named("press", R"(,"syncOptions":{"permissions":{"uid":1001,"gid":1002},
      "cleanUp":{"remote":false,"local":true},"forceLocal":true,"method":"fsnotify",
      "maxOneSyncPerMinutes":15},"unhealthyAfterFailures":3,"restoreRemoteOnFirstRun":false,
      "automaticEncryption":{"enabled":true,"secretName":"press-crypt"})");
  auto p = pod(
      "[]", R"({"app":"press","tidesync.io/volume-syncing":"true"})",
      R"({"site":"a.org","tidesync.io/volume-user-id":"161","tidesync.io/volume-group-id":"1312"})");
  auto d = decide_injection(p, {s}, {});
  ASSERT_EQ(d.what, kind::patch) << d.message;
  const auto* restore = init_container(d, "init-volume-restore");
  EXPECT_EQ(restore->at_path({"securityContext", "runAsUser"})->as_int(), 161);
  EXPECT_EQ(restore->at_path({"securityContext", "runAsGroup"})->as_int(), 1312);
  EXPECT_EQ(json::dump(*restore->at("args")),
            R"(["agent","restore","--local","/var/www/content","--remote","sites/a.org",)"
            R"("--encrypt","--force-delete-local-dir","--skip-first-run"])");
  EXPECT_EQ(json::dump(*init_container(d, "volume-syncing-sidecar")->at("args")),
            R"(["agent","sidecar","--local","/var/www/content","--remote","sites/a.org",)"
            R"("--encrypt","--method","fsnotify","--schedule","@every 5m",)"
            R"("--max-one-sync-per-minutes","15","--no-delete","--unhealthy-after","3",)"
            R"("--health-file","/tmp/tidesync-sidecar-health"])");
  const auto* probe = init_container(d, "volume-syncing-sidecar")->at("livenessProbe");
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(json::dump(*probe->at_path({"exec", "command"})),
            R"(["tidesync","agent","health","--health-file","/tmp/tidesync-sidecar-health"])");
  EXPECT_EQ(init_container(d, "init-volume-restore")->at("livenessProbe"), nullptr);
  EXPECT_NE(json::dump(*restore->at("envFrom")).find("press-crypt"), std::string::npos);
}

TEST(PodInjection, ConflictsAndPodsThatCannotBeServedAreRefusedWhenTheyWouldRestore) {
  auto d = decide_injection(pod(), {sync_named("a"), sync_named("b")}, {});
  EXPECT_EQ(d.what, kind::refuse);
  EXPECT_NE(d.message.find("a, b"), std::string::npos) << d.message;

  // The template needs an annotation the pod does not have.
  d = decide_injection(pod("[]", R"({"app":"press","tidesync.io/volume-syncing":"true"})", "{}"),
                       {sync_named("press")}, {});
  EXPECT_EQ(d.what, kind::refuse);
  EXPECT_NE(d.message.find("site"), std::string::npos) << d.message;
  // Only syncing to the remote (no restore): admitted untouched, the reason kept for an Event.
  d = decide_injection(pod("[]", R"({"app":"press","tidesync.io/volume-syncing":"true"})", "{}"),
                       {sync_named("press", R"(,"allowedDirectories":{"fromRemote":false})")}, {});
  EXPECT_EQ(d.what, kind::untouched);
  EXPECT_NE(d.message.find("site"), std::string::npos) << d.message;

  // No container mounts localPath.
  auto s = sync_named("press");
  s.spec.local_path = "/srv/elsewhere";
  d = decide_injection(pod(), {s}, {});
  EXPECT_EQ(d.what, kind::refuse);
  EXPECT_NE(d.message.find("/srv/elsewhere"), std::string::npos) << d.message;

  // A bad uid annotation.
  d = decide_injection(pod("[]", R"({"app":"press","tidesync.io/volume-syncing":"true"})",
                           R"({"site":"a.org","tidesync.io/volume-user-id":"root"})"),
                       {sync_named("press")}, {});
  EXPECT_EQ(d.what, kind::refuse);
  EXPECT_NE(d.message.find("volume-user-id"), std::string::npos) << d.message;
}

TEST(PodInjection, AnInjectedPodIsNotInjectedAgain) {
  auto d = decide_injection(pod(R"([{"name":"init-volume-restore","image":"x"}])"),
                            {sync_named("press")}, {});
  EXPECT_EQ(d.what, kind::untouched);
  d = decide_injection(pod("[]", R"({"app":"press","tidesync.io/volume-syncing":"true"})",
                           R"({"site":"a.org","tidesync.io/injected-by":"press"})"),
                       {sync_named("press")}, {});
  EXPECT_EQ(d.what, kind::untouched);
}

// The patch applies (RFC 6902, as the API server applies it) to the pod it was made for, with
// and without existing annotations and init containers, and keeps the pod's own containers.
TEST(PodInjection, ThePatchAppliesToThePod) {
  for (const auto& [inits, annotations] : std::vector<std::pair<std::string, std::string>>{
           {"[]", R"({"site":"a.org"})"}, {k_two_inits, R"({"site":"a.org"})"}}) {
    auto p = pod(inits, R"({"app":"press","tidesync.io/volume-syncing":"true"})", annotations);
    auto d = decide_injection(p, {sync_named("press")}, {});
    ASSERT_EQ(d.what, kind::patch) << d.message;
    auto patched = json::json_patch(p, d.patch);
    ASSERT_TRUE(patched.has_value()) << patched.error().message;
    EXPECT_EQ(patched->at_path({"metadata", "annotations"})->get_string("tidesync.io/injected-by"),
              "press");
    EXPECT_EQ(patched->at_path({"metadata", "annotations"})->get_string("site"), "a.org");
    EXPECT_EQ(patched->at_path({"spec", "containers"})->as_array().size(), 1U);
    const auto& vols = patched->at_path({"spec", "volumes"})->as_array();
    ASSERT_EQ(vols.size(), 2U) << "the pod's volume and the agents' /tmp";
    EXPECT_EQ(vols[0].get_string("name"), "content");
    EXPECT_EQ(vols[1].get_string("name"), "tidesync-agent-tmp");
    // Admitting the patched pod again changes nothing.
    EXPECT_EQ(decide_injection(*patched, {sync_named("press")}, {}).what, kind::untouched);
  }
  // A pod without annotations and without initContainers at all.
  auto bare = parse(
      R"({"metadata":{"name":"p","labels":{"app":"press","tidesync.io/volume-syncing":"true"}},
    "spec":{"containers":[{"name":"app","volumeMounts":[{"name":"v","mountPath":"/var/www/content"}]}]}})");
  auto s = sync_named("press");
  s.spec.remote_path = *parse_template("sites/bare");
  auto d = decide_injection(bare, {s}, {});
  ASSERT_EQ(d.what, kind::patch) << d.message;
  auto patched = json::json_patch(bare, d.patch);
  ASSERT_TRUE(patched.has_value()) << patched.error().message;
  EXPECT_EQ(patched->at_path({"spec", "initContainers"})->as_array().size(), 2U);
  EXPECT_EQ(patched->at_path({"metadata", "annotations"})->get_string("tidesync.io/injected-by"),
            "press");
}

// With reports on, both agents get the URL, the CA, their pod's name and namespace and a token
// for (namespace, PodFilesystemSync, report id) after the spec's env (which cannot override
// them), and the pod carries the report id; without a report id nothing is added.
TEST(PodInjection, ReportsGetATokenBoundToTheReportId) {
  injection_settings st;
  st.report_url = "https://tidesync-webhook.tidesync-system.svc:443/report";
  st.report_ca = "-----BEGIN CERTIFICATE-----\n...";
  st.report_token = [](std::string_view ns, std::string_view pfs, std::string_view id) {
    return std::string(ns) + "|" + std::string(pfs) + "|" + std::string(id);
  };
  for (const auto& annotations : {std::string(R"({"site":"a.org"})"), std::string("null")}) {
    auto s = sync_named("press");
    s.spec.remote_path = *parse_template("sites/x");
    auto p = pod("[]", R"({"app":"press","tidesync.io/volume-syncing":"true"})", annotations);
    auto d = decide_injection(p, {s}, st, "r42");
    ASSERT_EQ(d.what, kind::patch) << d.message;
    auto patched = json::json_patch(p, d.patch);
    ASSERT_TRUE(patched.has_value()) << patched.error().message;
    EXPECT_EQ(patched->at_path({"metadata", "annotations"})->get_string("tidesync.io/report-id"),
              "r42");
    for (const auto& c : patched->at_path({"spec", "initContainers"})->as_array()) {
      std::map<std::string, std::string> env;
      std::vector<std::string> order;
      for (const auto& e : c.at("env")->as_array()) {
        order.emplace_back(e.get_string("name"));
        env[order.back()] =
            e.at("value") ? std::string(e.get_string("value")) : json::dump(*e.at("valueFrom"));
      }
      EXPECT_EQ(order.front(), "REMOTE_TYPE") << "the spec's env first";
      EXPECT_EQ(env["TIDESYNC_REPORT_URL"], st.report_url);
      EXPECT_EQ(env["TIDESYNC_REPORT_CA"], st.report_ca);
      EXPECT_EQ(env["TIDESYNC_REPORT_TOKEN"], "web|press|r42");
      EXPECT_EQ(env["TIDESYNC_PFS_NAME"], "press");
      EXPECT_EQ(env["POD_NAME"], R"({"fieldRef":{"fieldPath":"metadata.name"}})");
      EXPECT_EQ(env["POD_NAMESPACE"], R"({"fieldRef":{"fieldPath":"metadata.namespace"}})");
    }
  }
  auto d = decide_injection(pod(), {sync_named("press")}, st);
  ASSERT_EQ(d.what, kind::patch);
  EXPECT_EQ(json::dump(d.patch).find("TIDESYNC_REPORT"), std::string::npos);
  EXPECT_EQ(json::dump(d.patch).find("report-id"), std::string::npos);
}
