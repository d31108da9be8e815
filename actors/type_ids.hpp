// The one CAF type-id block of tidesync: every atom and every message type the actors
// exchange, plus the `inspect` functions (CAF 0.17 form) that let CAF copy, print and
// serialise them. Register once per actor system:
//   cfg.add_message_types<caf::id_block::tidesync>();
//
// CAF 0.17.6 notes: CAF_ADD_ATOM takes 4 arguments and does not use a type id (an atom is an
// `atom_constant`, so two atoms with the same text are the same type, including CAF's own,
// e.g. "tick"); atom text is at most 10 characters. Only CAF_ADD_TYPE_ID consumes ids.
#pragma once

#include <caf/meta/type_name.hpp>
#include <caf/type_id.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "actors/api_types.hpp"
#include "actors/config_types.hpp"
#include "actors/datasync_types.hpp"
#include "actors/lock_types.hpp"
#include "actors/scheduler_types.hpp"

namespace tidesync::actors {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reconcile_outcome& x) {
  return f(caf::meta::type_name("tidesync::actors::reconcile_outcome"), x.what, x.after, x.message);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scheduler_limits& x) {
  return f(caf::meta::type_name("tidesync::actors::scheduler_limits"), x.global, x.per_namespace);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scheduler_stats& x) {
  return f(caf::meta::type_name("tidesync::actors::scheduler_stats"), x.queued, x.running,
           x.delayed, x.adds, x.admitted, x.retries, x.gave_up, x.forgotten);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lock_reply& x) {
  return f(caf::meta::type_name("tidesync::actors::lock_reply"), x.what, x.blocker,
           x.blocker_waiting, x.path, x.position, x.message);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, api_reply& x) {
  return f(caf::meta::type_name("tidesync::actors::api_reply"), x.token, x.ok, x.code,
           x.http_status, x.message, x.body);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queue_answer& x) {
  return f(caf::meta::type_name("tidesync::actors::queue_answer"), x.granted, x.position, x.syncing,
           x.concurrency, x.retry_limit, x.retry_backoff_seconds, x.retry_backoff_limit_seconds,
           x.version_retention);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, config_reply& x) {
  return f(caf::meta::type_name("tidesync::actors::config_reply"), x.ok, x.code, x.message,
           x.conflict, x.has_latest, x.revision, x.checksum, x.updated_at);
}

}  // namespace tidesync::actors

CAF_BEGIN_TYPE_ID_BLOCK(tidesync, caf::first_custom_type_id)

// -- scheduler (docs/scheduler.md) --
CAF_ADD_ATOM(tidesync, tidesync::atom, enqueue, "enqueue")
CAF_ADD_ATOM(tidesync, tidesync::atom, forget, "forget")
CAF_ADD_ATOM(tidesync, tidesync::atom, limits, "limits")
CAF_ADD_ATOM(tidesync, tidesync::atom, done, "done")
CAF_ADD_ATOM(tidesync, tidesync::atom, positions, "positions")
CAF_ADD_ATOM(tidesync, tidesync::atom, stats, "stats")
CAF_ADD_ATOM(tidesync, tidesync::atom, tick, "tick")
// -- worker (the scheduler's owner) --
CAF_ADD_ATOM(tidesync, tidesync::atom, run, "run")
CAF_ADD_ATOM(tidesync, tidesync::atom, failed, "failed")

CAF_ADD_TYPE_ID(tidesync, (tidesync::actors::reconcile_outcome))
CAF_ADD_TYPE_ID(tidesync, (tidesync::actors::scheduler_limits))
CAF_ADD_TYPE_ID(tidesync, (tidesync::actors::scheduler_stats))
CAF_ADD_TYPE_ID(tidesync, (std::map<std::string, uint64_t>))

// -- lock manager (docs/locks.md) --
CAF_ADD_ATOM(tidesync, tidesync::atom, acquire, "acquire")
CAF_ADD_ATOM(tidesync, tidesync::atom, await_lock, "awaitlock")
CAF_ADD_ATOM(tidesync, tidesync::atom, release, "release")
CAF_ADD_ATOM(tidesync, tidesync::atom, holder_of, "holderof")
CAF_ADD_TYPE_ID(tidesync, (tidesync::actors::lock_reply))
CAF_ADD_TYPE_ID(tidesync, (std::vector<std::string>))

// -- watchers, controllers and resource actors (docs/controller.md) --
CAF_ADD_ATOM(tidesync, tidesync::atom, changed, "changed")
CAF_ADD_ATOM(tidesync, tidesync::atom, subscribe, "subscribe")
CAF_ADD_ATOM(tidesync, tidesync::atom, synced, "synced")
CAF_ADD_ATOM(tidesync, tidesync::atom, wake, "wake")
CAF_ADD_ATOM(tidesync, tidesync::atom, api, "api")
CAF_ADD_ATOM(tidesync, tidesync::atom, reconcile, "reconcile")
CAF_ADD_ATOM(tidesync, tidesync::atom, refresh, "refresh")
CAF_ADD_TYPE_ID(tidesync, (tidesync::actors::api_reply))

// -- the DataSync queue (docs/datasync.md) --
CAF_ADD_ATOM(tidesync, tidesync::atom, ask, "ask")
CAF_ADD_ATOM(tidesync, tidesync::atom, attach, "attach")
CAF_ADD_ATOM(tidesync, tidesync::atom, flush, "flush")
CAF_ADD_TYPE_ID(tidesync, (tidesync::actors::queue_answer))

// Config owners (SharedConfig writers)
CAF_ADD_ATOM(tidesync, tidesync::atom, publish, "publish")
CAF_ADD_ATOM(tidesync, tidesync::atom, poll, "poll")
CAF_ADD_TYPE_ID(tidesync, (tidesync::actors::config_reply))

CAF_END_TYPE_ID_BLOCK(tidesync)
