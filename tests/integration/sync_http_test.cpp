// HTTP(S) read-only sources end to end: the real binary (TIDESYNC_BINARY) syncing from
// Python's http.server on 127.0.0.1 (started here, stopped by PID), and the backend itself
// against cpp-httplib in this process for what http.server cannot do (byte ranges, injected
// 5xx answers, a missing Content-Length).
//
// Peer: python3. Without it the http.server tests skip, unless TIDESYNC_REQUIRE_PEERS is set.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/http/loop.hpp"
#include "runtime/transfer/backend.hpp"
#include "runtime/transfer/remote.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using tidesync::test::run;
using env_list = std::vector<std::pair<std::string, std::string>>;
using sys_clock = std::chrono::system_clock;

const std::string k_binary = TIDESYNC_BINARY;

using tidesync::test::payload;
using tidesync::test::tree;
void write(const fs::path& p, const std::string& data) {
  tidesync::test::write_file(p, data);
}
std::string read(const fs::path& p) {
  return tidesync::test::read_file(p);
}

sys_clock::time_point mtime(const fs::path& p) {
  return std::chrono::file_clock::to_sys(fs::last_write_time(p));
}

std::vector<std::string> with_root_override(std::vector<std::string> argv) {
  if (::geteuid() == 0) argv.emplace_back("--force-delete-local-dir");
  return argv;
}

bool python_available() {
  static const bool available = run({"python3", "-c", "import http.server"}, {}, 20s).status == 0;
  return available;
}

#define REQUIRE_PYTHON()                                                                \
  do {                                                                                  \
    if (!python_available()) {                                                          \
      if (std::getenv("TIDESYNC_REQUIRE_PEERS") != nullptr)                             \
        FAIL() << "TIDESYNC_REQUIRE_PEERS is set but python3 (http.server) is missing"; \
      GTEST_SKIP() << "python3 is missing";                                             \
    }                                                                                   \
  } while (false)

class sync_http_test : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_PYTHON();
    char tmpl[] = "/var/tmp/tidesync-synchttp-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    src_ = dir_ / "src";
    dst_ = dir_ / "dst";
    make_source();
    // Access logs go to stderr: dropped, so a full pipe never blocks the server. exec keeps
    // the PID, so stopping the child stops the server.
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
    write(src_ / "sub" / "a&b #1.txt", "amp and hash\n");
    write(src_ / "sub" / "nested" / "x.txt", "x\n");
    write(src_ / "big.bin", payload(20 << 20, 11));
    // Times with a fraction: HTTP carries whole seconds, so the copies get the floor.
    auto t = sys_clock::time_point(std::chrono::seconds(1'700'000'000) + 123ms);
    for (const auto& e : fs::recursive_directory_iterator(src_)) {
      if (!e.is_regular_file()) continue;
      t += 3s;
      fs::last_write_time(e.path(), std::chrono::file_clock::from_sys(t));
    }
  }

  // Every file of `dst` has its source's mtime to the second.
  void expect_mtimes(const fs::path& from, const fs::path& dst) {
    for (const auto& e : fs::recursive_directory_iterator(dst)) {
      if (!e.is_regular_file()) continue;
      const auto rel = fs::relative(e.path(), dst);
      EXPECT_EQ(std::chrono::floor<std::chrono::seconds>(mtime(from / rel)),
                std::chrono::floor<std::chrono::seconds>(mtime(e.path())))
          << rel;
    }
  }

  fs::path dir_, src_, dst_;
  std::string base_;
  std::unique_ptr<tidesync::test::child> server_;
};

