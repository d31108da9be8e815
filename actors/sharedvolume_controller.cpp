#include "actors/sharedvolume_controller.hpp"

#include <caf/all.hpp>
#include <chrono>
#include <map>
#include <set>
#include <utility>

#include "actors/events.hpp"
#include "actors/sharedvolume_logic.hpp"
#include "config/admission.hpp"
#include "runtime/log.hpp"
#include "runtime/rfc3339.hpp"
#include "runtime/webhook/tls_secret.hpp"

namespace tidesync::actors {
namespace {

constexpr const char* k_recheck = "recheck";
constexpr std::chrono::seconds k_recheck_after{10};

std::shared_ptr<spdlog::logger> logger() {
  return log::get("sharedvolume");
}

config::sys_seconds now_seconds() {
  return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
}

const k8s::resource& kind_resource(bool cluster) {
  static const auto sv = sharedvolumes_resource();
  static const auto csv = clustersharedvolumes_resource();
  return cluster ? csv : sv;
}

k8s::resource deployments() {
  return {"apps", "v1", "deployments", "Deployment", true};
}
k8s::resource services() {
  return {"", "v1", "services", "Service", true};
}
k8s::resource persistentvolumes() {
  return {"", "v1", "persistentvolumes", "PersistentVolume", false};
}

// "SharedVolume/ns/name" or "ClusterSharedVolume/name": the key the actor reconciles.
std::string key_of(const config::volume_ref& r) {
  return r.cluster ? "ClusterSharedVolume/" + r.name : "SharedVolume/" + r.ns + "/" + r.name;
}
std::optional<config::volume_ref> ref_from_key(const std::string& key) {
  if (key.rfind("ClusterSharedVolume/", 0) == 0)
    return config::volume_ref{true, "", key.substr(20)};
  if (key.rfind("SharedVolume/", 0) == 0) {
    auto rest = key.substr(13);
    auto slash = rest.find('/');
    if (slash == std::string::npos) return std::nullopt;
    return config::volume_ref{false, rest.substr(0, slash), rest.substr(slash + 1)};
  }
  return std::nullopt;
}

struct state {
  static constexpr const char* name = "sharedvolume_controller";
  sharedvolume_settings s;
  std::map<std::string, std::string> key_by_id;  // volume_id label value → key
  std::set<std::string> rechecking;
};
using self_ptr = listener_actor::stateful_pointer<state>;

k8s::client& events_client(const sharedvolume_settings& s) {
  return s.events != nullptr ? *s.events : *s.client;
}

// Creates `want` when missing; replaces its spec when our hash of it changed. Returns the object
// as it is in the cluster (null when it could not be read or written: logged).
void ensure(self_ptr self, const k8s::resource& res, const json::value& want,
            const std::shared_ptr<watched>& cache) {
  auto& client = *self->state.s.client;
  const std::string ns(want.at_path({"metadata", "namespace"})
                           ? want.at_path({"metadata", "namespace"})->as_string()
                           : "");
  const std::string name(want.at_path({"metadata", "name"})->as_string());
  const std::string hash(
      want.at_path({"metadata", "annotations", config::k_spec_hash_annotation})->as_string());
  std::optional<json::value> have;
  if (cache) {
    if (auto h = cache->cache().get(ns, name))
      if (auto d = h->parse()) have = std::move(*d);
  } else if (auto got = client.get_sync(res, ns, name)) {
    have = std::move(*got);
  }
  if (!have) {
    auto c = client.create_sync(res, ns, want);
    if (!c && c.error().code != errc::already_exists)
      logger()->warn("creating {} {}/{}: {}", res.kind, ns, name, c.error().message);
    return;
  }
  const auto* cur = have->at_path({"metadata", "annotations", config::k_spec_hash_annotation});
  if (cur != nullptr && cur->is_string() && cur->as_string() == hash) return;
  // Ours, changed: put our spec and annotations back (a merge patch keeps what others added).
  json::value patch(json::object{
      {"metadata", json::object{{"annotations", *want.at_path({"metadata", "annotations"})},
                                {"labels", *want.at_path({"metadata", "labels"})}}}});
  if (const auto* spec = want.at("spec")) patch.as_object().set("spec", *spec);
  auto u = client.patch_sync(res, ns, name, k8s::patch_type::merge, patch);
  if (!u) logger()->warn("updating {} {}/{}: {}", res.kind, ns, name, u.error().message);
}

void remove(self_ptr self, const k8s::resource& res, const std::string& ns,
            const std::string& name) {
  auto r = self->state.s.client->remove_sync(res, ns, name, {"Background", "", ""});
  if (!r && r.error().code != errc::not_found)
    logger()->warn("deleting {} {}/{}: {}", res.kind, ns, name, r.error().message);
}

bool deployment_available(const json::value& d) {
  if (const auto* cs = d.at_path({"status", "conditions"}); cs && cs->is_array())
    for (const auto& c : cs->as_array())
      if (c.get_string("type") == "Available") return c.get_string("status") == "True";
  return false;
}

// The consumer claims of `r` by namespace, with their creation time.
std::map<std::string, std::optional<config::sys_seconds>> consumer_claims(
    self_ptr self, const config::volume_ref& r) {
  std::map<std::string, std::optional<config::sys_seconds>> out;
  const auto id = config::volume_id(r);
  const auto want_name = config::consumer_claim_name(r);
  for (const auto& h : self->state.s.claims->cache().select(
           {{std::string(config::k_shared_volume_id_label), id}})) {
    if (h->meta.name != want_name) continue;  // the NFS server's own claim
    auto doc = h->parse();
    std::optional<config::sys_seconds> created;
    if (doc)
      if (const auto* t = doc->at_path({"metadata", "creationTimestamp"}); t && t->is_string())
        created = rfc3339::parse(t->as_string());
    out[h->meta.ns] = created;
  }
  return out;
}

void write_status(self_ptr self, const config::sharedvolume& v,
                  const config::sharedvolume_status& next) {
  const auto& cur = v.status;
  if (cur.phase == next.phase && cur.observed_generation == next.observed_generation &&
      cur.conditions == next.conditions && cur.nfs_server == next.nfs_server &&
      cur.nfs_path == next.nfs_path && cur.consumers == next.consumers)
    return;
  // Only what the controller owns: the sync fields are the reports'.
  auto full = config::to_json(next);
  json::object st;
  for (const char* k : {"phase", "observedGeneration", "conditions", "nfs", "consumers"})
    st.set(k, *full.at(k));
  auto r = self->state.s.client->patch_status_sync(
      kind_resource(v.cluster), v.cluster ? "" : v.metadata.namespace_, v.metadata.name,
      k8s::patch_type::merge, json::value(json::object{{"status", std::move(st)}}));
  if (!r && r.error().code != errc::not_found)
    logger()->warn("{}: writing its status: {}", config::to_string(config::ref_of(v)),
                   r.error().message);
}

void event(self_ptr self, const config::sharedvolume& v, const char* type, const char* reason,
           const std::string& message) {
  event_subject e;
  e.api_version = "tidesync.io/v1alpha1";
  e.kind =
      std::string(v.cluster ? config::k_cluster_sharedvolume_kind : config::k_sharedvolume_kind);
  e.ns = v.cluster ? self->state.s.objects.controller_namespace : v.metadata.namespace_;
  e.name = v.metadata.name;
  e.uid = v.metadata.uid;
  e.resource_version = v.metadata.resource_version;
  send_event(events_client(self->state.s), e, type, reason, message, now_seconds());
}

void recheck_later(self_ptr self, const std::string& key) {
  if (self->state.rechecking.insert(key).second)
    self->delayed_send(self, k_recheck_after, atom::changed_v, std::string(k_recheck), key);
}

std::vector<json::value> consumer_pods(self_ptr self) {
  std::vector<json::value> pods;
  for (const auto& h : self->state.s.consumers->cache().list())
    if (auto d = h->parse()) pods.push_back(std::move(*d));
  return pods;
}

void reconcile(self_ptr self, const std::string& key) {
  auto& st = self->state;
  if (!st.s.leading()) return;
  auto ref = ref_from_key(key);
  if (!ref) return;
  const auto& source = ref->cluster ? st.s.cluster_volumes : st.s.volumes;
  auto h = ref->cluster ? source->cache().get(ref->name) : source->cache().get(ref->ns, ref->name);
  if (!h) return;  // gone: its finalizer was removed after cleanup
  auto doc = h->parse();
  if (!doc) return;
  const auto id = config::volume_id(*ref);
  st.key_by_id[id] = key;
  auto& client = *st.s.client;
  const auto& res = kind_resource(ref->cluster);
  const std::string obj_ns = ref->cluster ? "" : ref->ns;
  auto parsed = config::parse_sharedvolume(*doc);
  if (!parsed) {
    config::sharedvolume bare;
    bare.cluster = ref->cluster;
    bare.metadata.name = ref->name;
    bare.metadata.namespace_ = ref->ns;
    config::problems ignored;
    if (const auto* s = doc->at("status"); s && s->is_object())
      bare.status.conditions = config::parse_conditions(s->at("conditions"), "", ignored);
    auto next = bare.status;
    const int64_t gen = doc->at_path({"metadata", "generation"})
                            ? doc->at_path({"metadata", "generation"})->as_int()
                            : 0;
    next.observed_generation = gen;
    next.phase = "Failed";
    auto before = next.conditions;
    config::set_condition(
        next.conditions,
        config::make_condition("Ready", "False", "InvalidSpec", parsed.error().message, gen),
        now_seconds());
    if (before != next.conditions)
      event(self, bare, "Warning", "InvalidSpec", parsed.error().message);
    write_status(self, bare, next);
    return;
  }
  auto& v = *parsed;
  const auto consumers = consumers_of(*ref, consumer_pods(self));
  const std::string server_ns = config::server_namespace(*ref, st.s.objects);
  const std::string base = config::object_base(*ref);
  const bool has_finalizer = [&] {
    if (const auto* f = doc->at_path({"metadata", "finalizers"}); f && f->is_array())
      for (const auto& x : f->as_array())
        if (x.is_string() && x.as_string() == config::k_shared_volume_finalizer) return true;
    return false;
  }();

  if (v.metadata.deletion_timestamp) {
    const bool force = v.metadata.annotations.count("tidesync.io/force-delete") != 0 &&
                       v.metadata.annotations.at("tidesync.io/force-delete") == "true";
    volume_observation o;
    o.consumers = consumers;
    o.server_ready = true;
    auto next = volume_status(v, o, config::nfs_address(v, st.s.objects), now_seconds());
    write_status(self, v, next);
    if (!consumers.empty() && !force) return;  // pod changes wake us
    remove(self, deployments(), server_ns, base + "-syncer");
    if (!v.spec.storage.external) {
      remove(self, deployments(), server_ns, base + "-nfs");
      remove(self, services(), server_ns, base + "-nfs");
      remove(self, k8s::resources::persistentvolumeclaims(), server_ns, base + "-nfs-data");
    }
    for (const auto& [ns, created] : consumer_claims(self, *ref)) {
      remove(self, k8s::resources::persistentvolumeclaims(), ns, config::consumer_claim_name(*ref));
      remove(self, persistentvolumes(), "", config::consumer_pv_name(*ref, ns));
    }
    if (has_finalizer) {
      json::array keep;
      for (const auto& x : doc->at_path({"metadata", "finalizers"})->as_array())
        if (!(x.is_string() && x.as_string() == config::k_shared_volume_finalizer))
          keep.push_back(x);
      json::value patch(json::object{
          {"metadata", json::object{{"finalizers", std::move(keep)},
                                    {"resourceVersion", v.metadata.resource_version}}}});
      auto r = client.patch_sync(res, obj_ns, v.metadata.name, k8s::patch_type::merge, patch);
      if (!r && r.error().code != errc::not_found && r.error().code != errc::conflict)
        logger()->warn("{}: removing its finalizer: {}", config::to_string(*ref),
                       r.error().message);
      else if (r)
        logger()->info("{}: deleted with its server, syncer and claims", config::to_string(*ref));
    }
    return;
  }

  if (!has_finalizer) {
    json::array fins;
    if (const auto* f = doc->at_path({"metadata", "finalizers"}); f && f->is_array())
      fins = f->as_array();
    fins.push_back(json::value(std::string(config::k_shared_volume_finalizer)));
    json::value patch(
        json::object{{"metadata", json::object{{"finalizers", std::move(fins)},
                                               {"resourceVersion", v.metadata.resource_version}}}});
    auto r = client.patch_sync(res, obj_ns, v.metadata.name, k8s::patch_type::merge, patch);
    if (!r) {
      if (r.error().code != errc::conflict && r.error().code != errc::not_found)
        logger()->warn("{}: adding its finalizer: {}", config::to_string(*ref), r.error().message);
      return;  // the write's event (or the newer object's) wakes us again
    }
  }

  // The NFS server (dynamic storage) and whether it is available.
  volume_observation o;
  o.consumers = consumers;
  if (const auto& secret = v.spec.source.secret_name; !secret.empty()) {
    auto got = client.get_sync(k8s::resources::secrets(), server_ns, secret);
    if (!got && got.error().code == errc::not_found) {
      o.missing_secret = server_ns + "/" + secret;
      recheck_later(self, key);  // Secrets are not watched
    }
  }
  if (!v.spec.storage.external) {
    ensure(self, k8s::resources::persistentvolumeclaims(), config::build_nfs_claim(v, st.s.objects),
           nullptr);
    ensure(self, services(), config::build_nfs_service(v, st.s.objects), nullptr);
    ensure(self, deployments(), config::build_nfs_deployment(v, st.s.objects), st.s.deployments);
    if (auto d = st.s.deployments->cache().get(server_ns, base + "-nfs"))
      if (auto dd = d->parse()) o.server_ready = deployment_available(*dd);
    if (!o.server_ready)
      o.server_message =
          "waiting for Deployment " + server_ns + "/" + base + "-nfs to be available";
  }
  // The syncer, once there is somewhere to write.
  if (v.spec.storage.external || o.server_ready) {
    auto objects = st.s.objects;
    objects.report_token = volume_report_token(st.s.report_key, *ref);
    std::string generation = std::to_string(v.metadata.generation);
    if (auto it = v.metadata.annotations.find("tidesync.io/sync-now");
        it != v.metadata.annotations.end())
      generation += "/" + it->second;
    ensure(self, deployments(), config::build_syncer_deployment(v, objects, generation),
           st.s.deployments);
  }
  // Claims of namespaces nobody there mounts any more.
  auto claims = consumer_claims(self, *ref);
  for (const auto& ns : claims_to_remove(claims, consumers, now_seconds(), st.s.claim_grace)) {
    logger()->info("{}: no pod of namespace {} mounts it: removing its claim",
                   config::to_string(*ref), ns);
    remove(self, k8s::resources::persistentvolumeclaims(), ns, config::consumer_claim_name(*ref));
    remove(self, persistentvolumes(), "", config::consumer_pv_name(*ref, ns));
  }
  for (const auto& [ns, created] : claims)
    if (consumers.count(ns) == 0) recheck_later(self, key);  // its grace ends later

  auto next = volume_status(v, o, config::nfs_address(v, st.s.objects), now_seconds());
  for (const char* type : {"Ready", "Synced"}) {
    const auto* a = config::find_condition(next.conditions, type);
    const auto* b = config::find_condition(v.status.conditions, type);
    if (a && a->status == "False" && (!b || b->reason != a->reason) &&
        a->reason != "ServerNotReady" && a->reason != "WaitingForFirstSync")
      event(self, v, "Warning", a->reason.c_str(), a->message);
  }
  write_status(self, v, next);
}

listener_actor::behavior_type controller_actor_fn(self_ptr self, sharedvolume_settings s) {
  self->state.s = std::move(s);
  return {
      [self](atom::changed, const std::string& resource, const std::string& key) {
        auto& st = self->state;
        if (resource == k_recheck) {
          st.rechecking.erase(key);
          return reconcile(self, key);
        }
        if (resource == "sharedvolumes") {
          auto slash = key.find('/');
          return reconcile(self, key_of({false, key.substr(0, slash), key.substr(slash + 1)}));
        }
        if (resource == "clustersharedvolumes") return reconcile(self, key_of({true, "", key}));
        if (resource == "pods") {
          // Every volume (a pod's annotations may have named any, and a deleted pod has none left).
          std::vector<std::string> keys;
          for (const auto& h : st.s.volumes->cache().list())
            keys.push_back(key_of({false, h->meta.ns, h->meta.name}));
          for (const auto& h : st.s.cluster_volumes->cache().list())
            keys.push_back(key_of({true, "", h->meta.name}));
          for (const auto& k : keys)
            reconcile(self, k);
          return;
        }
        // An owned Deployment or claim: its volume by the label.
        const auto& w = resource == "deployments" ? st.s.deployments : st.s.claims;
        auto h = w->cache().get(key);
        if (!h) return;
        for (const auto& [k, val] : h->meta.labels)
          if (k == config::k_shared_volume_id_label)
            if (auto it = st.key_by_id.find(val); it != st.key_by_id.end())
              return reconcile(self, it->second);
      },
  };
}

}  // namespace

listener_actor spawn_sharedvolume_controller(caf::actor_system& sys, sharedvolume_settings s) {
  return sys.spawn<caf::detached>(controller_actor_fn, std::move(s));
}

std::string volume_report_token(const std::string& report_key, const config::volume_ref& r) {
  return webhook::report_token(
      report_key, r.ns,
      r.cluster ? config::k_cluster_sharedvolume_kind : config::k_sharedvolume_kind, r.name);
}

webhook::post_handler make_volume_report_handler(k8s::client& client, std::string report_key) {
  return [&client, key = std::move(report_key)](const json::value& body,
                                                const std::string& authorization) {
    auto answer = [](int status, std::string message) {
      return webhook::post_answer{status,
                                  json::value(json::object{{"message", std::move(message)}})};
    };
    auto report = parse_volume_report(body);
    if (!report) return answer(400, report.error().message);
    const std::string bearer = "Bearer ";
    if (authorization.rfind(bearer, 0) != 0)
      return answer(401, "a report needs Authorization: Bearer <the syncer's token>");
    const auto& r = report->ref;
    auto name = webhook::check_report_token(
        key, authorization.substr(bearer.size()), r.ns,
        r.cluster ? config::k_cluster_sharedvolume_kind : config::k_sharedvolume_kind);
    if (!name || *name != r.name) return answer(401, "the token was not granted for this volume");
    auto p = client.patch_status_sync(kind_resource(r.cluster), r.ns, r.name,
                                      k8s::patch_type::merge, volume_report_patch(*report));
    if (!p) {
      if (p.error().code == errc::not_found) return answer(404, "no such volume");
      return answer(503, "cannot record the report now: " + p.error().message);
    }
    return answer(202, "recorded");
  };
}

webhook::review_handler make_mount_handler(k8s::client& client, std::shared_ptr<watched> volumes,
                                           std::shared_ptr<watched> cluster_volumes,
                                           config::volume_settings objects) {
  return [&client, volumes = std::move(volumes), cluster_volumes = std::move(cluster_volumes),
          objects = std::move(objects)](const json::value& review) -> expected<json::value> {
    return config::answer_admission_review(
        review, [&](const json::value& pod, const std::string& ns) {
          config::injection_decision out;
          std::map<config::volume_ref, config::sharedvolume> found;
          auto find = [&](const config::volume_ref& r) -> const config::sharedvolume* {
            if (auto it = found.find(r); it != found.end()) return &it->second;
            const auto& w = r.cluster ? cluster_volumes : volumes;
            auto h = r.cluster ? w->cache().get(r.name) : w->cache().get(r.ns, r.name);
            if (!h) return nullptr;
            auto doc = h->parse();
            if (!doc) return nullptr;
            auto v = config::parse_sharedvolume(*doc);
            if (!v) return nullptr;
            return &found.emplace(r, std::move(*v)).first->second;
          };
          auto d = config::decide_mounts(pod, ns, find);
          switch (d.what) {
            case config::mount_decision::kind::untouched:
              out.message.clear();  // not ours: no admission warning
              return out;
            case config::mount_decision::kind::refuse:
              out.what = config::injection_decision::kind::refuse;
              out.message = d.message;
              return out;
            case config::mount_decision::kind::patch:
              break;
          }
          // The claim and its PV in the pod's namespace, before the pod can ask for them; not
          // for a dry run (kubectl apply --dry-run=server): the webhook is registered as
          // sideEffects NoneOnDryRun, so it makes nothing then.
          const auto* dry = review.at_path({"request", "dryRun"});
          if (dry != nullptr && dry->is_bool() && dry->as_bool()) {
            out.what = config::injection_decision::kind::patch;
            out.patch = std::move(d.patch);
            return out;
          }
          for (const auto* v : d.uses) {
            const auto r = config::ref_of(*v);
            for (auto [res, obj] :
                 {std::pair{k8s::resource{"", "v1", "persistentvolumes", "PersistentVolume", false},
                            config::build_consumer_pv(*v, objects, ns)},
                  std::pair{k8s::resources::persistentvolumeclaims(),
                            config::build_consumer_claim(*v, ns)}}) {
              auto c = client.create_sync(res, res.namespaced ? ns : "", obj);
              if (!c && c.error().code != errc::already_exists) {
                out.what = config::injection_decision::kind::refuse;
                out.message = "cannot make the " + res.kind + " for " + config::to_string(r) +
                              " in namespace " + ns + ": " + c.error().message + "; retry";
                return out;
              }
            }
          }
          out.what = config::injection_decision::kind::patch;
          out.patch = std::move(d.patch);
          return out;
        });
  };
}

}  // namespace tidesync::actors
