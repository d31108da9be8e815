// Leader election against the embedded API server over HTTP on 127.0.0.1: acquisition, a
// standby that waits, release on stop() and prompt takeover, kill-style failover after the
// lease expires, the leader giving up when the API server goes away, racing candidates, and
// the Lease as the real kubectl shows it.
//
// Timings: lease 1.5 s (written as leaseDurationSeconds 2), renew deadline 1 s, retry 200 ms.
#include "runtime/k8s/leader_election.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/apiserver/server.hpp"
#include "runtime/apiserver/store.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/k8s/client.hpp"
#include "tests/support/process.hpp"

namespace tidesync {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

const char* const lease_ns = "tidesync-system";
const char* const lease_name = "tidesync-controller";

// What one elector's callbacks saw, with the time of each.
struct recorder {
  std::mutex mu;
  std::condition_variable cv;
  int started = 0, stopped = 0;
  clock_type::time_point started_at{}, stopped_at{};
  std::vector<std::string> leaders;

  k8s::leader_callbacks callbacks() {
    k8s::leader_callbacks cb;
    cb.started_leading = [this] {
      std::lock_guard<std::mutex> g(mu);
      ++started;
      started_at = clock_type::now();
      cv.notify_all();
    };
    cb.stopped_leading = [this] {
      std::lock_guard<std::mutex> g(mu);
      ++stopped;
      stopped_at = clock_type::now();
      cv.notify_all();
    };
    cb.new_leader = [this](const std::string& id) {
      std::lock_guard<std::mutex> g(mu);
      leaders.push_back(id);
      cv.notify_all();
    };
    return cb;
  }
  bool wait(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, limit, pred);
  }
};

