// `tidesync agent restore|sidecar|health` (the PodFilesystemSync agents) end to end: the real
// binary (TIDESYNC_BINARY) against a real s3rver (scripts/s3rver.sh), the remote configured
// by REMOTE_* as the webhook's injected containers do; --encrypt checked against stock rclone;
// progress reports received by a loopback HTTP(S) server. Waits are conditions with deadlines.
//
// The test runs as root in CI: restores into a local directory pass --force-delete-local-dir
// there (the seed's safety valve refuses root-owned targets otherwise).
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/transfer/crypt.hpp"
#include "runtime/transfer/s3_client.hpp"
#include "runtime/webhook/certs.hpp"
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
  auto interval = tide({"agent", "sidecar", "--local", local_.string(), "--remote", k_bucket + "/x",
                        "--method", "fsnotify", "--min-interval", "2 s"});
  EXPECT_EQ(interval.status, 2) << interval.output;
  EXPECT_NE(interval.output.find("--min-interval"), std::string::npos) << interval.output;
  auto sched_interval =
      tide({"agent", "sidecar", "--local", local_.string(), "--remote", k_bucket + "/x", "--method",
            "scheduler", "--schedule", "@every 1m", "--min-interval", "2s"});
  EXPECT_EQ(sched_interval.status, 2) << sched_interval.output;
  // --encrypt without the Secret's keys: exit 2 naming both keys, for both agents.
  for (const char* agent : {"sidecar", "restore"}) {
    std::vector<std::string> args{"agent",    agent,           "--local",  local_.string(),
                                  "--remote", k_bucket + "/x", "--encrypt"};
    if (std::string(agent) == "sidecar")
      args.insert(args.end(), {"--method", "scheduler", "--schedule", "@every 1m"});
    auto enc = tide(args);
    EXPECT_EQ(enc.status, 2) << enc.output;
    EXPECT_NE(enc.output.find("RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD and "
                              "RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD2 not set"),
              std::string::npos)
        << enc.output;
    EXPECT_NE(enc.output.find("automaticEncryption"), std::string::npos) << enc.output;
    EXPECT_EQ(enc.output.find("S3RVER"), std::string::npos) << enc.output;
  }
  // One key missing is named alone; a value that is not rclone-obscured is refused, unprinted.
  auto env2 = env();
  env2.emplace_back("RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD",
                    tidesync::transfer::crypt::obscure("pw"));
  auto one = tidesync::test::run({k_binary, "agent", "restore", "--local", local_.string(),
                                  "--remote", k_bucket + "/x", "--encrypt"},
                                 env2, 60s);
  EXPECT_EQ(one.status, 2) << one.output;
  EXPECT_NE(one.output.find("RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD2 not set"), std::string::npos)
      << one.output;
  env2.emplace_back("RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD2", "plain text, not obscured!");
  auto plain = tidesync::test::run({k_binary, "agent", "restore", "--local", local_.string(),
                                    "--remote", k_bucket + "/x", "--encrypt"},
                                   env2, 60s);
  EXPECT_EQ(plain.status, 2) << plain.output;
  EXPECT_NE(plain.output.find("not an rclone-obscured value"), std::string::npos) << plain.output;
  EXPECT_EQ(plain.output.find("plain text, not obscured!"), std::string::npos) << plain.output;
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

