// The AdmissionReview protocol around the webhook's decision (config/admission.hpp): the uid
// is echoed, a patch travels as base64 JSONPatch, a refusal is a 403 with the reason, and
// anything but a Pod CREATE is allowed untouched.
#include <gtest/gtest.h>

#include <string>

#include "config/admission.hpp"
#include "runtime/base64.hpp"
#include "runtime/json/value.hpp"

using namespace tidesync;
using namespace tidesync::config;

namespace {

json::value parse(const std::string& text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? std::move(*v) : json::value{};
}

json::value review(const std::string& operation = "CREATE", const std::string& kind = "Pod",
                   const std::string& group = "") {
  return parse(R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
    "uid":"705ab4f5-6393-11e8-b7cc-42010a800002","namespace":"web","operation":")" +
               operation + R"(","kind":{"group":")" + group + R"(","version":"v1","kind":")" +
               kind + R"("},"object":{"metadata":{"generateName":"press-"},"spec":{}}}})");
}

pod_decider returning(injection_decision d, std::string* seen_ns = nullptr) {
  return [d, seen_ns](const json::value&, const std::string& ns) {
    if (seen_ns != nullptr) *seen_ns = ns;
    return d;
  };
}

}  // namespace

TEST(AdmissionReview, APatchTravelsAsBase64JsonPatchWithTheUid) {
  injection_decision d;
  d.what = injection_decision::kind::patch;
  d.patch = parse(R"([{"op":"add","path":"/spec/initContainers","value":[]}])");
  std::string ns;
  auto r = answer_admission_review(review(), returning(d, &ns));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(ns, "web") << "the request's namespace (the pod has none yet)";
  EXPECT_EQ(r->get_string("apiVersion"), "admission.k8s.io/v1");
  EXPECT_EQ(r->get_string("kind"), "AdmissionReview");
  const auto* resp = r->at("response");
  EXPECT_EQ(resp->get_string("uid"), "705ab4f5-6393-11e8-b7cc-42010a800002");
  EXPECT_TRUE(resp->get_bool("allowed"));
  EXPECT_EQ(resp->get_string("patchType"), "JSONPatch");
  auto patch = base64::decode(resp->get_string("patch"));
  ASSERT_TRUE(patch.has_value());
  EXPECT_EQ(*patch, json::dump(d.patch));
}

TEST(AdmissionReview, ARefusalIsA403WithTheReason) {
  injection_decision d;
  d.what = injection_decision::kind::refuse;
  d.message = "PodFilesystemSyncs a, b all select this pod";
  auto r = answer_admission_review(review(), returning(d));
  ASSERT_TRUE(r.has_value());
  const auto* resp = r->at("response");
  EXPECT_FALSE(resp->get_bool("allowed", true));
  EXPECT_EQ(resp->at_path({"status", "code"})->as_int(), 403);
  EXPECT_EQ(resp->at_path({"status", "message"})->as_string(),
            "tidesync: PodFilesystemSyncs a, b all select this pod");
  EXPECT_EQ(resp->at("patch"), nullptr);
}

TEST(AdmissionReview, UntouchedPodsAreAllowedWithAWarningOnlyWhenASyncMeantThem) {
  injection_decision d;
  d.message = "the pod is not labelled tidesync.io/volume-syncing=true";
  auto r = answer_admission_review(review(), returning(d));
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->at("response")->get_bool("allowed"));
  EXPECT_EQ(r->at("response")->at("warnings"), nullptr);
  EXPECT_EQ(r->at("response")->at("patch"), nullptr);
  d.message = "PodFilesystemSync press: remotePath: the pod has no annotation \"site\"";
  r = answer_admission_review(review(), returning(d));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(
      json::dump(*r->at("response")->at("warnings")),
      R"(["tidesync: PodFilesystemSync press: remotePath: the pod has no annotation \"site\""])");
}

TEST(AdmissionReview, OnlyPodCreatesAreDecided) {
  injection_decision refuse;
  refuse.what = injection_decision::kind::refuse;
  refuse.message = "never";
  for (const auto& rv : {review("UPDATE"), review("DELETE"), review("CREATE", "Deployment", "apps"),
                         review("CREATE", "Pod", "example.com")}) {
    auto r = answer_admission_review(rv, returning(refuse));
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->at("response")->get_bool("allowed")) << json::dump(rv);
  }
}

