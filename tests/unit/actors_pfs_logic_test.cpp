// PodFilesystemSync's status as a pure function of the spec, the labelled pods (with the last
// report in their annotation) and the Secrets; reports as agents send them; the encryption key
// Secret (actors/pfs_logic.hpp).
#include <gtest/gtest.h>

#include "actors/pfs_logic.hpp"
#include "runtime/base64.hpp"
#include "runtime/transfer/crypt.hpp"

using namespace tidesync;
using namespace tidesync::actors;

namespace {

json::value parse(const std::string& text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? std::move(*v) : json::value{};
}

config::podfilesystemsync sync_named(const std::string& name) {
  auto r = config::parse_podfilesystemsync(parse(R"({"apiVersion":"tidesync.io/v1alpha1",
    "kind":"PodFilesystemSync","metadata":{"name":")" +
                                                 name +
                                                 R"(","namespace":"web","generation":3},
    "spec":{"podSelector":{"matchLabels":{"app":"press"}},"localPath":"/data",
    "remotePath":"b/{{ pod.metadata.name }}"}})"));
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  return r ? std::move(*r) : config::podfilesystemsync{};
}

json::value pod(const std::string& name, const std::string& injected_by,
                const std::string& last_sync = "", const std::string& app = "press") {
  json::object annotations;
  if (!injected_by.empty()) annotations.set("tidesync.io/injected-by", injected_by);
  if (!last_sync.empty()) annotations.set("tidesync.io/last-sync", last_sync);
  return json::value(json::object{
      {"metadata",
       json::object{{"name", name},
                    {"namespace", "web"},
                    {"labels", json::object{{"app", app}, {"tidesync.io/volume-syncing", "true"}}},
                    {"annotations", std::move(annotations)}}}});
}

const config::condition& cond(const config::podfilesystemsync_status& s, const char* type) {
  const auto* c = config::find_condition(s.conditions, type);
  EXPECT_NE(c, nullptr) << type;
  static config::condition none;
  return c ? *c : none;
}

config::sys_seconds at(int64_t s) {
  return config::sys_seconds(std::chrono::seconds(s));
}

std::string report_of(const std::string& result, int64_t t, const std::string& message = "") {
  config::pod_sync_status s;
  s.kind = "sync";
  s.result = result;
  s.last_sync_time = at(t);
  s.bytes = 10;
  s.files = 2;
  s.message = message;
  s.consecutive_failures = result == "Failed" ? 2 : 0;
  return last_sync_annotation(s);
}

}  // namespace

TEST(PfsStatus, NoPodSelectedSaysWhatToLabel) {
  auto s = pfs_status(sync_named("press"), {pod("other-0", "", "", "other")}, {}, at(100));
  EXPECT_EQ(s.observed_generation, 3);
  EXPECT_TRUE(s.pods.empty());
  EXPECT_EQ(cond(s, "Ready").status, "True");
  EXPECT_EQ(cond(s, "PodsSelected").reason, "NoMatchingPods");
  EXPECT_NE(cond(s, "PodsSelected").message.find("tidesync.io/volume-syncing=true"),
            std::string::npos);
  EXPECT_EQ(cond(s, "Synced").reason, "NoReports");
}

TEST(PfsStatus, PodsWithReportsAndOnesTheWebhookMissed) {
  std::vector<json::value> pods{pod("press-1", "press", report_of("Succeeded", 200)),
                                pod("press-0", "press", report_of("Succeeded", 100)),
                                pod("press-2", "")};
  auto s = pfs_status(sync_named("press"), pods, {}, at(300));
  ASSERT_EQ(s.pods.size(), 3u);
  EXPECT_EQ(s.pods[0].name, "press-0");
  EXPECT_EQ(s.pods[1].bytes, 10);
  EXPECT_EQ(s.pods[1].last_sync_time, at(200));
  EXPECT_FALSE(s.pods[2].injected);
  EXPECT_EQ(s.pods[2].result, "NotInjected");
  ASSERT_TRUE(s.last_sync.has_value());
  EXPECT_EQ(s.last_sync->name, "press-1");
  EXPECT_EQ(cond(s, "Synced").status, "True");
  EXPECT_EQ(cond(s, "PodsSelected").message, "3 pod(s) selected, 2 with the agents");
  // A failure names the pod and says how many in a row.
  pods[0] = pod("press-1", "press", report_of("Failed", 250, "remote unreachable"));
  s = pfs_status(sync_named("press"), pods, {}, at(300));
  EXPECT_EQ(cond(s, "Synced").reason, "SyncFailed");
  EXPECT_EQ(cond(s, "Synced").message,
            "pod press-1: the last sync failed (2 in a row): remote unreachable");
  // Another PodFilesystemSync injected it: not ours.
  s = pfs_status(sync_named("press"), {pod("press-0", "other", report_of("Succeeded", 1))}, {},
                 at(300));
  EXPECT_FALSE(s.pods[0].injected);
  // The last sync survives the pod (a pod that is gone leaves the list, not lastSync).
  auto spec = sync_named("press");
  spec.status = pfs_status(spec, {pod("press-0", "press", report_of("Succeeded", 100))}, {}, at(1));
  s = pfs_status(spec, {}, {}, at(300));
  EXPECT_TRUE(s.pods.empty());
  ASSERT_TRUE(s.last_sync.has_value());
  EXPECT_EQ(s.last_sync->name, "press-0");
}

