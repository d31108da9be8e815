// Shared config end to end (issue 7): writers publish through the config API of `tidesync
// simulate` (embedded API server + controller), the store is s3rver, and two `tidesync agent
// config watch --api` processes (two roots: two pods' /shared) learn about new revisions by
// long-poll and download the bundles from the store.
//
// Every server binds 127.0.0.1 and is stopped by PID. No sleeps for synchronisation: every wait
// is a condition with a deadline. Peers: node and s3rver@3.7.1 (skipped without them unless
// TIDESYNC_REQUIRE_PEERS is set).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/archive/bundle.hpp"
#include "runtime/archive/live_tree.hpp"
#include "runtime/archive/revision.hpp"
#include "runtime/archive/store.hpp"
#include "runtime/base64.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/transfer/backend.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/s3rver.hpp"
#include "tests/support/simulation.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using env_list = std::vector<std::pair<std::string, std::string>>;
using tidesync::test::child;
using tidesync::test::eventually;
using tidesync::test::read_file;
using tidesync::test::run;
using tidesync::test::run_result;
using tidesync::test::tree;
using tidesync::test::write_file;
namespace archive = tidesync::archive;
namespace transfer = tidesync::transfer;
using steady = std::chrono::steady_clock;

const std::string k_binary = TIDESYNC_BINARY;
const std::string k_bucket = "spritz-config";
const std::string k_config = "team-a/alice";
// s3rver does not check signatures: a secret that must never appear in any output.
const std::string k_secret = "store-secret-not-to-be-printed-91c2";
// The agents' --interval and --wait: a switch faster than these is explained by the long-poll
// waking up on a publish, nothing else.
constexpr auto k_interval = 60s;
constexpr auto k_wait = 30s;
// How soon after a publish an agent must have switched.
constexpr auto k_switch_limit = 10s;

