// Kubernetes API client over the HTTP loop: CRUD for any resource, paged lists, raw watch
// streams, a client-side rate limit.
//
// Threading: every method may be called from any thread. Callbacks run on the loop thread and
// must not block. The `*_sync` helpers block the calling thread until the answer arrives:
// never call them on the loop thread (that would deadlock; they assert and return
// errc::internal instead). The client must outlive its in-flight requests: stop the loop (or
// wait for the callbacks) before destroying it.
//
// Errors: a non-2xx answer becomes a tidesync::error with the code from
// errc_from_http_status (409 with reason AlreadyExists → errc::already_exists), `message` =
// the server's Status message, `reason` = the Status reason, `http_status` set. Transport
// failures: errc::unavailable (curl's message) or errc::timeout.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/error.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/k8s/config.hpp"
#include "runtime/k8s/resource.hpp"

namespace tidesync::k8s {

struct client_options {
  // Client-side rate limit on starting requests (client-go defaults). qps <= 0: unlimited.
  double qps = 20;
  int burst = 30;
  // Deadline of every non-watch request.
  std::chrono::milliseconds timeout{30'000};
  std::string user_agent;  // empty: "tidesync/<version>"
  // How often the bearer token file is checked for rotation.
  std::chrono::milliseconds token_recheck{std::chrono::seconds(60)};
};

struct list_options {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;  // page size; 0: no paging
  std::string continue_token;
  std::string resource_version;  // "" : most recent; "0": any (served from cache)
};

struct watch_options {
  std::string resource_version;  // start after this version ("" : from now, with synthetic ADDs)
  std::string label_selector;
  std::string field_selector;
  bool allow_bookmarks = true;
  int64_t timeout_seconds = 0;  // server-side end of the watch; 0: the server's default
  // No bytes for this long → the watch ends with errc::timeout. Bookmarks arrive about once
  // a minute on a real server, so keep it above that.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(90)};
};

enum class patch_type { merge, json, strategic_merge };

// "application/merge-patch+json", ...
std::string_view content_type(patch_type type);

struct delete_options {
  std::string propagation_policy;  // "", "Foreground", "Background", "Orphan"
  std::string precondition_uid;
  std::string precondition_resource_version;
};

// Answer of a raw request: the status and body of a 2xx response.
struct raw_response {
  long status = 0;
  std::string body;
};

class client {
 public:
  using request_id = http::request_id;
  using json_callback = std::function<void(expected<json::value>)>;
  using raw_callback = std::function<void(expected<std::string>)>;
  using response_callback = std::function<void(expected<raw_response>)>;
  using chunk_callback = std::function<void(std::string_view)>;
  using done_callback = std::function<void(expected<void>)>;

  client(http::loop& loop, connection_config config, client_options options = {});
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  [[nodiscard]] const connection_config& config() const { return config_; }
  [[nodiscard]] http::loop& event_loop() { return loop_; }

  // --- asynchronous (callbacks on the loop thread) --------------------------------------
  // `ns` is ignored for cluster-scoped resources; empty `ns` on a namespaced list/watch means
  // all namespaces.
  request_id get(const resource& r, std::string_view ns, std::string_view name, json_callback cb);
  request_id list(const resource& r, std::string_view ns, const list_options& opts,
                  json_callback cb);
  // The list body undecoded (the informer parses it with simdjson).
  request_id list_raw(const resource& r, std::string_view ns, const list_options& opts,
                      raw_callback cb);
  // Follows continue tokens until the end; the result is one List object holding every
  // item, with the last page's metadata (resourceVersion). Not cancellable.
  void list_all(const resource& r, std::string_view ns, const list_options& opts, json_callback cb);
  request_id create(const resource& r, std::string_view ns, const json::value& obj,
                    json_callback cb);
  // PUT; `obj` carries metadata.resourceVersion for optimistic concurrency.
  request_id update(const resource& r, std::string_view ns, std::string_view name,
                    const json::value& obj, json_callback cb);
  request_id patch(const resource& r, std::string_view ns, std::string_view name, patch_type type,
                   const json::value& patch, json_callback cb);
  request_id update_status(const resource& r, std::string_view ns, std::string_view name,
                           const json::value& obj, json_callback cb);
  request_id patch_status(const resource& r, std::string_view ns, std::string_view name,
                          patch_type type, const json::value& patch, json_callback cb);
  // Answers the server's body: the deleted object, or a Status for some deletions.
  request_id remove(const resource& r, std::string_view ns, std::string_view name,
                    const delete_options& opts, json_callback cb);
  // Any method on any path ("/api/v1/namespaces?limit=1"); `body` sent as JSON when not
  // empty; `content_type` overrides application/json.
  request_id raw(std::string_view method, std::string_view path, std::string body,
                 response_callback cb, std::string_view content_type = {});

