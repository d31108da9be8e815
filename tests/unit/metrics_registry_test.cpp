// The metrics registry: exact names, labels, values and histogram buckets in the text format.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/metrics/metrics.hpp"

namespace tidesync::metrics {
namespace {

// "name{labels} value" lines → value by "name{labels}".
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto sp = line.rfind(' ');
    EXPECT_NE(sp, std::string::npos) << line;
    if (sp == std::string::npos) continue;
    out[line.substr(0, sp)] = std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return out;
}

// The value of one series; fails the test when it is missing.
double value(const std::map<std::string, double>& s, const std::string& key) {
  auto it = s.find(key);
  EXPECT_NE(it, s.end()) << "missing series " << key;
  return it == s.end() ? -1 : it->second;
}

size_t count_lines_starting(const std::string& text, const std::string& prefix) {
  size_t n = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) ++n;
  return n;
}

TEST(MetricsRegistry, BuildInfoAndLeader) {
  registry r;
  auto s = samples(r.text());
  EXPECT_EQ(value(s, std::string("tidesync_build_info{version=\"") + TIDESYNC_VERSION + "\"}"), 1);
  EXPECT_EQ(value(s, "tidesync_leader"), 0);
  r.leader(true);
  EXPECT_EQ(value(samples(r.text()), "tidesync_leader"), 1);
  r.leader(false);
  EXPECT_EQ(value(samples(r.text()), "tidesync_leader"), 0);
  EXPECT_NE(r.text().find("# TYPE tidesync_leader gauge\n"), std::string::npos);
}

TEST(MetricsRegistry, InitControllerCreatesZeroSeries) {
  registry r;
  EXPECT_EQ(r.text().find("controller_runtime_reconcile_total{"), std::string::npos);
  r.init_controller("bucketsync");
  auto s = samples(r.text());
  for (const char* result : {"success", "error", "requeue", "requeue_after"})
    EXPECT_EQ(value(s, std::string("controller_runtime_reconcile_total{controller=\"bucketsync\","
                                   "result=\"") +
                           result + "\"}"),
              0);
  EXPECT_EQ(value(s, "controller_runtime_reconcile_errors_total{controller=\"bucketsync\"}"), 0);
}

TEST(MetricsRegistry, ReconcileCountsResultsAndErrors) {
  registry r;
  r.reconcile("bucketsync", "success", 0.2);
  r.reconcile("bucketsync", "success", 0.2);
  r.reconcile("bucketsync", "error", 1.5);
  r.reconcile("bucketsync", "requeue_after", 100);
  r.reconcile("policy", "requeue", 0.001);
  const std::string text = r.text();
  auto s = samples(text);
  const std::string bs = "controller=\"bucketsync\"";
  EXPECT_EQ(value(s, "controller_runtime_reconcile_total{" + bs + ",result=\"success\"}"), 2);
  EXPECT_EQ(value(s, "controller_runtime_reconcile_total{" + bs + ",result=\"error\"}"), 1);
  EXPECT_EQ(value(s, "controller_runtime_reconcile_total{" + bs + ",result=\"requeue_after\"}"), 1);
  EXPECT_EQ(
      value(s, "controller_runtime_reconcile_total{controller=\"policy\",result=\"requeue\"}"), 1);
  EXPECT_EQ(value(s, "controller_runtime_reconcile_errors_total{" + bs + "}"), 1);
  EXPECT_EQ(value(s, "controller_runtime_reconcile_errors_total{controller=\"policy\"}"), 0);
  EXPECT_NE(text.find("# TYPE controller_runtime_reconcile_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE controller_runtime_reconcile_errors_total counter\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE controller_runtime_reconcile_time_seconds histogram\n"),
            std::string::npos);

  // Histogram: cumulative buckets, le inclusive, controller-runtime's 40 bounds plus +Inf.
  const std::string h = "controller_runtime_reconcile_time_seconds";
  EXPECT_EQ(value(s, h + "_count{" + bs + "}"), 4);
  EXPECT_DOUBLE_EQ(value(s, h + "_sum{" + bs + "}"), 101.9);
  EXPECT_EQ(value(s, h + "_bucket{" + bs + ",le=\"0.15\"}"), 0);
  EXPECT_EQ(value(s, h + "_bucket{" + bs + ",le=\"0.2\"}"), 2);
  EXPECT_EQ(value(s, h + "_bucket{" + bs + ",le=\"1.25\"}"), 2);
  EXPECT_EQ(value(s, h + "_bucket{" + bs + ",le=\"1.5\"}"), 3);
  EXPECT_EQ(value(s, h + "_bucket{" + bs + ",le=\"60\"}"), 3);
  EXPECT_EQ(value(s, h + "_bucket{" + bs + ",le=\"+Inf\"}"), 4);
  EXPECT_EQ(count_lines_starting(text, h + "_bucket{" + bs + ","), 41u);
  EXPECT_EQ(value(s, h + "_bucket{controller=\"policy\",le=\"0.005\"}"), 1);
}

