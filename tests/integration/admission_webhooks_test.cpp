// The embedded API server calls mutating webhooks on create (runtime/apiserver/admission.hpp):
// over HTTPS trusting only the configuration's caBundle, only for matching rules and
// objectSelector, applying the JSONPatch, failing the create on a denial, and following
// failurePolicy when the webhook cannot be called. The webhook here is our own HTTPS server
// (runtime/webhook/server.hpp) on 127.0.0.1.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>

#include "config/admission.hpp"
#include "runtime/apiserver/admission.hpp"
#include "runtime/apiserver/store.hpp"
#include "runtime/base64.hpp"
#include "runtime/webhook/certs.hpp"
#include "runtime/webhook/server.hpp"

using namespace tidesync;
using namespace std::chrono_literals;

namespace {

json::value parse(const std::string& text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? std::move(*v) : json::value{};
}

struct world {
  apiserver::store st;
  webhook::key_pair_pem ca, serving;
  std::unique_ptr<webhook::server> server;
  std::atomic<int> calls{0};
  std::atomic<bool> saw_dry_run{false};  // request.dryRun of the last call
  std::string mode = "patch";            // patch | deny

  world() {
    auto now = std::chrono::system_clock::now() - 1min;
    ca = *webhook::make_ca("test-ca", now, 24h);
    serving = *webhook::make_serving_cert(ca, {"127.0.0.1"}, now, 24h);
    webhook::server_options o;
    o.address = "127.0.0.1:0";
    o.tls = serving;
    auto s = webhook::server::start(
        [this](const json::value& review) -> expected<json::value> {
          ++calls;
          const auto* dr = review.at_path({"request", "dryRun"});
          saw_dry_run = dr != nullptr && dr->is_bool() && dr->as_bool();
          return config::answer_admission_review(review, [this](const json::value&,
                                                                const std::string& ns) {
            config::injection_decision d;
            if (mode == "deny") {
              d.what = config::injection_decision::kind::refuse;
              d.message = "no pods in " + ns + " today";
              return d;
            }
            d.what = config::injection_decision::kind::patch;
            d.patch =
                parse(R"([{"op":"add","path":"/metadata/annotations","value":{"seen":"yes"}}])");
            return d;
          });
        },
        o);
    EXPECT_TRUE(s.has_value()) << s.error().message;
    server = std::move(*s);
    for (const char* ns : {"web"})
      st.create(*st.find_type("", "v1", "namespaces"), "",
                parse(std::string(R"({"metadata":{"name":")") + ns + R"("}})"));
  }

  void register_hook(config::webhook_registration r, const std::string& failure_policy = "") {
    if (r.url.empty())
      r.url = "https://127.0.0.1:" + std::to_string(server->port()) + "/mutate-pods";
    if (r.ca_bundle_pem.empty()) r.ca_bundle_pem = ca.cert;
    auto c = config::mutating_webhook_configuration(r);
    if (!failure_policy.empty())
      c.as_object()["webhooks"].as_array()[0].as_object().set("failurePolicy", failure_policy);
    auto t = *st.find_type("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations");
    ASSERT_TRUE(st.create(t, "", c).has_value());
  }

  expected<json::value> create_pod(const std::string& labels,
                                   apiserver::write_mode mode = apiserver::write_mode::commit) {
    auto t = *st.find_type("", "v1", "pods");
    return apiserver::admit_create(
        st, t, "web",
        parse(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":)" + labels +
              R"(},"spec":{"containers":[{"name":"a","image":"x"}]}})"),
        mode);
  }
};

const std::string k_labelled = R"({"tidesync.io/volume-syncing":"true"})";

}  // namespace

TEST(AdmissionWebhooks, MatchingPodsArePatchedOthersAreNotSent) {
  world w;
  auto none = w.create_pod(k_labelled);  // nothing registered yet
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(w.calls, 0);
  w.register_hook({});
  auto patched = w.create_pod(k_labelled);
  ASSERT_TRUE(patched.has_value()) << patched.error().message;
  EXPECT_EQ(patched->at_path({"metadata", "annotations"})->get_string("seen"), "yes");
  EXPECT_EQ(w.calls, 1);
  auto other = w.create_pod(R"({"app":"x"})");
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->at_path({"metadata", "annotations"}), nullptr);
  EXPECT_EQ(w.calls, 1) << "the objectSelector keeps unrelated pods away from the webhook";
  // Not a pod: the rules do not match.
  auto cm =
      apiserver::admit_create(w.st, *w.st.find_type("", "v1", "configmaps"), "web",
                              parse(R"({"metadata":{"name":"c","labels":)" + k_labelled + "}}"));
  ASSERT_TRUE(cm.has_value());
  EXPECT_EQ(w.calls, 1);
}

