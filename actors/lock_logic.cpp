#include "actors/lock_logic.hpp"

#include <algorithm>
#include <utility>

namespace tidesync::actors {

namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = lower(c);
  return out;
}

// rclone's remote-name rule (fs/config/configmap: letters, digits, `_ . + @ -` and spaces; no
// leading `-` or space, no trailing space), restricted to ASCII.
bool valid_remote(std::string_view r) {
  if (r.empty() || r.front() == '-' || r.front() == ' ' || r.back() == ' ') return false;
  return std::all_of(r.begin(), r.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '+' || c == '@' || c == '-' || c == ' ';
  });
}

std::string join(const std::vector<std::string>& segments) {
  std::string out;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (i) out += '/';
    out += segments[i];
  }
  return out;
}

// Index key: "remote:seg/seg" even without a remote (":seg/seg"), so that every key of one
// remote starts with "remote:" and every descendant of a path starts with "key/".
std::string index_key(const bucket_path& p) {
  return p.remote + ":" + join(p.segments);
}

bool overlap(const std::vector<bucket_path>& a, const std::vector<bucket_path>& b,
             std::string* path) {
  for (const auto& x : a)
    for (const auto& y : b)
      if (conflicts(x, y)) {
        if (path) *path = x.canonical();
        return true;
      }
  return false;
}

void sort_unique(std::vector<bucket_path>& paths) {
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
}

}  // namespace

std::string bucket_path::canonical() const {
  return remote.empty() ? join(segments) : remote + ":" + join(segments);
}

bool operator<(const bucket_path& a, const bucket_path& b) {
  if (a.remote != b.remote) return a.remote < b.remote;
  return a.segments < b.segments;
}

expected<bucket_path> normalize(std::string_view in) {
  auto bad = [&](std::string_view why) -> expected<bucket_path> {
    return make_error(errc::invalid_argument,
                      "bucket path \"" + std::string(in) + "\": " + std::string(why));
  };
  if (in.empty()) return bad("empty; expected remote:bucket/path");
  for (char c : in)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return bad("contains a control character");
  if (in.front() == ':')
    return bad(
        "on-the-fly backends (:backend,...:path) cannot be locked; configure a named remote");

  bucket_path out;
  std::string_view path = in;
  auto colon = in.find(':');
  // As in rclone, a ':' after a '/' belongs to a local path, not to a remote name.
  if (colon != std::string_view::npos && in.substr(0, colon).find('/') == std::string_view::npos) {
    auto remote = in.substr(0, colon);
    if (!valid_remote(remote))
      return bad("bad remote name \"" + std::string(remote) +
                 "\" (letters, digits, _ . + @ - and spaces)");
    out.remote = to_lower(remote);
    path = in.substr(colon + 1);
  }
  while (!path.empty()) {
    auto slash = path.find('/');
    auto seg = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") return bad("\"..\" is not allowed");
    out.segments.emplace_back(out.segments.empty() ? to_lower(seg) : std::string(seg));
  }
  if (out.remote.empty() && out.segments.empty()) return bad("no remote and no path");
  return out;
}

expected<std::vector<bucket_path>> normalize_set(const std::vector<std::string>& remote_paths) {
  if (remote_paths.empty()) return make_error(errc::invalid_argument, "no bucket paths to lock");
  std::vector<bucket_path> out;
  out.reserve(remote_paths.size());
  for (const auto& p : remote_paths) {
    auto n = normalize(p);
    if (!n) return n.error();
    out.push_back(std::move(*n));
  }
  sort_unique(out);
  return out;
}

bool conflicts(const bucket_path& a, const bucket_path& b) {
  if (a.remote != b.remote) return false;
  auto n = std::min(a.segments.size(), b.segments.size());
  return std::equal(a.segments.begin(), a.segments.begin() + static_cast<std::ptrdiff_t>(n),
                    b.segments.begin());
}

// -- lock_table --

const std::pair<const std::string, std::string>* lock_table::held_conflict(
    const bucket_path& p, std::string_view holder) const {
  // Ancestors and the path itself: one exact lookup per prefix.
  std::string key = p.remote + ":";
  for (std::size_t i = 0;; ++i) {
    auto it = index_.find(key);
    if (it != index_.end() && it->second != holder) return &*it;
    if (i == p.segments.size()) break;
    if (i) key += '/';
    key += p.segments[i];
  }
  // Descendants: one contiguous range of keys starting with "key/" ("remote:" for a root).
  std::string prefix = p.segments.empty() ? key : key + "/";
  for (auto it = index_.lower_bound(prefix);
       it != index_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (it->second != holder) return &*it;
  }
  return nullptr;
}

const lock_table::waiter* lock_table::earlier_overlap(const std::vector<bucket_path>& paths,
                                                      uint64_t seq, std::string* path) const {
  for (auto it = waiters_.begin(); it != waiters_.end() && it->first < seq; ++it) {
    if (overlap(paths, it->second.paths, path)) return &it->second;
  }
  return nullptr;
}

