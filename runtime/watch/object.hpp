// The cached form of a Kubernetes object: its raw JSON plus the metadata the cache indexes.
//
// Decoding a watch stream must be cheap, so an object is not turned into a DOM. We keep the
// exact bytes the server sent (immutable, shared by every reader through a shared_ptr) and
// pull out only what the cache and the watcher need. A reconciler that wants spec fields
// calls parse() on its own thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::watch {

// Labels as (key, value) pairs sorted by key. Objects carry few labels, so a sorted vector
// beats a map for both memory and lookup.
using label_list = std::vector<std::pair<std::string, std::string>>;

struct object_meta {
  std::string ns;  // metadata.namespace; empty for cluster-scoped objects
  std::string name;
  std::string uid;
  std::string resource_version;
  int64_t generation = 0;
  label_list labels;
  bool deleting = false;  // metadata.deletionTimestamp is set

  // The value of label `key`, or nullptr.
  [[nodiscard]] const std::string* label(std::string_view key) const;
};

struct object {
  std::shared_ptr<const std::string> raw;  // the object's JSON exactly as received
  object_meta meta;

  // "namespace/name", or "name" for cluster-scoped objects (controller-runtime's format).
  [[nodiscard]] std::string key() const;
  // Parses `raw` into a mutable DOM (for spec/status fields the metadata does not carry).
  [[nodiscard]] expected<json::value> parse() const;
};

// "namespace/name" or "name".
std::string make_key(std::string_view ns, std::string_view name);

// Compares two resourceVersions. Kubernetes calls them opaque, but every real server
// (etcd revisions, and our embedded server) uses decimal integers, and the informer needs
// an order to drop stale events. Returns -1, 0 or 1, or kUnordered when either is not a
// decimal integer (the caller then cannot order them and accepts the incoming event).
inline constexpr int kUnordered = 2;
int compare_resource_versions(std::string_view a, std::string_view b);

}  // namespace tidesync::watch
