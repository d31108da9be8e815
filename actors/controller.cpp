#include "actors/controller.hpp"

#include <caf/all.hpp>
#include <utility>

#include "runtime/log.hpp"
#include "runtime/metrics/metrics.hpp"

namespace tidesync::actors {

namespace {

using self_ptr = controller_actor::stateful_pointer<controller_state>;
using clock = std::chrono::steady_clock;
constexpr std::chrono::seconds k_stats_interval{5};
// client-go updates its in-flight gauges this often (unfinishedWorkUpdatePeriod).
constexpr std::chrono::milliseconds k_in_flight_interval{500};

// The actor clock: the steady clock, or virtual time under CAF's test coordinator.
clock::time_point now(self_ptr self) {
  return self->system().clock().now();
}

double seconds_since(self_ptr self, clock::time_point t) {
  return std::chrono::duration<double>(now(self) - t).count();
}

void enqueue(self_ptr self, const std::string& key) {
  auto& st = self->state;
  st.enqueued_at.try_emplace(key, now(self));
  if (st.ctx->metrics) st.ctx->metrics->queue_adds(st.hooks.name);
  self->send(st.scheduler, atom::enqueue_v, key);
}

std::string_view result_label(const reconcile_outcome& o) {
  switch (o.what) {
    case reconcile_outcome::kind::success:
      return "success";
    case reconcile_outcome::kind::requeue_after:
      // A delay of 0 or less puts the key back in the queue at once (scheduler_logic::done):
      // controller-runtime's Requeue, counted as "requeue"; a real delay is its RequeueAfter.
      return o.after.count() > 0 ? "requeue_after" : "requeue";
    default:
      return "error";
  }
}

// Sets workqueue_unfinished_work_seconds and workqueue_longest_running_processor_seconds from
// the runs in progress and, while any runs, sends `refresh` to do it again in 500 ms, so a
// stuck reconcile shows as a growing value (client-go's updateUnfinishedWorkLoop).
void refresh_in_flight(self_ptr self) {
  auto& st = self->state;
  if (!st.ctx->metrics) return;
  auto w = measure_in_flight(st.running_since, now(self));
  st.ctx->metrics->queue_unfinished_work(st.hooks.name, w.unfinished_seconds);
  st.ctx->metrics->queue_longest_running(st.hooks.name, w.longest_running_seconds);
  if (st.running_since.empty() || st.refresh_pending) return;
  st.refresh_pending = true;
  self->delayed_send(self, k_in_flight_interval, atom::refresh_v);
}

void own_changed(self_ptr self, const std::string& key) {
  auto& st = self->state;
  auto handle = st.hooks.own->cache().get(key);
  if (!handle) {  // deleted: the resource actor cleans up what is left (locks)
    st.seen.erase(key);
    return enqueue(self, key);
  }
  auto doc = handle->parse();
  std::string fp = doc ? change_fingerprint(*doc) : handle->meta.resource_version;
  auto [it, inserted] = st.seen.try_emplace(key, fp);
  if (!inserted) {
    if (it->second == fp) return;  // our own status write (or a status-only change)
    it->second = std::move(fp);
  }
  enqueue(self, key);
}

void retire(self_ptr self, const std::string& key) {
  auto& st = self->state;
  auto it = st.actors.find(key);
  if (it == st.actors.end()) return;
  self->unlink_from(it->second);
  self->send_exit(it->second, caf::exit_reason::user_shutdown);
  st.actors.erase(it);
}

}  // namespace

std::string change_fingerprint(const json::value& object) {
  std::string fp;
  const auto* meta = object.at("metadata");
  if (meta == nullptr) return fp;
  fp += meta->get_string("uid");
  fp += '|';
  fp += std::to_string(meta->get_int("generation"));
  fp += '|';
  const auto* del = meta->at("deletionTimestamp");
  fp += del != nullptr && !del->is_null() ? "D" : "-";
  fp += '|';
  if (const auto* f = meta->at("finalizers")) fp += json::dump(*f);
  fp += '|';
  if (const auto* a = meta->at("annotations")) fp += json::dump(*a);
  return fp;
}

controller_actor::behavior_type controller(self_ptr self, controller_hooks hooks,
                                           std::shared_ptr<const controller_context> ctx,
                                           scheduler_options options,
                                           std::vector<watcher_actor> watchers) {
  auto& st = self->state;
  st.hooks = std::move(hooks);
  st.ctx = std::move(ctx);
  if (st.ctx->metrics)
    st.ctx->metrics->max_concurrent_reconciles(st.hooks.name, options.limits.global);
  refresh_in_flight(self);  // the in-flight gauges exist at 0 from the start, as client-go's
  st.scheduler = self->spawn<caf::linked>(scheduler, caf::actor_cast<worker_actor>(self),
                                          std::move(options), scheduler_logic::random_source{});
  auto me = caf::actor_cast<listener_actor>(self);
  for (auto& w : watchers)
    self->send(w, atom::subscribe_v, me);
  // Everything already cached is looked at once (events before the subscription are not
  // replayed); duplicates collapse in the scheduler.
  for (const auto& key : st.hooks.own->cache().keys())
    own_changed(self, key);
  self->send(self, atom::tick_v, st.tick_generation);

  return {
      [self](atom::changed, const std::string& resource, const std::string& key) {
        auto& st = self->state;
        if (resource == st.hooks.own->resource) return own_changed(self, key);
        if (!st.hooks.map) return;
        auto mapped = st.hooks.map(resource, key);
        if (!mapped.empty()) enqueue(self, mapped);
      },
      [self](atom::run, const std::string& key, uint32_t attempt) {
        auto& st = self->state;
        auto it = st.actors.find(key);
        if (it == st.actors.end()) {
          auto a = st.hooks.spawn(self->system(), key, caf::actor_cast<controller_actor>(self));
          self->link_to(a);
          it = st.actors.emplace(key, std::move(a)).first;
        }
        if (auto q = st.enqueued_at.find(key); q != st.enqueued_at.end()) {
          if (st.ctx->metrics)
            st.ctx->metrics->queue_wait(st.hooks.name, seconds_since(self, q->second));
          st.enqueued_at.erase(q);
        }
        st.running_since[key] = now(self);
        if (st.ctx->metrics)
          st.ctx->metrics->active_workers(st.hooks.name, st.running_since.size());
        refresh_in_flight(self);
        self->send(it->second, atom::run_v, attempt);
      },
      [self](atom::failed, const std::string& key, const std::string& message) {
        log::get(self->state.hooks.name)
            ->warn("{}: gave up after repeated failures: {}; it runs again on its next change", key,
                   message);
      },
      [self](atom::done, const std::string& key, const reconcile_outcome& outcome) {
        auto& st = self->state;
        if (auto r = st.running_since.find(key); r != st.running_since.end()) {
          if (st.ctx->metrics) {
            double secs = seconds_since(self, r->second);
            st.ctx->metrics->reconcile(st.hooks.name, result_label(outcome), secs);
            st.ctx->metrics->work_duration(st.hooks.name, secs);
            if (outcome.what == reconcile_outcome::kind::transient_error)
              st.ctx->metrics->queue_retries(st.hooks.name);
          }
          st.running_since.erase(r);
          if (st.ctx->metrics)
            st.ctx->metrics->active_workers(st.hooks.name, st.running_since.size());
          refresh_in_flight(self);
        }
        self->send(st.scheduler, atom::done_v, key, outcome);
        // The object is gone and its last run is over: the actor has nothing left to do.
        if (!st.hooks.own->cache().get(key) && outcome.what == reconcile_outcome::kind::success) {
          retire(self, key);
          st.seen.erase(key);
          self->send(st.scheduler, atom::forget_v, key);
        }
      },
      [self](atom::wake, const std::string& key) { enqueue(self, key); },
      [self](atom::refresh) {
        self->state.refresh_pending = false;
        refresh_in_flight(self);
      },
      [self](atom::tick, uint64_t) {
        auto& st = self->state;
        if (st.ctx->metrics) {
          self->request(st.scheduler, caf::infinite, atom::stats_v)
              .then([self](const scheduler_stats& s) {
                self->state.ctx->metrics->queue_depth(self->state.hooks.name,
                                                      static_cast<double>(s.queued));
              });
        }
        if (st.hooks.on_tick) st.hooks.on_tick();
        self->delayed_send(self, k_stats_interval, atom::tick_v, ++st.tick_generation);
      },
  };
}

}  // namespace tidesync::actors