// --method fsnotify: a sync at start, then one after each change, never two starts closer than
// --min-interval. The pre-existing file goes up at start; a file written after that first sync
// cannot go up before start + interval, and one written after the second sync not before
// start + 2 * interval (the test's clock starts before the agent's, so these are lower bounds).
TEST_F(agent_pfs_test, fsnotify_syncs_after_changes_at_most_once_per_interval) {
  write(local_ / "pre.txt", "pre");
  const auto started = std::chrono::steady_clock::now();
  tidesync::test::child c(
      {k_binary, "agent", "sidecar", "--local", local_.string(), "--remote", k_bucket + "/fsn",
       "--method", "fsnotify", "--max-one-sync-per-minutes", "15", "--min-interval", "3s"},
      env());
  ASSERT_FALSE(c.read_until([](const std::string& l) {
                  return l.find("at most one sync per 3s") != std::string::npos;
                }).empty())
      << c.output();
  // The first sync's summary line.
  ASSERT_FALSE(c.read_until(
                    [](const std::string& l) {
                      return l.find("agent sidecar: copied 1 file(s)") != std::string::npos;
                    },
                    30s)
                   .empty())
      << c.output();
  EXPECT_TRUE(exists("fsn/pre.txt"));
  EXPECT_NE(c.output().find("syncing: the first sync at start"), std::string::npos);

  write(local_ / "a.txt", "a");
  ASSERT_TRUE(tidesync::test::eventually([&] { return exists("fsn/a.txt"); }, 30s)) << c.output();
  EXPECT_GE(std::chrono::steady_clock::now() - started, 3s) << "rate limited";

  // A new directory tree: watched, and its file goes up with the next sync.
  write(local_ / "sub" / "deeper" / "b.txt", "b");
  ASSERT_TRUE(tidesync::test::eventually([&] { return exists("fsn/sub/deeper/b.txt"); }, 30s))
      << c.output();
  EXPECT_GE(std::chrono::steady_clock::now() - started, 6s) << "rate limited";
  write(local_ / "sub" / "deeper" / "c.txt", "c");
  ASSERT_TRUE(tidesync::test::eventually([&] { return exists("fsn/sub/deeper/c.txt"); }, 30s))
      << c.output();

  // A deletion is a change too.
  fs::remove(local_ / "a.txt");
  ASSERT_TRUE(tidesync::test::eventually([&] { return !exists("fsn/a.txt"); }, 30s)) << c.output();
  c.read_until([&](const std::string&) { return false; }, 100ms);  // collect the output so far
  EXPECT_NE(c.output().find("syncing: files changed"), std::string::npos) << c.output();
  EXPECT_EQ(c.output().find("the run failed"), std::string::npos) << c.output();

  write(local_ / "last.txt", "last");
  EXPECT_EQ(c.stop(30s), 0) << c.output();
  c.read_until([](const std::string&) { return false; }, 5s);
  EXPECT_NE(c.output().find("one last sync before exit"), std::string::npos) << c.output();
  EXPECT_TRUE(exists("fsn/last.txt")) << "the last sync on SIGTERM";
  EXPECT_TRUE(exists("fsn/.tidesync-initialized"));
}

// fsnotify retries a failed sync every interval without file events, so --unhealthy-after
// counts; a directory that appears later is watched and synced.
TEST_F(agent_pfs_test, fsnotify_retries_failures_and_watches_a_directory_that_appears) {
  const fs::path health = dir_ / "health";
  const fs::path later = dir_ / "later";
  tidesync::test::child c({k_binary, "agent", "sidecar", "--local", later.string(), "--remote",
                           k_bucket + "/later", "--method", "fsnotify", "--min-interval", "500ms",
                           "--unhealthy-after", "2", "--health-file", health.string()},
                          env());
  auto healthy = [&] {
    return tide({"agent", "health", "--health-file", health.string()}).status == 0;
  };
  EXPECT_TRUE(tidesync::test::eventually([&] { return !healthy(); }, 30s)) << c.output();
  write(later / "x.txt", "x");
  EXPECT_TRUE(tidesync::test::eventually([&] { return exists("later/x.txt"); }, 30s)) << c.output();
  EXPECT_TRUE(healthy());
  write(later / "sub" / "y.txt", "y");
  EXPECT_TRUE(tidesync::test::eventually([&] { return exists("later/sub/y.txt"); }, 30s))
      << c.output();
  EXPECT_EQ(c.stop(30s), 0) << c.output();
}

// ---- --encrypt ----

