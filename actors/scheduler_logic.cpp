#include "actors/scheduler_logic.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

namespace tidesync::actors {

namespace {

scheduler_logic::random_source default_random() {
  auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
  return [rng] { return std::uniform_real_distribution<double>(0.0, 1.0)(*rng); };
}

}  // namespace

scheduler_logic::scheduler_logic(scheduler_options options, random_source random)
    : options_(std::move(options)), random_(random ? std::move(random) : default_random()) {}

// -- namespaces ---------------------------------------------------------------------------

scheduler_logic::ns_state& scheduler_logic::namespace_of(std::string_view key) {
  auto name = key_namespace(key);
  auto it = namespaces_.find(name);
  if (it == namespaces_.end()) {
    it = namespaces_.emplace(std::string{name}, ns_state{}).first;
    it->second.name = it->first;
    auto lim = options_.limits.per_namespace.find(it->first);
    if (lim != options_.limits.per_namespace.end()) it->second.limit = lim->second;
  }
  ++it->second.members;
  return it->second;
}

void scheduler_logic::release_namespace(ns_state& ns) {
  if (--ns.members > 0) return;
  // No entry refers to it any more: nothing queued, nothing running, nothing delayed.
  if (ns.ready_seq) ready_.erase({*ns.ready_seq, &ns});
  namespaces_.erase(namespaces_.find(ns.name));
}

// Keeps ready_ listing `ns` exactly when it has queued keys and room under its limit.
void scheduler_logic::refresh_ready(ns_state& ns) {
  std::optional<uint64_t> want;
  if (!ns.queue.empty() && has_room(ns)) want = ns.queue.begin()->first;
  if (want == ns.ready_seq) return;
  if (ns.ready_seq) ready_.erase({*ns.ready_seq, &ns});
  if (want) ready_.insert({*want, &ns});
  ns.ready_seq = want;
}

// -- moving entries between the queue and the delayed set ---------------------------------

void scheduler_logic::push_back(entry& e, time_point now) {
  e.st = state::queued;
  e.seq = next_seq_++;
  e.since = now;
  queue_.emplace_hint(queue_.end(), e.seq, &e);
  e.ns->queue.emplace_hint(e.ns->queue.end(), e.seq, &e);
  if (e.ns->queue.size() == 1) refresh_ready(*e.ns);  // only a new head changes ready_
}

void scheduler_logic::unqueue(entry& e) {
  queue_.erase(e.seq);
  bool was_head = e.ns->queue.begin()->first == e.seq;
  e.ns->queue.erase(e.seq);
  if (was_head) refresh_ready(*e.ns);
}

void scheduler_logic::delay(entry& e, time_point due) {
  e.st = state::delayed;
  e.seq = next_seq_++;
  e.due = due;
  delayed_.emplace(std::make_pair(due, e.seq), &e);
}

void scheduler_logic::undelay(entry& e) {
  delayed_.erase({e.due, e.seq});
}

void scheduler_logic::erase(entry& e) {
  auto& ns = *e.ns;
  entries_.erase(entries_.find(e.key));  // destroys e (erase by iterator: e.key dies with it)
  release_namespace(ns);
}

// -- public operations --------------------------------------------------------------------

bool scheduler_logic::enqueue(std::string_view key, time_point now) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    it = entries_.emplace(std::string{key}, entry{}).first;
    auto& e = it->second;
    e.key = it->first;
    e.ns = &namespace_of(e.key);
    push_back(e, now);
    ++counters_.adds;
    return true;
  }
  auto& e = it->second;
  switch (e.st) {
    case state::queued:
      return false;  // collapses: keeps its first position
    case state::running:
      if (e.dirty && !e.forgotten) return false;
      e.dirty = true;
      e.forgotten = false;  // deleted and re-created while it ran
      ++counters_.adds;
      return true;
    case state::delayed:
      undelay(e);
      push_back(e, now);
      ++counters_.adds;
      return true;
  }
  return false;
}

bool scheduler_logic::forget(std::string_view key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  auto& e = it->second;
  switch (e.st) {
    case state::queued:
      unqueue(e);
      erase(e);
      break;
    case state::delayed:
      undelay(e);
      erase(e);
      break;
    case state::running:
      if (e.forgotten) return false;
      // It cannot be stopped; done() drops its result.
      e.forgotten = true;
      e.dirty = false;
      e.failures = 0;
      break;
  }
  ++counters_.forgotten;
  return true;
}

