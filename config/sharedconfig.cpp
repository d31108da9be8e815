#include "config/sharedconfig.hpp"

#include <utility>

namespace tidesync::config {

namespace {

bool owner_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

bool alnum_lower(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// An owner id becomes one path segment in the bucket: no '/', no "..", bounded.
std::optional<std::string> owner_id_problem(std::string_view id) {
  if (id.empty() || id.size() > 128) return "must be 1 to 128 characters";
  for (char c : id)
    if (!owner_char(c))
      return "may hold only lower-case letters, digits, '-', '.' and '_' (it names a folder in "
             "the bucket)";
  if (!alnum_lower(id.front()) || !alnum_lower(id.back()))
    return "must start and end with a lower-case letter or digit";
  if (id.find("..") != std::string_view::npos) return "must not contain \"..\"";
  return std::nullopt;
}

// S3 bucket names (the rules every S3-compatible store shares).
std::optional<std::string> bucket_problem(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) return "must be 3 to 63 characters";
  for (char c : b)
    if (!alnum_lower(c) && c != '-' && c != '.')
      return "may hold only lower-case letters, digits, '-' and '.'";
  if (!alnum_lower(b.front()) || !alnum_lower(b.back()))
    return "must start and end with a lower-case letter or digit";
  return std::nullopt;
}

std::optional<std::string> prefix_problem(std::string_view p) {
  if (p.empty()) return std::nullopt;
  if (p.size() > 512) return "must be at most 512 characters";
  if (p.front() == '/' || p.back() == '/') return "must not start or end with '/'";
  size_t start = 0;
  while (start <= p.size()) {
    auto end = p.find('/', start);
    auto seg = p.substr(start, end == std::string_view::npos ? p.size() - start : end - start);
    if (seg.empty() || seg == "." || seg == "..")
      return "must be folder names separated by '/', without empty, \".\" or \"..\" parts";
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace

const std::vector<std::string_view>& sharedconfig_spec_fields() {
  static const std::vector<std::string_view> f = {"ownerId",   "bucket",         "prefix",
                                                  "secretRef", "maxBundleBytes", "retainRevisions"};
  return f;
}

const std::vector<std::string_view>& sharedconfig_status_fields() {
  static const std::vector<std::string_view> f = {"revision",  "checksum",           "size",
                                                  "updatedAt", "observedGeneration", "conditions"};
  return f;
}

expected<sharedconfig> parse_sharedconfig(const json::value& object) {
  problems p;
  sharedconfig out;
  check_type_meta(object, k_sharedconfig_kind, p);
  out.metadata = read_meta(object, p);
  const json::value* spec = object.at("spec");
  if (spec == nullptr || !spec->is_object()) {
    p.required("spec", "needs a spec with ownerId, bucket and secretRef");
    return p.to_error(object_label(k_sharedconfig_kind, out.metadata));
  }
  warn_unknown_fields(*spec, "spec", sharedconfig_spec_fields(), p);
  if (auto v = read_string(*spec, "ownerId", "spec.ownerId", p)) {
    if (auto why = owner_id_problem(*v)) p.invalid("spec.ownerId", "\"" + *v + "\" " + *why);
    out.spec.owner_id = *v;
  } else if (spec->at("ownerId") == nullptr) {
    p.required("spec.ownerId", "needs the owner's id, e.g. ownerId: alice");
  }
  if (auto v = read_string(*spec, "bucket", "spec.bucket", p)) {
    if (auto why = bucket_problem(*v)) p.invalid("spec.bucket", "\"" + *v + "\" " + *why);
    out.spec.bucket = *v;
  } else if (spec->at("bucket") == nullptr) {
    p.required("spec.bucket", "needs the bucket that holds the bundles, e.g. bucket: configs");
  }
  if (auto v = read_string(*spec, "prefix", "spec.prefix", p)) {
    if (auto why = prefix_problem(*v)) p.invalid("spec.prefix", "\"" + *v + "\" " + *why);
    out.spec.prefix = *v;
  }
  const json::value* ref = spec->at("secretRef");
  if (ref == nullptr || ref->is_null()) {
    p.required(
        "spec.secretRef",
        "needs the Secret with the store's REMOTE_* keys, e.g. secretRef: {name: config-store}");
  } else if (!ref->is_object()) {
    p.type("spec.secretRef", "an object such as {name: config-store}", *ref);
  } else if (auto name = read_string(*ref, "name", "spec.secretRef.name", p);
             name && !name->empty()) {
    out.spec.secret_name = *name;
  } else {
    p.required("spec.secretRef.name", "needs the Secret's name");
  }
  if (auto v = read_int(*spec, "maxBundleBytes", "spec.maxBundleBytes", p)) {
    if (*v < 1024 || *v > k_max_max_bundle_bytes)
      p.invalid("spec.maxBundleBytes",
                "must be between 1024 and " + std::to_string(k_max_max_bundle_bytes) + " bytes");
    out.spec.max_bundle_bytes = *v;
  }
  if (auto v = read_int(*spec, "retainRevisions", "spec.retainRevisions", p)) {
    if (*v < 1 || *v > 1000) p.invalid("spec.retainRevisions", "must be between 1 and 1000");
    out.spec.retain_revisions = *v;
  }
  if (const json::value* st = object.at("status"); st != nullptr && st->is_object()) {
    problems local;
    out.status.revision = std::string(st->get_string("revision"));
    out.status.checksum = std::string(st->get_string("checksum"));
    out.status.size = st->get_int("size");
    out.status.updated_at = read_time(*st, "updatedAt", "status.updatedAt", local);
    out.status.observed_generation = st->get_int("observedGeneration");
    out.status.conditions = parse_conditions(st->at("conditions"), "status.conditions", local);
    demote(local, p);
  }
  if (!p.empty()) return p.to_error(object_label(k_sharedconfig_kind, out.metadata));
  return out;
}

std::string sharedconfig_root(const sharedconfig_spec& spec) {
  return spec.prefix.empty() ? spec.owner_id : spec.prefix + "/" + spec.owner_id;
}

json::value to_json(const sharedconfig_status& s) {
  return json::value(json::object{
      {"revision", s.revision.empty() ? json::value() : json::value(s.revision)},
      {"checksum", s.checksum.empty() ? json::value() : json::value(s.checksum)},
      {"size", s.revision.empty() || s.size == 0 ? json::value() : json::value(s.size)},
      {"updatedAt", time_or_null(s.updated_at)},
      {"observedGeneration", s.observed_generation},
      {"conditions", to_json(s.conditions)},
  });
}

}  // namespace tidesync::config
