#include "actors/pfs_logic.hpp"

#include <algorithm>
#include <map>

#include "config/object_meta.hpp"
#include "config/pod_injection.hpp"
#include "runtime/base64.hpp"
#include "runtime/rfc3339.hpp"
#include "runtime/transfer/crypt.hpp"
#include "runtime/webhook/tls_secret.hpp"

namespace tidesync::actors {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ", ") + s;
  return out;
}

bool known_result(std::string_view r) {
  return r == "Succeeded" || r == "Failed" || r == "Skipped";
}

bool known_kind(std::string_view k) {
  return k == "restore" || k == "sync" || k == "final";
}

// Messages from agents are for people: one line, bounded.
std::string clean_message(std::string_view m) {
  std::string out;
  for (char c : m.substr(0, 512))
    out.push_back(c == '\n' || c == '\r' || c == '\t' ? ' ' : c);
  return out;
}

}  // namespace

config::podfilesystemsync_status pfs_status(const config::podfilesystemsync& s,
                                            const std::vector<json::value>& pods,
                                            const pfs_secrets& secrets, config::sys_seconds now) {
  config::podfilesystemsync_status st = s.status;
  const auto gen = s.metadata.generation;
  st.observed_generation = gen;
  st.pods.clear();
  for (const auto& pod : pods) {
    auto labels = config::read_string_map(pod.at_path({"metadata", "labels"}));
    if (labels[std::string(config::k_volume_syncing_label)] != "true" ||
        !s.spec.pod_selector.matches(labels))
      continue;
    auto annotations = config::read_string_map(pod.at_path({"metadata", "annotations"}));
    const auto* name = pod.at_path({"metadata", "name"});
    config::pod_sync_status p;
    if (annotations[std::string(config::k_injected_annotation)] == s.metadata.name) {
      if (auto last = read_last_sync(pod)) p = std::move(*last);
    } else {
      p.injected = false;
      p.result = "NotInjected";
      p.message =
          "the webhook did not add the agents (the controller was unreachable when the pod was "
          "created, or another PodFilesystemSync conflicts): this pod is not synced; delete it "
          "so that its replacement is injected";
    }
    p.name = name != nullptr && name->is_string() ? name->as_string() : "";
    st.pods.push_back(std::move(p));
  }
  std::sort(st.pods.begin(), st.pods.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& p : st.pods)
    if (p.injected && p.last_sync_time &&
        (!st.last_sync || !st.last_sync->last_sync_time ||
         *p.last_sync_time >= *st.last_sync->last_sync_time))
      st.last_sync = p;

  auto set = [&](const char* type, const char* status, const char* reason, std::string message) {
    config::set_condition(
        st.conditions, config::make_condition(type, status, reason, std::move(message), gen), now);
  };
  const std::string ns = s.metadata.namespace_;
  if (!secrets.missing.empty()) {
    set("Ready", "False", "SecretNotFound",
        "envFromSecret names " + join(secrets.missing) + ", which do not exist in namespace " + ns +
            ": create them (the agents of new pods wait in CreateContainerConfigError until then)");
  } else if (!secrets.encryption_problem.empty()) {
    set("Ready", "False", "EncryptionKeyInvalid", secrets.encryption_problem);
  } else {
    set("Ready", "True", "Selecting",
        "pods labelled " + std::string(config::k_volume_syncing_label) +
            "=true that match podSelector get the restore init container and the syncing sidecar");
  }
  size_t injected = 0;
  for (const auto& p : st.pods)
    injected += p.injected ? 1 : 0;
  if (st.pods.empty()) {
    set("PodsSelected", "False", "NoMatchingPods",
        "no pod of namespace " + ns + " labelled " + std::string(config::k_volume_syncing_label) +
            "=true matches podSelector: put both the label and the selector's labels on the pod "
            "template");
  } else {
    set("PodsSelected", "True", "PodsSelected",
        std::to_string(st.pods.size()) + " pod(s) selected, " + std::to_string(injected) +
            " with the agents");
  }
  const config::pod_sync_status* failed = nullptr;
  bool any_report = false;
  for (const auto& p : st.pods) {
    if (!p.injected || p.result.empty()) continue;
    any_report = true;
    if (p.result == "Failed" && failed == nullptr) failed = &p;
  }
  if (failed != nullptr) {
    set("Synced", "False", "SyncFailed",
        "pod " + failed->name + ": the last " + (failed->kind.empty() ? "sync" : failed->kind) +
            " failed" +
            (failed->consecutive_failures > 1
                 ? " (" + std::to_string(failed->consecutive_failures) + " in a row)"
                 : "") +
            (failed->message.empty() ? "" : ": " + failed->message));
  } else if (any_report) {
    set("Synced", "True", "Succeeded", "every reporting pod's last sync succeeded");
  } else {
    set("Synced", "Unknown", "NoReports", "no pod has reported a sync yet");
  }
  return st;
}