namespace {

env_list crypt_keys(const std::string& password) {
  return {{"RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD", tidesync::transfer::crypt::obscure(password)},
          {"RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD2",
           tidesync::transfer::crypt::obscure("pepper-" + password)}};
}

env_list joined(env_list a, const env_list& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_F(agent_pfs_test, encrypt_stores_ciphertext_rclone_decrypts_it_and_restore_restores_it) {
  if (tidesync::test::run({"rclone", "version"}).status != 0) {
    if (std::getenv("TIDESYNC_REQUIRE_PEERS") != nullptr)
      FAIL() << "TIDESYNC_REQUIRE_PEERS is set but rclone is missing";
    GTEST_SKIP() << "rclone is missing";
  }
  const env_list keys = crypt_keys("correct horse");
  write(local_ / "quarterly-plan.txt", "TOP SECRET CONTENT\n");
  write(local_ / "hidden-folder" / "nested-note.txt", "nested plaintext body\n");
  write(local_ / "empty.txt", "");
  tidesync::test::child c(
      {k_binary, "agent", "sidecar", "--local", local_.string(), "--remote", k_bucket + "/enc",
       "--method", "scheduler", "--schedule", "@every 1s", "--encrypt"},
      joined(env(), keys));
  ASSERT_TRUE(tidesync::test::eventually([&] { return exists("enc/.tidesync-initialized"); }, 30s))
      << c.output();
  EXPECT_EQ(c.stop(30s), 0) << c.output();
  c.read_until([](const std::string&) { return false; }, 5s);
  for (const auto& [k, v] : keys)
    EXPECT_EQ(c.output().find(v), std::string::npos) << "never print the keys";
  EXPECT_EQ(c.output().find("do not decrypt"), std::string::npos)
      << "the plain marker beside the crypt is not a foreign file:\n"
      << c.output();

  // The bucket: ciphertext only, apart from the plain-text marker.
  auto objects = s3_client_->list_sync(k_bucket, {"enc/", "", 0});
  ASSERT_TRUE(objects) << objects.error().message;
  size_t encrypted = 0;
  for (const auto& o : *objects) {
    if (o.key == "enc/.tidesync-initialized") continue;
    ++encrypted;
    for (const char* plain :
         {"quarterly", "plan", "hidden", "folder", "nested", "note", "empty", ".txt"})
      EXPECT_EQ(o.key.find(plain), std::string::npos) << o.key;
    auto body = s3_client_->get_sync(k_bucket, o.key);
    ASSERT_TRUE(body) << body.error().message;
    EXPECT_EQ(body->rfind(std::string("RCLONE\0\0", 8), 0), 0u) << o.key;
    EXPECT_EQ(body->find("TOP SECRET"), std::string::npos) << o.key;
    EXPECT_EQ(body->find("plaintext"), std::string::npos) << o.key;
  }
  EXPECT_EQ(encrypted, 3u);

  // Stock rclone with a crypt remote of the same obscured values reads it back (the disaster
  // recovery path). rclone 1.60 keeps a '-' of a remote's name in its variable names, so the
  // Secret's RCLONE_CONFIG_TIDESYNC_CRYPT_* configure the remote "tidesync_crypt" for it.
  // --fast-list: s3rver's delimiter listings lack CommonPrefixes.
  env_list rclone_env{{"RCLONE_CONFIG", "/dev/null"},
                      {"AWS_CA_BUNDLE", ""},
                      {"RCLONE_CONFIG_REMOTE_TYPE", "s3"},
                      {"RCLONE_CONFIG_REMOTE_PROVIDER", "Other"},
                      {"RCLONE_CONFIG_REMOTE_ENV_AUTH", "false"},
                      {"RCLONE_CONFIG_REMOTE_ACCESS_KEY_ID", "S3RVER"},
                      {"RCLONE_CONFIG_REMOTE_SECRET_ACCESS_KEY", "S3RVER"},
                      {"RCLONE_CONFIG_REMOTE_ENDPOINT", s3_.endpoint()},
                      {"RCLONE_CONFIG_REMOTE_REGION", "us-east-1"},
                      {"RCLONE_CONFIG_REMOTE_FORCE_PATH_STYLE", "true"},
                      {"RCLONE_CONFIG_REMOTE_NO_CHECK_BUCKET", "true"},
                      {"RCLONE_CONFIG_TIDESYNC_CRYPT_TYPE", "crypt"},
                      {"RCLONE_CONFIG_TIDESYNC_CRYPT_REMOTE", "remote:" + k_bucket + "/enc"},
                      {"RCLONE_CONFIG_TIDESYNC_CRYPT_FILENAME_ENCRYPTION", "standard"},
                      {"RCLONE_CONFIG_TIDESYNC_CRYPT_DIRECTORY_NAME_ENCRYPTION", "true"}};
  const fs::path by_rclone = dir_ / "by-rclone";
  auto rc =
      tidesync::test::run({"rclone", "copy", "--fast-list", "tidesync_crypt:", by_rclone.string()},
                          joined(rclone_env, keys), 60s);
  ASSERT_EQ(rc.status, 0) << rc.output;
  EXPECT_EQ(tidesync::test::files(by_rclone), tidesync::test::files(local_));

  // The agent's own restore, with --skip-first-run (the plain marker is found without keys).
  const fs::path restored = dir_ / "restored";
  auto r = tidesync::test::run({k_binary, "agent", "restore", "--local", restored.string(),
                                "--remote", k_bucket + "/enc", "--encrypt", "--skip-first-run"},
                               joined(env(), keys), 60s);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(tidesync::test::files(restored), tidesync::test::files(local_));
  EXPECT_FALSE(fs::exists(restored / ".tidesync-initialized"));

  // A wrong password: the restore fails and leaves the directory alone.
  const fs::path victim = dir_ / "victim";
  write(victim / "keep.txt", "local data\n");
  const env_list wrong = crypt_keys("wrong horse");
  auto w = tidesync::test::run(
      with_root_override({k_binary, "agent", "restore", "--local", victim.string(), "--remote",
                          k_bucket + "/enc", "--encrypt"}),
      joined(env(), wrong), 60s);
  EXPECT_EQ(w.status, 1) << w.output;
  EXPECT_NE(w.output.find("decrypt with RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD"), std::string::npos)
      << w.output;
  EXPECT_EQ(tidesync::test::files(victim),
            (std::map<std::string, std::string>{{"keep.txt", "local data\n"}}));
  for (const auto& [k, v] : wrong)
    EXPECT_EQ(w.output.find(v), std::string::npos);

  // Without --encrypt the same path restores nothing readable: the agent is not confused by
  // the crypt names (they are files to a plain restore), and the plain marker still counts.
  auto keyless = tide({"agent", "restore", "--local", (dir_ / "keyless").string(), "--remote",
                       k_bucket + "/enc", "--skip-first-run"});
  EXPECT_EQ(keyless.status, 0) << keyless.output;
  EXPECT_EQ(keyless.output.find("skipping the first restore"), std::string::npos) << keyless.output;
}

// ---- progress reports ----

namespace {

struct received {
  std::string authorization;
  tidesync::json::value body;
};

// The controller's side of the reports: a loopback HTTP or HTTPS server that records every
// POST /report and answers `status`.
class report_server {
 public:
  report_server() : svr_(std::make_unique<httplib::Server>()) { start(); }
  report_server(const std::string& cert_file, const std::string& key_file)
      : svr_(std::make_unique<httplib::SSLServer>(cert_file.c_str(), key_file.c_str())) {
    start();
  }
  ~report_server() {
    svr_->stop();
    if (thread_.joinable()) thread_.join();
  }
  report_server(const report_server&) = delete;
  report_server& operator=(const report_server&) = delete;

  void answer(int status) { status_ = status; }
  [[nodiscard]] int port() const { return port_; }
  std::string url(const std::string& scheme = "http", const std::string& host = "127.0.0.1") const {
    return scheme + "://" + host + ":" + std::to_string(port_) + "/report";
  }
  std::vector<received> got() {
    std::lock_guard lock(mu_);
    return got_;
  }
  size_t count() {
    std::lock_guard lock(mu_);
    return got_.size();
  }

 private:
  void start() {
    svr_->set_logger([](const httplib::Request&, const httplib::Response&) {});
    svr_->Post("/report", [this](const httplib::Request& req, httplib::Response& res) {
      auto body = tidesync::json::parse(req.body);
      {
        std::lock_guard lock(mu_);
        got_.push_back({req.get_header_value("Authorization"),
                        body ? *body : tidesync::json::value("unparsable: " + req.body)});
      }
      res.status = status_.load();
      res.set_content("{}", "application/json");
    });
    port_ = svr_->bind_to_any_port("127.0.0.1");
    if (port_ > 0) thread_ = std::thread([this] { svr_->listen_after_bind(); });
  }

  std::unique_ptr<httplib::Server> svr_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int> status_{200};
  std::mutex mu_;
  std::vector<received> got_;
};

env_list report_env(const std::string& url) {
  return {{"TIDESYNC_REPORT_URL", url},
          {"TIDESYNC_REPORT_TOKEN", "tok-sekret-123"},
          {"POD_NAMESPACE", "web"},
          {"POD_NAME", "press-0"},
          {"TIDESYNC_PFS_NAME", "cloud-press"}};
}

}  // namespace

TEST_F(agent_pfs_test, restore_reports_its_run_with_the_token) {
  report_server srv;
  ASSERT_GT(srv.port(), 0);
  put("rep/a.txt", "alpha");
  put("rep/b.txt", "bravo!");
  put("rep/.tidesync-initialized", "marker");
  auto r = tidesync::test::run(with_root_override({k_binary, "agent", "restore", "--local",
                                                   local_.string(), "--remote", k_bucket + "/rep"}),
                               joined(env(), report_env(srv.url())), 60s);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("tok-sekret-123"), std::string::npos) << "never print the token";
  // The restore waits for its report before it exits.
  auto got = srv.got();
  ASSERT_EQ(got.size(), 1u) << r.output;
  EXPECT_EQ(got[0].authorization, "Bearer tok-sekret-123");
  const auto& b = got[0].body;
  EXPECT_EQ(b.get_string("namespace"), "web");
  EXPECT_EQ(b.get_string("pod"), "press-0");
  EXPECT_EQ(b.get_string("podFilesystemSync"), "cloud-press");
  EXPECT_EQ(b.get_string("container"), "restore");
  EXPECT_EQ(b.get_string("kind"), "restore");
  EXPECT_EQ(b.get_string("result"), "Succeeded");
  EXPECT_EQ(b.get_int("files"), 2);
  EXPECT_EQ(b.get_int("bytes"), 11);
  EXPECT_EQ(b.get_int("deleted"), 0);
  EXPECT_EQ(b.get_int("consecutiveFailures", -1), 0);
  EXPECT_NE(b.get_string("message").find("copied 2 file(s)"), std::string::npos);
  const auto time = std::string(b.get_string("time"));
  EXPECT_EQ(time.size(), 20u) << time;
  EXPECT_EQ(time.back(), 'Z') << time;

  // A skipped first run says Skipped.
  auto skip = tidesync::test::run({k_binary, "agent", "restore", "--local", local_.string(),
                                   "--remote", k_bucket + "/nothing-here", "--skip-first-run"},
                                  joined(env(), report_env(srv.url())), 60s);
  ASSERT_EQ(skip.status, 0) << skip.output;
  got = srv.got();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].body.get_string("result"), "Skipped");
  EXPECT_EQ(got[1].body.get_int("files", -1), 0);
}