uint64_t lock_table::position_of(uint64_t seq) const {
  return static_cast<uint64_t>(std::distance(waiters_.begin(), waiters_.find(seq))) + 1;
}

void lock_table::grant(const std::string& holder, std::vector<bucket_path> paths,
                       time_point acquired, time_point renewed) {
  for (const auto& p : paths)
    index_[index_key(p)] = holder;
  held_[holder] = held_set{std::move(paths), acquired, renewed};
}

void lock_table::drop_held(std::string_view holder) {
  auto it = held_.find(holder);
  if (it == held_.end()) return;
  for (const auto& p : it->second.paths)
    index_.erase(index_key(p));
  held_.erase(it);
}

std::vector<std::string> lock_table::grant_waiters(time_point now) {
  std::vector<std::string> granted;
  std::vector<const std::vector<bucket_path>*> still_waiting;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    auto& w = it->second;
    bool ok = std::none_of(w.paths.begin(), w.paths.end(), [&](const bucket_path& p) {
      return held_conflict(p, w.holder) != nullptr;
    });
    for (std::size_t i = 0; ok && i < still_waiting.size(); ++i)
      ok = !overlap(w.paths, *still_waiting[i], nullptr);
    if (!ok) {
      still_waiting.push_back(&w.paths);
      ++it;
      continue;
    }
    granted.push_back(w.holder);
    waiter_seq_.erase(w.holder);
    grant(w.holder, std::move(w.paths), now, now);
    it = waiters_.erase(it);
  }
  return granted;
}

lock_table::request_result lock_table::request(const std::string& holder,
                                               std::vector<bucket_path> paths, time_point now) {
  using kind = request_result::kind;
  request_result r;
  if (paths.empty()) {
    r.what = kind::rejected;
    r.message = "no bucket paths to lock";
    return r;
  }
  sort_unique(paths);
  if (auto h = held_.find(holder); h != held_.end()) {
    if (h->second.paths == paths) return r;  // granted, as before
    r.what = kind::rejected;
    r.message = "holder " + holder + " already holds a different set of locks; release first";
    return r;
  }
  uint64_t seq = next_seq_;
  if (auto w = waiter_seq_.find(holder); w != waiter_seq_.end()) {
    auto& entry = waiters_.at(w->second);
    if (entry.paths != paths) {
      r.what = kind::rejected;
      r.message = "holder " + holder + " is waiting for a different set of locks; release first";
      return r;
    }
    entry.asked = now;
    seq = w->second;
  }
  // Who is in the way: a held lock first (that is who the user waits for), else an earlier
  // overlapping waiter (FIFO).
  for (const auto& p : paths) {
    if (const auto* c = held_conflict(p, holder)) {
      r.what = kind::waiting;
      r.blocker = c->second;
      r.path = p.canonical();
      break;
    }
  }
  if (r.what != kind::waiting) {
    if (const auto* w = earlier_overlap(paths, seq, &r.path)) {
      r.what = kind::waiting;
      r.blocker = w->holder;
      r.blocker_waiting = true;
    }
  }
  if (r.what != kind::waiting) {
    // Only a new request should get here: a queued waiter is always blocked (grant_waiters
    // grants it as soon as it is not). Stay consistent even if that ever fails.
    if (seq != next_seq_) {
      waiters_.erase(seq);
      waiter_seq_.erase(holder);
    }
    grant(holder, std::move(paths), now, now);
    return r;
  }
  if (seq == next_seq_) {
    ++next_seq_;
    waiters_.emplace(seq, waiter{holder, std::move(paths), now});
    waiter_seq_.emplace(holder, seq);
  }
  r.position = position_of(seq);
  return r;
}

std::vector<std::string> lock_table::release(std::string_view holder, time_point now) {
  if (held_.find(holder) != held_.end()) {
    drop_held(holder);
  } else if (auto w = waiter_seq_.find(holder); w != waiter_seq_.end()) {
    waiters_.erase(w->second);
    waiter_seq_.erase(w);
  } else {
    return {};
  }
  return grant_waiters(now);
}

expected<void> lock_table::adopt(const std::string& holder, std::vector<bucket_path> paths,
                                 time_point renewed, std::optional<time_point> acquired) {
  if (paths.empty()) return make_error(errc::invalid_argument, "adopt: no bucket paths");
  if (is_waiting(holder))
    return make_error(errc::invalid_argument, "adopt: holder " + holder + " is waiting");
  for (const auto& p : paths) {
    if (const auto* c = held_conflict(p, holder))
      return make_error(errc::conflict, "adopt: " + p.canonical() + " for " + holder +
                                            " conflicts with a lock held by " + c->second);
  }
  auto at = acquired.value_or(renewed);
  if (auto h = held_.find(holder); h != held_.end()) {
    paths.insert(paths.end(), h->second.paths.begin(), h->second.paths.end());
    renewed = std::max(renewed, h->second.renewed);
    at = std::min(at, h->second.acquired);
  }
  sort_unique(paths);
  grant(holder, std::move(paths), at, renewed);
  return {};
}

