// `tidesync agent mirror` with the transfer engine's sources end to end: S3 against s3rver
// (scripts/s3rver.sh, the remote configured by REMOTE_* as the syncer's Secret does it) and
// HTTP against Python's http.server, both on 127.0.0.1 and stopped by PID. Checks: the share's
// content equals the source, an unchanged source makes no new revision, a changed one does and
// keeps unchanged files as hard links of the previous tree, an emptied source is refused.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
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
using tidesync::test::run;

const std::string k_binary = TIDESYNC_BINARY;
const std::string k_bucket = "mirror-src";

void write(const fs::path& p, const std::string& data) {
  tidesync::test::write_file(p, data);
}

// What one share holds.
class share_view {
 public:
  explicit share_view(fs::path share) : share_(std::move(share)) {}
  [[nodiscard]] std::string current() const {
    std::error_code ec;
    const auto t = fs::read_symlink(share_ / "current", ec);
    return ec ? std::string() : t.filename().string();
  }
  [[nodiscard]] std::set<std::string> revisions() const {
    std::set<std::string> out;
    std::error_code ec;
    for (fs::directory_iterator it(share_ / ".tidesync" / "revisions", ec), end; !ec && it != end;
         it.increment(ec))
      out.insert(it->path().filename().string());
    return out;
  }
  [[nodiscard]] std::map<std::string, std::string> files() const {
    return tidesync::test::files(share_ / "current");
  }
  [[nodiscard]] ino_t inode(const std::string& rev, const std::string& rel) const {
    struct stat st {};
    ::stat((share_ / ".tidesync" / "revisions" / rev / rel).c_str(), &st);
    return st.st_ino;
  }

 private:
  fs::path share_;
};

