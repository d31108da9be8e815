// Encryption compatible with rclone crypt, end to end: the real binary writes a crypt remote
// that stock rclone (1.60) reads back, and reads one that rclone wrote — over a local
// directory and over s3rver. Keys come from the environment (obscured, as in rclone) or from
// a file (a mounted Secret); never from the command line.
//
// Peers: rclone, and node + s3rver for the S3 case. Without them the tests skip, unless
// TIDESYNC_REQUIRE_PEERS is set.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/transfer/crypt.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/s3rver.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using tidesync::test::files;
using tidesync::test::payload;
using tidesync::test::run;
using tidesync::test::write_file;
using env_list = std::vector<std::pair<std::string, std::string>>;

const std::string k_binary = TIDESYNC_BINARY;
const std::string k_bucket = "sync-crypt-test";

bool have_rclone() {
  return run({"rclone", "version"}).status == 0;
}

class sync_crypt_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_rclone()) {
      if (std::getenv("TIDESYNC_REQUIRE_PEERS") != nullptr)
        FAIL() << "TIDESYNC_REQUIRE_PEERS is set but rclone is missing";
      GTEST_SKIP() << "rclone is missing (run bash scripts/setup.sh)";
    }
    char tmpl[] = "/var/tmp/tidesync-synccrypt-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    src_ = dir_ / "src";
    vault_ = dir_ / "vault";
    fs::create_directories(src_);
    write_file(src_ / "top.txt", "top level\n");
    write_file(src_ / "a" / "b" / "deep.bin", payload(300'000, 7));
    write_file(src_ / "empty", "");
    write_file(src_ / "dir with spaces" / "naïve résumé.txt", "unicode\n");
    write_file(src_ / "exact-64k", payload(65536, 5));
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // A crypt remote "secret" over `inner`, keyed by obscured env values; rclone's config file
  // is /dev/null so nothing else leaks in.
  env_list crypt_env(const std::string& inner, bool salt = true) const {
    env_list env{{"RCLONE_CONFIG", "/dev/null"},
                 {"RCLONE_CONFIG_SECRET_TYPE", "crypt"},
                 {"RCLONE_CONFIG_SECRET_REMOTE", inner},
                 {"RCLONE_CONFIG_SECRET_PASSWORD", tidesync::transfer::crypt::obscure("potato")}};
    if (salt)
      env.emplace_back("RCLONE_CONFIG_SECRET_PASSWORD2",
                       tidesync::transfer::crypt::obscure("sausage"));
    return env;
  }

  static tidesync::test::run_result tide(std::vector<std::string> args, const env_list& env) {
    args.insert(args.begin(), k_binary);
    return run(args, env, 60s);
  }
  static tidesync::test::run_result rclone(std::vector<std::string> args, const env_list& env) {
    args.insert(args.begin(), "rclone");
    return run(args, env, 60s);
  }

  fs::path dir_, src_, vault_;
};

TEST_F(sync_crypt_test, tidesync_writes_rclone_reads_and_back) {
  const auto env = crypt_env(vault_.string());
  auto up = tide({"sync", src_.string(), "secret:"}, env);
  ASSERT_EQ(up.status, 0) << up.output;
  EXPECT_NE(up.output.find("copied 5 file(s)"), std::string::npos) << up.output;
  // What landed is encrypted: no plain name, no plain content.
  for (const auto& [rel, content] : files(vault_)) {
    EXPECT_EQ(rel.find("top.txt"), std::string::npos) << rel;
    EXPECT_EQ(content.find("top level"), std::string::npos) << rel;
  }
  EXPECT_EQ(files(vault_).size(), 5u);

  // Stock rclone decrypts it.
  auto down = rclone({"copy", "secret:", (dir_ / "by-rclone").string()}, env);
  ASSERT_EQ(down.status, 0) << down.output;
  EXPECT_EQ(files(dir_ / "by-rclone"), files(src_));

  // Unchanged: nothing moves the second time (mtimes travel through the inner remote).
  auto again = tide({"sync", src_.string(), "secret:"}, env);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("copied 0 file(s)"), std::string::npos) << again.output;

  // And tidesync reads it back itself.
  auto back = tide({"sync", "secret:", (dir_ / "by-tidesync").string()}, env);
  ASSERT_EQ(back.status, 0) << back.output;
  EXPECT_EQ(files(dir_ / "by-tidesync"), files(src_));
}

