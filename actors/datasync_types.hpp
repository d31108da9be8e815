// Plain data the DataSync actors exchange (docs/datasync.md, "Actors"). No CAF here: the
// `inspect` functions live in actors/type_ids.hpp.
#pragma once

#include <chrono>
#include <cstdint>

#include "actors/datasync_logic.hpp"

namespace tidesync::actors {

// The queue actor's answer to `ask(key)`: whether this DataSync may start now (a slot is
// reserved for it), where it stands in the queue, and the policy in force (retry decisions).
struct queue_answer {
  bool granted = false;
  int64_t position = 0;  // 1-based place in the FIFO; 0: not queued (as the queue sees it)
  int64_t syncing = 0;   // DataSyncs syncing or admitted, cluster-wide
  // The policy (datasync::datasync_policy, flattened for the message).
  int64_t concurrency = 4;
  int64_t retry_limit = 2;
  int64_t retry_backoff_seconds = 300;
  int64_t retry_backoff_limit_seconds = 3600;
  int64_t version_retention = 0;

  [[nodiscard]] datasync::datasync_policy policy() const {
    datasync::datasync_policy p;
    p.concurrency = static_cast<int>(concurrency);
    p.retry_limit = static_cast<int>(retry_limit);
    p.retry_backoff = std::chrono::seconds(retry_backoff_seconds);
    p.retry_backoff_limit = std::chrono::seconds(retry_backoff_limit_seconds);
    p.version_retention = static_cast<int>(version_retention);
    return p;
  }
  void set_policy(const datasync::datasync_policy& p) {
    concurrency = p.concurrency;
    retry_limit = p.retry_limit;
    retry_backoff_seconds = p.retry_backoff.count();
    retry_backoff_limit_seconds = p.retry_backoff_limit.count();
    version_retention = p.version_retention;
  }
};

}  // namespace tidesync::actors