bool lock_table::renew(std::string_view holder, time_point now) {
  if (auto h = held_.find(holder); h != held_.end()) {
    h->second.renewed = now;
    return true;
  }
  if (auto w = waiter_seq_.find(holder); w != waiter_seq_.end()) {
    waiters_.at(w->second).asked = now;
    return true;
  }
  return false;
}

lock_table::reclaim_result lock_table::reclaim_stale(time_point now, std::chrono::seconds ttl,
                                                     const alive_fn& alive) {
  reclaim_result r;
  for (const auto& [holder, set] : held_) {
    if (now - set.renewed >= ttl && !alive(holder)) r.reclaimed.push_back(holder);
  }
  std::sort(r.reclaimed.begin(), r.reclaimed.end());  // deterministic order for callers
  for (const auto& h : r.reclaimed)
    drop_held(h);
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (now - it->second.asked >= ttl && !alive(it->second.holder)) {
      r.dropped_waiters.push_back(it->second.holder);
      waiter_seq_.erase(it->second.holder);
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
  if (!r.reclaimed.empty() || !r.dropped_waiters.empty()) r.granted = grant_waiters(now);
  return r;
}

std::optional<std::string> lock_table::holder_of(const bucket_path& path) const {
  if (const auto* c = held_conflict(path, {})) return c->second;
  return std::nullopt;
}

std::optional<uint64_t> lock_table::waiting_position(std::string_view holder) const {
  auto w = waiter_seq_.find(holder);
  if (w == waiter_seq_.end()) return std::nullopt;
  return position_of(w->second);
}

bool lock_table::holds(std::string_view holder) const {
  return held_.find(holder) != held_.end();
}

bool lock_table::is_waiting(std::string_view holder) const {
  return waiter_seq_.find(holder) != waiter_seq_.end();
}

std::vector<bucket_path> lock_table::paths_of(std::string_view holder) const {
  if (auto h = held_.find(holder); h != held_.end()) return h->second.paths;
  if (auto w = waiter_seq_.find(holder); w != waiter_seq_.end())
    return waiters_.at(w->second).paths;
  return {};
}

std::optional<lock_table::time_point> lock_table::acquired_at(std::string_view holder) const {
  if (auto h = held_.find(holder); h != held_.end()) return h->second.acquired;
  return std::nullopt;
}

std::optional<lock_table::time_point> lock_table::renewed_at(std::string_view holder) const {
  if (auto h = held_.find(holder); h != held_.end()) return h->second.renewed;
  return std::nullopt;
}

std::vector<std::string> lock_table::holders() const {
  std::vector<std::string> out;
  out.reserve(held_.size());
  for (const auto& [h, set] : held_)
    out.push_back(h);
  return out;
}

std::vector<std::string> lock_table::waiters() const {
  std::vector<std::string> out;
  out.reserve(waiters_.size());
  for (const auto& [seq, w] : waiters_)
    out.push_back(w.holder);
  return out;
}

std::string lock_table::check_invariants() const {
  std::size_t paths = 0;
  for (const auto& [holder, set] : held_) {
    if (set.paths.empty()) return "holder " + holder + " holds an empty set";
    if (!std::is_sorted(set.paths.begin(), set.paths.end())) return holder + ": set not sorted";
    if (waiter_seq_.count(holder)) return holder + " both holds and waits";
    for (const auto& p : set.paths) {
      auto it = index_.find(index_key(p));
      if (it == index_.end() || it->second != holder)
        return "index does not map " + p.canonical() + " to " + holder;
    }
    paths += set.paths.size();
  }
  if (paths != index_.size()) return "index has stale entries";
  for (auto a = held_.begin(); a != held_.end(); ++a) {
    for (auto b = std::next(a); b != held_.end(); ++b) {
      std::string where;
      if (overlap(a->second.paths, b->second.paths, &where))
        return a->first + " and " + b->first + " both hold " + where;
    }
  }
  if (waiters_.size() != waiter_seq_.size()) return "waiter index size differs";
  for (const auto& [seq, w] : waiters_) {
    auto s = waiter_seq_.find(w.holder);
    if (s == waiter_seq_.end() || s->second != seq) return "waiter index wrong for " + w.holder;
    bool blocked = std::any_of(w.paths.begin(), w.paths.end(), [&](const bucket_path& p) {
      return held_conflict(p, w.holder) != nullptr;
    });
    if (!blocked && !earlier_overlap(w.paths, seq, nullptr))
      return "waiter " + w.holder + " is not blocked by anything (should have been granted)";
  }
  return {};
}

}  // namespace tidesync::actors
