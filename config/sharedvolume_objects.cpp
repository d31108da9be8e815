#include "config/sharedvolume_objects.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "config/job_builder.hpp"
#include "runtime/hash.hpp"

namespace tidesync::config {
namespace {

std::string hex16(uint64_t h) {
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

json::object labels_of(const volume_ref& r) {
  return json::object{{std::string(k_shared_volume_id_label), volume_id(r)},
                      {"app.kubernetes.io/managed-by", "tidesync"}};
}

// Who owns an object in the volume's own namespace (a SharedVolume's children); cluster-scoped
// volumes and objects in other namespaces are found by the label instead.
json::value metadata(const sharedvolume& v, std::string name, std::string ns,
                     json::object extra_labels = {}) {
  const auto r = ref_of(v);
  json::object labels = labels_of(r);
  for (auto& [k, val] : extra_labels)
    labels.set(k, std::move(val));
  json::object m{{"name", std::move(name)},
                 {"labels", std::move(labels)},
                 {"annotations", json::object{{"tidesync.io/volume", to_string(r)}}}};
  if (!ns.empty()) m.set("namespace", ns);
  if (!v.cluster && ns == v.metadata.namespace_ && !v.metadata.uid.empty())
    m.set("ownerReferences", json::array{json::object{{"apiVersion", "tidesync.io/v1alpha1"},
                                                      {"kind", std::string(k_sharedvolume_kind)},
                                                      {"name", v.metadata.name},
                                                      {"uid", v.metadata.uid},
                                                      {"controller", true},
                                                      {"blockOwnerDeletion", true}}});
  return json::value(std::move(m));
}

json::value with_hash(json::value obj) {
  auto h = spec_hash(obj);
  obj.as_object()["metadata"].as_object()["annotations"].as_object().set(
      std::string(k_spec_hash_annotation), h);
  return obj;
}

json::value secret_env(const char* name, const std::string& secret, const char* key) {
  return json::value(json::object{
      {"name", name},
      {"valueFrom",
       json::object{
           {"secretKeyRef", json::object{{"name", secret}, {"key", key}, {"optional", true}}}}}});
}

json::value literal_env(const char* name, std::string value) {
  return json::value(json::object{{"name", name}, {"value", std::move(value)}});
}

bool ssh_url(std::string_view u) {
  if (u.rfind("ssh://", 0) == 0) return true;
  auto colon = u.find(':');
  auto at = u.find('@');
  return u.find("://") == std::string_view::npos && colon != std::string_view::npos &&
         at != std::string_view::npos && at < colon;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
    ++i;
  return s.substr(i);
}

}  // namespace

volume_ref ref_of(const sharedvolume& v) {
  return {v.cluster, v.cluster ? std::string() : v.metadata.namespace_, v.metadata.name};
}

std::string to_string(const volume_ref& r) {
  return r.cluster ? "ClusterSharedVolume " + r.name : "SharedVolume " + r.ns + "/" + r.name;
}

std::string volume_id(const volume_ref& r) {
  return hex16(
      fnv1a64((r.cluster ? "ClusterSharedVolume/" : "SharedVolume/") + r.ns + "/" + r.name));
}

std::string server_namespace(const volume_ref& r, const volume_settings& s) {
  return r.cluster ? s.controller_namespace : r.ns;
}

std::string object_base(const volume_ref& r) {
  std::string base = (r.cluster ? "csv-" : "sv-") + r.name;
  // Leave room for "-syncer" and the Deployment's pod name suffixes (63-character labels).
  if (base.size() > 40) base = base.substr(0, 30) + "-" + volume_id(r).substr(0, 9);
  while (!base.empty() && (base.back() == '-' || base.back() == '.'))
    base.pop_back();
  return base;
}

std::pair<std::string, std::string> nfs_address(const sharedvolume& v, const volume_settings& s) {
  if (v.spec.storage.external) return {v.spec.storage.server, v.spec.storage.path};
  const auto r = ref_of(v);
  return {object_base(r) + "-nfs." + server_namespace(r, s) + ".svc." + s.cluster_domain, "/"};
}

json::value build_nfs_claim(const sharedvolume& v, const volume_settings& s) {
  const auto r = ref_of(v);
  json::object spec{
      {"accessModes", json::array{"ReadWriteOnce"}},
      {"resources", json::object{{"requests", json::object{{"storage", v.spec.storage.size}}}}}};
  if (v.spec.storage.storage_class_name)
    spec.set("storageClassName", *v.spec.storage.storage_class_name);
  return with_hash(json::value(
      json::object{{"apiVersion", "v1"},
                   {"kind", "PersistentVolumeClaim"},
                   {"metadata", metadata(v, object_base(r) + "-nfs-data", server_namespace(r, s))},
                   {"spec", std::move(spec)}}));
}

json::value build_nfs_deployment(const sharedvolume& v, const volume_settings& s) {
  const auto r = ref_of(v);
  const std::string name = object_base(r) + "-nfs";
  json::object pod_labels{{"app.kubernetes.io/name", "tidesync-nfs-server"},
                          {std::string(k_shared_volume_id_label), volume_id(r)},
                          {"tidesync.io/role", "nfs-server"}};
  json::object selector{{std::string(k_shared_volume_id_label), volume_id(r)},
                        {"tidesync.io/role", "nfs-server"}};
  json::value container(json::object{
      {"name", "nfs-server"},
      {"image", s.nfs_image},
      {"env", json::array{literal_env("SHARED_DIRECTORY", "/nfsshare")}},
      {"ports", json::array{json::object{{"name", "nfs"}, {"containerPort", 2049}}}},
      // An in-kernel NFS server needs this; it is the NFS server's pod only.
      {"securityContext", json::object{{"privileged", true}}},
      {"readinessProbe",
       json::object{{"tcpSocket", json::object{{"port", 2049}}}, {"periodSeconds", 5}}},
      {"volumeMounts", json::array{json::object{{"name", "data"}, {"mountPath", "/nfsshare"}}}},
  });
  return with_hash(json::value(json::object{
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata",
       metadata(v, name, server_namespace(r, s), json::object{{"tidesync.io/role", "nfs-server"}})},
      {"spec",
       json::object{
           {"replicas", 1},
           {"strategy", json::object{{"type", "Recreate"}}},
           {"selector", json::object{{"matchLabels", std::move(selector)}}},
           {"template",
            json::object{
                {"metadata", json::object{{"labels", std::move(pod_labels)}}},
                {"spec",
                 json::object{
                     {"containers", json::array{std::move(container)}},
                     {"volumes",
                      json::array{json::object{
                          {"name", "data"},
                          {"persistentVolumeClaim",
                           json::object{{"claimName", object_base(r) + "-nfs-data"}}}}}}}}}}}}}));
}

json::value build_nfs_service(const sharedvolume& v, const volume_settings& s) {
  const auto r = ref_of(v);
  return with_hash(json::value(json::object{
      {"apiVersion", "v1"},
      {"kind", "Service"},
      {"metadata", metadata(v, object_base(r) + "-nfs", server_namespace(r, s))},
      {"spec",
       json::object{{"selector", json::object{{std::string(k_shared_volume_id_label), volume_id(r)},
                                              {"tidesync.io/role", "nfs-server"}}},
                    {"ports", json::array{json::object{{"name", "nfs"},
                                                       {"port", 2049},
                                                       {"targetPort", 2049},
                                                       {"protocol", "TCP"}}}}}}}));
}

json::value build_syncer_deployment(const sharedvolume& v, const volume_settings& s,
                                    std::string_view sync_generation) {
  const auto r = ref_of(v);
  const auto& src = v.spec.source;
  const auto [server, path] = nfs_address(v, s);
  json::array args{"agent",
                   "mirror",
                   "--share",
                   "/share",
                   "--source-type",
                   std::string(to_string(src.type)),
                   "--source",
                   src.type == volume_source_type::git || src.type == volume_source_type::http
                       ? src.url
                       : src.remote,
                   "--interval",
                   format_duration(v.spec.sync_interval),
                   "--timeout",
                   format_duration(v.spec.sync_timeout)};
  if (src.type == volume_source_type::git) {
    // The object store between syncs (fetches are incremental).
    args.push_back("--cache");
    args.push_back("/cache");
  }
  if (!src.ref.branch.empty()) {
    args.push_back("--ref-branch");
    args.push_back(src.ref.branch);
  } else if (!src.ref.tag.empty()) {
    args.push_back("--ref-tag");
    args.push_back(src.ref.tag);
  } else if (!src.ref.commit.empty()) {
    args.push_back("--ref-commit");
    args.push_back(src.ref.commit);
  }
  json::array env{
      literal_env("TIDESYNC_VOLUME_KIND",
                  std::string(v.cluster ? k_cluster_sharedvolume_kind : k_sharedvolume_kind)),
      literal_env("TIDESYNC_VOLUME_NAMESPACE", r.ns), literal_env("TIDESYNC_VOLUME_NAME", r.name)};
  if (!s.report_url.empty()) {
    env.push_back(literal_env("TIDESYNC_REPORT_URL", s.report_url));
    env.push_back(literal_env("TIDESYNC_REPORT_TOKEN", s.report_token));
    if (!s.report_ca.empty()) env.push_back(literal_env("TIDESYNC_REPORT_CA", s.report_ca));
  }
  json::array env_from;
  json::array mounts{json::object{{"name", "share"}, {"mountPath", "/share"}},
                     json::object{{"name", "cache"}, {"mountPath", "/cache"}},
                     json::object{{"name", "tmp"}, {"mountPath", "/tmp"}}};
  json::array volumes{
      json::object{{"name", "share"}, {"nfs", json::object{{"server", server}, {"path", path}}}},
      json::object{{"name", "cache"}, {"emptyDir", json::object{}}},
      json::object{{"name", "tmp"}, {"emptyDir", json::object{{"sizeLimit", "64Mi"}}}}};
  if (!src.secret_name.empty()) {
    if (src.type == volume_source_type::git && ssh_url(src.url)) {
      // The key and known_hosts as files (0400), only the keys the Secret has.
      volumes.push_back(json::value(json::object{
          {"name", "git-ssh"},
          {"secret",
           json::object{{"secretName", src.secret_name},
                        {"defaultMode", 0400},
                        {"optional", false},
                        {"items", json::array{json::object{{"key", "ssh-privatekey"},
                                                           {"path", "ssh-privatekey"}}}}}}}));
      volumes.push_back(json::value(json::object{
          {"name", "git-known-hosts"},
          {"secret",
           json::object{{"secretName", src.secret_name},
                        {"defaultMode", 0444},
                        {"optional", true},
                        {"items", json::array{json::object{{"key", "known_hosts"},
                                                           {"path", "known_hosts"}}}}}}}));
      mounts.push_back(json::value(json::object{
          {"name", "git-ssh"}, {"mountPath", "/etc/tidesync/git-ssh"}, {"readOnly", true}}));
      mounts.push_back(json::value(json::object{{"name", "git-known-hosts"},
                                                {"mountPath", "/etc/tidesync/git-known-hosts"},
                                                {"readOnly", true}}));
      env.push_back(literal_env("GIT_SSH_KEY_FILE", "/etc/tidesync/git-ssh/ssh-privatekey"));
      env.push_back(
          literal_env("GIT_KNOWN_HOSTS_FILE", "/etc/tidesync/git-known-hosts/known_hosts"));
    } else if (src.type == volume_source_type::git) {
      env.push_back(secret_env("GIT_USERNAME", src.secret_name, "username"));
      env.push_back(secret_env("GIT_PASSWORD", src.secret_name, "password"));
    } else {
      env_from.push_back(
          json::value(json::object{{"secretRef", json::object{{"name", src.secret_name}}}}));
    }
  }
  json::object container{
      {"name", "syncer"},
      {"image", s.agent_image},
      {"args", std::move(args)},
      {"env", std::move(env)},
      {"volumeMounts", std::move(mounts)},
      {"securityContext", restricted_container_security(65532)},
      {"resources", json::object{{"requests", json::object{{"cpu", "20m"}, {"memory", "64Mi"}}},
                                 {"limits", json::object{{"memory", "512Mi"}}}}}};
  if (!env_from.empty()) container.set("envFrom", std::move(env_from));
  json::object selector{{std::string(k_shared_volume_id_label), volume_id(r)},
                        {"tidesync.io/role", "syncer"}};
  json::object pod_labels = selector;
  pod_labels.set("app.kubernetes.io/name", "tidesync-syncer");
  return with_hash(json::value(json::object{
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata", metadata(v, object_base(r) + "-syncer", server_namespace(r, s),
                            json::object{{"tidesync.io/role", "syncer"}})},
      {"spec",
       json::object{
           {"replicas", 1},
           {"strategy", json::object{{"type", "Recreate"}}},
           {"selector", json::object{{"matchLabels", std::move(selector)}}},
           {"template",
            json::object{
                {"metadata", json::object{{"labels", std::move(pod_labels)},
                                          {"annotations",
                                           json::object{{std::string(k_sync_generation_annotation),
                                                         std::string(sync_generation)}}}}},
                {"spec", json::object{{"securityContext",
                                       json::object{{"runAsNonRoot", true},
                                                    {"runAsUser", 65532},
                                                    {"runAsGroup", 65532},
                                                    {"fsGroup", 65532},
                                                    {"seccompProfile",
                                                     json::object{{"type", "RuntimeDefault"}}}}},
                                      {"terminationGracePeriodSeconds", 30},
                                      {"containers", json::array{std::move(container)}},
                                      {"volumes", std::move(volumes)}}}}}}}}));
}