tidesync::test::run_result mirror(const fs::path& share, const std::string& type,
                                  const std::string& source, const env_list& env,
                                  std::vector<std::string> flags = {}) {
  std::vector<std::string> argv{k_binary,        "agent", "mirror",   "--share", share.string(),
                                "--source-type", type,    "--source", source,    "--once"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return run(argv, env, 120s);
}

class agent_mirror_s3_test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { s3_.start("mirrors3", {k_bucket}); }
  static void TearDownTestSuite() { s3_.stop(); }
  void SetUp() override {
    TIDESYNC_REQUIRE_S3RVER_SUITE(s3_);
    char tmpl[] = "/var/tmp/tidesync-mirrors3-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    share_ = dir_ / "share";
    fs::create_directories(share_);
    cfg_.endpoint = s3_.endpoint();
    cfg_.access_key_id = "S3RVER";
    cfg_.secret_access_key = "S3RVER";
    client_ = std::make_unique<tidesync::transfer::s3_client>(loop_, cfg_);
    prefix_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
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
  void put(const std::string& rel, const std::string& body) {
    ASSERT_TRUE(client_->put_sync(k_bucket, prefix_ + "/" + rel, body));
  }
  void remove(const std::string& rel) {
    ASSERT_TRUE(client_->remove_sync(k_bucket, prefix_ + "/" + rel));
  }
  tidesync::test::run_result sync() {
    return mirror(share_, "s3", k_bucket + "/" + prefix_, env(), {"--interval", "1h"});
  }

  fs::path dir_, share_;
  std::string prefix_;
  tidesync::transfer::s3_config cfg_;
  tidesync::http::loop loop_;
  std::unique_ptr<tidesync::transfer::s3_client> client_;
  static inline tidesync::test::s3rver_suite s3_;
};

TEST_F(agent_mirror_s3_test,
       content_equal_unchanged_is_no_new_revision_changes_hard_link_the_rest) {
  const std::map<std::string, std::string> want{
      {"a.txt", "alpha"}, {"dir/b.txt", "bravo"}, {"dir/sub/c.bin", std::string(70'000, 'c')}};
  for (const auto& [k, v] : want)
    put(k, v);
  share_view view(share_);
  auto first = sync();
  ASSERT_EQ(first.status, 0) << first.output;
  EXPECT_EQ(view.files(), want);
  const std::string r1 = view.current();
  EXPECT_EQ(r1.rfind("sha256-", 0), 0u) << r1;

  auto again = sync();
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("unchanged"), std::string::npos) << again.output;
  EXPECT_EQ(view.revisions(), std::set<std::string>{r1});

  put("a.txt", "alpha, edited");
  put("new.txt", "november");
  auto changed = sync();
  ASSERT_EQ(changed.status, 0) << changed.output;
  const std::string r2 = view.current();
  EXPECT_NE(r2, r1);
  auto want2 = want;
  want2["a.txt"] = "alpha, edited";
  want2["new.txt"] = "november";
  EXPECT_EQ(view.files(), want2);
  EXPECT_EQ(view.inode(r1, "dir/sub/c.bin"), view.inode(r2, "dir/sub/c.bin"))
      << "an unchanged file is a hard link of the previous revision's";
  EXPECT_NE(view.inode(r1, "a.txt"), view.inode(r2, "a.txt"));
  EXPECT_EQ(tidesync::test::read_file(share_ / ".tidesync" / "revisions" / r1 / "a.txt"), "alpha")
      << "the previous revision is never written";
  EXPECT_NE(changed.output.find("hard-linked"), std::string::npos) << changed.output;

  remove("new.txt");
  auto removed = sync();
  ASSERT_EQ(removed.status, 0) << removed.output;
  EXPECT_FALSE(fs::exists(share_ / "current" / "new.txt"));
  EXPECT_EQ(view.revisions().size(), 2u) << "current and the previous one";

  // An emptied source is taken for a mistake: the share keeps its tree.
  for (const auto& k : {"a.txt", "dir/b.txt", "dir/sub/c.bin"})
    remove(k);
  const std::string kept = view.current();
  auto empty = sync();
  EXPECT_EQ(empty.status, 1) << empty.output;
  EXPECT_NE(empty.output.find("the source is empty"), std::string::npos) << empty.output;
  EXPECT_EQ(view.current(), kept);
}

TEST_F(agent_mirror_s3_test, a_remote_of_another_type_or_a_colon_in_the_source_is_refused) {
  auto colon = mirror(share_, "s3", "other:" + k_bucket, env());
  EXPECT_EQ(colon.status, 2) << colon.output;
  EXPECT_NE(colon.output.find("REMOTE_* variables"), std::string::npos) << colon.output;
  auto sftp = mirror(share_, "sftp", "some/path", env());
  EXPECT_EQ(sftp.status, 1) << sftp.output;
  EXPECT_NE(sftp.output.find("REMOTE_TYPE=sftp"), std::string::npos) << sftp.output;
  EXPECT_EQ(sftp.output.find("S3RVER"), std::string::npos) << "no secret in messages";
}

// ---- HTTP ----

bool python_available() {
  static const bool available = run({"python3", "-c", "import http.server"}, {}, 20s).status == 0;
  return available;
}

class agent_mirror_http_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!python_available()) {
      if (std::getenv("TIDESYNC_REQUIRE_PEERS") != nullptr)
        FAIL() << "TIDESYNC_REQUIRE_PEERS is set but python3 (http.server) is missing";
      GTEST_SKIP() << "python3 is missing";
    }
    char tmpl[] = "/var/tmp/tidesync-mirrorhttp-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    src_ = dir_ / "site";
    share_ = dir_ / "share";
    fs::create_directories(share_);
    write(src_ / "index.txt", "home\n");
    write(src_ / "docs" / "guide.txt", "read me\n");
    write(src_ / "docs" / "img" / "logo.bin", std::string(50'000, 'L'));
    // exec keeps the PID, so stopping the child stops the server; its access log is dropped.
    server_ = std::make_unique<tidesync::test::child>(std::vector<std::string>{
        "sh", "-c", "exec \"$@\" 2>/dev/null", "sh", "python3", "-u", "-m", "http.server", "0",
        "--bind", "127.0.0.1", "--directory", src_.string()});
    const auto line = server_->read_until(
        [](const std::string& l) { return l.find("Serving HTTP on") != std::string::npos; }, 15s);
    const auto at = line.find(" port ");
    ASSERT_NE(at, std::string::npos) << server_->output();
    base_ = "http://127.0.0.1:" + std::to_string(std::atoi(line.c_str() + at + 6)) + "/";
  }
  void TearDown() override {
    if (server_) server_->stop();
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  fs::path dir_, src_, share_;
  std::string base_;
  std::unique_ptr<tidesync::test::child> server_;
};

TEST_F(agent_mirror_http_test, a_directory_listing_is_mirrored_and_only_changes_make_revisions) {
  share_view view(share_);
  auto first = mirror(share_, "http", base_, {}, {"--interval", "1h"});
  ASSERT_EQ(first.status, 0) << first.output;
  EXPECT_EQ(view.files(), tidesync::test::files(src_));
  const std::string r1 = view.current();

  auto again = mirror(share_, "http", base_, {}, {"--interval", "1h"});
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("unchanged"), std::string::npos) << again.output;
  EXPECT_EQ(view.revisions(), std::set<std::string>{r1});

  write(src_ / "docs" / "guide.txt", "read me, version 2\n");
  auto changed = mirror(share_, "http", base_, {}, {"--interval", "1h"});
  ASSERT_EQ(changed.status, 0) << changed.output;
  EXPECT_NE(view.current(), r1);
  EXPECT_EQ(view.files(), tidesync::test::files(src_));
  EXPECT_EQ(view.inode(r1, "docs/img/logo.bin"), view.inode(view.current(), "docs/img/logo.bin"));

  auto not_http = mirror(share_, "http", "ftp://example.com/", {});
  EXPECT_EQ(not_http.status, 2) << not_http.output;
}

}  // namespace
