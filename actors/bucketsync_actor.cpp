#include "actors/bucketsync_actor.hpp"

#include <algorithm>
#include <atomic>
#include <caf/all.hpp>
#include <utility>

#include "actors/events.hpp"
#include "config/job_builder.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics/metrics.hpp"
#include "runtime/watch/object.hpp"

namespace tidesync::actors {

namespace {

using self_ptr = resource_actor::stateful_pointer<bucket_sync_actor_state>;

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("bucketsync");
  return l;
}

// Sends `call(callback)` and runs `k` with the answer on this actor.
template <class Call, class Cont>
void api(self_ptr self, Call&& call, Cont&& k) {
  auto token = self->state.calls.expect(std::forward<Cont>(k));
  call(reply_to(caf::actor_cast<caf::actor>(self), token));
}

lock_reply withdrawn() {
  lock_reply r;
  r.what = lock_reply::kind::rejected;
  return r;
}

// BucketSyncs waiting for a lock, over every actor of the process (tidesync_lock_waiters).
std::atomic<int64_t> g_waiters{0};

void note_lock_state(self_ptr self, const lock_reply& reply) {
  auto& st = self->state;
  auto* m = st.ctx->metrics.get();
  if (reply.what == lock_reply::kind::waiting) {
    if (st.waiting_since) return;
    st.waiting_since = std::chrono::steady_clock::now();
    auto n = ++g_waiters;
    if (m) m->lock_waiters(static_cast<double>(n));
    return;
  }
  if (!st.waiting_since) return;
  auto waited = std::chrono::steady_clock::now() - *st.waiting_since;
  st.waiting_since.reset();
  auto n = --g_waiters;
  if (m) {
    m->lock_waiters(static_cast<double>(n));
    if (reply.what == lock_reply::kind::granted)
      m->lock_waited(std::chrono::duration<double>(waited).count());
  }
}

void finish(self_ptr self, reconcile_outcome outcome) {
  auto& st = self->state;
  if (!st.running) return;
  st.running = false;
  self->send(st.controller, atom::done_v, st.key, std::move(outcome));
}

void fail_transient(self_ptr self, std::string what, const api_reply& r) {
  auto msg = what + ": " + r.to_error().to_string();
  logger()->info("{}: {}", self->state.key, msg);
  finish(self, reconcile_outcome::transient(std::move(msg)));
}

std::vector<std::string> read_finalizers(const json::value& doc) {
  std::vector<std::string> out;
  if (const auto* list = doc.at_path({"metadata", "finalizers"}); list && list->is_array())
    for (const auto& f : list->as_array())
      if (f.is_string()) out.push_back(f.as_string());
  return out;
}

json::value finalizer_patch(const std::vector<std::string>& finalizers, const std::string& rv) {
  json::array list;
  for (const auto& f : finalizers)
    list.push_back(f);
  json::object meta{{"finalizers", json::value(std::move(list))}};
  // Optimistic concurrency: a stale view of the list must not drop someone else's finalizer.
  if (!rv.empty()) meta.set("resourceVersion", rv);
  return json::value(json::object{{"metadata", json::value(std::move(meta))}});
}

event_subject subject_of(const bucket_sync_actor_state& st) {
  return {std::string(config::k_api_version),
          std::string(config::k_bucket_sync_kind),
          st.obj.metadata.namespace_,
          st.obj.metadata.name,
          st.obj.metadata.uid,
          {}};
}

void run_actions(self_ptr self);
void write_status(self_ptr self);
void after_status(self_ptr self);

// Step with the observations; asks the lock manager first when the step wants locks.
void step_and_act(self_ptr self, observations obs) {
  auto& st = self->state;
  auto now = st.ctx->now();
  auto r = step(st.obj, obs, now);
  if (!obs.locks) {
    const phase_action::acquire_locks* want = nullptr;
    bool release_first = false;
    for (const auto& a : r.actions) {
      if (const auto* acq = std::get_if<phase_action::acquire_locks>(&a)) want = acq;
      if (std::holds_alternative<phase_action::release_locks>(a)) release_first = true;
    }
    if (want != nullptr) {
      if (release_first) {
        // A new generation while waiting: withdraw the old request before asking again, and
        // let the next step see the generation as observed (it is, once we write status).
        self->send(st.ctx->locks, atom::release_v, want->holder);
        st.awaiting_lock = false;
        st.obj.status.observed_generation = st.obj.metadata.generation;
      }
      auto holder = want->holder;
      auto paths = want->paths;
      self->request(st.ctx->locks, caf::infinite, atom::acquire_v, holder, paths)
          .then(
              [self, obs, holder](const lock_reply& reply) mutable {
                auto& st = self->state;
                if (!st.running) return;
                note_lock_state(self, reply);
                if (reply.what == lock_reply::kind::waiting && !st.awaiting_lock) {
                  st.awaiting_lock = true;
                  // Pushed, not polled: the deferred answer arrives when our turn comes.
                  self->request(st.ctx->locks, caf::infinite, atom::await_lock_v, holder)
                      .then(
                          [self](const lock_reply& granted) {
                            self->state.awaiting_lock = false;
                            if (granted.what == lock_reply::kind::granted)
                              self->send(self->state.controller, atom::wake_v, self->state.key);
                          },
                          [self](caf::error&) { self->state.awaiting_lock = false; });
                }
                obs.locks = reply;
                step_and_act(self, std::move(obs));
              },
              [self](caf::error& err) {
                finish(self, reconcile_outcome::transient("the lock manager did not answer: " +
                                                          caf::to_string(err)));
              });
      return;
    }
  }
  st.result = std::move(r);
  st.next_action = 0;
  run_actions(self);
}

void run_actions(self_ptr self) {
  auto& st = self->state;
  while (st.next_action < st.result.actions.size()) {
    const auto& a = st.result.actions[st.next_action];
    if (std::holds_alternative<phase_action::remove_finalizer>(a)) break;  // after the status
    ++st.next_action;
    const auto& ns = st.obj.metadata.namespace_;
    const auto& name = st.obj.metadata.name;
    if (std::holds_alternative<phase_action::add_finalizer>(a)) {
      auto list = st.finalizers;
      if (std::find(list.begin(), list.end(), k_bucket_sync_finalizer) != list.end()) continue;
      list.emplace_back(k_bucket_sync_finalizer);
      auto patch = finalizer_patch(list, st.resource_version);
      api(
          self,
          [&](auto cb) {
            st.ctx->client->patch(bucket_syncs_resource(), ns, name, k8s::patch_type::merge, patch,
                                  std::move(cb));
          },
          [self, list](const api_reply& r) {
            if (!r.ok) return fail_transient(self, "adding the finalizer", r);
            self->state.finalizers = list;
            auto patched = r.object();  // keep it: at_path points into it
            const auto* rv = patched.at_path({"metadata", "resourceVersion"});
            if (rv && rv->is_string()) self->state.resource_version = rv->as_string();
            run_actions(self);
          });
      return;
    }
    if (std::holds_alternative<phase_action::acquire_locks>(a)) continue;  // done before
    if (const auto* create = std::get_if<phase_action::create_job>(&a)) {
      auto job = config::build_job(st.obj, st.ctx->job_settings);
      if (!job) {
        // build_job refuses only what validation should have caught: a bug or a bad env name.
        finish(self, reconcile_outcome::terminal("cannot build Job " + create->name + ": " +
                                                 job.error().message));
        return;
      }
      api(
          self,
          [&](auto cb) { st.ctx->client->create(k8s::resources::jobs(), ns, *job, std::move(cb)); },
          [self](const api_reply& r) {
            if (!r.ok && r.error_code() != errc::already_exists)
              return fail_transient(self, "creating the Job", r);
            run_actions(self);
          });
      return;
    }
    if (const auto* del = std::get_if<phase_action::delete_job>(&a)) {
      k8s::delete_options opts;
      opts.propagation_policy = "Background";
      auto job_name = del->name;
      api(
          self,
          [&](auto cb) {
            st.ctx->client->remove(k8s::resources::jobs(), ns, job_name, opts, std::move(cb));
          },
          [self](const api_reply& r) {
            if (!r.ok && r.error_code() != errc::not_found)
              return fail_transient(self, "deleting the Job", r);
            run_actions(self);
          });
      return;
    }
    if (const auto* rel = std::get_if<phase_action::release_locks>(&a)) {
      self->send(st.ctx->locks, atom::release_v, rel->holder);
      st.awaiting_lock = false;
      if (st.waiting_since) note_lock_state(self, withdrawn());
      continue;
    }
    // emit_event: sent after the status write (an event for a transition that was not
    // recorded would be a lie if the write fails).
  }
  write_status(self);
}

void write_status(self_ptr self) {
  auto& st = self->state;
  if (!st.result.status_changed) return after_status(self);
  json::value patch(json::object{{"status", config::to_json(st.result.status)}});
  api(
      self,
      [&](auto cb) {
        st.ctx->client->patch_status(bucket_syncs_resource(), st.obj.metadata.namespace_,
                                     st.obj.metadata.name, k8s::patch_type::merge, patch,
                                     std::move(cb));
      },
      [self](const api_reply& r) {
        auto& st = self->state;
        if (!r.ok) {
          if (r.error_code() == errc::not_found) return finish(self, reconcile_outcome::success());
          return fail_transient(self, "writing the status", r);
        }
        auto obj = r.object();
        auto rv = obj.at_path({"metadata", "resourceVersion"});
        st.written_uid = st.obj.metadata.uid;
        st.written_rv = rv && rv->is_string() ? rv->as_string() : std::string{};
        st.written_status = st.result.status;
        if (!st.written_rv.empty()) st.resource_version = st.written_rv;
        st.finalizers = read_finalizers(obj);
        after_status(self);
      });
}

void after_status(self_ptr self) {
  auto& st = self->state;
  auto now = st.ctx->now();
  for (const auto& a : st.result.actions)
    if (const auto* ev = std::get_if<phase_action::emit_event>(&a))
      send_event(st.ctx->events_client(), subject_of(st), ev->type, ev->reason, ev->message, now);
  const auto before = st.obj.status.phase;
  if (st.result.next == config::bucket_sync_phase::finished &&
      before != config::bucket_sync_phase::finished && st.ctx->metrics) {
    double secs = 0;
    if (st.result.status.start_time && st.result.status.finish_time)
      secs = static_cast<double>(
          (*st.result.status.finish_time - *st.result.status.start_time).count());
    st.ctx->metrics->sync_finished("BucketSync", st.result.status.error ? "failed" : "succeeded",
                                   secs);
  }
  bool remove = std::any_of(
      st.result.actions.begin(), st.result.actions.end(),
      [](const action& a) { return std::holds_alternative<phase_action::remove_finalizer>(a); });
  if (remove && std::find(st.finalizers.begin(), st.finalizers.end(), k_bucket_sync_finalizer) !=
                    st.finalizers.end()) {
    auto list = st.finalizers;
    std::erase(list, std::string(k_bucket_sync_finalizer));
    auto patch = finalizer_patch(list, st.resource_version);
    api(
        self,
        [&](auto cb) {
          st.ctx->client->patch(bucket_syncs_resource(), st.obj.metadata.namespace_,
                                st.obj.metadata.name, k8s::patch_type::merge, patch, std::move(cb));
        },
        [self](const api_reply& r) {
          if (!r.ok && r.error_code() != errc::not_found)
            return fail_transient(self, "removing the finalizer", r);
          finish(self, self->state.result.outcome);
        });
    return;
  }
  finish(self, st.result.outcome);
}

void reconcile(self_ptr self, uint32_t attempt) {
  auto& st = self->state;
  st.running = true;
  st.run_started = std::chrono::steady_clock::now();
  auto handle = st.ctx->bucket_syncs->cache().get(st.key);
  if (!handle) {
    if (st.waiting_since) note_lock_state(self, withdrawn());
    // Gone (deleted without our finalizer, or after Finished): make sure nothing stays locked.
    if (!st.holder.empty()) self->send(st.ctx->locks, atom::release_v, st.holder);
    st.holder.clear();
    return finish(self, reconcile_outcome::success());
  }
  auto doc = handle->parse();
  if (!doc)
    return finish(self, reconcile_outcome::terminal("unreadable object: " + doc.error().message));
  std::optional<error> problem;
  st.obj = config::parse_bucket_sync_partial(*doc, &problem);
  st.resource_version = handle->meta.resource_version;
  st.finalizers = read_finalizers(*doc);
  // Read-your-writes: the cache may not show our last status write yet.
  if (st.written_status && st.written_uid == st.obj.metadata.uid && !st.written_rv.empty() &&
      watch::compare_resource_versions(handle->meta.resource_version, st.written_rv) == -1) {
    st.obj.status = *st.written_status;
  } else {
    st.written_status.reset();
  }
  st.holder = lock_holder(st.obj);

  observations obs;
  if (problem) obs.spec_error = problem->message;
  obs.has_finalizer = std::find(st.finalizers.begin(), st.finalizers.end(),
                                k_bucket_sync_finalizer) != st.finalizers.end();
  auto job_handle = st.ctx->jobs->cache().get(st.obj.metadata.namespace_, config::job_name(st.obj));
  if (job_handle) {
    auto job_doc = job_handle->parse();
    if (job_doc) obs.job = observe_job(&*job_doc, st.obj.metadata.uid);
  }
  (void)attempt;
  step_and_act(self, std::move(obs));
}

}  // namespace

