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

#include "actors/api_types.hpp"
#include "actors/config_types.hpp"
#include "actors/datasync_types.hpp"
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

// Hears which keys changed in an informer cache. Controllers are listeners.
using listener_actor = caf::typed_actor<
    // `key` of `resource` ("bucketsyncs", "jobs", ...) was added, modified or deleted in the
    // cache (read the cache for which; a key whose object is gone was deleted).
    caf::reacts_to<atom::changed, std::string, std::string>>;

// One per watched resource: owns its informer (list + watch + cache, on the HTTP loop thread)
// and fans key changes out to listeners. Never carries objects: listeners read the cache.
using watcher_actor = caf::typed_actor<
    // Send every later change to `listener` (it should then look at every cached key once).
    caf::reacts_to<atom::subscribe, listener_actor>,
    // Whether the first complete listing is in the cache.
    caf::replies_to<atom::synced>::with<bool>,
    // Internal: the informer saw `key` change (sent from the loop thread).
    caf::reacts_to<atom::changed, std::string>>;

// One per kind (BucketSync, BucketSyncPolicy): a listener and its scheduler's worker. Drops
// events caused by our own status writes, maps keys to resource actors, forwards their
// outcomes to the scheduler.
using controller_actor = caf::typed_actor<
    // A cache changed (see listener_actor); own kind: filtered, then enqueued; other kinds
    // (Jobs, children): mapped to the owning key and enqueued.
    caf::reacts_to<atom::changed, std::string, std::string>,
    // From the scheduler: reconcile `key` (attempt ≥ 1) — handed to the key's resource actor.
    caf::reacts_to<atom::run, std::string, uint32_t>,
    // From the scheduler: gave up on `key` after the retry limit with this last error.
    caf::reacts_to<atom::failed, std::string, std::string>,
    // From a resource actor: the run of `key` ended with `outcome` (forwarded to the
    // scheduler, counted in metrics).
    caf::reacts_to<atom::done, std::string, reconcile_outcome>,
    // Reconcile `key` again (a deferred lock grant arrived): enqueue it.
    caf::reacts_to<atom::wake, std::string>,
    // Internal: refresh the queue gauges from the scheduler's stats (every few seconds).
    caf::reacts_to<atom::tick, uint64_t>,
    // Internal: refresh the in-flight gauges (workqueue_unfinished_work_seconds,
    // workqueue_longest_running_processor_seconds) while reconciles run.
    caf::reacts_to<atom::refresh>>;

// The DataSync admission queue (docs/datasync.md, "Queue and admission"): one per controller
// process. Holds the policy ConfigMap and an index of every DataSync's phase, runs the pure
// admission (global FIFO by creation time, `concurrency` slots counted from the API plus the
// slots it reserved and has not yet seen written) and wakes the DataSyncs it admits, and those
// whose queue position moved enough to be worth a status write.
using datasync_queue_actor = caf::typed_actor<
    // A DataSync or a ConfigMap of the controller's namespace changed (listener_actor).
    caf::reacts_to<atom::changed, std::string, std::string>,
    // From a DataSync's resource actor: may `key` start (a reserved slot), its position, the
    // policy in force. Answered at once.
    caf::replies_to<atom::ask, std::string>::with<queue_answer>,
    // The DataSync controller: where wakes go (`wake, key`).
    caf::reacts_to<atom::attach, controller_actor>,
    // Internal: run admission once for the changes seen since the last run.
    caf::reacts_to<atom::flush>,
    // Internal: a backoff expired (stale generations are dropped).
    caf::reacts_to<atom::tick, uint64_t>>;

// One per SharedConfig that the config API has served (docs/sharedconfig.md, "The writer"): the
// single writer of one owner's config in the store. Publishes are handled one at a time in
// arrival order; the store is read again before each one, so a stale expected revision always
// gets a conflict. Runs detached (its own thread): the store calls block.
using config_owner_actor = caf::typed_actor<
    // Publish the checked bundle at `path` (sha256 `checksum`) if `expected` ("" : nothing
    // published yet) is the current revision: the bundle is uploaded before latest.json moves.
    // Answers published (the new latest), conflict (the current one) or a failure.
    caf::replies_to<atom::publish, std::string, std::string, std::string>::with<config_reply>,
    // The current latest (read from the store again). With `has_known`, deferred until its
    // revision differs from `known` or `wait_ms` passed (long-poll).
    caf::replies_to<atom::poll, bool, std::string, uint32_t>::with<config_reply>,
    // Answer every deferred poll now (the API is stopping).
    caf::reacts_to<atom::flush>,
    // Internal: the wait of deferred poll `id` ended.
    caf::reacts_to<atom::tick, uint64_t>>;

// One per object (a BucketSync, a BucketSyncPolicy, a DataSync): runs one reconcile at a time —
// reads the newest cached object, calls the kind's pure step function, performs its actions through
// asynchronous API calls, writes status — and answers `done` to its controller.
using resource_actor = caf::typed_actor<
    // Reconcile now; `attempt` is 1 + the key's consecutive transient failures.
    caf::reacts_to<atom::run, uint32_t>,
    // Internal: an API call this actor made finished (actors/api_call.hpp).
    caf::reacts_to<atom::api, api_reply>>;

}  // namespace tidesync::actors
