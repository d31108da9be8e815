// SharedConfig (tidesync.io/v1alpha1): one owner's config bundles in object storage, written only
// through the controller's config API and read by `tidesync agent config` (docs/sharedconfig.md).
// Spec and status types, parsing with every validation, and the status JSON the controller
// patches. The reference is docs/crds/sharedconfig.md; deploy/crds/tidesync.io_sharedconfigs.yaml
// is the CRD.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/condition.hpp"
#include "config/object_meta.hpp"
#include "config/validation.hpp"
#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::config {

inline constexpr std::string_view k_sharedconfig_kind = "SharedConfig";
inline constexpr int64_t k_default_max_bundle_bytes = 64LL << 20;
inline constexpr int64_t k_max_max_bundle_bytes = 4LL << 30;
inline constexpr int64_t k_default_retain_revisions = 10;

struct sharedconfig_spec {
  std::string owner_id;  // [a-z0-9]([-a-z0-9._]*[a-z0-9])?, at most 128
  std::string bucket;
  std::string prefix;       // "" or without leading/trailing '/'
  std::string secret_name;  // REMOTE_* keys for the store (endpoint, region, credentials)
  int64_t max_bundle_bytes = k_default_max_bundle_bytes;
  int64_t retain_revisions = k_default_retain_revisions;
};

struct sharedconfig_status {
  std::string revision;  // "" : nothing published yet
  std::string checksum;
  int64_t size = 0;  // 0: not known (a revision published by another writer)
  std::optional<sys_seconds> updated_at;
  int64_t observed_generation = 0;
  std::vector<condition> conditions;
};

struct sharedconfig {
  object_meta metadata;
  sharedconfig_spec spec;
  sharedconfig_status status;
};

// Parses a whole object. Every problem in the spec is reported in one errc::invalid error whose
// message lists each field with what to write instead.
expected<sharedconfig> parse_sharedconfig(const json::value& object);

// The key prefix of the owner's objects in the bucket: "<prefix>/<ownerId>" ("<ownerId>" without
// a prefix); latest.json and revisions/ live under it.
std::string sharedconfig_root(const sharedconfig_spec& spec);

// The full status object for a merge patch {"status": ...}.
json::value to_json(const sharedconfig_status& s);

// The spec/status field names the parser reads and the status writes, in CRD order (checked
// against the CRD by tests/unit/config_crd_test.cpp).
const std::vector<std::string_view>& sharedconfig_spec_fields();
const std::vector<std::string_view>& sharedconfig_status_fields();

}  // namespace tidesync::config
