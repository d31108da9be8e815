// `tidesync agent config init|watch` end to end: the real binary (TIDESYNC_BINARY) keeping
// roots (stand-ins for the pods' /shared emptyDirs) on the latest revision of one owner's
// config in s3rver (scripts/s3rver.sh on 127.0.0.1, one per test with its own data directory
// and bucket, stopped by PID). The tests publish with the library directly (pack_bundle +
// config_store over an S3 backend): the publishing API comes in a later slice.
//
// Peers: node and s3rver@3.7.1. Without them the tests skip, unless TIDESYNC_REQUIRE_PEERS is
// set. No sleeps for synchronisation: every wait is a condition with a deadline.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "runtime/archive/bundle.hpp"
#include "runtime/archive/live_tree.hpp"
#include "runtime/archive/revision.hpp"
#include "runtime/archive/store.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/transfer/backend.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/raw_archive.hpp"
#include "tests/support/s3rver.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using env_list = std::vector<std::pair<std::string, std::string>>;
using tidesync::test::child;
using tidesync::test::eventually;
using tidesync::test::payload;
using tidesync::test::tree;
namespace archive = tidesync::archive;
namespace transfer = tidesync::transfer;

const std::string k_binary = TIDESYNC_BINARY;
const std::string k_owner_prefix = "spritz-config/alice";
// s3rver does not check signatures: a secret that must never appear in the agent's output.
const std::string k_secret = "not-to-be-printed-7f3a";

void write(const fs::path& p, const std::string& data) {
  tidesync::test::write_file(p, data);
}
std::string read(const fs::path& p) {
  return tidesync::test::read_file(p);
}

