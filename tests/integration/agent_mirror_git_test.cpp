// `tidesync agent mirror --source-type git` end to end: the real binary (TIDESYNC_BINARY)
// against repositories made here with the git CLI (installed by scripts/setup.sh), reached as a
// local path, over smart HTTP (git http-backend behind a loopback cpp-httplib server asking for
// Basic credentials) and over SSH (scripts/sshd.sh). Reports go to a loopback HTTP server.
// Waits are conditions with deadlines; servers bind 127.0.0.1 and are stopped by PID.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "runtime/base64.hpp"
#include "runtime/json/value.hpp"
#include "tests/support/files.hpp"
#include "tests/support/git_repo.hpp"
#include "tests/support/process.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using env_list = std::vector<std::pair<std::string, std::string>>;
using tidesync::test::child;
using tidesync::test::eventually;
using tidesync::test::run;

const std::string k_binary = TIDESYNC_BINARY;

void write(const fs::path& p, const std::string& data) {
  tidesync::test::write_file(p, data);
}
std::string read(const fs::path& p) {
  return tidesync::test::read_file(p);
}

env_list joined(env_list a, const env_list& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

using repo = tidesync::test::git_repo;

// Opens <share>/current once and reads two files through that one directory handle: what a
// reader that opened the tree sees. nullopt on an error (with `err` set).
std::optional<std::pair<std::string, std::string>> read_pair(const fs::path& share,
                                                             std::string& err) {
  int dir = ::open((share / "current").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    err = "open current: " + std::string(std::strerror(errno));
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
  auto b = a ? read_at("deep/er/b.txt") : std::nullopt;
  ::close(dir);
  if (!a || !b) return std::nullopt;
  return std::make_pair(*a, *b);
}

// Everything a stopped child wrote, up to EOF.
void read_rest(child& c) {
  c.read_until([](const std::string&) { return false; }, 5s);
}

// A TCP port on 127.0.0.1 that accepts connections (the kernel's backlog) and never answers:
// a stalled server.
class silent_port {
 public:
  silent_port() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 16) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
  }
  ~silent_port() {
    if (fd_ >= 0) ::close(fd_);
  }
  silent_port(const silent_port&) = delete;
  silent_port& operator=(const silent_port&) = delete;
  [[nodiscard]] int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

struct received {
  std::string authorization;
  tidesync::json::value body;
};

// The controller's /volume-report: records every POST.
class report_server {
 public:
  report_server() {
    svr_.Post("/volume-report", [this](const httplib::Request& req, httplib::Response& res) {
      auto body = tidesync::json::parse(req.body);
      {
        std::lock_guard lock(mu_);
        got_.push_back({req.get_header_value("Authorization"),
                        body ? *body : tidesync::json::value("unparsable: " + req.body)});
      }
      res.set_content("{}", "application/json");
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    if (port_ > 0) thread_ = std::thread([this] { svr_.listen_after_bind(); });
  }
  ~report_server() {
    svr_.stop();
    if (thread_.joinable()) thread_.join();
  }
  report_server(const report_server&) = delete;
  report_server& operator=(const report_server&) = delete;
  [[nodiscard]] std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/volume-report";
  }
  std::vector<received> got() {
    std::lock_guard lock(mu_);
    return got_;
  }

 private:
  httplib::Server svr_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<received> got_;
};

class agent_mirror_git_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/tidesync-mirrorgit-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    share_ = dir_ / "share";
    fs::create_directories(share_);
    fs::create_directories(dir_ / "home");
    src_ = std::make_unique<repo>(dir_ / "src", dir_ / "home");
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // One sync (--once) of `source` with `flags`.
  tidesync::test::run_result mirror(const std::string& source, std::vector<std::string> flags = {},
                                    const env_list& env = {}) {
    std::vector<std::string> argv{k_binary,        "agent", "mirror",   "--share", share_.string(),
                                  "--source-type", "git",   "--source", source,    "--once"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return run(argv, env, 120s);
  }
  // The long-running agent.
  std::unique_ptr<child> start(const std::string& source, std::vector<std::string> flags,
                               const env_list& env = {}) {
    std::vector<std::string> argv{k_binary,        "agent", "mirror",   "--share", share_.string(),
                                  "--source-type", "git",   "--source", source};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return std::make_unique<child>(argv, env);
  }

  [[nodiscard]] std::string current() const {
    std::error_code ec;
    const auto target = fs::read_symlink(share_ / "current", ec);
    return ec ? std::string() : target.filename().string();
  }
  [[nodiscard]] std::set<std::string> revisions() const {
    std::set<std::string> out;
    std::error_code ec;
    for (fs::directory_iterator it(share_ / ".tidesync" / "revisions", ec), end; !ec && it != end;
         it.increment(ec))
      out.insert(it->path().filename().string());
    return out;
  }
  // Partial trees and temporary links left behind.
  [[nodiscard]] std::vector<std::string> leftovers() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& d : {share_, share_ / ".tidesync"})
      for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
        const auto name = it->path().filename().string();
        if (name.rfind(".incoming-", 0) == 0 || name.rfind(".removing-", 0) == 0 ||
            name.rfind(".current-tmp-", 0) == 0)
          out.push_back(name);
      }
    return out;
  }
  std::map<std::string, std::string> current_files() const {
    return tidesync::test::files(share_ / "current");
  }

  fs::path dir_, share_;
  std::unique_ptr<repo> src_;
};