TEST(AdmissionWebhooks, ADenialFailsTheCreateWithTheWebhooksMessage) {
  world w;
  w.mode = "deny";
  w.register_hook({});
  auto r = w.create_pod(k_labelled);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().http_status, 403);
  EXPECT_EQ(r.error().message,
            "admission webhook \"pods.tidesync.io\" denied the request: tidesync: no pods in web "
            "today");
}

TEST(AdmissionWebhooks, UnreachableOrUntrustedWebhooksFollowTheFailurePolicy) {
  {
    // Our own configuration says Ignore: the pod is created untouched.
    world w;
    config::webhook_registration r;
    r.url = "https://127.0.0.1:1/mutate-pods";
    w.register_hook(r);
    auto p = w.create_pod(k_labelled);
    ASSERT_TRUE(p.has_value()) << p.error().message;
    EXPECT_EQ(p->at_path({"metadata", "annotations"}), nullptr);
  }
  {
    // Fail: the create fails and says which webhook.
    world w;
    config::webhook_registration r;
    r.url = "https://127.0.0.1:1/mutate-pods";
    w.register_hook(r, "Fail");
    auto p = w.create_pod(k_labelled);
    ASSERT_FALSE(p.has_value());
    EXPECT_EQ(p.error().http_status, 500);
    EXPECT_NE(p.error().message.find("failed calling webhook \"pods.tidesync.io\""),
              std::string::npos);
  }
  {
    // A caBundle of another CA: TLS verification fails, nothing reaches the handler.
    world w;
    config::webhook_registration r;
    r.ca_bundle_pem = webhook::make_ca("other", std::chrono::system_clock::now() - 1min, 24h)->cert;
    w.register_hook(r, "Fail");
    auto p = w.create_pod(k_labelled);
    ASSERT_FALSE(p.has_value());
    EXPECT_EQ(w.calls, 0);
  }
  {
    // A service reference cannot be routed in the simulation: a failed call.
    world w;
    config::webhook_registration r;
    r.url.clear();
    auto c = config::mutating_webhook_configuration(r);
    c.as_object()["webhooks"].as_array()[0].as_object().set("failurePolicy", "Fail");
    auto t = *w.st.find_type("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations");
    ASSERT_TRUE(w.st.create(t, "", c).has_value());
    auto p = w.create_pod(k_labelled);
    ASSERT_FALSE(p.has_value());
    EXPECT_NE(p.error().message.find("clientConfig.url"), std::string::npos);
  }
}

// A dry-run create reaches a webhook whose sideEffects allow it (ours: None), which is told
// it is a dry run and whose patch applies as on a real create; one that declares side effects
// is not called and the create fails with 400, as kube-apiserver does.
TEST(AdmissionWebhooks, ADryRunCallsOnlyWebhooksWithoutSideEffectsAndSaysItIsOne) {
  world w;
  w.register_hook({});
  auto dry = w.create_pod(k_labelled, apiserver::write_mode::dry_run);
  ASSERT_TRUE(dry.has_value()) << dry.error().message;
  EXPECT_EQ(w.calls, 1);
  EXPECT_TRUE(w.saw_dry_run) << "request.dryRun must be true on a dry run";
  EXPECT_EQ(dry->at_path({"metadata", "annotations"})->get_string("seen"), "yes");
  auto real = w.create_pod(k_labelled);
  ASSERT_TRUE(real.has_value()) << real.error().message;
  EXPECT_EQ(w.calls, 2);
  EXPECT_FALSE(w.saw_dry_run);

  world some;
  config::webhook_registration r;
  r.url = "https://127.0.0.1:" + std::to_string(some.server->port()) + "/mutate-pods";
  r.ca_bundle_pem = some.ca.cert;
  auto c = config::mutating_webhook_configuration(r);
  c.as_object()["webhooks"].as_array()[0].as_object().set("sideEffects", "Some");
  auto t =
      *some.st.find_type("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations");
  ASSERT_TRUE(some.st.create(t, "", c).has_value());
  auto refused = some.create_pod(k_labelled, apiserver::write_mode::dry_run);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().http_status, 400);
  EXPECT_EQ(refused.error().message,
            "admission webhook \"pods.tidesync.io\" does not support dry run");
  EXPECT_EQ(some.calls, 0);
  ASSERT_TRUE(some.create_pod(k_labelled).has_value()) << "a real create still calls it";
  EXPECT_EQ(some.calls, 1);
}
