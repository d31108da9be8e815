// The metrics registry over prometheus-cpp core (see metrics.hpp).
#include "runtime/metrics/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#ifndef TIDESYNC_VERSION
#define TIDESYNC_VERSION "0.0.0"
#endif

namespace tidesync::metrics {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Labels;

// controller-runtime's reconcile_time_seconds buckets (since v0.15): fine below a second,
// where most reconciles land, up to a minute.
const Histogram::BucketBoundaries& reconcile_buckets() {
  static const Histogram::BucketBoundaries b = {
      0.005, 0.01, 0.025, 0.05, 0.1,  0.15, 0.2,  0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6,
      0.7,   0.8,  0.9,   1.0,  1.25, 1.5,  1.75, 2.0,  2.5, 3.0,  3.5, 4.0,  4.5, 5.0,
      6.0,   7.0,  8.0,   9.0,  10,   15,   20,   25,   30,  40,   50,  60};
  return b;
}

// client-go workqueue buckets: prometheus.ExponentialBuckets(10e-9, 10, 10), 10 ns .. 10 s
// (written out: computing them by multiplication prints le="9.999999999999999e-06").
const Histogram::BucketBoundaries& workqueue_buckets() {
  static const Histogram::BucketBoundaries b = {1e-8, 1e-7, 1e-6, 1e-5, 1e-4,
                                                1e-3, 1e-2, 1e-1, 1,    10};
  return b;
}

// A sync is an rclone Job: seconds for an empty bucket, hours for a large one.
const Histogram::BucketBoundaries& sync_buckets() {
  static const Histogram::BucketBoundaries b = {1,   5,    10,   30,   60,   120,   300,
                                                600, 1200, 1800, 3600, 7200, 14400, 28800};
  return b;
}

// Waiting for a bucket lock lasts as long as the sync holding it.
const Histogram::BucketBoundaries& lock_wait_buckets() {
  static const Histogram::BucketBoundaries b = {0.01, 0.1, 1,   5,    15,   30,  60,
                                                120,  300, 600, 1800, 3600, 7200};
  return b;
}

Labels one(const char* name, std::string_view value) {
  return Labels{{name, std::string(value)}};
}

// Process metrics with the Go client's names (process_*), read from /proc at scrape time so
// the usual "CPU / memory of the controller" panels work.
std::vector<prometheus::MetricFamily> process_families(double start_time) {
  std::vector<prometheus::MetricFamily> out;
  auto gauge = [&out](const char* name, const char* help, prometheus::MetricType type,
                      double value) {
    prometheus::MetricFamily f;
    f.name = name;
    f.help = help;
    f.type = type;
    prometheus::ClientMetric m;
    if (type == prometheus::MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    f.metric.push_back(std::move(m));
    out.push_back(std::move(f));
  };
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (ticks > 0 && std::getline(stat, line)) {
    // Fields after the command name (which may hold spaces, so start after the last ')').
    auto close = line.rfind(')');
    if (close != std::string::npos) {
      std::istringstream in(line.substr(close + 2));
      std::vector<std::string> f;
      std::string tok;
      while (in >> tok)
        f.push_back(tok);
      // f[0] is field 3 (state): utime = field 14, stime = 15, vsize = 23, rss = 24.
      // /proc is well formed; the guard only keeps a scrape from ever throwing.
      if (f.size() > 21) try {
          double cpu = (std::stod(f[11]) + std::stod(f[12])) / ticks;
          gauge("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                prometheus::MetricType::Counter, cpu);
          gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                prometheus::MetricType::Gauge, std::stod(f[20]));
          gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                prometheus::MetricType::Gauge, std::stod(f[21]) * page);
        } catch (const std::exception&) {
        }
    }
  }
  std::error_code ec;
  double fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec))
    ++fds;
  if (!ec)
    gauge("process_open_fds", "Number of open file descriptors.", prometheus::MetricType::Gauge,
          fds);
  gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
        prometheus::MetricType::Gauge, start_time);
  return out;
}

}  // namespace

struct registry::impl {
  std::shared_ptr<prometheus::Registry> reg = std::make_shared<prometheus::Registry>();
  double start_time =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

