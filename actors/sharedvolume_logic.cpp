#include "actors/sharedvolume_logic.hpp"

#include <algorithm>

#include "runtime/rfc3339.hpp"

namespace tidesync::actors {
namespace {

std::vector<std::string> names_in(std::string_view list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    auto comma = list.find(',', start);
    auto item =
        list.substr(start, comma == std::string_view::npos ? list.size() - start : comma - start);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
      item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
      item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string first_pods(const std::map<std::string, std::vector<std::string>>& consumers) {
  std::string out;
  size_t n = 0, total = 0;
  for (const auto& [ns, pods] : consumers)
    for (const auto& p : pods) {
      ++total;
      if (n < 5) {
        out += (out.empty() ? "" : ", ") + ns + "/" + p;
        ++n;
      }
    }
  if (total > n) out += " and " + std::to_string(total - n) + " more";
  return out;
}

}  // namespace

config::sharedvolume_status volume_status(const config::sharedvolume& v,
                                          const volume_observation& o,
                                          const std::pair<std::string, std::string>& nfs,
                                          config::sys_seconds now) {
  auto st = v.status;
  const auto gen = v.metadata.generation;
  st.observed_generation = gen;
  st.nfs_server = nfs.first;
  st.nfs_path = nfs.second;
  st.consumers.clear();
  for (const auto& [ns, pods] : o.consumers)
    st.consumers.push_back({ns, static_cast<int64_t>(pods.size())});
  auto set = [&](const char* type, const char* status, const char* reason, std::string msg) {
    config::set_condition(st.conditions,
                          config::make_condition(type, status, reason, std::move(msg), gen), now);
  };
  if (v.spec.storage.external)
    set("ServerReady", "True", "External",
        "the external NFS server " + nfs.first + ":" + nfs.second);
  else if (o.server_ready)
    set("ServerReady", "True", "Available", "the NFS server " + nfs.first + " is available");
  else
    set("ServerReady", "False", "Starting",
        o.server_message.empty() ? "the NFS server is starting" : o.server_message);
  const bool server = v.spec.storage.external || o.server_ready;
  if (st.last_sync_result == "Succeeded")
    set("Synced", "True", "Succeeded", "revision " + st.revision);
  else if (st.last_sync_result == "Failed")
    set("Synced", "False", "SyncFailed",
        st.last_sync_message.empty() ? "the last sync failed" : st.last_sync_message);
  else
    set("Synced", "Unknown", "NotSyncedYet", "no sync has finished yet");
  const bool synced_once = !st.revision.empty();
  if (v.metadata.deletion_timestamp) {
    st.phase = "Deleting";
    if (!o.consumers.empty())
      set("Ready", "False", "ConsumersRemain",
          "being deleted; waiting for the pods that mount it to stop: " + first_pods(o.consumers) +
              " (annotate tidesync.io/force-delete=true to delete it anyway)");
    else
      set("Ready", "False", "Deleting", "being deleted: removing its server, syncer and claims");
  } else if (!o.missing_secret.empty()) {
    st.phase = synced_once ? "Ready" : "Pending";
    set("Ready", synced_once ? "True" : "False", "SecretNotFound",
        "the source's Secret " + o.missing_secret +
            " does not exist: create it (the syncer waits for it)" +
            (synced_once ? "; revision " + st.revision + " is still served" : ""));
  } else if (server && synced_once) {
    st.phase = "Ready";
    set("Ready", "True", "Ready", "revision " + st.revision + " is served");
  } else if (!server) {
    st.phase = "Pending";
    set("Ready", "False", "ServerNotReady", "waiting for the NFS server");
  } else if (st.last_sync_result == "Failed") {
    st.phase = "Failed";
    set("Ready", "False", "SyncFailed",
        "the first sync failed: " + (st.last_sync_message.empty()
                                         ? std::string("see the syncer's log")
                                         : st.last_sync_message));
  } else {
    st.phase = "Syncing";
    set("Ready", "False", "WaitingForFirstSync", "the first sync is running");
  }
  return st;
}

std::map<std::string, std::vector<std::string>> consumers_of(const config::volume_ref& r,
                                                             const std::vector<json::value>& pods) {
  std::map<std::string, std::vector<std::string>> out;
  const std::string key(r.cluster ? config::k_cluster_shared_volume_annotation
                                  : config::k_shared_volume_annotation);
  for (const auto& p : pods) {
    const auto* ns = p.at_path({"metadata", "namespace"});
    const auto* name = p.at_path({"metadata", "name"});
    if (ns == nullptr || name == nullptr || !ns->is_string() || !name->is_string()) continue;
    if (!r.cluster && ns->as_string() != r.ns) continue;
    // A terminating pod still has the volume mounted until it is gone: it counts.
    const auto* phase = p.at_path({"status", "phase"});
    if (phase != nullptr && phase->is_string() &&
        (phase->as_string() == "Succeeded" || phase->as_string() == "Failed"))
      continue;
    const auto* list = p.at_path({"metadata", "annotations", key});
    if (list == nullptr || !list->is_string()) continue;
    auto names = names_in(list->as_string());
    if (std::find(names.begin(), names.end(), r.name) == names.end()) continue;
    out[ns->as_string()].push_back(name->as_string());
  }
  for (auto& [ns, names] : out)
    std::sort(names.begin(), names.end());
  return out;
}

std::vector<std::string> claims_to_remove(
    const std::map<std::string, std::optional<config::sys_seconds>>& claims,
    const std::map<std::string, std::vector<std::string>>& consumers, config::sys_seconds now,
    std::chrono::seconds grace) {
  std::vector<std::string> out;
  for (const auto& [ns, created] : claims) {
    if (consumers.count(ns) != 0) continue;
    if (created && now - *created < grace) continue;
    out.push_back(ns);
  }
  return out;
}

expected<volume_report> parse_volume_report(const json::value& body) {
  auto bad = [](std::string what) {
    return make_error(errc::bad_request, "volume report: " + std::move(what));
  };
  volume_report r;
  const auto kind = body.get_string("kind");
  if (kind != config::k_sharedvolume_kind && kind != config::k_cluster_sharedvolume_kind)
    return bad("kind must be SharedVolume or ClusterSharedVolume");
  r.ref.cluster = kind == config::k_cluster_sharedvolume_kind;
  r.ref.ns = r.ref.cluster ? std::string() : std::string(body.get_string("namespace"));
  r.ref.name = std::string(body.get_string("name"));
  if (r.ref.name.empty() || (!r.ref.cluster && r.ref.ns.empty()))
    return bad("name (and namespace for a SharedVolume) are required");
  r.result = std::string(body.get_string("result"));
  if (r.result != "Succeeded" && r.result != "Failed")
    return bad("result must be Succeeded or Failed");
  r.revision = std::string(body.get_string("revision"));
  if (r.result == "Succeeded" && r.revision.empty()) return bad("a success needs its revision");
  if (r.revision.size() > 128) return bad("revision is too long");
  auto t = rfc3339::parse(body.get_string("time"));
  if (!t) return bad("time must be an RFC 3339 time");
  r.time = *t;
  std::string m(body.get_string("message").substr(0, 512));
  for (auto& c : m)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  r.message = std::move(m);
  return r;
}

json::value volume_report_patch(const volume_report& r) {
  json::object st{{"lastSyncTime", rfc3339::format(r.time)},
                  {"lastSyncResult", r.result},
                  {"lastSyncMessage", r.message.empty() ? json::value() : json::value(r.message)}};
  if (r.result == "Succeeded") st.set("revision", r.revision);
  return json::value(json::object{{"status", std::move(st)}});
}

}  // namespace tidesync::actors
