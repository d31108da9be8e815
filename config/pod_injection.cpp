#include "config/pod_injection.hpp"

#include <algorithm>
#include <utility>

#include "config/job_builder.hpp"

namespace tidesync::config {
namespace {

using kind = injection_decision::kind;

std::map<std::string, std::string> string_map_at(const json::value& pod, const char* field) {
  const auto* m = pod.at_path({"metadata", field});
  return read_string_map(m);
}

bool has_container(const json::value* list, std::string_view name) {
  if (list == nullptr || !list->is_array()) return false;
  return std::any_of(list->as_array().begin(), list->as_array().end(),
                     [&](const json::value& c) { return c.get_string("name") == name; });
}

// The volume some container of the pod mounts at `path` (its volumeMounts entry), or nullptr.
const json::value* mount_at(const json::value& pod, const std::string& path) {
  for (const char* list : {"containers", "initContainers"}) {
    const auto* cs = pod.at_path({"spec", list});
    if (cs == nullptr || !cs->is_array()) continue;
    for (const auto& c : cs->as_array()) {
      const auto* mounts = c.at("volumeMounts");
      if (mounts == nullptr || !mounts->is_array()) continue;
      for (const auto& m : mounts->as_array()) {
        std::string p(m.get_string("mountPath"));
        while (p.size() > 1 && p.back() == '/')
          p.pop_back();
        if (p == path) return &m;
      }
    }
  }
  return nullptr;
}

// "/" in a JSON pointer token is "~1", "~" is "~0".
std::string pointer_token(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

json::value op_add(std::string path, json::value value) {
  return json::value(
      json::object{{"op", "add"}, {"path", std::move(path)}, {"value", std::move(value)}});
}

struct container_parts {
  json::array env;
  json::array env_from;
  json::value mount;
  json::value security;
};

json::value container(const injection_settings& settings, std::string_view name, json::array args,
                      const container_parts& p) {
  json::object c{
      {"name", std::string(name)},
      {"image", settings.image},
      {"args", std::move(args)},
      {"volumeMounts",
       json::array{p.mount, json::value(json::object{{"name", std::string(k_agent_tmp_volume)},
                                                     {"mountPath", "/tmp"}})}},
      {"securityContext", p.security},
      {"resources", json::object{{"requests", json::object{{"cpu", "10m"}, {"memory", "32Mi"}}},
                                 {"limits", json::object{{"memory", "256Mi"}}}}},
  };
  if (!p.env.empty()) c.set("env", p.env);
  if (!p.env_from.empty()) c.set("envFrom", p.env_from);
  return json::value(std::move(c));
}

}  // namespace

injection_decision decide_injection(const json::value& pod,
                                    const std::vector<podfilesystemsync>& syncs,
                                    const injection_settings& settings,
                                    std::string_view report_id) {
  injection_decision d;
  const auto labels = string_map_at(pod, "labels");
  const auto annotations = string_map_at(pod, "annotations");
  if (auto it = labels.find(std::string(k_volume_syncing_label));
      it == labels.end() || it->second != "true") {
    d.message = "the pod is not labelled " + std::string(k_volume_syncing_label) + "=true";
    return d;
  }
  const auto* inits = pod.at_path({"spec", "initContainers"});
  const auto* mains = pod.at_path({"spec", "containers"});
  if (annotations.count(std::string(k_injected_annotation)) != 0 ||
      has_container(inits, k_restore_container) || has_container(inits, k_sidecar_container) ||
      has_container(mains, k_sidecar_container)) {
    d.message = "already injected";
    return d;
  }
  std::vector<const podfilesystemsync*> chosen;
  for (const auto& s : syncs)
    if (s.spec.pod_selector.matches(labels)) chosen.push_back(&s);
  if (chosen.empty()) {
    d.message = "no PodFilesystemSync of the namespace selects the pod";
    return d;
  }
  if (chosen.size() > 1) {
    std::string names;
    for (const auto* s : chosen)
      names += (names.empty() ? "" : ", ") + s->metadata.name;
    d.what = kind::refuse;
    d.message = "PodFilesystemSyncs " + names +
                " all select this pod; two syncs of one volume would overwrite each other: make "
                "their podSelectors exclusive";
    return d;
  }
  const auto& s = *chosen.front();
  const auto& spec = s.spec;
  const std::string who = "PodFilesystemSync " + s.metadata.name;
  if (!spec.directories.from_remote && !spec.directories.to_remote) {
    d.message = who + " has both allowedDirectories off: nothing to add";
    return d;
  }
  // What stops the injection: refused when the pod would restore (starting empty and then
  // syncing could empty the remote), else admitted untouched.
  auto fail = [&](std::string why) {
    d.what = spec.directories.from_remote ? kind::refuse : kind::untouched;
    d.message = who + ": " + std::move(why);
    return d;
  };
  auto remote = render(spec.remote_path, pod);
  if (!remote) return fail("remotePath: " + remote.error().message);
  auto perms = effective_permissions(spec.sync.permissions, annotations);
  if (!perms) return fail(perms.error().message);
  const auto* mount = mount_at(pod, spec.local_path);
  if (mount == nullptr)
    return fail("no container of the pod mounts a volume at localPath " + spec.local_path +
                ": mount the volume to sync there");

  container_parts parts;
  for (const auto& [k, v] : spec.env)
    parts.env.push_back(json::value(json::object{{"name", k}, {"value", v}}));
  for (const auto& name : spec.env_from_secret)
    parts.env_from.push_back(
        json::value(json::object{{"secretRef", json::object{{"name", name}}}}));
  if (spec.encryption.enabled)
    parts.env_from.push_back(json::value(
        json::object{{"secretRef", json::object{{"name", spec.encryption.secret_name}}}}));
  const bool reports =
      !settings.report_url.empty() && !report_id.empty() && settings.report_token != nullptr;
  if (reports) {
    // Last, so the spec's env cannot redirect the reports.
    auto lit = [&](const char* k, std::string v) {
      parts.env.push_back(json::value(json::object{{"name", k}, {"value", std::move(v)}}));
    };
    auto field = [&](const char* k, const char* path) {
      parts.env.push_back(json::value(json::object{
          {"name", k},
          {"valueFrom", json::object{{"fieldRef", json::object{{"fieldPath", path}}}}}}));
    };
    field("POD_NAME", "metadata.name");
    field("POD_NAMESPACE", "metadata.namespace");
    lit("TIDESYNC_PFS_NAME", s.metadata.name);
    lit("TIDESYNC_REPORT_URL", settings.report_url);
    lit("TIDESYNC_REPORT_TOKEN",
        settings.report_token(s.metadata.namespace_, s.metadata.name, report_id));
    if (!settings.report_ca.empty()) lit("TIDESYNC_REPORT_CA", settings.report_ca);
  }
  json::object m{{"name", std::string(mount->get_string("name"))}, {"mountPath", spec.local_path}};
  if (auto sub = mount->get_string("subPath"); !sub.empty()) m.set("subPath", std::string(sub));
  parts.mount = json::value(std::move(m));
  const int64_t uid = perms->uid.value_or(settings.default_uid);
  parts.security = restricted_container_security(uid);
  parts.security.as_object()["runAsGroup"] = perms->gid.value_or(uid);

  auto common = [&](json::array args) {
    args.push_back("--local");
    args.push_back(spec.local_path);
    args.push_back("--remote");
    args.push_back(*remote);
    if (spec.encryption.enabled) args.push_back("--encrypt");
    return args;
  };
  json::array init_list = inits != nullptr && inits->is_array() ? inits->as_array() : json::array{};
  json::array main_list = mains != nullptr && mains->is_array() ? mains->as_array() : json::array{};
  size_t at = init_list.size();  // where the restore (and a native sidecar after it) goes
  const auto& ref = spec.placement.container_reference;
  switch (spec.placement.placement) {
    case container_placement::first:
      at = 0;
      break;
    case container_placement::last:
      break;
    case container_placement::before:
    case container_placement::after: {
      auto it = std::find_if(init_list.begin(), init_list.end(),
                             [&](const json::value& c) { return c.get_string("name") == ref; });
      if (it == init_list.end())
        return fail("initContainerPlacement.containerReference names \"" + ref +
                    "\", which is not an init container of this pod");
      at = static_cast<size_t>(it - init_list.begin()) +
           (spec.placement.placement == container_placement::after ? 1 : 0);
      break;
    }
  }
  if (spec.directories.from_remote) {
    json::array args{"agent", "restore"};
    args = common(std::move(args));
    if (!spec.sync.clean_up.local) args.push_back("--no-delete");
    if (spec.sync.force_local) args.push_back("--force-delete-local-dir");
    if (!spec.restore_remote_on_first_run) args.push_back("--skip-first-run");
    init_list.insert(init_list.begin() + static_cast<long>(at),
                     container(settings, k_restore_container, std::move(args), parts));
    ++at;
  }
  if (spec.directories.to_remote) {
    json::array args{"agent", "sidecar"};
    args = common(std::move(args));
    args.push_back("--method");
    args.push_back(std::string(to_string(spec.sync.method)));
    args.push_back("--schedule");
    args.push_back(spec.sync.schedule);
    if (spec.sync.max_one_sync_per_minutes) {
      args.push_back("--max-one-sync-per-minutes");
      args.push_back(std::to_string(*spec.sync.max_one_sync_per_minutes));
    }
    if (!spec.sync.clean_up.remote) args.push_back("--no-delete");
    if (spec.sync.force_remote) args.push_back("--force-delete-remote-dir");
    if (spec.unhealthy_after_failures > 0) {
      args.push_back("--unhealthy-after");
      args.push_back(std::to_string(spec.unhealthy_after_failures));
      args.push_back("--health-file");
      args.push_back(std::string(k_health_file));
    }
    auto sidecar = container(settings, k_sidecar_container, std::move(args), parts);
    if (spec.unhealthy_after_failures > 0)
      sidecar.as_object().set(
          "livenessProbe",
          json::object{{"exec", json::object{{"command", json::array{"tidesync", "agent", "health",
                                                                     "--health-file",
                                                                     std::string(k_health_file)}}}},
                       {"periodSeconds", 30},
                       {"failureThreshold", 1}});
    if (settings.native_sidecars) {
      // Starts after the restore (init containers run in order) and stops after the app.
      sidecar.as_object().set("restartPolicy", "Always");
      init_list.insert(init_list.begin() + static_cast<long>(at), std::move(sidecar));
    } else {
      main_list.push_back(std::move(sidecar));
    }
  }
  json::array ops;
  ops.push_back(op_add("/spec/initContainers", json::value(std::move(init_list))));
  // A writable /tmp for the agents (their root filesystem is read-only): the health file.
  json::value tmp(json::object{{"name", std::string(k_agent_tmp_volume)},
                               {"emptyDir", json::object{{"sizeLimit", "16Mi"}}}});
  if (const auto* vols = pod.at_path({"spec", "volumes"}); vols != nullptr && vols->is_array()) {
    json::array all = vols->as_array();
    all.push_back(std::move(tmp));
    ops.push_back(op_add("/spec/volumes", json::value(std::move(all))));
  } else {
    ops.push_back(op_add("/spec/volumes", json::value(json::array{std::move(tmp)})));
  }
  if (!settings.native_sidecars && spec.directories.to_remote)
    ops.push_back(op_add("/spec/containers", json::value(std::move(main_list))));
  std::vector<std::pair<std::string_view, std::string>> notes{
      {k_injected_annotation, s.metadata.name}};
  if (reports) notes.emplace_back(k_report_id_annotation, std::string(report_id));
  const auto* existing = pod.at_path({"metadata", "annotations"});
  if (existing != nullptr && existing->is_object()) {
    for (auto& [k, v] : notes)
      ops.push_back(op_add("/metadata/annotations/" + pointer_token(k), json::value(std::move(v))));
  } else {
    json::object all;
    for (auto& [k, v] : notes)
      all.set(std::string(k), std::move(v));
    ops.push_back(op_add("/metadata/annotations", json::value(std::move(all))));
  }
  d.what = kind::patch;
  d.by = s.metadata.name;
  d.patch = json::value(std::move(ops));
  return d;
}

}  // namespace tidesync::config
