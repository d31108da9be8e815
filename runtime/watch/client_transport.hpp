// Adapts the Kubernetes client (runtime/k8s/client.hpp) to the watcher's transport: one
// resource in one namespace (or all namespaces / cluster-scoped when `ns` is empty).
//
// Everything runs on the client's loop thread: create the informer anywhere, but call its
// start()/stop() on the loop thread (e.g. `loop.post([&] { inf.start(); })`), and stop it
// there before destroying it.
#pragma once

#include <chrono>
#include <string>

#include "runtime/k8s/client.hpp"
#include "runtime/k8s/resource.hpp"
#include "runtime/watch/transport.hpp"

namespace tidesync::watch {

class client_transport : public transport {
 public:
  // `idle_timeout`: a watch that receives no bytes for this long ends with errc::timeout
  // (the watcher then re-watches after a backoff). Bookmarks keep a healthy watch busy.
  client_transport(k8s::client& client, k8s::resource resource, std::string ns,
                   std::chrono::milliseconds idle_timeout = std::chrono::seconds(90));

  void list(const list_request& req, std::function<void(expected<std::string>)> done) override;
  watch_id watch(const watch_request& req, std::function<void(std::string_view)> on_chunk,
                 std::function<void(expected<void>)> on_done) override;
  void cancel(watch_id id) override;
  void post_after(std::chrono::milliseconds delay, std::function<void()> fn) override;
  clock::time_point now() override { return clock::now(); }

 private:
  k8s::client& client_;
  k8s::resource resource_;
  std::string ns_;
  std::chrono::milliseconds idle_timeout_;
};

}  // namespace tidesync::watch