TEST(AdmissionReview, NotAnAdmissionReviewIsABadRequest) {
  for (const char* text : {R"({})", R"({"kind":"AdmissionReview"})",
                           R"({"kind":"AdmissionReview","request":{"operation":"CREATE"}})",
                           R"({"kind":"Pod","request":{"uid":"x"}})"}) {
    auto r = answer_admission_review(parse(text), returning({}));
    ASSERT_FALSE(r.has_value()) << text;
    EXPECT_EQ(r.error().code, errc::bad_request);
  }
}

// With the real decision: the seed-like PodFilesystemSync injects into a labelled pod.
TEST(AdmissionReview, WithTheRealDecision) {
  auto pfs = parse_podfilesystemsync(parse(R"({"kind":"PodFilesystemSync",
    "metadata":{"name":"press","namespace":"web"},"spec":{
    "podSelector":{"matchLabels":{"app":"press"}},"localPath":"/data","remotePath":"b/{{ pod.metadata.name }}"}})"));
  ASSERT_TRUE(pfs.has_value()) << pfs.error().message;
  auto rv = parse(R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
    "uid":"u1","namespace":"web","operation":"CREATE","kind":{"group":"","version":"v1","kind":"Pod"},
    "object":{"metadata":{"name":"press-0","labels":{"app":"press","tidesync.io/volume-syncing":"true"}},
    "spec":{"containers":[{"name":"app","volumeMounts":[{"name":"d","mountPath":"/data"}]}],
    "volumes":[{"name":"d","emptyDir":{}}]}}}})");
  std::vector<podfilesystemsync> syncs{*pfs};
  auto r = answer_admission_review(
      rv, [&](const json::value& p, const std::string&) { return decide_injection(p, syncs, {}); });
  ASSERT_TRUE(r.has_value());
  auto patch = json::parse(*base64::decode(r->at("response")->get_string("patch")));
  ASSERT_TRUE(patch.has_value());
  auto patched = json::json_patch(*rv.at_path({"request", "object"}), *patch);
  ASSERT_TRUE(patched.has_value()) << patched.error().message;
  EXPECT_EQ(patched->at_path({"spec", "initContainers"})->as_array().size(), 2U);
}

TEST(AdmissionReview, TheWebhookConfigurationNeverBlocksUnrelatedPods) {
  webhook_registration r;
  r.service_namespace = "ops";
  r.ca_bundle_pem = "PEM";
  auto c = mutating_webhook_configuration(r);
  EXPECT_EQ(c.get_string("kind"), "MutatingWebhookConfiguration");
  EXPECT_EQ(c.at_path({"metadata", "name"})->as_string(), "tidesync-pod-injection");
  const auto& hook = c.at("webhooks")->as_array().at(0);
  EXPECT_EQ(hook.get_string("failurePolicy"), "Ignore");
  EXPECT_EQ(hook.at("timeoutSeconds")->as_int(), 5);
  EXPECT_EQ(hook.get_string("sideEffects"), "None");
  EXPECT_EQ(json::dump(*hook.at("objectSelector")),
            R"({"matchLabels":{"tidesync.io/volume-syncing":"true"}})");
  EXPECT_EQ(json::dump(*hook.at("rules")),
            R"([{"operations":["CREATE"],"apiGroups":[""],"apiVersions":["v1"],)"
            R"("resources":["pods"],"scope":"Namespaced"}])");
  EXPECT_EQ(json::dump(*hook.at("clientConfig")),
            R"({"service":{"namespace":"ops","name":"tidesync-webhook","path":"/mutate-pods",)"
            R"("port":443},"caBundle":"UEVN"})");
  r.url = "https://127.0.0.1:9443/mutate-pods";
  c = mutating_webhook_configuration(r);
  EXPECT_EQ(json::dump(*c.at("webhooks")->as_array().at(0).at("clientConfig")),
            R"({"url":"https://127.0.0.1:9443/mutate-pods","caBundle":"UEVN"})");
  // The second webhook: every pod outside kube-system, to the mounting path, also Ignore.
  const auto& volumes = c.at("webhooks")->as_array().at(1);
  EXPECT_EQ(volumes.get_string("name"), "volumes.tidesync.io");
  EXPECT_EQ(json::dump(*volumes.at("clientConfig")),
            R"({"url":"https://127.0.0.1:9443/mount-volumes","caBundle":"UEVN"})");
  EXPECT_EQ(volumes.get_string("failurePolicy"), "Ignore");
  EXPECT_EQ(volumes.get_string("sideEffects"), "NoneOnDryRun");
  EXPECT_EQ(volumes.at("objectSelector"), nullptr);
  EXPECT_NE(json::dump(*volumes.at("namespaceSelector")).find("kube-system"), std::string::npos);
}
