#include "actors/datasync_queue.hpp"

#include <caf/all.hpp>
#include <utility>

#include "actors/events.hpp"
#include "config/datasync.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics/metrics.hpp"
#include "runtime/rfc3339.hpp"
#include "runtime/watch/object.hpp"

namespace tidesync::actors {

namespace {

using self_ptr = datasync_queue_actor::stateful_pointer<datasync_queue_state>;
using steady = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("datasync");
  return l;
}

std::string policy_key(const controller_context& ctx) {
  return watch::make_key(ctx.controller_namespace, datasync::k_policy_config_map);
}

// Re-reads the policy ConfigMap; reports its problems once per change of its data.
void read_policy(self_ptr self) {
  auto& st = self->state;
  auto handle = st.ctx->policy_config_maps->cache().get(policy_key(*st.ctx));
  std::optional<json::value> doc;
  if (handle)
    if (auto d = handle->parse()) doc = std::move(*d);
  const json::value* data = doc ? doc->at("data") : nullptr;
  std::string fp = !handle ? std::string() : data ? json::dump(*data) : std::string("{}");
  if (fp == st.policy_fingerprint) return;
  st.policy_fingerprint = fp;
  std::optional<std::map<std::string, std::string>> values;
  if (handle) values = config::read_string_map(data);
  auto parsed = datasync::parse_policy(values ? &*values : nullptr);
  auto& p = parsed.policy;
  logger()->info(
      "policy{}: concurrency={} retryLimit={} retryBackoffDuration={}s retryBackoffLimit={}s "
      "versionRetention={}",
      parsed.from_defaults ? " (no ConfigMap " + policy_key(*st.ctx) + ": defaults)" : "",
      p.concurrency, p.retry_limit, p.retry_backoff.count(), p.retry_backoff_limit.count(),
      p.version_retention);
  for (const auto& problem : parsed.problems) {
    logger()->warn("policy ConfigMap {}: {}", policy_key(*st.ctx), problem.message);
    event_subject about{"v1",
                        "ConfigMap",
                        st.ctx->controller_namespace,
                        std::string(datasync::k_policy_config_map),
                        handle->meta.uid,
                        {}};
    send_event(st.ctx->events_client(), about, "Warning", "InvalidPolicy", problem.message,
               st.ctx->now());
  }
  if (p != st.policy) st.dirty = true;
  bool retention_changed = p.version_retention != st.policy.version_retention;
  st.policy = p;
  if (retention_changed && p.version_retention > 0 && self->state.controller)
    for (const auto& [key, e] : st.index)
      if (e.succeeded && !e.workspace.empty()) self->send(st.controller, atom::wake_v, key);
}

using reservations = std::map<std::string, datasync_queue_state::reservation>;

reservations::iterator head_reservation(datasync_queue_state& st) {
  auto head = st.reserved.end();
  for (auto it = st.reserved.begin(); it != st.reserved.end(); ++it)
    if (head == st.reserved.end() || it->second.sequence < head->second.sequence) head = it;
  return head;
}

void wake(self_ptr self, const std::string& key) {
  if (self->state.controller) self->send(self->state.controller, atom::wake_v, key);
}

// Runs admission over the index (pure datasync::admit) and wakes whom it concerns.
void admit_now(self_ptr self) {
  auto& st = self->state;
  st.dirty = false;
  auto now_steady = steady::now();
  // Reservations end once the cache shows the DataSync out of Queued, or when stale.
  for (auto it = st.reserved.begin(); it != st.reserved.end();) {
    auto e = st.index.find(it->first);
    bool gone = e == st.index.end() || e->second.uid != it->second.uid;
    bool moved_on = !gone && e->second.what != queue_entry::state::queued;
    bool stale = now_steady - it->second.since > k_reservation_ttl;
    if (stale && !gone && !moved_on)
      logger()->warn("{}: admitted {}s ago but still Queued; its slot is given back", it->first,
                     k_reservation_ttl.count());
    if (gone || moved_on || stale)
      it = st.reserved.erase(it);
    else
      ++it;
  }
  // The oldest reservation left is the next to be granted: wake its actor if it was refused.
  if (auto head = head_reservation(st); head != st.reserved.end() && head->second.denied) {
    head->second.denied = false;
    wake(self, head->first);
  }
  int syncing = 0;
  std::vector<datasync::queued_item> queue;
  std::vector<std::string> keys;
  for (const auto& [key, e] : st.index) {
    if (e.what == queue_entry::state::syncing) ++syncing;
    bool waits = e.what == queue_entry::state::queued || e.what == queue_entry::state::pending;
    if (!waits || st.reserved.count(key) != 0) continue;
    auto slash = key.find('/');
    datasync::queued_item item;
    item.ns = key.substr(0, slash);
    item.name = key.substr(slash + 1);
    item.uid = e.uid;
    item.created = e.created;
    item.not_before = e.not_before;
    item.pending =
        e.what == queue_entry::state::pending && now_steady - e.pending_since < k_reservation_ttl;
    queue.push_back(std::move(item));
    keys.push_back(key);
  }
  syncing += static_cast<int>(st.reserved.size());
  auto now = st.ctx->now();
  auto adm = datasync::admit(queue, syncing, st.policy, now);
  for (auto i : adm.start) {
    const auto& key = keys[i];
    st.reserved[key] = {queue[i].uid, now_steady, st.next_sequence++, false};
    st.told.erase(key);
    ++syncing;
    if (st.ctx->metrics)
      st.ctx->metrics->datasync_admitted(
          static_cast<double>(std::max<int64_t>(0, (now - queue[i].created).count())));
    logger()->info("{}: admitted ({} of {} slots in use)", key, syncing, st.policy.concurrency);
    wake(self, key);
  }
  for (const auto& [key, pos] : adm.positions) {
    auto it = st.told.find(key);
    std::optional<int64_t> told;
    if (it != st.told.end()) told = it->second;
    if (!position_worth_writing(told, pos)) continue;
    st.told[key] = pos;
    wake(self, key);
  }
  for (auto it = st.told.begin(); it != st.told.end();)
    it = adm.positions.count(it->first) != 0 ? std::next(it) : st.told.erase(it);
  st.positions = std::move(adm.positions);
  st.syncing = syncing;
  if (adm.wake_at && (!st.timer_at || *adm.wake_at != *st.timer_at)) {
    st.timer_at = adm.wake_at;
    auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(*adm.wake_at - now) +
                 std::chrono::milliseconds(10);
    if (delay.count() < 0) delay = std::chrono::milliseconds(0);
    self->delayed_send(self, delay, atom::tick_v, ++st.timer_generation);
  }
  if (st.ctx->metrics)
    st.ctx->metrics->datasync_queue(static_cast<double>(st.positions.size()),
                                    static_cast<double>(syncing));
}

// Admission runs once per batch of messages: changes mark the queue dirty and post one flush.
void schedule_flush(self_ptr self) {
  auto& st = self->state;
  st.dirty = true;
  if (st.flush_pending) return;
  st.flush_pending = true;
  self->send(self, atom::flush_v);
}

// `key` was just seen Succeeded: the other Succeeded versions of its workspace may now be past
// the retention.
void wake_older_versions(self_ptr self, const std::string& key, const queue_entry& entry) {
  auto& st = self->state;
  auto ns = key.substr(0, key.find('/'));
  for (const auto& h : st.ctx->datasyncs->cache().select(
           {{std::string(config::k_workspace_label), entry.workspace}})) {
    if (h->meta.ns != ns) continue;
    auto other = h->key();
    if (other == key) continue;
    auto e = st.index.find(other);
    if (e != st.index.end() && e->second.succeeded) wake(self, other);
  }
}

void datasync_changed(self_ptr self, const std::string& key) {
  auto& st = self->state;
  auto handle = st.ctx->datasyncs->cache().get(key);
  if (!handle) {
    if (st.index.erase(key) != 0) schedule_flush(self);
    st.told.erase(key);
    return;
  }
  auto doc = handle->parse();
  if (!doc) return;
  auto entry = read_queue_entry(*doc);
  auto it = st.index.find(key);
  bool now_succeeded = entry.succeeded && !entry.workspace.empty() &&
                       (it == st.index.end() || !it->second.succeeded);
  if (now_succeeded && st.policy.version_retention > 0) wake_older_versions(self, key, entry);
  if (it != st.index.end() && it->second.what == entry.what && it->second.uid == entry.uid &&
      it->second.not_before == entry.not_before && it->second.created == entry.created) {
    it->second.succeeded = entry.succeeded;
    it->second.workspace = std::move(entry.workspace);
    return;  // nothing admission looks at changed (a progress write)
  }
  if (entry.what == queue_entry::state::pending)
    entry.pending_since = it != st.index.end() && it->second.what == queue_entry::state::pending
                              ? it->second.pending_since
                              : steady::now();
  st.index[key] = std::move(entry);
  schedule_flush(self);
}

}  // namespace