// A config tree: files that all name `marker`, in a few folders.
void make_config(const fs::path& dir, const std::string& marker) {
  write_file(dir / "a.txt", "revision=" + marker + "\n");
  write_file(dir / "nested" / "b.txt", "revision=" + marker + "\n");
  write_file(dir / "app.yaml", "name: alice\nmarker: " + marker + "\n");
  write_file(dir / "blob.bin",
             tidesync::test::payload(50'000, static_cast<uint32_t>(marker.size())));
  fs::create_symlink("nested/b.txt", dir / "b-link");
}

// The latest.json a `tidesync config publish` printed (the one line that is a JSON object).
std::optional<archive::latest> published(const std::string& output) {
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line.front() == '{')
      if (auto l = archive::parse_latest(line)) return *l;
  return std::nullopt;
}

class sharedconfig_e2e : public ::testing::Test {
 protected:
  void SetUp() override {
    TIDESYNC_REQUIRE_S3RVER_OR_SKIP(tidesync::test::s3rver_peer::missing());
    char tmpl[] = "/var/tmp/tidesync-sharedcfg-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;

    s3_dir_ = (dir_ / "s3rver").string();
    fs::create_directories(s3_dir_);
    std::string s3_output;
    s3_port_ = tidesync::test::s3rver_peer::start(s3_dir_, {k_bucket}, &s3_output);
    ASSERT_GT(s3_port_, 0) << "s3rver did not start:\n" << s3_output;

    const fs::path data = dir_ / "sim";
    sim_ = std::make_unique<child>(std::vector<std::string>{
        "sh", "-c",
        "exec '" + k_binary + "' simulate --port 0 --data-dir '" + data.string() +
            "' --controller-rbac '" + tidesync::test::simulation::rbac_manifest() + "' '" +
            std::string(TIDESYNC_SOURCE_DIR) + "/deploy/crds' > '" +
            (dir_ / "simulate.log").string() + "' 2>&1"});
    kubeconfig_ = (data / "kubeconfig").string();
    ASSERT_TRUE(eventually(
        [&] {
          return fs::exists(kubeconfig_) &&
                 kubectl({"get", "crd", "sharedconfigs.tidesync.io", "-o", "name"}).status == 0;
        },
        30s))
        << read_file(dir_ / "simulate.log");
    // The config API's URL, once it listens, and its token from the Secret the controller made.
    ASSERT_TRUE(eventually(
        [&] {
          api_ = read_file(data / "config-api");
          while (!api_.empty() && (api_.back() == '\n' || api_.back() == ' '))
            api_.pop_back();
          return api_.rfind("http://127.0.0.1:", 0) == 0;
        },
        30s))
        << read_file(dir_ / "simulate.log");
    std::string token;
    ASSERT_TRUE(eventually(
        [&] {
          auto r = kubectl({"get", "secret", "-n", "tidesync-system", "tidesync-config-api", "-o",
                            "jsonpath={.data.token}"});
          if (r.status != 0 || r.output.empty()) return false;
          auto d = tidesync::base64::decode(r.output);
          if (!d || d->empty()) return false;
          token = *d;
          return true;
        },
        30s))
        << read_file(dir_ / "simulate.log");
    token_ = token;
    token_file_ = (dir_ / "token").string();
    write_file(token_file_, token_ + "\n");
    ::chmod(token_file_.c_str(), 0600);

    apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n");
    std::string secret =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: config-store, namespace: team-a}\n"
        "type: Opaque\ndata:\n";
    for (const auto& [k, v] : store_env())
      secret += "  " + k + ": " + tidesync::base64::encode(v) + "\n";
    apply(secret);
    apply(
        "apiVersion: tidesync.io/v1alpha1\nkind: SharedConfig\n"
        "metadata: {name: alice, namespace: team-a}\n"
        "spec: {ownerId: alice, bucket: " +
        k_bucket + ", prefix: spritz-config, secretRef: {name: config-store}}\n");
  }

  void TearDown() override {
    agents_.clear();  // stopped by PID
    sim_.reset();     // stopped by PID
    tidesync::test::simulation::expect_no_rbac_denial(dir_ / "simulate.log");
    if (s3_port_ > 0) tidesync::test::s3rver_peer::stop(s3_dir_);
    if (HasFailure()) std::cerr << "--- simulate log ---\n" << read_file(dir_ / "simulate.log");
    std::error_code ec;
    const char* keep = std::getenv("TIDESYNC_KEEP_TEST_DIRS");
    if (keep != nullptr && (HasFailure() || std::string_view(keep) == "always"))
      std::cerr << "kept " << dir_ << "\n";
    else if (!dir_.empty())
      fs::remove_all(dir_, ec);
  }

  // REMOTE_* for s3rver: the Secret's keys, and the agents' environment.
  [[nodiscard]] env_list store_env() const {
    return {{"REMOTE_TYPE", "s3"},
            {"REMOTE_PROVIDER", "Other"},
            {"REMOTE_ACCESS_KEY_ID", "S3RVER"},
            {"REMOTE_SECRET_ACCESS_KEY", k_secret},
            {"REMOTE_REGION", "us-east-1"},
            {"REMOTE_ENDPOINT", "http://127.0.0.1:" + std::to_string(s3_port_)}};
  }

  run_result kubectl(std::vector<std::string> args, const std::string& stdin_text = {}) {
    std::vector<std::string> argv{"kubectl", "--kubeconfig", kubeconfig_, "--cache-dir",
                                  (dir_ / "kube-cache").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!stdin_text.empty()) {
      const fs::path path = dir_ / ("stdin-" + std::to_string(++files_) + ".yaml");
      write_file(path, stdin_text);
      argv.push_back("-f");
      argv.push_back(path.string());
    }
    return run(argv);
  }
  void apply(const std::string& yaml) {
    auto r = kubectl({"apply"}, yaml);
    ASSERT_EQ(r.status, 0) << r.output;
  }

  fs::path config_dir(const std::string& marker) {
    const fs::path d = dir_ / ("config-" + marker);
    if (!fs::exists(d)) make_config(d, marker);
    return d;
  }

  [[nodiscard]] std::vector<std::string> publish_argv(const fs::path& src,
                                                      const std::string& expected,
                                                      const std::string& token_file) const {
    return {k_binary,       "config",   "publish", src.string(),          "--api",
            api_,           "--config", k_config,  "--expected-revision", expected,
            "--token-file", token_file};
  }
  run_result publish(const fs::path& src, const std::string& expected) {
    return run(publish_argv(src, expected, token_file_), {}, 60s);
  }

  child& start_agent(const fs::path& root) {
    std::vector<std::string> argv{k_binary,       "agent",
                                  "config",       "watch",
                                  "--api",        api_,
                                  "--config",     k_config,
                                  "--token-file", token_file_,
                                  "--store",      "remote:" + k_bucket + "/spritz-config/alice",
                                  "--root",       root.string(),
                                  "--interval",   std::to_string(k_interval.count()) + "s",
                                  "--wait",       std::to_string(k_wait.count()) + "s"};
    agents_.push_back(std::make_unique<child>(argv, store_env()));
    return *agents_.back();
  }

  // Reads what the agents printed so far (their pipes never fill while a test waits).
  void drain() {
    for (auto& a : agents_)
      a->read_until([](const std::string&) { return false; }, 1ms);
  }
  [[nodiscard]] std::string outputs() const {
    std::string out;
    for (size_t i = 0; i < agents_.size(); ++i)
      out += "--- agent " + std::to_string(i) + " ---\n" + agents_[i]->output();
    return out;
  }
  // Waits until `root` has printed that it waits (long-poll) after revision `rev` ("" : none).
  static bool long_polling(child& a, const std::string& rev) {
    const std::string needle =
        rev.empty() ? "waiting for the first revision" : "waiting for a revision after " + rev;
    if (a.output().find(needle) != std::string::npos) return true;
    return !a.read_until([&](const std::string& l) { return l.find(needle) != std::string::npos; },
                         20s)
                .empty();
  }

  // Waits until both roots have `rev` live; returns how long each took from `since`
  // (nullopt when the deadline passed).
  std::vector<std::optional<steady::duration>> switched(const std::vector<fs::path>& roots,
                                                        const std::string& rev,
                                                        steady::time_point since) {
    std::vector<std::optional<steady::duration>> took(roots.size());
    eventually(
        [&] {
          drain();
          bool all = true;
          for (size_t i = 0; i < roots.size(); ++i) {
            if (!took[i] && archive::live_revision(roots[i]) == rev)
              took[i] = steady::now() - since;
            all = all && took[i].has_value();
          }
          return all;
        },
        k_interval, 20ms);
    return took;
  }

  std::string status_of(const std::string& jsonpath) {
    auto r =
        kubectl({"get", "sharedconfig", "-n", "team-a", "alice", "-o", "jsonpath=" + jsonpath});
    return r.status == 0 ? r.output : std::string{};
  }

  fs::path dir_;
  std::string s3_dir_;
  int s3_port_ = 0;
  std::unique_ptr<child> sim_;
  std::string kubeconfig_, api_, token_, token_file_;
  int files_ = 0;
  std::vector<std::unique_ptr<child>> agents_;
};

