// The scheduler actor: carries a scheduler_logic, turns its decisions into messages to the
// worker and keeps one timer for the earliest delayed key. Rules: docs/scheduler.md.
//
// Spawn: `sys.spawn(scheduler, worker, scheduler_options{...}, scheduler_logic::random_source{})`
// (CAF's spawn passes every argument; an empty random source means a seeded Mersenne Twister).
// It monitors `worker` and quits when the worker goes down; otherwise stop it with
// `send_exit(h, caf::exit_reason::user_shutdown)`.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "actors/interfaces.hpp"
#include "actors/scheduler_logic.hpp"

namespace tidesync::actors {

struct scheduler_state {
  static constexpr const char* name = "scheduler";

  std::unique_ptr<scheduler_logic> logic;
  worker_actor worker;
  // Generation of the one timer that counts; older ticks are stale (CAF 0.17 cannot cancel
  // a delayed_send).
  uint64_t timer_generation = 0;
  // Due time of that timer, if one is pending.
  std::optional<scheduler_logic::time_point> timer_due;
};

scheduler_actor::behavior_type scheduler(scheduler_actor::stateful_pointer<scheduler_state> self,
                                         worker_actor worker, scheduler_options options,
                                         scheduler_logic::random_source random);

}  // namespace tidesync::actors
