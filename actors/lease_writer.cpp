#include "actors/lease_writer.hpp"

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "runtime/log.hpp"

namespace tidesync::actors {

namespace {

using steady = std::chrono::steady_clock;

const k8s::resource& leases_resource() {
  static const k8s::resource r = k8s::resources::leases();
  return r;
}

enum class step { create, get, update, remove };

const char* to_string(step s) {
  switch (s) {
    case step::create:
      return "create";
    case step::get:
      return "read";
    case step::update:
      return "update";
    case step::remove:
      return "delete";
  }
  return "?";
}

// One request to send: what, for which wish, and the body of a create or update.
struct action {
  step what = step::create;
  uint64_t version = 0;
  std::string ns;
  std::string name;
  json::value body;
};

}  // namespace

struct lease_writer::state {
  // What the writer knows and wants for one Lease name.
  struct entry {
    std::string ns;
    std::string name;
    bool want_present = false;
    lease_record want;     // the latest wish: the Lease to write, or the one to delete
    uint64_t version = 0;  // bumped by each wish
    uint64_t settled = 0;  // the last version written or abandoned
    bool busy = false;     // a request or a retry timer is outstanding
    bool timer_armed = false;
    http::timer_id timer = 0;
    // The Lease as the server last answered it (our write or a read): updates start from it,
    // so they carry its resourceVersion and keep what others added.
    std::optional<json::value> last;
    std::optional<backoff> retry;
    std::optional<steady::time_point> failing_since;
    int conflicts_in_row = 0;

    [[nodiscard]] bool pending() const { return busy || settled != version; }
  };

  k8s::client* client = nullptr;
  lease_writer_options options;
  mutable std::mutex mu;
  std::condition_variable cv;
  bool closed = false;
  std::map<std::string, entry> entries;  // by "namespace/name"
  stats counters;