::testing::AssertionResult fast(const std::optional<steady::duration>& took) {
  if (!took)
    return ::testing::AssertionFailure() << "did not switch within " << k_interval.count() << " s";
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*took).count();
  if (*took > k_switch_limit)
    return ::testing::AssertionFailure()
           << "switched after " << ms << " ms, not within " << k_switch_limit.count() << " s";
  return ::testing::AssertionSuccess() << "switched after " << ms << " ms";
}

TEST_F(sharedconfig_e2e, writers_publish_and_two_agents_follow_by_long_poll) {
  const fs::path r1 = dir_ / "pod1", r2 = dir_ / "pod2";
  const std::vector<fs::path> roots{r1, r2};
  child& a1 = start_agent(r1);
  child& a2 = start_agent(r2);
  // Nothing is published: both wait for the first revision in a long-poll.
  ASSERT_TRUE(long_polling(a1, "")) << outputs();
  ASSERT_TRUE(long_polling(a2, "")) << outputs();

  // 1. The first publish: both switch well before --interval (and before --wait).
  auto t0 = steady::now();
  auto p1 = publish(config_dir("one"), "");
  ASSERT_EQ(p1.status, 0) << p1.output;
  auto rev1 = published(p1.output);
  ASSERT_TRUE(rev1) << p1.output;
  {
    auto took = switched(roots, rev1->revision, t0);
    EXPECT_TRUE(fast(took[0])) << outputs();
    EXPECT_TRUE(fast(took[1])) << outputs();
  }
  EXPECT_EQ(tree(r1 / "live"), tree(config_dir("one")));
  EXPECT_EQ(tree(r2 / "live"), tree(config_dir("one")));

  // The status shows revision, checksum and size; the checksum and size are those of the
  // folder packed here (bundles are reproducible).
  auto mine = archive::pack_bundle(config_dir("one"), dir_ / "one.tar.zst",
                                   archive::pack_options{.fsync = false});
  ASSERT_TRUE(mine);
  EXPECT_EQ(rev1->checksum, mine->sha256);
  const std::string want_status =
      rev1->revision + " " + rev1->checksum + " " + std::to_string(mine->archive_bytes);
  EXPECT_TRUE(eventually(
      [&] {
        return status_of("{.status.revision} {.status.checksum} {.status.size}") == want_status;
      },
      20s))
      << status_of("{.status}") << "\nwant " << want_status;
  auto table = kubectl({"get", "sharedconfig", "-n", "team-a", "-o", "wide"});
  EXPECT_EQ(table.status, 0) << table.output;
  EXPECT_NE(table.output.find(rev1->revision), std::string::npos) << table.output;
  EXPECT_NE(table.output.find(std::to_string(mine->archive_bytes)), std::string::npos)
      << table.output;

  // 2. A second publish: both switch again, at once, to a tree identical to the folder.
  ASSERT_TRUE(long_polling(a1, rev1->revision)) << outputs();
  ASSERT_TRUE(long_polling(a2, rev1->revision)) << outputs();
  t0 = steady::now();
  auto p2 = publish(config_dir("two"), rev1->revision);
  ASSERT_EQ(p2.status, 0) << p2.output;
  auto rev2 = published(p2.output);
  ASSERT_TRUE(rev2) << p2.output;
  ASSERT_GT(rev2->revision, rev1->revision);
  {
    auto took = switched(roots, rev2->revision, t0);
    EXPECT_TRUE(fast(took[0])) << outputs();
    EXPECT_TRUE(fast(took[1])) << outputs();
  }
  EXPECT_EQ(tree(r1 / "live"), tree(config_dir("two")));
  EXPECT_EQ(tree(r2 / "live"), tree(config_dir("two")));
  // .status.json is written when the round ends, just after the switch.
  for (const auto& root : roots) {
    EXPECT_TRUE(eventually(
        [&] {
          auto st = tidesync::json::parse(read_file(root / ".status.json"));
          return st && st->is_object() && st->get_string("revision") == rev2->revision &&
                 st->get_string("checksum") == rev2->checksum && st->at("error") != nullptr &&
                 st->at("error")->is_null();
        },
        10s))
        << read_file(root / ".status.json");
  }

  // 3. Two writers against the same expected revision at the same time: exactly one wins, the
  // other exits 4 printing the winner's revision; the winner is live in both agents.
  child wa(publish_argv(config_dir("three-a"), rev2->revision, token_file_));
  child wb(publish_argv(config_dir("three-b"), rev2->revision, token_file_));
  wa.read_until([](const std::string&) { return false; }, 60s);  // until EOF
  wb.read_until([](const std::string&) { return false; }, 60s);
  const int sa = wa.finish(30s), sb = wb.finish(30s);
  ASSERT_TRUE((sa == 0 && sb == 4) || (sa == 4 && sb == 0))
      << "exits " << sa << " and " << sb << "\n"
      << wa.output() << "\n---\n"
      << wb.output();
  child& winner = sa == 0 ? wa : wb;
  child& loser = sa == 0 ? wb : wa;
  const std::string winner_dir = sa == 0 ? "three-a" : "three-b";
  const std::string loser_dir = sa == 0 ? "three-b" : "three-a";
  auto rev3 = published(winner.output());
  ASSERT_TRUE(rev3) << winner.output();
  EXPECT_NE(loser.output().find(rev3->revision), std::string::npos) << loser.output();
  EXPECT_NE(loser.output().find("conflict"), std::string::npos) << loser.output();
  {
    auto took = switched(roots, rev3->revision, steady::now());
    EXPECT_TRUE(took[0] && took[1]) << outputs();
  }
  EXPECT_EQ(tree(r1 / "live"), tree(config_dir(winner_dir)));
  EXPECT_EQ(tree(r2 / "live"), tree(config_dir(winner_dir)));

  // Nothing is lost: the loser publishes against the winner's revision, and that wins.
  auto p4 = publish(config_dir(loser_dir), rev3->revision);
  ASSERT_EQ(p4.status, 0) << p4.output;
  auto rev4 = published(p4.output);
  ASSERT_TRUE(rev4) << p4.output;
  {
    auto took = switched(roots, rev4->revision, steady::now());
    EXPECT_TRUE(took[0] && took[1]) << outputs();
  }
  EXPECT_EQ(tree(r1 / "live"), tree(config_dir(loser_dir)));
  EXPECT_EQ(tree(r2 / "live"), tree(config_dir(loser_dir)));
  EXPECT_TRUE(eventually([&] { return status_of("{.status.revision}") == rev4->revision; }, 20s))
      << status_of("{.status}");

  // 4. A publish with a wrong token: exit 1, says 401 and the token, and changes nothing.
  const std::string wrong = (dir_ / "wrong-token").string();
  write_file(wrong, "not-the-token\n");
  auto bad = run(publish_argv(config_dir("five"), rev4->revision, wrong), {}, 60s);
  EXPECT_EQ(bad.status, 1) << bad.output;
  EXPECT_NE(bad.output.find("401"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("token"), std::string::npos) << bad.output;
  auto get = run(
      {k_binary, "config", "get", "--api", api_, "--config", k_config, "--token-file", token_file_},
      {}, 30s);
  EXPECT_EQ(get.status, 0) << get.output;
  auto now_latest = published(get.output);
  ASSERT_TRUE(now_latest) << get.output;
  EXPECT_EQ(now_latest->revision, rev4->revision);
  EXPECT_EQ(status_of("{.status.revision}"), rev4->revision);
  EXPECT_TRUE(archive::live_revision(r1) == rev4->revision);
  EXPECT_TRUE(archive::live_revision(r2) == rev4->revision);

  // 5. SIGTERM while an agent sits in a long-poll: it exits 0 within a few seconds, not after
  // the rest of its --wait.
  ASSERT_TRUE(long_polling(a1, rev4->revision)) << outputs();
  const auto stop_at = steady::now();
  EXPECT_EQ(a1.stop(10s), 0) << a1.output();
  const auto stop_took = steady::now() - stop_at;
  EXPECT_LT(stop_took, 5s)
      << std::chrono::duration_cast<std::chrono::milliseconds>(stop_took).count() << " ms";
  a1.read_until([](const std::string&) { return false; }, 5s);
  EXPECT_NE(a1.output().find("stopped"), std::string::npos) << a1.output();
  EXPECT_TRUE(a2.running()) << a2.output();

  drain();
  for (const auto& a : agents_) {
    EXPECT_EQ(a->output().find(token_), std::string::npos) << "the token was printed";
    EXPECT_EQ(a->output().find(k_secret), std::string::npos) << "the store secret was printed";
  }
}

TEST_F(sharedconfig_e2e, init_reads_latest_from_the_api_and_refuses_a_wrong_token) {
  const fs::path root = dir_ / "pod";
  auto init = [&](const std::string& token_file) {
    return run({k_binary, "agent", "config", "init", "--api", api_, "--config", k_config,
                "--token-file", token_file, "--store",
                "remote:" + k_bucket + "/spritz-config/alice", "--root", root.string()},
               store_env(), 60s);
  };
  // Nothing published yet: exit 0, nothing live.
  auto empty = init(token_file_);
  EXPECT_EQ(empty.status, 0) << empty.output;
  EXPECT_NE(empty.output.find("no config published yet"), std::string::npos) << empty.output;
  EXPECT_FALSE(archive::live_revision(root));

  auto p = publish(config_dir("one"), "");
  ASSERT_EQ(p.status, 0) << p.output;
  auto rev = published(p.output);
  ASSERT_TRUE(rev) << p.output;
  auto first = init(token_file_);
  EXPECT_EQ(first.status, 0) << first.output;
  EXPECT_EQ(archive::live_revision(root), rev->revision) << first.output;
  EXPECT_EQ(tree(root / "live"), tree(config_dir("one")));

  // A wrong token: the error names the Secret; with a live revision init still exits 0.
  const std::string wrong = (dir_ / "wrong-token").string();
  write_file(wrong, "not-the-token\n");
  auto refused = init(wrong);
  EXPECT_EQ(refused.status, 0) << refused.output;
  EXPECT_NE(refused.output.find("401"), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("tidesync-config-api"), std::string::npos) << refused.output;
  EXPECT_NE(read_file(root / ".status.json").find("401"), std::string::npos);
  EXPECT_EQ(archive::live_revision(root), rev->revision);
  // ...and a new pod has nothing to start with: exit 1.
  const fs::path fresh = dir_ / "new-pod";
  auto none = run(
      {k_binary, "agent", "config", "init", "--api", api_, "--config", k_config, "--token-file",
       wrong, "--store", "remote:" + k_bucket + "/spritz-config/alice", "--root", fresh.string()},
      store_env(), 60s);
  EXPECT_EQ(none.status, 1) << none.output;
  EXPECT_EQ(refused.output.find("not-the-token"), std::string::npos) << "the token was printed";
  EXPECT_EQ(first.output.find(token_), std::string::npos) << "the token was printed";

  // Usage: --api without --config, --wait on init, --wait beyond 60s.
  auto no_config =
      run({k_binary, "agent", "config", "init", "--api", api_, "--store", "x:b/p"}, {}, 20s);
  EXPECT_EQ(no_config.status, 2) << no_config.output;
  auto wait_init = run({k_binary, "agent", "config", "init", "--api", api_, "--config", k_config,
                        "--store", "x:b/p", "--wait", "10s"},
                       {}, 20s);
  EXPECT_EQ(wait_init.status, 2) << wait_init.output;
  auto long_wait = run({k_binary, "agent", "config", "watch", "--api", api_, "--config", k_config,
                        "--store", "x:b/p", "--wait", "2m"},
                       {}, 20s);
  EXPECT_EQ(long_wait.status, 2) << long_wait.output;
  EXPECT_NE(long_wait.output.find("at most 60s"), std::string::npos) << long_wait.output;
}

}  // namespace

