// `tidesync agent populate` end to end: the real binary (TIDESYNC_BINARY) filling a directory
// (the volume) from a Python HTTP server on 127.0.0.1 (http.server with byte ranges, ETag and a
// request log; started here, stopped by PID), from s3rver, and from a local directory (pvc).
//
// Peers: python3 and s3rver. Without them those tests skip, unless TIDESYNC_REQUIRE_PEERS is set.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/transfer/s3_client.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/s3rver.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using env_list = std::vector<std::pair<std::string, std::string>>;
using tidesync::test::payload;
using tidesync::test::run;

const std::string k_binary = TIDESYNC_BINARY;
constexpr size_t k_big = size_t{20} << 20;

std::string read(const fs::path& p) {
  return tidesync::test::read_file(p);
}
void write(const fs::path& p, const std::string& data) {
  tidesync::test::write_file(p, data);
}

std::string sha256(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* digits = "0123456789abcdef";
  std::string s = "sha256:";
  for (unsigned i = 0; i < len; ++i) {
    s.push_back(digits[md[i] >> 4]);
    s.push_back(digits[md[i] & 15]);
  }
  return s;
}

tidesync::json::value read_json(const fs::path& p) {
  auto v = tidesync::json::parse(read(p));
  return v ? *v : tidesync::json::value();
}

tidesync::test::run_result tide(std::vector<std::string> args, const env_list& env = {}) {
  args.insert(args.begin(), {k_binary, "agent", "populate"});
  return run(args, env, 60s);
}

// A file server with what populate relies on: HEAD, "Range: bytes=N-" (206, 416), ETag and
// Last-Modified; /private/* answers 403. Every request is logged as "METHOD PATH RANGE".
constexpr const char* k_server = R"PY(
import http.server, os, re, shutil, sys, urllib.parse
root, log = sys.argv[1], open(sys.argv[2], 'a', buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def empty(self, status, extra={}):
        self.send_response(status)
        for k, v in extra.items(): self.send_header(k, v)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def serve(self, body):
        log.write('%s %s %s\n' % (self.command, self.path, self.headers.get('Range', '-')))
        rel = urllib.parse.unquote(self.path.split('?')[0]).lstrip('/')
        if rel.startswith('private/'): return self.empty(403)
        path = os.path.join(root, rel)
        if not os.path.isfile(path): return self.empty(404)
        st = os.stat(path); size = st.st_size; start = 0; status = 200
        m = re.fullmatch(r'bytes=(\d+)-', self.headers.get('Range', ''))
        if m:
            start = int(m.group(1))
            if start >= size: return self.empty(416, {'Content-Range': 'bytes */%d' % size})
            status = 206
        self.send_response(status)
        self.send_header('Content-Length', str(size - start))
        self.send_header('Accept-Ranges', 'bytes')
        self.send_header('ETag', '"%x-%x"' % (st.st_mtime_ns, size))
        self.send_header('Last-Modified', self.date_time_string(int(st.st_mtime)))
        if status == 206: self.send_header('Content-Range', 'bytes %d-%d/%d' % (start, size - 1, size))
        self.end_headers()
        if body:
            with open(path, 'rb') as f:
                f.seek(start)
                shutil.copyfileobj(f, self.wfile)
    def do_GET(self): self.serve(True)
    def do_HEAD(self): self.serve(False)
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
print('Serving HTTP on 127.0.0.1 port %d' % s.server_address[1], flush=True)
s.serve_forever()
)PY";

bool python_available() {
  static const bool available = run({"python3", "-c", "import http.server"}, {}, 20s).status == 0;
  return available;
}

