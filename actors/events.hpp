// Kubernetes Events (core/v1) about our objects: building them (pure) and sending them
// (fire and forget: an Event that cannot be written is logged, never retried, and never
// fails a reconcile).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/validation.hpp"
#include "runtime/json/value.hpp"
#include "runtime/k8s/client.hpp"

namespace tidesync::actors {

// The object an Event is about.
struct event_subject {
  std::string api_version;  // "tidesync.io/v1alpha1"
  std::string kind;         // "BucketSync"
  std::string ns;
  std::string name;
  std::string uid;
  std::string resource_version;
};

// The Event document: name "<object>.<16 hex digits>" (unique per call through `seq` and the
// time), type Normal/Warning, reason, message (cut to 1024 bytes), first/lastTimestamp =
// now, count 1, source.component and reportingComponent = `component`.
json::value build_event(const event_subject& about, std::string_view type, std::string_view reason,
                        std::string_view message, config::sys_seconds now, uint64_t seq,
                        std::string_view component = "tidesync-controller");

// Creates the Event through `client` (asynchronously; failures are logged at debug level).
void send_event(k8s::client& client, const event_subject& about, std::string_view type,
                std::string_view reason, std::string_view message, config::sys_seconds now);

}  // namespace tidesync::actors