TEST(PfsStatus, MissingAndBadSecretsAreNotReady) {
  auto s = pfs_status(sync_named("press"), {}, {{"keys", "more-keys"}, ""}, at(1));
  EXPECT_EQ(cond(s, "Ready").reason, "SecretNotFound");
  EXPECT_NE(cond(s, "Ready").message.find("keys, more-keys"), std::string::npos);
  s = pfs_status(sync_named("press"), {}, {{}, "Secret k has no key"}, at(1));
  EXPECT_EQ(cond(s, "Ready").reason, "EncryptionKeyInvalid");
  // The transition time stays while the condition does not change.
  auto spec = sync_named("press");
  spec.status = pfs_status(spec, {}, {}, at(1));
  s = pfs_status(spec, {}, {}, at(500));
  EXPECT_EQ(cond(s, "Ready").last_transition_time, at(1));
}

TEST(PfsReport, ValidatesWhatAgentsSend) {
  auto r = parse_pfs_report(parse(R"({"namespace":"web","pod":"p","podFilesystemSync":"press",
    "kind":"final","result":"Failed","time":"2026-12-07T10:00:00Z","bytes":5,"files":1,
    "deleted":2,"consecutiveFailures":3,"message":"line one\nline two"})"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->sync.kind, "final");
  EXPECT_EQ(r->sync.deleted, 2);
  EXPECT_EQ(r->sync.message, "line one line two");
  // Through the annotation and back.
  auto back = read_last_sync(pod("p", "press", last_sync_annotation(r->sync)));
  ASSERT_TRUE(back.has_value());
  back->name = r->sync.name;
  EXPECT_EQ(*back, r->sync);
  for (
      const char* bad : {
          R"({"pod":"p","podFilesystemSync":"x","kind":"sync","result":"Failed","time":"2026-12-07T10:00:00Z"})",
          R"({"namespace":"w","pod":"p","podFilesystemSync":"x","kind":"nap","result":"Failed","time":"2026-12-07T10:00:00Z"})",
          R"({"namespace":"w","pod":"p","podFilesystemSync":"x","kind":"sync","result":"Great","time":"2026-12-07T10:00:00Z"})",
          R"({"namespace":"w","pod":"p","podFilesystemSync":"x","kind":"sync","result":"Failed","time":"yesterday"})",
          R"({"namespace":"w","pod":"p","podFilesystemSync":"x","kind":"sync","result":"Failed","time":"2026-12-07T10:00:00Z","bytes":-1})",
      }) {
    auto e = parse_pfs_report(parse(bad));
    ASSERT_FALSE(e.has_value()) << bad;
    EXPECT_EQ(e.error().code, errc::bad_request);
  }
  EXPECT_FALSE(read_last_sync(pod("p", "press", "not json")).has_value());
}

TEST(PfsEncryptionSecret, MadeOnceWithObscuredKeysAndCheckedWithoutShowingThem) {
  auto s = new_encryption_secret("web", "press-key", "press");
  EXPECT_EQ(check_encryption_secret(s), "");
  auto pw = base64::decode(s.at_path({"data", k_crypt_password_key})->as_string());
  ASSERT_TRUE(pw.has_value());
  auto plain = transfer::crypt::reveal(*pw);
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->size(), 64u);
  // Two Secrets never share a key.
  auto other = new_encryption_secret("web", "press-key", "press");
  EXPECT_NE(json::dump(*other.at("data")), json::dump(*s.at("data")));
  auto missing = s;
  missing.as_object()["data"].as_object().erase(k_crypt_salt_key);
  auto why = check_encryption_secret(missing);
  EXPECT_NE(why.find("has no key RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD2"), std::string::npos);
  EXPECT_NE(why.find("never replaced"), std::string::npos);
  auto plain_text = s;
  plain_text.as_object()["data"].as_object().set(k_crypt_password_key,
                                                 base64::encode("hunter2-not-obscured"));
  why = check_encryption_secret(plain_text);
  EXPECT_NE(why.find("obscured"), std::string::npos);
  EXPECT_EQ(why.find("hunter2"), std::string::npos);
}
