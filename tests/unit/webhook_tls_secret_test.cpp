// The Secret tidesync-webhook-tls as data (runtime/webhook/tls_secret.hpp): what the rotation
// loop decides at each point of a certificate's life, and the progress tokens.
#include <gtest/gtest.h>

#include <chrono>

#include "runtime/webhook/tls_secret.hpp"

using namespace tidesync;
using namespace tidesync::webhook;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> k_names = service_dns_names("tidesync-webhook", "tidesync-system");

std::chrono::system_clock::time_point t0() {
  return std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
}

tls_material fresh() {
  auto p = plan_tls({}, k_names, t0());
  auto m = carry_out({}, p, k_names, t0());
  EXPECT_TRUE(m.has_value()) << m.error().message;
  return m ? *m : tls_material{};
}

}  // namespace

TEST(WebhookTlsSecret, AnEmptySecretGetsEverything) {
  auto p = plan_tls({}, k_names, t0());
  EXPECT_EQ(p.action, tls_action::new_ca);
  EXPECT_TRUE(p.new_report_key);
  auto m = fresh();
  EXPECT_EQ(m.report_key.size(), 64u);
  auto again = plan_tls(m, k_names, t0());
  EXPECT_EQ(again.action, tls_action::keep) << again.reason;
  EXPECT_FALSE(again.new_report_key);
  // The data round-trips through the Secret's keys.
  auto back = from_secret_data(to_secret_data(m));
  EXPECT_EQ(back.ca.cert, m.ca.cert);
  EXPECT_EQ(back.serving.key, m.serving.key);
  EXPECT_EQ(back.report_key, m.report_key);
  EXPECT_EQ(to_secret_data(m).count("tls.crt"), 1u);
}

TEST(WebhookTlsSecret, TheServingCertificateIsRenewedUnderTheSameCa) {
  auto m = fresh();
  // 30 days before the serving certificate's year ends.
  auto late = t0() + 24h * 336;
  auto p = plan_tls(m, k_names, late);
  EXPECT_EQ(p.action, tls_action::new_serving);
  EXPECT_NE(p.reason.find("expires"), std::string::npos);
  auto next = carry_out(m, p, k_names, late);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->ca.cert, m.ca.cert);  // the caBundle stays
  EXPECT_NE(next->serving.cert, m.serving.cert);
  EXPECT_EQ(next->report_key, m.report_key);  // granted tokens stay valid
  EXPECT_EQ(plan_tls(*next, k_names, late).action, tls_action::keep);
  // Other names (another namespace or an IP for the simulation): a new serving certificate.
  std::vector<std::string> other = {"127.0.0.1"};
  EXPECT_EQ(plan_tls(m, other, t0()).action, tls_action::new_serving);
  // Not signed by the CA (someone replaced it): new serving certificate.
  auto stranger = fresh();
  auto mixed = m;
  mixed.serving = stranger.serving;
  EXPECT_EQ(plan_tls(mixed, k_names, t0()).action, tls_action::new_serving);
}

TEST(WebhookTlsSecret, TheCaIsReplacedBeforeItExpiresOrWhenBroken) {
  auto m = fresh();
  EXPECT_EQ(plan_tls(m, k_names, t0() + 24h * 3640).action, tls_action::new_ca);
  auto broken = m;
  broken.ca.cert = "garbage";
  EXPECT_EQ(plan_tls(broken, k_names, t0()).action, tls_action::new_ca);
  auto not_ca = m;
  not_ca.ca = m.serving;
  EXPECT_EQ(plan_tls(not_ca, k_names, t0()).action, tls_action::new_ca);
  auto bad_key = m;
  bad_key.report_key = "short";
  auto p = plan_tls(bad_key, k_names, t0());
  EXPECT_EQ(p.action, tls_action::keep);
  EXPECT_TRUE(p.new_report_key);
}

TEST(WebhookTlsSecret, ReportTokensAreBoundToNamespaceSyncAndKey) {
  auto key = random_hex(32);
  auto token = report_token(key, "web", "press", "r1d");
  EXPECT_EQ(check_report_token(key, token, "web", "press"), std::optional<std::string>("r1d"));
  EXPECT_FALSE(check_report_token(key, token, "web2", "press"));
  EXPECT_FALSE(check_report_token(key, token, "web", "other"));
  EXPECT_FALSE(check_report_token(random_hex(32), token, "web", "press"));
  std::string tampered = token;
  tampered.back() = tampered.back() == '0' ? '1' : '0';
  EXPECT_FALSE(check_report_token(key, tampered, "web", "press"));
  // Another pod's id with this pod's MAC.
  EXPECT_FALSE(check_report_token(key, "r2d" + token.substr(3), "web", "press"));
  EXPECT_FALSE(check_report_token(key, "", "web", "press"));
  EXPECT_FALSE(check_report_token("", token, "web", "press"));
  EXPECT_NE(random_hex(8), random_hex(8));
}

TEST(WebhookTlsSecret, TheBundleKeepsThePreviousCaAfterACaRotation) {
  auto m = fresh();
  EXPECT_EQ(ca_bundle(m, t0()), m.ca.cert);
  auto when = t0() + 24h * 3640;
  auto p = plan_tls(m, k_names, when);
  ASSERT_EQ(p.action, tls_action::new_ca);
  auto next = carry_out(m, p, k_names, when);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->previous_ca, m.ca.cert);
  auto bundle = ca_bundle(*next, when);
  EXPECT_EQ(bundle.find(next->ca.cert), 0u);
  EXPECT_NE(bundle.find(m.ca.cert), std::string::npos);
  // Once the previous CA has expired, it leaves the bundle.
  EXPECT_EQ(ca_bundle(*next, t0() + 24h * 3660), next->ca.cert);
  EXPECT_EQ(from_secret_data(to_secret_data(*next)).previous_ca, m.ca.cert);
}
