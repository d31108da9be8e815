#include "actors/sharedconfig_status.hpp"

#include <caf/all.hpp>
#include <chrono>
#include <set>
#include <string>
#include <utility>

#include "actors/config_api.hpp"
#include "config/sharedconfig.hpp"
#include "runtime/log.hpp"

namespace tidesync::actors {
namespace {

constexpr std::chrono::seconds k_retry{30};
constexpr const char* k_retry_resource = "retry";

struct status_state {
  static constexpr const char* name = "sharedconfig_status";
  sharedconfig_status_settings settings;
  std::set<std::string> retrying;  // keys with a retry timer armed
};

using self_ptr = listener_actor::stateful_pointer<status_state>;

std::string reason_for(errc code) {
  switch (code) {
    case errc::invalid:
    case errc::invalid_argument:
      return "InvalidSpec";
    case errc::config_error:
      return "InvalidStore";
    case errc::not_found:
      return "NotFound";
    default:
      return "StoreUnavailable";
  }
}

config::sys_seconds now_seconds() {
  return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
}

// Writes `next` when it differs from what the object shows.
void write_if_changed(self_ptr self, const std::string& key, const config::sharedconfig& obj,
                      config::sharedconfig_status next) {
  const auto& cur = obj.status;
  if (cur.revision == next.revision && cur.checksum == next.checksum &&
      cur.updated_at == next.updated_at && cur.size == next.size &&
      cur.observed_generation == next.observed_generation && cur.conditions == next.conditions)
    return;
  json::value patch(json::object{{"status", config::to_json(next)}});
  auto r = self->state.settings.client->patch_status_sync(
      sharedconfigs_resource(), obj.metadata.namespace_, obj.metadata.name, k8s::patch_type::merge,
      patch);
  if (!r && r.error().code != errc::not_found)
    log::get("configapi")->warn("SharedConfig {}: writing its status: {}", key, r.error().message);
}

void reconcile(self_ptr self, const std::string& key) {
  auto& st = self->state;
  if (!st.settings.leading()) return;
  auto h = st.settings.sharedconfigs->cache().get(key);
  if (!h || h->meta.deleting) return;
  auto doc = h->parse();
  if (!doc) return;
  auto obj_or = config::parse_sharedconfig(*doc);
  config::sharedconfig obj;
  config::sharedconfig_status next;
  if (obj_or) {
    obj = std::move(*obj_or);
    next = obj.status;
  } else {
    // Invalid: report the spec problem; keep what is known of the store.
    obj.metadata.namespace_ = h->meta.ns;
    obj.metadata.name = h->meta.name;
    if (const auto* g = doc->at_path({"metadata", "generation"}); g && g->is_int())
      obj.metadata.generation = g->as_int();
    if (const auto* s = doc->at("status"); s && s->is_object()) {
      config::problems ignored;
      obj.status.conditions = config::parse_conditions(s->at("conditions"), "", ignored);
      obj.status.revision = std::string(s->get_string("revision"));
      obj.status.checksum = std::string(s->get_string("checksum"));
      obj.status.size = s->get_int("size");
      obj.status.observed_generation = s->get_int("observedGeneration");
    }
    next = obj.status;
  }
  const auto gen = obj.metadata.generation;
  next.observed_generation = gen;
  auto set_ready = [&](std::string status, std::string reason, std::string message) {
    config::set_condition(next.conditions,
                          config::make_condition("Ready", std::move(status), std::move(reason),
                                                 std::move(message), gen),
                          now_seconds());
  };
  if (!obj_or) {
    set_ready("False", "InvalidSpec", obj_or.error().message);
    return write_if_changed(self, key, obj, std::move(next));
  }
  configapi::config_ref ref{h->meta.ns, h->meta.name};
  auto latest = st.settings.backend->latest(ref, std::nullopt, std::chrono::milliseconds(0));
  if (!latest) {
    const auto& e = latest.error();
    std::string reason = reason_for(e.code);
    if (reason == "InvalidStore" && e.message.find("does not exist") != std::string::npos)
      reason = "SecretNotFound";
    set_ready("False", reason, e.message);
    write_if_changed(self, key, obj, std::move(next));
    if (reason == "StoreUnavailable" && st.retrying.insert(key).second)
      self->delayed_send(self, k_retry, atom::changed_v, std::string(k_retry_resource), key);
    return;
  }
  if (!*latest) {
    next.revision.clear();
    next.checksum.clear();
    next.size = 0;
    next.updated_at.reset();
    set_ready("True", "Empty", "nothing is published yet; publish with `tidesync config publish`");
  } else {
    const auto& l = **latest;
    if (next.revision != l.revision) next.size = 0;  // known only for our own publishes
    next.revision = l.revision;
    next.checksum = l.checksum;
    next.updated_at = l.updated_at;
    set_ready("True", "Published", "revision " + l.revision + " is the latest");
  }
  write_if_changed(self, key, obj, std::move(next));
}

listener_actor::behavior_type status_actor(self_ptr self, sharedconfig_status_settings s) {
  self->state.settings = std::move(s);
  return {
      [self](atom::changed, const std::string& resource, const std::string& key) {
        if (resource == k_retry_resource) self->state.retrying.erase(key);
        reconcile(self, key);
      },
  };
}

}  // namespace

listener_actor spawn_sharedconfig_status(caf::actor_system& sys,
                                         sharedconfig_status_settings settings) {
  return sys.spawn<caf::detached>(status_actor, std::move(settings));
}

}  // namespace tidesync::actors
