// The README's main command, `bash scripts/demo.sh`, run with --once on a temporary data dir and
// a free s3rver port: s3rver, the upload, `tidesync simulate` with the controller and the
// simulated kubelet, the demo policy's manual run, and the check that demo-backup holds every
// demo file. The test then starts s3rver again on the demo's data (scripts/s3rver.sh) and checks
// the destination bucket itself with rclone, so it does not only trust the script's word.
//
// Peers: node and s3rver@3.7.1 (installed by scripts/setup.sh). Without them the test skips,
// unless TIDESYNC_REQUIRE_PEERS is set (scripts/test.sh sets it, so CI fails instead).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/process.hpp"
#include "tests/support/s3rver.hpp"

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

using tidesync::test::child;
using tidesync::test::run;
using tidesync::test::run_result;

const std::string k_source = TIDESYNC_SOURCE_DIR;
const std::string k_demo_data = k_source + "/deploy/examples/demo-data";

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The demo files as keys ("reports/2024/summary.csv"), from the repo's folder.
std::set<std::string> demo_files() {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(k_demo_data))
    if (e.is_regular_file()) out.insert(fs::relative(e.path(), k_demo_data).generic_string());
  return out;
}

// rclone configured from the environment only, against the s3rver on `port`.
std::vector<std::pair<std::string, std::string>> rclone_env(int port) {
  return {{"RCLONE_CONFIG_T_TYPE", "s3"},
          {"RCLONE_CONFIG_T_PROVIDER", "Other"},
          {"RCLONE_CONFIG_T_ENV_AUTH", "false"},
          {"RCLONE_CONFIG_T_ACCESS_KEY_ID", "S3RVER"},
          {"RCLONE_CONFIG_T_SECRET_ACCESS_KEY", "S3RVER"},
          {"RCLONE_CONFIG_T_ENDPOINT", "http://127.0.0.1:" + std::to_string(port)},
          {"RCLONE_CONFIG_T_REGION", "us-east-1"},
          {"RCLONE_CONFIG_T_FORCE_PATH_STYLE", "true"}};
}

class demo_test : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("AWS_CA_BUNDLE");  // rclone 1.60 fails on it
    TIDESYNC_REQUIRE_S3RVER_OR_SKIP(tidesync::test::s3rver_peer::missing());
    for (const char* tool : {"kubectl", "rclone"}) {
      auto probe = run({"sh", "-c", std::string("command -v ") + tool});
      ASSERT_EQ(probe.status, 0) << tool << " is not on PATH (bash scripts/setup.sh installs it)";
    }
    char tmpl[] = "/tmp/tidesync-demo-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }

  void TearDown() override {
    if (dir.empty()) return;
    // Whatever a failed or killed demo left running, stopped by its PID.
    tidesync::test::s3rver_peer::stop(dir + "/s3rver");
    std::ifstream pid_file(dir + "/simulate.pid");
    int pid = 0;
    // Only our simulate, not a process that got the pid of one long gone.
    if (pid_file >> pid && pid > 0 &&
        read_text("/proc/" + std::to_string(pid) + "/cmdline").find("simulate") !=
            std::string::npos) {
      ::kill(pid, SIGTERM);
      if (!tidesync::test::eventually([&] { return ::kill(pid, 0) != 0; }, 10s))
        ::kill(pid, SIGKILL);
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  std::string dir;
};

TEST_F(demo_test, demo_once_syncs_the_demo_folder_through_a_bucketsync_policy) {
  child demo({"bash", k_source + "/scripts/demo.sh", "--once", "--data-dir", dir, "--s3-port", "0"},
             {{"TIDESYNC_BIN", TIDESYNC_BINARY}, {"TIDESYNC_DEMO_TIMEOUT", "120"}});
  demo.read_until([](const std::string&) { return false; }, 180s);  // until it exits
  int status = demo.stop(30s);  // SIGTERM (its trap stops simulate and s3rver) if still running
  const std::string& out = demo.output();
  ASSERT_EQ(status, 0) << out << "\nsimulate log:\n" << read_text(dir + "/simulate.log");
  EXPECT_NE(out.find("OK: every file of deploy/examples/demo-data is in demo-backup with "
                     "identical content"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("bucketsyncpolicy.tidesync.io/demo-backup"), std::string::npos) << out;
  EXPECT_NE(out.find("Finished"), std::string::npos) << out;

  // The listing the person sees names every demo file, and the rclone Job's own log (the
  // simulated kubelet's pod log) shows that the Job copied each of them: the bytes went
  // through the BucketSync, not through the script's upload.
  auto files = demo_files();
  ASSERT_GE(files.size(), 4u);
  std::string pod_log;
  for (const auto& e : fs::directory_iterator(dir + "/logs/default"))
    if (e.path().filename().string().rfind("demo-backup-manual-", 0) == 0)
      pod_log += read_text(e.path());
  ASSERT_FALSE(pod_log.empty()) << "no pod log of the policy's manual run under " << dir
                                << "/logs/default";
  for (const auto& f : files) {
    EXPECT_NE(out.find(" " + f + "\n"), std::string::npos) << f << " not listed:\n" << out;
    EXPECT_NE(pod_log.find(f + ": Copied (new)"), std::string::npos)
        << f << " not copied by the Job:\n"
        << pod_log;
  }

  // Everything was stopped: no pid files left.
  EXPECT_FALSE(fs::exists(dir + "/simulate.pid"));
  EXPECT_FALSE(fs::exists(dir + "/s3rver/s3rver.pid"));

  // The destination, checked by the test itself: s3rver again on the demo's data.
  std::string started;
  int port = tidesync::test::s3rver_peer::start(dir + "/s3rver", {}, &started);
  ASSERT_GT(port, 0) << started;
  auto listed =
      run({"rclone", "--config", "/dev/null", "lsf", "-R", "--files-only", "t:demo-backup"},
          rclone_env(port));
  ASSERT_EQ(listed.status, 0) << listed.output;
  std::set<std::string> keys;
  std::istringstream lines(listed.output);
  for (std::string l; std::getline(lines, l);)
    if (!l.empty()) keys.insert(l);
  EXPECT_EQ(keys, files);
  auto check = run({"rclone", "--config", "/dev/null", "check", k_demo_data, "t:demo-backup"},
                   rclone_env(port));
  EXPECT_EQ(check.status, 0) << check.output;
  EXPECT_EQ(tidesync::test::s3rver_peer::stop(dir + "/s3rver"), 0);
}

}  // namespace