TEST(MetricsRegistry, ControllerWorkerGauges) {
  registry r;
  r.active_workers("bucketsync", 3);
  r.max_concurrent_reconciles("bucketsync", 8);
  r.active_workers("bucketsync", 2);
  auto s = samples(r.text());
  EXPECT_EQ(value(s, "controller_runtime_active_workers{controller=\"bucketsync\"}"), 2);
  EXPECT_EQ(value(s, "controller_runtime_max_concurrent_reconciles{controller=\"bucketsync\"}"), 8);
}

TEST(MetricsRegistry, WorkqueueMetrics) {
  registry r;
  r.queue_depth("bucketsync", 7);
  r.queue_adds("bucketsync");
  r.queue_adds("bucketsync", 3);
  r.queue_retries("bucketsync");
  r.queue_retries("bucketsync", 2);
  r.queue_wait("bucketsync", 0.5);
  r.queue_wait("bucketsync", 0.000002);
  r.work_duration("bucketsync", 20);
  r.queue_longest_running("bucketsync", 4.5);
  r.queue_unfinished_work("bucketsync", 9);
  const std::string text = r.text();
  auto s = samples(text);
  const std::string n = "name=\"bucketsync\"";
  EXPECT_EQ(value(s, "workqueue_depth{" + n + "}"), 7);
  EXPECT_EQ(value(s, "workqueue_adds_total{" + n + "}"), 4);
  EXPECT_EQ(value(s, "workqueue_retries_total{" + n + "}"), 3);
  EXPECT_EQ(value(s, "workqueue_longest_running_processor_seconds{" + n + "}"), 4.5);
  EXPECT_EQ(value(s, "workqueue_unfinished_work_seconds{" + n + "}"), 9);
  EXPECT_NE(text.find("# TYPE workqueue_depth gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE workqueue_adds_total counter\n"), std::string::npos);

  // client-go's buckets: 1e-08 .. 10, decades, printed cleanly.
  const std::string q = "workqueue_queue_duration_seconds_bucket{" + n;
  EXPECT_EQ(value(s, q + ",le=\"1e-08\"}"), 0);
  EXPECT_EQ(value(s, q + ",le=\"1e-06\"}"), 0);
  EXPECT_EQ(value(s, q + ",le=\"1e-05\"}"), 1);
  EXPECT_EQ(value(s, q + ",le=\"0.1\"}"), 1);
  EXPECT_EQ(value(s, q + ",le=\"1\"}"), 2);
  EXPECT_EQ(value(s, q + ",le=\"10\"}"), 2);
  EXPECT_EQ(value(s, q + ",le=\"+Inf\"}"), 2);
  EXPECT_EQ(count_lines_starting(text, q + ","), 11u);
  const std::string w = "workqueue_work_duration_seconds";
  EXPECT_EQ(value(s, w + "_bucket{" + n + ",le=\"10\"}"), 0);
  EXPECT_EQ(value(s, w + "_bucket{" + n + ",le=\"+Inf\"}"), 1);
  EXPECT_EQ(value(s, w + "_sum{" + n + "}"), 20);
}