std::string consumer_claim_name(const volume_ref& r) {
  return "tidesync-" + object_base(r);
}

std::string consumer_pv_name(const volume_ref& r, std::string_view consumer_ns) {
  return "tidesync-" + volume_id(r) + "-" + hex16(fnv1a64(std::string(consumer_ns))).substr(0, 8);
}

json::value build_consumer_pv(const sharedvolume& v, const volume_settings& s,
                              std::string_view consumer_ns) {
  const auto r = ref_of(v);
  const auto [server, path] = nfs_address(v, s);
  return with_hash(json::value(json::object{
      {"apiVersion", "v1"},
      {"kind", "PersistentVolume"},
      {"metadata",
       metadata(v, consumer_pv_name(r, consumer_ns), "",
                json::object{{"tidesync.io/consumer-namespace", std::string(consumer_ns)}})},
      {"spec",
       json::object{
           {"capacity", json::object{{"storage", v.spec.storage.external
                                                     ? std::string(k_default_shared_volume_size)
                                                     : v.spec.storage.size}}},
           {"accessModes", json::array{v.spec.read_only ? "ReadOnlyMany" : "ReadWriteMany"}},
           {"persistentVolumeReclaimPolicy", "Retain"},
           {"storageClassName", ""},
           {"nfs",
            json::object{{"server", server}, {"path", path}, {"readOnly", v.spec.read_only}}},
           {"claimRef", json::object{{"namespace", std::string(consumer_ns)},
                                     {"name", consumer_claim_name(r)}}}}}}));
}

