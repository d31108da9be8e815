// An informer: one watcher feeding one cache, plus handlers that hear which keys changed.
//
// Handlers receive keys ("ns/name" or "name"), never objects: reconciles are level-based
// and read the latest state from store() when they run, so a burst of events for one key
// collapses into one look at the newest object. A key whose object is gone from store()
// was deleted.
//
// Threading: start/stop and the handlers run on the loop thread (the transport's); store()
// may be read from any thread.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "runtime/watch/cache.hpp"
#include "runtime/watch/transport.hpp"
#include "runtime/watch/watcher.hpp"

namespace tidesync::watch {

class informer : private watcher_sink {
 public:
  using handler = std::function<void(const std::string& key)>;

  informer(transport& t, watcher_options options = {});
  ~informer() override;

  // Register before start(). Called after the cache was updated.
  void add_handler(handler h);
  void start();
  void stop();

  [[nodiscard]] const cache& store() const { return cache_; }
  [[nodiscard]] bool has_synced() const { return cache_.has_synced(); }
  [[nodiscard]] const watcher& source() const { return watcher_; }

 private:
  void on_list(std::vector<object> items) override;
  void on_event(watch_event ev) override;
  void notify(const std::string& key);

  cache cache_;
  std::vector<handler> handlers_;
  watcher watcher_;  // last: destroyed first, so no callback reaches a dead cache
};

}  // namespace tidesync::watch