queue_entry read_queue_entry(const json::value& datasync) {
  queue_entry e;
  const auto* meta = datasync.at("metadata");
  if (meta == nullptr) return e;
  e.uid = std::string(meta->get_string("uid"));
  if (auto t = rfc3339::parse(meta->get_string("creationTimestamp"))) e.created = *t;
  const auto* status = datasync.at("status");
  std::string_view phase =
      status != nullptr && status->is_object() ? status->get_string("phase") : std::string_view();
  bool current = status != nullptr && status->is_object() &&
                 status->get_int("observedGeneration") == meta->get_int("generation");
  if (phase == "Syncing") {
    e.what = queue_entry::state::syncing;
  } else if (const auto* del = meta->at("deletionTimestamp"); del != nullptr && !del->is_null()) {
    e.what = queue_entry::state::other;
  } else if (phase.empty() || !current) {
    e.what = queue_entry::state::pending;
  } else if (phase == "Queued") {
    e.what = queue_entry::state::queued;
    if (auto t = rfc3339::parse(status->get_string("nextRetryTime"))) e.not_before = *t;
  } else if (phase == "Succeeded") {
    e.succeeded = true;
  }
  if (const auto* labels = meta->at("labels"); labels != nullptr && labels->is_object())
    e.workspace = std::string(labels->get_string(config::k_workspace_label));
  return e;
}