// The content of one revision: two files that always carry the same revision string (a
// reader that sees them differ saw a mix of two revisions), and a few more.
void make_config(const fs::path& dir, const std::string& marker) {
  write(dir / "a.txt", "revision=" + marker + "\n");
  write(dir / "nested" / "deeper" / "b.txt", "revision=" + marker + "\n");
  write(dir / "app.yaml", "name: alice\nmarker: " + marker + "\n");
  write(dir / "blob.bin", payload(200'000, static_cast<uint32_t>(marker.size())));
  fs::create_directories(dir / "empty");
  fs::create_symlink("nested/deeper/b.txt", dir / "b-link");
}

// ---- hostile archives, written with libarchive directly ----------------------------------

using tidesync::test::raw_entry;

tidesync::json::value read_status(const fs::path& root) {
  auto v = tidesync::json::parse(read(root / ".status.json"));
  return v ? *v : tidesync::json::value();
}

std::string status_string(const fs::path& root, std::string_view key) {
  return std::string(read_status(root).get_string(key));
}

// Reads some of what the child printed (its pipe never fills while a test waits).
void drain(child& c) {
  c.read_until([](const std::string&) { return false; }, 1ms);
}

// Whether the child printed a line with `needle`, waiting up to 10 s for it.
bool printed(child& c, const std::string& needle) {
  if (c.output().find(needle) != std::string::npos) return true;
  return !c.read_until([&](const std::string& l) { return l.find(needle) != std::string::npos; },
                       10s)
              .empty();
}

// Everything after the child exited, up to EOF.
void read_rest(child& c) {
  c.read_until([](const std::string&) { return false; }, 5s);
}

// Opens <root>/live once and reads two files through that one directory handle: the way a
// reader sees one whole revision. "" on any error (with `err` set).
std::optional<std::pair<std::string, std::string>> read_pair(const fs::path& root,
                                                             std::string& err) {
  int dir = ::open((root / "live").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    err = "open live: " + std::string(std::strerror(errno));
    return std::nullopt;
  }
  auto read_at = [&](const char* rel) -> std::optional<std::string> {
    int fd = ::openat(dir, rel, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      err = std::string("open ") + rel + ": " + std::strerror(errno);
      return std::nullopt;
    }
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0)
      out.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return out;
  };
  auto a = read_at("a.txt");
  auto b = a ? read_at("nested/deeper/b.txt") : std::nullopt;
  ::close(dir);
  if (!a || !b) return std::nullopt;
  return std::make_pair(*a, *b);
}

class agent_config_test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { missing_ = tidesync::test::s3rver_peer::missing(); }

  void SetUp() override {
    char tmpl[] = "/var/tmp/tidesync-agentcfg-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    TIDESYNC_REQUIRE_S3RVER_OR_SKIP(missing_);
    // Each test: its own s3rver data directory and its own bucket.
    s3_dir_ = (dir_ / "s3rver").string();
    fs::create_directories(s3_dir_);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    bucket_ = "cfg-" + std::to_string(::getpid()) + "-" + std::to_string(++counter_);
    std::string output;
    port_ = tidesync::test::s3rver_peer::start(s3_dir_, {bucket_}, &output);
    ASSERT_GT(port_, 0) << "s3rver did not start for " << info->name() << ":\n" << output;

    transfer::location loc;
    loc.kind = transfer::location_kind::s3;
    loc.text = "publisher:" + bucket_ + "/" + k_owner_prefix;
    loc.bucket = bucket_;
    loc.prefix = k_owner_prefix + "/";
    loc.s3.endpoint = endpoint();
    loc.s3.access_key_id = "S3RVER";
    loc.s3.secret_access_key = "S3RVER";
    store_ = std::make_unique<archive::config_store>(
        transfer::make_s3_backend(loc, loop_, archive::store_backend_options()));
  }

  void TearDown() override {
    agents_.clear();  // stopped by PID before their server goes
    store_.reset();
    if (port_ > 0) tidesync::test::s3rver_peer::stop(s3_dir_);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  [[nodiscard]] std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // The seed's convention: REMOTE_* configures the remote named "remote".
  [[nodiscard]] env_list env() const {
    return {{"REMOTE_TYPE", "s3"},
            {"REMOTE_PROVIDER", "Other"},
            {"REMOTE_ACCESS_KEY_ID", "S3RVER"},
            {"REMOTE_SECRET_ACCESS_KEY", k_secret},
            {"REMOTE_ENDPOINT", endpoint()}};
  }
  [[nodiscard]] std::string store_arg() const { return "remote:" + bucket_ + "/" + k_owner_prefix; }

  // Packs `src`, uploads it as the next revision and points latest.json at it.
  std::string publish(const fs::path& src) {
    const fs::path file = dir_ / ("publish-" + std::to_string(++published_) + ".tar.zst");
    auto packed = archive::pack_bundle(src, file, archive::pack_options{.fsync = false});
    EXPECT_TRUE(packed) << packed.error().to_string();
    return publish_file(file, packed ? packed->sha256 : "");
  }

  // Uploads `file` as the next revision with latest.json saying `checksum` (its own sha256
  // when empty): bad bundles go through here.
  std::string publish_file(const fs::path& file, std::string checksum) {
    if (checksum.empty()) checksum = *archive::sha256_file(file);
    const std::string rev = archive::make_revision(std::chrono::system_clock::now(), last_rev_);
    auto up = store_->upload_bundle(rev, file);
    EXPECT_TRUE(up) << up.error().to_string();
    archive::latest l;
    l.revision = rev;
    l.checksum = checksum;
    l.updated_at = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    auto w = store_->write_latest(l);
    EXPECT_TRUE(w) << w.error().to_string();
    last_rev_ = rev;
    return rev;
  }

  // A config tree for `marker` under the test's directory.
  fs::path config_dir(const std::string& marker) {
    const fs::path d = dir_ / ("config-" + marker);
    if (!fs::exists(d)) make_config(d, marker);
    return d;
  }

  child& start_watch(const fs::path& root, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{k_binary,    "agent",  "config",      "watch",      "--store",
                                  store_arg(), "--root", root.string(), "--interval", "1s"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    agents_.push_back(std::make_unique<child>(argv, env()));
    return *agents_.back();
  }

  tidesync::test::run_result init(const fs::path& root, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{k_binary,  "agent",     "config", "init",
                                  "--store", store_arg(), "--root", root.string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return tidesync::test::run(argv, env(), 60s);
  }

  static bool live_is(const fs::path& root, const std::string& rev) {
    return archive::live_revision(root) == rev;
  }

  static inline std::string missing_;
  static inline int counter_ = 0;
  fs::path dir_;
  std::string s3_dir_, bucket_;
  int port_ = 0;
  tidesync::http::loop loop_;
  std::unique_ptr<archive::config_store> store_;
  std::string last_rev_;
  int published_ = 0;
  std::vector<std::unique_ptr<child>> agents_;
};

TEST_F(agent_config_test, two_agents_agree_then_switch_under_a_reader_without_a_mix) {
  const std::string rev1 = publish(config_dir("one"));
  const fs::path r1 = dir_ / "pod1", r2 = dir_ / "pod2";
  child& a1 = start_watch(r1);
  child& a2 = start_watch(r2);
  ASSERT_TRUE(eventually(
      [&] {
        drain(a1);
        drain(a2);
        return live_is(r1, rev1) && live_is(r2, rev1);
      },
      30s))
      << a1.output() << "\n---\n"
      << a2.output();
  EXPECT_EQ(tree(r1 / "live"), tree(config_dir("one")));
  EXPECT_EQ(tree(r2 / "live"), tree(config_dir("one")));
  EXPECT_EQ(fs::read_symlink(r1 / "live" / "b-link"), "nested/deeper/b.txt");

  // A reader loops over both roots during the switch.
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0};
  std::mutex mu;
  std::vector<std::string> problems;
  std::set<std::string> seen;
  std::thread reader([&] {
    while (!stop) {
      for (const auto& root : {r1, r2}) {
        std::string err;
        auto pair = read_pair(root, err);
        std::lock_guard lock(mu);
        if (!pair) {
          problems.push_back(root.filename().string() + ": " + err);
        } else if (pair->first != pair->second) {
          problems.push_back("a mix: \"" + pair->first + "\" and \"" + pair->second + "\"");
        } else {
          seen.insert(pair->first);
        }
        ++reads;
      }
    }
  });
  ASSERT_TRUE(eventually([&] { return reads > 100; }, 10s));

  const std::string rev2 = publish(config_dir("two"));
  ASSERT_GT(rev2, rev1);
  const bool switched = eventually(
      [&] {
        drain(a1);
        drain(a2);
        return live_is(r1, rev2) && live_is(r2, rev2);
      },
      30s);
  // Some more reads on the new revision, then stop the reader.
  const long after_switch = reads;
  eventually([&] { return reads > after_switch + 100; }, 10s);
  stop = true;
  reader.join();
  ASSERT_TRUE(switched) << a1.output() << "\n---\n" << a2.output();

  EXPECT_TRUE(problems.empty()) << problems.size() << " problem(s), first: " << problems.front();
  EXPECT_EQ(seen, (std::set<std::string>{"revision=one\n", "revision=two\n"}))
      << "the reader saw both revisions, each whole";
  EXPECT_EQ(tree(r1 / "live"), tree(config_dir("two")));
  EXPECT_EQ(tree(r2 / "live"), tree(config_dir("two")));

  for (const auto& root : {r1, r2}) {
    auto st = read_status(root);
    EXPECT_EQ(st.get_string("revision"), rev2) << read(root / ".status.json");
    EXPECT_EQ(st.get_string("checksum").substr(0, 7), "sha256:");
    EXPECT_TRUE(st.at("error") != nullptr && st.at("error")->is_null());
    EXPECT_FALSE(st.get_string("lastSuccess").empty());
    // The older revision is kept (--keep 3) and nothing is left half-done.
    EXPECT_EQ(archive::revisions(root), (std::vector<std::string>{rev1, rev2}));
    for (const auto& e : fs::directory_iterator(root))
      EXPECT_EQ(e.path().filename().string().rfind(".incoming-", 0), std::string::npos) << e.path();
  }

  EXPECT_EQ(a1.stop(10s), 0) << a1.output();
  EXPECT_EQ(a2.stop(10s), 0) << a2.output();
  read_rest(a1);
  read_rest(a2);
  EXPECT_NE(a1.output().find("revision " + rev2 + " is live"), std::string::npos) << a1.output();
  EXPECT_NE(a1.output().find("stopped"), std::string::npos) << a1.output();
  EXPECT_EQ(a1.output().find(k_secret), std::string::npos);
  EXPECT_EQ(a2.output().find(k_secret), std::string::npos);
}

TEST_F(agent_config_test, after_sigkill_init_restores_the_latest_without_downloading_again) {
  const std::string rev1 = publish(config_dir("one"));
  const fs::path root = dir_ / "pod";
  child& a = start_watch(root);
  ASSERT_TRUE(eventually(
      [&] {
        drain(a);
        return live_is(root, rev1);
      },
      30s))
      << a.output();
  a.kill();  // SIGKILL: no cleanup runs

  // The pod restarts: its init container finds rev1 live and does not fetch it again.
  auto again = init(root);
  EXPECT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("revision " + rev1 + " is already live"), std::string::npos)
      << again.output;
  EXPECT_EQ(again.output.find("downloading"), std::string::npos) << again.output;
  EXPECT_EQ(tree(root / "live"), tree(config_dir("one")));

  // A new revision while the agent was down, and leftovers of an interrupted round.
  const std::string rev2 = publish(config_dir("two"));
  write(root / (".incoming-" + rev2) / "half.txt", "half");
  write(root / (".incoming-" + rev2 + ".tar.zst.part"), "partial download");
  auto boot = init(root);
  EXPECT_EQ(boot.status, 0) << boot.output;
  EXPECT_NE(boot.output.find("downloading revision " + rev2), std::string::npos) << boot.output;
  EXPECT_TRUE(live_is(root, rev2));
  EXPECT_EQ(tree(root / "live"), tree(config_dir("two")));
  for (const auto& e : fs::directory_iterator(root))
    EXPECT_EQ(e.path().filename().string().rfind(".incoming-", 0), std::string::npos) << e.path();

  // A new pod (an empty emptyDir) boots with the latest.
  const fs::path fresh = dir_ / "new-pod";
  auto first = init(fresh);
  EXPECT_EQ(first.status, 0) << first.output;
  EXPECT_TRUE(live_is(fresh, rev2)) << first.output;
  EXPECT_EQ(tree(fresh / "live"), tree(config_dir("two")));
  EXPECT_EQ(status_string(fresh, "revision"), rev2);
  EXPECT_EQ(first.output.find(k_secret), std::string::npos);
}

TEST_F(agent_config_test, bad_bundles_are_reported_and_the_previous_revision_stays_live) {
  const std::string good = publish(config_dir("good"));
  const fs::path root = dir_ / "pod";
  // A small --max-bytes so that a bomb is cheap to make.
  child& a = start_watch(root, {"--max-bytes", "1M"});
  ASSERT_TRUE(eventually(
      [&] {
        drain(a);
        return live_is(root, good);
      },
      30s))
      << a.output();
  const auto live_tree = tree(root / "live");

  struct bad_case {
    std::string name;
    fs::path file;
    std::string checksum;  // latest.json's; "" = the file's own
    std::string needle;    // in the error
  };
  const fs::path bad = dir_ / "bad";
  fs::create_directories(bad);
  // latest.json's checksum does not match the bundle.
  ASSERT_TRUE(archive::pack_bundle(config_dir("other"), bad / "mismatch.tar.zst",
                                   archive::pack_options{.fsync = false}));
  // An entry that climbs out of the bundle.
  tidesync::test::write_archive(
      bad / "traversal.tar.zst",
      {{.path = "ok.txt", .data = "ok"}, {.path = "../../escaped.txt", .data = "x"}});
  // A symlink that points outside.
  tidesync::test::write_archive(bad / "symlink.tar.zst",
                                {{.path = "etc", .type = AE_IFLNK, .symlink = "../../../etc"}});
  // A bomb: 64 MiB of zeros compress to a few KiB, over --max-bytes 1M.
  tidesync::test::write_archive(bad / "bomb.tar.zst",
                                {{.path = "zeros.bin", .zero_bytes = 64u << 20}});
  EXPECT_LT(fs::file_size(bad / "bomb.tar.zst"), 1u << 20);
  // A truncated bundle; latest.json has the checksum of the truncated bytes, so it is the
  // archive itself that is found broken.
  write(dir_ / "noise" / "noise.bin", payload(300'000, 99));
  ASSERT_TRUE(archive::pack_bundle(dir_ / "noise", bad / "whole.tar.zst",
                                   archive::pack_options{.fsync = false}));
  const std::string whole = read(bad / "whole.tar.zst");
  write(bad / "truncated.tar.zst", whole.substr(0, whole.size() / 2));

  const std::vector<bad_case> cases = {
      {"checksum mismatch", bad / "mismatch.tar.zst", "sha256:" + std::string(64, '0'),
       "checksum mismatch"},
      {"path traversal", bad / "traversal.tar.zst", "", "may not leave the bundle"},
      {"escaping symlink", bad / "symlink.tar.zst", "", "outside the bundle"},
      {"bomb", bad / "bomb.tar.zst", "", "max_bytes limit"},
      {"truncated", bad / "truncated.tar.zst", "", "corrupt or truncated"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string rev = publish_file(c.file, c.checksum);
    const bool reported = eventually(
        [&] {
          drain(a);
          const std::string err = status_string(root, "error");
          return err.find(rev) != std::string::npos && err.find(c.needle) != std::string::npos;
        },
        30s);
    EXPECT_TRUE(reported) << read(root / ".status.json") << "\n" << a.output();
    EXPECT_TRUE(printed(a, c.needle)) << a.output();
    EXPECT_TRUE(live_is(root, good));
    EXPECT_EQ(tree(root / "live"), live_tree);
    EXPECT_EQ(status_string(root, "revision"), good);
    EXPECT_FALSE(fs::exists(root / "revisions" / rev));
  }
  EXPECT_FALSE(fs::exists(dir_ / "escaped.txt"));
  EXPECT_FALSE(fs::exists(root.parent_path() / "escaped.txt"));
  EXPECT_TRUE(a.running()) << "watch keeps going after bad bundles";

  // init with a bad latest: a pod that has a live revision starts with it (exit 0, warning);
  // a new pod has nothing to start with (exit 1, nothing live).
  auto restart = init(root, {"--max-bytes", "1M"});
  EXPECT_EQ(restart.status, 0) << restart.output;
  EXPECT_NE(restart.output.find("warning: starting with revision " + good), std::string::npos)
      << restart.output;
  const fs::path fresh = dir_ / "new-pod";
  auto first = init(fresh, {"--max-bytes", "1M"});
  EXPECT_EQ(first.status, 1) << first.output;
  EXPECT_NE(first.output.find("nothing is live yet"), std::string::npos) << first.output;
  EXPECT_FALSE(archive::live_revision(fresh));
  EXPECT_FALSE(status_string(fresh, "error").empty());

  // A good revision after all that goes live.
  const std::string fixed = publish(config_dir("fixed"));
  ASSERT_TRUE(eventually(
      [&] {
        drain(a);
        return live_is(root, fixed);
      },
      30s))
      << a.output();
  EXPECT_EQ(tree(root / "live"), tree(config_dir("fixed")));
  EXPECT_TRUE(read_status(root).at("error")->is_null()) << read(root / ".status.json");
  EXPECT_EQ(a.stop(10s), 0) << a.output();
  read_rest(a);
  EXPECT_EQ(a.output().find(k_secret), std::string::npos);
}

TEST_F(agent_config_test, no_latest_json_init_exits_0_without_live_and_watch_keeps_polling) {
  const fs::path root = dir_ / "pod";
  auto r = init(root);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("no config published yet"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(fs::symlink_status(root / "live")));
  auto st = read_status(root);
  EXPECT_TRUE(st.at("revision") != nullptr && st.at("revision")->is_null())
      << read(root / ".status.json");
  EXPECT_TRUE(st.at("error") != nullptr && st.at("error")->is_null());

  child& a = start_watch(root);
  ASSERT_FALSE(a.read_until(
                    [](const std::string& l) {
                      return l.find("no config published yet") != std::string::npos;
                    },
                    20s)
                   .empty())
      << a.output();
  const std::string rev = publish(config_dir("first"));
  ASSERT_TRUE(eventually(
      [&] {
        drain(a);
        return live_is(root, rev);
      },
      30s))
      << a.output();
  EXPECT_EQ(tree(root / "live"), tree(config_dir("first")));
  EXPECT_EQ(a.stop(10s), 0) << a.output();
}

TEST_F(agent_config_test, bad_usage_exits_2) {
  auto none = tidesync::test::run({k_binary, "agent", "config"}, {}, 20s);
  EXPECT_EQ(none.status, 2) << none.output;
  auto no_store = tidesync::test::run({k_binary, "agent", "config", "init"}, {}, 20s);
  EXPECT_EQ(no_store.status, 2) << no_store.output;
  EXPECT_NE(no_store.output.find("--store is required"), std::string::npos) << no_store.output;
  auto interval = init(dir_ / "pod", {"--interval", "1s"});
  EXPECT_EQ(interval.status, 2) << interval.output;
  auto keep = init(dir_ / "pod", {"--keep", "0"});
  EXPECT_EQ(keep.status, 2) << keep.output;
  auto unconfigured = tidesync::test::run({k_binary, "agent", "config", "init", "--store",
                                           "remote:b/p/o", "--root", (dir_ / "pod").string()},
                                          {{"REMOTE_TYPE", "s3"}}, 20s);
  EXPECT_EQ(unconfigured.status, 2) << unconfigured.output;
  EXPECT_NE(unconfigured.output.find("ACCESS_KEY_ID"), std::string::npos) << unconfigured.output;
  auto help = tidesync::test::run({k_binary, "agent", "config", "--help"}, {}, 20s);
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.output.find("init|watch"), std::string::npos) << help.output;
}

}  // namespace

// --engine=rclone: the store read through the rclone binary (any remote rclone knows; here s3rver
// through REMOTE_*, which becomes rclone's remote "remote"), with the same checks: the checksum
// is verified and a bad bundle leaves the live revision.
TEST_F(agent_config_test, rclone_engine_reads_the_store_with_the_same_checks) {
  const std::string rev1 = publish(config_dir("one"));
  const fs::path root = dir_ / "pod";
  auto first = init(root, {"--engine", "rclone"});
  ASSERT_EQ(first.status, 0) << first.output;
  EXPECT_NE(first.output.find("(rclone)"), std::string::npos) << first.output;
  EXPECT_TRUE(live_is(root, rev1)) << first.output;
  EXPECT_EQ(tree(root / "live"), tree(config_dir("one")));

  // latest.json names a checksum the bundle does not have: refused, rev1 stays live.
  const fs::path other = dir_ / "other.tar.zst";
  ASSERT_TRUE(
      archive::pack_bundle(config_dir("two"), other, archive::pack_options{.fsync = false}));
  const std::string bad = publish_file(other, "sha256:" + std::string(64, '0'));
  auto refused = init(root, {"--engine", "rclone"});
  EXPECT_EQ(refused.status, 0) << "an earlier revision is live: a warning" << refused.output;
  EXPECT_NE(refused.output.find("checksum"), std::string::npos) << refused.output;
  EXPECT_TRUE(live_is(root, rev1));
  EXPECT_EQ(tree(root / "live"), tree(config_dir("one")));

  const std::string rev3 = publish(config_dir("two"));
  auto next = init(root, {"--engine", "rclone"});
  EXPECT_EQ(next.status, 0) << next.output;
  EXPECT_TRUE(live_is(root, rev3)) << next.output;
  EXPECT_EQ(tree(root / "live"), tree(config_dir("two")));
  EXPECT_EQ(next.output.find(k_secret), std::string::npos) << "no secret in the output";

  auto bad_engine = init(root, {"--engine", "gsutil"});
  EXPECT_EQ(bad_engine.status, 2) << bad_engine.output;
  EXPECT_NE(bad_engine.output.find("native or rclone"), std::string::npos) << bad_engine.output;
}
