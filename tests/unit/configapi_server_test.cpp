// The config API's HTTP side (runtime/configapi/server.hpp) against a fake backend: bearer
// authentication, 404/201/409/413/400 answers, the upload check, and long-poll with ETags.
#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "runtime/archive/bundle.hpp"
#include "runtime/configapi/server.hpp"
#include "runtime/json/value.hpp"
#include "tests/support/fake_config_backend.hpp"

using namespace tidesync;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using test::fake_backend;

class configapi_server : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tidesync-configapi-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
    configapi::server_options o;
    o.address = "127.0.0.1:0";
    o.token = [this] { return token; };
    o.scratch_dir = dir / "scratch";
    auto s = configapi::server::start(be, o);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    srv = std::move(*s);
    fs::create_directories(dir / "tree/sub");
    std::ofstream(dir / "tree/a.conf") << "x=1\n";
    std::ofstream(dir / "tree/sub/b.conf") << "y=2\n";
    auto packed = archive::pack_bundle(dir / "tree", dir / "bundle.tar.zst");
    ASSERT_TRUE(packed.has_value()) << packed.error().message;
    checksum = packed->sha256;
    std::ifstream in(dir / "bundle.tar.zst", std::ios::binary);
    bundle.assign(std::istreambuf_iterator<char>(in), {});
  }
  void TearDown() override {
    srv.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", srv->port());
    c.set_read_timeout(30);
    return c;
  }
  httplib::Headers auth(const std::string& t = "s3cret") {
    return {{"Authorization", "Bearer " + t}};
  }
  httplib::Result put(const std::string& expected, const std::string& body,
                      const std::string& who = "team/alice") {
    return client().Put(("/v1/configs/" + who + "/latest?expectedRevision=" + expected).c_str(),
                        auth(), body, "application/zstd");
  }

  fake_backend be;
  std::unique_ptr<configapi::server> srv;
  fs::path dir;
  std::string token = "s3cret";
  std::string bundle, checksum;
};

json::value body_of(const httplib::Result& r) {
  auto v = json::parse(r->body);
  EXPECT_TRUE(v.has_value()) << r->body;
  return v ? std::move(*v) : json::value{};
}

}  // namespace

TEST(ConfigApiAuth, BearerTokenAndConstantTimeCompare) {
  EXPECT_EQ(configapi::bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(configapi::bearer_token("bearer  abc "), "abc");
  EXPECT_EQ(configapi::bearer_token("Basic abc"), "");
  EXPECT_EQ(configapi::bearer_token("Bearer "), "");
  EXPECT_TRUE(configapi::same_secret("abc", "abc"));
  EXPECT_FALSE(configapi::same_secret("abc", "abd"));
  EXPECT_FALSE(configapi::same_secret("abc", "abcd"));
  EXPECT_FALSE(configapi::same_secret("", "a"));
}

TEST_F(configapi_server, EveryRequestNeedsTheCurrentToken) {
  auto r = client().Get("/v1/configs/team/alice/latest");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(r->body.find("Authorization: Bearer"), std::string::npos) << r->body;
  r = client().Get("/v1/configs/team/alice/latest", auth("wrong"));
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->body.find("s3cret"), std::string::npos) << "never echo the token";
  r = client().Put("/v1/configs/team/alice/latest", auth("wrong"), bundle, "application/zstd");
  EXPECT_EQ(r->status, 401);
  EXPECT_FALSE(be.current.has_value()) << "nothing published without the token";
  token = "rotated";  // read per request
  EXPECT_EQ(client().Get("/v1/configs/team/alice/latest", auth())->status, 401);
  EXPECT_EQ(client().Get("/v1/configs/team/alice/latest", auth("rotated"))->status, 404);
  token = "";  // no token configured: nothing is served
  EXPECT_EQ(client().Get("/v1/configs/team/alice/latest", auth(""))->status, 401);
}

