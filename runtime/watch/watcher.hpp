// The list-then-watch state machine for one resource (modelled on kube-rs `watcher.rs`).
//
//   empty ──start──▶ listing ──last page──▶ init_listed ──▶ watching
//                      ▲  │ (limit/continue paging)             │
//                      │  └──error──▶ backing_off ──▶ listing   │
//                      │                                        │
//                      ├── 410 Gone (HTTP, ERROR event, or expired continue token): relist,
//                      │   and the sink gets the complete new listing (the informer replaces
//                      │   its cache with it and emits deletes for objects that vanished)
//                      │
//   watching ── stream ended normally ──▶ watching again from the last resourceVersion seen
//   watching ── other error / undecodable line ──▶ backing_off ──▶ watching from last RV
//
// Backoff is jittered exponential (0.8 s doubling to 30 s) and starts over when failures are
// more than two minutes apart (tidesync::backoff). A stream that ends within a second having
// delivered nothing also counts as a failure, so a misbehaving server cannot make us spin.
//
// Threading: not thread-safe. Every method and every transport callback runs on the loop
// thread; the watcher does no locking and starts no threads, so tests drive it directly.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/backoff.hpp"
#include "runtime/error.hpp"
#include "runtime/watch/transport.hpp"
#include "runtime/watch/watch_decoder.hpp"
#include "runtime/watch/watch_event.hpp"

namespace tidesync::watch {

// Receives what the watcher learns. Called on the loop thread.
class watcher_sink {
 public:
  virtual ~watcher_sink() = default;
  // A complete listing (the first one, or a relist after 410): exactly the objects that
  // exist now. Anything the sink holds that is not in `items` is gone.
  virtual void on_list(std::vector<object> items) = 0;
  // An ADDED, MODIFIED or DELETED event from the stream (never BOOKMARK or ERROR).
  virtual void on_event(watch_event ev) = 0;
};

// Why an open watch ended and is being re-established (the `reason` of
// tidesync_watch_reconnects_total). A small fixed set: never a message or a status text.
enum class reconnect_reason : uint8_t {
  closed,   // the server ended the stream normally (its timeoutSeconds, a graceful shutdown)
  error,    // the call failed (connection, idle timeout, a non-410 status or ERROR event,
            // an undecodable line): re-watch after a backoff
  expired,  // 410 Gone / Expired: the resourceVersion is too old, so relist, then watch
};
std::string_view to_string(reconnect_reason r);

struct watcher_options {
  std::string name = "watch";  // for logs, e.g. "v1/pods"
  std::string label_selector;
  int64_t page_size = 500;  // list page size (limit); 0 lists in one response
  int watch_timeout_seconds = 300;
  bool allow_bookmarks = true;
  backoff_options backoff;
  // A watch that ends (normally or with 410) sooner than this without delivering anything
  // is treated as a failure and retried with backoff.
  std::chrono::milliseconds min_healthy_watch{1000};
  // Observers (optional; called on the loop thread, must not call back into the watcher).
  // on_reconnect: an open watch ended and the watcher sets out to re-establish it, at once or
  // after a backoff; once per ended watch call, so failed attempts during an outage count
  // each. Not called for the first watch, nor after stop().
  std::function<void(reconnect_reason)> on_reconnect;
  // on_relist: a full listing starts over because of 410 (an expired resourceVersion or
  // continue token), the same moments as watcher_stats::relists.
  std::function<void()> on_relist;
};

enum class watcher_state : uint8_t {
  empty,        // not started
  listing,      // fetching list pages
  init_listed,  // list complete, watch about to start
  watching,     // a watch stream is open
  backing_off,  // waiting before the next attempt
  stopped,
};
std::string_view to_string(watcher_state s);

struct watcher_stats {
  uint64_t lists = 0;  // complete listings delivered to the sink
  uint64_t list_pages = 0;
  uint64_t relists = 0;  // lists caused by 410 Gone
  uint64_t watches = 0;  // watch calls started
  uint64_t events = 0;   // ADDED/MODIFIED/DELETED delivered
  uint64_t bookmarks = 0;
  uint64_t errors = 0;         // failures that led to a backoff
  uint64_t decode_errors = 0;  // undecodable lines
};

class watcher {
 public:
  watcher(transport& t, watcher_sink& sink, watcher_options options = {});
  ~watcher();
  watcher(const watcher&) = delete;
  watcher& operator=(const watcher&) = delete;

  // Starts listing. Only valid in state empty or stopped.
  void start();
  // Cancels whatever is in flight; late callbacks are ignored. start() may be called again.
  void stop();

  [[nodiscard]] watcher_state state() const { return state_; }
  // The last resourceVersion seen (from the list, an event or a bookmark).
  [[nodiscard]] const std::string& resource_version() const { return rv_; }
  [[nodiscard]] const watcher_stats& stats() const { return stats_; }
  // The error behind the current or last backoff.
  [[nodiscard]] const std::optional<error>& last_error() const { return last_error_; }
  // The delay of the last scheduled retry (for tests and metrics).
  [[nodiscard]] std::chrono::milliseconds last_delay() const { return last_delay_; }

 private:
  enum class next_step : uint8_t { list, watch };

  void begin_list();
  void request_page();
  void on_page(uint64_t gen, expected<std::string> body);
  void begin_watch();
  void on_chunk(uint64_t gen, std::string_view data);
  void on_watch_done(uint64_t gen, expected<void> result);
  // Handles decoded results; returns false when the watch was abandoned.
  bool process_batch(uint64_t gen);
  // Abandons the open watch (if any) and bumps the generation.
  void abandon_watch();
  // Retries `step` after a backoff delay (or `delay_override`).
  void retry_later(next_step step, error why,
                   std::optional<std::chrono::milliseconds> delay_override = std::nullopt);
  // A watch ended; was it too short to count as healthy?
  [[nodiscard]] bool watch_was_unhealthy() const;
  void relist(const std::string& why);
  // Tells the observers (options_.on_reconnect / on_relist).
  void reconnecting(reconnect_reason why);
  void count_relist();

  transport& t_;
  watcher_sink& sink_;
  watcher_options options_;
  watch_decoder decoder_;
  backoff backoff_;
  watcher_state state_ = watcher_state::empty;
  std::string rv_;
  std::string continue_;
  std::vector<object> pending_items_;  // pages of a listing in progress
  std::vector<expected<watch_event>> batch_;
  // Bumped whenever the current operation is abandoned; callbacks carry the generation they
  // were issued under and are ignored when it no longer matches.
  uint64_t gen_ = 0;
  std::optional<transport::watch_id> watch_id_;
  transport::clock::time_point watch_started_{};
  uint64_t events_in_watch_ = 0;
  watcher_stats stats_;
  std::optional<error> last_error_;
  std::chrono::milliseconds last_delay_{0};
  // Callbacks hold a weak_ptr to this token so they do nothing once the watcher is gone.
  std::shared_ptr<watcher*> self_;
};

}  // namespace tidesync::watch
