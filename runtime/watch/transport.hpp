// What the watcher needs from the outside world, and nothing more.
//
// The watcher is a state machine driven by callbacks. Keeping the HTTP client behind this
// small interface lets tests drive it deterministically (a fake transport completes
// requests when the test says so, and a fake clock decides what "now" is), and keeps the
// watcher independent of the client's internals. client_transport.hpp adapts the real
// Kubernetes client.
//
// Threading contract: every callback runs on one thread (the client's loop thread), the
// same thread that calls into the watcher. Callbacks may be invoked after cancel(); the
// watcher ignores those it no longer expects.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "runtime/error.hpp"

namespace tidesync::watch {

struct list_request {
  std::string label_selector;
  int64_t limit = 0;           // page size; 0 means no paging
  std::string continue_token;  // from the previous page
};

struct watch_request {
  std::string resource_version;  // watch changes after this version
  std::string label_selector;
  bool allow_bookmarks = true;
  int timeout_seconds = 0;  // server-side timeout of the watch call; 0 = server default
};

class transport {
 public:
  using clock = std::chrono::steady_clock;
  using watch_id = uint64_t;

  virtual ~transport() = default;

  // Lists one page; `done` gets the raw response body, or the error (a 410 Gone means the
  // continue token expired).
  virtual void list(const list_request& req, std::function<void(expected<std::string>)> done) = 0;

  // Starts a watch. `on_chunk` gets body bytes as they arrive (split anywhere); `on_done`
  // gets success when the server ended the stream normally, or the error (HTTP status
  // mapped by errc_from_http_status, e.g. errc::gone for 410).
  virtual watch_id watch(const watch_request& req, std::function<void(std::string_view)> on_chunk,
                         std::function<void(expected<void>)> on_done) = 0;

  // Stops a watch. Its callbacks may still run afterwards, or not at all.
  virtual void cancel(watch_id id) = 0;

  // Runs `fn` on the loop thread after `delay`.
  virtual void post_after(std::chrono::milliseconds delay, std::function<void()> fn) = 0;

  // The current time (steady). Fakes return virtual time.
  virtual clock::time_point now() = 0;
};

}  // namespace tidesync::watch