  Family<Counter>& reconcile_total = prometheus::BuildCounter()
                                         .Name("controller_runtime_reconcile_total")
                                         .Help("Total number of reconciliations per controller")
                                         .Register(*reg);
  Family<Counter>& reconcile_errors =
      prometheus::BuildCounter()
          .Name("controller_runtime_reconcile_errors_total")
          .Help("Total number of reconciliation errors per controller")
          .Register(*reg);
  Family<Histogram>& reconcile_time = prometheus::BuildHistogram()
                                          .Name("controller_runtime_reconcile_time_seconds")
                                          .Help("Length of time per reconciliation per controller")
                                          .Register(*reg);
  Family<Gauge>& active_workers = prometheus::BuildGauge()
                                      .Name("controller_runtime_active_workers")
                                      .Help("Number of currently used workers per controller")
                                      .Register(*reg);
  Family<Gauge>& max_concurrent =
      prometheus::BuildGauge()
          .Name("controller_runtime_max_concurrent_reconciles")
          .Help("Maximum number of concurrent reconciles per controller")
          .Register(*reg);

  Family<Gauge>& wq_depth = prometheus::BuildGauge()
                                .Name("workqueue_depth")
                                .Help("Current depth of workqueue")
                                .Register(*reg);
  Family<Counter>& wq_adds = prometheus::BuildCounter()
                                 .Name("workqueue_adds_total")
                                 .Help("Total number of adds handled by workqueue")
                                 .Register(*reg);
  Family<Histogram>& wq_latency =
      prometheus::BuildHistogram()
          .Name("workqueue_queue_duration_seconds")
          .Help("How long in seconds an item stays in workqueue before being requested")
          .Register(*reg);
  Family<Histogram>& wq_work =
      prometheus::BuildHistogram()
          .Name("workqueue_work_duration_seconds")
          .Help("How long in seconds processing an item from workqueue takes.")
          .Register(*reg);
  Family<Counter>& wq_retries = prometheus::BuildCounter()
                                    .Name("workqueue_retries_total")
                                    .Help("Total number of retries handled by workqueue")
                                    .Register(*reg);
  Family<Gauge>& wq_longest =
      prometheus::BuildGauge()
          .Name("workqueue_longest_running_processor_seconds")
          .Help("How many seconds has the longest running processor for workqueue been running.")
          .Register(*reg);
  Family<Gauge>& wq_unfinished =
      prometheus::BuildGauge()
          .Name("workqueue_unfinished_work_seconds")
          .Help(
              "How many seconds of work has been done that is in progress and hasn't been "
              "observed by work_duration. Large values indicate stuck threads. One can "
              "deduce the number of stuck threads by observing the rate at which this "
              "increases.")
          .Register(*reg);

