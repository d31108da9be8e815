// Every typed-actor interface of tidesync, in one place: reading this file explains the
// architecture (docs/architecture.md, "From a watch event to a status patch").
//
// CAF 0.17.6 spelling: `caf::reacts_to<Atom, Args...>` (no reply) and
// `caf::replies_to<Atom, Args...>::with<R>`; the 0.18 `caf::result<R>(Args...)` form does not
// compile here. Keys are "namespace/name" ("name" for cluster-scoped objects).
#pragma once

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "actors/lock_types.hpp"
#include "actors/scheduler_types.hpp"
#include "actors/type_ids.hpp"

namespace tidesync::actors {

// The owner of a scheduler: it reconciles keys when told to. Today the controller actor of a
// kind; tests use a fake. Rules: docs/scheduler.md.
using worker_actor = caf::typed_actor<
    // Reconcile `key` now; `attempt` is 1 + its consecutive transient failures. Answer by sending
    // `done(key, outcome)` to the scheduler (a run may take many messages; no reply is awaited).
    caf::reacts_to<atom::run, std::string, uint32_t>,
    // The scheduler gave up on `key` after the retry limit; `message` is its last error (surface
    // it in status). The key runs again only after a new enqueue.
    caf::reacts_to<atom::failed, std::string, std::string>>;

// Decides when each key is reconciled: one FIFO queue, global and per-namespace concurrency
// limits, single flight per key, requeue-after, retry with backoff. Quits with its worker.
using scheduler_actor = caf::typed_actor<
    // Reconcile `key`: queue it (a queued duplicate collapses), or mark it dirty if running.
    caf::reacts_to<atom::enqueue, std::string>,
    // The object is gone: drop `key` from the queue, the delayed set and the retry counts.
    caf::reacts_to<atom::forget, std::string>,
    // Replace the concurrency limits (policy ConfigMap): raising admits at once, lowering
    // stops nothing that runs.
    caf::reacts_to<atom::limits, scheduler_limits>,
    // The worker finished a run of `key` with `outcome` (success, requeue-after, errors).
    caf::reacts_to<atom::done, std::string, reconcile_outcome>,
    // 1-based position of every queued key, in arrival order (status.queuePosition).
    caf::replies_to<atom::positions>::with<std::map<std::string, uint64_t>>,
    // Queue depth, running and delayed counts, counters (metrics).
    caf::replies_to<atom::stats>::with<scheduler_stats>,
    // Internal: the timer for the earliest delayed key fired; stale generations are dropped.
    caf::reacts_to<atom::tick, uint64_t>>;

// Exclusive locks on bucket paths (normalised rclone remote + path): all or nothing per holder,
// FIFO among overlapping waiters, each held lock mirrored as a Lease through a lease_sink,
// reclaimed after a TTL when its holder is gone. Rules: docs/locks.md.
using lock_manager_actor = caf::typed_actor<
    // Ask for `paths` for `holder` ("namespace/name/uid"): granted, waiting (who is in the
    // way, for a WaitingForLock condition) or rejected. Idempotent; answered at once.
    caf::replies_to<atom::acquire, std::string, std::vector<std::string>>::with<lock_reply>,
    // Deferred: answers `granted` when `holder`'s turn comes (at once if it holds), or
    // `rejected` if it is not waiting or withdraws.
    caf::replies_to<atom::await_lock, std::string>::with<lock_reply>,
    // Drop `holder`'s locks (finalize) or its waiting entry (deleted while waiting).
    caf::reacts_to<atom::release, std::string>,
    // The holder of a lock conflicting with `path`, "" if none (or if `path` is invalid).
    caf::replies_to<atom::holder_of, std::string>::with<std::string>,
    // Internal: renew held locks of live holders and reclaim stale ones; stale generations
    // are dropped.
    caf::reacts_to<atom::tick, uint64_t>>;

// Planned (issue 4), each to be added here with one line per handler when it is built:
// - watcher_actor: one per watched resource; owns its informer cache and tells the controller
//   which keys changed (added/modified/deleted), never the objects themselves.
// - controller_actor: one per kind; a worker_actor for its scheduler; drops events caused by
//   our own status writes; maps keys to resource actors.
// - resource_actor: one per BucketSync; runs the pure phase machine Initialize → Sync →
//   Finalize → Finished and reports a reconcile_outcome to its controller.

}  // namespace tidesync::actors