void scheduler_logic::set_limits(scheduler_limits limits) {
  options_.limits = std::move(limits);
  for (auto& [name, ns] : namespaces_) {
    auto lim = options_.limits.per_namespace.find(name);
    ns.limit = lim == options_.limits.per_namespace.end() ? std::nullopt
                                                          : std::optional<uint32_t>{lim->second};
    refresh_ready(ns);
  }
}

scheduler_logic::done_result scheduler_logic::done(std::string_view key,
                                                   const reconcile_outcome& outcome,
                                                   time_point now) {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.st != state::running) return done_result::unknown;
  auto& e = it->second;
  --running_;
  --e.ns->running;
  refresh_ready(*e.ns);  // the namespace may have room again
  if (e.forgotten) {
    erase(e);
    return done_result::dropped;
  }
  using kind = reconcile_outcome::kind;
  bool gave_up = false;
  if (outcome.what == kind::transient_error) {
    if (++e.failures > options_.retry.limit) {
      gave_up = true;
      e.failures = 0;
      ++counters_.gave_up;
    }
  } else {
    e.failures = 0;
  }
  if (e.dirty) {  // a newer event: run again, at the back of the queue, skipping any delay
    e.dirty = false;
    push_back(e, now);
    return gave_up ? done_result::gave_up : done_result::queued;
  }
  if (gave_up) {
    erase(e);
    return done_result::gave_up;
  }
  switch (outcome.what) {
    case kind::success:
    case kind::terminal_error:
      erase(e);
      return done_result::idle;
    case kind::requeue_after:
      if (outcome.after.count() <= 0) {
        push_back(e, now);
        return done_result::queued;
      }
      delay(e, now + outcome.after);
      return done_result::delayed;
    case kind::transient_error:
      delay(e, now + backoff(e.failures));
      ++counters_.retries;
      return done_result::delayed;
  }
  return done_result::unknown;
}

std::size_t scheduler_logic::advance(time_point now) {
  std::size_t moved = 0;
  while (!delayed_.empty() && delayed_.begin()->first.first <= now) {
    auto& e = *delayed_.begin()->second;
    delayed_.erase(delayed_.begin());
    push_back(e, now);
    ++moved;
  }
  return moved;
}

std::vector<scheduler_logic::run_order> scheduler_logic::admit(time_point now) {
  std::vector<run_order> result;
  while (running_ < options_.limits.global && !ready_.empty()) {
    auto* ns = ready_.begin()->second;
    auto& e = *ns->queue.begin()->second;
    unqueue(e);  // refreshes ready_ for the namespace's next key
    e.st = state::running;
    ++running_;
    ++ns->running;
    if (!has_room(*ns)) refresh_ready(*ns);
    ++counters_.admitted;
    result.push_back({e.key, e.failures + 1, now - e.since});
  }
  return result;
}

std::optional<scheduler_logic::time_point> scheduler_logic::next_due() const {
  if (delayed_.empty()) return std::nullopt;
  return delayed_.begin()->first.first;
}

std::optional<uint64_t> scheduler_logic::position(std::string_view key) const {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.st != state::queued) return std::nullopt;
  auto pos = queue_.find(it->second.seq);
  return static_cast<uint64_t>(std::distance(queue_.begin(), pos)) + 1;
}

std::map<std::string, uint64_t> scheduler_logic::positions() const {
  std::map<std::string, uint64_t> result;
  uint64_t n = 0;
  for (auto& [seq, e] : queue_)
    result.emplace(e->key, ++n);
  return result;
}

scheduler_stats scheduler_logic::stats() const {
  auto s = counters_;
  s.queued = queue_.size();
  s.running = running_;
  s.delayed = delayed_.size();
  return s;
}

bool scheduler_logic::is_queued(std::string_view key) const {
  auto it = entries_.find(key);
  return it != entries_.end() && it->second.st == state::queued;
}

bool scheduler_logic::is_running(std::string_view key) const {
  auto it = entries_.find(key);
  return it != entries_.end() && it->second.st == state::running;
}

bool scheduler_logic::is_delayed(std::string_view key) const {
  auto it = entries_.find(key);
  return it != entries_.end() && it->second.st == state::delayed;
}