TEST(MetricsRegistry, SyncAndLockMetrics) {
  registry r;
  r.sync_finished("BucketSync", "succeeded", 42);
  r.sync_finished("BucketSync", "succeeded", 4000);
  r.sync_finished("BucketSync", "failed", 3);
  r.syncs_running("BucketSync", 5);
  r.locks_held(4);
  r.lock_waiters(2);
  r.lock_waited(0.05);
  r.lock_waited(45);
  const std::string text = r.text();
  auto s = samples(text);
  const std::string k = "kind=\"BucketSync\"";
  EXPECT_EQ(value(s, "tidesync_syncs_total{" + k + ",result=\"succeeded\"}"), 2);
  EXPECT_EQ(value(s, "tidesync_syncs_total{" + k + ",result=\"failed\"}"), 1);
  EXPECT_EQ(value(s, "tidesync_syncs_running{" + k + "}"), 5);
  EXPECT_EQ(value(s, "tidesync_sync_duration_seconds_count{" + k + "}"), 3);
  EXPECT_EQ(value(s, "tidesync_sync_duration_seconds_sum{" + k + "}"), 4045);
  EXPECT_EQ(value(s, "tidesync_sync_duration_seconds_bucket{" + k + ",le=\"5\"}"), 1);
  EXPECT_EQ(value(s, "tidesync_sync_duration_seconds_bucket{" + k + ",le=\"60\"}"), 2);
  EXPECT_EQ(value(s, "tidesync_sync_duration_seconds_bucket{" + k + ",le=\"3600\"}"), 2);
  EXPECT_EQ(value(s, "tidesync_sync_duration_seconds_bucket{" + k + ",le=\"7200\"}"), 3);
  EXPECT_EQ(value(s, "tidesync_locks_held"), 4);
  EXPECT_EQ(value(s, "tidesync_lock_waiters"), 2);
  EXPECT_EQ(value(s, "tidesync_lock_wait_seconds_count"), 2);
  EXPECT_EQ(value(s, "tidesync_lock_wait_seconds_bucket{le=\"0.01\"}"), 0);
  EXPECT_EQ(value(s, "tidesync_lock_wait_seconds_bucket{le=\"0.1\"}"), 1);
  EXPECT_EQ(value(s, "tidesync_lock_wait_seconds_bucket{le=\"30\"}"), 1);
  EXPECT_EQ(value(s, "tidesync_lock_wait_seconds_bucket{le=\"60\"}"), 2);
  EXPECT_NE(text.find("# TYPE tidesync_lock_wait_seconds histogram\n"), std::string::npos);
}