TEST_F(agent_mirror_git_test, a_new_commit_switches_current_and_older_revisions_are_pruned) {
  const std::string a = src_->commit({{"a.txt", "one"}, {"deep/er/b.txt", "one"}}, "first");
  auto first = mirror(src_->dir().string(), {"--interval", "1h"});
  ASSERT_EQ(first.status, 0) << first.output;
  EXPECT_EQ(current(), a);
  EXPECT_EQ(current_files(), src_->tree_files());
  EXPECT_FALSE(fs::exists(share_ / "current" / ".git")) << "a tree, not a clone";

  auto again = mirror(src_->dir().string(), {"--interval", "1h"});
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("unchanged"), std::string::npos) << again.output;
  EXPECT_EQ(revisions(), (std::set<std::string>{a})) << "nothing copied again";

  const std::string b = src_->commit({{"a.txt", "two"}, {"new.txt", "new"}}, "second");
  auto second = mirror(src_->dir().string(), {"--interval", "1h"});
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_EQ(current(), b);
  EXPECT_EQ(current_files(), src_->tree_files());
  EXPECT_EQ(revisions(), (std::set<std::string>{a, b})) << "the previous one stays an interval";

  const std::string c = src_->commit({{"new.txt", ""}}, "third");
  auto third = mirror(src_->dir().string(), {"--interval", "1h"});
  ASSERT_EQ(third.status, 0) << third.output;
  EXPECT_EQ(current(), c);
  EXPECT_FALSE(fs::exists(share_ / "current" / "new.txt"));
  EXPECT_EQ(revisions(), (std::set<std::string>{b, c})) << "older than the previous: removed";
  EXPECT_TRUE(leftovers().empty());

  // Once the interval has passed, the previous one goes too (the next --once prunes it).
  ASSERT_TRUE(eventually(
      [&] {
        auto r = mirror(src_->dir().string(), {"--interval", "300ms"});
        return r.status == 0 && revisions() == std::set<std::string>{c};
      },
      20s, 200ms));
}

TEST_F(agent_mirror_git_test, the_agent_keeps_the_previous_revision_one_interval_then_prunes_it) {
  const std::string a = src_->commit({{"a.txt", "one"}, {"deep/er/b.txt", "one"}}, "first");
  auto agent = start(src_->dir().string(), {"--interval", "4s", "--timeout", "60s"});
  ASSERT_TRUE(eventually([&] { return current() == a; }, 30s)) << agent->output();

  // SIGHUP: sync now.
  const std::string b = src_->commit({{"a.txt", "two"}}, "second");
  ::kill(agent->pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return current() == b; }, 30s)) << agent->output();
  EXPECT_TRUE(revisions().count(a) == 1) << "kept for readers that opened it";

  const std::string c = src_->commit({{"a.txt", "three"}}, "third");
  ::kill(agent->pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return current() == c; }, 30s)) << agent->output();
  EXPECT_TRUE(eventually([&] { return revisions().count(a) == 0; }, 5s));

  // B's interval ends: the agent prunes it without waiting for a change.
  EXPECT_TRUE(eventually([&] { return revisions() == std::set<std::string>{c}; }, 20s))
      << agent->output();
  EXPECT_EQ(agent->stop(20s), 0) << agent->output();
  read_rest(*agent);
  EXPECT_NE(agent->output().find("stopped by a signal"), std::string::npos) << agent->output();
  EXPECT_EQ(current(), c);
}