uint32_t scheduler_logic::failures(std::string_view key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? 0 : it->second.failures;
}

uint32_t scheduler_logic::running_in(std::string_view ns) const {
  auto it = namespaces_.find(ns);
  return it == namespaces_.end() ? 0 : it->second.running;
}

scheduler_logic::clock::duration scheduler_logic::backoff(uint32_t failures) {
  const auto& r = options_.retry;
  using ms = std::chrono::duration<double, std::milli>;
  double base = ms(r.base).count();
  double cap = ms(r.max).count();
  double raw = base * std::pow(r.factor, static_cast<double>(failures > 0 ? failures - 1 : 0));
  double capped = std::min(raw, cap);  // also tames inf for huge failure counts
  double u = random_();
  double jittered = capped * (1.0 + r.jitter * (2.0 * u - 1.0));
  return std::chrono::duration_cast<clock::duration>(ms(std::max(jittered, 0.0)));
}

std::string scheduler_logic::check_invariants() const {
  std::size_t queued = 0, running = 0, delayed = 0;
  std::map<const ns_state*, uint32_t> ns_running, ns_members;
  for (auto& [key, e] : entries_) {
    if (e.key != key) return "entry key mismatch: " + key;
    if (e.ns == nullptr || e.ns->name != key_namespace(key)) return "bad namespace: " + key;
    ++ns_members[e.ns];
    if (e.st != state::running && (e.dirty || e.forgotten)) return "dirty but not running: " + key;
    switch (e.st) {
      case state::queued: {
        ++queued;
        auto q = queue_.find(e.seq);
        if (q == queue_.end() || q->second != &e) return "queued key not in queue: " + key;
        auto nq = e.ns->queue.find(e.seq);
        if (nq == e.ns->queue.end() || nq->second != &e) return "not in ns queue: " + key;
        break;
      }
      case state::running:
        ++running;
        ++ns_running[e.ns];
        break;
      case state::delayed: {
        ++delayed;
        auto d = delayed_.find({e.due, e.seq});
        if (d == delayed_.end() || d->second != &e) return "delayed key not in timer set: " + key;
        break;
      }
    }
  }
  if (queued != queue_.size()) return "queue size mismatch";
  if (delayed != delayed_.size()) return "delayed size mismatch";
  if (running != running_) return "running count mismatch";
  std::size_t ns_queued = 0, ready = 0;
  for (auto& [name, ns] : namespaces_) {
    if (ns.members == 0 || ns.members != ns_members[&ns]) return "member count wrong: " + name;
    if (ns.running != ns_running[&ns]) return "ns running count wrong: " + name;
    ns_queued += ns.queue.size();
    bool want = !ns.queue.empty() && has_room(ns);
    if (want != ns.ready_seq.has_value()) return "ready set wrong for ns: " + name;
    if (want) {
      ++ready;
      if (*ns.ready_seq != ns.queue.begin()->first ||
          !ready_.count({*ns.ready_seq, const_cast<ns_state*>(&ns)}))
        return "ready head wrong for ns: " + name;
    }
    auto lim = options_.limits.per_namespace.find(name);
    std::optional<uint32_t> want_limit;
    if (lim != options_.limits.per_namespace.end()) want_limit = lim->second;
    if (ns.limit != want_limit) return "stale limit for ns: " + name;
  }
  if (ns_queued != queue_.size()) return "namespace queues disagree with the queue";
  if (ready != ready_.size()) return "ready set has extra entries";
  for (auto it = queue_.begin(); it != queue_.end() && std::next(it) != queue_.end(); ++it)
    if (it->first >= std::next(it)->first) return "queue out of order";
  return {};
}

// -- in-flight gauges ---------------------------------------------------------------------

in_flight_work measure_in_flight(
    const std::unordered_map<std::string, scheduler_logic::time_point>& running_since,
    scheduler_logic::time_point now) {
  in_flight_work w;
  for (const auto& [key, since] : running_since) {
    double age = std::max(std::chrono::duration<double>(now - since).count(), 0.0);
    w.unfinished_seconds += age;
    w.longest_running_seconds = std::max(w.longest_running_seconds, age);
  }
  return w;
}

}  // namespace tidesync::actors