  [[nodiscard]] size_t pending_locked() const {
    size_t n = 0;
    for (const auto& [key, e] : entries)
      n += e.pending() ? 1 : 0;
    return n;
  }
};

namespace {

using state = lease_writer::state;
using entry = lease_writer::state::entry;
using state_ptr = std::shared_ptr<state>;

void kick(const state_ptr& st, const std::string& key);

// The request that moves the server toward the entry's current wish.
action first_action(const entry& e) {
  action a;
  a.version = e.version;
  a.ns = e.ns;
  a.name = e.name;
  if (!e.want_present) {
    a.what = step::remove;
  } else if (e.last) {
    // Merge onto the server's copy: its resourceVersion makes the PUT conditional, and labels,
    // annotations or spec fields someone else added survive.
    a.what = step::update;
    a.body = json::merge_patch(*e.last, build_lease(e.want));
  } else {
    a.what = step::create;
    a.body = build_lease(e.want);
  }
  return a;
}

action read_action(const entry& e) {
  action a;
  a.what = step::get;
  a.version = e.version;
  a.ns = e.ns;
  a.name = e.name;
  return a;
}

void on_answer(const state_ptr& st, const std::string& key, step what, uint64_t version,
               expected<json::value> r);

void send(const state_ptr& st, const std::string& key, action a) {
  std::weak_ptr<state> weak = st;
  auto cb = [weak, key, what = a.what, version = a.version](expected<json::value> r) {
    if (auto s = weak.lock()) on_answer(s, key, what, version, std::move(r));
  };
  const auto& res = leases_resource();
  switch (a.what) {
    case step::create:
      st->client->create(res, a.ns, a.body, std::move(cb));
      break;
    case step::get:
      st->client->get(res, a.ns, a.name, std::move(cb));
      break;
    case step::update:
      st->client->update(res, a.ns, a.name, a.body, std::move(cb));
      break;
    case step::remove:
      st->client->remove(res, a.ns, a.name, {}, std::move(cb));
      break;
  }
}

void on_timer(const std::weak_ptr<state>& weak, const std::string& key) {
  auto st = weak.lock();
  if (!st) return;
  {
    std::lock_guard lock(st->mu);
    if (st->closed) return;
    auto it = st->entries.find(key);
    if (it == st->entries.end()) return;
    it->second.timer_armed = false;
    it->second.busy = false;
  }
  kick(st, key);
}

// The entry's wish is done (written, or abandoned after a warning): the next kick starts a
// newer wish, or forgets a deleted Lease.
void settle(entry& e, uint64_t version) {
  e.busy = false;
  e.conflicts_in_row = 0;
  e.retry.reset();
  e.failing_since.reset();
  if (e.version == version) e.settled = version;
}

void on_answer(const state_ptr& st, const std::string& key, step what, uint64_t version,
               expected<json::value> r) {
  std::optional<action> next;
  std::optional<std::chrono::milliseconds> retry_in;
  {
    std::lock_guard lock(st->mu);
    if (st->closed) return;
    auto it = st->entries.find(key);
    if (it == st->entries.end()) return;
    entry& e = it->second;
    auto log = log::get("locks");

    // After a conflict: re-read what the server has (or just delete, if that is the wish now).
    auto reread = [&] {
      ++st->counters.conflicts;
      if (++e.conflicts_in_row <= st->options.max_conflicts) {
        next = e.want_present ? read_action(e) : first_action(e);
        return true;
      }
      return false;
    };

    bool handled = true;
    if (r) {
      switch (what) {
        case step::create:
          ++st->counters.creates;
          e.last = std::move(*r);
          settle(e, version);
          break;
        case step::update:
          ++st->counters.updates;
          e.last = std::move(*r);
          settle(e, version);
          break;
        case step::remove:
          ++st->counters.deletes;
          e.last.reset();
          settle(e, version);
          break;
        case step::get: {
          const auto* spec = r->at("spec");
          auto holder = spec ? spec->get_string("holderIdentity") : std::string_view{};
          const auto* path = r->at_path({"metadata", "annotations", lease_path_annotation});
          if (e.want_present && path && path->is_string() && path->as_string() != e.want.path) {
            log->warn("Lease {}/{} locks {} but is wanted for {}: two lock paths share a name",
                      e.ns, e.name, path->as_string(), e.want.path);
          } else if (e.want_present && holder != e.want.holder) {
            log->warn(
                "Lease {}/{} names holder {}; rewriting it for {}, which the lock table "
                "grants",
                e.ns, e.name, holder, e.want.holder);
          }
          e.last = std::move(*r);
          next = first_action(e);
          break;
        }
      }
    } else {
      const auto& err = r.error();
      if (err.code == errc::cancelled) {
        // The HTTP loop stopped (shutdown): nothing more can be written.
        log->debug("{} of Lease {}/{} cancelled", to_string(what), e.ns, e.name);
        e.last.reset();
        settle(e, e.version);
      } else if (what == step::remove && err.code == errc::not_found) {
        e.last.reset();
        settle(e, version);
      } else if (what == step::create && err.code == errc::already_exists) {
        handled = reread();
      } else if (what == step::update &&
                 (err.code == errc::conflict || err.code == errc::not_found)) {
        e.last.reset();
        handled = reread();
      } else if (what == step::get && err.code == errc::not_found) {
        e.last.reset();
        next = first_action(e);  // create it (or nothing left to delete)
      } else {
        handled = false;
      }
      if (!handled) {
        ++st->counters.failures;
        e.last.reset();  // unknown now: start over from a create or a read
        auto now = steady::now();
        if (!e.failing_since) e.failing_since = now;
        // Conflicts past max_conflicts land here too: wait a backoff, then start over.
        bool retryable =
            err.transient() || err.code == errc::already_exists || err.code == errc::not_found;
        if (retryable && now - *e.failing_since < st->options.give_up_after) {
          if (!e.retry) e.retry.emplace(st->options.retry);
          retry_in = e.retry->next(now);
          e.conflicts_in_row = 0;
          e.timer_armed = true;
          log->debug("{} of Lease {}/{} failed ({}); retrying in {} ms", to_string(what), e.ns,
                     e.name, err.to_string(), retry_in->count());
        } else {
          log->warn("giving up on the {} of Lease {}/{} (lock {} of {}): {}", to_string(what), e.ns,
                    e.name, e.want.path, e.want.holder, err.to_string());
          settle(e, version);  // a newer wish, if any, gets its own attempts
        }
      }
    }
    if (next) next->version = e.version;
    st->cv.notify_all();
  }
  if (next) {
    send(st, key, std::move(*next));
  } else if (retry_in) {
    std::weak_ptr<state> weak = st;
    auto id = st->client->event_loop().post_after(*retry_in, [weak, key] { on_timer(weak, key); });
    std::lock_guard lock(st->mu);
    auto it = st->entries.find(key);
    if (it != st->entries.end() && it->second.timer_armed) it->second.timer = id;
  } else {
    kick(st, key);
  }
}

// Starts the next write for `key` unless one is outstanding; forgets a deleted Lease.
void kick(const state_ptr& st, const std::string& key) {
  action a;
  {
    std::lock_guard lock(st->mu);
    if (st->closed) return;
    auto it = st->entries.find(key);
    if (it == st->entries.end() || it->second.busy) return;
    entry& e = it->second;
    if (e.settled == e.version) {
      if (!e.want_present) st->entries.erase(it);
      st->cv.notify_all();
      return;
    }
    e.busy = true;
    a = first_action(e);
  }
  send(st, key, std::move(a));
}

// Records the wish for each Lease and starts a write for each name that has none outstanding
// (an outstanding one picks the wish up when it ends).
void wish(const state_ptr& st, const std::vector<lease_record>& leases, bool present) {
  std::vector<std::string> start;
  {
    std::lock_guard lock(st->mu);
    if (st->closed) return;
    for (const auto& r : leases) {
      std::string name = r.name.empty() ? lease_name(r.path) : r.name;
      std::string key = r.lease_namespace + "/" + name;
      entry& e = st->entries[key];
      e.ns = r.lease_namespace;
      e.name = std::move(name);
      e.want_present = present;
      e.want = r;
      e.want.name = e.name;
      e.want.resource_version.clear();  // concurrency comes from the server's copy
      ++e.version;
      if (!e.busy) start.push_back(std::move(key));
    }
  }
  for (const auto& key : start)
    kick(st, key);
}

}  // namespace

lease_writer::lease_writer(k8s::client& client, std::function<bool(std::string_view)> alive,
                           lease_writer_options options)
    : alive_(std::move(alive)), state_(std::make_shared<state>()) {
  state_->client = &client;
  state_->options = std::move(options);
}

lease_writer::~lease_writer() {
  std::vector<http::timer_id> timers;
  {
    std::lock_guard lock(state_->mu);
    state_->closed = true;
    for (auto& [key, e] : state_->entries)
      if (e.timer_armed && e.timer != 0) timers.push_back(e.timer);
    state_->cv.notify_all();
  }
  for (auto id : timers)
    state_->client->event_loop().cancel_timer(id);
}

bool lease_writer::alive(std::string_view holder) {
  // Without a lookup nobody is alive: gone holders' locks are reclaimed after the TTL only.
  return alive_ ? alive_(holder) : false;
}

void lease_writer::granted(const std::vector<lease_record>& leases) {
  wish(state_, leases, true);
}

void lease_writer::renewed(const std::vector<lease_record>& leases) {
  wish(state_, leases, true);
}

void lease_writer::released(const std::vector<lease_record>& leases) {
  wish(state_, leases, false);
}

bool lease_writer::flush(std::chrono::milliseconds timeout) {
  if (state_->client->event_loop().on_loop_thread()) return false;  // would deadlock
  std::unique_lock lock(state_->mu);
  return state_->cv.wait_for(lock, timeout, [&] { return state_->pending_locked() == 0; });
}

lease_writer::stats lease_writer::get_stats() const {
  std::lock_guard lock(state_->mu);
  stats s = state_->counters;
  s.pending = state_->pending_locked();
  return s;
}

expected<std::vector<lease_record>> list_lock_leases(k8s::client& client, const std::string& ns) {
  k8s::list_options opts;
  opts.label_selector = std::string(lease_lock_label) + "=true";
  opts.limit = 500;
  auto list = client.list_all_sync(leases_resource(), ns, opts);
  if (!list) {
    auto e = list.error();
    e.message = "listing the lock Leases in namespace " + ns + ": " + e.message;
    return e;
  }
  std::vector<lease_record> out;
  const auto* items = list->at("items");
  if (!items || !items->is_array()) return out;  // an empty list may carry "items": null
  auto log = log::get("locks");
  for (auto item : items->as_array()) {
    // A real API server leaves apiVersion and kind out of list items.
    if (item.get_string("apiVersion").empty()) item["apiVersion"] = "coordination.k8s.io/v1";
    if (item.get_string("kind").empty()) item["kind"] = "Lease";
    auto r = parse_lease(item);
    if (!r) {
      const auto* md = item.at("metadata");
      log->warn("skipping Lease {}/{}: {}", md ? md->get_string("namespace") : "",
                md ? md->get_string("name") : "", r.error().message);
      continue;
    }
    out.push_back(std::move(*r));
  }
  return out;
}

}  // namespace tidesync::actors
