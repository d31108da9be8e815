#include "actors/pfs_status.hpp"

#include <caf/all.hpp>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "actors/events.hpp"
#include "actors/pfs_logic.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics/metrics.hpp"
#include "runtime/rfc3339.hpp"
#include "runtime/webhook/tls_secret.hpp"

namespace tidesync::actors {
namespace {

constexpr std::chrono::seconds k_secret_recheck{10};
constexpr const char* k_recheck = "recheck";

struct status_state {
  static constexpr const char* name = "pfs_status";
  pfs_status_settings settings;
  std::set<std::string> rechecking;  // keys with a recheck timer armed
  // What the Secrets looked like, per key, and for which generation: a pod's change (every
  // report is one) reuses it instead of reading the Secrets again.
  struct seen_secrets {
    int64_t generation = 0;
    std::chrono::steady_clock::time_point at;
    pfs_secrets secrets;
  };
  std::map<std::string, seen_secrets> secrets;
};

using self_ptr = listener_actor::stateful_pointer<status_state>;

config::sys_seconds now_seconds() {
  return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
}

k8s::client& events_client(const pfs_status_settings& s) {
  return s.events != nullptr ? *s.events : *s.client;
}

event_subject subject_of(const watch::object_meta& m, const json::value& doc) {
  event_subject e;
  e.api_version = "tidesync.io/v1alpha1";
  e.kind = "PodFilesystemSync";
  e.ns = m.ns;
  e.name = m.name;
  e.uid = std::string(
      doc.at_path({"metadata", "uid"}) ? doc.at_path({"metadata", "uid"})->as_string() : "");
  e.resource_version = m.resource_version;
  return e;
}

// The Secrets the spec names: which are missing, and whether the key Secret is usable (created
// here when absent).
pfs_secrets look_at_secrets(self_ptr self, const config::podfilesystemsync& s,
                            const event_subject& about) {
  auto& st = self->state;
  auto& client = *st.settings.client;
  pfs_secrets out;
  const auto& ns = s.metadata.namespace_;
  for (const auto& name : s.spec.env_from_secret) {
    auto got = client.get_sync(k8s::resources::secrets(), ns, name);
    if (!got && got.error().code == errc::not_found) out.missing.push_back(name);
  }
  if (!s.spec.encryption.enabled) return out;
  const auto& name = s.spec.encryption.secret_name;
  auto got = client.get_sync(k8s::resources::secrets(), ns, name);
  if (!got && got.error().code == errc::not_found) {
    auto made = client.create_sync(k8s::resources::secrets(), ns,
                                   new_encryption_secret(ns, name, s.metadata.name));
    if (made) {
      log::get("pfs")->info("PodFilesystemSync {}/{}: created the encryption key Secret {}", ns,
                            s.metadata.name, name);
      send_event(events_client(st.settings), about, "Normal", "EncryptionKeyCreated",
                 "created Secret " + name +
                     " with a new encryption key: back it up; without it the remote's data "
                     "cannot be decrypted",
                 now_seconds());
      got = std::move(made);
    } else if (made.error().code == errc::already_exists) {
      got = client.get_sync(k8s::resources::secrets(), ns, name);
    } else {
      out.encryption_problem = "cannot create the encryption key Secret " + name + ": " +
                               made.error().message +
                               " (the controller needs create on Secrets in this namespace)";
      return out;
    }
  }
  if (!got) {
    out.encryption_problem =
        "cannot read the encryption key Secret " + name + ": " + got.error().message;
    return out;
  }
  out.encryption_problem = check_encryption_secret(*got);
  return out;
}

// Writes `next` unless `cur` (the status as read) already says the same. Compared as values, not
// as text: the API server re-serialises what it stores.
void write_status(self_ptr self, const watch::object_meta& m,
                  const config::podfilesystemsync_status& cur,
                  const config::podfilesystemsync_status& next) {
  if (cur.observed_generation == next.observed_generation && cur.conditions == next.conditions &&
      cur.pods == next.pods && cur.last_sync == next.last_sync)
    return;
  json::value patch(json::object{{"status", config::to_json(next)}});
  auto r = self->state.settings.client->patch_status_sync(podfilesystemsyncs_resource(), m.ns,
                                                          m.name, k8s::patch_type::merge, patch);
  if (!r && r.error().code != errc::not_found)
    log::get("pfs")->warn("PodFilesystemSync {}/{}: writing its status: {}", m.ns, m.name,
                          r.error().message);
}

// Warning Events when a condition turns bad (once per transition, not per reconcile).
void events_for(self_ptr self, const event_subject& about,
                const std::vector<config::condition>& before,
                const std::vector<config::condition>& after) {
  for (const char* type : {"Ready", "PodsSelected", "Synced"}) {
    const auto* a = config::find_condition(after, type);
    if (a == nullptr || a->status != "False") continue;
    const auto* b = config::find_condition(before, type);
    if (b != nullptr && b->status == a->status && b->reason == a->reason) continue;
    send_event(events_client(self->state.settings), about, "Warning", a->reason, a->message,
               now_seconds());
  }
}

constexpr std::chrono::seconds k_secrets_fresh{60};

void reconcile(self_ptr self, const std::string& key, bool pod_change = false) {
  auto& st = self->state;
  if (!st.settings.leading()) return;
  auto h = st.settings.syncs->cache().get(key);
  if (!h || h->meta.deleting) {
    st.secrets.erase(key);
    return;
  }
  auto doc = h->parse();
  if (!doc) return;
  const auto about = subject_of(h->meta, *doc);
  auto parsed = config::parse_podfilesystemsync(*doc);
  if (!parsed) {
    config::podfilesystemsync_status cur;
    config::problems ignored;
    const auto* s = doc->at("status");
    if (s != nullptr && s->is_object()) {
      cur.conditions = config::parse_conditions(s->at("conditions"), "", ignored);
      cur.observed_generation = s->get_int("observedGeneration");
    }
    auto next = cur;  // which pods it selects is unknown while the spec is invalid: none listed
    const auto& before = cur.conditions;
    const int64_t gen = doc->at_path({"metadata", "generation"})
                            ? doc->at_path({"metadata", "generation"})->as_int()
                            : 0;
    next.observed_generation = gen;
    config::set_condition(
        next.conditions,
        config::make_condition("Ready", "False", "InvalidSpec", parsed.error().message, gen),
        now_seconds());
    events_for(self, about, before, next.conditions);
    return write_status(self, h->meta, cur, next);
  }
  auto& seen = st.secrets[key];
  const auto now = std::chrono::steady_clock::now();
  if (!pod_change || seen.generation != parsed->metadata.generation ||
      now - seen.at >= k_secrets_fresh) {
    seen.secrets = look_at_secrets(self, *parsed, about);
    seen.generation = parsed->metadata.generation;
    seen.at = now;
  }
  const auto secrets = seen.secrets;
  std::vector<json::value> pods;
  for (const auto& p : st.settings.pods->cache().list_namespace(h->meta.ns))
    if (auto pd = p->parse()) pods.push_back(std::move(*pd));
  auto next = pfs_status(*parsed, pods, secrets, now_seconds());
  events_for(self, about, parsed->status.conditions, next.conditions);
  if (st.settings.metrics) {
    double injected = 0, not_injected = 0;
    for (const auto& p : next.pods)
      (p.injected ? injected : not_injected) += 1;
    st.settings.metrics->pfs_pods(h->meta.ns, h->meta.name, injected, not_injected);
  }
  write_status(self, h->meta, parsed->status, next);
  if ((!secrets.missing.empty() || !secrets.encryption_problem.empty()) &&
      st.rechecking.insert(key).second)
    self->delayed_send(self, k_secret_recheck, atom::changed_v, std::string(k_recheck), key);
}

listener_actor::behavior_type status_actor(self_ptr self, pfs_status_settings s) {
  self->state.settings = std::move(s);
  return {
      [self](atom::changed, const std::string& resource, const std::string& key) {
        auto& st = self->state;
        if (resource == k_recheck) st.rechecking.erase(key);
        if (resource != "pods") return reconcile(self, key);
        // A pod changed: every PodFilesystemSync of its namespace may select it.
        auto ns = key.substr(0, key.find('/'));
        for (const auto& h : st.settings.syncs->cache().list_namespace(ns))
          reconcile(self, h->meta.ns + "/" + h->meta.name, true);
      },
  };
}

}  // namespace

listener_actor spawn_pfs_status(caf::actor_system& sys, pfs_status_settings settings) {
  return sys.spawn<caf::detached>(status_actor, std::move(settings));
}

config::pod_decider make_pfs_decider(std::shared_ptr<watched> syncs,
                                     config::injection_settings settings) {
  return [syncs = std::move(syncs), settings = std::move(settings)](const json::value& pod,
                                                                    const std::string& ns) {
    std::vector<config::podfilesystemsync> list;
    for (const auto& h : syncs->cache().list_namespace(ns)) {
      if (h->meta.deleting) continue;
      auto doc = h->parse();
      if (!doc) continue;
      if (auto s = config::parse_podfilesystemsync(*doc)) list.push_back(std::move(*s));
    }
    auto d = config::decide_injection(pod, list, settings, webhook::random_hex(8));
    if (d.what == config::injection_decision::kind::refuse)
      log::get("pfs")->info("refused a pod of namespace {}: {}", ns, d.message);
    return d;
  };
}

webhook::post_handler make_report_handler(k8s::client& client, std::string report_key,
                                          std::shared_ptr<metrics::registry> metrics) {
  return [&client, key = std::move(report_key), metrics = std::move(metrics)](
             const json::value& body, const std::string& authorization) {
    auto answer = [](int status, std::string message) {
      return webhook::post_answer{status,
                                  json::value(json::object{{"message", std::move(message)}})};
    };
    auto report = parse_pfs_report(body);
    if (!report) return answer(400, report.error().message);
    const std::string bearer = "Bearer ";
    if (authorization.rfind(bearer, 0) != 0)
      return answer(401, "a report needs Authorization: Bearer <the pod's token>");
    auto id = webhook::check_report_token(key, authorization.substr(bearer.size()), report->ns,
                                          report->pfs);
    if (!id) return answer(401, "the token was not granted for this PodFilesystemSync");
    auto pod = client.get_sync(k8s::resources::pods(), report->ns, report->pod);
    if (!pod) {
      if (pod.error().code == errc::not_found) return answer(404, "no such pod");
      return answer(503, "cannot read the pod now; report again later");
    }
    const auto* have = pod->at_path({"metadata", "annotations", config::k_report_id_annotation});
    if (have == nullptr || !have->is_string() || have->as_string() != *id)
      return answer(403, "the token was granted to another pod");
    if (metrics) {
      auto end = report->sync.last_sync_time.value_or(config::sys_seconds{});
      metrics->pfs_report(report->ns, report->pfs, report->sync.kind, report->sync.result,
                          static_cast<double>(report->sync.bytes),
                          static_cast<double>(end.time_since_epoch().count()));
    }
    json::value patch(json::object{
        {"metadata",
         json::object{{"annotations", json::object{{k_last_sync_annotation,
                                                    last_sync_annotation(report->sync)}}}}}});
    auto r = client.patch_sync(k8s::resources::pods(), report->ns, report->pod,
                               k8s::patch_type::merge, patch);
    if (!r) {
      if (r.error().code == errc::not_found) return answer(404, "no such pod");
      return answer(503, "cannot record the report now: " + r.error().message);
    }
    return answer(202, "recorded");
  };
}

}  // namespace tidesync::actors
