// The S3 test peer (s3rver, started by scripts/s3rver.sh on 127.0.0.1 and stopped by PID),
// shared by the tests that need it. Without node/s3rver those tests skip, unless
// TIDESYNC_REQUIRE_PEERS is set (scripts/test.sh sets it, so CI fails instead).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace tidesync::test {

class s3rver_peer {
 public:
  // What is missing (the script's message), "" when node and s3rver are installed.
  static std::string missing() {
    auto peers = run({"bash", script(), "check"});
    return peers.status == 0 ? std::string{} : peers.output;
  }

  // Starts s3rver with its data in `dir` on a free port, with `buckets`; returns the port, or 0
  // with the script's output in `output`.
  static int start(const std::string& dir, const std::vector<std::string>& buckets,
                   std::string* output = nullptr) {
    std::vector<std::string> argv{"bash", script(), "start", dir, "0"};
    argv.insert(argv.end(), buckets.begin(), buckets.end());
    // The script's readiness probe is rclone 1.60, which fails on a set AWS_CA_BUNDLE.
    auto started = run(argv, {{"AWS_CA_BUNDLE", ""}});
    if (output != nullptr) *output = started.output;
    if (started.status != 0) return 0;
    // The port is the last line of the output.
    auto text = started.output;
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
      text.pop_back();
    return std::atoi(text.substr(text.find_last_of('\n') + 1).c_str());
  }

  // Stops the s3rver of `dir` by its PID; returns the script's exit status.
  static int stop(const std::string& dir) { return run({"bash", script(), "stop", dir}).status; }

 private:
  static std::string script() { return std::string(TIDESYNC_SOURCE_DIR) + "/scripts/s3rver.sh"; }
};

// One s3rver for a test suite: start() in SetUpTestSuite, stop() in TearDownTestSuite, and
// TIDESYNC_REQUIRE_S3RVER_SUITE in SetUp.
struct s3rver_suite {
  std::string missing;  // s3rver_peer::missing()'s answer
  std::string dir;      // its data, logs and PID file
  std::string output;   // the start script's output, for a failure message
  int port = 0;

  void start(const std::string& name, const std::vector<std::string>& buckets) {
    missing = s3rver_peer::missing();
    if (!missing.empty()) return;
    std::string tmpl = "/var/tmp/tidesync-" + name + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return;
    dir = tmpl;
    port = s3rver_peer::start(dir, buckets, &output);
  }
  void stop() {
    if (dir.empty()) return;
    s3rver_peer::stop(dir);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    dir.clear();
  }
  [[nodiscard]] std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port); }
};

}  // namespace tidesync::test

// In SetUp(): fail or skip as below, and fail when the suite's s3rver did not start.
#define TIDESYNC_REQUIRE_S3RVER_SUITE(suite)                                   \
  do {                                                                         \
    TIDESYNC_REQUIRE_S3RVER_OR_SKIP((suite).missing);                          \
    ASSERT_GT((suite).port, 0) << "s3rver did not start:\n" << (suite).output; \
  } while (false)

// In SetUp(): fail when the peer is required, skip otherwise. `missing` is
// s3rver_peer::missing()'s answer.
#define TIDESYNC_REQUIRE_S3RVER_OR_SKIP(missing)                                \
  do {                                                                          \
    const std::string tidesync_missing_peer = (missing);                        \
    if (!tidesync_missing_peer.empty()) {                                       \
      if (std::getenv("TIDESYNC_REQUIRE_PEERS") != nullptr)                     \
        FAIL() << "TIDESYNC_REQUIRE_PEERS is set but the S3 peer is missing:\n" \
               << tidesync_missing_peer;                                        \
      GTEST_SKIP() << "node or s3rver is missing (run bash scripts/setup.sh): " \
                   << tidesync_missing_peer;                                    \
    }                                                                           \
  } while (false)
