#include "runtime/watch/cache.hpp"

#include <algorithm>
#include <mutex>

namespace tidesync::watch {

namespace {
void sort_by_key(std::vector<std::pair<std::string, cache::handle>>& v) {
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
}
std::vector<cache::handle> handles(std::vector<std::pair<std::string, cache::handle>>&& v) {
  sort_by_key(v);
  std::vector<cache::handle> out;
  out.reserve(v.size());
  for (auto& [k, h] : v)
    out.push_back(std::move(h));
  return out;
}
bool has_labels(const object& o, const label_list& labels) {
  for (const auto& [k, v] : labels) {
    const std::string* have = o.meta.label(k);
    if (!have || *have != v) return false;
  }
  return true;
}
}  // namespace

cache::label_key cache::label_posting(const std::string& k, const std::string& v) {
  label_key p;
  p.reserve(k.size() + 1 + v.size());
  p.append(k);
  p.push_back('\0');
  p.append(v);
  return p;
}

cache::handle cache::get(std::string_view key) const {
  std::shared_lock lock(mu_);
  auto it = objects_.find(std::string(key));
  return it == objects_.end() ? nullptr : it->second;
}

cache::handle cache::get(std::string_view ns, std::string_view name) const {
  return get(make_key(ns, name));
}

std::vector<cache::handle> cache::list() const {
  std::vector<std::pair<std::string, handle>> v;
  {
    std::shared_lock lock(mu_);
    v.assign(objects_.begin(), objects_.end());
  }
  return handles(std::move(v));
}

std::vector<cache::handle> cache::list_namespace(std::string_view ns) const {
  return select_if([ns](const object& o) { return o.meta.ns == ns; });
}

std::vector<std::string> cache::keys() const {
  std::vector<std::string> out;
  {
    std::shared_lock lock(mu_);
    out.reserve(objects_.size());
    for (const auto& [k, h] : objects_)
      out.push_back(k);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<cache::handle> cache::select(const label_list& labels) const {
  if (labels.empty()) return list();
  std::vector<std::pair<std::string, handle>> v;
  {
    std::shared_lock lock(mu_);
    // Walk the smallest posting list and check the other labels on each candidate.
    const std::unordered_set<std::string>* smallest = nullptr;
    for (const auto& [k, val] : labels) {
      auto it = label_index_.find(label_posting(k, val));
      if (it == label_index_.end()) return {};
      if (!smallest || it->second.size() < smallest->size()) smallest = &it->second;
    }
    for (const auto& key : *smallest) {
      auto it = objects_.find(key);
      if (it != objects_.end() && has_labels(*it->second, labels)) v.emplace_back(key, it->second);
    }
  }
  return handles(std::move(v));
}

std::vector<cache::handle> cache::select_if(const std::function<bool(const object&)>& pred) const {
  std::vector<std::pair<std::string, handle>> v;
  {
    std::shared_lock lock(mu_);
    for (const auto& [k, h] : objects_) {
      if (pred(*h)) v.emplace_back(k, h);
    }
  }
  return handles(std::move(v));
}

size_t cache::size() const {
  std::shared_lock lock(mu_);
  return objects_.size();
}

void cache::index_add(const std::string& key, const object& o) {
  for (const auto& [k, v] : o.meta.labels)
    label_index_[label_posting(k, v)].insert(key);
}

void cache::index_remove(const std::string& key, const object& o) {
  for (const auto& [k, v] : o.meta.labels) {
    auto it = label_index_.find(label_posting(k, v));
    if (it == label_index_.end()) continue;
    it->second.erase(key);
    if (it->second.empty()) label_index_.erase(it);
  }
}

cache::change cache::apply(event_type type, object obj) {
  if (type != event_type::added && type != event_type::modified && type != event_type::deleted) {
    return change::none;
  }
  std::string key = obj.key();
  // Build the new entry before taking the lock.
  auto fresh = std::make_shared<const object>(std::move(obj));
  std::unique_lock lock(mu_);
  auto it = objects_.find(key);
  if (it != objects_.end() && compare_resource_versions(fresh->meta.resource_version,
                                                        it->second->meta.resource_version) <= 0) {
    return change::none;  // not newer than what we hold (kUnordered accepts it)
  }
  if (type == event_type::deleted) {
    if (it == objects_.end()) return change::none;
    index_remove(key, *it->second);
    objects_.erase(it);
    return change::deleted;
  }
  if (it == objects_.end()) {
    index_add(key, *fresh);
    objects_.emplace(std::move(key), std::move(fresh));
    return change::added;
  }
  if (it->second->meta.labels != fresh->meta.labels) {
    index_remove(key, *it->second);
    index_add(key, *fresh);
  }
  it->second = std::move(fresh);
  return change::modified;
}

std::vector<std::pair<std::string, cache::change>> cache::replace(std::vector<object> items) {
  // Build the new map and index without the lock; readers keep seeing the old content.
  std::unordered_map<std::string, handle> next;
  std::unordered_map<label_key, std::unordered_set<std::string>> next_index;
  next.reserve(items.size());
  for (auto& o : items) {
    std::string key = o.key();
    auto h = std::make_shared<const object>(std::move(o));
    for (const auto& [k, v] : h->meta.labels)
      next_index[label_posting(k, v)].insert(key);
    next[std::move(key)] = std::move(h);
  }
  std::vector<std::pair<std::string, change>> changes;
  std::unordered_map<std::string, handle> old;
  {
    std::unique_lock lock(mu_);
    old.swap(objects_);
    objects_.swap(next);
    label_index_.swap(next_index);
  }
  synced_.store(true, std::memory_order_release);
  // Diff outside the lock: only this (writer) thread touches `old`.
  for (const auto& [key, h] : objects_) {
    auto it = old.find(key);
    if (it == old.end()) {
      changes.emplace_back(key, change::added);
    } else if (it->second->meta.resource_version != h->meta.resource_version ||
               it->second->meta.uid != h->meta.uid) {
      changes.emplace_back(key, change::modified);
    }
  }
  for (const auto& [key, h] : old) {
    if (!objects_.count(key)) changes.emplace_back(key, change::deleted);
  }
  std::sort(changes.begin(), changes.end());
  return changes;
}

}  // namespace tidesync::watch
