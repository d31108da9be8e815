#include "config/datasync_job.hpp"

#include <cstdio>
#include <map>

#include "config/job_builder.hpp"
#include "runtime/hash.hpp"

namespace tidesync::config {
namespace {

constexpr size_t k_max_subdomain = 253;

error invalid(std::string message) {
  return make_error(errc::invalid_argument, std::move(message));
}

json::value labels_of(const datasync& obj, const datasync_vm& vm) {
  json::object o;
  o.set(std::string(k_managed_by_label), "tidesync");
  o.set(std::string(k_datasync_label), datasync_label_value(obj.metadata.name));
  o.set(std::string(k_datasync_vm_label), vm.name);
  if (check_label_value(obj.spec.workspace_id).empty())
    o.set(std::string(k_workspace_label), obj.spec.workspace_id);
  return json::value(std::move(o));
}

json::value owner_of(const datasync& obj) {
  return json::object{
      {"apiVersion", k_api_version}, {"kind", k_datasync_kind}, {"name", obj.metadata.name},
      {"uid", obj.metadata.uid},     {"controller", true},      {"blockOwnerDeletion", true},
  };
}

expected<void> check_meta(const datasync& obj) {
  const auto& m = obj.metadata;
  if (m.name.empty() || m.namespace_.empty() || m.uid.empty())
    return invalid(
        "DataSync needs metadata.name, metadata.namespace and metadata.uid to own "
        "its volumes and Jobs");
  return {};
}

}  // namespace

std::string datasync_claim_name(std::string_view datasync, std::string_view vm) {
  std::string name = std::string(datasync) + "-" + std::string(vm);
  if (name.size() <= k_max_subdomain) return name;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64(name)));
  name.resize(k_max_subdomain - 17);
  while (!name.empty() && (name.back() == '-' || name.back() == '.'))
    name.pop_back();
  return name + "-" + hex;
}

std::string datasync_job_name(std::string_view datasync, std::string_view vm, int64_t generation,
                              int64_t retry) {
  return job_name(std::string(datasync) + "-" + std::string(vm) + "-" + std::to_string(generation) +
                  "-" + std::to_string(retry));
}

std::string datasync_label_value(std::string_view datasync) {
  if (!datasync.empty() && check_label_value(datasync).empty()) return std::string(datasync);
  return job_name(datasync);
}

std::string datasync_volume_size(const datasync_spec& spec, const datasync_vm& vm) {
  if (spec.storage.size) return *spec.storage.size;
  if (vm.size && *vm.size > 0) {
    constexpr int64_t mib = int64_t{1} << 20;
    // size × 1.1, rounded up to a MiB; computed in MiB so it cannot overflow.
    int64_t size_mib = (*vm.size + mib - 1) / mib;
    int64_t with_headroom = size_mib + (size_mib + 9) / 10;
    return std::to_string(with_headroom) + "Mi";
  }
  return std::string(k_default_volume_size);
}

expected<json::value> build_datasync_claim(const datasync& obj, const datasync_vm& vm) {
  if (auto ok = check_meta(obj); !ok) return ok.error();
  const auto& storage = obj.spec.storage;
  json::array modes;
  for (const auto& m : storage.access_modes)
    modes.emplace_back(m);
  if (modes.empty()) modes.emplace_back("ReadWriteOnce");
  json::object spec{
      {"accessModes", json::value(std::move(modes))},
      {"volumeMode", "Filesystem"},
      {"resources",
       json::object{{"requests", json::object{{"storage", datasync_volume_size(obj.spec, vm)}}}}},
  };
  if (storage.storage_class_name) spec.set("storageClassName", *storage.storage_class_name);
  return json::value(json::object{
      {"apiVersion", "v1"},
      {"kind", "PersistentVolumeClaim"},
      {"metadata", json::object{{"name", datasync_claim_name(obj.metadata.name, vm.name)},
                                {"namespace", obj.metadata.namespace_},
                                {"labels", labels_of(obj, vm)},
                                {"ownerReferences", json::array{owner_of(obj)}}}},
      {"spec", json::value(std::move(spec))},
  });
}

