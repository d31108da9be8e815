#include "runtime/watch/watcher.hpp"

#include <utility>

#include "runtime/log.hpp"

namespace tidesync::watch {

std::string_view to_string(watcher_state s) {
  switch (s) {
    case watcher_state::empty:
      return "empty";
    case watcher_state::listing:
      return "listing";
    case watcher_state::init_listed:
      return "init_listed";
    case watcher_state::watching:
      return "watching";
    case watcher_state::backing_off:
      return "backing_off";
    case watcher_state::stopped:
      return "stopped";
  }
  return "unknown";
}

std::string_view to_string(reconnect_reason r) {
  switch (r) {
    case reconnect_reason::closed:
      return "closed";
    case reconnect_reason::error:
      return "error";
    case reconnect_reason::expired:
      return "expired";
  }
  return "unknown";
}

namespace {
std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("watch");
  return l;
}
}  // namespace

watcher::watcher(transport& t, watcher_sink& sink, watcher_options options)
    : t_(t),
      sink_(sink),
      options_(std::move(options)),
      backoff_(options_.backoff),
      self_(std::make_shared<watcher*>(this)) {}

watcher::~watcher() {
  stop();
}

void watcher::start() {
  if (state_ != watcher_state::empty && state_ != watcher_state::stopped) return;
  begin_list();
}

void watcher::stop() {
  abandon_watch();
  ++gen_;
  pending_items_.clear();
  state_ = watcher_state::stopped;
}

void watcher::abandon_watch() {
  ++gen_;
  if (watch_id_) {
    t_.cancel(*watch_id_);
    watch_id_.reset();
  }
  decoder_.reset();
}

void watcher::begin_list() {
  ++gen_;
  state_ = watcher_state::listing;
  pending_items_.clear();
  continue_.clear();
  request_page();
}

void watcher::request_page() {
  list_request req;
  req.label_selector = options_.label_selector;
  req.limit = options_.page_size;
  req.continue_token = continue_;
  std::weak_ptr<watcher*> weak = self_;
  uint64_t gen = gen_;
  t_.list(req, [weak, gen](expected<std::string> body) {
    if (auto self = weak.lock()) (*self)->on_page(gen, std::move(body));
  });
}

void watcher::on_page(uint64_t gen, expected<std::string> body) {
  if (gen != gen_ || state_ != watcher_state::listing) return;
  if (!body) {
    if (body.error().code == errc::gone && !continue_.empty()) {
      // The continue token expired (the snapshot it pins was compacted): start over.
      logger()->info("{}: list continue token expired, listing again from the start",
                     options_.name);
      count_relist();
      begin_list();
      return;
    }
    retry_later(next_step::list, body.error());
    return;
  }
  auto page = decoder_.decode_list(*body);
  if (!page) {
    retry_later(next_step::list, page.error());
    return;
  }
  ++stats_.list_pages;
  if (pending_items_.empty()) {
    pending_items_ = std::move(page->items);
  } else {
    pending_items_.reserve(pending_items_.size() + page->items.size());
    for (auto& o : page->items)
      pending_items_.push_back(std::move(o));
  }
  if (!page->continue_token.empty()) {
    continue_ = std::move(page->continue_token);
    request_page();
    return;
  }
  // All pages come from one snapshot; its version is where the watch starts.
  continue_.clear();
  rv_ = std::move(page->resource_version);
  state_ = watcher_state::init_listed;
  ++stats_.lists;
  uint64_t my_gen = gen_;
  sink_.on_list(std::move(pending_items_));
  pending_items_.clear();
  if (my_gen != gen_) return;  // the sink stopped us
  begin_watch();
}

void watcher::begin_watch() {
  ++gen_;
  state_ = watcher_state::watching;
  decoder_.reset();
  watch_started_ = t_.now();
  events_in_watch_ = 0;
  ++stats_.watches;
  watch_request req;
  req.resource_version = rv_;
  req.label_selector = options_.label_selector;
  req.allow_bookmarks = options_.allow_bookmarks;
  req.timeout_seconds = options_.watch_timeout_seconds;
  std::weak_ptr<watcher*> weak = self_;
  const uint64_t gen = gen_;
  auto id = t_.watch(
      req,
      [weak, gen](std::string_view data) {
        if (auto self = weak.lock()) (*self)->on_chunk(gen, data);
      },
      [weak, gen](expected<void> result) {
        if (auto self = weak.lock()) (*self)->on_watch_done(gen, std::move(result));
      });
  // A transport may finish the call before returning (e.g. an immediate failure).
  if (gen == gen_) watch_id_ = id;
}

bool watcher::watch_was_unhealthy() const {
  return events_in_watch_ == 0 && t_.now() - watch_started_ < options_.min_healthy_watch;
}

