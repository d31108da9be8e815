#include "actors/lock_manager.hpp"

#include <algorithm>
#include <caf/all.hpp>
#include <map>
#include <utility>

#include "runtime/log.hpp"

namespace tidesync::actors {

namespace {

using self_ptr = lock_manager_actor::stateful_pointer<lock_manager_state>;

lock_table::time_point now(self_ptr self) {
  auto& st = self->state;
  auto elapsed = self->system().clock().now() - st.clock_start;
  return st.wall_start + std::chrono::duration_cast<lock_table::clock::duration>(elapsed);
}

lock_reply to_reply(const lock_table::request_result& r) {
  lock_reply out;
  switch (r.what) {
    case lock_table::request_result::kind::granted:
      out.what = lock_reply::kind::granted;
      break;
    case lock_table::request_result::kind::waiting:
      out.what = lock_reply::kind::waiting;
      break;
    case lock_table::request_result::kind::rejected:
      out.what = lock_reply::kind::rejected;
      break;
  }
  out.blocker = r.blocker;
  out.blocker_waiting = r.blocker_waiting;
  out.path = r.path;
  out.position = r.position;
  out.message = r.message;
  return out;
}

lock_reply rejected(std::string message) {
  lock_reply r;
  r.what = lock_reply::kind::rejected;
  r.message = std::move(message);
  return r;
}

void answer_awaiting(self_ptr self, const std::string& holder, const lock_reply& reply) {
  auto it = self->state.awaiting.find(holder);
  if (it == self->state.awaiting.end()) return;
  auto promises = std::move(it->second);
  self->state.awaiting.erase(it);
  for (auto& p : promises)
    p.deliver(reply);
}

void on_granted(self_ptr self, const std::string& holder) {
  auto& st = self->state;
  st.sink->granted(leases_for(st.table, holder, st.options));
  answer_awaiting(self, holder, lock_reply{});
}

void on_withdrawn(self_ptr self, const std::string& holder, std::string why) {
  answer_awaiting(self, holder, rejected(std::move(why)));
}

// Leases are deleted in reverse canonical order (created in canonical order).
void remove_leases(self_ptr self, std::vector<lease_record> leases) {
  if (leases.empty()) return;
  std::reverse(leases.begin(), leases.end());
  self->state.sink->released(leases);
}

std::chrono::milliseconds interval(const lock_options& o) {
  if (o.renew_interval.count() > 0) return o.renew_interval;
  return std::max(std::chrono::milliseconds{1000},
                  std::chrono::duration_cast<std::chrono::milliseconds>(o.ttl) / 3);
}

// A timer runs only while something is held or queued, so an idle manager has none.
void arm(self_ptr self) {
  auto& st = self->state;
  if (st.timer_armed || (st.table.holders().empty() && st.table.waiters().empty())) return;
  st.timer_armed = true;
  self->delayed_send(self, interval(st.options), atom::tick_v, ++st.timer_generation);
}

// Renews the locks of live holders (and the requests of live waiters), then reclaims what
// gone holders left for longer than the TTL and grants what that frees.
void renew_and_reclaim(self_ptr self) {
  auto& st = self->state;
  auto t = now(self);
  std::map<std::string, bool, std::less<>> alive;
  auto is_alive = [&](std::string_view h) {
    auto it = alive.find(h);
    if (it == alive.end()) it = alive.emplace(std::string(h), st.sink->alive(h)).first;
    return it->second;
  };
  auto holders = st.table.holders();
  std::sort(holders.begin(), holders.end());
  std::map<std::string, std::vector<lease_record>> before;  // of gone holders
  for (const auto& h : holders) {
    if (is_alive(h)) {
      st.table.renew(h, t);
      st.sink->renewed(leases_for(st.table, h, st.options));
    } else {
      before[h] = leases_for(st.table, h, st.options);
    }
  }
  for (const auto& w : st.table.waiters())
    if (is_alive(w)) st.table.renew(w, t);
  auto r = st.table.reclaim_stale(t, st.options.ttl, is_alive);
  for (const auto& h : r.reclaimed) {
    log::get("locks")->info("reclaimed the locks of {}: gone and not renewed for {}s", h,
                            st.options.ttl.count());
    remove_leases(self, before[h]);
  }
  for (const auto& w : r.dropped_waiters)
    on_withdrawn(self, w, "the waiting holder " + w + " is gone");
  for (const auto& g : r.granted)
    on_granted(self, g);
}

// Restart recovery (docs/locks.md): adopt the sets of live holders and of gone holders whose
// Lease is still fresh; delete stale Leases of gone holders.
void recover(self_ptr self, std::vector<lease_record> existing) {
  auto& st = self->state;
  auto t = now(self);
  std::vector<std::string> renew;
  for (auto& rec : existing) {
    bool alive = st.sink->alive(rec.holder);
    auto verdict = judge_lease(rec, t, st.options.ttl, alive);
    if (verdict == lease_verdict::reclaim) {
      log::get("locks")->info("lease {}: holder {} is gone; deleting the stale lock on {}",
                              rec.name, rec.holder, rec.path);
      st.sink->released({rec});
      continue;
    }
    auto set = normalize_set(rec.set);
    auto adopted =
        set ? st.table.adopt(rec.holder, std::move(*set), rec.renew_time, rec.acquire_time)
            : expected<void>(set.error());
    if (!adopted) {
      log::get("locks")->warn("lease {} left alone: {}", rec.name, adopted.error().message);
      continue;
    }
    if (verdict == lease_verdict::adopt) renew.push_back(rec.holder);
  }
  std::sort(renew.begin(), renew.end());
  renew.erase(std::unique(renew.begin(), renew.end()), renew.end());
  for (const auto& h : renew) {
    st.table.renew(h, t);
    st.sink->renewed(leases_for(st.table, h, st.options));
  }
}

}  // namespace

std::vector<lease_record> leases_for(const lock_table& table, const std::string& holder,
                                     const lock_options& options) {
  std::vector<lease_record> out;
  auto paths = table.paths_of(holder);
  auto acquired = table.acquired_at(holder);
  auto renewed = table.renewed_at(holder);
  if (paths.empty() || !acquired || !renewed) return out;  // waiting or unknown
  std::vector<std::string> set;
  set.reserve(paths.size());
  for (const auto& p : paths)
    set.push_back(p.canonical());
  for (const auto& path : set) {
    lease_record r;
    r.name = lease_name(path);
    r.lease_namespace = options.lease_namespace;
    r.holder = holder;
    r.path = path;
    r.set = set;
    r.acquire_time = *acquired;
    r.renew_time = *renewed;
    r.duration = options.ttl;
    out.push_back(std::move(r));
  }
  return out;
}

lock_manager_actor::behavior_type lock_manager(self_ptr self, lock_options options,
                                               std::vector<lease_record> existing,
                                               std::shared_ptr<lease_sink> sink) {
  auto& st = self->state;
  st.options = std::move(options);
  st.sink = std::move(sink);
  st.clock_start = self->system().clock().now();
  st.wall_start = st.options.wall_start.value_or(lock_table::clock::now());
  recover(self, std::move(existing));
  arm(self);
  return {
      [self](atom::acquire, const std::string& holder,
             const std::vector<std::string>& paths) -> lock_reply {
        auto& st = self->state;
        auto set = normalize_set(paths);
        if (!set) return rejected(set.error().message);
        bool held_before = st.table.holds(holder);
        auto r = st.table.request(holder, std::move(*set), now(self));
        if (r.what == lock_table::request_result::kind::granted && !held_before)
          on_granted(self, holder);
        arm(self);
        return to_reply(r);
      },
      [self](atom::await_lock, const std::string& holder) -> caf::result<lock_reply> {
        auto& st = self->state;
        if (st.table.holds(holder)) return lock_reply{};
        if (!st.table.is_waiting(holder))
          return rejected(holder + " is not waiting for a lock; acquire first");
        auto rp = self->make_response_promise<lock_reply>();
        st.awaiting[holder].push_back(rp);
        return rp;
      },
      [self](atom::release, const std::string& holder) {
        auto& st = self->state;
        auto t = now(self);
        if (st.table.holds(holder)) {
          auto leases = leases_for(st.table, holder, st.options);
          auto granted = st.table.release(holder, t);
          remove_leases(self, std::move(leases));
          for (const auto& g : granted)
            on_granted(self, g);
        } else if (st.table.is_waiting(holder)) {
          auto granted = st.table.release(holder, t);
          on_withdrawn(self, holder, holder + " withdrew its lock request");
          for (const auto& g : granted)
            on_granted(self, g);
        }
      },
      [self](atom::holder_of, const std::string& path) -> std::string {
        auto p = normalize(path);
        if (!p) return {};
        return self->state.table.holder_of(*p).value_or("");
      },
      [self](atom::tick, uint64_t generation) {
        auto& st = self->state;
        if (generation != st.timer_generation) return;  // superseded
        st.timer_armed = false;
        renew_and_reclaim(self);
        arm(self);
      },
  };
}

}  // namespace tidesync::actors
