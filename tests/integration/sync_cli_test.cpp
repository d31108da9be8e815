// `tidesync sync` / `tidesync copy` end to end: the real binary (TIDESYNC_BINARY) on real
// directories, and against a real s3rver (scripts/s3rver.sh) for local -> s3 -> local.
//
// Peers: node and s3rver@3.7.1. Without them the S3 tests skip, unless TIDESYNC_REQUIRE_PEERS
// is set. When the test runs as root, deleting syncs into a local directory pass
// --force-delete-local-dir: the seed's safety valve refuses root-owned targets otherwise (the
// valve itself is exercised by empty_source_refuses_to_empty_destination).
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/http/loop.hpp"
#include "runtime/transfer/s3_client.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/s3rver.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using tidesync::test::run;
using env_list = std::vector<std::pair<std::string, std::string>>;

const std::string k_binary = TIDESYNC_BINARY;
const std::string k_bucket = "sync-cli-test";

using tidesync::test::payload;
using tidesync::test::tree;
void write(const fs::path& p, const std::string& data) {
  tidesync::test::write_file(p, data);
}
std::string read(const fs::path& p) {
  return tidesync::test::read_file(p);
}

// The deleting syncs below need the ownership override when the test runs as root.
std::vector<std::string> with_root_override(std::vector<std::string> argv) {
  if (::geteuid() == 0) argv.emplace_back("--force-delete-local-dir");
  return argv;
}

class sync_cli_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/tidesync-synccli-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    src_ = dir_ / "src";
    dst_ = dir_ / "dst";
    fs::create_directories(src_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static tidesync::test::run_result tide(std::vector<std::string> args, const env_list& env = {}) {
    args.insert(args.begin(), k_binary);
    return run(args, env, 60s);
  }

  void make_source() {
    write(src_ / "top.txt", "top level\n");
    write(src_ / "a" / "b" / "c" / "deep.bin", payload(300'000, 7));
    write(src_ / "empty", "");
    write(src_ / "dir with spaces" / "naïve résumé ü.txt", "unicode\n");
    write(src_ / "日本" / "ファイル name.txt", payload(10, 3));
  }

  fs::path dir_, src_, dst_;
};

TEST_F(sync_cli_test, local_to_local_sync_resync_copy_and_delete) {
  make_source();
  auto r = tide({"sync", src_.string(), dst_.string()});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("copied 5 file(s)"), std::string::npos) << r.output;
  EXPECT_EQ(tree(dst_), tree(src_));
  // mtimes preserved to the nanosecond
  EXPECT_EQ(fs::last_write_time(dst_ / "a/b/c/deep.bin"),
            fs::last_write_time(src_ / "a/b/c/deep.bin"));

  auto again = tide({"sync", src_.string(), dst_.string(), "--error-on-no-transfer"});
  EXPECT_EQ(again.status, 9) << again.output;
  EXPECT_NE(again.output.find("copied 0 file(s)"), std::string::npos) << again.output;

  fs::remove(src_ / "top.txt");
  write(src_ / "a" / "changed.txt", "new");
  auto copy = tide({"copy", src_.string(), dst_.string()});
  ASSERT_EQ(copy.status, 0) << copy.output;
  EXPECT_TRUE(fs::exists(dst_ / "top.txt")) << "copy must not delete";
  EXPECT_EQ(read(dst_ / "a" / "changed.txt"), "new");

  auto sync = tide(with_root_override({"sync", src_.string(), dst_.string(), "-v"}));
  ASSERT_EQ(sync.status, 0) << sync.output;
  EXPECT_FALSE(fs::exists(dst_ / "top.txt")) << sync.output;
  EXPECT_NE(sync.output.find("deleted 1"), std::string::npos) << sync.output;
  EXPECT_EQ(tree(dst_), tree(src_));
}

TEST_F(sync_cli_test, dry_run_changes_nothing) {
  make_source();
  write(dst_ / "extra.txt", "only on the destination");
  const auto before = tree(dst_);
  auto r = tide(with_root_override({"sync", src_.string(), dst_.string(), "--dry-run"}));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("copy top.txt (new, 10 bytes)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("delete extra.txt"), std::string::npos) << r.output;
  EXPECT_EQ(tree(dst_), before);
}

TEST_F(sync_cli_test, max_delete_refuses_and_deletes_nothing) {
  write(src_ / "keep.txt", "k");
  for (int i = 0; i < 3; ++i)
    write(dst_ / ("extra" + std::to_string(i)), "x");
  const auto before = tree(dst_);
  auto r = tide(with_root_override({"sync", src_.string(), dst_.string(), "--max-delete", "2"}));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("max-delete"), std::string::npos) << r.output;
  EXPECT_EQ(tree(dst_), before);
}

TEST_F(sync_cli_test, empty_source_refuses_to_empty_destination) {
  write(dst_ / "precious.txt", "p");
  auto r = tide({"sync", src_.string(), dst_.string()});
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--force-delete-local-dir"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dst_ / "precious.txt"));
  // The override named in the message allows it.
  auto forced = tide({"sync", src_.string(), dst_.string(), "--force-delete-local-dir"});
  EXPECT_EQ(forced.status, 0) << forced.output;
  EXPECT_FALSE(fs::exists(dst_ / "precious.txt"));
}

TEST_F(sync_cli_test, bad_usage_and_unknown_remote_exit_2) {
  EXPECT_EQ(tide({"sync", src_.string()}).status, 2);
  EXPECT_EQ(tide({"sync", src_.string(), dst_.string(), "--bogus"}).status, 2);
  auto r = tide({"sync", src_.string(), "nosuchremote:bucket/x"});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("no RCLONE_CONFIG_NOSUCHREMOTE_TYPE in the environment"),
            std::string::npos)
      << r.output;
  auto creds = tide({"copy", src_.string(), "r:bucket"}, {{"RCLONE_CONFIG_R_TYPE", "s3"}});
  EXPECT_EQ(creds.status, 2) << creds.output;
  EXPECT_NE(creds.output.find("RCLONE_CONFIG_R_ACCESS_KEY_ID"), std::string::npos) << creds.output;
}

