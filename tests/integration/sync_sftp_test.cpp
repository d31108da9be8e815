// `tidesync sync` against a real OpenSSH sftp server (scripts/sshd.sh, loopback only, started
// once for the suite): local -> sftp -> local round trips, mtimes, resync, deletes, failures,
// and interop with rclone's sftp backend on the same remote.
//
// Peer: /usr/sbin/sshd (openssh-server). Without it the tests skip, unless
// TIDESYNC_REQUIRE_PEERS is set. The server runs as the current user, so the remote files are
// also on the local disk: the tests check them there directly.
#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/files.hpp"
#include "tests/support/process.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using tidesync::test::run;
using env_list = std::vector<std::pair<std::string, std::string>>;

const std::string k_binary = TIDESYNC_BINARY;

std::string script() {
  return std::string(TIDESYNC_SOURCE_DIR) + "/scripts/sshd.sh";
}

using tidesync::test::payload;
using tidesync::test::tree;
void write(const fs::path& p, const std::string& data) {
  tidesync::test::write_file(p, data);
}
std::string read(const fs::path& p) {
  return tidesync::test::read_file(p);
}

// Relative file path -> mtime in whole seconds.
std::map<std::string, int64_t> mtimes(const fs::path& root) {
  std::map<std::string, int64_t> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    const auto t = fs::last_write_time(e.path()).time_since_epoch();
    out[fs::relative(e.path(), root).string()] =
        std::chrono::floor<std::chrono::seconds>(t).count();
  }
  return out;
}

std::vector<std::string> with_root_override(std::vector<std::string> argv) {
  if (::geteuid() == 0) argv.emplace_back("--force-delete-local-dir");
  return argv;
}

std::string user_name() {
  const passwd* pw = ::getpwuid(::geteuid());
  return pw != nullptr ? pw->pw_name : "root";
}