TEST_F(sync_http_test, directory_listing_sync_then_nothing_to_copy) {
  auto r = tide(with_root_override({"sync", base_, dst_.string()}));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("copied 8 file(s)"), std::string::npos) << r.output;
  EXPECT_EQ(tree(dst_), tree(src_));
  expect_mtimes(src_, dst_);

  auto again = tide(with_root_override({"sync", base_, dst_.string()}));
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("copied 0 file(s)"), std::string::npos) << again.output;

  // A change on the server is picked up; a file gone from it is deleted here.
  write(src_ / "top.txt", "changed, and longer\n");
  fs::remove(src_ / "sub" / "nested" / "x.txt");
  auto third = tide(with_root_override({"sync", base_, dst_.string()}));
  ASSERT_EQ(third.status, 0) << third.output;
  EXPECT_NE(third.output.find("copied 1 file(s)"), std::string::npos) << third.output;
  EXPECT_EQ(read(dst_ / "top.txt"), "changed, and longer\n");
  EXPECT_FALSE(fs::exists(dst_ / "sub" / "nested" / "x.txt"));
}

TEST_F(sync_http_test, env_remote_subdirectory_without_trailing_slash) {
  const env_list env = {{"RCLONE_CONFIG_WEB_TYPE", "http"}, {"RCLONE_CONFIG_WEB_URL", base_}};
  auto r = tide(with_root_override({"sync", "web:sub", dst_.string()}), env);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("copied 2 file(s)"), std::string::npos) << r.output;
  EXPECT_EQ(tree(dst_), tree(src_ / "sub"));
  expect_mtimes(src_ / "sub", dst_);

  auto again = tide(with_root_override({"sync", "web:sub/", dst_.string()}), env);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("copied 0 file(s)"), std::string::npos) << again.output;
}

TEST_F(sync_http_test, single_file_url_copies_that_file) {
  auto r = tide({"copy", base_ + "dir%20with%20spaces/na%C3%AFve%20r%C3%A9sum%C3%A9%20%C3%BC.txt",
                 dst_.string()});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("copied 1 file(s)"), std::string::npos) << r.output;
  EXPECT_EQ(tree(dst_), (std::map<std::string, std::string>{{"naïve résumé ü.txt", "unicode\n"}}));
  expect_mtimes(src_ / "dir with spaces", dst_);
}

TEST_F(sync_http_test, missing_url_fails_and_deletes_nothing) {
  write(dst_ / "precious.txt", "p");
  for (const auto& url : std::vector<std::string>{base_ + "nope/", base_ + "nope"}) {
    auto r = tide(with_root_override({"sync", url, dst_.string()}));
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("not found (HTTP 404"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(url), std::string::npos) << r.output;
    EXPECT_TRUE(fs::exists(dst_ / "precious.txt")) << url;
  }
}

TEST_F(sync_http_test, http_destination_is_refused) {
  auto r = tide({"sync", src_.string(), base_ + "upload/"});
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("read-only"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(src_ / "upload"));
}

// --- the backend against cpp-httplib -------------------------------------------------------

// Serves /files/ (a listing of big.bin and small.txt) with byte ranges and Last-Modified, and
// /bad/ whose file has no Content-Length. The first HEAD of big.bin gets a 503.
class range_server {
 public:
  range_server() : big_(payload(1'000'003, 5)) {
    svr_.Get("/files/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(
          R"(<html><body><a href="../">../</a><a href="?C=M;O=A">sort</a>)"
          R"(<a href="big.bin">big.bin</a> <a href="small.txt">small.txt</a></body></html>)",
          "text/html");
    });
    svr_.Get("/files/big.bin", [this](const httplib::Request& req, httplib::Response& res) {
      if (req.method == "HEAD" && heads_++ == 0) {
        res.status = 503;
        return;
      }
      if (req.has_header("Range")) ++ranged_gets_;
      res.set_header("Accept-Ranges", "bytes");
      res.set_header("Last-Modified", "Tue, 05 Mar 2024 10:20:30 GMT");
      res.set_content(big_, "application/octet-stream");  // httplib applies the Range
    });
    svr_.Get("/files/small.txt", [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Last-Modified", "Wed, 06 Mar 2024 00:00:01 GMT");
      res.set_content("small\n", "text/plain");
    });
    svr_.Get("/bad/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"(<a href="stream.txt">stream.txt</a>)", "text/html");
    });
    svr_.Get("/bad/stream.txt", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("text/plain", [](size_t, httplib::DataSink& sink) {
        sink.write("abc", 3);
        sink.done();
        return true;
      });
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    // httplib's stop() is a no-op until the accept loop runs: wait until it is running.
    tidesync::test::eventually([this] { return svr_.is_running(); }, 5s, 1ms);
  }
  ~range_server() {
    svr_.stop();
    thread_.join();
  }
  [[nodiscard]] std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  std::string big_;
  std::atomic<int> heads_{0}, ranged_gets_{0};

 private:
  httplib::Server svr_;
  int port_ = 0;
  std::thread thread_;
};