  Family<Counter>& syncs_total = prometheus::BuildCounter()
                                     .Name("tidesync_syncs_total")
                                     .Help("Syncs finished, by kind and result (succeeded|failed)")
                                     .Register(*reg);
  Family<Histogram>& sync_duration =
      prometheus::BuildHistogram()
          .Name("tidesync_sync_duration_seconds")
          .Help("Duration of finished syncs, from start to finish, by kind")
          .Register(*reg);
  Family<Counter>& sync_bytes = prometheus::BuildCounter()
                                    .Name("tidesync_sync_bytes_total")
                                    .Help("Bytes written by finished syncs, by kind")
                                    .Register(*reg);
  Family<Gauge>& syncs_running = prometheus::BuildGauge()
                                     .Name("tidesync_syncs_running")
                                     .Help("Syncs running now, by kind")
                                     .Register(*reg);
  Gauge& locks_held = prometheus::BuildGauge()
                          .Name("tidesync_locks_held")
                          .Help("Bucket locks held now")
                          .Register(*reg)
                          .Add({});
  Gauge& lock_waiters = prometheus::BuildGauge()
                            .Name("tidesync_lock_waiters")
                            .Help("Syncs waiting for a bucket lock now")
                            .Register(*reg)
                            .Add({});
  Histogram& lock_wait = prometheus::BuildHistogram()
                             .Name("tidesync_lock_wait_seconds")
                             .Help("Time a sync waited for a bucket lock before it got it")
                             .Register(*reg)
                             .Add({}, lock_wait_buckets());
  Gauge& datasync_queue_length = prometheus::BuildGauge()
                                     .Name("tidesync_datasync_queue_length")
                                     .Help("DataSyncs queued and not yet admitted")
                                     .Register(*reg)
                                     .Add({});
  Gauge& datasync_syncing = prometheus::BuildGauge()
                                .Name("tidesync_datasync_syncing")
                                .Help("DataSyncs syncing or admitted (holding a slot)")
                                .Register(*reg)
                                .Add({});
  Histogram& datasync_admission =
      prometheus::BuildHistogram()
          .Name("tidesync_datasync_admission_seconds")
          .Help("Time a DataSync waited in the queue before it was admitted")
          .Register(*reg)
          .Add({}, lock_wait_buckets());
  Family<Counter>& datasync_retries =
      prometheus::BuildCounter()
          .Name("tidesync_datasync_retries_total")
          .Help("DataSync retries after a failed populate, by reason")
          .Register(*reg);
  Family<Counter>& pfs_reports = prometheus::BuildCounter()
                                     .Name("tidesync_pfs_reports_total")
                                     .Help("Syncs reported by PodFilesystemSync agents")
                                     .Register(*reg);
  Family<Counter>& pfs_bytes = prometheus::BuildCounter()
                                   .Name("tidesync_pfs_bytes_total")
                                   .Help("Bytes moved by PodFilesystemSync agents, as reported")
                                   .Register(*reg);
  Family<Gauge>& pfs_last_success =
      prometheus::BuildGauge()
          .Name("tidesync_pfs_last_success_timestamp_seconds")
          .Help("When the last successful sync of a PodFilesystemSync ended (Unix time)")
          .Register(*reg);
  Family<Gauge>& pfs_pods = prometheus::BuildGauge()
                                .Name("tidesync_pfs_pods")
                                .Help(
                                    "Pods a PodFilesystemSync selects, by whether they have "
                                    "the agents")
                                .Register(*reg);
  Family<Counter>& watch_reconnects =
      prometheus::BuildCounter()
          .Name("tidesync_watch_reconnects_total")
          .Help(
              "Kubernetes watches re-established, by resource and reason "
              "(closed|error|expired)")
          .Register(*reg);
  Family<Counter>& watch_relists =
      prometheus::BuildCounter()
          .Name("tidesync_watch_relists_total")
          .Help("Full listings started over because the server answered 410 Gone, by resource")
          .Register(*reg);
  Gauge& leader = prometheus::BuildGauge()
                      .Name("tidesync_leader")
                      .Help("1 while this process is the leader, 0 otherwise")
                      .Register(*reg)
                      .Add({});

  impl() {
    prometheus::BuildGauge()
        .Name("tidesync_build_info")
        .Help("The version of tidesync; the value is always 1")
        .Register(*reg)
        .Add({{"version", TIDESYNC_VERSION}})
        .Set(1);
  }
};

registry::registry() : impl_(std::make_unique<impl>()) {}
registry::~registry() = default;

void registry::init_controller(std::string_view controller) {
  for (const char* result : {"success", "error", "requeue", "requeue_after"})
    impl_->reconcile_total.Add({{"controller", std::string(controller)}, {"result", result}});
  impl_->reconcile_errors.Add(one("controller", controller));
}

void registry::reconcile(std::string_view controller, std::string_view result, double seconds) {
  auto& i = *impl_;
  i.reconcile_total.Add({{"controller", std::string(controller)}, {"result", std::string(result)}})
      .Increment();
  auto& errors = i.reconcile_errors.Add(one("controller", controller));
  if (result == "error") errors.Increment();
  i.reconcile_time.Add(one("controller", controller), reconcile_buckets()).Observe(seconds);
}

void registry::active_workers(std::string_view controller, double n) {
  impl_->active_workers.Add(one("controller", controller)).Set(n);
}

void registry::max_concurrent_reconciles(std::string_view controller, double n) {
  impl_->max_concurrent.Add(one("controller", controller)).Set(n);
}

void registry::queue_depth(std::string_view name, double depth) {
  impl_->wq_depth.Add(one("name", name)).Set(depth);
}

void registry::queue_adds(std::string_view name, double n) {
  impl_->wq_adds.Add(one("name", name)).Increment(n);
}