TEST_F(sync_cli_test, unreachable_endpoint_fails_and_deletes_nothing) {
  write(dst_ / "precious.txt", "p");
  const env_list env = {{"RCLONE_CONFIG_DEAD_TYPE", "s3"},
                        {"RCLONE_CONFIG_DEAD_ACCESS_KEY_ID", "id"},
                        {"RCLONE_CONFIG_DEAD_SECRET_ACCESS_KEY", "topsecret"},
                        {"RCLONE_CONFIG_DEAD_ENDPOINT", "http://127.0.0.1:1"}};
  auto r = tide(with_root_override({"sync", "dead:bucket/x", dst_.string()}), env);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("nothing was changed"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("topsecret"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dst_ / "precious.txt"));
}

TEST_F(sync_cli_test, max_transfer_stops_cleanly_and_the_next_run_continues) {
  for (int i = 0; i < 5; ++i)
    write(src_ / ("f" + std::to_string(i)), payload(100 << 10, static_cast<uint32_t>(i)));
  write(dst_ / "extra.txt", "only in the destination");
  auto args = with_root_override({"sync", src_.string(), dst_.string(), "--max-transfer", "250K"});
  auto r = tide(args);
  EXPECT_EQ(r.status, 8) << r.output;
  EXPECT_NE(r.output.find("--max-transfer reached: 3 file(s) left"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dst_ / "extra.txt")) << "no deletes while files are left";
  size_t whole = 0;
  for (const auto& [rel, content] : tree(dst_)) {
    EXPECT_EQ(rel.find(".partial"), std::string::npos) << "no partial file is left: " << rel;
    if (rel != "extra.txt") {
      EXPECT_EQ(content, read(src_ / rel)) << rel;
      ++whole;
    }
  }
  EXPECT_EQ(whole, 2u) << "two 100 KiB files fit in 250 KiB";
  auto second = tide(args);
  EXPECT_EQ(second.status, 8) << second.output;
  auto third = tide(args);
  EXPECT_EQ(third.status, 0) << third.output;
  EXPECT_EQ(tree(dst_), tree(src_)) << "the last run copied the rest and deleted extra.txt";
}