TEST_F(agent_mirror_git_test, branches_tags_and_commits) {
  const std::string a = src_->commit({{"a.txt", "on main 1"}}, "main 1");
  src_->git({"tag", "-a", "v1", "-m", "release 1"});
  src_->git({"tag", "light", a});
  const std::string b = src_->commit({{"a.txt", "on main 2"}}, "main 2");
  src_->git({"checkout", "-q", "-b", "feature/x"});
  const std::string f = src_->commit({{"a.txt", "on feature"}, {"f.txt", "f"}}, "feature");
  src_->git({"checkout", "-q", "main"});

  auto head = mirror(src_->dir().string());
  ASSERT_EQ(head.status, 0) << head.output;
  EXPECT_EQ(current(), b) << "the remote's HEAD is main";
  auto branch = mirror("file://" + src_->dir().string(), {"--ref-branch", "feature/x"});
  ASSERT_EQ(branch.status, 0) << branch.output;
  EXPECT_EQ(current(), f);
  EXPECT_EQ(read(share_ / "current" / "f.txt"), "f");
  auto tag = mirror(src_->dir().string(), {"--ref-tag", "v1"});
  ASSERT_EQ(tag.status, 0) << tag.output;
  EXPECT_EQ(current(), a) << "an annotated tag is peeled to its commit";
  auto light = mirror(src_->dir().string(), {"--ref-tag", "light"});
  ASSERT_EQ(light.status, 0) << light.output;
  EXPECT_EQ(current(), a);
  auto commit = mirror(src_->dir().string(), {"--ref-commit", b});
  ASSERT_EQ(commit.status, 0) << commit.output;
  EXPECT_EQ(current(), b);
  auto short_id = mirror(src_->dir().string(), {"--ref-commit", f.substr(0, 10)});
  ASSERT_EQ(short_id.status, 0) << short_id.output;
  EXPECT_EQ(current(), f);
  EXPECT_EQ(read(share_ / "current" / "a.txt"), "on feature");

  // A branch that moves: the next sync follows it.
  const std::string b2 = src_->commit({{"a.txt", "on main 3"}}, "main 3");
  auto moved = mirror(src_->dir().string(), {"--ref-branch", "main"});
  ASSERT_EQ(moved.status, 0) << moved.output;
  EXPECT_EQ(current(), b2);
}

