// The lock manager actor: carries a lock_table, answers acquire (at once) and await_lock
// (deferred until granted), releases, renews held locks on a timer and reclaims stale ones.
// Rules: docs/locks.md.
//
// Spawn: `sys.spawn(lock_manager, lock_options{...}, std::vector<lease_record>{...}, sink)`.
// The Lease records are the lock Leases found in the controller's namespace at start
// (restart recovery); `sink` is the seam to the API server: the manager tells it which Leases
// to write, renew and delete, and asks it whether a holder is alive. The controller's sink is
// actors::lease_writer (actors/lease_writer.hpp), which writes through the Kubernetes client
// without blocking. The manager keeps a timer only while it holds or queues something; stop
// it with `send_exit(h, caf::exit_reason::user_shutdown)`.
#pragma once

#include <caf/actor_clock.hpp>
#include <caf/typed_response_promise.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "actors/interfaces.hpp"
#include "actors/lease.hpp"
#include "actors/lock_logic.hpp"

namespace tidesync::actors {

// Where held locks become Leases. Called on the manager's thread; implementations must not
// block (forward to the actor that owns the Kubernetes client).
class lease_sink {
 public:
  virtual ~lease_sink() = default;
  // Whether `holder` ("namespace/name/uid") exists with that uid and is not Finished
  // (answered from the informer cache).
  virtual bool alive(std::string_view holder) = 0;
  // A holder was granted its set: create one Lease per path, in canonical path order.
  virtual void granted(const std::vector<lease_record>& leases) = 0;
  // The holder's locks were renewed (renewTime moved): update the Leases, creating any that
  // are missing (recovery after a crash between two creates).
  virtual void renewed(const std::vector<lease_record>& leases) = 0;
  // The locks were released or reclaimed: delete these Leases (reverse canonical order).
  virtual void released(const std::vector<lease_record>& leases) = 0;
};

struct lock_manager_state {
  static constexpr const char* name = "lock_manager";

  lock_table table;
  lock_options options;
  std::shared_ptr<lease_sink> sink;
  // Deferred await_lock replies, per waiting holder.
  std::unordered_map<std::string, std::vector<caf::typed_response_promise<lock_reply>>> awaiting;
  // Wall-clock time = wall_start + (actor clock now - clock_start).
  lock_table::time_point wall_start{};
  caf::actor_clock::time_point clock_start{};
  // Generation of the one timer that counts (CAF 0.17 cannot cancel a delayed_send).
  uint64_t timer_generation = 0;
  bool timer_armed = false;
};

lock_manager_actor::behavior_type lock_manager(
    lock_manager_actor::stateful_pointer<lock_manager_state> self, lock_options options,
    std::vector<lease_record> existing, std::shared_ptr<lease_sink> sink);

// The Lease records mirroring `holder`'s held set in `table` (empty if it holds nothing).
std::vector<lease_record> leases_for(const lock_table& table, const std::string& holder,
                                     const lock_options& options);

}  // namespace tidesync::actors