std::unique_ptr<tidesync::transfer::backend> http_source(tidesync::http::loop& loop,
                                                         const std::string& url) {
  auto loc = tidesync::transfer::parse_location(url, tidesync::transfer::process_env());
  EXPECT_TRUE(loc.has_value());
  tidesync::transfer::backend_options o;
  o.multipart_threshold = 200'000;
  o.part_size = 90'000;
  o.part_concurrency = 3;
  o.checkers = 4;
  return tidesync::transfer::make_http_backend(*loc, loop, o);
}

std::string read_all(tidesync::transfer::reader& r, std::string* err) {
  std::string out;
  char buf[65536];
  for (;;) {
    auto n = r.read(buf, sizeof buf);
    if (!n) {
      *err = n.error().message;
      return out;
    }
    if (*n == 0) return out;
    out.append(buf, *n);
  }
}

TEST(http_backend, ranged_reads_retry_and_exact_times) {
  range_server server;
  tidesync::http::loop loop;
  auto b = http_source(loop, server.url("/files/"));
  EXPECT_FALSE(b->writable());

  auto list = b->list();
  ASSERT_TRUE(list.has_value()) << list.error().message;
  ASSERT_EQ(list->size(), 2u);
  const auto& big = (*list)[0];
  EXPECT_EQ(big.path, "big.bin");
  EXPECT_EQ(big.size, server.big_.size());
  EXPECT_EQ(sys_clock::to_time_t(big.mtime), 1709634030);  // 2024-03-05T10:20:30Z
  EXPECT_EQ(server.heads_.load(), 2) << "the 503 is retried";
  EXPECT_EQ((*list)[1].path, "small.txt");
  EXPECT_EQ((*list)[1].size, 6u);

  auto r = b->open(big);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  std::string err;
  EXPECT_EQ(read_all(**r, &err), server.big_);
  EXPECT_EQ(err, "");
  EXPECT_EQ(server.ranged_gets_.load(), 12) << "1000003 bytes in ranges of 90000";

  // A size that no longer matches the server's is caught, not copied short.
  auto stale = big;
  stale.size -= 10;
  auto r2 = b->open(stale);
  ASSERT_TRUE(r2.has_value());
  read_all(**r2, &err);
  EXPECT_NE(err.find("changed size"), std::string::npos) << err;

  auto small = (*list)[1];
  small.size = 7;
  auto r3 = b->open(small);
  ASSERT_FALSE(r3.has_value());
  EXPECT_NE(r3.error().message.find("changed size"), std::string::npos) << r3.error().message;

  auto w = b->remove("small.txt");
  ASSERT_FALSE(w.has_value());
  EXPECT_NE(w.error().message.find("read-only"), std::string::npos);
}

TEST(http_backend, missing_content_length_and_not_found) {
  range_server server;
  tidesync::http::loop loop;
  auto list = http_source(loop, server.url("/bad/"))->list();
  ASSERT_FALSE(list.has_value());
  EXPECT_NE(list.error().message.find("Content-Length"), std::string::npos) << list.error().message;
  EXPECT_NE(list.error().message.find("/bad/stream.txt"), std::string::npos)
      << list.error().message;

  auto missing = http_source(loop, server.url("/files/none/"))->list();
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, tidesync::errc::not_found) << missing.error().message;
}

}  // namespace