void registry::queue_wait(std::string_view name, double seconds) {
  impl_->wq_latency.Add(one("name", name), workqueue_buckets()).Observe(seconds);
}

void registry::work_duration(std::string_view name, double seconds) {
  impl_->wq_work.Add(one("name", name), workqueue_buckets()).Observe(seconds);
}

void registry::queue_retries(std::string_view name, double n) {
  impl_->wq_retries.Add(one("name", name)).Increment(n);
}

void registry::queue_longest_running(std::string_view name, double seconds) {
  impl_->wq_longest.Add(one("name", name)).Set(seconds);
}

void registry::queue_unfinished_work(std::string_view name, double seconds) {
  impl_->wq_unfinished.Add(one("name", name)).Set(seconds);
}

void registry::sync_finished(std::string_view kind, std::string_view result, double seconds) {
  impl_->syncs_total.Add({{"kind", std::string(kind)}, {"result", std::string(result)}})
      .Increment();
  impl_->sync_duration.Add(one("kind", kind), sync_buckets()).Observe(seconds);
}

void registry::sync_bytes(std::string_view kind, double bytes) {
  impl_->sync_bytes.Add(one("kind", kind)).Increment(bytes);
}

void registry::syncs_running(std::string_view kind, double n) {
  impl_->syncs_running.Add(one("kind", kind)).Set(n);
}

void registry::locks_held(double n) {
  impl_->locks_held.Set(n);
}

void registry::lock_waiters(double n) {
  impl_->lock_waiters.Set(n);
}

void registry::lock_waited(double seconds) {
  impl_->lock_wait.Observe(seconds);
}

void registry::datasync_queue(double queued, double syncing) {
  impl_->datasync_queue_length.Set(queued);
  impl_->datasync_syncing.Set(syncing);
}

void registry::datasync_admitted(double waited_seconds) {
  impl_->datasync_admission.Observe(waited_seconds);
}

void registry::datasync_retry(std::string_view reason) {
  impl_->datasync_retries.Add(one("reason", reason)).Increment();
}

void registry::pfs_report(std::string_view ns, std::string_view name, std::string_view kind,
                          std::string_view result, double bytes, double end_unix_seconds) {
  Labels who{{"namespace", std::string(ns)}, {"podfilesystemsync", std::string(name)}};
  Labels what = who;
  what["kind"] = std::string(kind);
  what["result"] = std::string(result);
  impl_->pfs_reports.Add(what).Increment();
  if (bytes > 0) impl_->pfs_bytes.Add(who).Increment(bytes);
  if (result == "Succeeded") {
    auto& g = impl_->pfs_last_success.Add(who);
    if (end_unix_seconds > g.Value()) g.Set(end_unix_seconds);
  }
}

void registry::pfs_pods(std::string_view ns, std::string_view name, double injected,
                        double not_injected) {
  Labels who{{"namespace", std::string(ns)}, {"podfilesystemsync", std::string(name)}};
  Labels a = who, b = who;
  a["state"] = "injected";
  b["state"] = "not_injected";
  impl_->pfs_pods.Add(a).Set(injected);
  impl_->pfs_pods.Add(b).Set(not_injected);
}

void registry::init_watch(std::string_view resource) {
  // The reasons of watch::reconnect_reason (runtime/metrics stays independent of runtime/watch).
  for (const char* reason : {"closed", "error", "expired"})
    impl_->watch_reconnects.Add({{"resource", std::string(resource)}, {"reason", reason}});
  impl_->watch_relists.Add(one("resource", resource));
}

void registry::watch_reconnect(std::string_view resource, std::string_view reason) {
  impl_->watch_reconnects
      .Add({{"resource", std::string(resource)}, {"reason", std::string(reason)}})
      .Increment();
}

void registry::watch_relist(std::string_view resource) {
  impl_->watch_relists.Add(one("resource", resource)).Increment();
}

void registry::leader(bool is_leader) {
  impl_->leader.Set(is_leader ? 1 : 0);
}

std::string registry::text() const {
  auto families = impl_->reg->Collect();
  auto process = process_families(impl_->start_time);
  families.insert(families.end(), std::make_move_iterator(process.begin()),
                  std::make_move_iterator(process.end()));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace tidesync::metrics
