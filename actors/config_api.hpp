// The config API's writer side (docs/sharedconfig.md, "The writer"): configapi::backend over
// the owner actors. It finds a SharedConfig and its Secret through the API (re-read at most every
// `spec_ttl`), opens the owner's store with the Secret's REMOTE_* keys, and keeps one detached
// owner actor per SharedConfig for the process's life: when the spec or the Secret changes, the
// same owner is given the new store (owner_bindings), so there is never a second writer.
// Requests block the HTTP worker thread that calls them (a scoped actor waits for the owner's
// answer).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "runtime/configapi/server.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/k8s/resource.hpp"

namespace caf {
class actor_system;
}

namespace tidesync::actors {

inline k8s::resource sharedconfigs_resource() {
  return {"tidesync.io", "v1alpha1", "sharedconfigs", "SharedConfig", true};
}

struct config_api_options {
  // Whether this replica writes (the leader); a standby answers publishes with 503.
  std::function<bool()> leading = [] { return true; };
  // How long a SharedConfig and its Secret as read are trusted before they are read again.
  std::chrono::seconds spec_ttl{10};
  // How long a publish may take (upload and latest.json) before the API answers 503.
  std::chrono::seconds publish_timeout{300};
};

// The API's bearer token: the key `token` of the Secret `tidesync-config-api` in `ns`, created
// with a random token when missing (errors say what to do). The function returned reads the
// Secret again at most every 10 s, so editing the Secret rotates the token; while the API server
// cannot be reached it keeps the last token it read.
inline constexpr const char* k_config_api_secret = "tidesync-config-api";
expected<std::function<std::string()>> config_api_token_source(k8s::client& client,
                                                               const std::string& ns);

// The backend; it must be destroyed before `sys` (it stops its owner actors).
std::unique_ptr<configapi::backend> make_config_api_backend(caf::actor_system& sys,
                                                            k8s::client& client, http::loop& loop,
                                                            config_api_options options);

}  // namespace tidesync::actors
