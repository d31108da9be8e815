// One decoded event of a Kubernetes watch stream, and one page of a list response.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/watch/object.hpp"

namespace tidesync::watch {

enum class event_type : uint8_t { added, modified, deleted, bookmark, error };

// "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR" (the wire names).
std::string_view to_string(event_type t);

// A metav1.Status, as carried by ERROR events and error responses.
struct api_status {
  int code = 0;  // HTTP-like code; 410 means "resourceVersion too old: relist"
  std::string reason;
  std::string message;
};

struct watch_event {
  event_type type = event_type::added;
  // ADDED/MODIFIED/DELETED: the object. BOOKMARK: only obj.meta.resource_version is set
  // (obj.raw is null). ERROR: empty.
  object obj;
  api_status status;  // ERROR only
};

// One page of a list response.
struct list_page {
  std::vector<object> items;
  std::string resource_version;  // metadata.resourceVersion: watch from here
  std::string continue_token;    // metadata.continue: empty on the last page
};

}  // namespace tidesync::watch
