// The config API client (runtime/configapi/client.hpp) against the real server over a fake
// backend: the answers it maps (200/304/404 NotPublished/401/404), the long-poll waking on a
// publish, and cancel() ending a long-poll in flight at once.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "runtime/archive/bundle.hpp"
#include "runtime/configapi/client.hpp"
#include "runtime/configapi/server.hpp"
#include "runtime/http/loop.hpp"
#include "tests/support/fake_config_backend.hpp"

using namespace tidesync;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using test::fake_backend;

class configapi_client : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tidesync-configapi-client-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
    configapi::server_options o;
    o.address = "127.0.0.1:0";
    o.token = [] { return std::string("s3cret"); };
    o.scratch_dir = dir / "scratch";
    auto s = configapi::server::start(be, o);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    srv = std::move(*s);
    std::ofstream(dir / "token") << "s3cret\n";
    std::ofstream(dir / "wrong") << "nope\n";
    fs::create_directories(dir / "tree");
    std::ofstream(dir / "tree/a.conf") << "x=1\n";
    auto packed = archive::pack_bundle(dir / "tree", dir / "bundle.tar.zst",
                                       archive::pack_options{.fsync = false});
    ASSERT_TRUE(packed.has_value()) << packed.error().message;
    std::ifstream in(dir / "bundle.tar.zst", std::ios::binary);
    bundle.assign(std::istreambuf_iterator<char>(in), {});
  }
  void TearDown() override {
    loop.stop();
    srv.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::unique_ptr<configapi::client> make(const std::string& token = "token",
                                          const std::string& name = "alice") {
    return std::make_unique<configapi::client>(
        loop,
        configapi::client_options{.api = "http://127.0.0.1:" + std::to_string(srv->port()) + "/",
                                  .config = {"team", name},
                                  .token_file = (dir / token).string()});
  }

  fake_backend be;
  std::unique_ptr<configapi::server> srv;
  http::loop loop;
  fs::path dir;
  std::string bundle;
};

TEST(ConfigApiClientParse, ConfigRefAndToken) {
  auto r = configapi::parse_config_ref("team-a/alice");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->ns, "team-a");
  EXPECT_EQ(r->name, "alice");
  EXPECT_FALSE(configapi::parse_config_ref("alice"));
  EXPECT_FALSE(configapi::parse_config_ref("/alice"));
  EXPECT_FALSE(configapi::parse_config_ref("team/"));
  EXPECT_FALSE(configapi::parse_config_ref("a/b/c"));
  ::unsetenv(configapi::k_token_env);
  auto none = configapi::read_token("");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("tidesync-config-api"), std::string::npos);
  ::setenv(configapi::k_token_env, " from-env \n", 1);
  auto env = configapi::read_token("");
  ASSERT_TRUE(env);
  EXPECT_EQ(*env, "from-env");
  ::unsetenv(configapi::k_token_env);
  EXPECT_FALSE(configapi::read_token("/nonexistent/token"));
}

TEST_F(configapi_client, AnswersAreMapped) {
  auto c = make();
  auto empty = c->get_latest(std::nullopt);
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_EQ(empty->state, configapi::latest_state::not_published);

  auto put = c->put_latest("", bundle);
  ASSERT_TRUE(put) << put.error().message;
  EXPECT_EQ(put->status, 201) << put->body;
  auto conflict = c->put_latest("", bundle);
  ASSERT_TRUE(conflict);
  EXPECT_EQ(conflict->status, 409);
  EXPECT_EQ(conflict->reason(), "Conflict");

  auto got = c->get_latest(std::nullopt);
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->state, configapi::latest_state::changed);
  EXPECT_EQ(got->latest->revision, be.current->revision);
  EXPECT_EQ(got->latest->checksum, be.current->checksum);
  auto same = c->get_latest(be.current->revision, 1s);
  ASSERT_TRUE(same) << same.error().message;
  EXPECT_EQ(same->state, configapi::latest_state::unchanged);
  auto other = c->get_latest(std::string("2020-01-01T00-00-00Z"), 30s);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->state, configapi::latest_state::changed);

  auto refused = make("wrong")->get_latest(std::nullopt);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::unauthorized);
  EXPECT_EQ(refused.error().http_status, 401);
  EXPECT_NE(refused.error().message.find("tidesync-config-api"), std::string::npos);
  EXPECT_EQ(refused.error().message.find("nope"), std::string::npos) << "the token is not shown";

  auto missing = make("token", "bob")->get_latest(std::nullopt);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, errc::not_found);
}

TEST_F(configapi_client, LongPollWakesOnPublishAndCancelEndsItAtOnce) {
  auto c = make();
  // Nothing published: a long-poll with If-None-Match "" waits for the first publish.
  auto waiting = std::async(std::launch::async, [&] { return c->get_latest(std::string(), 30s); });
  {
    std::unique_lock<std::mutex> lock(be.mu);
    ASSERT_TRUE(be.cv.wait_for(lock, 10s, [&] { return be.waits_started == 1; }));
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto writer = make();
  ASSERT_EQ(writer->put_latest("", bundle)->status, 201);
  auto woke = waiting.get();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  ASSERT_TRUE(woke) << woke.error().message;
  ASSERT_EQ(woke->state, configapi::latest_state::changed);
  const std::string rev = woke->latest->revision;

  // A long-poll on the current revision, cancelled from another thread.
  auto polling = std::async(std::launch::async, [&] { return c->get_latest(rev, 30s); });
  {
    std::unique_lock<std::mutex> lock(be.mu);
    ASSERT_TRUE(be.cv.wait_for(lock, 10s, [&] { return be.waits_started == 2; }));
  }
  const auto t1 = std::chrono::steady_clock::now();
  c->cancel();
  auto cancelled = polling.get();
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 2s);
  ASSERT_FALSE(cancelled);
  EXPECT_EQ(cancelled.error().code, errc::cancelled);
  // Every later call is cancelled at once.
  auto after = c->get_latest(std::nullopt);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, errc::cancelled);
}

}  // namespace
