// `tidesync agent restore|sidecar|health` (the PodFilesystemSync agents) end to end: the real
// binary (TIDESYNC_BINARY) against a real s3rver (scripts/s3rver.sh), the remote configured
// by REMOTE_* as the webhook's injected containers do. Waits are conditions with deadlines.
//
// The test runs as root in CI: restores into a local directory pass --force-delete-local-dir
// there (the seed's safety valve refuses root-owned targets otherwise).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/http/loop.hpp"
#include "runtime/transfer/s3_client.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/s3rver.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using env_list = std::vector<std::pair<std::string, std::string>>;

const std::string k_binary = TIDESYNC_BINARY;
const std::string k_bucket = "agent-pfs-test";

void write(const fs::path& p, const std::string& data) {
  tidesync::test::write_file(p, data);
}
std::string read(const fs::path& p) {
  return tidesync::test::read_file(p);
}

std::vector<std::string> with_root_override(std::vector<std::string> argv) {
  if (::geteuid() == 0) argv.emplace_back("--force-delete-local-dir");
  return argv;
}

class agent_pfs_test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { s3_.start("agentpfs", {k_bucket}); }
  static void TearDownTestSuite() { s3_.stop(); }
  void SetUp() override {
    TIDESYNC_REQUIRE_S3RVER_SUITE(s3_);
    char tmpl[] = "/var/tmp/tidesync-agentpfs-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    local_ = dir_ / "volume";
    fs::create_directories(local_);
    cfg_.endpoint = s3_.endpoint();
    cfg_.access_key_id = "S3RVER";
    cfg_.secret_access_key = "S3RVER";
    s3_client_ = std::make_unique<tidesync::transfer::s3_client>(loop_, cfg_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  static env_list env() {
    return {{"REMOTE_TYPE", "s3"},
            {"REMOTE_PROVIDER", "Other"},
            {"REMOTE_ACCESS_KEY_ID", "S3RVER"},
            {"REMOTE_SECRET_ACCESS_KEY", "S3RVER"},
            {"REMOTE_ENDPOINT", s3_.endpoint()}};
  }
  static tidesync::test::run_result tide(std::vector<std::string> args) {
    args.insert(args.begin(), k_binary);
    return tidesync::test::run(args, env(), 60s);
  }
  bool exists(const std::string& key) {
    return static_cast<bool>(s3_client_->head_sync(k_bucket, key));
  }
  void put(const std::string& key, const std::string& body) {
    ASSERT_TRUE(s3_client_->put_sync(k_bucket, key, body));
  }

  fs::path dir_, local_;
  tidesync::transfer::s3_config cfg_;
  tidesync::http::loop loop_;
  std::unique_ptr<tidesync::transfer::s3_client> s3_client_;
  static inline tidesync::test::s3rver_suite s3_;
};

TEST_F(agent_pfs_test, restore_brings_the_remote_files_and_no_delete_keeps_local_ones) {
  put("restore/a.txt", "alpha");
  put("restore/sub/b.txt", "beta");
  put("restore/.tidesync-initialized", "marker");
  write(local_ / "local-only.txt", "mine");
  auto copy = tide({"agent", "restore", "--local", local_.string(), "--remote",
                    k_bucket + "/restore", "--no-delete"});
  ASSERT_EQ(copy.status, 0) << copy.output;
  EXPECT_EQ(read(local_ / "a.txt"), "alpha");
  EXPECT_EQ(read(local_ / "sub" / "b.txt"), "beta");
  EXPECT_TRUE(fs::exists(local_ / "local-only.txt")) << "--no-delete never deletes";
  EXPECT_FALSE(fs::exists(local_ / ".tidesync-initialized")) << "the marker stays remote";

  auto sync = tide(with_root_override(
      {"agent", "restore", "--local", local_.string(), "--remote", k_bucket + "/restore"}));
  ASSERT_EQ(sync.status, 0) << sync.output;
  EXPECT_FALSE(fs::exists(local_ / "local-only.txt")) << sync.output;
  EXPECT_EQ(read(local_ / "a.txt"), "alpha");
}

TEST_F(agent_pfs_test, restore_skips_the_first_run_without_a_marker_and_an_empty_remote_is_ok) {
  put("unmarked/a.txt", "alpha");
  auto skip = tide({"agent", "restore", "--local", local_.string(), "--remote",
                    k_bucket + "/unmarked", "--skip-first-run"});
  ASSERT_EQ(skip.status, 0) << skip.output;
  EXPECT_NE(skip.output.find("skipping the first restore"), std::string::npos) << skip.output;
  EXPECT_FALSE(fs::exists(local_ / "a.txt"));

  auto fresh = tide(
      {"agent", "restore", "--local", local_.string(), "--remote", k_bucket + "/nothing/here"});
  ASSERT_EQ(fresh.status, 0) << fresh.output;
  EXPECT_NE(fresh.output.find("a new volume"), std::string::npos) << fresh.output;
}

TEST_F(agent_pfs_test, bad_usage_exits_2_without_secrets) {
  auto none = tide({"agent", "restore", "--local", local_.string()});
  EXPECT_EQ(none.status, 2) << none.output;
  auto colon = tide({"agent", "restore", "--local", local_.string(), "--remote", "x:b/p"});
  EXPECT_EQ(colon.status, 2) << colon.output;
  auto method = tide({"agent", "sidecar", "--local", local_.string(), "--remote", k_bucket + "/x",
                      "--method", "inotify"});
  EXPECT_EQ(method.status, 2) << method.output;
  auto enc = tide({"agent", "sidecar", "--local", local_.string(), "--remote", k_bucket + "/x",
                   "--method", "scheduler", "--schedule", "@every 1m", "--encrypt"});
  EXPECT_EQ(enc.status, 2) << enc.output;
  EXPECT_NE(enc.output.find("not built yet"), std::string::npos) << enc.output;
  EXPECT_EQ(enc.output.find("S3RVER"), std::string::npos) << enc.output;
}

TEST_F(agent_pfs_test, sidecar_syncs_on_schedule_writes_the_marker_and_syncs_on_sigterm) {
  write(local_ / "before.txt", "before");
  tidesync::test::child c({k_binary, "agent", "sidecar", "--local", local_.string(), "--remote",
                           k_bucket + "/side", "--method", "scheduler", "--schedule", "@every 1s"},
                          env());
  ASSERT_FALSE(c.read_until([](const std::string& l) {
                  return l.find("next run at") != std::string::npos;
                }).empty())
      << c.output();
  write(local_ / "after.txt", "after");
  EXPECT_TRUE(tidesync::test::eventually([&] { return exists("side/after.txt"); }, 20s))
      << c.output();
  EXPECT_TRUE(tidesync::test::eventually([&] { return exists("side/.tidesync-initialized"); }, 20s))
      << c.output();
  write(local_ / "last.txt", "last");
  EXPECT_EQ(c.stop(30s), 0) << c.output();
  c.read_until([](const std::string&) { return false; }, 5s);  // the rest, up to EOF
  EXPECT_NE(c.output().find("one last sync before exit"), std::string::npos) << c.output();
  EXPECT_TRUE(exists("side/last.txt")) << c.output();
  EXPECT_TRUE(exists("side/.tidesync-initialized")) << "sync must not delete the marker";

  // A restore of that path now finds the marker: --skip-first-run does not skip.
  fs::path other = dir_ / "other";
  auto r = tide({"agent", "restore", "--local", other.string(), "--remote", k_bucket + "/side",
                 "--skip-first-run"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read(other / "last.txt"), "last");
}

TEST_F(agent_pfs_test, sidecar_no_delete_keeps_a_remote_file_deleted_locally) {
  write(local_ / "keep.txt", "keep");
  tidesync::test::child c(
      {k_binary, "agent", "sidecar", "--local", local_.string(), "--remote", k_bucket + "/nodel",
       "--method", "scheduler", "--schedule", "@every 1s", "--no-delete"},
      env());
  ASSERT_TRUE(tidesync::test::eventually([&] { return exists("nodel/keep.txt"); }, 20s))
      << c.output();
  fs::remove(local_ / "keep.txt");
  write(local_ / "later.txt", "later");
  // A run after the deletion: it uploads later.txt.
  ASSERT_TRUE(tidesync::test::eventually([&] { return exists("nodel/later.txt"); }, 20s))
      << c.output();
  EXPECT_EQ(c.stop(30s), 0) << c.output();
  EXPECT_TRUE(exists("nodel/keep.txt")) << c.output();
}

TEST_F(agent_pfs_test, health_flips_after_n_failures_and_back_after_a_success) {
  const fs::path health = dir_ / "health";
  auto healthy = [&] {
    return tide({"agent", "health", "--health-file", health.string()}).status == 0;
  };
  EXPECT_TRUE(healthy()) << "no health file yet is healthy";
  // A regular file where the directory should be: every listing fails.
  const fs::path broken = dir_ / "broken";
  write(broken, "not a directory");
  tidesync::test::child c({k_binary, "agent", "sidecar", "--local", broken.string(), "--remote",
                           k_bucket + "/health", "--method", "scheduler", "--schedule", "@every 1s",
                           "--unhealthy-after", "2", "--health-file", health.string()},
                          env());
  EXPECT_TRUE(tidesync::test::eventually([&] { return !healthy(); }, 20s)) << c.output();
  EXPECT_FALSE(c.read_until([](const std::string& l) {
                  return l.find("failed syncs in a row") != std::string::npos;
                }).empty())
      << c.output();
  fs::remove(broken);
  write(broken / "ok.txt", "ok");
  EXPECT_TRUE(tidesync::test::eventually([&] { return healthy(); }, 20s)) << c.output();
  EXPECT_TRUE(exists("health/ok.txt"));
  c.stop(30s);
}

TEST_F(agent_pfs_test, fsnotify_is_honest_about_running_on_a_schedule) {
  write(local_ / "f.txt", "f");
  tidesync::test::child c(
      {k_binary, "agent", "sidecar", "--local", local_.string(), "--remote", k_bucket + "/fsn",
       "--method", "fsnotify", "--max-one-sync-per-minutes", "5"},
      env());
  ASSERT_FALSE(c.read_until([](const std::string& l) {
                  return l.find("next run at") != std::string::npos;
                }).empty())
      << c.output();
  EXPECT_NE(c.output().find("fsnotify is not built yet"), std::string::npos) << c.output();
  EXPECT_NE(c.output().find("@every 5m"), std::string::npos) << c.output();
  EXPECT_EQ(c.stop(30s), 0) << c.output();
  EXPECT_TRUE(exists("fsn/f.txt")) << "the last sync on SIGTERM";
}

}  // namespace

TEST(agent_pfs_closed_port_test, an_unreachable_endpoint_makes_the_sidecar_unhealthy) {
  char tmpl[] = "/var/tmp/tidesync-agentpfs-port-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir = tmpl;
  write(dir / "volume" / "a.txt", "a");
  const fs::path health = dir / "health";
  // Port 1 on 127.0.0.1: nothing listens there, every request is refused.
  const env_list env = {{"REMOTE_TYPE", "s3"},
                        {"REMOTE_ACCESS_KEY_ID", "id"},
                        {"REMOTE_SECRET_ACCESS_KEY", "secret-value"},
                        {"REMOTE_ENDPOINT", "http://127.0.0.1:1"}};
  tidesync::test::child c({k_binary, "agent", "sidecar", "--local", (dir / "volume").string(),
                           "--remote", "bucket/path", "--method", "scheduler", "--schedule",
                           "@every 1s", "--unhealthy-after", "1", "--health-file", health.string()},
                          env);
  auto unhealthy = [&] {
    return tidesync::test::run({k_binary, "agent", "health", "--health-file", health.string()})
               .status == 1;
  };
  EXPECT_TRUE(tidesync::test::eventually(unhealthy, 60s)) << c.output();
  c.stop(30s);
  c.read_until([](const std::string&) { return false; }, 5s);
  EXPECT_EQ(c.output().find("secret-value"), std::string::npos) << "never print secrets";
  std::error_code ec;
  fs::remove_all(dir, ec);
}