TEST_F(agent_pfs_test, sidecar_reports_failures_in_a_row_then_success_and_the_final_sync) {
  report_server srv;
  ASSERT_GT(srv.port(), 0);
  // A regular file where the directory should be: every listing fails.
  const fs::path broken = dir_ / "broken";
  write(broken, "not a directory");
  tidesync::test::child c(
      {k_binary, "agent", "sidecar", "--local", broken.string(), "--remote", k_bucket + "/reports",
       "--method", "scheduler", "--schedule", "@every 1s"},
      joined(env(), report_env(srv.url())));
  ASSERT_TRUE(tidesync::test::eventually([&] { return srv.count() >= 2; }, 30s)) << c.output();
  auto got = srv.got();
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(got[i].authorization, "Bearer tok-sekret-123");
    EXPECT_EQ(got[i].body.get_string("container"), "sidecar");
    EXPECT_EQ(got[i].body.get_string("kind"), "sync");
    EXPECT_EQ(got[i].body.get_string("result"), "Failed");
    EXPECT_EQ(got[i].body.get_int("consecutiveFailures"), static_cast<int64_t>(i + 1));
    EXPECT_FALSE(got[i].body.get_string("message").empty());
  }
  fs::remove(broken);
  write(broken / "ok.txt", "ok");
  ASSERT_TRUE(tidesync::test::eventually(
      [&] {
        for (const auto& g : srv.got())
          if (g.body.get_string("result") == "Succeeded") return true;
        return false;
      },
      30s))
      << c.output();
  EXPECT_EQ(c.stop(30s), 0) << c.output();
  c.read_until([](const std::string&) { return false; }, 5s);
  EXPECT_EQ(c.output().find("tok-sekret-123"), std::string::npos);
  got = srv.got();
  bool succeeded_with_reset = false;
  for (const auto& g : got)
    if (g.body.get_string("result") == "Succeeded" && g.body.get_int("consecutiveFailures") == 0 &&
        g.body.get_string("kind") == "sync")
      succeeded_with_reset = true;
  EXPECT_TRUE(succeeded_with_reset);
  size_t finals = 0;
  for (const auto& g : got) {
    if (g.body.get_string("kind") != "final") continue;
    ++finals;
    EXPECT_EQ(g.body.get_string("result"), "Succeeded");
    EXPECT_EQ(g.authorization, "Bearer tok-sekret-123");
  }
  EXPECT_EQ(finals, 1u) << "one report for the last sync on SIGTERM, delivered before the exit";
}