// The SharedConfig's status without a publish through the API: Empty at first; the revision a
// writer put in the store by other means (a restore, an older writer) once it is there; and a
// bad spec or a missing Secret reported as Ready=False with what to fix, while the good one
// beside them is unaffected.
TEST_F(sharedconfig_e2e, status_follows_the_store_and_reports_bad_specs) {
  auto ready = [&](const std::string& name, const std::string& field) {
    auto r = kubectl({"get", "sharedconfig", "-n", "team-a", name, "-o",
                      "jsonpath={.status.conditions[?(@.type==\"Ready\")]." + field + "}"});
    return r.status == 0 ? r.output : std::string{};
  };
  ASSERT_TRUE(eventually([&] { return ready("alice", "reason") == "Empty"; }, 30s))
      << status_of("{.status}");
  EXPECT_EQ(ready("alice", "status"), "True");

  apply(
      "apiVersion: tidesync.io/v1alpha1\nkind: SharedConfig\n"
      "metadata: {name: nosecret, namespace: team-a}\n"
      "spec: {ownerId: bob, bucket: " +
      k_bucket + ", secretRef: {name: missing-store}}\n");
  apply(
      "apiVersion: tidesync.io/v1alpha1\nkind: SharedConfig\n"
      "metadata: {name: badspec, namespace: team-a}\n"
      "spec: {ownerId: carol, bucket: Not_A_Bucket, secretRef: {name: config-store}}\n");
  ASSERT_TRUE(eventually([&] { return ready("nosecret", "reason") == "SecretNotFound"; }, 30s))
      << ready("nosecret", "message");
  EXPECT_EQ(ready("nosecret", "status"), "False");
  EXPECT_NE(ready("nosecret", "message").find("missing-store"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return ready("badspec", "reason") == "InvalidSpec"; }, 30s))
      << ready("badspec", "message");
  EXPECT_NE(ready("badspec", "message").find("spec.bucket"), std::string::npos)
      << ready("badspec", "message");

  // A revision written to the store by another writer (a restore, an older tool): the status
  // shows it once the SharedConfig is looked at again (any change to it).
  tidesync::http::loop loop;
  transfer::location loc;
  loc.kind = transfer::location_kind::s3;
  loc.text = "elsewhere:" + k_bucket + "/spritz-config/alice";
  loc.bucket = k_bucket;
  loc.prefix = "spritz-config/alice/";
  loc.s3.endpoint = "http://127.0.0.1:" + std::to_string(s3_port_);
  loc.s3.access_key_id = "S3RVER";
  loc.s3.secret_access_key = "S3RVER";
  archive::config_store store(
      transfer::make_s3_backend(loc, loop, archive::store_backend_options()));
  const fs::path bundle = dir_ / "elsewhere.tar.zst";
  auto packed = archive::pack_bundle(config_dir("one"), bundle);
  ASSERT_TRUE(packed.has_value());
  archive::latest l{"2026-01-01T00-00-00Z", packed->sha256,
                    std::chrono::sys_seconds{std::chrono::seconds{1767225600}}};
  ASSERT_TRUE(store.upload_bundle(l.revision, bundle));
  ASSERT_TRUE(store.write_latest(l));
  ASSERT_EQ(kubectl({"annotate", "sharedconfig", "-n", "team-a", "alice", "look=again"}).status, 0);
  ASSERT_TRUE(eventually([&] { return status_of("{.status.revision}") == l.revision; }, 30s))
      << status_of("{.status}");
  EXPECT_EQ(status_of("{.status.checksum}"), l.checksum);
  EXPECT_EQ(status_of("{.status.size}"), "") << "not known for another writer's bundle";
  EXPECT_EQ(ready("alice", "reason"), "Published");
  EXPECT_EQ(ready("badspec", "reason"), "InvalidSpec") << "a bad neighbour stays reported";
  // Fixing the Secret heals the other one.
  std::string secret =
      "apiVersion: v1\nkind: Secret\nmetadata: {name: missing-store, namespace: team-a}\n"
      "type: Opaque\ndata:\n";
  for (const auto& [k, v] : store_env())
    secret += "  " + k + ": " + tidesync::base64::encode(v) + "\n";
  apply(secret);
  ASSERT_EQ(kubectl({"annotate", "sharedconfig", "-n", "team-a", "nosecret", "look=again"}).status,
            0);
  ASSERT_TRUE(eventually([&] { return ready("nosecret", "reason") == "Empty"; }, 30s))
      << ready("nosecret", "message");
}