class agent_populate_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/tidesync-populate-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    src_ = dir_ / "src";
    dest_ = dir_ / "volume";
    tlog_ = dir_ / "termination-log";
    fs::create_directories(src_);
  }
  void TearDown() override {
    if (server_) server_->stop();
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // Starts the HTTP peer on src_; false (after FAIL or SKIP) without python3.
  void start_http() {
    if (!python_available()) {
      if (std::getenv("TIDESYNC_REQUIRE_PEERS") != nullptr)
        FAIL() << "TIDESYNC_REQUIRE_PEERS is set but python3 is missing";
      GTEST_SKIP() << "python3 is missing";
    }
    write(dir_ / "server.py", k_server);
    server_ = std::make_unique<tidesync::test::child>(
        std::vector<std::string>{"python3", "-u", (dir_ / "server.py").string(), src_.string(),
                                 (dir_ / "requests.log").string()});
    const auto line = server_->read_until(
        [](const std::string& l) { return l.find("Serving HTTP on") != std::string::npos; }, 15s);
    const auto at = line.find(" port ");
    ASSERT_NE(at, std::string::npos) << server_->output();
    base_ = "http://127.0.0.1:" + std::to_string(std::atoi(line.c_str() + at + 6)) + "/";
  }

  // The server's request lines so far.
  std::vector<std::string> requests() const {
    std::vector<std::string> out;
    std::string text = read(dir_ / "requests.log"), line;
    for (char c : text) {
      if (c == '\n') {
        out.push_back(line);
        line.clear();
      } else {
        line.push_back(c);
      }
    }
    return out;
  }
  size_t count(const std::string& prefix) const {
    const auto r = requests();
    return static_cast<size_t>(std::count_if(
        r.begin(), r.end(), [&](const std::string& l) { return l.rfind(prefix, 0) == 0; }));
  }

  std::vector<std::string> http_args(const std::string& name) const {
    return {"--source-type",     "http",        "--url", base_ + name, "--dest", dest_.string(),
            "--termination-log", tlog_.string()};
  }

  fs::path dir_, src_, dest_, tlog_;
  std::string base_;
  std::unique_ptr<tidesync::test::child> server_;
};