TEST(MetricsRegistry, PodFilesystemSyncMetrics) {
  registry r;
  r.pfs_report("web", "press", "sync", "Succeeded", 2048, 1'800'000'100);
  r.pfs_report("web", "press", "sync", "Succeeded", 0, 1'800'000'000);  // older: kept the max
  r.pfs_report("web", "press", "final", "Failed", 10, 1'800'000'200);
  r.pfs_pods("web", "press", 2, 1);
  auto s = samples(r.text());
  const std::string who = "namespace=\"web\",podfilesystemsync=\"press\"";
  EXPECT_EQ(value(s, "tidesync_pfs_reports_total{kind=\"sync\"," + who + ",result=\"Succeeded\"}"),
            2);
  EXPECT_EQ(value(s, "tidesync_pfs_reports_total{kind=\"final\"," + who + ",result=\"Failed\"}"),
            1);
  EXPECT_EQ(value(s, "tidesync_pfs_bytes_total{" + who + "}"), 2058);
  EXPECT_EQ(value(s, "tidesync_pfs_last_success_timestamp_seconds{" + who + "}"), 1'800'000'100);
  EXPECT_EQ(value(s, "tidesync_pfs_pods{" + who + ",state=\"injected\"}"), 2);
  EXPECT_EQ(value(s, "tidesync_pfs_pods{" + who + ",state=\"not_injected\"}"), 1);
}

TEST(MetricsRegistry, WatchReconnectsAndRelists) {
  registry r;
  EXPECT_EQ(r.text().find("tidesync_watch_reconnects_total{"), std::string::npos);
  r.init_watch("pods");
  auto s = samples(r.text());
  for (const char* reason : {"closed", "error", "expired"})
    EXPECT_EQ(value(s, std::string("tidesync_watch_reconnects_total{reason=\"") + reason +
                           "\",resource=\"pods\"}"),
              0);
  EXPECT_EQ(value(s, "tidesync_watch_relists_total{resource=\"pods\"}"), 0);
  r.watch_reconnect("pods", "closed");
  r.watch_reconnect("pods", "closed");
  r.watch_reconnect("pods", "expired");
  r.watch_relist("pods");
  r.init_watch("pods");  // again (a second informer of pods): keeps the counts
  s = samples(r.text());
  EXPECT_EQ(value(s, "tidesync_watch_reconnects_total{reason=\"closed\",resource=\"pods\"}"), 2);
  EXPECT_EQ(value(s, "tidesync_watch_reconnects_total{reason=\"error\",resource=\"pods\"}"), 0);
  EXPECT_EQ(value(s, "tidesync_watch_reconnects_total{reason=\"expired\",resource=\"pods\"}"), 1);
  EXPECT_EQ(value(s, "tidesync_watch_relists_total{resource=\"pods\"}"), 1);
  EXPECT_NE(r.text().find("# TYPE tidesync_watch_reconnects_total counter\n"), std::string::npos);
}

TEST(MetricsRegistry, LabelValuesAreEscaped) {
  registry r;
  r.syncs_running("a\"b\\c\nd", 1);
  EXPECT_NE(r.text().find("tidesync_syncs_running{kind=\"a\\\"b\\\\c\\nd\"} 1\n"),
            std::string::npos)
      << r.text();
}

TEST(MetricsRegistry, ProcessMetrics) {
  registry r;
  auto s = samples(r.text());
  EXPECT_GT(value(s, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(value(s, "process_open_fds"), 2);
  EXPECT_GE(value(s, "process_cpu_seconds_total"), 0);
  double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(value(s, "process_start_time_seconds"), now, 60);
}

// Many threads update while another scrapes: no lost updates, no crash.
TEST(MetricsRegistry, ConcurrentUpdatesAndScrapes) {
  registry r;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  std::atomic<bool> done{false};
  std::thread scraper([&] {
    while (!done.load())
      EXPECT_FALSE(r.text().empty());
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&r, t] {
      const std::string controller = "c" + std::to_string(t % 2);
      for (int i = 0; i < kPerThread; ++i) {
        r.reconcile(controller, i % 10 == 0 ? "error" : "success", 0.01);
        r.queue_adds("shared");
      }
    });
  }
  for (auto& w : workers)
    w.join();
  done = true;
  scraper.join();
  auto s = samples(r.text());
  EXPECT_EQ(value(s, "workqueue_adds_total{name=\"shared\"}"), kThreads * kPerThread);
  for (const char* c : {"c0", "c1"}) {
    const std::string l = std::string("controller=\"") + c + "\"";
    EXPECT_EQ(value(s, "controller_runtime_reconcile_time_seconds_count{" + l + "}"),
              2 * kPerThread);
    EXPECT_EQ(value(s, "controller_runtime_reconcile_errors_total{" + l + "}"),
              2 * kPerThread / 10);
    EXPECT_EQ(value(s, "controller_runtime_reconcile_total{" + l + ",result=\"success\"}"),
              2 * kPerThread * 9 / 10);
  }
}

}  // namespace
}  // namespace tidesync::metrics
