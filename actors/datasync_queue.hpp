// The DataSync admission queue actor (docs/datasync.md, "Queue and admission").
//
// It keeps an index of every DataSync's admission-relevant state (phase, creation time, retry
// time), updated from `changed` one object at a time, and the policy read from the ConfigMap
// `tidesync-policy` in the controller's namespace. On each batch of changes it runs the pure
// datasync::admit over the index: the oldest Queued DataSyncs get a slot while
//   syncing (phase Syncing in the cache) + reserved (admitted, not yet seen Syncing)
// is below `concurrency`. An admitted DataSync is reserved a slot and woken; its resource
// actor asks (`ask`), is granted, writes phase Syncing and only then creates anything. A
// reservation ends when the cache shows the DataSync out of Queued, or after
// k_reservation_ttl without that (its actor failed to write). So the count never exceeds
// `concurrency`, also across restarts (a new leader starts from the cache alone).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "actors/controller_context.hpp"
#include "actors/datasync_logic.hpp"
#include "actors/datasync_phase.hpp"
#include "actors/interfaces.hpp"

namespace tidesync::actors {

// How long an admitted DataSync keeps its slot without being seen Syncing (from its last ask),
// and a new DataSync its place without its Queued status written. Long enough for writes that
// wait behind the client's rate limit: 1,000 DataSyncs created at once put ~2,000 writes (label,
// Queued) ahead of the first Syncing write, 40 s at the default 50 qps (docs/benchmarks.md); 30 s
// was measured to give slots away and let younger DataSyncs start first.
inline constexpr std::chrono::seconds k_reservation_ttl{300};

// What the queue needs of one DataSync (read from its cached JSON).
struct queue_entry {
  std::string uid;
  config::sys_seconds created{};
  // pending: no status for this generation yet (its actor is about to write Queued).
  enum class state : uint8_t { other, pending, queued, syncing } what = state::other;
  std::optional<config::sys_seconds> not_before;  // status.nextRetryTime
  // pending: since when the queue has seen it so. A pending DataSync holds its place for at
  // most k_reservation_ttl (its actor may be failing to write; the queue must not wedge).
  std::chrono::steady_clock::time_point pending_since{};
  // For pruning: phase Succeeded for the current generation, and the workspace label.
  bool succeeded = false;
  std::string workspace;
};

// Reads a DataSync's queue entry: Queued only when status.observedGeneration equals
// metadata.generation; no phase, or a phase of an older generation (other than Syncing), is
// pending (its actor is about to write a fresh Queued status, and it keeps its place); Syncing
// counts whatever the generation (it holds a slot until its actor moves it on). Being deleted
// is `other`. Pure.
queue_entry read_queue_entry(const json::value& datasync);

struct datasync_queue_state {
  static constexpr const char* name = "datasync-queue";

  std::shared_ptr<const controller_context> ctx;
  controller_actor controller;
  std::unordered_map<std::string, queue_entry> index;  // by key
  datasync::datasync_policy policy;
  std::string policy_fingerprint = "\x01";  // of the ConfigMap's data; differs from any real one

  // Slots are granted in admission order: a reservation is granted to its asker only when no
  // older reservation is still Queued, so DataSyncs admitted together still write Syncing in
  // FIFO order (each a cache round trip after the one before).
  struct reservation {
    std::string uid;
    std::chrono::steady_clock::time_point since;
    uint64_t sequence = 0;
    bool denied = false;  // its actor asked before its turn: wake it when the turn comes
  };
  uint64_t next_sequence = 0;
  std::map<std::string, reservation> reserved;
  std::map<std::string, int> positions;           // of the last admission run
  std::unordered_map<std::string, int64_t> told;  // the position each queued key was woken for
  int64_t syncing = 0;                            // of the last admission run (incl. reserved)
  bool dirty = true;
  bool flush_pending = false;
  uint64_t timer_generation = 0;
  std::optional<config::sys_seconds> timer_at;
};

// Pruning (docs/datasync.md): when the queue sees a DataSync become Succeeded, it wakes the
// other Succeeded versions of its workspace (they may now be past the retention); when the
// retention changes, it wakes every Succeeded DataSync. They look at a cache that already shows
// the change.
//
// Spawn: `sys.spawn(datasync_queue, ctx)`, then send it `attach, controller` and subscribe it
// to the DataSync and ConfigMap watchers.
datasync_queue_actor::behavior_type datasync_queue(
    datasync_queue_actor::stateful_pointer<datasync_queue_state> self,
    std::shared_ptr<const controller_context> ctx);

}  // namespace tidesync::actors
