// The controller end to end: the real `tidesync controller` binary against `tidesync simulate`
// (embedded API server + simulated kubelet running real rclone), driven with the real kubectl.
//
// Data lives under /var/tmp: the rclone Job mounts an emptyDir at /tmp, so in the simulation a
// local path under /tmp would be rewritten into that emptyDir (docs/kubelet.md).
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "actors/lease.hpp"
#include "runtime/json/value.hpp"
#include "tests/support/process.hpp"
#include "tests/support/simulation.hpp"

namespace fs = std::filesystem;
using namespace tidesync;
using namespace tidesync::test;

namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class controller_e2e : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/tidesync-controller-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    fs::create_directories(dir + "/src");
    // Enough bytes that a rate-limited rclone runs for a few seconds.
    for (int i = 0; i < 8; ++i) {
      std::ofstream f(dir + "/src/file-" + std::to_string(i) + ".bin", std::ios::binary);
      std::string block(128 * 1024, static_cast<char>('a' + i));
      f << block;
    }
    std::string data = dir + "/sim";
    sim = std::make_unique<child>(std::vector<std::string>{
        "sh", "-c",
        "exec '" + std::string(TIDESYNC_BINARY) + "' simulate --no-controller --data-dir '" + data +
            "' --controller-rbac '" + simulation::rbac_manifest() + "' '" +
            std::string(TIDESYNC_SOURCE_DIR) + "/deploy/crds' > '" + dir + "/simulate.log' 2>&1"});
    kubeconfig = data + "/kubeconfig";
    ASSERT_TRUE(eventually(
        [&] {
          return fs::exists(kubeconfig) &&
                 kubectl({"get", "crd", "bucketsyncs.tidesync.io", "-o", "name"}).status == 0;
        },
        20s))
        << read_file(dir + "/simulate.log");
  }

  void TearDown() override {
    controllers.clear();
    sim.reset();
    simulation::expect_no_rbac_denial(dir + "/simulate.log");
    if (HasFailure()) {
      std::cerr << "--- simulate log ---\n" << read_file(dir + "/simulate.log");
      for (int i = 0; i < controller_count; ++i)
        std::cerr << "--- controller " << i << " log ---\n"
                  << read_file(dir + "/controller-" + std::to_string(i) + ".log");
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  // Starts `tidesync controller` with `flags`; its log goes to controller-<n>.log.
  child& start_controller(const std::vector<std::string>& flags = {}) {
    // The controller's own identity (deploy/base/rbac.yaml), not kubectl's administrator.
    std::string cmd = "exec '" + std::string(TIDESYNC_BINARY) + "' controller --kubeconfig '" +
                      dir + "/sim/controller-kubeconfig" + "' --health-addr 0";
    bool metrics = false;
    for (const auto& f : flags) {
      cmd += " '" + f + "'";
      if (f.rfind("--metrics-addr", 0) == 0) metrics = true;
    }
    if (!metrics) cmd += " --metrics-addr 0";
    cmd += " > '" + dir + "/controller-" + std::to_string(controller_count++) + ".log' 2>&1";
    controllers.push_back(std::make_unique<child>(std::vector<std::string>{"sh", "-c", cmd}));
    return *controllers.back();
  }

  run_result kubectl(std::vector<std::string> args, const std::string& stdin_text = {}) {
    std::vector<std::string> argv{"kubectl", "--kubeconfig", kubeconfig, "--cache-dir",
                                  dir + "/kube-cache"};
    for (auto& a : args)
      argv.push_back(a);
    if (!stdin_text.empty()) {
      std::string path = dir + "/stdin-" + std::to_string(++files) + ".yaml";
      std::ofstream(path) << stdin_text;
      argv.push_back("-f");
      argv.push_back(path);
    }
    return run(argv);
  }

  void apply(const std::string& yaml) {
    auto r = kubectl({"apply"}, yaml);
    ASSERT_EQ(r.status, 0) << r.output;
  }

  // `kubectl get <what> -o jsonpath=<path>`, "" when it fails (e.g. not found).
  std::string get(const std::string& what, const std::string& path) {
    std::vector<std::string> args{"get"};
    std::istringstream words(what);
    for (std::string w; words >> w;)
      args.push_back(w);
    args.push_back("-o");
    args.push_back("jsonpath=" + path);
    auto r = kubectl(args);
    return r.status == 0 ? r.output : std::string{};
  }

  std::string phase(const std::string& name) {
    return get("bucketsync " + name, "{.status.phase}");
  }

  bool finished(const std::string& name) { return phase(name) == "Finished"; }

  // A BucketSync copying the test's source folder to `dst` (a folder under dir), rclone held
  // to `bwlimit` so that the sync takes a while.
  std::string bucket_sync(const std::string& name, const std::string& dst,
                          const std::string& bwlimit = "", const std::string& extra = "") {
    std::string flags = bwlimit.empty() ? "" : "  rcloneFlags: [\"--bwlimit=" + bwlimit + "\"]\n";
    return "apiVersion: tidesync.io/v1alpha1\nkind: BucketSync\nmetadata:\n  name: " + name +
           "\n  namespace: default\nspec:\n  source: \"source:" + dir +
           "/src\"\n  destination: \"destination:" + dir + "/" + dst +
           "\"\n  sourceEnv: [{name: TYPE, value: local}]\n  destinationEnv: [{name: TYPE, "
           "value: local}]\n" +
           flags + extra;
  }

  std::vector<std::string> event_reasons(const std::string& name) {
    auto out = get("events --field-selector involvedObject.name=" + name,
                   "{range .items[*]}{.reason}{\"\\n\"}{end}");
    std::vector<std::string> reasons;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);)
      if (!l.empty()) reasons.push_back(l);
    return reasons;
  }

  size_t count_files(const std::string& sub) {
    std::error_code ec;
    if (!fs::exists(dir + "/" + sub, ec)) return 0;
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir + "/" + sub, ec))
      if (e.is_regular_file()) ++n;
    return n;
  }

  std::string lock_leases() {
    return get("leases -n tidesync-system -l tidesync.io/lock=true",
               "{range .items[*]}{.spec.holderIdentity}{\"\\n\"}{end}");
  }

  std::string dir, kubeconfig;
  int files = 0;
  int controller_count = 0;
  std::unique_ptr<child> sim;
  std::vector<std::unique_ptr<child>> controllers;
};

}  // namespace