void watcher::on_chunk(uint64_t gen, std::string_view data) {
  if (gen != gen_) return;
  decoder_.feed(data, batch_);
  process_batch(gen);
}

bool watcher::process_batch(uint64_t gen) {
  // Handle events one at a time: an event may end this watch (ERROR, bad line), and the
  // ones after it must then be dropped, not applied.
  for (auto& result : batch_) {
    if (gen != gen_) break;
    if (!result) {
      ++stats_.decode_errors;
      // Skipping the line would lose an event; re-watching from the last good version
      // makes the server send it again (retry_later logs the line's error).
      abandon_watch();
      reconnecting(reconnect_reason::error);
      retry_later(next_step::watch, result.error());
      break;
    }
    watch_event& ev = *result;
    switch (ev.type) {
      case event_type::bookmark:
        ++stats_.bookmarks;
        ++events_in_watch_;
        rv_ = std::move(ev.obj.meta.resource_version);
        break;
      case event_type::error: {
        error e = make_error(errc_from_http_status(ev.status.code),
                             "watch ERROR event: " + ev.status.message);
        e.http_status = ev.status.code;
        e.reason = ev.status.reason;
        if (ev.status.code == 410) {
          bool unhealthy = watch_was_unhealthy();
          abandon_watch();
          reconnecting(reconnect_reason::expired);
          if (unhealthy) {
            // Still a relist caused by 410, only delayed so a server that answers 410 at
            // once every time cannot make us spin.
            count_relist();
            retry_later(next_step::list, e);
          } else {
            relist(ev.status.message);
          }
        } else {
          abandon_watch();
          reconnecting(reconnect_reason::error);
          retry_later(next_step::watch, e);
        }
        break;
      }
      default:
        ++stats_.events;
        ++events_in_watch_;
        if (!ev.obj.meta.resource_version.empty()) rv_ = ev.obj.meta.resource_version;
        sink_.on_event(std::move(ev));
        break;
    }
  }
  batch_.clear();
  return gen == gen_;
}

void watcher::on_watch_done(uint64_t gen, expected<void> result) {
  if (gen != gen_) return;
  watch_id_.reset();
  // A final line without a newline still counts.
  decoder_.finish(batch_);
  if (!process_batch(gen)) return;
  bool unhealthy = watch_was_unhealthy();
  if (result) {
    // Ended normally, even when it ended too soon to count as healthy (then with a backoff).
    reconnecting(reconnect_reason::closed);
    if (unhealthy) {
      retry_later(next_step::watch,
                  make_error(errc::unavailable, "watch stream ended at once with no events"));
      return;
    }
    // The server's timeout ended the call: carry on from where we are, no relist.
    logger()->debug("{}: watch ended, re-watching from {}", options_.name, rv_);
    begin_watch();
    return;
  }
  if (result.error().code == errc::gone) {
    reconnecting(reconnect_reason::expired);
    if (unhealthy) {
      count_relist();  // delayed, as above
      retry_later(next_step::list, result.error());
    } else {
      relist(result.error().message);
    }
    return;
  }
  reconnecting(reconnect_reason::error);
  retry_later(next_step::watch, result.error());
}

void watcher::relist(const std::string& why) {
  logger()->info("{}: resourceVersion {} expired ({}), relisting", options_.name, rv_, why);
  count_relist();
  begin_list();
}

void watcher::reconnecting(reconnect_reason why) {
  if (options_.on_reconnect) options_.on_reconnect(why);
}

void watcher::count_relist() {
  ++stats_.relists;
  if (options_.on_relist) options_.on_relist();
}

void watcher::retry_later(next_step step, error why,
                          std::optional<std::chrono::milliseconds> delay_override) {
  ++gen_;
  ++stats_.errors;
  // Without a completed list there is no version to watch from.
  if (rv_.empty()) step = next_step::list;
  last_delay_ = delay_override ? *delay_override : backoff_.next(t_.now());
  logger()->warn("{}: {}; retrying the {} in {} ms", options_.name, why.to_string(),
                 step == next_step::list ? "list" : "watch", last_delay_.count());
  last_error_ = std::move(why);
  state_ = watcher_state::backing_off;
  pending_items_.clear();
  std::weak_ptr<watcher*> weak = self_;
  const uint64_t gen = gen_;
  t_.post_after(last_delay_, [weak, gen, step] {
    auto self = weak.lock();
    if (!self) return;
    watcher* w = *self;
    if (gen != w->gen_) return;
    if (step == next_step::list) {
      w->begin_list();
    } else {
      w->begin_watch();
    }
  });
}

}  // namespace tidesync::watch
