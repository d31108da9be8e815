// The watcher actor and the informer it owns (docs/controller.md).
//
// A `watched` is one informer with its transport. It lives on the HTTP loop thread (start and
// stop run there); its cache is read from any thread, so controllers and resource actors keep
// a shared_ptr to it and look objects up directly. The watcher actor is the only one that
// hears the informer: it forwards `changed(resource, key)` to its listeners.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "actors/interfaces.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/k8s/resource.hpp"
#include "runtime/watch/client_transport.hpp"
#include "runtime/watch/informer.hpp"

namespace tidesync::metrics {
class registry;
}

namespace tidesync::actors {

struct watched {
  std::string resource;  // the plural, e.g. "bucketsyncs": the first field of `changed`
  http::loop* loop = nullptr;
  std::unique_ptr<watch::client_transport> transport;
  std::unique_ptr<watch::informer> informer;

  [[nodiscard]] const watch::cache& cache() const { return informer->store(); }
};

// An informer over `r` in `ns` ("" = all namespaces) through `client`; not started. With
// `metrics`, its watch reconnects and relists are counted under resource=r.plural.
std::shared_ptr<watched> make_watched(k8s::client& client, http::loop& loop, const k8s::resource& r,
                                      std::string ns, watch::watcher_options options = {},
                                      std::shared_ptr<metrics::registry> metrics = nullptr);

struct watcher_state {
  static constexpr const char* name = "watcher";
  std::shared_ptr<watched> source;
  std::vector<listener_actor> listeners;
};

// Spawn: `sys.spawn(watcher, source)`. Registers the informer handler and starts the informer
// on its loop; on exit it stops the informer there (the informer never outlives its stop).
watcher_actor::behavior_type watcher(watcher_actor::stateful_pointer<watcher_state> self,
                                     std::shared_ptr<watched> source);

}  // namespace tidesync::actors