// Issue 4: "Two BucketSyncs on one bucket never run at once; the waiting one says so in its
// status." Sampled all along: B's Job never exists while A's does, and B's status names A.
TEST_F(controller_e2e, two_syncs_on_one_bucket_never_run_at_once) {
  start_controller();
  apply(bucket_sync("first", "dst", "256k"));
  ASSERT_TRUE(eventually([&] { return !get("job first", "{.metadata.name}").empty(); }, 30s));
  apply(bucket_sync("second", "dst", "256k"));

  bool overlap = false;
  ASSERT_TRUE(eventually(
      [&] {
        // One list is one snapshot of the server (two gets would race with the hand-over).
        auto jobs = " " + get("jobs", "{.items[*].metadata.name}") + " ";
        if (jobs.find(" first ") != std::string::npos && jobs.find(" second ") != std::string::npos)
          overlap = true;
        return finished("first") && finished("second");
      },
      120s, 50ms));
  EXPECT_FALSE(overlap) << "both Jobs existed at the same time";
  // It said so: the WaitingForLock condition stays (False, LockAcquired) once a sync waited,
  // and the event names the holder in the way.
  EXPECT_EQ(get("bucketsync second", "{.status.conditions[?(@.type==\"WaitingForLock\")].reason}"),
            "LockAcquired");
  auto waited = get("events --field-selector involvedObject.name=second,reason=WaitingForLock",
                    "{.items[*].message}");
  EXPECT_NE(waited.find("held by default/first/"), std::string::npos) << waited;
  EXPECT_EQ(get("bucketsync first", "{.status.error}"), "");
  EXPECT_EQ(get("bucketsync second", "{.status.error}"), "");
  EXPECT_EQ(count_files("dst"), 8u);
  // Finished: the finalizer is gone, the Jobs are deleted and no lock Lease is left.
  auto finalizers = get("bucketsync second", "{.metadata.finalizers}");
  EXPECT_TRUE(finalizers.empty() || finalizers == "[]") << finalizers;
  EXPECT_TRUE(eventually([&] { return lock_leases().empty(); }, 10s)) << lock_leases();
  auto reasons = event_reasons("second");
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "WaitingForLock"), reasons.end());
}

