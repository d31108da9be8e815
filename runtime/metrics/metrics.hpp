// The process's Prometheus metrics: controller-runtime and client-go workqueue names (so the
// dashboards and alerts people already have for Go controllers work on tidesync), plus
// tidesync_* metrics for syncs, bucket locks, watches and leadership.
//
// The header stays free of prometheus-cpp (pimpl): every actor includes it and the build
// machine is small.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace tidesync::metrics {

// Every metric of the process. Thread-safe: called from CAF actor threads and the HTTP loop.
// Families are created once in the constructor; a call looks its label set up (and creates the
// series on first use).
class registry {
 public:
  registry();
  ~registry();
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  // Creates the series of a controller with value 0 (reconcile_total for every result,
  // reconcile_errors_total), as controller-runtime does when a controller starts, so rate()
  // and absent() work before the first reconcile.
  void init_controller(std::string_view controller);

  // controller-runtime names (sigs.k8s.io/controller-runtime/pkg/internal/controller/metrics):
  // controller_runtime_reconcile_total{controller,result}, result ∈ success|error|requeue|
  // requeue_after; controller_runtime_reconcile_errors_total{controller} (incremented when
  // result == "error"); controller_runtime_reconcile_time_seconds{controller} histogram.
  void reconcile(std::string_view controller, std::string_view result, double seconds);
  // controller_runtime_active_workers{controller},
  // controller_runtime_max_concurrent_reconciles{controller} (gauges).
  void active_workers(std::string_view controller, double n);
  void max_concurrent_reconciles(std::string_view controller, double n);

  // client-go workqueue names with label {name}.
  void queue_depth(std::string_view name, double depth);              // workqueue_depth
  void queue_adds(std::string_view name, double n = 1);               // workqueue_adds_total
  void queue_wait(std::string_view name, double seconds);             // ..._queue_duration_seconds
  void work_duration(std::string_view name, double seconds);          // ..._work_duration_seconds
  void queue_retries(std::string_view name, double n = 1);            // workqueue_retries_total
  void queue_longest_running(std::string_view name, double seconds);  // ..._longest_running_
                                                                      // processor_seconds
  void queue_unfinished_work(std::string_view name, double seconds);  // ..._unfinished_work_
                                                                      // seconds

  // tidesync_syncs_total{kind,result} (result ∈ succeeded|failed) and
  // tidesync_sync_duration_seconds{kind} histogram.
  void sync_finished(std::string_view kind, std::string_view result, double seconds);
  // tidesync_sync_bytes_total{kind}: bytes a finished sync wrote (DataSync: each VM's image).
  void sync_bytes(std::string_view kind, double bytes);
  // tidesync_syncs_running{kind} gauge.
  void syncs_running(std::string_view kind, double n);

  // tidesync_locks_held gauge, tidesync_lock_waiters gauge, tidesync_lock_wait_seconds histogram.
  void locks_held(double n);
  void lock_waiters(double n);
  void lock_waited(double seconds);

  // DataSync (docs/datasync.md): tidesync_datasync_queue_length (Queued, not yet admitted) and
  // tidesync_datasync_syncing (Syncing or admitted) gauges; tidesync_datasync_admission_seconds
  // histogram (time from entering the queue to admission, per admission);
  // tidesync_datasync_retries_total{reason} counter (reason: ChecksumMismatch | Transient).
  void datasync_queue(double queued, double syncing);
  void datasync_admitted(double waited_seconds);
  void datasync_retry(std::string_view reason);

  // PodFilesystemSync (docs/podfilesystemsync.md, "Metrics"), labelled {namespace,
  // podfilesystemsync} (names only: never a path, pod or Secret):
  // tidesync_pfs_reports_total{...,kind,result} and tidesync_pfs_bytes_total counters (from the
  // agents' reports this replica received), tidesync_pfs_last_success_timestamp_seconds gauge,
  // and tidesync_pfs_pods{...,state} (state: injected | not_injected) from the leader's status.
  void pfs_report(std::string_view ns, std::string_view name, std::string_view kind,
                  std::string_view result, double bytes, double end_unix_seconds);
  void pfs_pods(std::string_view ns, std::string_view name, double injected, double not_injected);

  // Kubernetes watches (runtime/watch/watcher.hpp), labelled {resource} with the plural of a
  // fixed resource type ("bucketsyncs", "pods"): informers of the same resource add up.
  // init_watch creates the series with value 0, so rate() and increase() see the first one.
  // tidesync_watch_reconnects_total{resource,reason} counter, reason ∈ closed|error|expired
  // (watch::reconnect_reason); tidesync_watch_relists_total{resource} counter (full listings
  // started over because of 410).
  void init_watch(std::string_view resource);
  void watch_reconnect(std::string_view resource, std::string_view reason);
  void watch_relist(std::string_view resource);

  // tidesync_leader gauge: 1 while this process leads (0 before). tidesync_build_info{version}
  // is always 1.
  void leader(bool is_leader);

  // The Prometheus text exposition (format version 0.0.4) of everything registered.
  [[nodiscard]] std::string text() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tidesync::metrics
