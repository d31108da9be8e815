// The simulated Deployment controller's decisions (see deployment_logic.hpp).
#include "runtime/apiserver/deployment_logic.hpp"

#include <algorithm>
#include <optional>
#include <utility>

#include "runtime/rfc3339.hpp"

namespace tidesync::apiserver {
namespace {

using sys_clock = std::chrono::system_clock;

// The value with every object's members sorted by key, so its dump does not depend on the
// order a client wrote the keys in.
json::value canonical(const json::value& v) {
  if (v.is_array()) {
    json::array out;
    out.reserve(v.as_array().size());
    for (const auto& x : v.as_array())
      out.push_back(canonical(x));
    return out;
  }
  if (!v.is_object()) return v;
  std::vector<json::object::member> members;
  members.reserve(v.as_object().size());
  for (const auto& [k, x] : v.as_object())
    members.emplace_back(k, canonical(x));
  std::sort(members.begin(), members.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return json::object(std::move(members));
}

uint32_t fnv1a32(std::string_view s) {
  uint32_t h = 2166136261U;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619U;
  }
  return h;
}

int64_t desired_replicas(const json::value& d) {
  const auto* r = d.at_path({"spec", "replicas"});
  if (r == nullptr || !r->is_int()) return 1;
  return std::max<int64_t>(0, r->as_int());
}

const json::value* spec_of(const json::value& d) {
  static const json::value empty = json::object{};
  const auto* s = d.at("spec");
  return s != nullptr && s->is_object() ? s : &empty;
}

bool has_deletion(const json::value& obj) {
  const auto* ts = obj.at_path({"metadata", "deletionTimestamp"});
  return ts != nullptr && !ts->is_null();
}

// What the controller needs to know of one Pod.
struct pod_info {
  std::string name, uid, hash, phase, node, created;
  bool deleting = false, terminal = false, ready = false;
  std::optional<rfc3339::sys_seconds> ready_since;
  int64_t restarts = 0;
  [[nodiscard]] bool active() const { return !deleting && !terminal; }
  // Ready for at least minReadySeconds.
  [[nodiscard]] bool available(int64_t min_ready, sys_clock::time_point now) const {
    if (!active() || !ready) return false;
    if (min_ready <= 0) return true;
    return ready_since && *ready_since + std::chrono::seconds(min_ready) <= now;
  }
};

pod_info inspect(const json::value& pod) {
  pod_info p;
  const auto* meta = pod.at("metadata");
  if (meta != nullptr) {
    p.name = std::string(meta->get_string("name"));
    p.uid = std::string(meta->get_string("uid"));
    p.created = std::string(meta->get_string("creationTimestamp"));
    if (const auto* l = meta->at("labels"); l != nullptr)
      p.hash = std::string(l->get_string(k_pod_template_hash));
  }
  p.deleting = has_deletion(pod);
  if (const auto* s = pod.at("spec"); s != nullptr) p.node = std::string(s->get_string("nodeName"));
  const auto* status = pod.at("status");
  if (status == nullptr) return p;
  p.phase = std::string(status->get_string("phase"));
  p.terminal = p.phase == "Succeeded" || p.phase == "Failed";
  if (const auto* conds = status->at("conditions"); conds != nullptr && conds->is_array())
    for (const auto& c : conds->as_array())
      if (c.get_string("type") == "Ready" && c.get_string("status") == "True") {
        p.ready = true;
        p.ready_since = rfc3339::parse(c.get_string("lastTransitionTime"));
      }
  if (const auto* cs = status->at("containerStatuses"); cs != nullptr && cs->is_array())
    for (const auto& c : cs->as_array())
      p.restarts += c.get_int("restartCount");
  return p;
}

int phase_rank(std::string_view phase) {
  if (phase == "Pending" || phase.empty()) return 0;
  if (phase == "Running") return 2;
  return 1;  // Unknown
}

// Kubernetes' order for scaling down (controller.ActivePodsWithRanks): the Pod worth least
// comes first.
bool delete_first(const pod_info& a, const pod_info& b) {
  if (a.node.empty() != b.node.empty()) return a.node.empty();
  if (phase_rank(a.phase) != phase_rank(b.phase)) return phase_rank(a.phase) < phase_rank(b.phase);
  if (a.ready != b.ready) return !a.ready;
  if (a.ready && a.ready_since != b.ready_since) return a.ready_since > b.ready_since;
  if (a.restarts != b.restarts) return a.restarts > b.restarts;
  if (a.created != b.created) return a.created > b.created;  // RFC 3339 UTC: text order
  return a.name > b.name;
}

void remove_first(std::vector<pod_info> pods, size_t n, deployment_plan& plan) {
  std::sort(pods.begin(), pods.end(), delete_first);
  for (size_t i = 0; i < n && i < pods.size(); ++i)
    plan.remove.push_back({pods[i].name, pods[i].uid});
}

std::string append_reason(std::string a, const std::string& b) {
  return a.empty() ? b : a + "; " + b;
}

const json::value* find_condition(const json::value& d, std::string_view type) {
  const auto* conds = d.at_path({"status", "conditions"});
  if (conds == nullptr || !conds->is_array()) return nullptr;
  for (const auto& c : conds->as_array())
    if (c.get_string("type") == type) return &c;
  return nullptr;
}

// A condition as deploymentutil.SetDeploymentCondition keeps it: unchanged when status, reason
// and message are the same (unless `touch`: progress was made), lastTransitionTime kept while
// the status stays.
json::value condition(const json::value* old, std::string_view type, std::string_view status,
                      std::string_view reason, std::string_view message, const std::string& now,
                      bool touch = false) {
  if (old != nullptr && !touch && old->get_string("status") == status &&
      old->get_string("reason") == reason && old->get_string("message") == message)
    return *old;
  std::string since = now;
  if (old != nullptr && old->get_string("status") == status &&
      !old->get_string("lastTransitionTime").empty())
    since = std::string(old->get_string("lastTransitionTime"));
  return json::object{{"type", type},          {"status", status},
                      {"lastUpdateTime", now}, {"lastTransitionTime", since},
                      {"reason", reason},      {"message", message}};
}

}  // namespace

std::string pod_template_hash(const json::value& pod_template) {
  static const std::string_view alphanums = "bcdfghjklmnpqrstvwxz2456789";
  std::string digits = std::to_string(fnv1a32(json::dump(canonical(pod_template))));
  std::string out;
  for (char c : digits)
    out += alphanums[static_cast<unsigned char>(c) % alphanums.size()];
  return out;
}

std::string controlling_deployment(const json::value& pod) {
  const auto* refs = pod.at_path({"metadata", "ownerReferences"});
  if (refs == nullptr || !refs->is_array()) return {};
  for (const auto& r : refs->as_array())
    if (r.get_string("kind") == "Deployment" && r.get_bool("controller"))
      return std::string(r.get_string("uid"));
  return {};
}

deployment_plan plan_deployment(const json::value& deployment, const std::vector<json::value>& pods,
                                sys_clock::time_point now) {
  deployment_plan plan;
  const auto* spec = spec_of(deployment);
  const auto* tmpl = spec->at("template");
  plan.hash = pod_template_hash(tmpl != nullptr ? *tmpl : json::value(json::object{}));
  if (has_deletion(deployment) || spec->get_bool("paused")) return plan;

  const int64_t desired = desired_replicas(deployment);
  const int64_t min_ready = spec->get_int("minReadySeconds");
  const bool recreate = spec->at_path({"strategy", "type"}) != nullptr &&
                        spec->at_path({"strategy", "type"})->is_string() &&
                        spec->at_path({"strategy", "type"})->as_string() == "Recreate";

  std::vector<pod_info> current, old;
  size_t old_terminating = 0;
  for (const auto& pod : pods) {
    pod_info p = inspect(pod);
    if (p.terminal && !p.deleting) {
      // It ended: deleted (the pod garbage collector's part, at once) and replaced below.
      plan.remove.push_back({p.name, p.uid});
      plan.reason = append_reason(plan.reason, "pod " + p.name + " ended (" + p.phase + ")");
      continue;
    }
    if (p.hash != plan.hash) {
      if (p.active())
        old.push_back(std::move(p));
      else if (!p.terminal)
        ++old_terminating;
      continue;
    }
    if (p.active()) current.push_back(std::move(p));
  }

  if (recreate && !old.empty()) {
    remove_first(old, old.size(), plan);
    plan.reason = append_reason(plan.reason, "Recreate: deleting " + std::to_string(old.size()) +
                                                 " pods of an older template");
    return plan;
  }
  if (recreate && old_terminating > 0) return plan;  // new pods once the old ones are gone

  const auto n = static_cast<int64_t>(current.size());
  if (n < desired) {
    plan.create = desired - n;
    plan.reason = append_reason(plan.reason, "creating " + std::to_string(plan.create) + " pods");
  } else if (n > desired) {
    remove_first(current, static_cast<size_t>(n - desired), plan);
    plan.reason = append_reason(plan.reason, "scaling down by " + std::to_string(n - desired));
  }

  if (!old.empty()) {
    // RollingUpdate with maxSurge 100%, maxUnavailable 0: an older Pod stays for each new one
    // that is not available yet.
    int64_t available = 0;
    for (const auto& p : current)
      if (p.available(min_ready, now)) ++available;
    available = std::min(available, desired);
    const auto keep = static_cast<size_t>(std::max<int64_t>(0, desired - available));
    if (old.size() > keep) {
      remove_first(old, old.size() - keep, plan);
      plan.reason = append_reason(plan.reason, "RollingUpdate: deleting " +
                                                   std::to_string(old.size() - keep) +
                                                   " pods of an older template");
    }
  }
  return plan;
}

json::value deployment_pod(const json::value& deployment, const std::string& hash,
                           std::string_view suffix) {
  const auto* dmeta = deployment.at("metadata");
  std::string name(dmeta != nullptr ? dmeta->get_string("name") : "");
  std::string ns(dmeta != nullptr ? dmeta->get_string("namespace") : "");
  std::string uid(dmeta != nullptr ? dmeta->get_string("uid") : "");
  const auto* tmpl = spec_of(deployment)->at("template");
  json::value meta =
      tmpl != nullptr && tmpl->at("metadata") != nullptr && tmpl->at("metadata")->is_object()
          ? *tmpl->at("metadata")
          : json::value(json::object{});
  auto& labels = meta["labels"];
  if (!labels.is_object()) labels = json::object{};
  labels.as_object().set(k_pod_template_hash, hash);
  // As the ReplicaSet's generateName: "<deployment>-<hash>-", cut to leave room for the suffix.
  std::string base = (name + "-" + hash + "-").substr(0, 58);
  meta.as_object().set("generateName", base);
  meta.as_object().set("name", base + std::string(suffix));
  meta.as_object().set("namespace", ns);
  meta.as_object().set("ownerReferences", json::array{json::object{{"apiVersion", "apps/v1"},
                                                                   {"kind", "Deployment"},
                                                                   {"name", name},
                                                                   {"uid", uid},
                                                                   {"controller", true},
                                                                   {"blockOwnerDeletion", true}}});
  json::value spec = tmpl != nullptr && tmpl->at("spec") != nullptr && tmpl->at("spec")->is_object()
                         ? *tmpl->at("spec")
                         : json::value(json::object{});
  return json::object{{"apiVersion", "v1"},
                      {"kind", "Pod"},
                      {"metadata", std::move(meta)},
                      {"spec", std::move(spec)}};
}

json::value deployment_status(const json::value& deployment, const std::vector<json::value>& pods,
                              sys_clock::time_point now, std::string_view create_error) {
  const auto* spec = spec_of(deployment);
  const auto* tmpl = spec->at("template");
  const std::string hash = pod_template_hash(tmpl != nullptr ? *tmpl : json::value(json::object{}));
  const int64_t desired = desired_replicas(deployment);
  const int64_t min_ready = spec->get_int("minReadySeconds");
  const int64_t generation = deployment.at("metadata") != nullptr
                                 ? deployment.at("metadata")->get_int("generation", 1)
                                 : 1;
  const std::string now_text =
      rfc3339::format(std::chrono::time_point_cast<std::chrono::seconds>(now));

  int64_t replicas = 0, updated = 0, ready = 0, available = 0, old_active = 0;
  for (const auto& pod : pods) {
    pod_info p = inspect(pod);
    if (!p.active()) continue;
    ++replicas;
    if (p.hash == hash)
      ++updated;
    else
      ++old_active;
    if (p.ready) ++ready;
    if (p.available(min_ready, now)) ++available;
  }
  // Kubernetes: the ReplicaSets' desired sizes minus what is available. The new template's
  // "set" wants `desired`; older Pods still wanted are the ones not deleted yet.
  const int64_t unavailable = std::max<int64_t>(0, desired + old_active - available);

  const json::value* old_status = deployment.at("status");
  auto old_int = [&](std::string_view key) {
    return old_status != nullptr ? old_status->get_int(key) : 0;
  };

  json::object s;
  s.set("observedGeneration", generation);
  // Zero counts are omitted, as Kubernetes serialises them (omitempty).
  auto count = [&](const char* key, int64_t v) {
    if (v != 0) s.set(key, v);
  };
  count("replicas", replicas);
  count("updatedReplicas", updated);
  count("readyReplicas", ready);
  count("availableReplicas", available);
  count("unavailableReplicas", unavailable);

  json::array conds;
  conds.push_back(available >= desired
                      ? condition(find_condition(deployment, "Available"), "Available", "True",
                                  "MinimumReplicasAvailable",
                                  "Deployment has minimum availability.", now_text)
                      : condition(find_condition(deployment, "Available"), "Available", "False",
                                  "MinimumReplicasUnavailable",
                                  "Deployment does not have minimum availability.", now_text));

  const std::string rs = "ReplicaSet \"" +
                         std::string(deployment.at("metadata") != nullptr
                                         ? deployment.at("metadata")->get_string("name")
                                         : "") +
                         "-" + hash + "\"";
  const json::value* old_progressing = find_condition(deployment, "Progressing");
  std::optional<json::value> progressing;
  if (spec->get_bool("paused")) {
    progressing = condition(old_progressing, "Progressing", "Unknown", "DeploymentPaused",
                            "Deployment is paused", now_text);
  } else if (updated == desired && replicas == desired && available == desired) {
    progressing = condition(old_progressing, "Progressing", "True", "NewReplicaSetAvailable",
                            rs + " has successfully progressed.", now_text);
  } else {
    bool progress =
        old_progressing == nullptr || old_progressing->get_string("reason") == "DeploymentPaused" ||
        (old_status != nullptr ? old_status->get_int("observedGeneration") : 0) != generation ||
        updated > old_int("updatedReplicas") || ready > old_int("readyReplicas") ||
        available > old_int("availableReplicas") ||
        old_int("replicas") - old_int("updatedReplicas") > replicas - updated;
    int64_t deadline = spec->get_int("progressDeadlineSeconds", 600);
    std::optional<rfc3339::sys_seconds> last_update;
    if (old_progressing != nullptr)
      last_update = rfc3339::parse(old_progressing->get_string("lastUpdateTime"));
    bool timed_out = !progress && old_progressing != nullptr &&
                     old_progressing->get_string("reason") != "NewReplicaSetAvailable" &&
                     deadline < 2147483647 && last_update &&
                     *last_update + std::chrono::seconds(deadline) < now;
    if (progress)
      progressing = condition(old_progressing, "Progressing", "True", "ReplicaSetUpdated",
                              rs + " is progressing.", now_text, true);
    else if (timed_out || (old_progressing != nullptr &&
                           old_progressing->get_string("reason") == "ProgressDeadlineExceeded"))
      progressing = condition(old_progressing, "Progressing", "False", "ProgressDeadlineExceeded",
                              rs + " has timed out progressing.", now_text);
    else
      progressing = *old_progressing;
  }
  conds.push_back(std::move(*progressing));
  if (!create_error.empty())
    conds.push_back(condition(find_condition(deployment, "ReplicaFailure"), "ReplicaFailure",
                              "True", "FailedCreate", create_error, now_text));
  s.set("conditions", std::move(conds));
  return s;
}

}  // namespace tidesync::apiserver
