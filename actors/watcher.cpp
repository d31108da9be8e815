#include "actors/watcher.hpp"

#include <caf/all.hpp>
#include <utility>

#include "runtime/log.hpp"
#include "runtime/metrics/metrics.hpp"

namespace tidesync::actors {

std::shared_ptr<watched> make_watched(k8s::client& client, http::loop& loop, const k8s::resource& r,
                                      std::string ns, watch::watcher_options options,
                                      std::shared_ptr<metrics::registry> metrics) {
  auto w = std::make_shared<watched>();
  w->resource = r.plural;
  w->loop = &loop;
  if (options.name == "watch") options.name = r.plural;
  if (metrics) {
    // The label is the resource type's plural only: never a namespace, selector or name.
    metrics->init_watch(r.plural);
    options.on_reconnect = [metrics, resource = r.plural](watch::reconnect_reason why) {
      metrics->watch_reconnect(resource, watch::to_string(why));
    };
    options.on_relist = [metrics, resource = r.plural] { metrics->watch_relist(resource); };
  }
  w->transport = std::make_unique<watch::client_transport>(client, r, std::move(ns));
  w->informer = std::make_unique<watch::informer>(*w->transport, std::move(options));
  return w;
}

watcher_actor::behavior_type watcher(watcher_actor::stateful_pointer<watcher_state> self,
                                     std::shared_ptr<watched> source) {
  self->state.source = source;
  // The handler runs on the loop thread: it may only send. A weak handle, so the informer
  // (owned by this actor's state) does not keep its own actor alive.
  caf::weak_actor_ptr weak = self->ctrl();
  source->informer->add_handler([weak](const std::string& key) {
    if (auto strong = weak.lock())
      caf::anon_send(caf::actor_cast<watcher_actor>(strong), atom::changed_v, key);
  });
  source->loop->post([source] { source->informer->start(); });
  self->attach_functor([source] {
    // Stop on the loop thread; the lambda keeps the informer alive until it has stopped.
    source->loop->post([source] { source->informer->stop(); });
  });
  return {
      [self](atom::subscribe, listener_actor listener) {
        self->state.listeners.push_back(std::move(listener));
      },
      [self](atom::synced) { return self->state.source->informer->has_synced(); },
      [self](atom::changed, const std::string& key) {
        for (auto& l : self->state.listeners)
          self->send(l, atom::changed_v, self->state.source->resource, key);
      },
  };
}

}  // namespace tidesync::actors
