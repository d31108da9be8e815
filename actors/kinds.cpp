#include "actors/kinds.hpp"

#include <caf/all.hpp>
#include <unordered_map>
#include <utility>

#include "actors/bucketsync_actor.hpp"
#include "actors/datasync_actor.hpp"
#include "actors/events.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics/metrics.hpp"
#include "runtime/watch/object.hpp"

namespace tidesync::actors {

namespace {

std::pair<std::string, std::string> split_key(const std::string& key) {
  auto slash = key.find('/');
  if (slash == std::string::npos) return {{}, key};
  return {key.substr(0, slash), key.substr(slash + 1)};
}

// Maps a change of `source` (Jobs, child BucketSyncs) to the key of its controller owner of
// `kind`. The owner is remembered per key, so a deleted object (gone from the cache) still
// maps to the owner it had. Called on the controller's thread only.
std::function<std::string(const std::string&, const std::string&)> owner_mapper(
    std::shared_ptr<watched> source, std::string_view kind) {
  auto owners = std::make_shared<std::unordered_map<std::string, std::string>>();
  return [source, owners, kind = std::string(kind)](const std::string& resource,
                                                    const std::string& key) -> std::string {
    if (resource != source->resource) return {};
    auto handle = source->cache().get(key);
    if (!handle) {
      auto it = owners->find(key);
      if (it == owners->end()) return {};
      auto owner = std::move(it->second);
      owners->erase(it);
      return owner;
    }
    auto doc = handle->parse();
    if (!doc) return {};
    auto owner = controller_owner_key(*doc, kind);
    if (!owner.empty()) (*owners)[key] = owner;
    return owner;
  };
}

}  // namespace

std::string controller_owner_key(const json::value& object, std::string_view kind) {
  const auto* refs = object.at_path({"metadata", "ownerReferences"});
  if (refs == nullptr || !refs->is_array()) return {};
  for (const auto& ref : refs->as_array()) {
    if (!ref.get_bool("controller") || ref.get_string("kind") != kind) continue;
    const auto* meta = object.at("metadata");
    return watch::make_key(meta ? meta->get_string("namespace") : "", ref.get_string("name"));
  }
  return {};
}

bool bucket_sync_alive(const watch::cache& bucket_syncs, std::string_view holder) {
  // "namespace/name/uid"
  auto last = holder.rfind('/');
  if (last == std::string_view::npos) return false;
  auto key = holder.substr(0, last);
  auto uid = holder.substr(last + 1);
  auto h = bucket_syncs.get(key);
  if (!h || h->meta.uid != uid) return false;
  auto doc = h->parse();
  if (!doc) return true;  // unreadable but there: do not take its locks away
  const auto* phase = doc->at_path({"status", "phase"});
  return !(phase && phase->is_string() && phase->as_string() == "Finished");
}

controller_hooks bucket_sync_hooks(std::shared_ptr<const controller_context> ctx) {
  controller_hooks h;
  h.name = "bucketsync";
  h.own = ctx->bucket_syncs;
  h.map = owner_mapper(ctx->jobs, config::k_bucket_sync_kind);
  h.spawn = [ctx](caf::actor_system& sys, const std::string& key, controller_actor c) {
    return sys.spawn(bucket_sync_actor, key, ctx, std::move(c));
  };
  if (ctx->metrics) {
    // tidesync_syncs_running: BucketSyncs in phase Sync, counted in the cache (the server
    // writes JSON compactly, so the raw text can be searched without parsing it).
    h.on_tick = [ctx] {
      size_t n = 0;
      for (const auto& o : ctx->bucket_syncs->cache().list())
        if (o->raw->find(R"("phase":"Sync")") != std::string::npos) ++n;
      ctx->metrics->syncs_running("BucketSync", static_cast<double>(n));
    };
  }
  return h;
}

controller_hooks policy_hooks(std::shared_ptr<const controller_context> ctx) {
  controller_hooks h;
  h.name = "bucketsyncpolicy";
  h.own = ctx->policies;
  h.map = owner_mapper(ctx->bucket_syncs, config::k_bucket_sync_policy_kind);
  h.spawn = [ctx](caf::actor_system& sys, const std::string& key, controller_actor c) {
    return sys.spawn(policy_actor, key, ctx, std::move(c));
  };
  return h;
}

controller_hooks datasync_hooks(std::shared_ptr<const controller_context> ctx) {
  controller_hooks h;
  h.name = "datasync";
  h.own = ctx->datasyncs;
  auto jobs = owner_mapper(ctx->datasync_jobs, config::k_datasync_kind);
  auto claims = owner_mapper(ctx->datasync_claims, config::k_datasync_kind);
  h.map = [ctx, jobs, claims](const std::string& resource, const std::string& key) {
    if (resource == ctx->datasync_pods->resource) {
      // A pod of a populate Job: its Job's owner (a deleted pod: its Job's change covers it).
      auto pod = ctx->datasync_pods->cache().get(key);
      if (!pod) return std::string();
      const auto* job_name = pod->meta.label("job-name");
      auto job = job_name ? ctx->datasync_jobs->cache().get(pod->meta.ns, *job_name) : nullptr;
      if (!job) return std::string();
      auto doc = job->parse();
      return doc ? controller_owner_key(*doc, config::k_datasync_kind) : std::string();
    }
    auto owner = jobs(resource, key);
    return owner.empty() ? claims(resource, key) : owner;
  };
  h.spawn = [ctx](caf::actor_system& sys, const std::string& key, controller_actor c) {
    return sys.spawn(datasync_actor, key, ctx, std::move(c));
  };
  if (ctx->metrics) {
    h.on_tick = [ctx] {
      size_t n = 0;
      for (const auto& o : ctx->datasyncs->cache().list())
        if (o->raw->find(R"("phase":"Syncing")") != std::string::npos) ++n;
      ctx->metrics->syncs_running("DataSync", static_cast<double>(n));
    };
  }
  return h;
}

// ---------------------------------------------------------------------------------------------
// The policy actor.

namespace {

using pself = resource_actor::stateful_pointer<policy_actor_state>;

std::shared_ptr<spdlog::logger> plog() {
  static auto l = log::get("bucketsyncpolicy");
  return l;
}

template <class Call, class Cont>
void api(pself self, Call&& call, Cont&& k) {
  auto token = self->state.calls.expect(std::forward<Cont>(k));
  call(reply_to(caf::actor_cast<caf::actor>(self), token));
}

void finish(pself self, reconcile_outcome outcome) {
  auto& st = self->state;
  if (!st.running) return;
  st.running = false;
  self->send(st.controller, atom::done_v, st.key, std::move(outcome));
}

void fail_transient(pself self, const std::string& what, const api_reply& r) {
  auto msg = what + ": " + r.to_error().to_string();
  plog()->info("{}: {}", self->state.key, msg);
  finish(self, reconcile_outcome::transient(msg));
}

void policy_write_status(pself self);
void policy_after_status(pself self);

void policy_continue(pself self) {
  auto& st = self->state;
  auto& r = st.result;
  if (st.next_create < r.create.size()) {
    // The object as the step made it, stamped with this process's clock (the order of runs
    // created within one second; see k_created_annotation).
    auto obj = r.create[st.next_create++];
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    if (auto* md = obj.at("metadata"); md != nullptr && md->is_object()) {
      auto& m = md->as_object();
      if (auto* a = m.find("annotations"); a == nullptr || !a->is_object())
        m["annotations"] = json::value(json::object{});
      m["annotations"].as_object()[std::string(k_created_annotation)] = std::to_string(us);
    }
    api(
        self,
        [&](auto cb) {
          st.ctx->client->create(bucket_syncs_resource(), st.ns, obj, std::move(cb));
        },
        [self](const api_reply& reply) {
          if (!reply.ok && reply.error_code() != errc::already_exists)
            return fail_transient(self, "creating a BucketSync", reply);
          policy_continue(self);
        });
    return;
  }
  if (st.next_remove < r.remove.size()) {
    auto name = r.remove[st.next_remove++];
    k8s::delete_options opts;
    opts.propagation_policy = "Background";
    api(
        self,
        [&](auto cb) {
          st.ctx->client->remove(bucket_syncs_resource(), st.ns, name, opts, std::move(cb));
        },
        [self](const api_reply& reply) {
          if (!reply.ok && reply.error_code() != errc::not_found)
            return fail_transient(self, "deleting an old BucketSync", reply);
          policy_continue(self);
        });
    return;
  }
  policy_write_status(self);
}

void policy_write_status(pself self) {
  auto& st = self->state;
  if (!st.result.status_changed) return policy_after_status(self);
  json::value patch(json::object{{"status", config::to_json(st.result.status)}});
  api(
      self,
      [&](auto cb) {
        st.ctx->client->patch_status(bucket_sync_policies_resource(), st.ns, st.name_,
                                     k8s::patch_type::merge, patch, std::move(cb));
      },
      [self](const api_reply& reply) {
        auto& st = self->state;
        if (!reply.ok) {
          if (reply.error_code() == errc::not_found)
            return finish(self, reconcile_outcome::success());
          return fail_transient(self, "writing the status", reply);
        }
        auto obj = reply.object();
        auto rv = obj.at_path({"metadata", "resourceVersion"});
        auto uid = obj.at_path({"metadata", "uid"});
        st.written_rv = rv && rv->is_string() ? rv->as_string() : std::string{};
        st.written_uid = uid && uid->is_string() ? uid->as_string() : std::string{};
        st.written_status = st.result.status;
        policy_after_status(self);
      });
}

void policy_after_status(pself self) {
  auto& st = self->state;
  auto emit = [self] {
    auto& st = self->state;
    auto handle = st.ctx->policies->cache().get(st.key);
    event_subject about{std::string(config::k_api_version),
                        std::string(config::k_bucket_sync_policy_kind),
                        st.ns,
                        st.name_,
                        handle ? handle->meta.uid : std::string{},
                        {}};
    auto now = st.ctx->now();
    for (const auto& ev : st.result.events)
      send_event(st.ctx->events_client(), about, ev.type, ev.reason, ev.message, now);
    finish(self, st.result.outcome);
  };
  if (!st.result.remove_sync_now_annotation) return emit();
  json::value patch(json::object{
      {"metadata",
       json::value(json::object{
           {"annotations",
            json::value(json::object{{std::string(config::k_sync_now_annotation), nullptr}})}})}});
  api(
      self,
      [&](auto cb) {
        st.ctx->client->patch(bucket_sync_policies_resource(), st.ns, st.name_,
                              k8s::patch_type::merge, patch, std::move(cb));
      },
      [self, emit](const api_reply& reply) {
        if (!reply.ok && reply.error_code() != errc::not_found)
          return fail_transient(self, "removing the sync-now annotation", reply);
        emit();
      });
}

void policy_reconcile(pself self) {
  auto& st = self->state;
  st.running = true;
  auto handle = st.ctx->policies->cache().get(st.key);
  if (!handle) return finish(self, reconcile_outcome::success());  // children go by GC
  auto doc = handle->parse();
  if (!doc)
    return finish(self, reconcile_outcome::terminal("unreadable object: " + doc.error().message));
  if (st.written_status && st.written_uid == handle->meta.uid && !st.written_rv.empty() &&
      watch::compare_resource_versions(handle->meta.resource_version, st.written_rv) == -1) {
    (*doc)["status"] = config::to_json(*st.written_status);
  } else {
    st.written_status.reset();
  }
  std::vector<policy_child> children;
  for (const auto& child : st.ctx->bucket_syncs->cache().list_namespace(st.ns)) {
    auto cdoc = child->parse();
    if (!cdoc) continue;
    const auto* refs = cdoc->at_path({"metadata", "ownerReferences"});
    bool ours = false;
    if (refs && refs->is_array())
      for (const auto& ref : refs->as_array())
        if (ref.get_bool("controller") && ref.get_string("uid") == handle->meta.uid) ours = true;
    if (ours) children.push_back(child_from(*cdoc));
  }
  st.result = policy_step(*doc, children, st.ctx->now(), st.ctx->zoneinfo_root);
  st.next_create = 0;
  st.next_remove = 0;
  policy_continue(self);
}

}  // namespace

resource_actor::behavior_type policy_actor(pself self, std::string key,
                                           std::shared_ptr<const controller_context> ctx,
                                           controller_actor controller) {
  auto& st = self->state;
  std::tie(st.ns, st.name_) = split_key(key);
  st.key = std::move(key);
  st.ctx = std::move(ctx);
  st.controller = std::move(controller);
  return {
      [self](atom::run, uint32_t) {
        if (self->state.running) return;
        policy_reconcile(self);
      },
      [self](atom::api, const api_reply& reply) { self->state.calls.resume(reply); },
  };
}

}  // namespace tidesync::actors