TEST_F(agent_populate_test, http_download_verified_then_already_present_without_a_get) {
  start_http();
  if (IsSkipped() || HasFatalFailure()) return;
  const std::string data = payload(k_big, 1);
  write(src_ / "disk image.qcow2", data);
  auto args = http_args("disk%20image.qcow2");
  args.insert(args.end(), {"--checksum", sha256(data), "--size", std::to_string(k_big)});
  auto r = tide(args);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read(dest_ / "disk image.qcow2"), data);
  EXPECT_FALSE(fs::exists(dest_ / ".disk image.qcow2.partial"));
  const auto rec = read_json(dest_ / ".tidesync-digest");
  EXPECT_EQ(rec.get_string("digest"), sha256(data));
  EXPECT_EQ(rec.get_int("size"), static_cast<int64_t>(k_big));
  EXPECT_EQ(rec.get_string("source"), base_ + "disk%20image.qcow2");
  EXPECT_EQ(rec.get_string("file"), "disk image.qcow2");
  EXPECT_FALSE(rec.get_string("etag").empty());
  const auto tl = read_json(tlog_);
  EXPECT_EQ(tl.get_string("reason"), "Succeeded");
  EXPECT_EQ(tl.get_string("digest"), sha256(data));
  EXPECT_EQ(tl.get_int("bytes"), static_cast<int64_t>(k_big));
  EXPECT_EQ(count("GET "), 1u);

  struct stat before {};
  ASSERT_EQ(::stat((dest_ / "disk image.qcow2").c_str(), &before), 0);
  const size_t requests_before = requests().size();
  auto again = tide(args);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("already present"), std::string::npos) << again.output;
  // With a checksum the record is enough: not even a HEAD.
  EXPECT_EQ(requests().size(), requests_before);
  struct stat after {};
  ASSERT_EQ(::stat((dest_ / "disk image.qcow2").c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
  EXPECT_EQ(read_json(tlog_).get_string("reason"), "Succeeded");

  // Another checksum wanted (a new version of the image): downloaded again.
  const std::string v2 = payload(1000, 2);
  write(src_ / "disk image.qcow2", v2);
  auto args2 = http_args("disk%20image.qcow2");
  args2.insert(args2.end(), {"--checksum", sha256(v2)});
  auto third = tide(args2);
  ASSERT_EQ(third.status, 0) << third.output;
  EXPECT_EQ(third.output.find("already present"), std::string::npos) << third.output;
  EXPECT_EQ(read(dest_ / "disk image.qcow2"), v2);
  EXPECT_EQ(count("GET "), 2u);
}

TEST_F(agent_populate_test, preload_without_checksum_compares_source_size_and_etag) {
  start_http();
  if (IsSkipped() || HasFatalFailure()) return;
  write(src_ / "img.raw", payload(300'000, 3));
  auto r = tide(http_args("img.raw"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read(dest_ / "img.raw"), payload(300'000, 3));

  auto again = tide(http_args("img.raw"));
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("already present"), std::string::npos) << again.output;
  EXPECT_EQ(count("GET "), 1u);
  EXPECT_EQ(count("HEAD "), 2u);

  // The source changed (new ETag): downloaded again.
  write(src_ / "img.raw", payload(300'001, 4));
  auto third = tide(http_args("img.raw"));
  ASSERT_EQ(third.status, 0) << third.output;
  EXPECT_EQ(third.output.find("already present"), std::string::npos) << third.output;
  EXPECT_EQ(read(dest_ / "img.raw"), payload(300'001, 4));
  EXPECT_EQ(count("GET "), 2u);

  // The file in the volume was changed behind the record's back: not trusted.
  write(dest_ / "img.raw", "tampered");
  auto fourth = tide(http_args("img.raw"));
  ASSERT_EQ(fourth.status, 0) << fourth.output;
  EXPECT_EQ(read(dest_ / "img.raw"), payload(300'001, 4));
  EXPECT_EQ(count("GET "), 3u);
}

TEST_F(agent_populate_test, resume_fetches_only_the_rest_with_a_range_request) {
  start_http();
  if (IsSkipped() || HasFatalFailure()) return;
  const std::string data = payload(k_big, 5);
  write(src_ / "big.bin", data);
  write(dest_ / ".big.bin.partial", data.substr(0, 5u << 20));
  auto args = http_args("big.bin");
  args.insert(args.end(), {"--checksum", sha256(data)});
  auto r = tide(args);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from 5242880"), std::string::npos) << r.output;
  EXPECT_EQ(read(dest_ / "big.bin"), data);
  const auto reqs = requests();
  EXPECT_EQ(count("GET "), 1u);
  EXPECT_EQ(count("GET /big.bin bytes=5242880-"), 1u) << ::testing::PrintToString(reqs);

  // A complete partial (the run died before the rename) is only verified.
  fs::remove(dest_ / "big.bin");
  fs::remove(dest_ / ".tidesync-digest");
  write(dest_ / ".big.bin.partial", data);
  auto complete = tide(args);
  ASSERT_EQ(complete.status, 0) << complete.output;
  EXPECT_EQ(read(dest_ / "big.bin"), data);
  EXPECT_EQ(count("GET "), 1u);
}

TEST_F(agent_populate_test, partial_of_another_source_version_starts_over) {
  start_http();
  if (IsSkipped() || HasFatalFailure()) return;
  const std::string data = payload(3u << 20, 12);
  write(src_ / "img.raw", data);
  // Bytes of an older version, with the sidecar saying which version they came from.
  write(dest_ / ".img.raw.partial", payload(1u << 20, 13));
  write(dest_ / ".img.raw.partial.source",
        R"({"source":")" + base_ + R"(img.raw","size":3145728,"etag":"old","lastModified":""})");
  auto r = tide(http_args("img.raw"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("the source changed"), std::string::npos) << r.output;
  EXPECT_EQ(read(dest_ / "img.raw"), data);
  EXPECT_EQ(count("GET /img.raw -"), 1u) << ::testing::PrintToString(requests());
  EXPECT_FALSE(fs::exists(dest_ / ".img.raw.partial.source"));
}

TEST_F(agent_populate_test, wrong_checksum_exits_4_naming_both_digests_and_leaves_nothing) {
  start_http();
  if (IsSkipped() || HasFatalFailure()) return;
  const std::string data = payload(1 << 20, 6);
  write(src_ / "img.raw", data);
  const std::string wanted = sha256("something else");
  auto args = http_args("img.raw");
  args.insert(args.end(), {"--checksum", wanted});
  auto r = tide(args);
  EXPECT_EQ(r.status, 4) << r.output;
  EXPECT_NE(r.output.find(wanted), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(sha256(data)), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dest_ / "img.raw"));
  EXPECT_FALSE(fs::exists(dest_ / ".img.raw.partial"));
  EXPECT_FALSE(fs::exists(dest_ / ".img.raw.partial.source"));
  EXPECT_FALSE(fs::exists(dest_ / ".tidesync-digest"));
  const auto tl = read_json(tlog_);
  EXPECT_EQ(tl.get_string("reason"), "ChecksumMismatch");
  EXPECT_NE(tl.get_string("message").find(wanted), std::string::npos);

  // A wrong --size is a mismatch too, found before any GET.
  auto sized = http_args("img.raw");
  sized.insert(sized.end(), {"--size", "12345"});
  auto s = tide(sized);
  EXPECT_EQ(s.status, 4) << s.output;
  EXPECT_NE(s.output.find("12345"), std::string::npos) << s.output;
  EXPECT_NE(s.output.find(std::to_string(1 << 20)), std::string::npos) << s.output;
  EXPECT_FALSE(fs::exists(dest_ / "img.raw"));
}

TEST_F(agent_populate_test, missing_source_exits_3_and_forbidden_exits_5) {
  start_http();
  if (IsSkipped() || HasFatalFailure()) return;
  auto r = tide(http_args("nope.qcow2"));
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find("404"), std::string::npos) << r.output;
  EXPECT_EQ(read_json(tlog_).get_string("reason"), "MissingSource");
  EXPECT_FALSE(fs::exists(dest_ / "nope.qcow2"));

  auto f = tide(http_args("private/x.img"));
  EXPECT_EQ(f.status, 5) << f.output;
  EXPECT_EQ(read_json(tlog_).get_string("reason"), "Unauthorized");
}

TEST_F(agent_populate_test, pvc_source_copies_resumes_and_reports_a_missing_path) {
  const std::string data = payload(3u << 20, 8);
  write(src_ / "golden" / "disk.img", data);
  std::vector<std::string> args = {"--source-type",
                                   "pvc",
                                   "--url",
                                   "pvc://golden-images/golden/disk.img",
                                   "--dest",
                                   dest_.string(),
                                   "--pvc-root",
                                   src_.string(),
                                   "--termination-log",
                                   tlog_.string(),
                                   "--checksum",
                                   sha256(data)};
  write(dest_ / ".disk.img.partial", data.substr(0, 1u << 20));
  auto r = tide(args);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from 1048576"), std::string::npos) << r.output;
  EXPECT_EQ(read(dest_ / "disk.img"), data);
  EXPECT_EQ(read_json(dest_ / ".tidesync-digest").get_string("digest"), sha256(data));

  auto again = tide(args);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("already present"), std::string::npos) << again.output;

  auto missing =
      tide({"--source-type", "pvc", "--url", "pvc://golden-images/golden/nope.img", "--dest",
            dest_.string(), "--pvc-root", src_.string(), "--termination-log", tlog_.string()});
  EXPECT_EQ(missing.status, 3) << missing.output;
  EXPECT_EQ(read_json(tlog_).get_string("reason"), "MissingSource");
}

TEST_F(agent_populate_test, bad_arguments_exit_2_with_usage) {
  const std::vector<std::vector<std::string>> cases = {
      {"--url", "http://x/a.img", "--dest", dest_.string()},                     // no type
      {"--source-type", "ftp", "--url", "ftp://x/a", "--dest", dest_.string()},  // bad type
      {"--source-type", "http", "--url", "s3://b/k", "--dest", dest_.string()},  // mismatch
      {"--source-type", "http", "--url", "http://x/a.img"},                      // no dest
      {"--source-type", "http", "--url", "http://x/a.img", "--dest", dest_.string(), "--checksum",
       "md5:abc"},
      {"--source-type", "http", "--url", "http://x/a.img", "--dest", dest_.string(), "--size",
       "-1"},
      {"--source-type", "http", "--url", "http://x/", "--dest", dest_.string()},  // no file name
      {"--source-type", "http", "--url", "http://x/a.img", "--dest", dest_.string(), "--bogus"},
  };
  for (const auto& c : cases) {
    auto r = tide(c);
    EXPECT_EQ(r.status, 2) << ::testing::PrintToString(c) << "\n" << r.output;
    EXPECT_NE(r.output.find("Usage: tidesync agent populate"), std::string::npos) << r.output;
  }
  EXPECT_FALSE(fs::exists(dest_));
  // agent wait's own cases are in datasync_test; here only that it is a subcommand with usage.
  auto w = run({k_binary, "agent", "wait"});
  EXPECT_EQ(w.status, 2) << w.output;
  EXPECT_NE(w.output.find("Usage: tidesync agent wait datasync/NAME"), std::string::npos)
      << w.output;
  auto none = run({k_binary, "agent"});
  EXPECT_EQ(none.status, 2) << none.output;
}

// --- S3 --------------------------------------------------------------------------------------

constexpr const char* k_bucket = "images";

class agent_populate_s3_test : public agent_populate_test {
 protected:
  static void SetUpTestSuite() { s3_.start("populate-s3", {k_bucket}); }
  static void TearDownTestSuite() { s3_.stop(); }
  void SetUp() override {
    TIDESYNC_REQUIRE_S3RVER_SUITE(s3_);
    agent_populate_test::SetUp();
  }
  static env_list env() {
    return {{"REMOTE_TYPE", "s3"},
            {"REMOTE_PROVIDER", "Minio"},
            {"REMOTE_ACCESS_KEY_ID", "S3RVER"},
            {"REMOTE_SECRET_ACCESS_KEY", "S3RVER"},
            {"REMOTE_ENDPOINT", s3_.endpoint()}};
  }
  static inline tidesync::test::s3rver_suite s3_;
};

TEST_F(agent_populate_s3_test, s3_object_populated_resumed_and_missing_key) {
  const std::string data = payload(6u << 20, 9);
  {
    tidesync::http::loop loop;
    tidesync::transfer::s3_config cfg;
    cfg.endpoint = s3_.endpoint();
    cfg.access_key_id = "S3RVER";
    cfg.secret_access_key = "S3RVER";
    tidesync::transfer::s3_client s3(loop, cfg);
    auto put = s3.put_sync(k_bucket, "vm/tools.qcow2", data);
    ASSERT_TRUE(put) << put.error().to_string();
  }

  std::vector<std::string> args = {"--source-type",
                                   "s3",
                                   "--url",
                                   std::string("s3://") + k_bucket + "/vm/tools.qcow2",
                                   "--dest",
                                   dest_.string(),
                                   "--termination-log",
                                   tlog_.string(),
                                   "--checksum",
                                   sha256(data)};
  write(dest_ / ".tools.qcow2.partial", data.substr(0, 2u << 20));
  auto r = tide(args, env());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from 2097152"), std::string::npos) << r.output;
  EXPECT_EQ(read(dest_ / "tools.qcow2"), data);
  // The secret never shows.
  EXPECT_EQ(r.output.find("S3RVER"), std::string::npos) << r.output;

  auto missing = tide({"--source-type", "s3", "--url", std::string("s3://") + k_bucket + "/vm/no",
                       "--dest", dest_.string(), "--termination-log", tlog_.string()},
                      env());
  EXPECT_EQ(missing.status, 3) << missing.output;
  EXPECT_EQ(read_json(tlog_).get_string("reason"), "MissingSource");
}

}  // namespace