TEST_F(configapi_server, PublishThenReadThenConflict) {
  auto r = client().Get("/v1/configs/team/alice/latest", auth());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(body_of(r).get_string("reason"), "NotPublished");

  r = put("", bundle);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  auto first = archive::parse_latest(r->body);
  ASSERT_TRUE(first.has_value()) << r->body;
  EXPECT_EQ(first->checksum, checksum) << "the checksum of the bytes sent";
  EXPECT_EQ(r->get_header_value("ETag"), "\"" + first->revision + "\"");

  r = client().Get("/v1/configs/team/alice/latest", auth());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(archive::parse_latest(r->body)->revision, first->revision);

  // A second writer that read nothing (or an old revision) loses and learns the current one.
  r = put("", bundle);
  ASSERT_EQ(r->status, 409) << r->body;
  EXPECT_EQ(body_of(r).get_string("currentRevision"), first->revision);
  r = put(first->revision, bundle);
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_GT(archive::parse_latest(r->body)->revision, first->revision);
}

// A latest.json the store holds but tidesync cannot read: neither a read nor a publish gets a
// "try again" (no retry repairs it), and the message says what to do.
TEST_F(configapi_server, AnUnreadableStoreIsNotRetryable) {
  be.store_error = make_error(errc::parse_error,
                              "latest.json in s3://configs/team/alice: latest.json has no "
                              "\"checksum\" (not a pointer tidesync can read)");
  auto check = [&](const httplib::Result& r) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 500) << r->body;
    auto b = body_of(r);
    EXPECT_EQ(b.get_string("reason"), "StoreUnreadable");
    EXPECT_EQ(b.get_string("message"), be.store_error->message);
  };
  check(put("", bundle));
  check(client().Get("/v1/configs/team/alice/latest", auth()));
  EXPECT_FALSE(be.current.has_value());
}

TEST_F(configapi_server, BadUploadsAreRefusedAndNothingIsPublished) {
  be.max_bytes = 64;
  auto r = put("", bundle);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413) << r->body;
  EXPECT_NE(r->body.find("maxBundleBytes"), std::string::npos) << r->body;
  be.max_bytes = 1 << 20;
  r = put("", "this is not a tar.zst");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body_of(r).get_string("reason"), "InvalidBundle");
  r = put("", "");
  EXPECT_EQ(r->status, 400);
  r = put("../../x", bundle);
  EXPECT_EQ(r->status, 400);
  r = put("", bundle, "team/bob");
  EXPECT_EQ(r->status, 404);
  r = client().Get("/v1/configs/team/alice/latest?wait=soon", auth());
  EXPECT_EQ(r->status, 400);
  EXPECT_FALSE(be.current.has_value());
  std::error_code ec;
  EXPECT_TRUE(fs::is_empty(dir / "scratch", ec)) << "uploads are not left behind";
}

TEST_F(configapi_server, LongPollAnswersWhenANewRevisionIsPublished) {
  auto r = put("", bundle);
  ASSERT_EQ(r->status, 201);
  auto rev = archive::parse_latest(r->body)->revision;
  httplib::Headers h = auth();
  h.emplace("If-None-Match", "\"" + rev + "\"");
  // Unchanged, no wait: 304 at once.
  r = client().Get("/v1/configs/team/alice/latest", h);
  EXPECT_EQ(r->status, 304);
  // Unchanged, wait 20 s: answered as soon as another client publishes.
  int polled_status = 0;
  std::string polled_body;
  int before = be.waits_started;
  std::thread poller([&] {
    auto p = client().Get("/v1/configs/team/alice/latest?wait=20", h);
    if (p) {
      polled_status = p->status;
      polled_body = p->body;
    }
  });
  {
    std::unique_lock<std::mutex> lock(be.mu);
    ASSERT_TRUE(be.cv.wait_for(lock, 10s, [&] { return be.waits_started > before; }));
  }
  auto t0 = std::chrono::steady_clock::now();
  r = put(rev, bundle);
  ASSERT_EQ(r->status, 201);
  poller.join();
  EXPECT_EQ(polled_status, 200);
  auto seen = archive::parse_latest(polled_body);
  ASSERT_TRUE(seen.has_value()) << polled_body;
  EXPECT_NE(seen->revision, rev);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}