datasync_queue_actor::behavior_type datasync_queue(self_ptr self,
                                                   std::shared_ptr<const controller_context> ctx) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  read_policy(self);
  for (const auto& key : st.ctx->datasyncs->cache().keys())
    datasync_changed(self, key);
  return {
      [self](atom::changed, const std::string& resource, const std::string& key) {
        auto& st = self->state;
        if (resource == st.ctx->datasyncs->resource) return datasync_changed(self, key);
        if (resource == st.ctx->policy_config_maps->resource && key == policy_key(*st.ctx)) {
          read_policy(self);
          if (st.dirty) schedule_flush(self);
        }
      },
      [self](atom::ask, const std::string& key) {
        auto& st = self->state;
        // The asker may know more than the index (its own write): look at the cache again.
        datasync_changed(self, key);
        if (st.dirty) admit_now(self);
        queue_answer a;
        if (auto it = st.reserved.find(key); it != st.reserved.end()) {
          a.granted = head_reservation(st) == it;
          it->second.denied = !a.granted;
          it->second.since = steady::now();  // its actor is alive: the TTL counts from here
        }
        if (auto it = st.positions.find(key); it != st.positions.end()) a.position = it->second;
        a.syncing = st.syncing;
        a.set_policy(st.policy);
        return a;
      },
      [self](atom::attach, controller_actor controller) {
        self->state.controller = std::move(controller);
        schedule_flush(self);
      },
      [self](atom::flush) {
        auto& st = self->state;
        st.flush_pending = false;
        if (st.dirty) admit_now(self);
      },
      [self](atom::tick, uint64_t generation) {
        auto& st = self->state;
        if (generation != st.timer_generation) return;
        st.timer_at.reset();
        admit_now(self);
      },
  };
}

}  // namespace tidesync::actors