// Issue 4: "Controller killed during Sync and restarted: it adopts the running Job (no second
// Job), finishes, releases the locks."
TEST_F(controller_e2e, restart_during_sync_adopts_the_job) {
  auto& first = start_controller();
  apply(bucket_sync("slow", "out", "200k"));
  ASSERT_TRUE(eventually([&] { return get("job slow", "{.status.active}") == "1"; }, 30s));
  std::string job_uid = get("job slow", "{.metadata.uid}");
  ASSERT_FALSE(job_uid.empty());
  // The lock is a Lease while the sync runs, visible to kubectl.
  EXPECT_NE(lock_leases().find("default/slow/"), std::string::npos) << lock_leases();
  first.kill();  // a crash: no cleanup

  start_controller();
  std::string seen_uid;
  ASSERT_TRUE(eventually(
      [&] {
        auto uid = get("job slow", "{.metadata.uid}");
        if (!uid.empty() && seen_uid.empty()) seen_uid = uid;
        if (!uid.empty() && uid != job_uid) seen_uid = uid;  // a second Job: fail below
        return finished("slow");
      },
      90s, 50ms));
  EXPECT_TRUE(seen_uid.empty() || seen_uid == job_uid) << "a second Job was created";
  EXPECT_EQ(get("bucketsync slow", "{.status.error}"), "");
  auto reasons = event_reasons("slow");
  EXPECT_EQ(std::count(reasons.begin(), reasons.end(), "JobCreated"), 1);
  EXPECT_EQ(count_files("out"), 8u);
  EXPECT_TRUE(eventually([&] { return lock_leases().empty(); }, 10s)) << lock_leases();
}

// Issue 4: "A lock left by a holder that is gone is reclaimed after the TTL." A Lease for a
// BucketSync that no longer exists, fresh at start, blocks the path until the TTL passes.
TEST_F(controller_e2e, lock_of_a_gone_holder_is_reclaimed_after_the_ttl) {
  actors::lease_record r;
  r.lease_namespace = "tidesync-system";
  r.holder = "default/ghost/00000000-0000-0000-0000-000000000001";
  r.path = "destination:" + dir.substr(1) + "/ghosted";
  r.set = {r.path};
  r.acquire_time = std::chrono::system_clock::now();
  r.renew_time = r.acquire_time;
  // Long enough that a slow start (a loaded CI machine) still finds the Lease fresh.
  r.duration = std::chrono::seconds(10);
  auto lease = actors::build_lease(r);
  auto created = kubectl({"create"}, json::dump(lease));
  ASSERT_EQ(created.status, 0) << created.output;

  start_controller({"--lock-ttl", "10s"});
  apply(bucket_sync("after-ghost", "ghosted"));
  ASSERT_TRUE(eventually([&] { return finished("after-ghost"); }, 90s))
      << get("bucketsync after-ghost", "{.status}");
  // It waited for the ghost, then got the lock once the ghost's Lease went stale.
  auto waited = get("events --field-selector involvedObject.name=after-ghost,reason=WaitingForLock",
                    "{.items[*].message}");
  EXPECT_NE(waited.find("held by default/ghost/"), std::string::npos) << waited;
  EXPECT_EQ(
      get("bucketsync after-ghost", "{.status.conditions[?(@.type==\"WaitingForLock\")].reason}"),
      "LockAcquired");
  EXPECT_EQ(get("bucketsync after-ghost", "{.status.error}"), "");
  EXPECT_EQ(count_files("ghosted"), 8u);
  EXPECT_EQ(lock_leases().find("ghost"), std::string::npos) << lock_leases();
}

