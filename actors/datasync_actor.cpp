#include "actors/datasync_actor.hpp"

#include <algorithm>
#include <caf/all.hpp>
#include <set>
#include <utility>

#include "actors/events.hpp"
#include "config/datasync_job.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics/metrics.hpp"
#include "runtime/rfc3339.hpp"
#include "runtime/watch/object.hpp"

namespace tidesync::actors {

namespace {

using self_ptr = resource_actor::stateful_pointer<datasync_actor_state>;
using namespace datasync_action;

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("datasync");
  return l;
}

void finish(self_ptr self, reconcile_outcome outcome) {
  auto& st = self->state;
  if (!st.running) return;
  st.running = false;
  self->send(st.controller, atom::done_v, st.key, std::move(outcome));
}

void fail_transient(self_ptr self, const std::string& what, const api_reply& r) {
  auto msg = what + ": " + r.to_error().to_string();
  logger()->info("{}: {}", self->state.key, msg);
  finish(self, reconcile_outcome::transient(msg));
}

const config::datasync_vm* vm_named(const config::datasync& obj, const std::string& name) {
  for (const auto& vm : obj.spec.vms)
    if (vm.name == name) return &vm;
  return nullptr;
}

bool owned_by(const json::value& child, std::string_view uid) {
  const auto* refs = child.at_path({"metadata", "ownerReferences"});
  if (refs == nullptr || !refs->is_array()) return false;
  for (const auto& ref : refs->as_array())
    if (ref.get_bool("controller") && ref.get_string("uid") == uid) return true;
  return false;
}

// The Jobs this DataSync owns, each with its newest pod.
std::vector<populate_observation> observe_jobs(const controller_context& ctx,
                                               const config::datasync& obj) {
  std::vector<populate_observation> out;
  watch::label_list by_owner{
      {std::string(config::k_datasync_label), config::datasync_label_value(obj.metadata.name)}};
  for (const auto& job : ctx.datasync_jobs->cache().select(by_owner)) {
    if (job->meta.ns != obj.metadata.namespace_) continue;
    auto jdoc = job->parse();
    if (!jdoc || !owned_by(*jdoc, obj.metadata.uid)) continue;
    std::optional<json::value> newest;
    std::string newest_created;
    for (const auto& pod : ctx.datasync_pods->cache().select({{"job-name", job->meta.name}})) {
      if (pod->meta.ns != obj.metadata.namespace_) continue;
      auto pdoc = pod->parse();
      if (!pdoc) continue;
      std::string created(pdoc->at_path({"metadata", "creationTimestamp"})
                              ? pdoc->at_path({"metadata", "creationTimestamp"})->as_string()
                              : "");
      if (!newest || created >= newest_created) {
        newest = std::move(*pdoc);
        newest_created = std::move(created);
      }
    }
    out.push_back(observe_populate_job(*jdoc, newest ? &*newest : nullptr));
  }
  return out;
}

event_subject subject_of(const config::datasync& obj) {
  return {std::string(config::k_api_version),
          std::string(config::k_datasync_kind),
          obj.metadata.namespace_,
          obj.metadata.name,
          obj.metadata.uid,
          {}};
}

void run_actions(self_ptr self);
void write_status(self_ptr self);
void after_status(self_ptr self);
void prune(self_ptr self);

void step_and_act(self_ptr self, datasync_observations obs) {
  auto& st = self->state;
  st.result = datasync_step(st.obj, obs, st.ctx->now());
  for (const auto& a : st.result.actions) {
    if (!std::holds_alternative<ask_queue>(a)) continue;
    self->request(st.ctx->datasync_queue, caf::infinite, atom::ask_v, st.key)
        .then(
            [self, obs](const queue_answer& answer) mutable {
              if (!self->state.running) return;
              obs.queue = answer;
              step_and_act(self, std::move(obs));
            },
            [self](caf::error& err) {
              finish(self, reconcile_outcome::transient("the DataSync queue did not answer: " +
                                                        caf::to_string(err)));
            });
    return;
  }
  st.obs = std::move(obs);
  st.next_action = 0;
  run_actions(self);
}

// The claim of `vm` already exists although the cache did not show it as ours (a user's claim
// has no tidesync label, so the cache never sees it): read it, and carry on only if this
// DataSync owns it; otherwise step again knowing the name is taken.
void check_existing_claim(self_ptr self, const std::string& vm) {
  auto& st = self->state;
  auto claim = config::datasync_claim_name(st.obj.metadata.name, vm);
  call_api(
      self,
      [&](auto cb) {
        st.ctx->client->get(k8s::resources::persistentvolumeclaims(), st.obj.metadata.namespace_,
                            claim, std::move(cb));
      },
      [self, vm](const api_reply& r) {
        auto& st = self->state;
        if (!r.ok) return fail_transient(self, "reading an existing PersistentVolumeClaim", r);
        auto doc = r.object();
        if (owned_by(doc, st.obj.metadata.uid)) return run_actions(self);
        logger()->warn("{}: PersistentVolumeClaim {} exists and is not owned by this DataSync",
                       st.key, config::datasync_claim_name(st.obj.metadata.name, vm));
        auto obs = std::move(st.obs);
        obs.claims.erase(vm);
        obs.foreign_claims.insert(vm);
        step_and_act(self, std::move(obs));
      });
}

void run_actions(self_ptr self) {
  auto& st = self->state;
  const auto& ns = st.obj.metadata.namespace_;
  const auto& name = st.obj.metadata.name;
  while (st.next_action < st.result.actions.size()) {
    const auto& a = st.result.actions[st.next_action++];
    if (std::holds_alternative<label_workspace>(a)) {
      json::value patch(json::object{
          {"metadata", json::object{{"labels", json::object{{std::string(config::k_workspace_label),
                                                             st.obj.spec.workspace_id}}}}}});
      call_api(
          self,
          [&](auto cb) {
            st.ctx->client->patch(datasyncs_resource(), ns, name, k8s::patch_type::merge, patch,
                                  std::move(cb));
          },
          [self](const api_reply& r) {
            if (!r.ok && r.error_code() != errc::not_found)
              return fail_transient(self, "labelling the DataSync with its workspace", r);
            run_actions(self);
          });
      return;
    }
    if (const auto* c = std::get_if<create_claim>(&a)) {
      const auto* vm = vm_named(st.obj, c->vm);
      auto claim = vm ? config::build_datasync_claim(st.obj, *vm)
                      : expected<json::value>(make_error(errc::internal, "no VM " + c->vm));
      if (!claim) return finish(self, reconcile_outcome::terminal(claim.error().message));
      call_api(
          self,
          [&](auto cb) {
            st.ctx->client->create(k8s::resources::persistentvolumeclaims(), ns, *claim,
                                   std::move(cb));
          },
          [self, vm = c->vm](const api_reply& r) {
            if (r.ok) return run_actions(self);
            if (r.error_code() != errc::already_exists)
              return fail_transient(self, "creating a PersistentVolumeClaim", r);
            check_existing_claim(self, vm);
          });
      return;
    }
    if (const auto* c = std::get_if<create_job>(&a)) {
      const auto* vm = vm_named(st.obj, c->vm);
      auto job = vm ? config::build_populate_job(st.obj, *vm, st.ctx->populate)
                    : expected<json::value>(make_error(errc::internal, "no VM " + c->vm));
      if (!job) return finish(self, reconcile_outcome::terminal(job.error().message));
      logger()->info("{}: creating Job {} (VM {})", st.key, c->name, c->vm);
      call_api(
          self,
          [&](auto cb) { st.ctx->client->create(k8s::resources::jobs(), ns, *job, std::move(cb)); },
          [self](const api_reply& r) {
            if (!r.ok && r.error_code() != errc::already_exists)
              return fail_transient(self, "creating a populate Job", r);
            run_actions(self);
          });
      return;
    }
    if (const auto* d = std::get_if<delete_job>(&a)) {
      k8s::delete_options opts;
      opts.propagation_policy = "Background";
      auto job_name = d->name;
      logger()->info("{}: deleting Job {}", st.key, job_name);
      call_api(
          self,
          [&](auto cb) {
            st.ctx->client->remove(k8s::resources::jobs(), ns, job_name, opts, std::move(cb));
          },
          [self](const api_reply& r) {
            if (!r.ok && r.error_code() != errc::not_found)
              return fail_transient(self, "deleting a populate Job", r);
            run_actions(self);
          });
      return;
    }
    // emit_event: after the status write.
  }
  write_status(self);
}

// Writes st.result.status (merge patch of the whole status), remembers it for read-your-writes
// and continues with `k`. A DataSync gone meanwhile ends the run.
void patch_status(self_ptr self, void (*k)(self_ptr)) {
  auto& st = self->state;
  json::value patch(json::object{{"status", config::to_json(st.result.status)}});
  call_api(
      self,
      [&](auto cb) {
        st.ctx->client->patch_status(datasyncs_resource(), st.obj.metadata.namespace_,
                                     st.obj.metadata.name, k8s::patch_type::merge, patch,
                                     std::move(cb));
      },
      [self, k](const api_reply& r) {
        auto& st = self->state;
        if (!r.ok) {
          if (r.error_code() == errc::not_found) return finish(self, reconcile_outcome::success());
          return fail_transient(self, "writing the status", r);
        }
        auto written = r.object();  // keep it: at_path points into it
        const auto* rv = written.at_path({"metadata", "resourceVersion"});
        st.written_uid = st.obj.metadata.uid;
        st.written_rv = rv && rv->is_string() ? rv->as_string() : std::string{};
        st.written_status = st.result.status;
        k(self);
      });
}

void write_status(self_ptr self) {
  if (!self->state.result.status_changed) return after_status(self);
  patch_status(self, after_status);
}

void after_status(self_ptr self) {
  auto& st = self->state;
  auto now = st.ctx->now();
  for (const auto& a : st.result.actions)
    if (const auto* ev = std::get_if<emit_event>(&a))
      send_event(st.ctx->events_client(), subject_of(st.obj), ev->type, ev->reason, ev->message,
                 now);
  if (auto* m = st.ctx->metrics.get(); m && st.result.status_changed) {
    using config::datasync_phase;
    auto before = st.obj.status.phase;
    auto after = st.result.status.phase;
    auto steady_now = std::chrono::steady_clock::now();
    if (after == datasync_phase::syncing && before != datasync_phase::syncing)
      st.sync_started = steady_now;
    if (after != before &&
        (after == datasync_phase::succeeded || after == datasync_phase::failed)) {
      double secs = st.sync_started
                        ? std::chrono::duration<double>(steady_now - *st.sync_started).count()
                        : 0;
      m->sync_finished("DataSync", after == datasync_phase::succeeded ? "succeeded" : "failed",
                       secs);
      st.sync_started.reset();
    }
    if (auto bytes = newly_synced_bytes(st.obj.status, st.result.status); bytes > 0)
      m->sync_bytes("DataSync", static_cast<double>(bytes));
    if (st.result.status.retry_count > st.obj.status.retry_count &&
        st.result.status.observed_generation == st.obj.status.observed_generation) {
      bool checksum = st.result.status.message.find("checksum") != std::string::npos;
      m->datasync_retry(checksum ? "ChecksumMismatch" : "Transient");
    }
  }
  prune(self);
}

// ---------------------------------------------------------------------------------------------
// Pruning (docs/datasync.md, "Pruning"). Runs after a reconcile that leaves this DataSync
// Succeeded. Each DataSync prunes only itself (deletes its own claims, writes its own Pruned
// condition): one writer per object. Every DataSync of the workspace is read from the cache;
// the Pods of the namespace are listed only when this DataSync has something to delete.

// The claims of `ds` that exist, are owned by it and are not being deleted.
std::vector<std::string> owned_claims(const controller_context& ctx, const config::datasync& ds) {
  std::vector<std::string> out;
  for (const auto& vm : ds.spec.vms) {
    auto name = config::datasync_claim_name(ds.metadata.name, vm.name);
    auto h = ctx.datasync_claims->cache().get(ds.metadata.namespace_, name);
    if (!h || h->meta.deleting) continue;
    auto doc = h->parse();
    if (doc && owned_by(*doc, ds.metadata.uid)) out.push_back(std::move(name));
  }
  return out;
}

struct workspace_view {
  std::vector<datasync::version_item> items;
};

workspace_view read_workspace(const datasync_actor_state& st) {
  workspace_view out;
  const auto& ns = st.obj.metadata.namespace_;
  watch::label_list by_ws{{std::string(config::k_workspace_label), st.obj.spec.workspace_id}};
  bool self_seen = false;
  auto add = [&](const config::datasync& ds, const config::datasync_status& status) {
    datasync::version_item item;
    item.name = ds.metadata.name;
    item.version = ds.spec.version.value_or("");
    item.created = ds.metadata.creation_timestamp.value_or(config::sys_seconds{});
    item.succeeded = status.phase == config::datasync_phase::succeeded &&
                     status.observed_generation == ds.metadata.generation &&
                     !ds.metadata.deletion_timestamp;
    item.claims = owned_claims(*st.ctx, ds);
    out.items.push_back(std::move(item));
  };
  for (const auto& h : st.ctx->datasyncs->cache().select(by_ws)) {
    if (h->meta.ns != ns) continue;
    if (h->meta.name == st.obj.metadata.name) {
      self_seen = true;
      add(st.obj, st.result.status);  // the cache may not show our own write yet
      continue;
    }
    auto doc = h->parse();
    if (!doc) continue;
    std::optional<error> problem;
    auto ds = config::parse_datasync_partial(*doc, &problem);
    if (problem) ds.status.phase = config::datasync_phase::failed;  // never a candidate
    add(ds, ds.status);
  }
  if (!self_seen) add(st.obj, st.result.status);  // our label write not seen yet
  return out;
}

struct own_prune {
  std::vector<std::string> delete_claims;
  std::vector<std::string> kept_for_mount;
  bool pruned = false;
};

own_prune own_part(const datasync::prune_plan& plan, const std::string& name,
                   const std::vector<std::string>& mine) {
  own_prune out;
  auto is_mine = [&](const std::string& c) {
    return std::find(mine.begin(), mine.end(), c) != mine.end();
  };
  for (const auto& c : plan.delete_claims)
    if (is_mine(c)) out.delete_claims.push_back(c);
  for (const auto& c : plan.kept_for_mount)
    if (is_mine(c)) out.kept_for_mount.push_back(c);
  out.pruned = std::find(plan.pruned_datasyncs.begin(), plan.pruned_datasyncs.end(), name) !=
               plan.pruned_datasyncs.end();
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Sets the Pruned condition in st.result.status and writes it when it changed, then finishes
// with `outcome`.
void set_pruned(self_ptr self, std::string status, std::string reason, std::string message,
                reconcile_outcome outcome) {
  auto& st = self->state;
  st.result.outcome = std::move(outcome);
  auto c = config::make_condition(std::string(config::condition_type::pruned), std::move(status),
                                  std::move(reason), std::move(message));
  c.observed_generation = st.obj.metadata.generation;
  if (!config::set_condition(st.result.status.conditions, std::move(c), st.ctx->now()))
    return finish(self, st.result.outcome);
  patch_status(self, [](self_ptr s) { finish(s, s->state.result.outcome); });
}

// What pruning ends with: the Pruned condition to set, an Event to send (empty reason: none)
// and the outcome of the run.
struct prune_end {
  std::string status, reason, message;
  bool event = false;
  reconcile_outcome outcome;
};

// Deletes `claims` one by one (each at the uid the cache shows, so a same-named newcomer is
// never deleted by mistake), then records `end`.
void delete_claims(self_ptr self, std::vector<std::string> claims, prune_end end) {
  auto& st = self->state;
  if (claims.empty()) {
    logger()->info("{}: {}", st.key, end.message);
    if (end.event)
      send_event(st.ctx->events_client(), subject_of(st.obj), "Normal", "Pruned", end.message,
                 st.ctx->now());
    return set_pruned(self, std::move(end.status), std::move(end.reason), std::move(end.message),
                      std::move(end.outcome));
  }
  auto claim = claims.back();
  claims.pop_back();
  k8s::delete_options opts;
  opts.propagation_policy = "Background";
  if (auto h = st.ctx->datasync_claims->cache().get(st.obj.metadata.namespace_, claim))
    opts.precondition_uid = h->meta.uid;
  logger()->info("{}: pruning: deleting PersistentVolumeClaim {}", st.key, claim);
  call_api(
      self,
      [&](auto cb) {
        st.ctx->client->remove(k8s::resources::persistentvolumeclaims(), st.obj.metadata.namespace_,
                               claim, opts, std::move(cb));
      },
      [self, claims = std::move(claims), end = std::move(end)](const api_reply& r) mutable {
        if (!r.ok && r.error_code() != errc::not_found && r.error_code() != errc::conflict)
          return fail_transient(self, "deleting a PersistentVolumeClaim while pruning", r);
        delete_claims(self, std::move(claims), std::move(end));
      });
}

void prune_with_pods(self_ptr self, int retention) {
  auto& st = self->state;
  call_api(
      self,
      [&](auto cb) {
        st.ctx->client->list_all(k8s::resources::pods(), st.obj.metadata.namespace_,
                                 k8s::list_options{}, std::move(cb));
      },
      [self, retention](const api_reply& r) {
        auto& st = self->state;
        if (!r.ok) return fail_transient(self, "listing the Pods that may mount old volumes", r);
        auto pods = r.object();
        auto in_use = claims_in_use(pods);
        std::set<std::string> mounted;
        for (const auto& kv : in_use)
          mounted.insert(kv.first);
        auto view = read_workspace(st);  // again: the cache may have moved on meanwhile
        auto plan = datasync::plan_prune(view.items, mounted, retention);
        auto own = own_part(plan, st.obj.metadata.name, owned_claims(*st.ctx, st.obj));
        auto older = "older than the newest " + std::to_string(retention) + " Succeeded " +
                     (retention == 1 ? "version" : "versions") + " of workspace " +
                     st.obj.spec.workspace_id;
        prune_end end;
        if (!own.kept_for_mount.empty()) {
          // Delete what is free now; keep the rest until its Pods are gone (looked at again).
          std::string users;
          for (const auto& claim : own.kept_for_mount)
            users += (users.empty() ? "" : "; ") + std::string("PersistentVolumeClaim ") + claim +
                     " is mounted by Pod " + join(in_use[claim]);
          end = {"False", "InUse", older + ", but kept while in use: " + users, false,
                 reconcile_outcome::requeue(k_prune_recheck)};
        } else if (own.pruned) {
          end = {"True", "Pruned",
                 own.delete_claims.empty()
                     ? "its volumes are gone: " + older
                     : "deleted its volumes (" + join(own.delete_claims) + "): " + older,
                 !own.delete_claims.empty(), st.result.outcome};
        } else {
          return finish(self, st.result.outcome);
        }
        delete_claims(self, std::move(own.delete_claims), std::move(end));
      });
}

void prune(self_ptr self) {
  auto& st = self->state;
  const auto& s = st.result.status;
  bool applies = st.result.outcome.what == reconcile_outcome::kind::success &&
                 s.phase == config::datasync_phase::succeeded &&
                 s.observed_generation == st.obj.metadata.generation &&
                 !st.obj.metadata.deletion_timestamp &&
                 config::check_label_value(st.obj.spec.workspace_id).empty();
  if (!applies) return finish(self, st.result.outcome);
  self->request(st.ctx->datasync_queue, caf::infinite, atom::ask_v, st.key)
      .then(
          [self](const queue_answer& answer) {
            auto& st = self->state;
            if (!st.running) return;
            auto retention = static_cast<int>(answer.version_retention);
            if (retention <= 0) return finish(self, st.result.outcome);
            // (The queue actor wakes the older versions when it sees a new one Succeeded.)
            auto view = read_workspace(st);
            // Without Pods first: only a DataSync with something to delete lists them.
            auto plan = datasync::plan_prune(view.items, {}, retention);
            auto own = own_part(plan, st.obj.metadata.name, owned_claims(*st.ctx, st.obj));
            const auto* cond =
                config::find_condition(st.result.status.conditions, config::condition_type::pruned);
            bool recorded = cond != nullptr && cond->status == "True";
            if (own.delete_claims.empty() && (!own.pruned || recorded))
              return finish(self, st.result.outcome);
            prune_with_pods(self, retention);
          },
          [self](caf::error& err) {
            finish(self, reconcile_outcome::transient("the DataSync queue did not answer: " +
                                                      caf::to_string(err)));
          });
}

void reconcile(self_ptr self) {
  auto& st = self->state;
  st.running = true;
  auto handle = st.ctx->datasyncs->cache().get(st.key);
  if (!handle) return finish(self, reconcile_outcome::success());  // owned objects go by GC
  auto doc = handle->parse();
  if (!doc)
    return finish(self, reconcile_outcome::terminal("unreadable object: " + doc.error().message));
  std::optional<error> problem;
  st.obj = config::parse_datasync_partial(*doc, &problem);
  if (st.written_status && st.written_uid == st.obj.metadata.uid && !st.written_rv.empty() &&
      watch::compare_resource_versions(handle->meta.resource_version, st.written_rv) == -1) {
    st.obj.status = *st.written_status;
  } else {
    st.written_status.reset();
  }
  datasync_observations obs;
  if (problem) obs.spec_error = problem->message;
  auto label = st.obj.metadata.labels.find(std::string(config::k_workspace_label));
  obs.has_workspace_label =
      (label != st.obj.metadata.labels.end() && label->second == st.obj.spec.workspace_id) ||
      !config::check_label_value(st.obj.spec.workspace_id).empty();
  obs.jobs = observe_jobs(*st.ctx, st.obj);
  for (const auto& vm : st.obj.spec.vms) {
    auto h = st.ctx->datasync_claims->cache().get(
        st.obj.metadata.namespace_, config::datasync_claim_name(st.obj.metadata.name, vm.name));
    if (!h) continue;
    auto cdoc = h->parse();
    if (cdoc && owned_by(*cdoc, st.obj.metadata.uid))
      obs.claims.insert(vm.name);
    else if (cdoc)
      obs.foreign_claims.insert(vm.name);
  }
  step_and_act(self, std::move(obs));
}

}  // namespace

std::map<std::string, std::vector<std::string>> claims_in_use(const json::value& pod_list) {
  std::map<std::string, std::vector<std::string>> out;
  const auto* items = pod_list.at("items");
  if (items == nullptr || !items->is_array()) return out;
  for (const auto& pod : items->as_array()) {
    if (const auto* phase = pod.at_path({"status", "phase"}); phase && phase->is_string())
      if (phase->as_string() == "Succeeded" || phase->as_string() == "Failed") continue;
    const auto* vols = pod.at_path({"spec", "volumes"});
    if (vols == nullptr || !vols->is_array()) continue;
    std::string name;
    if (const auto* n = pod.at_path({"metadata", "name"}); n && n->is_string())
      name = n->as_string();
    for (const auto& v : vols->as_array()) {
      const auto* claim = v.at_path({"persistentVolumeClaim", "claimName"});
      if (claim == nullptr || !claim->is_string()) continue;
      auto& users = out[claim->as_string()];
      if (std::find(users.begin(), users.end(), name) == users.end()) users.push_back(name);
    }
  }
  return out;
}

populate_observation observe_populate_job(const json::value& job, const json::value* pod) {
  populate_observation out;
  const auto* meta = job.at("metadata");
  if (meta != nullptr) {
    out.name = std::string(meta->get_string("name"));
    if (const auto* labels = meta->at("labels"))
      out.vm = std::string(labels->get_string(config::k_datasync_vm_label));
    if (const auto* ts = meta->at("deletionTimestamp"); ts && !ts->is_null()) out.deleting = true;
  }
  if (const auto* conds = job.at_path({"status", "conditions"}); conds && conds->is_array()) {
    for (const auto& c : conds->as_array()) {
      if (c.get_string("status") != "True") continue;
      auto type = c.get_string("type");
      if (type == "Complete") out.what = populate_observation::state::succeeded;
      if (type == "Failed") {
        out.what = populate_observation::state::failed;
        out.reason = std::string(c.get_string("reason"));
        out.message = std::string(c.get_string("message"));
        if (auto t = rfc3339::parse(c.get_string("lastTransitionTime"))) out.failed_at = *t;
      }
    }
  }
  if (out.what == populate_observation::state::active || pod == nullptr) return out;
  out.pod_unsettled = true;  // until its populate container is seen terminated
  const auto* cs = pod->at_path({"status", "containerStatuses"});
  if (cs == nullptr || !cs->is_array()) return out;
  for (const auto& c : cs->as_array()) {
    if (c.get_string("name") != config::k_populate_container) continue;
    const auto* t = c.at_path({"state", "terminated"});
    if (t == nullptr || !t->is_object()) break;
    out.pod_unsettled = false;
    if (const auto* code = t->at("exitCode"); code && code->is_int())
      out.exit_code = static_cast<int>(code->as_int());
    auto text = t->get_string("message");
    if (text.empty()) break;
    auto msg = json::parse(text);
    if (!msg || !msg->is_object()) {
      out.message = std::string(text);
      break;
    }
    if (auto r = msg->get_string("reason"); !r.empty()) out.reason = std::string(r);
    if (auto m = msg->get_string("message"); !m.empty()) out.message = std::string(m);
    if (const auto* d = msg->at("digest"); d && d->is_string()) out.digest = d->as_string();
    out.bytes = msg->get_int("bytes");
    break;
  }
  return out;
}

resource_actor::behavior_type datasync_actor(self_ptr self, std::string key,
                                             std::shared_ptr<const controller_context> ctx,
                                             controller_actor controller) {
  self->state.key = std::move(key);
  self->state.ctx = std::move(ctx);
  self->state.controller = std::move(controller);
  return {
      [self](atom::run, uint32_t) {
        if (self->state.running) {
          logger()->warn("{}: run while running; ignored", self->state.key);
          return;
        }
        reconcile(self);
      },
      [self](atom::api, const api_reply& reply) {
        if (!self->state.calls.resume(reply))
          logger()->debug("{}: late API answer {} ignored", self->state.key, reply.token);
      },
  };
}

}  // namespace tidesync::actors
