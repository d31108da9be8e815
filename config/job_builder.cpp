#include "config/job_builder.hpp"

#include <cstdio>
#include <vector>

#include "config/rclone_env.hpp"
#include "runtime/hash.hpp"

namespace tidesync::config {
namespace {

constexpr size_t k_max_label = 63;
constexpr size_t k_hash_digits = 10;

bool is_dns_label(std::string_view s) {
  if (s.empty() || s.size() > k_max_label) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  for (char c : s)
    if (!alnum(c) && c != '-') return false;
  return alnum(s.front()) && alnum(s.back());
}

json::value labels_json(const std::map<std::string, std::string>& labels) {
  json::object o;
  for (const auto& [k, v] : labels)
    o.set(k, v);
  return o;
}

error invalid(std::string message) {
  return make_error(errc::invalid_argument, std::move(message));
}

}  // namespace

json::value restricted_container_security(int64_t uid) {
  return json::object{
      {"runAsNonRoot", true},
      {"runAsUser", uid},
      {"runAsGroup", uid},
      {"readOnlyRootFilesystem", true},
      {"allowPrivilegeEscalation", false},
      {"capabilities", json::object{{"drop", json::array{"ALL"}}}},
  };
}

std::string job_name(std::string_view name) {
  if (is_dns_label(name)) return std::string(name);
  // Lower-case slug: every run of characters outside [a-z0-9] becomes one '-'.
  std::string slug;
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (ok)
      slug += c;
    else if (!slug.empty() && slug.back() != '-')
      slug += '-';
  }
  size_t keep = k_max_label - 1 - k_hash_digits;
  if (slug.size() > keep) slug.resize(keep);
  while (!slug.empty() && slug.back() == '-')
    slug.pop_back();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64(name)));
  std::string out = slug.empty() ? std::string("bucketsync") : slug;
  out += '-';
  out.append(hex, k_hash_digits);
  return out;
}

std::string job_name(const bucket_sync& obj) {
  return job_name(obj.metadata.name);
}

std::string bucket_sync_label_value(std::string_view name) {
  if (!name.empty() && check_label_value(name).empty()) return std::string(name);
  return job_name(name);
}

expected<json::value> build_job(const bucket_sync& obj, const job_settings& settings) {
  const auto& meta = obj.metadata;
  const auto& spec = obj.spec;
  if (meta.name.empty() || meta.namespace_.empty() || meta.uid.empty())
    return invalid(
        "BucketSync needs metadata.name, metadata.namespace and metadata.uid to own a Job");
  if (spec.source.empty() || spec.destination.empty())
    return invalid("BucketSync " + meta.namespace_ + "/" + meta.name +
                   ": spec.source and spec.destination are required");

  auto env = rclone_env(spec.source_env, spec.destination_env);
  if (!env) return env.error();

  std::map<std::string, std::string> labels = spec.job_labels;
  labels[std::string(k_managed_by_label)] = "tidesync";
  labels[std::string(k_bucket_sync_label)] = bucket_sync_label_value(meta.name);
  std::string name = job_name(meta.name);

  // Arguments: the command is explicit so images with another entrypoint work too.
  json::array args{
      "sync", rclone_argument(spec.source, k_source_remote, !spec.source_env.empty()),
      rclone_argument(spec.destination, k_destination_remote, !spec.destination_env.empty())};
  for (const auto& f : spec.rclone_flags)
    args.emplace_back(f);

  // Env: the remotes' settings (valueFrom kept as references), then where rclone may write:
  // with a read-only root only the /tmp emptyDir is writable.
  json::array env_json;
  for (const auto& e : *env)
    env_json.push_back(to_json(e));
  std::string scratch(k_scratch_path);
  env_json.push_back(json::object{{"name", "HOME"}, {"value", scratch}});
  env_json.push_back(json::object{{"name", "RCLONE_CONFIG"}, {"value", scratch + "/rclone.conf"}});
  env_json.push_back(
      json::object{{"name", "RCLONE_CACHE_DIR"}, {"value", scratch + "/rclone-cache"}});

  json::value container = json::object{
      {"name", k_rclone_container},
      {"image", spec.image.empty() ? settings.default_image : spec.image},
      {"command", json::array{"rclone"}},
      {"args", std::move(args)},
      {"env", std::move(env_json)},
      {"securityContext", restricted_container_security(settings.run_as_user)},
      {"volumeMounts",
       json::array{json::object{{"name", k_scratch_volume}, {"mountPath", k_scratch_path}}}},
  };

  json::object pod_spec{
      {"restartPolicy", "Never"},
      {"securityContext", json::object{{"runAsNonRoot", true},
                                       {"runAsUser", settings.run_as_user},
                                       {"runAsGroup", settings.run_as_user},
                                       {"fsGroup", settings.run_as_user}}},
      {"containers", json::array{std::move(container)}},
      {"volumes",
       json::array{json::object{{"name", k_scratch_volume}, {"emptyDir", json::object{}}}}},
  };
  if (!settings.service_account.empty())
    pod_spec.set("serviceAccountName", settings.service_account);

  json::object job_spec{{"backoffLimit", 0}};
  if (spec.timeout) job_spec.set("activeDeadlineSeconds", int64_t{spec.timeout->count()});
  job_spec.set("template", json::object{{"metadata", json::object{{"labels", labels_json(labels)}}},
                                        {"spec", std::move(pod_spec)}});

  json::value owner = json::object{
      {"apiVersion", k_api_version}, {"kind", k_bucket_sync_kind},
      {"name", meta.name},           {"uid", meta.uid},
      {"controller", true},          {"blockOwnerDeletion", true},
  };
  return json::value(json::object{
      {"apiVersion", "batch/v1"},
      {"kind", "Job"},
      {"metadata", json::object{{"name", name},
                                {"namespace", meta.namespace_},
                                {"labels", labels_json(labels)},
                                {"ownerReferences", json::array{std::move(owner)}}}},
      {"spec", std::move(job_spec)},
  });
}

}  // namespace tidesync::config