// Issue 4: bad specs → Ready=False with a reason and an actionable message, an Event, no
// crash, other objects unaffected.
TEST_F(controller_e2e, bad_specs_are_reported_and_others_still_sync) {
  auto& ctl = start_controller();
  // Missing source (the CRD requires it, so the server refuses it; a spec that passes the
  // schema but not our validation gets through: overlapping paths).
  auto refused = kubectl({"apply"},
                         "apiVersion: tidesync.io/v1alpha1\nkind: BucketSync\n"
                         "metadata: {name: no-source, namespace: default}\n"
                         "spec: {destination: \"x:/y\"}\n");
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.output.find("source"), std::string::npos) << refused.output;
  apply(
      "apiVersion: tidesync.io/v1alpha1\nkind: BucketSync\n"
      "metadata: {name: overlap, namespace: default}\n"
      "spec: {source: \"" +
      dir + "/a\", destination: \"" + dir + "/a/b\"}\n");
  apply(
      "apiVersion: tidesync.io/v1alpha1\nkind: BucketSyncPolicy\n"
      "metadata: {name: bad-cron, namespace: default}\n"
      "spec: {source: \"s:/a\", destination: \"d:/b\", schedule: \"61 * * * *\"}\n");
  apply(bucket_sync("good", "good-out"));

  ASSERT_TRUE(eventually([&] { return finished("overlap") && finished("good"); }, 60s));
  EXPECT_EQ(get("bucketsync overlap", "{.status.conditions[?(@.type==\"Ready\")].reason}"),
            "InvalidSpec");
  auto message = get("bucketsync overlap", "{.status.error}");
  EXPECT_NE(message.find("overlap"), std::string::npos) << message;
  EXPECT_EQ(get("job overlap", "{.metadata.name}"), "") << "an invalid spec created a Job";
  auto reasons = event_reasons("overlap");
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "InvalidSpec"), reasons.end());

  ASSERT_TRUE(eventually(
      [&] {
        return get("bucketsyncpolicy bad-cron",
                   "{.status.conditions[?(@.type==\"Ready\")].reason}") == "InvalidSpec";
      },
      30s));
  auto policy_error = get("bucketsyncpolicy bad-cron", "{.status.error}");
  EXPECT_NE(policy_error.find("minute"), std::string::npos) << policy_error;

  EXPECT_EQ(get("bucketsync good", "{.status.error}"), "");
  EXPECT_EQ(count_files("good-out"), 8u);
  EXPECT_TRUE(ctl.running()) << "the controller exited";
}

// Issue 4: manual trigger (runs at once, annotation removed when that sync completes) and
// syncHistoryLimit pruning, through a BucketSyncPolicy whose schedule is far away.
TEST_F(controller_e2e, policy_manual_trigger_and_history_limit) {
  start_controller();
  std::string policy =
      "apiVersion: tidesync.io/v1alpha1\nkind: BucketSyncPolicy\nmetadata:\n  name: nightly\n"
      "  namespace: default\n  annotations: {tidesync.io/sync-now: \"first\"}\nspec:\n"
      "  source: \"source:" +
      dir + "/src\"\n  destination: \"destination:" + dir +
      "/policy-out\"\n  schedule: \"0 3 1 1 *\"\n  syncHistoryLimit: 1\n"
      "  jobLabels: {team: data}\n  sourceEnv: [{name: TYPE, value: local}]\n"
      "  destinationEnv: [{name: TYPE, value: local}]\n";
  apply(policy);
  auto children = [&] {
    return get("bucketsyncs -l tidesync.io/policy=nightly",
               "{range .items[*]}{.metadata.name}={.status.phase}{\"\\n\"}{end}");
  };
  ASSERT_TRUE(eventually(
      [&] {
        return get("bucketsyncpolicy nightly", "{.metadata.annotations.tidesync\\.io/sync-now}") ==
                   "" &&
               children().find("=Finished") != std::string::npos;
      },
      60s))
      << children() << get("bucketsyncpolicy nightly", "{.status}");
  EXPECT_EQ(count_files("policy-out"), 8u);
  std::string first_child = children().substr(0, children().find('='));
  EXPECT_EQ(get("bucketsync " + first_child, "{.spec.jobLabels.team}"), "data");
  EXPECT_FALSE(get("bucketsyncpolicy nightly", "{.status.nextSyncTime}").empty());

  auto annotate =
      kubectl({"annotate", "bucketsyncpolicy", "nightly", "tidesync.io/sync-now=again"});
  ASSERT_EQ(annotate.status, 0) << annotate.output;
  // A second run; with syncHistoryLimit 1 the first is pruned once the second finished.
  ASSERT_TRUE(eventually(
      [&] {
        auto list = children();
        return list.find(first_child + "=") == std::string::npos &&
               list.find("=Finished") != std::string::npos;
      },
      60s))
      << children();
  EXPECT_EQ(get("bucketsyncpolicy nightly", "{.metadata.annotations.tidesync\\.io/sync-now}"), "");
}

