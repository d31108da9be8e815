// The informer's store: the latest object per key for one resource, with a label index.
//
// One writer (the watcher's sink, on the loop thread) and many readers (reconcilers on
// other threads). Concurrency choice: a std::shared_mutex around a hash map of
// shared_ptr<const object>. Writes touch one key and its label postings, so they hold the
// exclusive lock for microseconds; reads are point lookups or small selections that copy
// shared_ptrs out under the shared lock, after which the reader owns an immutable object
// no writer will ever modify. Copy-on-write snapshots of the whole map would make every
// write O(n) (a cache of 10,000 pods sees many writes per second), which is the wrong
// trade for a store where readers want single keys. A relist builds the new map outside the
// lock and swaps it in, so readers never see a half-replaced cache.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runtime/watch/object.hpp"
#include "runtime/watch/watch_event.hpp"

namespace tidesync::watch {

class cache {
 public:
  using handle = std::shared_ptr<const object>;

  enum class change : uint8_t { none, added, modified, deleted };

  cache() = default;
  cache(const cache&) = delete;
  cache& operator=(const cache&) = delete;

  // --- readers (any thread) ---

  // The object stored under `key` ("ns/name" or "name"), or null.
  [[nodiscard]] handle get(std::string_view key) const;
  [[nodiscard]] handle get(std::string_view ns, std::string_view name) const;
  // Every object, sorted by key.
  [[nodiscard]] std::vector<handle> list() const;
  // Objects of one namespace, sorted by key.
  [[nodiscard]] std::vector<handle> list_namespace(std::string_view ns) const;
  // Every key, sorted.
  [[nodiscard]] std::vector<std::string> keys() const;
  // Objects carrying every one of `labels` (key=value equality, as in "a=b,c=d"), sorted by
  // key. Uses the label index. An empty list selects everything.
  [[nodiscard]] std::vector<handle> select(const label_list& labels) const;
  // Objects for which `pred` is true, sorted by key (a full scan under the shared lock;
  // for set-based selectors the caller's own matcher goes here).
  [[nodiscard]] std::vector<handle> select_if(const std::function<bool(const object&)>& pred) const;
  [[nodiscard]] size_t size() const;
  // True once the first complete listing has been stored.
  [[nodiscard]] bool has_synced() const { return synced_.load(std::memory_order_acquire); }

  // --- the writer (one thread) ---

  // Applies an ADDED/MODIFIED/DELETED event. Events whose resourceVersion is not newer than
  // the stored one for that key are ignored (returns change::none): a late or replayed
  // event must never roll an object back.
  change apply(event_type type, object obj);
  // Replaces the whole content with a complete listing and marks the cache synced. Returns
  // what changed per key, including change::deleted for keys that are no longer listed.
  std::vector<std::pair<std::string, change>> replace(std::vector<object> items);

 private:
  using label_key = std::string;  // "key\0value"
  static label_key label_posting(const std::string& k, const std::string& v);
  // Callers hold the exclusive lock.
  void index_add(const std::string& key, const object& o);
  void index_remove(const std::string& key, const object& o);

  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, handle> objects_;
  std::unordered_map<label_key, std::unordered_set<std::string>> label_index_;
  std::atomic<bool> synced_{false};
};

}  // namespace tidesync::watch