TEST_F(sync_cli_test, bwlimit_and_checkers_still_copy_everything) {
  make_source();
  auto r = tide({"sync", src_.string(), dst_.string(), "--bwlimit", "50M", "--checkers", "2",
                 "--transfers", "2"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(tree(dst_), tree(src_));
  auto bad = tide({"sync", src_.string(), dst_.string(), "--bwlimit", "fast"});
  EXPECT_EQ(bad.status, 2) << bad.output;
  EXPECT_NE(bad.output.find("\"fast\" is not a size"), std::string::npos) << bad.output;
}

TEST_F(sync_cli_test, progress_is_json_lines_when_stderr_is_not_a_terminal) {
  make_source();
  auto r = tide({"sync", src_.string(), dst_.string(), "--stats", "1ms"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("{\"phase\":\"done\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"files\":5,\"files_total\":5"), std::string::npos) << r.output;
  auto quiet = tide({"sync", src_.string(), (dir_ / "q").string(), "-q", "--stats", "1ms"});
  ASSERT_EQ(quiet.status, 0) << quiet.output;
  EXPECT_EQ(quiet.output.find("\"phase\""), std::string::npos) << quiet.output;
}

TEST_F(sync_cli_test, engine_rclone_runs_rclone_behind_the_same_safety_valves) {
  if (run({"rclone", "version"}).status != 0) {
    if (std::getenv("TIDESYNC_REQUIRE_PEERS") != nullptr) FAIL() << "rclone is missing";
    GTEST_SKIP() << "rclone is missing";
  }
  make_source();
  auto r = tide({"sync", "--engine=rclone", src_.string(), dst_.string()},
                {{"RCLONE_CONFIG", "/dev/null"}});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(tree(dst_), tree(src_));
  // An empty source would empty the destination: refused before rclone starts.
  fs::remove_all(src_);
  fs::create_directories(src_);
  auto refused = tide({"sync", "--engine=rclone", src_.string(), dst_.string()},
                      {{"RCLONE_CONFIG", "/dev/null"}});
  EXPECT_EQ(refused.status, 1) << refused.output;
  EXPECT_NE(refused.output.find("rclone was not started"), std::string::npos) << refused.output;
  EXPECT_TRUE(fs::exists(dst_ / "top.txt"));
}

TEST_F(sync_cli_test, schedule_runs_periodically_and_stops_on_sigterm) {
  make_source();
  tidesync::test::child c(
      {k_binary, "sync", src_.string(), dst_.string(), "--schedule", "* * * * * *", "-q"});
  auto first = c.read_until(
      [](const std::string& l) { return l.find("copied 5 file(s)") != std::string::npos; }, 20s);
  ASSERT_FALSE(first.empty()) << c.output();
  write(src_ / "later.txt", "added between runs");
  auto second = c.read_until(
      [](const std::string& l) { return l.find("copied 1 file(s)") != std::string::npos; }, 20s);
  ASSERT_FALSE(second.empty()) << "the next second's run picks up the new file\n" << c.output();
  EXPECT_EQ(c.stop(), 0) << c.output();
  c.read_until([](const std::string&) { return false; }, 5s);  // the rest, up to EOF
  EXPECT_EQ(tree(dst_), tree(src_));
  EXPECT_EQ(c.output().find("one last sync"), std::string::npos)
      << "no last sync into a local destination\n"
      << c.output();
  auto bad = tide({"sync", src_.string(), dst_.string(), "--schedule", "61 * * * * *"});
  EXPECT_EQ(bad.status, 2) << bad.output;
  EXPECT_NE(bad.output.find("second"), std::string::npos) << bad.output;
}

// A run killed mid-transfer (SIGKILL: no cleanup) leaves no half file under any name, and the
// next run completes the tree.
TEST_F(sync_cli_test, a_killed_run_leaves_no_partial_file_and_the_next_run_resumes) {
  make_source();
  write(src_ / "big" / "a.bin", payload(24u << 20, 1));
  write(src_ / "big" / "b.bin", payload(24u << 20, 2));
  tidesync::test::child c({k_binary, "sync", src_.string(), dst_.string(), "--bwlimit", "8M",
                           "--transfers", "1", "--stats", "50ms"});
  auto moving = c.read_until(
      [](const std::string& l) {
        return l.find("\"phase\":\"transferring\"") != std::string::npos &&
               l.find("\"bytes\":0,") == std::string::npos;
      },
      20s);
  ASSERT_FALSE(moving.empty()) << c.output();
  c.kill();
  for (const auto& [rel, content] : tree(dst_)) {
    EXPECT_EQ(rel.find(".partial"), std::string::npos) << rel;
    if (content != "<dir>") {
      EXPECT_EQ(content, read(src_ / rel)) << "a whole file or none: " << rel;
    }
  }
  EXPECT_NE(tree(dst_), tree(src_)) << "killed before the end";
  auto resumed = tide({"sync", src_.string(), dst_.string()});
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_EQ(tree(dst_), tree(src_));
}

// An S3 endpoint that answers every request with 500 InternalError: retried with backoff,
// then a clear error, a non-zero exit, and nothing deleted on either side.
TEST_F(sync_cli_test, server_500s_fail_clearly_after_retries_and_delete_nothing) {
  httplib::Server svr;
  std::atomic<int> requests{0};
  svr.set_logger([](const httplib::Request&, const httplib::Response&) {});
  auto fail = [&](const httplib::Request&, httplib::Response& res) {
    ++requests;
    res.status = 500;
    res.set_content(
        "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>We encountered an "
        "internal error. Please try again.</Message></Error>",
        "application/xml");
  };
  svr.Get(".*", fail);
  svr.Put(".*", fail);
  svr.Post(".*", fail);
  svr.Delete(".*", fail);
  svr.set_error_handler(fail);
  const int port = svr.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread server([&] { svr.listen_after_bind(); });
  struct stop_server {
    httplib::Server& s;
    std::thread& t;
    ~stop_server() {
      s.stop();
      t.join();
    }
  } stopper{svr, server};

  const env_list env = {
      {"RCLONE_CONFIG_SICK_TYPE", "s3"},
      {"RCLONE_CONFIG_SICK_ACCESS_KEY_ID", "id"},
      {"RCLONE_CONFIG_SICK_SECRET_ACCESS_KEY", "topsecret"},
      {"RCLONE_CONFIG_SICK_ENDPOINT", "http://127.0.0.1:" + std::to_string(port)}};
  write(dst_ / "precious.txt", "p");
  auto down = tide(with_root_override({"sync", "sick:bucket/x", dst_.string()}), env);
  EXPECT_EQ(down.status, 1) << down.output;
  EXPECT_NE(down.output.find("500"), std::string::npos) << down.output;
  EXPECT_NE(down.output.find("InternalError"), std::string::npos) << down.output;
  EXPECT_NE(down.output.find("nothing was changed"), std::string::npos) << down.output;
  EXPECT_EQ(down.output.find("topsecret"), std::string::npos) << down.output;
  EXPECT_TRUE(fs::exists(dst_ / "precious.txt"));
  EXPECT_GE(requests.load(), 5) << "the listing was retried with backoff before giving up";

  make_source();
  auto up = tide({"sync", src_.string(), "sick:bucket/x"}, env);
  EXPECT_EQ(up.status, 1) << up.output;
  EXPECT_NE(up.output.find("InternalError"), std::string::npos) << up.output;
  EXPECT_TRUE(fs::exists(src_ / "top.txt"));
}

// Some uploads fail (the server refuses one key), others succeed: exit 6 (partial), the
// failure named, and no delete sent even though the destination has a file to delete.
TEST_F(sync_cli_test, partial_failure_exits_6_and_deletes_nothing) {
  httplib::Server svr;
  std::atomic<int> deletes{0}, puts_ok{0};
  svr.set_logger([](const httplib::Request&, const httplib::Response&) {});
  svr.Get(".*", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>bucket</Name>"
        "<Prefix>x/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>"
        "<IsTruncated>false</IsTruncated><Contents><Key>x/extra.txt</Key><Size>5</Size>"
        "<LastModified>2026-01-01T00:00:00.000Z</LastModified>"
        "<ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag></Contents>"
        "</ListBucketResult>",
        "application/xml");
  });
  svr.Put(".*", [&](const httplib::Request& req, httplib::Response& res) {
    if (req.path.find("refused") != std::string::npos) {
      res.status = 500;
      res.set_content("<Error><Code>InternalError</Code><Message>no</Message></Error>",
                      "application/xml");
      return;
    }
    ++puts_ok;
    res.set_header("ETag", "\"d41d8cd98f00b204e9800998ecf8427e\"");
  });
  svr.Delete(".*", [&](const httplib::Request&, httplib::Response& res) {
    ++deletes;
    res.status = 204;
  });
  const int port = svr.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread server([&] { svr.listen_after_bind(); });
  struct stop_server {
    httplib::Server& s;
    std::thread& t;
    ~stop_server() {
      s.stop();
      t.join();
    }
  } stopper{svr, server};

  make_source();
  write(src_ / "refused.txt", "the server refuses this key");
  const env_list env = {
      {"RCLONE_CONFIG_HALF_TYPE", "s3"},
      {"RCLONE_CONFIG_HALF_ACCESS_KEY_ID", "id"},
      {"RCLONE_CONFIG_HALF_SECRET_ACCESS_KEY", "secret"},
      {"RCLONE_CONFIG_HALF_ENDPOINT", "http://127.0.0.1:" + std::to_string(port)}};
  auto r = tide({"sync", src_.string(), "half:bucket/x"}, env);
  EXPECT_EQ(r.status, 6) << r.output;
  EXPECT_NE(r.output.find("copy refused.txt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("nothing was deleted"), std::string::npos) << r.output;
  EXPECT_EQ(puts_ok.load(), 5) << "the other files were uploaded";
  EXPECT_EQ(deletes.load(), 0) << "x/extra.txt is not deleted after a failed copy";
}

// --- against s3rver -----------------------------------------------------------------------

class sync_cli_s3_test : public sync_cli_test {
 protected:
  static void SetUpTestSuite() { s3_.start("synccli-s3", {k_bucket}); }
  static void TearDownTestSuite() { s3_.stop(); }
  void SetUp() override {
    sync_cli_test::SetUp();
    TIDESYNC_REQUIRE_S3RVER_SUITE(s3_);
  }
  env_list env() const {
    return {{"RCLONE_CONFIG_S3T_TYPE", "s3"},
            {"RCLONE_CONFIG_S3T_PROVIDER", "Other"},
            {"RCLONE_CONFIG_S3T_ACCESS_KEY_ID", "S3RVER"},
            {"RCLONE_CONFIG_S3T_SECRET_ACCESS_KEY", "S3RVER"},
            {"RCLONE_CONFIG_S3T_ENDPOINT", s3_.endpoint()}};
  }
  tidesync::transfer::s3_config config() const {
    tidesync::transfer::s3_config cfg;
    cfg.endpoint = s3_.endpoint();
    cfg.access_key_id = "S3RVER";
    cfg.secret_access_key = "S3RVER";
    return cfg;
  }

  static inline tidesync::test::s3rver_suite s3_;
};

TEST_F(sync_cli_s3_test, local_to_s3_to_local_round_trip_with_multipart_and_deletes) {
  make_source();
  write(src_ / "big" / "70mib.bin", payload(70ull << 20, 11));
  const std::string remote = "s3t:" + k_bucket + "/round trip";
  auto up = tide({"sync", src_.string(), remote}, env());
  ASSERT_EQ(up.status, 0) << up.output;
  EXPECT_NE(up.output.find("copied 6 file(s)"), std::string::npos) << up.output;

  tidesync::http::loop loop;
  tidesync::transfer::s3_client s3(loop, config());
  auto head = s3.head_sync(k_bucket, "round trip/big/70mib.bin");
  ASSERT_TRUE(head) << head.error().to_string();
  // s3rver's ETag does not tell a multipart object apart; its request log does.
  auto parts_logged = [] {
    const std::string log = read(fs::path(s3_.dir) / "s3rver.log");
    size_t n = 0;
    for (auto pos = log.find("70mib.bin?partNumber="); pos != std::string::npos;
         pos = log.find("70mib.bin?partNumber=", pos + 1))
      ++n;
    return n;
  };
  EXPECT_TRUE(tidesync::test::eventually([&] { return parts_logged() >= 9; }, 5s))
      << "a 70 MiB file goes up in 9 parts of 8 MiB; s3rver logged " << parts_logged();
  EXPECT_EQ(parts_logged(), 9u);
  EXPECT_FALSE(head->metadata["mtime"].empty()) << "x-amz-meta-mtime is set";

  auto again = tide({"sync", src_.string(), remote}, env());
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("copied 0 file(s)"), std::string::npos) << again.output;

  auto down = tide({"sync", remote, dst_.string()}, env());
  ASSERT_EQ(down.status, 0) << down.output;
  EXPECT_EQ(tree(dst_), tree(src_));
  EXPECT_EQ(fs::last_write_time(dst_ / "big/70mib.bin"),
            fs::last_write_time(src_ / "big/70mib.bin"))
      << "the mtime travels through x-amz-meta-mtime";
  auto down_again = tide({"sync", remote, dst_.string()}, env());
  EXPECT_NE(down_again.output.find("copied 0 file(s)"), std::string::npos) << down_again.output;

  // A source deletion reaches S3 by sync, not by copy.
  fs::remove(src_ / "top.txt");
  ASSERT_EQ(tide({"copy", src_.string(), remote}, env()).status, 0);
  EXPECT_TRUE(s3.head_sync(k_bucket, "round trip/top.txt"));
  auto del = tide({"sync", src_.string(), remote}, env());
  ASSERT_EQ(del.status, 0) << del.output;
  EXPECT_NE(del.output.find("deleted 1"), std::string::npos) << del.output;
  EXPECT_FALSE(s3.head_sync(k_bucket, "round trip/top.txt"));
}

TEST_F(sync_cli_s3_test, empty_local_source_refuses_to_empty_the_remote) {
  write(src_ / "one.txt", "1");
  const std::string remote = "s3t:" + k_bucket + "/guarded";
  ASSERT_EQ(tide({"sync", src_.string(), remote}, env()).status, 0);
  fs::remove(src_ / "one.txt");
  auto r = tide({"sync", src_.string(), remote}, env());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--force-delete-remote-dir"), std::string::npos) << r.output;
  tidesync::http::loop loop;
  tidesync::transfer::s3_client s3(loop, config());
  EXPECT_TRUE(s3.head_sync(k_bucket, "guarded/one.txt"));
}

TEST_F(sync_cli_s3_test, seed_commands_with_remote_env_round_trip) {
  make_source();
  env_list env = {{"REMOTE_TYPE", "s3"},
                  {"REMOTE_PROVIDER", "Minio"},
                  {"REMOTE_ACCESS_KEY_ID", "S3RVER"},
                  {"REMOTE_SECRET_ACCESS_KEY", "S3RVER"},
                  {"REMOTE_ENDPOINT", s3_.endpoint()},
                  {"REMOTE_ACL", "private"}};
  auto up = tide({"sync-to-remote", "-s", src_.string(), "-d", k_bucket + "/seed dir"}, env);
  ASSERT_EQ(up.status, 0) << up.output;
  EXPECT_NE(up.output.find("copied 5 file(s)"), std::string::npos) << up.output;
  auto down = tide(with_root_override({"remote-to-local-sync", "-v", "-s", k_bucket + "/seed dir",
                                       "-d", dst_.string()}),
                   env);
  ASSERT_EQ(down.status, 0) << down.output;
  EXPECT_EQ(tree(dst_), tree(src_));
  auto usage = tide({"sync-to-remote", "-s", src_.string()}, env);
  EXPECT_EQ(usage.status, 2) << usage.output;
  EXPECT_NE(usage.output.find("want -s SOURCE and -d DESTINATION"), std::string::npos)
      << usage.output;
}

TEST_F(sync_cli_s3_test, sigterm_runs_one_last_sync_to_the_remote) {
  write(src_ / "one.txt", "1");
  env_list vars = env();
  vars.emplace_back("REMOTE_TYPE", "s3");
  vars.emplace_back("REMOTE_ACCESS_KEY_ID", "S3RVER");
  vars.emplace_back("REMOTE_SECRET_ACCESS_KEY", "S3RVER");
  vars.emplace_back("REMOTE_ENDPOINT", s3_.endpoint());
  // A schedule that does not fire during the test: only the last sync can upload.
  tidesync::test::child c({k_binary, "sync-to-remote", "-s", src_.string(), "-d",
                           k_bucket + "/last", "--schedule", "@every 1h", "-q"},
                          vars);
  auto waiting = c.read_until(
      [](const std::string& l) { return l.find("next run at") != std::string::npos; }, 20s);
  ASSERT_FALSE(waiting.empty()) << c.output();
  EXPECT_EQ(c.stop(30s), 0) << c.output();
  c.read_until([](const std::string&) { return false; }, 5s);  // the rest, up to EOF
  EXPECT_NE(c.output().find("one last sync before exit"), std::string::npos) << c.output();
  tidesync::http::loop loop;
  tidesync::transfer::s3_client s3(loop, config());
  EXPECT_TRUE(s3.head_sync(k_bucket, "last/one.txt")) << c.output();
}

TEST_F(sync_cli_s3_test, multipart_objects_carry_md5chksum_and_sha256_for_checksum_runs) {
  const std::string big = payload(20u << 20, 21);  // above the 16 MiB multipart threshold
  write(src_ / "big.bin", big);
  write(src_ / "small.txt", "small");
  const std::string remote = "s3t:" + k_bucket + "/hashed";
  auto up = tide({"sync", src_.string(), remote}, env());
  ASSERT_EQ(up.status, 0) << up.output;

  tidesync::http::loop loop;
  tidesync::transfer::s3_client s3(loop, config());
  auto head = s3.head_sync(k_bucket, "hashed/big.bin");
  ASSERT_TRUE(head) << head.error().to_string();
  // rclone's md5chksum is the base64 of the raw MD5; sha256 is hex.
  const std::string file = "'" + (src_ / "big.bin").string() + "'";
  auto b64 = run({"sh", "-c", "openssl dgst -md5 -binary " + file + " | base64"});
  auto sha = run({"sh", "-c", "sha256sum " + file + " | cut -c1-64"});
  auto trim = [](std::string t) {
    while (!t.empty() && (t.back() == '\n' || t.back() == ' '))
      t.pop_back();
    return t;
  };
  ASSERT_EQ(b64.status, 0) << b64.output;
  EXPECT_EQ(head->metadata["md5chksum"], trim(b64.output));
  EXPECT_EQ(head->metadata["sha256"], trim(sha.output));

  // A --checksum run reads the hashes back (HEAD) and moves nothing.
  auto again = tide({"sync", "--checksum", src_.string(), remote}, env());
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("copied 0 file(s)"), std::string::npos) << again.output;
  // A changed byte with the same size and mtime is found by --checksum.
  std::string changed = big;
  changed[12345] ^= 1;
  const auto mtime = fs::last_write_time(src_ / "big.bin");
  write(src_ / "big.bin", changed);
  fs::last_write_time(src_ / "big.bin", mtime);
  auto plain = tide({"sync", src_.string(), remote}, env());
  EXPECT_NE(plain.output.find("copied 0 file(s)"), std::string::npos)
      << "size and mtime agree: a default run cannot see it\n"
      << plain.output;
  auto sums = tide({"sync", "--checksum", src_.string(), remote}, env());
  ASSERT_EQ(sums.status, 0) << sums.output;
  EXPECT_NE(sums.output.find("copied 1 file(s)"), std::string::npos) << sums.output;
}

TEST_F(sync_cli_s3_test, a_killed_upload_is_resumed_by_the_next_run) {
  make_source();
  write(src_ / "big.bin", payload(40u << 20, 5));  // multipart, 5 parts
  const std::string remote = "s3t:" + k_bucket + "/resume";
  tidesync::test::child c(
      {k_binary, "sync", src_.string(), remote, "--bwlimit", "8M", "--stats", "50ms"}, env());
  auto moving = c.read_until(
      [](const std::string& l) {
        return l.find("\"phase\":\"transferring\"") != std::string::npos &&
               l.find("\"bytes\":0,") == std::string::npos;
      },
      20s);
  ASSERT_FALSE(moving.empty()) << c.output();
  c.kill();
  auto resumed = tide({"sync", src_.string(), remote}, env());
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  auto down = tide({"sync", remote, dst_.string()}, env());
  ASSERT_EQ(down.status, 0) << down.output;
  EXPECT_EQ(tree(dst_), tree(src_));
}

}  // namespace