// Issue 4: leader failover between two controllers; /metrics of the leader.
TEST_F(controller_e2e, leader_failover_between_two_controllers) {
  int port_a = free_port();
  std::vector<std::string> common{"--leader-elect",
                                  "--leader-elect-lease-duration",
                                  "3s",
                                  "--leader-elect-renew-deadline",
                                  "2s",
                                  "--leader-elect-retry-period",
                                  "1s"};
  auto flags = [&](const std::string& id, const std::string& metrics) {
    auto f = common;
    f.push_back("--leader-elect-id");
    f.push_back(id);
    f.push_back("--metrics-addr");
    f.push_back(metrics);
    return f;
  };
  auto a_flags = flags("replica-a", "127.0.0.1:" + std::to_string(port_a));
  a_flags.push_back("--health-addr");  // the same address: one server for all three paths
  a_flags.push_back("127.0.0.1:" + std::to_string(port_a));
  auto& a = start_controller(a_flags);
  ASSERT_TRUE(eventually(
      [&] {
        return get("lease -n tidesync-system tidesync-controller", "{.spec.holderIdentity}") ==
               "replica-a";
      },
      20s));
  auto& b = start_controller(flags("replica-b", "0"));
  apply(bucket_sync("before", "before-out"));
  ASSERT_TRUE(eventually([&] { return finished("before"); }, 60s));

  httplib::Client metrics("127.0.0.1", port_a);
  auto m = metrics.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("controller_runtime_reconcile_total{controller=\"bucketsync\",result="
                         "\"success\"}"),
            std::string::npos);
  EXPECT_NE(m->body.find("tidesync_syncs_total"), std::string::npos);
  EXPECT_NE(m->body.find("tidesync_leader 1"), std::string::npos);
  auto ready = metrics.Get("/readyz?verbose");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;
  EXPECT_NE(ready->body.find("[+]informers ok"), std::string::npos) << ready->body;
  auto live = metrics.Get("/healthz");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);

  a.kill();  // no release: b must wait for the Lease to expire, then lead
  apply(bucket_sync("after", "after-out"));
  ASSERT_TRUE(eventually([&] { return finished("after"); }, 60s));
  EXPECT_EQ(get("lease -n tidesync-system tidesync-controller", "{.spec.holderIdentity}"),
            "replica-b");
  EXPECT_EQ(get("bucketsync after", "{.status.error}"), "");
  EXPECT_TRUE(b.running());
}