expected<json::value> build_populate_job(const datasync& obj, const datasync_vm& vm,
                                         const populate_settings& settings) {
  if (auto ok = check_meta(obj); !ok) return ok.error();
  const std::string data_path(k_populate_data_path);
  const std::string source_path(k_populate_source_path);

  json::array args{"agent", "populate", "--source-type", std::string(to_string(vm.source_type)),
                   "--url", vm.url,     "--dest",        data_path};
  if (vm.checksum) {
    args.emplace_back("--checksum");
    args.emplace_back(*vm.checksum);
  }
  if (vm.size) {
    args.emplace_back("--size");
    args.emplace_back(std::to_string(*vm.size));
  }
  json::array mounts{json::object{{"name", "data"}, {"mountPath", data_path}},
                     json::object{{"name", std::string(k_scratch_volume)},
                                  {"mountPath", std::string(k_scratch_path)}}};
  json::array volumes{
      json::object{{"name", "data"},
                   {"persistentVolumeClaim",
                    json::object{{"claimName", datasync_claim_name(obj.metadata.name, vm.name)}}}},
      json::object{{"name", std::string(k_scratch_volume)}, {"emptyDir", json::object{}}}};
  if (vm.source_type == datasync_source_type::pvc) {
    auto loc = split_source_url(vm.source_type, vm.url);
    if (!loc) return invalid("VM " + vm.name + ": " + loc.error().message);
    args.emplace_back("--pvc-root");
    args.emplace_back(source_path);
    mounts.push_back(
        json::object{{"name", "source"}, {"mountPath", source_path}, {"readOnly", true}});
    volumes.push_back(
        json::object{{"name", "source"},
                     {"persistentVolumeClaim",
                      json::object{{"claimName", loc->authority}, {"readOnly", true}}}});
  }
  args.emplace_back("--termination-log");
  args.emplace_back("/dev/termination-log");

  json::object container{
      {"name", std::string(k_populate_container)},
      {"image", settings.image},
      {"command", json::array{"tidesync"}},
      {"args", json::value(std::move(args))},
      {"env", json::array{json::object{{"name", "HOME"}, {"value", std::string(k_scratch_path)}}}},
      {"terminationMessagePath", "/dev/termination-log"},
      {"terminationMessagePolicy", "File"},
      {"securityContext", restricted_container_security(settings.run_as_user)},
      {"volumeMounts", json::value(std::move(mounts))},
  };
  if (obj.spec.secret_ref)
    container.set("envFrom",
                  json::array{json::object{
                      {"secretRef", json::object{{"name", obj.spec.secret_ref->name}}}}});

  json::object pod_spec{
      {"restartPolicy", "Never"},
      {"securityContext", json::object{{"runAsNonRoot", true},
                                       {"runAsUser", settings.run_as_user},
                                       {"runAsGroup", settings.run_as_user},
                                       {"fsGroup", settings.run_as_user}}},
      {"containers", json::array{json::value(std::move(container))}},
      {"volumes", json::value(std::move(volumes))},
  };
  if (!settings.service_account.empty())
    pod_spec.set("serviceAccountName", settings.service_account);

  auto labels = labels_of(obj, vm);
  json::object job_spec{{"backoffLimit", 0}};
  if (settings.deadline_seconds > 0)
    job_spec.set("activeDeadlineSeconds", settings.deadline_seconds);
  job_spec.set("template", json::object{{"metadata", json::object{{"labels", labels}}},
                                        {"spec", json::value(std::move(pod_spec))}});
  return json::value(json::object{
      {"apiVersion", "batch/v1"},
      {"kind", "Job"},
      {"metadata",
       json::object{{"name", datasync_job_name(obj.metadata.name, vm.name, obj.metadata.generation,
                                               obj.status.retry_count)},
                    {"namespace", obj.metadata.namespace_},
                    {"labels", labels},
                    {"ownerReferences", json::array{owner_of(obj)}}}},
      {"spec", json::value(std::move(job_spec))},
  });
}

}  // namespace tidesync::config
