// The admission webhook's HTTPS server (runtime/webhook/server.hpp) on 127.0.0.1 with a CA and
// serving certificate made by certs.hpp: a client that trusts the CA gets the handler's
// answer; bad bodies are 400; a client that trusts another CA cannot connect; a key that does
// not match the certificate is refused at start.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <fstream>
#include <string>

#include "runtime/json/value.hpp"
#include "runtime/webhook/certs.hpp"
#include "runtime/webhook/server.hpp"
#include "tests/support/files.hpp"

using namespace tidesync;
using namespace std::chrono_literals;

namespace {

struct tls_world {
  webhook::key_pair_pem ca, serving, other_ca;
  tls_world() {
    auto now = std::chrono::system_clock::now() - 5min;
    ca = *webhook::make_ca("tidesync-webhook-ca", now, 24h);
    serving = *webhook::make_serving_cert(ca, {"localhost"}, now, 24h);
    other_ca = *webhook::make_ca("tidesync-webhook-ca", now, 24h);
  }
};

}  // namespace

TEST(WebhookServer, AnswersReviewsOverTlsTrustedThroughItsCa) {
  tls_world w;
  webhook::server_options o;
  o.address = "127.0.0.1:0";
  o.tls = w.serving;
  int calls = 0;
  auto s = webhook::server::start(
      [&](const json::value& review) -> expected<json::value> {
        ++calls;
        if (review.get_string("kind") != "AdmissionReview")
          return make_error(errc::bad_request, "not an AdmissionReview");
        return json::value(json::object{{"kind", "AdmissionReview"},
                                        {"response", json::object{{"allowed", true}}}});
      },
      o);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  test::temp_dir dir("tidesync-webhook-test");
  test::write_file(dir.path() / "ca.pem", w.ca.cert);
  test::write_file(dir.path() / "other.pem", w.other_ca.cert);

  httplib::SSLClient c("localhost", (*s)->port());
  c.set_ca_cert_path((dir.path() / "ca.pem").c_str());
  c.enable_server_certificate_verification(true);
  c.set_connection_timeout(5);
  auto r = c.Post("/mutate-pods", R"({"kind":"AdmissionReview","request":{"uid":"u"}})",
                  "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("\"allowed\":true"), std::string::npos) << r->body;
  r = c.Post("/mutate-pods", R"({"kind":"Pod"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("not an AdmissionReview"), std::string::npos) << r->body;
  r = c.Post("/mutate-pods", "not json", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = c.Post("/elsewhere", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(calls, 2);

  // A client that trusts another CA (of the same name) refuses the server.
  httplib::SSLClient stranger("localhost", (*s)->port());
  stranger.set_ca_cert_path((dir.path() / "other.pem").c_str());
  stranger.enable_server_certificate_verification(true);
  stranger.set_connection_timeout(5);
  EXPECT_FALSE(stranger.Post("/mutate-pods", "{}", "application/json"));
  EXPECT_EQ(calls, 2);
}

TEST(WebhookServer, AKeyThatDoesNotMatchOrDoesNotParseIsRefused) {
  tls_world w;
  webhook::server_options o;
  o.address = "127.0.0.1:0";
  o.tls = {w.serving.cert, w.ca.key};
  auto s = webhook::server::start([](const json::value&) { return json::value{}; }, o);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("does not match"), std::string::npos) << s.error().message;
  o.tls = {"garbage", w.serving.key};
  s = webhook::server::start([](const json::value&) { return json::value{}; }, o);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("does not parse"), std::string::npos) << s.error().message;
}

// Rotation: after set_tls, new connections get the new certificate (signed by another CA), so a
// client trusting only the old CA is refused and one trusting the new CA is served; an IP
// address in the names is an iPAddress entry that a client connecting to 127.0.0.1 verifies.
// Extra POST routes get the body and the Authorization header.
TEST(WebhookServer, RotatesItsCertificateAndServesExtraRoutes) {
  tls_world w;
  auto now = std::chrono::system_clock::now() - 5min;
  auto by_ip = webhook::make_serving_cert(w.ca, {"127.0.0.1"}, now, 24h);
  ASSERT_TRUE(by_ip.has_value()) << by_ip.error().message;
  auto info = webhook::inspect_cert(by_ip->cert);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->dns_names, std::vector<std::string>{"127.0.0.1"});
  webhook::server_options o;
  o.address = "127.0.0.1:0";
  o.tls = *by_ip;
  std::string seen_auth;
  o.posts["/report"] = [&](const json::value& body, const std::string& auth) {
    seen_auth = auth;
    return webhook::post_answer{
        202, json::value(json::object{{"got", std::string(body.get_string("x"))}})};
  };
  auto s = webhook::server::start([](const json::value&) { return json::value{}; }, o);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  test::temp_dir dir("tidesync-webhook-test");
  test::write_file(dir.path() / "ca.pem", w.ca.cert);
  test::write_file(dir.path() / "other.pem", w.other_ca.cert);
  auto client = [&](const char* ca) {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", (*s)->port());
    c->set_ca_cert_path((dir.path() / ca).c_str());
    c->enable_server_certificate_verification(true);
    c->set_connection_timeout(5);
    return c;
  };
  auto r = client("ca.pem")->Post("/report", httplib::Headers{{"Authorization", "Bearer t"}},
                                  R"({"x":"y"})", "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->body, "{\"got\":\"y\"}\n");
  EXPECT_EQ(seen_auth, "Bearer t");
  EXPECT_FALSE(client("other.pem")->Post("/report", "{}", "application/json"));

  auto rotated = webhook::make_serving_cert(w.other_ca, {"127.0.0.1"}, now, 24h);
  ASSERT_TRUE(rotated.has_value());
  ASSERT_TRUE((*s)->set_tls(*rotated).has_value());
  EXPECT_FALSE(client("ca.pem")->Post("/report", "{}", "application/json"));
  r = client("other.pem")->Post("/report", R"({"x":"z"})", "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 202);
  // A pair that does not match is refused and the served one stays.
  EXPECT_FALSE((*s)->set_tls({rotated->cert, w.ca.key}).has_value());
  EXPECT_TRUE(client("other.pem")->Post("/report", "{}", "application/json"));
}
