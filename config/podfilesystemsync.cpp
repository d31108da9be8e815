// PodFilesystemSync parsing and validation (see podfilesystemsync.hpp).
#include "config/podfilesystemsync.hpp"

#include <algorithm>
#include <set>
#include <utility>

#include "config/env_var.hpp"
#include "runtime/cron.hpp"

namespace tidesync::config {

namespace {

bool control(char c) {
  auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

// A container name: DNS-1123 label.
std::string check_dns_label(std::string_view s) {
  if (s.empty() || s.size() > 63) return "must be 1 to 63 characters";
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  for (char c : s)
    if (!alnum(c) && c != '-') return "may hold only lower-case letters, digits and '-'";
  if (!alnum(s.front()) || !alnum(s.back()))
    return "must start and end with a lower-case letter or digit";
  return {};
}

// An absolute local path without "." / ".." parts, '/' collapsed, no trailing '/'; or the
// problem.
expected<std::string> normalize_local_path(std::string_view path) {
  if (path.empty() || path.front() != '/')
    return make_error(errc::invalid_argument,
                      "must be an absolute path inside the container, e.g. /var/www/data");
  if (std::any_of(path.begin(), path.end(), control))
    return make_error(errc::invalid_argument, "contains a control character");
  if (path.size() > 4096) return make_error(errc::invalid_argument, "is longer than 4096 bytes");
  std::string out;
  size_t start = 1;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    auto seg = path.substr(start, end - start);
    if (seg == "." || seg == "..")
      return make_error(errc::invalid_argument,
                        "contains a \".\" or \"..\" part; write the folder's plain path");
    if (!seg.empty()) {
      out += '/';
      out += seg;
    }
    start = end + 1;
  }
  return out.empty() ? std::string("/") : out;
}

// uid/gid: an integer 0..2^31-1 (or such a string, for annotations).
void read_id(const json::value& obj, std::string_view key, const std::string& path, problems& p,
             std::optional<int64_t>& out) {
  auto v = read_int(obj, key, path, p);
  if (!v) return;
  if (*v < 0 || *v > k_max_posix_id)
    p.invalid(path, std::to_string(*v) + " is out of range; write a number from 0 to " +
                        std::to_string(k_max_posix_id));
  else
    out = *v;
}

void read_flag(const json::value& obj, std::string_view key, const std::string& path, problems& p,
               bool& out) {
  if (auto v = read_bool(obj, key, path, p)) out = *v;
}

// An optional object member: nullptr when absent or null; a non-object is reported.
const json::value* object_member(const json::value& obj, std::string_view key,
                                 const std::string& path, std::string_view example, problems& p) {
  const json::value* v = obj.at(key);
  if (v == nullptr || v->is_null()) return nullptr;
  if (!v->is_object()) {
    p.type(path, example, *v);
    return nullptr;
  }
  return v;
}

void parse_selector(const json::value& spec, problems& p, podfilesystemsync_spec& out) {
  const json::value* sel = spec.at("podSelector");
  if (sel == nullptr || sel->is_null()) {
    p.required("spec.podSelector",
               "needs the pods to sync, e.g. podSelector: {matchLabels: {app: my-app}}");
    return;
  }
  if (!sel->is_object()) {
    p.type("spec.podSelector", "an object such as {matchLabels: {app: my-app}}", *sel);
    return;
  }
  warn_unknown_fields(*sel, "spec.podSelector", {"matchLabels", "matchExpressions"}, p);
  auto s = k8s::label_selector::from_json(*sel);
  if (!s) {
    p.invalid("spec.podSelector", s.error().message +
                                      "; write matchLabels {key: value} and/or matchExpressions "
                                      "[{key, operator: In|NotIn|Exists|DoesNotExist, values}]");
    return;
  }
  if (s->empty()) {
    p.invalid("spec.podSelector",
              "selects every pod in the namespace; add matchLabels or matchExpressions that "
              "pick only the pods to sync, e.g. matchLabels: {app: my-app}");
    return;
  }
  out.pod_selector = std::move(*s);
}

void parse_placement(const json::value& spec, problems& p, init_container_placement& out) {
  const std::string path = "spec.initContainerPlacement";
  const json::value* v =
      object_member(spec, "initContainerPlacement", path, "an object such as {placement: last}", p);
  if (v == nullptr) return;
  warn_unknown_fields(*v, path, podfilesystemsync_placement_fields(), p);
  bool placement_ok = true;
  if (auto s = read_string(*v, "placement", path + ".placement", p)) {
    if (auto pl = parse_container_placement(*s))
      out.placement = *pl;
    else {
      placement_ok = false;
      p.invalid(path + ".placement",
                "\"" + *s + "\" is not a placement; write before, after, first or last");
    }
  }
  if (auto s = read_string(*v, "containerReference", path + ".containerReference", p)) {
    if (!s->empty())
      if (auto err = check_dns_label(*s); !err.empty())
        p.invalid(path + ".containerReference", "\"" + *s + "\" is not a container name: " + err);
    out.container_reference = *s;
  }
  if (!placement_ok) return;
  bool relative =
      out.placement == container_placement::before || out.placement == container_placement::after;
  if (relative && out.container_reference.empty())
    p.required(path + ".containerReference",
               "placement " + std::string(to_string(out.placement)) +
                   " needs the init container to place it next to, e.g. containerReference: "
                   "migrate-db");
  if (!relative && !out.container_reference.empty())
    p.invalid(path + ".containerReference",
              "placement " + std::string(to_string(out.placement)) +
                  " takes no containerReference; remove it, or use placement before or after");
}

void parse_sync_options(const json::value& spec, problems& p, sync_options& out) {
  const std::string path = "spec.syncOptions";
  const json::value* v =
      object_member(spec, "syncOptions", path, "an object such as {method: scheduler}", p);
  if (v == nullptr) return;
  warn_unknown_fields(*v, path, podfilesystemsync_sync_options_fields(), p);
  if (auto s = read_string(*v, "method", path + ".method", p)) {
    if (auto m = parse_sync_method(*s))
      out.method = *m;
    else
      p.invalid(path + ".method", "\"" + *s + "\" is not a method; write scheduler or fsnotify");
  }
  if (auto s = read_string(*v, "schedule", path + ".schedule", p)) {
    auto parsed = cron::schedule::parse(*s, cron::parse_options{.allow_seconds = true});
    if (!parsed)
      p.invalid(path + ".schedule", "\"" + *s + "\": " + parsed.error().message +
                                        " (e.g. \"@every 5m\" or \"0 */15 * * * *\")");
    else
      out.schedule = parsed->spec();
  }
  if (const json::value* m = v->at("maxOneSyncPerMinutes"); m != nullptr && !m->is_null()) {
    const std::string mp = path + ".maxOneSyncPerMinutes";
    std::optional<int64_t> n;
    if (m->is_int()) {
      n = m->as_int();
    } else if (m->is_string()) {
      const auto& s = m->as_string();
      if (!s.empty() && s.size() <= 9 && s.find_first_not_of("0123456789") == std::string::npos)
        n = std::stoll(s);
    } else {
      p.type(mp, "a number of minutes such as 15 or \"15\"", *m);
    }
    if ((m->is_int() || m->is_string()) && (!n || *n < 1 || *n > 525600))
      p.invalid(mp, describe(*m) +
                        " is not a number of minutes; write a whole number from 1 to "
                        "525600, e.g. \"15\"");
    else if (n)
      out.max_one_sync_per_minutes = n;
  }
  if (const json::value* perm = object_member(*v, "permissions", path + ".permissions",
                                              "an object such as {uid: 1001, gid: 1001}", p)) {
    warn_unknown_fields(*perm, path + ".permissions", {"uid", "gid"}, p);
    read_id(*perm, "uid", path + ".permissions.uid", p, out.permissions.uid);
    read_id(*perm, "gid", path + ".permissions.gid", p, out.permissions.gid);
  }
  if (const json::value* c = object_member(*v, "cleanUp", path + ".cleanUp",
                                           "an object such as {remote: true, local: true}", p)) {
    warn_unknown_fields(*c, path + ".cleanUp", {"remote", "local"}, p);
    read_flag(*c, "remote", path + ".cleanUp.remote", p, out.clean_up.remote);
    read_flag(*c, "local", path + ".cleanUp.local", p, out.clean_up.local);
  }
  read_flag(*v, "forceRemote", path + ".forceRemote", p, out.force_remote);
  read_flag(*v, "forceLocal", path + ".forceLocal", p, out.force_local);
  if (out.max_one_sync_per_minutes && out.method != sync_method::fsnotify)
    p.warn(path + ".maxOneSyncPerMinutes: only used with method fsnotify; ignored");
}

void parse_env(const json::value& spec, problems& p, podfilesystemsync_spec& out) {
  if (const json::value* env =
          object_member(spec, "env", "spec.env", "a map such as {REMOTE_TYPE: s3}", p)) {
    for (const auto& [k, v] : env->as_object()) {
      const std::string path = "spec.env." + k;
      if (!valid_env_name(k))
        p.invalid(path, "\"" + k +
                            "\" is not an environment variable name; use letters, digits and "
                            "'_', not starting with a digit, e.g. REMOTE_TYPE");
      if (!v.is_string())
        p.type(path, "a string (quote numbers and booleans, e.g. \"9000\")", v);
      else
        out.env[k] = v.as_string();
    }
  }
  if (const json::value* list = spec.at("envFromSecret"); list != nullptr && !list->is_null()) {
    if (!list->is_array()) {
      p.type("spec.envFromSecret", "a list such as [{ref: my-secret}]", *list);
    } else {
      std::set<std::string> seen;
      size_t i = 0;
      for (const auto& e : list->as_array()) {
        const std::string path = "spec.envFromSecret[" + std::to_string(i++) + "]";
        if (!e.is_object()) {
          p.type(path, "an object such as {ref: my-secret}", e);
          continue;
        }
        warn_unknown_fields(e, path, {"ref"}, p);
        auto ref = read_string(e, "ref", path + ".ref", p);
        if (!ref || ref->empty()) {
          if (e.at("ref") == nullptr || (ref && ref->empty()))
            p.required(path + ".ref", "needs the Secret's name, e.g. ref: my-remote-credentials");
          continue;
        }
        if (auto err = check_dns_subdomain(*ref); !err.empty())
          p.invalid(path + ".ref", "\"" + *ref + "\" is not a Secret name: " + err);
        else if (!seen.insert(*ref).second)
          p.invalid(path + ".ref", "Secret \"" + *ref + "\" is listed twice; remove one");
        else
          out.env_from_secret.push_back(*ref);
      }
    }
  }
}

}  // namespace

std::string_view to_string(container_placement p) {
  switch (p) {
    case container_placement::before:
      return "before";
    case container_placement::after:
      return "after";
    case container_placement::first:
      return "first";
    case container_placement::last:
      return "last";
  }
  return "last";
}

std::optional<container_placement> parse_container_placement(std::string_view s) {
  for (auto p : {container_placement::before, container_placement::after,
                 container_placement::first, container_placement::last})
    if (s == to_string(p)) return p;
  return std::nullopt;
}

std::string_view to_string(sync_method m) {
  return m == sync_method::fsnotify ? "fsnotify" : "scheduler";
}

std::optional<sync_method> parse_sync_method(std::string_view s) {
  if (s == "scheduler") return sync_method::scheduler;
  if (s == "fsnotify") return sync_method::fsnotify;
  return std::nullopt;
}

const std::vector<std::string_view>& forbidden_local_roots() {
  static const std::vector<std::string_view> r = {"/",        "/bin",  "/usr",  "/usr/bin",
                                                  "/usr/lib", "/home", "/etc",  "/proc",
                                                  "/sys",     "/dev",  "/boot", "/root"};
  return r;
}

const std::vector<std::string_view>& podfilesystemsync_spec_fields() {
  static const std::vector<std::string_view> f = {"podSelector",
                                                  "localPath",
                                                  "remotePath",
                                                  "initContainerPlacement",
                                                  "syncOptions",
                                                  "allowedDirectories",
                                                  "restoreRemoteOnFirstRun",
                                                  "env",
                                                  "envFromSecret",
                                                  "automaticEncryption",
                                                  "unhealthyAfterFailures"};
  return f;
}

const std::vector<std::string_view>& podfilesystemsync_placement_fields() {
  static const std::vector<std::string_view> f = {"containerReference", "placement"};
  return f;
}

const std::vector<std::string_view>& podfilesystemsync_sync_options_fields() {
  static const std::vector<std::string_view> f = {"method",      "schedule", "maxOneSyncPerMinutes",
                                                  "permissions", "cleanUp",  "forceRemote",
                                                  "forceLocal"};
  return f;
}

const std::vector<std::string_view>& podfilesystemsync_status_fields() {
  static const std::vector<std::string_view> f = {"observedGeneration", "conditions", "pods",
                                                  "lastSync"};
  return f;
}

const std::vector<std::string_view>& podfilesystemsync_pod_status_fields() {
  static const std::vector<std::string_view> f = {
      "name",  "injected", "lastSyncTime",        "kind",   "bytes",
      "files", "deleted",  "consecutiveFailures", "result", "message"};
  return f;
}

expected<podfilesystemsync> parse_podfilesystemsync(const json::value& object,
                                                    std::vector<std::string>* warnings) {
  problems p;
  podfilesystemsync out;
  check_type_meta(object, k_podfilesystemsync_kind, p);
  out.metadata = read_meta(object, p);
  const json::value* spec = object.at("spec");
  if (spec == nullptr || !spec->is_object()) {
    p.required("spec", "needs a spec with podSelector, localPath and remotePath");
    if (warnings != nullptr) *warnings = p.take_warnings();
    return p.to_error(object_label(k_podfilesystemsync_kind, out.metadata));
  }
  auto& s = out.spec;
  warn_unknown_fields(*spec, "spec", podfilesystemsync_spec_fields(), p);
  parse_selector(*spec, p, s);

  if (auto v = read_string(*spec, "localPath", "spec.localPath", p); v && !v->empty()) {
    if (auto n = normalize_local_path(*v); !n) {
      p.invalid("spec.localPath", "\"" + *v + "\" " + n.error().message);
    } else {
      const auto& roots = forbidden_local_roots();
      if (std::find(roots.begin(), roots.end(), *n) != roots.end())
        p.invalid("spec.localPath",
                  "\"" + *v +
                      "\" is a system folder; syncing it could erase the operating system. "
                      "Name the application's own folder, e.g. /var/www/data");
      s.local_path = *n;
    }
  } else if (!v) {
    if (spec->at("localPath") == nullptr || spec->at("localPath")->is_null())
      p.required("spec.localPath", "needs the folder inside the pod, e.g. localPath: /data");
  } else {
    p.required("spec.localPath", "must not be empty; write the folder inside the pod, e.g. /data");
  }

  if (auto v = read_string(*spec, "remotePath", "spec.remotePath", p); v && !v->empty()) {
    if (auto t = parse_template(*v); !t)
      p.invalid("spec.remotePath", t.error().message);
    else
      s.remote_path = std::move(*t);
  } else if (!v) {
    if (spec->at("remotePath") == nullptr || spec->at("remotePath")->is_null())
      p.required("spec.remotePath",
                 "needs the folder on the remote, e.g. remotePath: my-bucket/{{ "
                 "pod.metadata.name }}");
  } else {
    p.required("spec.remotePath",
               "must not be empty (that would sync the remote's root); write e.g. my-bucket/app");
  }

  parse_placement(*spec, p, s.placement);
  parse_sync_options(*spec, p, s.sync);

  if (const json::value* a =
          object_member(*spec, "allowedDirectories", "spec.allowedDirectories",
                        "an object such as {toRemote: true, fromRemote: true}", p)) {
    warn_unknown_fields(*a, "spec.allowedDirectories", {"toRemote", "fromRemote"}, p);
    read_flag(*a, "toRemote", "spec.allowedDirectories.toRemote", p, s.directories.to_remote);
    read_flag(*a, "fromRemote", "spec.allowedDirectories.fromRemote", p, s.directories.from_remote);
    if (!s.directories.to_remote && !s.directories.from_remote)
      p.warn("spec.allowedDirectories: toRemote and fromRemote are both false; nothing is synced");
  }
  read_flag(*spec, "restoreRemoteOnFirstRun", "spec.restoreRemoteOnFirstRun", p,
            s.restore_remote_on_first_run);
  parse_env(*spec, p, s);

  if (const json::value* e =
          object_member(*spec, "automaticEncryption", "spec.automaticEncryption",
                        "an object such as {enabled: true, secretName: my-app-encryption}", p)) {
    warn_unknown_fields(*e, "spec.automaticEncryption", {"enabled", "secretName"}, p);
    read_flag(*e, "enabled", "spec.automaticEncryption.enabled", p, s.encryption.enabled);
    if (auto n = read_string(*e, "secretName", "spec.automaticEncryption.secretName", p);
        n && !n->empty()) {
      if (auto err = check_dns_subdomain(*n); !err.empty())
        p.invalid("spec.automaticEncryption.secretName",
                  "\"" + *n + "\" is not a Secret name: " + err);
      else
        s.encryption.secret_name = *n;
    } else if (s.encryption.enabled &&
               (n || e->at("secretName") == nullptr || e->at("secretName")->is_null())) {
      p.required("spec.automaticEncryption.secretName",
                 "encryption needs the Secret that keeps the key, e.g. secretName: "
                 "my-app-encryption (back it up: without it the data cannot be read)");
    }
  }

  if (auto v = read_int(*spec, "unhealthyAfterFailures", "spec.unhealthyAfterFailures", p)) {
    if (*v < 0 || *v > 1000000)
      p.invalid("spec.unhealthyAfterFailures",
                "must be between 0 (never turn unhealthy) and 1000000 failed syncs in a row");
    else
      s.unhealthy_after_failures = *v;
  }

  if (const json::value* st = object.at("status"); st != nullptr && st->is_object()) {
    problems local;
    out.status.observed_generation = st->get_int("observedGeneration");
    out.status.conditions = parse_conditions(st->at("conditions"), "status.conditions", local);
    auto read_pod = [&](const json::value& e, const std::string& path) {
      pod_sync_status ps;
      ps.name = std::string(e.get_string("name"));
      if (const auto* inj = e.at("injected"); inj != nullptr && inj->is_bool())
        ps.injected = inj->as_bool();
      ps.last_sync_time = read_time(e, "lastSyncTime", path + ".lastSyncTime", local);
      ps.kind = std::string(e.get_string("kind"));
      ps.bytes = e.get_int("bytes");
      ps.files = e.get_int("files");
      ps.deleted = e.get_int("deleted");
      ps.consecutive_failures = e.get_int("consecutiveFailures");
      ps.result = std::string(e.get_string("result"));
      ps.message = std::string(e.get_string("message"));
      return ps;
    };
    if (const json::value* pods = st->at("pods"); pods != nullptr && pods->is_array()) {
      size_t i = 0;
      for (const auto& e : pods->as_array()) {
        const std::string path = "status.pods[" + std::to_string(i++) + "]";
        if (e.is_object()) out.status.pods.push_back(read_pod(e, path));
      }
    }
    if (const json::value* last = st->at("lastSync"); last != nullptr && last->is_object())
      out.status.last_sync = read_pod(*last, "status.lastSync");
    demote(local, p);
  }
  if (warnings != nullptr) *warnings = p.take_warnings();
  if (!p.empty()) return p.to_error(object_label(k_podfilesystemsync_kind, out.metadata));
  return out;
}

expected<sync_permissions> effective_permissions(
    const sync_permissions& spec, const std::map<std::string, std::string>& pod_annotations) {
  sync_permissions out = spec;
  for (auto [key, slot] : {std::pair{k_volume_user_id_annotation, &out.uid},
                           std::pair{k_volume_group_id_annotation, &out.gid}}) {
    auto it = pod_annotations.find(std::string(key));
    if (it == pod_annotations.end()) continue;
    const auto& v = it->second;
    if (v.empty() || v.size() > 10 || v.find_first_not_of("0123456789") != std::string::npos ||
        std::stoll(v) > k_max_posix_id)
      return make_error(errc::invalid_argument, "pod annotation " + std::string(key) + "=\"" + v +
                                                    "\" is not an id; write a number from 0 to " +
                                                    std::to_string(k_max_posix_id) +
                                                    ", e.g. \"1001\"");
    *slot = std::stoll(v);
  }
  return out;
}

json::value to_json(const pod_sync_status& p) {
  json::object o{{"name", p.name}};
  if (!p.injected) o.set("injected", false);
  o.set("lastSyncTime", time_or_null(p.last_sync_time));
  if (!p.kind.empty()) o.set("kind", p.kind);
  o.set("bytes", p.bytes);
  o.set("files", p.files);
  if (p.deleted != 0) o.set("deleted", p.deleted);
  if (p.consecutive_failures != 0) o.set("consecutiveFailures", p.consecutive_failures);
  o.set("result", p.result.empty() ? json::value() : json::value(p.result));
  o.set("message", p.message.empty() ? json::value() : json::value(p.message));
  return json::value(std::move(o));
}

json::value to_json(const podfilesystemsync_status& s) {
  json::array pods;
  for (const auto& p : s.pods)
    pods.push_back(to_json(p));
  json::object o{
      {"observedGeneration", s.observed_generation},
      {"conditions", to_json(s.conditions)},
      {"pods", std::move(pods)},
  };
  if (s.last_sync) o.set("lastSync", to_json(*s.last_sync));
  return json::value(std::move(o));
}

}  // namespace tidesync::config
