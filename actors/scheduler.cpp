#include "actors/scheduler.hpp"

#include <caf/all.hpp>
#include <chrono>
#include <utility>

#include "runtime/log.hpp"

namespace tidesync::actors {

namespace {

using self_ptr = scheduler_actor::stateful_pointer<scheduler_state>;

scheduler_logic::time_point now(self_ptr self) {
  return self->system().clock().now();
}

// After any change: move due keys to the queue, start what the limits allow, and make sure a
// timer is pending for the earliest delayed key.
void dispatch(self_ptr self) {
  auto& st = self->state;
  auto t = now(self);
  st.logic->advance(t);
  for (auto& order : st.logic->admit(t)) {
    self->send(st.worker, atom::run_v, std::move(order.key), order.attempt);
  }
  auto due = st.logic->next_due();
  if (!due || (st.timer_due && *st.timer_due <= *due)) return;  // the pending timer suffices
  st.timer_due = *due;
  auto delay = std::max(*due - t, scheduler_logic::clock::duration::zero());
  self->delayed_send(self, delay, atom::tick_v, ++st.timer_generation);
}

}  // namespace

scheduler_actor::behavior_type scheduler(self_ptr self, worker_actor worker,
                                         scheduler_options options,
                                         scheduler_logic::random_source random) {
  self->state.logic = std::make_unique<scheduler_logic>(std::move(options), std::move(random));
  self->state.worker = worker;
  // The worker owns this scheduler: without it, runs have nowhere to go.
  self->monitor(worker);
  self->set_down_handler([self](const caf::down_msg& msg) {
    if (msg.source == self->state.worker.address()) {
      log::get("scheduler")->debug("worker down, scheduler stops");
      self->quit(msg.reason);
    }
  });
  return {
      [self](atom::enqueue, const std::string& key) {
        if (self->state.logic->enqueue(key, now(self))) dispatch(self);
      },
      [self](atom::forget, const std::string& key) { self->state.logic->forget(key); },
      [self](atom::limits, const scheduler_limits& limits) {
        self->state.logic->set_limits(limits);
        dispatch(self);
      },
      [self](atom::done, const std::string& key, const reconcile_outcome& outcome) {
        using result = scheduler_logic::done_result;
        switch (self->state.logic->done(key, outcome, now(self))) {
          case result::gave_up:
            log::get("scheduler")
                ->info("giving up on {} after the retry limit: {}", key, outcome.message);
            self->send(self->state.worker, atom::failed_v, key, outcome.message);
            break;
          case result::unknown:
            log::get("scheduler")->warn("done for {} which is not running; ignored", key);
            break;
          default:
            break;
        }
        dispatch(self);
      },
      [self](atom::positions) { return self->state.logic->positions(); },
      [self](atom::stats) { return self->state.logic->stats(); },
      [self](atom::tick, uint64_t generation) {
        auto& st = self->state;
        if (generation != st.timer_generation) return;  // superseded by an earlier timer
        st.timer_due.reset();
        dispatch(self);
      },
  };
}

}  // namespace tidesync::actors
