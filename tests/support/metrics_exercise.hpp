// One series of every metric family the registry has, made through the registry's own calls
// (a labelled family without series prints nothing), for the tests that compare the exported
// metrics with what names them: deploy/monitoring/ (metrics_monitoring_test) and
// docs/metrics.md (docs_reference_test). docs_reference_test fails when a family registered
// in runtime/metrics/metrics.cpp is missing here.
#pragma once

#include <string>

#include "runtime/metrics/metrics.hpp"

namespace tidesync::test {

// The Prometheus text of a registry after one call of each of its methods.
inline std::string every_metric_text() {
  metrics::registry r;
  r.init_controller("bucketsync");
  r.reconcile("bucketsync", "success", 0.1);
  r.active_workers("bucketsync", 1);
  r.max_concurrent_reconciles("bucketsync", 1);
  r.queue_depth("bucketsync", 1);
  r.queue_adds("bucketsync");
  r.queue_wait("bucketsync", 0.1);
  r.work_duration("bucketsync", 0.1);
  r.queue_retries("bucketsync");
  r.queue_longest_running("bucketsync", 1);
  r.queue_unfinished_work("bucketsync", 1);
  r.sync_finished("BucketSync", "succeeded", 1);
  r.syncs_running("BucketSync", 1);
  r.sync_bytes("DataSync", 1);
  r.locks_held(1);
  r.lock_waiters(1);
  r.lock_waited(1);
  r.datasync_queue(1, 1);
  r.datasync_admitted(1);
  r.datasync_retry("Transient");
  r.pfs_report("ns", "p", "sync", "Succeeded", 1, 1);
  r.pfs_pods("ns", "p", 1, 0);
  r.init_watch("bucketsyncs");
  r.watch_reconnect("bucketsyncs", "closed");
  r.watch_relist("bucketsyncs");
  r.leader(true);
  return r.text();
}

}  // namespace tidesync::test