job_observation observe_job(const json::value* job, std::string_view owner_uid) {
  job_observation out;
  if (job == nullptr || !job->is_object()) return out;
  out.what = job_observation::state::active;
  out.owned = false;
  if (const auto* refs = job->at_path({"metadata", "ownerReferences"}); refs && refs->is_array())
    for (const auto& ref : refs->as_array())
      if (ref.get_bool("controller") && ref.get_string("uid") == owner_uid) out.owned = true;
  if (const auto* ts = job->at_path({"metadata", "deletionTimestamp"}); ts && !ts->is_null())
    out.deleting = true;
  if (const auto* conds = job->at_path({"status", "conditions"}); conds && conds->is_array()) {
    for (const auto& c : conds->as_array()) {
      if (c.get_string("status") != "True") continue;
      auto type = c.get_string("type");
      if (type == "Complete") out.what = job_observation::state::succeeded;
      if (type == "Failed") {
        out.what = job_observation::state::failed;
        out.reason = std::string(c.get_string("reason"));
        out.message = std::string(c.get_string("message"));
      }
    }
  }
  return out;
}

resource_actor::behavior_type bucket_sync_actor(self_ptr self, std::string key,
                                                std::shared_ptr<const controller_context> ctx,
                                                controller_actor controller) {
  self->state.key = std::move(key);
  self->state.ctx = std::move(ctx);
  self->state.controller = std::move(controller);
  return {
      [self](atom::run, uint32_t attempt) {
        if (self->state.running) {
          logger()->warn("{}: run while running; ignored", self->state.key);
          return;
        }
        reconcile(self, attempt);
      },
      [self](atom::api, const api_reply& reply) {
        if (!self->state.calls.resume(reply))
          logger()->debug("{}: late API answer {} ignored", self->state.key, reply.token);
      },
  };
}

}  // namespace tidesync::actors
