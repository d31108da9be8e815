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