json::value build_consumer_claim(const sharedvolume& v, std::string_view consumer_ns) {
  const auto r = ref_of(v);
  return with_hash(json::value(json::object{
      {"apiVersion", "v1"},
      {"kind", "PersistentVolumeClaim"},
      {"metadata", metadata(v, consumer_claim_name(r), std::string(consumer_ns))},
      {"spec",
       json::object{
           {"accessModes", json::array{v.spec.read_only ? "ReadOnlyMany" : "ReadWriteMany"}},
           {"storageClassName", ""},
           {"volumeName", consumer_pv_name(r, consumer_ns)},
           {"resources",
            json::object{{"requests",
                          json::object{{"storage", v.spec.storage.external
                                                       ? std::string(k_default_shared_volume_size)
                                                       : v.spec.storage.size}}}}}}}}));
}

std::string spec_hash(const json::value& object) {
  // What we set: everything but the metadata's hash annotation itself and server-set fields.
  json::value copy = object;
  if (auto* m = copy.as_object().find("metadata"); m != nullptr && m->is_object()) {
    if (auto* a = m->as_object().find("annotations"); a != nullptr && a->is_object())
      a->as_object().erase(k_spec_hash_annotation);
  }
  return hex16(fnv1a64(json::dump(copy)));
}

mount_decision decide_mounts(const json::value& pod, const std::string& ns,
                             const volume_finder& find) {
  mount_decision d;
  auto annotations = read_string_map(pod.at_path({"metadata", "annotations"}));
  std::vector<volume_ref> wanted;
  auto add_names = [&](std::string_view key, bool cluster) {
    auto it = annotations.find(std::string(key));
    if (it == annotations.end()) return;
    std::string list = it->second;
    size_t start = 0;
    while (start <= list.size()) {
      auto comma = list.find(',', start);
      auto name = trim(list.substr(start, comma == std::string::npos ? comma : comma - start));
      if (!name.empty()) wanted.push_back({cluster, cluster ? std::string() : ns, name});
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  };
  add_names(k_shared_volume_annotation, false);
  add_names(k_cluster_shared_volume_annotation, true);
  if (wanted.empty()) {
    d.message = "no shared volume annotation";
    return d;
  }
  const auto* volumes = pod.at_path({"spec", "volumes"});
  std::set<std::string> taken_paths;
  json::array new_volumes =
      volumes != nullptr && volumes->is_array() ? volumes->as_array() : json::array{};
  std::vector<std::pair<std::string, json::value>> mounts;  // volume name, volumeMount
  for (const auto& r : wanted) {
    const auto* v = find(r);
    if (v == nullptr) {
      d.what = mount_decision::kind::refuse;
      d.message =
          to_string(r) + " does not exist: create it first, or fix the pod's annotation " +
          std::string(r.cluster ? k_cluster_shared_volume_annotation : k_shared_volume_annotation);
      return d;
    }
    if (v->metadata.deletion_timestamp) {
      d.what = mount_decision::kind::refuse;
      d.message = to_string(r) + " is being deleted: it takes no new consumers";
      return d;
    }
    std::string mount_path = "/shared/" + r.name;
    for (const auto& key : {std::string(k_shared_volume_mount_path_annotation) + "." + r.name,
                            std::string(k_shared_volume_mount_path_annotation)}) {
      auto it = annotations.find(key);
      if (it == annotations.end()) continue;
      if (key == k_shared_volume_mount_path_annotation && wanted.size() > 1) continue;
      mount_path = it->second;
      break;
    }
    if (mount_path.empty() || mount_path.front() != '/' ||
        mount_path.find("/../") != std::string::npos ||
        (mount_path.size() >= 3 && mount_path.substr(mount_path.size() - 3) == "/..") ||
        mount_path.find(':') != std::string::npos) {
      d.what = mount_decision::kind::refuse;
      d.message = "the mount path \"" + mount_path + "\" of " + to_string(r) +
                  " must be an absolute path without \"..\" (annotation " +
                  std::string(k_shared_volume_mount_path_annotation) + ")";
      return d;
    }
    if (!taken_paths.insert(mount_path).second) {
      d.what = mount_decision::kind::refuse;
      d.message = "two shared volumes would be mounted at " + mount_path +
                  ": give each its own with " + std::string(k_shared_volume_mount_path_annotation) +
                  ".<name>";
      return d;
    }
    const std::string vol_name = "tidesync-" + object_base(r);
    bool have = std::any_of(new_volumes.begin(), new_volumes.end(),
                            [&](const json::value& x) { return x.get_string("name") == vol_name; });
    if (have) {
      d.message = "already mounted";
      return d;
    }
    new_volumes.push_back(json::value(json::object{
        {"name", vol_name},
        {"persistentVolumeClaim",
         json::object{{"claimName", consumer_claim_name(r)}, {"readOnly", v->spec.read_only}}}}));
    mounts.emplace_back(vol_name, json::value(json::object{{"name", vol_name},
                                                           {"mountPath", mount_path},
                                                           {"readOnly", v->spec.read_only}}));
    d.uses.push_back(v);
  }
  json::array ops;
  auto op_add = [](std::string path, json::value value) {
    return json::value(
        json::object{{"op", "add"}, {"path", std::move(path)}, {"value", std::move(value)}});
  };
  ops.push_back(op_add("/spec/volumes", json::value(std::move(new_volumes))));
  for (const char* list : {"containers", "initContainers"}) {
    const auto* cs = pod.at_path({"spec", list});
    if (cs == nullptr || !cs->is_array()) continue;
    json::array updated = cs->as_array();
    for (auto& c : updated) {
      json::array vm = c.at("volumeMounts") != nullptr && c.at("volumeMounts")->is_array()
                           ? c.at("volumeMounts")->as_array()
                           : json::array{};
      for (const auto& [name, m] : mounts)
        vm.push_back(m);
      c.as_object().set("volumeMounts", json::value(std::move(vm)));
    }
    ops.push_back(op_add(std::string("/spec/") + list, json::value(std::move(updated))));
  }
  const auto* labels = pod.at_path({"metadata", "labels"});
  if (labels != nullptr && labels->is_object())
    ops.push_back(op_add("/metadata/labels/tidesync.io~1shared-volume-consumer", "true"));
  else
    ops.push_back(
        op_add("/metadata/labels",
               json::value(json::object{{std::string(k_shared_volume_consumer_label), "true"}})));
  d.what = mount_decision::kind::patch;
  d.patch = json::value(std::move(ops));
  return d;
}

}  // namespace tidesync::config