// Polls a condition that has no callback (a field on the server) until a deadline.
bool eventually(const std::function<bool()>& probe, std::chrono::milliseconds limit) {
  const auto deadline = clock_type::now() + limit;
  for (;;) {
    if (probe()) return true;
    if (clock_type::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

class LeaderElection : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<apiserver::store>();
    server_ = std::make_unique<apiserver::server>(*store_);
    auto port = server_->start();
    ASSERT_TRUE(port.has_value()) << port.error().to_string();
    port_ = *port;
    k8s::connection_config cfg;
    cfg.server = "http://127.0.0.1:" + std::to_string(port_);
    k8s::client_options co;
    co.timeout = 2s;
    client_ = std::make_unique<k8s::client>(*loop_, cfg, co);
    json::value ns;
    ns["apiVersion"] = "v1";
    ns["kind"] = "Namespace";
    ns["metadata"]["name"] = lease_ns;
    auto r = client_->create_sync(k8s::resources::namespaces(), "", ns);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
  }

  void TearDown() override {
    electors_.clear();  // before the loop stops: lets a leader release
    loop_->stop();
    client_.reset();
    loop_.reset();  // closes curl's idle keep-alive connections, which the server would await
    server_->stop();
  }

  static k8s::leader_election_options options(const std::string& id) {
    k8s::leader_election_options o;
    o.lease_namespace = lease_ns;
    o.lease_name = lease_name;
    o.identity = id;
    o.lease_duration = 1500ms;
    o.renew_deadline = 1000ms;
    o.retry_period = 200ms;
    return o;
  }

  // Recorders live in the fixture, so they outlive the electors (whose destructors may still
  // call stopped_leading).
  recorder& rec() { return recorders_.emplace_back(); }

  k8s::leader_elector& make(const std::string& id, recorder& rec, bool release = true) {
    auto o = options(id);
    o.release_on_cancel = release;
    electors_.push_back(
        std::make_unique<k8s::leader_elector>(*client_, *loop_, std::move(o), rec.callbacks()));
    EXPECT_TRUE(electors_.back()->validate().has_value());
    return *electors_.back();
  }

  // The Lease's spec as the server has it (empty when there is none).
  k8s::lease_spec lease() {
    auto r = client_->get_sync(k8s::resources::leases(), lease_ns, lease_name);
    if (!r) return {};
    auto p = k8s::parse_election_lease(*r);
    return p ? p->spec : k8s::lease_spec{};
  }

  std::unique_ptr<http::loop> loop_ = std::make_unique<http::loop>();
  std::unique_ptr<apiserver::store> store_;
  std::unique_ptr<apiserver::server> server_;
  std::unique_ptr<k8s::client> client_;
  int port_ = 0;
  std::list<recorder> recorders_;
  std::vector<std::unique_ptr<k8s::leader_elector>> electors_;
};

TEST_F(LeaderElection, LeaderRenewsStandbyWaitsReleaseHandsOverPromptly) {
  recorder& r1 = rec();
  recorder& r2 = rec();
  auto& e1 = make("ctrl-1", r1);
  auto& e2 = make("ctrl-2", r2);
  EXPECT_EQ(e1.identity(), "ctrl-1");
  e1.start();
  ASSERT_TRUE(r1.wait([&] { return r1.started == 1; }, 3s));
  EXPECT_TRUE(e1.is_leader());
  EXPECT_EQ(e1.observed_leader(), "ctrl-1");
  const auto first = lease();
  EXPECT_EQ(first.holder_identity, "ctrl-1");
  EXPECT_EQ(first.lease_duration_seconds, 2);
  EXPECT_EQ(first.lease_transitions, 0);
  EXPECT_EQ(first.acquire_time, first.renew_time);

  e2.start();
  ASSERT_TRUE(r2.wait([&] { return !r2.leaders.empty(); }, 3s));
  EXPECT_EQ(r2.leaders.front(), "ctrl-1");
  EXPECT_EQ(e2.observed_leader(), "ctrl-1");

  // Longer than the lease lasts: ctrl-1 keeps renewing, so ctrl-2 must keep waiting.
  const auto first_renew = *k8s::parse_micro_time(first.renew_time);
  ASSERT_TRUE(eventually(
      [&] {
        auto l = lease();
        auto t = k8s::parse_micro_time(l.renew_time);
        return l.holder_identity == "ctrl-1" && t && *t - first_renew >= 2500ms;
      },
      5s));
  EXPECT_FALSE(e2.is_leader());
  EXPECT_EQ(r2.started, 0);
  EXPECT_EQ(r1.stopped, 0);
  EXPECT_EQ(lease().acquire_time, first.acquire_time);  // renewals keep the acquire time

  // stop() blocks until the release is written: ctrl-2 takes over at its next attempt.
  const auto stop_at = clock_type::now();
  e1.stop();
  EXPECT_FALSE(e1.is_leader());
  EXPECT_EQ(r1.stopped, 1);
  ASSERT_TRUE(r2.wait([&] { return r2.started == 1; }, 3s));
  const auto handover = r2.started_at - stop_at;
  EXPECT_LT(handover, 800ms) << "takeover must follow the release, not the 2 s expiry";
  EXPECT_LT(r1.stopped_at, r2.started_at);
  EXPECT_TRUE(e2.is_leader());
  const auto now_held = lease();
  EXPECT_EQ(now_held.holder_identity, "ctrl-2");
  EXPECT_EQ(now_held.lease_transitions, 1);
  EXPECT_EQ(e2.observed_leader(), "ctrl-2");
  {
    std::lock_guard<std::mutex> g(r2.mu);
    EXPECT_EQ(r2.leaders.back(), "ctrl-2");
  }
  std::printf("release handover took %lld ms\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(handover).count()));
}

TEST_F(LeaderElection, KilledLeaderIsReplacedAfterTheLeaseExpires) {
  recorder& r1 = rec();
  recorder& r2 = rec();
  auto& e1 = make("ctrl-1", r1, /*release=*/false);
  auto& e2 = make("ctrl-2", r2);
  e1.start();
  ASSERT_TRUE(r1.wait([&] { return r1.started == 1; }, 3s));
  e2.start();
  ASSERT_TRUE(r2.wait([&] { return !r2.leaders.empty(); }, 3s));

  // Like a crash: ctrl-1 disappears without clearing the Lease.
  const auto killed_at = clock_type::now();
  electors_.front().reset();
  EXPECT_EQ(lease().holder_identity, "ctrl-1");
  ASSERT_TRUE(r2.wait([&] { return r2.started == 1; }, 5s));
  const auto took = r2.started_at - killed_at;
  // ctrl-2 last saw a renewal at most ~one retry period before the kill; the Lease lasts 2 s.
  EXPECT_GE(took, 1500ms);
  EXPECT_LT(took, 3000ms);
  const auto l = lease();
  EXPECT_EQ(l.holder_identity, "ctrl-2");
  EXPECT_EQ(l.lease_transitions, 1);
  EXPECT_EQ(r1.stopped, 1);  // the destructor still told its owner
  std::printf(
      "failover after a kill took %lld ms\n",
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
}

TEST_F(LeaderElection, LeaderStopsWhenTheApiServerGoesAway) {
  recorder& r1 = rec();
  auto& e1 = make("ctrl-1", r1);
  e1.start();
  ASSERT_TRUE(r1.wait([&] { return r1.started == 1; }, 3s));
  // Let one renewal through so the deadline counts from a renewal, not the acquisition.
  const auto acquired = lease().renew_time;
  ASSERT_TRUE(eventually([&] { return lease().renew_time != acquired; }, 2s));

  const auto gone_at = clock_type::now();
  server_->stop();
  ASSERT_TRUE(r1.wait([&] { return r1.stopped == 1; }, 3s));
  const auto after = r1.stopped_at - gone_at;
  // The last renewal was sent at most one retry period (plus latency) before the server went
  // away; the leader must give up renew_deadline (1 s) after it, well before a standby could
  // take over (2 s after it last saw a renewal).
  EXPECT_GE(after, 1000ms - 260ms);
  EXPECT_LE(after, 1400ms);
  EXPECT_FALSE(e1.is_leader());
  std::printf(
      "leader gave up %lld ms after the API server went away\n",
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(after).count()));
}

TEST_F(LeaderElection, RacingCandidatesElectExactlyOne) {
  std::vector<recorder*> recs;
  std::vector<k8s::leader_elector*> es;
  for (int i = 0; i < 3; ++i) {
    recs.push_back(&rec());
    es.push_back(&make("ctrl-" + std::to_string(i), *recs.back()));
  }
  for (auto* e : es)
    e->start();  // all see no Lease and try to create it at once
  auto total_started = [&] {
    int n = 0;
    for (auto* r : recs) {
      std::lock_guard<std::mutex> g(r->mu);
      n += r->started;
    }
    return n;
  };
  ASSERT_TRUE(eventually([&] { return total_started() == 1; }, 3s));
  const std::string leader = lease().holder_identity;
  ASSERT_FALSE(leader.empty());
  ASSERT_TRUE(eventually(
      [&] {
        for (auto* e : es)
          if (e->observed_leader() != leader) return false;
        return true;
      },
      3s));
  int leaders = 0;
  for (auto* e : es)
    leaders += e->is_leader() ? 1 : 0;
  EXPECT_EQ(leaders, 1);
  EXPECT_EQ(total_started(), 1);
  EXPECT_EQ(lease().lease_transitions, 0);
}

TEST_F(LeaderElection, StopOnTheLoopThreadDoesNotBlockAndStillReleases) {
  recorder& r1 = rec();
  auto& e1 = make("ctrl-1", r1);
  e1.start();
  ASSERT_TRUE(r1.wait([&] { return r1.started == 1; }, 3s));
  loop_->post([&] { e1.stop(); });
  ASSERT_TRUE(r1.wait([&] { return r1.stopped == 1; }, 2s));
  ASSERT_TRUE(eventually([&] { return lease().holder_identity.empty(); }, 2s));
  EXPECT_EQ(lease().lease_duration_seconds, 1);
  EXPECT_EQ(e1.observed_leader(), "");
  // And it can campaign again: the free Lease is taken with a new transition.
  e1.start();
  ASSERT_TRUE(r1.wait([&] { return r1.started == 2; }, 3s));
  EXPECT_EQ(lease().lease_transitions, 1);
}

TEST_F(LeaderElection, KubectlShowsTheLeaseFields) {
  auto probe = test::run({"kubectl", "version", "--client"});
  ASSERT_EQ(probe.status, 0) << "this test drives the real kubectl; it is not on PATH";
  recorder& r1 = rec();
  recorder& r2 = rec();
  auto& e1 = make("ctrl-1", r1);
  auto& e2 = make("ctrl-2", r2);
  e1.start();
  ASSERT_TRUE(r1.wait([&] { return r1.started == 1; }, 3s));
  e2.start();
  ASSERT_TRUE(r2.wait([&] { return !r2.leaders.empty(); }, 3s));
  e1.stop();
  ASSERT_TRUE(r2.wait([&] { return r2.started == 1; }, 3s));

  char tmpl[] = "/tmp/tidesync-leader-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string kubeconfig = dir + "/kubeconfig";
  std::ofstream(kubeconfig) << "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n"
                            << "    server: http://127.0.0.1:" << port_ << "\n"
                            << "contexts:\n- name: t\n  context:\n    cluster: t\n    user: t\n"
                            << "current-context: t\nusers:\n- name: t\n  user: {}\n";
  auto res = test::run({"kubectl", "--kubeconfig", kubeconfig, "--cache-dir", dir + "/cache", "get",
                        "lease", "-n", lease_ns, lease_name, "-o",
                        "jsonpath={.spec.holderIdentity} {.spec.leaseTransitions} "
                        "{.spec.leaseDurationSeconds} {.spec.acquireTime} {.spec.renewTime}"});
  std::filesystem::remove_all(dir);
  ASSERT_EQ(res.status, 0) << res.output;
  const std::regex want(
      R"(ctrl-2 1 2 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z))");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(res.output, m, want)) << res.output;
  // Taking over sets both times; a renewal since then only moves renewTime forward.
  EXPECT_LE(*k8s::parse_micro_time(m[1].str()), *k8s::parse_micro_time(m[2].str()));
}

}  // namespace
}  // namespace tidesync
