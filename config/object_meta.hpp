// The metadata of a tidesync object and the readers every CRD parser shares (BucketSync,
// BucketSyncPolicy, DataSync): metadata, apiVersion/kind checks, the label for messages, and
// the demotion of status problems to warnings.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "config/validation.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::config {

inline constexpr std::string_view k_group = "tidesync.io";
inline constexpr std::string_view k_version = "v1alpha1";
inline constexpr std::string_view k_api_version = "tidesync.io/v1alpha1";

// The metadata the controllers need (the rest stays in the cached JSON).
struct object_meta {
  std::string name;
  std::string namespace_;
  std::string uid;
  std::string resource_version;
  int64_t generation = 0;
  std::optional<sys_seconds> creation_timestamp;
  std::optional<sys_seconds> deletion_timestamp;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

// The string members of an object (labels, annotations); other members are skipped.
std::map<std::string, std::string> read_string_map(const json::value* v);

// .metadata of an object; a bad timestamp is reported to `p`.
object_meta read_meta(const json::value& object, problems& p);

// apiVersion and kind, when present, must be ours and `kind`.
void check_type_meta(const json::value& object, std::string_view kind, problems& p);

// "Kind ns/name" for messages.
std::string object_label(std::string_view kind, const object_meta& m);

// Status readers copy problems into warnings: the status is ours and must never block a spec.
void demote(problems& local, problems& p);

}  // namespace tidesync::config