TEST_F(agent_mirror_git_test, a_bad_ref_or_an_unreachable_url_fails_and_leaves_current) {
  const std::string a = src_->commit({{"a.txt", "one"}}, "first");
  src_->git({"branch", "dev"});
  ASSERT_EQ(mirror(src_->dir().string()).status, 0);
  ASSERT_EQ(current(), a);

  auto branch = mirror(src_->dir().string(), {"--ref-branch", "nope"});
  EXPECT_EQ(branch.status, 1) << branch.output;
  EXPECT_NE(branch.output.find("branch nope does not exist"), std::string::npos) << branch.output;
  EXPECT_NE(branch.output.find("dev, main"), std::string::npos) << "names the branches there";
  EXPECT_NE(branch.output.find("current stays at " + a), std::string::npos) << branch.output;
  auto tag = mirror(src_->dir().string(), {"--ref-tag", "v9"});
  EXPECT_EQ(tag.status, 1) << tag.output;
  EXPECT_NE(tag.output.find("tag v9 does not exist"), std::string::npos) << tag.output;
  auto commit = mirror(src_->dir().string(), {"--ref-commit", std::string(40, 'f')});
  EXPECT_EQ(commit.status, 1) << commit.output;
  EXPECT_NE(commit.output.find("is not in"), std::string::npos) << commit.output;
  auto missing = mirror((dir_ / "no-such-repo").string());
  EXPECT_EQ(missing.status, 1) << missing.output;
  EXPECT_NE(missing.output.find("no directory"), std::string::npos) << missing.output;
  auto refused = mirror("https://alice:hunter2-secret@127.0.0.1:1/org/repo.git");
  EXPECT_EQ(refused.status, 1) << refused.output;
  EXPECT_NE(refused.output.find("https://127.0.0.1:1/org/repo.git"), std::string::npos)
      << refused.output;
  EXPECT_EQ(refused.output.find("hunter2"), std::string::npos) << "never the password";
  EXPECT_EQ(refused.output.find("alice"), std::string::npos) << "nor the user info";
  auto usage = mirror(src_->dir().string(), {"--ref-branch", "a..b"});
  EXPECT_EQ(usage.status, 2) << usage.output;

  EXPECT_EQ(current(), a);
  EXPECT_EQ(read(share_ / "current" / "a.txt"), "one");
  EXPECT_TRUE(leftovers().empty());
}