TEST_F(sync_crypt_test, rclone_writes_tidesync_reads_without_salt_and_with_a_password_file) {
  auto env = crypt_env(vault_.string(), false);
  auto up = rclone({"sync", src_.string(), "secret:sub/dir"}, env);
  ASSERT_EQ(up.status, 0) << up.output;

  // The password from a file (a mounted Secret) instead of the obscured variable.
  env_list file_env;
  for (const auto& kv : env)
    if (kv.first != "RCLONE_CONFIG_SECRET_PASSWORD") file_env.push_back(kv);
  write_file(dir_ / "secret" / "password", "potato\n");
  file_env.emplace_back("RCLONE_CONFIG_SECRET_PASSWORD_FILE",
                        (dir_ / "secret" / "password").string());
  auto down = tide({"sync", "secret:sub/dir", (dir_ / "out").string()}, file_env);
  ASSERT_EQ(down.status, 0) << down.output;
  EXPECT_EQ(files(dir_ / "out"), files(src_));
}

TEST_F(sync_crypt_test, wrong_password_reads_nothing_and_deletes_nothing) {
  const auto env = crypt_env(vault_.string());
  ASSERT_EQ(tide({"sync", src_.string(), "secret:"}, env).status, 0);
  fs::create_directories(dir_ / "restore");
  write_file(dir_ / "restore" / "keep.txt", "local data\n");

  auto wrong = env;
  for (auto& kv : wrong)
    if (kv.first == "RCLONE_CONFIG_SECRET_PASSWORD")
      kv.second = tidesync::transfer::crypt::obscure("not-potato");
  auto r = tide({"sync", "secret:", (dir_ / "restore").string()}, wrong);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("do not decrypt"), std::string::npos) << r.output;
  EXPECT_EQ(tidesync::test::read_file(dir_ / "restore" / "keep.txt"), "local data\n")
      << "an undecryptable remote looks empty; the safety valve keeps the local files";
}

TEST_F(sync_crypt_test, missing_password_is_a_clear_error) {
  env_list env{{"RCLONE_CONFIG_SECRET_TYPE", "crypt"},
               {"RCLONE_CONFIG_SECRET_REMOTE", vault_.string()}};
  auto r = tide({"sync", src_.string(), "secret:"}, env);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("RCLONE_CONFIG_SECRET_PASSWORD"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(vault_));
}

class sync_crypt_s3_test : public sync_crypt_test {
 protected:
  static void SetUpTestSuite() { s3_.start("synccrypt-s3", {k_bucket}); }
  static void TearDownTestSuite() { s3_.stop(); }
  void SetUp() override {
    sync_crypt_test::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    TIDESYNC_REQUIRE_S3RVER_SUITE(s3_);
  }
  env_list s3_env() const {
    auto env = crypt_env("s3c:" + k_bucket + "/vault");
    env.insert(env.end(), {{"RCLONE_CONFIG_S3C_TYPE", "s3"},
                           {"RCLONE_CONFIG_S3C_PROVIDER", "Other"},
                           {"RCLONE_CONFIG_S3C_ACCESS_KEY_ID", "S3RVER"},
                           {"RCLONE_CONFIG_S3C_SECRET_ACCESS_KEY", "S3RVER"},
                           {"RCLONE_CONFIG_S3C_ENDPOINT", s3_.endpoint()},
                           {"AWS_CA_BUNDLE", ""}});
    return env;
  }

  static inline tidesync::test::s3rver_suite s3_;
};

TEST_F(sync_crypt_s3_test, crypt_over_s3_round_trips_through_rclone) {
  write_file(src_ / "big.bin", payload(20u << 20, 9));  // multipart + ranged reads
  const auto env = s3_env();
  auto up = tide({"sync", src_.string(), "secret:"}, env);
  ASSERT_EQ(up.status, 0) << up.output;
  // --fast-list: s3rver 3.7.1 answers delimiter listings without CommonPrefixes, so rclone's
  // directory walk would miss nested files; a recursive listing sees them all.
  auto check = rclone({"check", "--fast-list", src_.string(), "secret:"}, env);
  EXPECT_EQ(check.status, 0) << check.output;
  auto down = rclone({"copy", "--fast-list", "secret:", (dir_ / "by-rclone").string()}, env);
  ASSERT_EQ(down.status, 0) << down.output;
  EXPECT_EQ(files(dir_ / "by-rclone"), files(src_));
  auto back = tide({"sync", "secret:", (dir_ / "by-tidesync").string()}, env);
  ASSERT_EQ(back.status, 0) << back.output;
  EXPECT_EQ(files(dir_ / "by-tidesync"), files(src_));
}

}  // namespace