TEST_F(agent_pfs_test, a_failing_report_endpoint_never_fails_the_sync) {
  report_server srv;
  ASSERT_GT(srv.port(), 0);
  srv.answer(500);
  put("flaky/a.txt", "alpha");
  auto r =
      tidesync::test::run(with_root_override({k_binary, "agent", "restore", "--local",
                                              local_.string(), "--remote", k_bucket + "/flaky"}),
                          joined(env(), report_env(srv.url())), 60s);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read(local_ / "a.txt"), "alpha");
  EXPECT_EQ(srv.count(), 2u) << "one retry after a 5xx, no more";
  EXPECT_NE(r.output.find("progress report to " + srv.url() + " not delivered"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("HTTP 500"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("tok-sekret-123"), std::string::npos) << r.output;

  // Nothing listening at all.
  auto closed =
      tidesync::test::run(with_root_override({k_binary, "agent", "restore", "--local",
                                              local_.string(), "--remote", k_bucket + "/flaky"}),
                          joined(env(), report_env("http://127.0.0.1:1/report")), 60s);
  EXPECT_EQ(closed.status, 0) << closed.output;
  EXPECT_NE(closed.output.find("not delivered"), std::string::npos) << closed.output;
  EXPECT_EQ(closed.output.find("tok-sekret-123"), std::string::npos) << closed.output;
}

// HTTPS: TIDESYNC_REPORT_CA is the only CA trusted, and the host name is checked.
TEST_F(agent_pfs_test, reports_over_https_trust_only_the_given_ca_and_check_the_host) {
  namespace wh = tidesync::webhook;
  const auto now = std::chrono::system_clock::now() - 5min;
  auto ca = wh::make_ca("tidesync-webhook-ca", now, 24h);
  ASSERT_TRUE(ca) << ca.error().message;
  auto serving = wh::make_serving_cert(*ca, {"localhost"}, now, 24h);
  ASSERT_TRUE(serving) << serving.error().message;
  auto other_ca = wh::make_ca("tidesync-webhook-ca", now, 24h);
  ASSERT_TRUE(other_ca);
  write(dir_ / "tls" / "cert.pem", serving->cert);
  write(dir_ / "tls" / "key.pem", serving->key);
  report_server srv((dir_ / "tls" / "cert.pem").string(), (dir_ / "tls" / "key.pem").string());
  ASSERT_GT(srv.port(), 0);
  put("tls/a.txt", "alpha");

  auto restore = [&](const std::string& url, const std::string& ca_pem) {
    auto e = joined(env(), report_env(url));
    e.emplace_back("TIDESYNC_REPORT_CA", ca_pem);
    return tidesync::test::run(with_root_override({k_binary, "agent", "restore", "--local",
                                                   local_.string(), "--remote", k_bucket + "/tls"}),
                               e, 60s);
  };
  auto ok = restore(srv.url("https", "localhost"), ca->cert);
  ASSERT_EQ(ok.status, 0) << ok.output;
  ASSERT_EQ(srv.count(), 1u) << ok.output;
  EXPECT_EQ(srv.got()[0].authorization, "Bearer tok-sekret-123");
  EXPECT_EQ(ok.output.find("not delivered"), std::string::npos) << ok.output;

  // Another CA: no connection, no report, the restore still succeeds.
  auto stranger = restore(srv.url("https", "localhost"), other_ca->cert);
  EXPECT_EQ(stranger.status, 0) << stranger.output;
  EXPECT_NE(stranger.output.find("not delivered"), std::string::npos) << stranger.output;
  // The certificate names localhost, not 127.0.0.1.
  auto wrong_host = restore(srv.url("https", "127.0.0.1"), ca->cert);
  EXPECT_EQ(wrong_host.status, 0) << wrong_host.output;
  EXPECT_NE(wrong_host.output.find("not delivered"), std::string::npos) << wrong_host.output;
  EXPECT_EQ(srv.count(), 1u) << "nothing got through without the right CA and name";
  EXPECT_EQ(stranger.output.find("tok-sekret-123"), std::string::npos);
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