TEST_F(agent_mirror_git_test, a_reader_never_sees_a_mix_of_two_revisions) {
  src_->commit({{"a.txt", "v0"}, {"deep/er/b.txt", "v0"}, {"pad.bin", std::string(200'000, 'x')}},
               "v0");
  auto agent = start(src_->dir().string(), {"--interval", "1h"});
  ASSERT_TRUE(eventually([&] { return fs::exists(share_ / "current" / "a.txt"); }, 30s))
      << agent->output();

  std::atomic<bool> stop{false}, failed{false};
  std::atomic<long> reads{0};
  std::string failure;
  std::thread reader([&] {
    while (!stop.load()) {
      std::string err;
      auto pair = read_pair(share_, err);
      if (!pair) {
        failure = err;
        break;
      }
      if (pair->first != pair->second) {
        failure = "mixed: a.txt=" + pair->first + " b.txt=" + pair->second;
        break;
      }
      reads.fetch_add(1);
    }
    if (!failure.empty()) failed.store(true);
  });
  for (int i = 1; i <= 12 && !failed.load(); ++i) {
    const std::string v = "v" + std::to_string(i);
    src_->commit({{"a.txt", v}, {"deep/er/b.txt", v}, {"pad.bin", std::string(200'000 + i, 'y')}},
                 v);
    ::kill(agent->pid(), SIGHUP);
    ASSERT_TRUE(eventually([&] { return read(share_ / "current" / "a.txt") == v; }, 30s))
        << agent->output();
  }
  stop.store(true);
  reader.join();
  EXPECT_EQ(failure, "");
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(agent->stop(20s), 0) << agent->output();
  EXPECT_LE(revisions().size(), 2u) << "current and the previous one";
}

TEST_F(agent_mirror_git_test, a_stalled_server_times_out_and_leaves_current) {
  const std::string a = src_->commit({{"a.txt", "one"}}, "first");
  ASSERT_EQ(mirror(src_->dir().string()).status, 0);
  silent_port stalled;
  ASSERT_GT(stalled.port(), 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(stalled.port()) + "/repo.git";
  const auto started = std::chrono::steady_clock::now();
  auto r = mirror(url, {"--timeout", "1s"});
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 30s);
  EXPECT_NE(r.output.find("longer than --timeout 1s"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("current stays at " + a), std::string::npos) << r.output;
  EXPECT_EQ(current(), a);
  EXPECT_TRUE(leftovers().empty());
  // The store works again afterwards (locks a killed fetch left are cleared).
  const std::string b = src_->commit({{"a.txt", "two"}}, "second");
  auto after = mirror(src_->dir().string());
  ASSERT_EQ(after.status, 0) << after.output;
  EXPECT_EQ(current(), b);
}

TEST_F(agent_mirror_git_test, sigterm_aborts_a_sync_in_progress_and_exits_0) {
  const std::string a = src_->commit({{"a.txt", "one"}}, "first");
  ASSERT_EQ(mirror(src_->dir().string()).status, 0);
  silent_port stalled;
  ASSERT_GT(stalled.port(), 0);
  auto agent = start("http://127.0.0.1:" + std::to_string(stalled.port()) + "/repo.git",
                     {"--interval", "1h", "--timeout", "10m"});
  ASSERT_FALSE(agent
                   ->read_until([](const std::string& l) {
                     return l.find("syncing git") != std::string::npos;
                   })
                   .empty())
      << agent->output();
  // The sync starts right after that line; a signal that comes first waits in the agent's
  // signalfd and aborts it all the same.
  const auto stopping = std::chrono::steady_clock::now();
  EXPECT_EQ(agent->stop(20s), 0) << agent->output();
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, 10s);
  read_rest(*agent);
  EXPECT_NE(agent->output().find("stopped by a signal during a sync"), std::string::npos)
      << agent->output();
  EXPECT_EQ(current(), a);
  EXPECT_TRUE(leftovers().empty());
}

TEST_F(agent_mirror_git_test, reports_reach_the_controller_with_the_token) {
  report_server srv;
  const std::string a = src_->commit({{"a.txt", "one"}, {"b/c.txt", "three"}}, "first");
  const env_list env{{"TIDESYNC_REPORT_URL", srv.url()},
                     {"TIDESYNC_REPORT_TOKEN", "tok-sv-secret"},
                     {"TIDESYNC_VOLUME_KIND", "SharedVolume"},
                     {"TIDESYNC_VOLUME_NAMESPACE", "team-a"},
                     {"TIDESYNC_VOLUME_NAME", "docs"}};
  auto ok = mirror(src_->dir().string(), {}, env);
  ASSERT_EQ(ok.status, 0) << ok.output;
  EXPECT_EQ(ok.output.find("tok-sv-secret"), std::string::npos);
  auto got = srv.got();
  ASSERT_EQ(got.size(), 1u) << "delivered before the exit";
  EXPECT_EQ(got[0].authorization, "Bearer tok-sv-secret");
  const auto& b = got[0].body;
  EXPECT_EQ(b.get_string("kind"), "SharedVolume");
  EXPECT_EQ(b.get_string("namespace"), "team-a");
  EXPECT_EQ(b.get_string("name"), "docs");
  EXPECT_EQ(b.get_string("revision"), a);
  EXPECT_EQ(b.get_string("result"), "Succeeded");
  EXPECT_EQ(b.get_int("files"), 2);
  EXPECT_EQ(b.get_int("bytes"), 8);
  EXPECT_FALSE(b.get_string("message").empty());
  const std::string time(b.get_string("time"));
  EXPECT_EQ(time.size(), 20u) << time;
  EXPECT_EQ(time.back(), 'Z');

  // A failure names what went wrong and what the share still serves.
  auto bad = mirror(src_->dir().string(), {"--ref-branch", "gone"},
                    joined(env, {{"TIDESYNC_VOLUME_KIND", "ClusterSharedVolume"}}));
  EXPECT_EQ(bad.status, 1);
  got = srv.got();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].body.get_string("kind"), "ClusterSharedVolume");
  EXPECT_EQ(got[1].body.get_string("namespace"), "") << "cluster-scoped";
  EXPECT_EQ(got[1].body.get_string("result"), "Failed");
  EXPECT_NE(got[1].body.get_string("message").find("branch gone does not exist"),
            std::string::npos);
  EXPECT_EQ(got[1].body.get_string("revision"), a);
  EXPECT_EQ(got[1].body.get_int("files"), 2);

  // Nothing listening: the sync still succeeds.
  auto closed = mirror(src_->dir().string(), {},
                       joined(env, {{"TIDESYNC_REPORT_URL", "http://127.0.0.1:1/volume-report"}}));
  EXPECT_EQ(closed.status, 0) << closed.output;
  EXPECT_NE(closed.output.find("not delivered"), std::string::npos) << closed.output;
}

// ---- smart HTTP with credentials ----

// Serves the repositories under `root` over git's smart HTTP protocol (git http-backend as a
// CGI program), answering 401 unless the request carries Basic `user`:`password`.
class git_http_server {
 public:
  git_http_server(fs::path root, std::string user, std::string password)
      : root_(std::move(root)),
        expected_("Basic " + tidesync::base64::encode(user + ":" + password)) {
    auto handler = [this](const httplib::Request& req, httplib::Response& res) { serve(req, res); };
    svr_.Get(".*", handler);
    svr_.Post(".*", handler);
    port_ = svr_.bind_to_any_port("127.0.0.1");
    if (port_ > 0) thread_ = std::thread([this] { svr_.listen_after_bind(); });
  }
  ~git_http_server() {
    svr_.stop();
    if (thread_.joinable()) thread_.join();
  }
  git_http_server(const git_http_server&) = delete;
  git_http_server& operator=(const git_http_server&) = delete;
  [[nodiscard]] int port() const { return port_; }
  int refused() const { return refused_.load(); }

 private:
  void serve(const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Authorization") != expected_) {
      ++refused_;
      res.status = 401;
      res.set_header("WWW-Authenticate", "Basic realm=\"git\"");
      return;
    }
    // The request body goes in through a file, the CGI answer comes out through a pipe.
    char in_tmpl[] = "/tmp/tidesync-cgi-in-XXXXXX";
    const int in_fd = ::mkstemp(in_tmpl);
    if (in_fd < 0) {
      res.status = 500;
      return;
    }
    ::unlink(in_tmpl);
    if (!req.body.empty() && ::write(in_fd, req.body.data(), req.body.size()) < 0) {
      ::close(in_fd);
      res.status = 500;
      return;
    }
    ::lseek(in_fd, 0, SEEK_SET);
    std::vector<std::string> env{"GIT_PROJECT_ROOT=" + root_.string(),
                                 "GIT_HTTP_EXPORT_ALL=1",
                                 "PATH=/usr/bin:/bin",
                                 "REQUEST_METHOD=" + req.method,
                                 "PATH_INFO=" + req.path,
                                 "REMOTE_USER=tester",
                                 "REMOTE_ADDR=127.0.0.1",
                                 "CONTENT_LENGTH=" + std::to_string(req.body.size())};
    std::string query;
    for (const auto& [k, v] : req.params)
      query += (query.empty() ? "" : "&") + k + "=" + v;
    env.push_back("QUERY_STRING=" + query);
    if (req.has_header("Content-Type"))
      env.push_back("CONTENT_TYPE=" + req.get_header_value("Content-Type"));
    if (req.has_header("Content-Encoding"))
      env.push_back("HTTP_CONTENT_ENCODING=" + req.get_header_value("Content-Encoding"));
    if (req.has_header("Git-Protocol"))
      env.push_back("GIT_PROTOCOL=" + req.get_header_value("Git-Protocol"));
    std::vector<char*> envp;
    for (auto& e : env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(in_fd);
      res.status = 500;
      return;
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(in_fd, 0);
      ::dup2(out[1], 1);
      char git[] = "/usr/bin/git";
      char sub[] = "http-backend";
      char* argv[] = {git, sub, nullptr};
      ::execve(git, argv, envp.data());
      ::_exit(127);
    }
    ::close(in_fd);
    ::close(out[1]);
    std::string answer;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(out[0], buf, sizeof buf)) > 0)
      answer.append(buf, static_cast<size_t>(n));
    ::close(out[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    size_t head_end = answer.find("\r\n\r\n");
    size_t skip = 4;
    if (head_end == std::string::npos) {
      head_end = answer.find("\n\n");
      skip = 2;
    }
    if (head_end == std::string::npos) {
      res.status = 500;
      return;
    }
    std::string content_type = "application/octet-stream";
    res.status = 200;
    size_t pos = 0;
    const std::string head = answer.substr(0, head_end);
    while (pos < head.size()) {
      size_t eol = head.find('\n', pos);
      if (eol == std::string::npos) eol = head.size();
      std::string line = head.substr(pos, eol - pos);
      pos = eol + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      const std::string name = line.substr(0, colon);
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ')
        value.erase(0, 1);
      if (name == "Status") {
        res.status = std::atoi(value.c_str());
      } else if (name == "Content-Type") {
        content_type = value;
      } else {
        res.set_header(name, value);
      }
    }
    res.set_content(answer.substr(head_end + skip), content_type);
  }

  fs::path root_;
  std::string expected_;
  httplib::Server svr_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int> refused_{0};
};

TEST_F(agent_mirror_git_test, https_style_credentials_come_from_the_environment) {
  const std::string a = src_->commit({{"a.txt", "private"}}, "first");
  // A bare copy for http-backend.
  ASSERT_EQ(run({"git", "clone", "-q", "--bare", src_->dir().string(),
                 (dir_ / "srv" / "docs.git").string()})
                .status,
            0);
  git_http_server srv(dir_ / "srv", "reader", "tok-git-s3cret");
  ASSERT_GT(srv.port(), 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(srv.port()) + "/docs.git";

  auto none = mirror(url);
  EXPECT_EQ(none.status, 1) << none.output;
  EXPECT_NE(none.output.find("set GIT_USERNAME and GIT_PASSWORD"), std::string::npos)
      << none.output;

  auto wrong = mirror(url, {}, {{"GIT_USERNAME", "reader"}, {"GIT_PASSWORD", "wrong-token-x"}});
  EXPECT_EQ(wrong.status, 1) << wrong.output;
  EXPECT_NE(wrong.output.find("refused GIT_USERNAME/GIT_PASSWORD"), std::string::npos)
      << wrong.output;
  EXPECT_EQ(wrong.output.find("wrong-token-x"), std::string::npos) << "never the password";

  auto ok = mirror(url, {}, {{"GIT_USERNAME", "reader"}, {"GIT_PASSWORD", "tok-git-s3cret"}});
  ASSERT_EQ(ok.status, 0) << ok.output;
  EXPECT_EQ(current(), a);
  EXPECT_EQ(read(share_ / "current" / "a.txt"), "private");
  EXPECT_EQ(ok.output.find("tok-git-s3cret"), std::string::npos) << ok.output;

  // Credentials in the URL work too, and are never shown.
  const std::string b = src_->commit({{"a.txt", "private 2"}}, "second");
  ASSERT_EQ(run({"git", "-C", src_->dir().string(), "push", "-q",
                 (dir_ / "srv" / "docs.git").string(), "main"})
                .status,
            0);
  const std::string with_userinfo =
      "http://reader:tok-git-s3cret@127.0.0.1:" + std::to_string(srv.port()) + "/docs.git";
  auto inline_creds = mirror(with_userinfo);
  ASSERT_EQ(inline_creds.status, 0) << inline_creds.output;
  EXPECT_EQ(current(), b);
  EXPECT_EQ(inline_creds.output.find("tok-git-s3cret"), std::string::npos) << inline_creds.output;
  EXPECT_EQ(inline_creds.output.find("reader"), std::string::npos) << inline_creds.output;
  EXPECT_GT(srv.refused(), 0);
}

// ---- SSH ----

std::string user_name() {
  const passwd* pw = ::getpwuid(::geteuid());
  return pw != nullptr ? pw->pw_name : "root";
}

class agent_mirror_ssh_test : public agent_mirror_git_test {
 protected:
  static std::string script() { return std::string(TIDESYNC_SOURCE_DIR) + "/scripts/sshd.sh"; }
  static void SetUpTestSuite() {
    auto check = run({"bash", script(), "check"});
    if (check.status != 0) {
      missing_ = check.output.empty() ? "sshd.sh check failed" : check.output;
      return;
    }
    char tmpl[] = "/var/tmp/tidesync-mirrorsshd-XXXXXX";
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
    agent_mirror_git_test::SetUp();
  }
  // "[127.0.0.1]:PORT ssh-ed25519 AAAA..." for the server's host key.
  static std::string known_hosts_line() {
    const std::string pub = read(fs::path(sshd_dir_) / "host_ed25519.pub");
    const auto sp = pub.find(' ', pub.find(' ') + 1);
    return "[127.0.0.1]:" + std::to_string(port_) + " " + pub.substr(0, sp) + "\n";
  }

  static inline std::string missing_, sshd_dir_, start_output_;
  static inline int port_ = 0;
};

TEST_F(agent_mirror_ssh_test, a_key_and_a_matching_host_key_fetch_others_are_refused) {
  const std::string a = src_->commit({{"a.txt", "over ssh"}}, "first");
  const std::string url =
      "ssh://" + user_name() + "@127.0.0.1:" + std::to_string(port_) + src_->dir().string();
  const std::string key = sshd_dir_ + "/id_ed25519";
  write(dir_ / "known_hosts", "# ours\n" + known_hosts_line());
  // Another host key for the same host.
  ASSERT_EQ(
      run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (dir_ / "other_host").string()})
          .status,
      0);
  const std::string other_pub = read(dir_ / "other_host.pub");
  write(dir_ / "wrong_hosts",
        "[127.0.0.1]:" + std::to_string(port_) + " " +
            other_pub.substr(0, other_pub.find(' ', other_pub.find(' ') + 1)) + "\n");
  write(dir_ / "stranger_hosts",
        "git.example.com " + other_pub.substr(0, other_pub.find(' ', other_pub.find(' ') + 1)) +
            "\n");

  auto checked = mirror(
      url, {},
      {{"GIT_SSH_KEY_FILE", key}, {"GIT_KNOWN_HOSTS_FILE", (dir_ / "known_hosts").string()}});
  ASSERT_EQ(checked.status, 0) << checked.output;
  EXPECT_EQ(current(), a);
  EXPECT_EQ(read(share_ / "current" / "a.txt"), "over ssh");
  EXPECT_EQ(checked.output.find("not checked"), std::string::npos) << checked.output;

  const std::string b = src_->commit({{"a.txt", "over ssh 2"}}, "second");
  auto wrong = mirror(
      url, {},
      {{"GIT_SSH_KEY_FILE", key}, {"GIT_KNOWN_HOSTS_FILE", (dir_ / "wrong_hosts").string()}});
  EXPECT_EQ(wrong.status, 1) << wrong.output;
  EXPECT_NE(wrong.output.find("is not the one GIT_KNOWN_HOSTS_FILE lists"), std::string::npos)
      << wrong.output;
  auto stranger = mirror(
      url, {},
      {{"GIT_SSH_KEY_FILE", key}, {"GIT_KNOWN_HOSTS_FILE", (dir_ / "stranger_hosts").string()}});
  EXPECT_EQ(stranger.status, 1) << stranger.output;
  EXPECT_NE(stranger.output.find("has no line for [127.0.0.1]:" + std::to_string(port_)),
            std::string::npos)
      << stranger.output;
  auto keyless = mirror(url, {}, {{"GIT_KNOWN_HOSTS_FILE", (dir_ / "known_hosts").string()}});
  EXPECT_EQ(keyless.status, 1) << keyless.output;
  EXPECT_NE(keyless.output.find("set GIT_SSH_KEY_FILE"), std::string::npos) << keyless.output;
  EXPECT_EQ(current(), a) << "refusals leave current";

  // Without a known_hosts file the host key is not checked, and the log says so.
  auto unchecked = mirror(url, {}, {{"GIT_SSH_KEY_FILE", key}});
  ASSERT_EQ(unchecked.status, 0) << unchecked.output;
  EXPECT_NE(unchecked.output.find("is not checked"), std::string::npos) << unchecked.output;
  EXPECT_NE(unchecked.output.find("SHA256:"), std::string::npos) << unchecked.output;
  EXPECT_EQ(current(), b);
  // So when the file is named but absent: the controller mounts the Secret's known_hosts only
  // when the Secret has one.
  const std::string c = src_->commit({{"a.txt", "over ssh 3"}}, "third");
  auto absent = mirror(
      url, {},
      {{"GIT_SSH_KEY_FILE", key}, {"GIT_KNOWN_HOSTS_FILE", (dir_ / "no-such-file").string()}});
  ASSERT_EQ(absent.status, 0) << absent.output;
  EXPECT_NE(absent.output.find("does not exist"), std::string::npos) << absent.output;
  EXPECT_EQ(current(), c);
}

}  // namespace
