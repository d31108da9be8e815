// Watching a directory tree for changes (Linux inotify), and when to sync after one: the
// mechanism behind `tidesync agent sidecar --method fsnotify` (docs/podfilesystemsync.md).
//
//   classify()      the pure meaning of one inotify event (ignore, a change, a new directory to
//                   watch, a lost event queue, the root gone)
//   tree_watcher    a thread that watches every directory of a tree, adds watches for new
//                   directories, re-reads the tree after an event queue overflow and waits for
//                   a deleted root to come back; it only says what changed
//   decide_sync()   the pure debounce: sync now, at a later time, or wait for a change
//   parse_interval  "500ms", "2s", "1m30s" → milliseconds
//
// The watcher reports changes; it never decides what a change means for a sync.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "runtime/error.hpp"

namespace tidesync::fswatch {

// ---- events ----

// What one inotify event means for the watcher.
enum class action {
  ignore,       // nothing changed that matters (an ignored name, an event we do not act on)
  changed,      // a file or directory entry changed
  watch_dir,    // a directory appeared (created or moved in): watch it and all below; a change
  unwatch_dir,  // a directory was moved away: drop the watches on it and below; a change
  forget,       // the kernel removed this watch (IN_IGNORED): forget it
  rescan,       // the event queue overflowed, events were lost: watch the tree anew; a change
  root_gone,    // the root itself was deleted, moved or unmounted: a change; wait for it
};

struct event {
  uint32_t mask = 0;      // inotify's IN_* bits
  bool on_root = false;   // the event came on the root directory's own watch
  std::string_view name;  // the entry it names; "" for events on the watched directory itself
};

// True for names the watcher never reacts to.
using ignore_fn = std::function<bool(std::string_view name)>;

// The agents' own files: the marker `.tidesync-initialized` and the transfer engine's
// temporary files (".NAME.XXXXXXXX.partial", 8 hex digits; runtime/transfer/local_fs.cpp).
bool is_agent_file(std::string_view name);

// Pure. Overflow first (it carries no watch), then the kernel's watch removal, then the root's
// own fate, then ignored names, then directories appearing or leaving, then other changes.
action classify(const event& e, const ignore_fn& ignore);

// ---- the watcher ----

struct change {
  enum class kind {
    file,       // an entry changed; `path` is relative to the root
    overflow,   // events were lost (the kernel's queue overflowed); the tree was re-read
    root_gone,  // the root was deleted or moved away; the watcher waits for it
    root_back,  // the root exists (again) and is watched
  };
  kind what = kind::file;
  std::string path;  // file: the changed entry, relative to the root
};

struct watch_options {
  std::string root;
  ignore_fn ignore = is_agent_file;
  // While the root is missing (deleted, not yet created) it is looked for this often.
  std::chrono::milliseconds root_poll{1000};
  // Problems for people (a watch that could not be added: the watch limit, permissions).
  // Called on the watcher's thread.
  std::function<void(const std::string&)> on_warning;
};

class tree_watcher {
 public:
  using change_fn = std::function<void(const change&)>;

  // Watches `o.root` and everything below it on a thread of its own; what exists when start()
  // returns is watched. `on_change` is called on that thread for every change, in the order
  // the kernel reported them (keep it cheap: set a flag). A missing root is not an error: it
  // is watched once it appears (a root_back change). Errors: the
  // inotify instance or its thread cannot be made (errc::unavailable; the message says which
  // limit to raise).
  static expected<std::unique_ptr<tree_watcher>> start(watch_options o, change_fn on_change);

  // Stops the thread and closes the inotify instance.
  ~tree_watcher();
  tree_watcher(const tree_watcher&) = delete;
  tree_watcher& operator=(const tree_watcher&) = delete;

  // Directories watched now.
  [[nodiscard]] size_t watch_count() const { return watches_.load(); }
  // False when a directory could not be watched (the watch limit, no permission): changes
  // below it go unseen, so a caller should not rely on events alone.
  [[nodiscard]] bool complete() const { return complete_.load(); }
  // Whether the root exists and is watched.
  [[nodiscard]] bool root_present() const { return root_present_.load(); }

 private:
  struct state;
  tree_watcher(watch_options o, change_fn on_change, int inotify_fd, int stop_fd);
  void run();
  // The watch bookkeeping; called before the thread starts and then only on it.
  void warn(const std::string& text);
  void forget(int wd);
  bool add_one(const std::string& rel);   // false: not there (any more), or not watchable
  bool add_tree(const std::string& top);  // `top` and every directory below it
  void remove_tree(const std::string& rel);
  bool look_for_root();

  std::unique_ptr<state> s_;
  std::atomic<size_t> watches_{0};
  std::atomic<bool> complete_{true};
  std::atomic<bool> root_present_{false};
  std::thread thread_;
};

// ---- the debounce ----

using steady_clock = std::chrono::steady_clock;

struct debounce_state {
  // When the last sync started; nullopt before the first one.
  std::optional<steady_clock::time_point> last_start;
  // A change since the last sync started (or the start itself: the first sync).
  bool changed = false;
  // A sync runs now.
  bool running = false;
};

struct sync_decision {
  bool start_now = false;
  // When to decide again if no change comes first: set while a change waits for the minimum
  // interval to pass; nullopt: wait for a change (or for the running sync to end).
  std::optional<steady_clock::time_point> wake_at;
};

// Pure: at most one sync start per `min_interval`. No change: no sync. A change when the last
// sync started at least `min_interval` ago (or never): now. Otherwise at last_start +
// min_interval. While a sync runs, nothing starts; a change during it makes one more sync
// after it (the caller keeps `changed` set, so the decision after the run says when).
sync_decision decide_sync(const debounce_state& s, steady_clock::time_point now,
                          std::chrono::milliseconds min_interval);

// A positive duration written as Go writes one, with integer numbers: "500ms", "2s", "5m",
// "1h30m". Units: ms, s, m, h. Errors (errc::invalid_argument) name the text and an example.
expected<std::chrono::milliseconds> parse_interval(std::string_view text);

}  // namespace tidesync::fswatch
