#include "runtime/watch/client_transport.hpp"

#include <utility>

namespace tidesync::watch {

client_transport::client_transport(k8s::client& client, k8s::resource resource, std::string ns,
                                   std::chrono::milliseconds idle_timeout)
    : client_(client),
      resource_(std::move(resource)),
      ns_(std::move(ns)),
      idle_timeout_(idle_timeout) {}

void client_transport::list(const list_request& req,
                            std::function<void(expected<std::string>)> done) {
  k8s::list_options opts;
  opts.label_selector = req.label_selector;
  opts.limit = req.limit;
  opts.continue_token = req.continue_token;
  client_.list_raw(resource_, ns_, opts, std::move(done));
}

transport::watch_id client_transport::watch(const watch_request& req,
                                            std::function<void(std::string_view)> on_chunk,
                                            std::function<void(expected<void>)> on_done) {
  k8s::watch_options opts;
  opts.resource_version = req.resource_version;
  opts.label_selector = req.label_selector;
  opts.allow_bookmarks = req.allow_bookmarks;
  opts.timeout_seconds = req.timeout_seconds;
  opts.idle_timeout = idle_timeout_;
  return client_.watch(resource_, ns_, opts, std::move(on_chunk), std::move(on_done));
}

void client_transport::cancel(watch_id id) {
  client_.cancel(id);
}

void client_transport::post_after(std::chrono::milliseconds delay, std::function<void()> fn) {
  client_.event_loop().post_after(delay, std::move(fn));
}

}  // namespace tidesync::watch