// Watch reconnects in /metrics: the API server closing every watch counts `closed` for each
// watched resource; dropping the event history first makes the re-watch answer 410, which
// counts `expired` and a relist. The debug endpoints are the embedded API server's
// (POST /debug/tidesync/close-watches and /compact, administrator only).
TEST_F(controller_e2e, watch_reconnects_are_counted_by_reason) {
  const int port = free_port();
  const std::string addr = "127.0.0.1:" + std::to_string(port);
  start_controller({"--metrics-addr", addr, "--health-addr", addr});
  httplib::Client http("127.0.0.1", port);
  std::string last_scrape;
  // The value of one series in /metrics; -1 while it is absent (or /metrics does not answer).
  auto sample = [&](const std::string& series) {
    auto m = http.Get("/metrics");
    if (!m || m->status != 200) return -1.0;
    last_scrape = m->body;
    auto at = m->body.find("\n" + series + " ");
    if (at == std::string::npos) return -1.0;
    return std::strtod(m->body.c_str() + at + series.size() + 2, nullptr);
  };
  auto debug = [&](const std::string& what) {
    auto r = kubectl({"create", "--raw", "/debug/tidesync/" + what}, "{}");
    EXPECT_EQ(r.status, 0) << what << ": " << r.output;
  };
  auto reconnects = [](const std::string& resource, const std::string& reason) {
    return "tidesync_watch_reconnects_total{reason=\"" + reason + "\",resource=\"" + resource +
           "\"}";
  };
  const std::string relists = R"(tidesync_watch_relists_total{resource="bucketsyncs"})";

  // Every informer has listed, so its watch is (about to be) open; nothing reconnected yet.
  ASSERT_TRUE(eventually(
      [&] {
        auto r = http.Get("/readyz");
        return r && r->status == 200;
      },
      30s));
  for (const char* reason : {"closed", "error", "expired"})
    EXPECT_EQ(sample(reconnects("bucketsyncs", reason)), 0) << reason << "\n" << last_scrape;
  EXPECT_EQ(sample(relists), 0);

  // The server ends every watch stream. A watch whose request had not reached the server yet
  // is not among them: close again until the counter moves.
  ASSERT_TRUE(eventually(
      [&] {
        debug("close-watches");
        return sample(reconnects("bucketsyncs", "closed")) >= 1 &&
               sample(reconnects("pods", "closed")) >= 1;
      },
      30s, 500ms))
      << last_scrape;
  EXPECT_EQ(sample(reconnects("bucketsyncs", "expired")), 0) << "a closed watch is no 410";
  EXPECT_EQ(sample(relists), 0) << "a closed watch resumes without relisting";

  // A write the BucketSync watch does not see (it advances the server's resourceVersion past
  // the informer's), the history dropped, the watches closed: the informer re-watches from a
  // version the server no longer has, gets 410 and relists. A bookmark arriving in between
  // (it brings the informer up to date) or a watch between two attempts (a watch closed
  // within a second of its start is re-watched after a backoff) spoils the round: again.
  int round = 0;
  ASSERT_TRUE(eventually(
      [&] {
        auto ns = kubectl({"create", "namespace", "reconnects-" + std::to_string(++round)});
        EXPECT_EQ(ns.status, 0) << ns.output;
        debug("compact");
        debug("close-watches");
        return sample(reconnects("bucketsyncs", "expired")) >= 1 && sample(relists) >= 1;
      },
      30s, 500ms))
      << last_scrape;
  EXPECT_TRUE(eventually(
      [&] {
        auto r = http.Get("/readyz");
        return r && r->status == 200;
      },
      30s));
  EXPECT_EQ(sample(reconnects("bucketsyncs", "error")), 0) << last_scrape;
}

// Bad flags: exit code 2 and a message that says what to write.
TEST(controller_cli, bad_flags_say_what_to_write) {
  auto ttl = run({TIDESYNC_BINARY, "controller", "--lock-ttl", "ten"});
  EXPECT_EQ(ttl.status, 2);
  EXPECT_NE(ttl.output.find("--lock-ttl: \"ten\" is not a positive duration"), std::string::npos)
      << ttl.output;
  auto ns = run({TIDESYNC_BINARY, "controller", "--namespace-concurrency", "team-a"});
  EXPECT_EQ(ns.status, 2);
  EXPECT_NE(ns.output.find("is not NS=N"), std::string::npos) << ns.output;
  auto le = run({TIDESYNC_BINARY, "controller", "--leader-elect", "--leader-elect-renew-deadline",
                 "20s", "--kubeconfig", "/nonexistent"});
  EXPECT_EQ(le.status, 2);  // flags are checked before anything connects
  EXPECT_NE(le.output.find("renew"), std::string::npos) << le.output;
  auto unknown = run({TIDESYNC_BINARY, "controller", "--bogus"});
  EXPECT_EQ(unknown.status, 2);
  EXPECT_NE(unknown.output.find("unknown flag --bogus"), std::string::npos) << unknown.output;
  auto help = run({TIDESYNC_BINARY, "controller", "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.output.find("--leader-elect"), std::string::npos);
}