class sync_sftp_test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto check = run({"bash", script(), "check"});
    if (check.status != 0) {
      missing_ = check.output.empty() ? "sshd.sh check failed" : check.output;
      return;
    }
    char tmpl[] = "/var/tmp/tidesync-sshd-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return;
    sshd_dir_ = tmpl;
    auto started = run({"bash", script(), "start", sshd_dir_}, {}, 30s);
    start_output_ = started.output;
    if (started.status != 0) return;
    auto text = started.output;
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
      text.pop_back();
    port_ = std::atoi(text.substr(text.find_last_of('\n') + 1).c_str());
  }
  static void TearDownTestSuite() {
    if (sshd_dir_.empty()) return;
    run({"bash", script(), "stop", sshd_dir_});
    std::error_code ec;
    fs::remove_all(sshd_dir_, ec);
  }

  void SetUp() override {
    if (!missing_.empty()) {
      if (std::getenv("TIDESYNC_REQUIRE_PEERS") != nullptr)
        FAIL() << "TIDESYNC_REQUIRE_PEERS is set but sshd is missing:\n" << missing_;
      GTEST_SKIP() << "sshd is missing (run bash scripts/setup.sh): " << missing_;
    }
    ASSERT_GT(port_, 0) << "sshd did not start:\n" << start_output_;
    char tmpl[] = "/var/tmp/tidesync-syncsftp-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    src_ = dir_ / "src";
    remote_dir_ = dir_ / "remote dst";
    back_ = dir_ / "back";
    fs::create_directories(src_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  static env_list env(int port = 0, const std::string& key = {}) {
    return {{"RCLONE_CONFIG_SFTPT_TYPE", "sftp"},
            {"RCLONE_CONFIG_SFTPT_HOST", "127.0.0.1"},
            {"RCLONE_CONFIG_SFTPT_PORT", std::to_string(port != 0 ? port : port_)},
            {"RCLONE_CONFIG_SFTPT_USER", user_name()},
            {"RCLONE_CONFIG_SFTPT_KEY_FILE", key.empty() ? sshd_dir_ + "/id_ed25519" : key}};
  }
  static tidesync::test::run_result tide(std::vector<std::string> args, const env_list& e) {
    args.insert(args.begin(), k_binary);
    return run(args, e, 60s);
  }

  void make_source() {
    write(src_ / "top.txt", "top level\n");
    write(src_ / "a" / "b" / "c" / "deep.bin", payload(300'000, 7));
    write(src_ / "empty", "");
    write(src_ / "dir with spaces" / "naïve résumé ü.txt", "unicode\n");
    write(src_ / "日本" / "ファイル name.txt", payload(10, 3));
    write(src_ / "odd" / "quote\"d & 100%.txt", "odd name");
    write(src_ / "big" / "12mib.bin", payload(12ull << 20, 11));
    // Whole-second and fractional mtimes in the past: the remote keeps whole seconds.
    fs::last_write_time(src_ / "top.txt",
                        fs::file_time_type::clock::now() - std::chrono::hours(49) + 250ms);
  }

  static inline std::string missing_, sshd_dir_, start_output_;
  static inline int port_ = 0;
  fs::path dir_, src_, remote_dir_, back_;
};

TEST_F(sync_sftp_test, round_trip_resync_mtimes_deletes_and_rclone_interop) {
  make_source();
  const std::string remote = "sftpt:" + remote_dir_.string();
  auto up = tide({"sync", src_.string(), remote}, env());
  ASSERT_EQ(up.status, 0) << up.output;
  EXPECT_NE(up.output.find("copied 7 file(s)"), std::string::npos) << up.output;
  EXPECT_EQ(tree(remote_dir_), tree(src_)) << "the server's disk holds the same tree";
  EXPECT_EQ(mtimes(remote_dir_), mtimes(src_)) << "mtimes kept to the second";

  auto again = tide({"sync", src_.string(), remote}, env());
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("copied 0 file(s)"), std::string::npos) << again.output;

  auto down = tide({"sync", remote, back_.string()}, env());
  ASSERT_EQ(down.status, 0) << down.output;
  EXPECT_EQ(tree(back_), tree(src_));
  EXPECT_EQ(mtimes(back_), mtimes(src_));
  auto down_again = tide({"sync", remote, back_.string()}, env());
  ASSERT_EQ(down_again.status, 0) << down_again.output;
  EXPECT_NE(down_again.output.find("copied 0 file(s)"), std::string::npos) << down_again.output;

  // rclone reads the same remote from the same environment and sees the same sizes.
  auto lsl = run({"rclone", "lsl", "--config", "/dev/null", remote}, env(), 30s);
  if (lsl.status == 127) {
    GTEST_LOG_(INFO) << "rclone is not installed: interop not checked";
  } else {
    ASSERT_EQ(lsl.status, 0) << lsl.output;
    EXPECT_NE(lsl.output.find(" 12582912 "), std::string::npos) << lsl.output;
    EXPECT_NE(lsl.output.find("   300000 "), std::string::npos) << lsl.output;
    EXPECT_NE(lsl.output.find("日本/ファイル name.txt"), std::string::npos) << lsl.output;
    // rclone's listing shows the mtime we stored (second precision).
    const auto top = fs::last_write_time(src_ / "top.txt");
    const auto secs =
        std::chrono::floor<std::chrono::seconds>(fs::file_time_type::clock::to_sys(top));
    const std::time_t tt = std::chrono::system_clock::to_time_t(secs);
    std::tm tm{};
    ::localtime_r(&tt, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    EXPECT_NE(lsl.output.find(std::string(stamp) + ".000000000 top.txt"), std::string::npos)
        << stamp << "\n"
        << lsl.output;
  }

  // A changed file goes up again; a deletion reaches the remote by sync, not by copy.
  write(src_ / "a" / "b" / "c" / "deep.bin", payload(300'001, 8));
  fs::remove(src_ / "top.txt");
  auto copy = tide({"copy", src_.string(), remote}, env());
  ASSERT_EQ(copy.status, 0) << copy.output;
  EXPECT_TRUE(fs::exists(remote_dir_ / "top.txt")) << "copy must not delete";
  EXPECT_EQ(read(remote_dir_ / "a/b/c/deep.bin"), payload(300'001, 8)) << "replaced in place";
  auto del = tide({"sync", src_.string(), remote}, env());
  ASSERT_EQ(del.status, 0) << del.output;
  EXPECT_NE(del.output.find("deleted 1"), std::string::npos) << del.output;
  EXPECT_FALSE(fs::exists(remote_dir_ / "top.txt"));
  EXPECT_EQ(tree(remote_dir_), tree(src_)) << "no temporary left behind";
  auto back_del = tide(with_root_override({"sync", remote, back_.string()}), env());
  ASSERT_EQ(back_del.status, 0) << back_del.output;
  EXPECT_EQ(tree(back_), tree(src_));
}

TEST_F(sync_sftp_test, login_relative_path) {
  write(src_ / "x" / "one.txt", "1");
  const char* home = std::getenv("HOME");
  ASSERT_NE(home, nullptr);
  // "sftpt:rel" is relative to the login directory (sshd's user's home).
  const std::string rel = fs::relative(remote_dir_, fs::canonical(home)).string();
  ASSERT_EQ(rel.rfind("/", 0), std::string::npos) << rel;
  auto up = tide({"sync", src_.string(), "sftpt:" + rel}, env());
  ASSERT_EQ(up.status, 0) << up.output;
  EXPECT_EQ(read(remote_dir_ / "x" / "one.txt"), "1");
  auto again = tide({"sync", src_.string(), "sftpt:" + rel}, env());
  EXPECT_NE(again.output.find("copied 0 file(s)"), std::string::npos) << again.output;
}

TEST_F(sync_sftp_test, bad_key_or_wrong_port_fails_and_deletes_nothing) {
  write(src_ / "new.txt", "n");
  write(remote_dir_ / "precious.txt", "p");
  write(back_ / "precious.txt", "p");
  const std::string remote = "sftpt:" + remote_dir_.string();

  // A key the server does not know.
  const std::string other_key = (dir_ / "other_key").string();
  ASSERT_EQ(run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other_key}).status, 0);
  auto bad_key = tide({"sync", src_.string(), remote}, env(0, other_key));
  EXPECT_EQ(bad_key.status, 1) << bad_key.output;
  EXPECT_NE(bad_key.output.find("authentication failed for " + user_name() + "@127.0.0.1:"),
            std::string::npos)
      << bad_key.output;
  auto bad_down = tide(with_root_override({"sync", remote, back_.string()}), env(0, other_key));
  EXPECT_EQ(bad_down.status, 1) << bad_down.output;

  // Nothing listens on this port any more.
  int dead_port = 0;
  {
    auto p = run({"python3", "-c",
                  "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); "
                  "print(s.getsockname()[1])"});
    dead_port = std::atoi(p.output.c_str());
  }
  ASSERT_GT(dead_port, 0);
  auto refused = tide(with_root_override({"sync", remote, back_.string()}), env(dead_port));
  EXPECT_EQ(refused.status, 1) << refused.output;
  EXPECT_NE(refused.output.find("127.0.0.1:" + std::to_string(dead_port)), std::string::npos)
      << refused.output;

  EXPECT_EQ(read(remote_dir_ / "precious.txt"), "p");
  EXPECT_FALSE(fs::exists(remote_dir_ / "new.txt"));
  EXPECT_EQ(read(back_ / "precious.txt"), "p");
}

}  // namespace