expected<pfs_report> parse_pfs_report(const json::value& body) {
  auto bad = [](std::string what) {
    return make_error(errc::bad_request, "report: " + std::move(what));
  };
  pfs_report r;
  r.ns = std::string(body.get_string("namespace"));
  r.pod = std::string(body.get_string("pod"));
  r.pfs = std::string(body.get_string("podFilesystemSync"));
  if (r.ns.empty() || r.pod.empty() || r.pfs.empty())
    return bad("namespace, pod and podFilesystemSync are required");
  auto& s = r.sync;
  s.name = r.pod;
  s.kind = std::string(body.get_string("kind"));
  if (!known_kind(s.kind)) return bad("kind must be restore, sync or final");
  s.result = std::string(body.get_string("result"));
  if (!known_result(s.result)) return bad("result must be Succeeded, Failed or Skipped");
  auto t = rfc3339::parse(body.get_string("time"));
  if (!t) return bad("time must be an RFC 3339 time");
  s.last_sync_time = *t;
  for (auto [key, slot] : {std::pair{"bytes", &s.bytes}, std::pair{"files", &s.files},
                           std::pair{"deleted", &s.deleted},
                           std::pair{"consecutiveFailures", &s.consecutive_failures}}) {
    const auto* v = body.at(key);
    if (v == nullptr) continue;
    if (!v->is_int() || v->as_int() < 0) return bad(std::string(key) + " must be a number >= 0");
    *slot = v->as_int();
  }
  s.message = clean_message(body.get_string("message"));
  return r;
}

std::string last_sync_annotation(const config::pod_sync_status& s) {
  auto v = config::to_json(s);
  v.as_object().erase("name");
  return json::dump(v);
}

std::optional<config::pod_sync_status> read_last_sync(const json::value& pod) {
  const auto* a = pod.at_path({"metadata", "annotations", k_last_sync_annotation});
  if (a == nullptr || !a->is_string()) return std::nullopt;
  auto v = json::parse(a->as_string());
  if (!v || !v->is_object()) return std::nullopt;
  config::pod_sync_status s;
  s.kind = std::string(v->get_string("kind"));
  s.result = std::string(v->get_string("result"));
  if (!known_result(s.result)) return std::nullopt;
  s.last_sync_time = rfc3339::parse(v->get_string("lastSyncTime"));
  s.bytes = v->get_int("bytes");
  s.files = v->get_int("files");
  s.deleted = v->get_int("deleted");
  s.consecutive_failures = v->get_int("consecutiveFailures");
  s.message = std::string(v->get_string("message"));
  return s;
}

std::string check_encryption_secret(const json::value& secret) {
  std::string name(secret.at_path({"metadata", "name"})
                       ? secret.at_path({"metadata", "name"})->as_string()
                       : "");
  for (const char* key : {k_crypt_password_key, k_crypt_salt_key}) {
    const auto* v = secret.at_path({"data", key});
    auto decoded = v != nullptr && v->is_string() ? base64::decode(v->as_string()) : std::nullopt;
    if (!decoded || decoded->empty())
      return "Secret " + name + " (automaticEncryption) has no key " + key +
             ": it is never replaced, since the remote's data can only be read with the key that "
             "wrote it; restore the Secret from your backup, or name a new Secret (which starts a "
             "new, empty encrypted remote)";
    auto plain = transfer::crypt::reveal(*decoded);
    if (!plain || plain->empty())
      return "Secret " + name + " (automaticEncryption): key " + key +
             " is not in rclone's obscured form (`rclone obscure`): restore the Secret from your "
             "backup";
  }
  return {};
}

json::value new_encryption_secret(const std::string& ns, const std::string& name,
                                  const std::string& pfs_name) {
  json::object data;
  for (const char* key : {k_crypt_password_key, k_crypt_salt_key})
    data.set(key, base64::encode(transfer::crypt::obscure(webhook::random_hex(32))));
  return json::value(json::object{
      {"apiVersion", "v1"},
      {"kind", "Secret"},
      {"metadata",
       json::object{
           {"name", name},
           {"namespace", ns},
           {"labels", json::object{{"app.kubernetes.io/managed-by", "tidesync"}}},
           {"annotations",
            json::object{
                {"tidesync.io/podfilesystemsync", pfs_name},
                {"tidesync.io/backup",
                 "BACK THIS SECRET UP: the remote's data cannot be decrypted without it"}}}}},
      {"type", "Opaque"},
      {"data", std::move(data)},
  });
}

}  // namespace tidesync::actors