  // Opens a watch and streams the raw response body (newline-delimited JSON events) to
  // `on_chunk` as it arrives; chunks do not align with events. `on_done` is called once:
  // success when the server ended the stream, else the error (non-2xx status with the server's
  // message, errc::gone for 410, errc::timeout after idle_timeout, errc::unavailable,
  // errc::cancelled after cancel()). Opening is rate limited; an open watch is not.
  request_id watch(const resource& r, std::string_view ns, const watch_options& opts,
                   chunk_callback on_chunk, done_callback on_done);

  // Cancels a request or watch; its callback gets errc::cancelled.
  void cancel(request_id id);

  // --- blocking (never on the loop thread) ----------------------------------------------
  expected<json::value> get_sync(const resource& r, std::string_view ns, std::string_view name);
  expected<json::value> list_sync(const resource& r, std::string_view ns,
                                  const list_options& opts = {});
  expected<std::string> list_raw_sync(const resource& r, std::string_view ns,
                                      const list_options& opts = {});
  expected<json::value> list_all_sync(const resource& r, std::string_view ns,
                                      const list_options& opts = {});
  expected<json::value> create_sync(const resource& r, std::string_view ns, const json::value& obj);
  expected<json::value> update_sync(const resource& r, std::string_view ns, std::string_view name,
                                    const json::value& obj);
  expected<json::value> patch_sync(const resource& r, std::string_view ns, std::string_view name,
                                   patch_type type, const json::value& patch);
  expected<json::value> update_status_sync(const resource& r, std::string_view ns,
                                           std::string_view name, const json::value& obj);
  expected<json::value> patch_status_sync(const resource& r, std::string_view ns,
                                          std::string_view name, patch_type type,
                                          const json::value& patch);
  expected<json::value> remove_sync(const resource& r, std::string_view ns, std::string_view name,
                                    const delete_options& opts = {});
  expected<raw_response> raw_sync(std::string_view method, std::string_view path,
                                  std::string body = {}, std::string_view content_type = {});

 private:
  // Sends one request through the rate limiter. `on_data` set: streamed (watch).
  request_id send(std::string method, std::string path, std::string body,
                  std::string_view content_type, std::chrono::milliseconds timeout,
                  std::chrono::milliseconds idle_timeout,
                  std::function<void(std::string_view)> on_data,
                  std::function<void(expected<http::response>)> on_done);
  request_id send_json(std::string method, std::string path, std::string body,
                       std::string_view content_type, json_callback cb);
  void list_all_page(const resource& r, std::string ns, list_options opts,
                     std::shared_ptr<json::value> acc, json_callback cb);

  http::loop& loop_;
  connection_config config_;
  client_options options_;
  struct state;
  std::unique_ptr<state> state_;
};

// Error for a non-2xx response: the code from the status (409 AlreadyExists told apart from
// Conflict by the Status reason) and the server's Status message when the body has one.
error error_from_response(long status, std::string_view body, std::string_view what);

// Percent-encodes a query parameter value.
std::string url_encode(std::string_view s);

}  // namespace tidesync::k8s
