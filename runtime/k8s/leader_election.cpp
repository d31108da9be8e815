#include "runtime/k8s/leader_election.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>

#include "runtime/http/loop.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/k8s/resource.hpp"
#include "runtime/log.hpp"
#include "runtime/rfc3339.hpp"

namespace tidesync::k8s {

using namespace std::chrono_literals;
using steady = election_state::clock;
using std::chrono::milliseconds;

namespace {

// leaseDurationSeconds for our options: whole seconds, rounded up, at least 1.
int64_t lease_seconds(const leader_election_options& o) {
  return std::max<int64_t>(1, std::chrono::ceil<std::chrono::seconds>(o.lease_duration).count());
}

std::string millis_text(steady::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s",
                std::chrono::duration_cast<milliseconds>(d).count() / 1000.0);
  return buf;
}

}  // namespace

expected<void> validate(const leader_election_options& o) {
  auto bad = [](std::string m) -> expected<void> {
    return make_error(errc::invalid_argument, std::move(m));
  };
  if (o.lease_namespace.empty()) return bad("leader election: the Lease namespace is empty");
  if (o.lease_name.empty()) return bad("leader election: the Lease name is empty");
  if (o.lease_duration < 1s)
    return bad(
        "--leader-elect-lease-duration must be at least 1s (it is written in whole seconds)");
  if (o.renew_deadline <= 0ms) return bad("--leader-elect-renew-deadline must be positive");
  if (o.retry_period <= 0ms) return bad("--leader-elect-retry-period must be positive");
  if (o.renew_deadline >= o.lease_duration)
    return bad("--leader-elect-renew-deadline (" + std::to_string(o.renew_deadline.count()) +
               "ms) must be less than --leader-elect-lease-duration (" +
               std::to_string(o.lease_duration.count()) +
               "ms): a leader must give up before others may take over");
  // client-go's rule: the leader retries renewals with jitter up to 1.2 × retry_period, and
  // must get at least one chance inside the deadline.
  if (o.retry_period.count() * 6 >= o.renew_deadline.count() * 5)
    return bad("--leader-elect-retry-period (" + std::to_string(o.retry_period.count()) +
               "ms) times 1.2 must be less than --leader-elect-renew-deadline (" +
               std::to_string(o.renew_deadline.count()) + "ms)");
  return {};
}

std::string default_identity() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
    std::snprintf(host, sizeof host, "%s", "tidesync");
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%08x", static_cast<unsigned>(rd()));
  return std::string(host) + "_" + suffix;
}

// --- the Lease -------------------------------------------------------------------------

expected<observed_lease> parse_election_lease(const json::value& lease) {
  if (!lease.is_object()) return make_error(errc::parse_error, "Lease: not a JSON object");
  observed_lease out;
  if (const json::value* md = lease.at("metadata"); md && md->is_object())
    out.resource_version = std::string(md->get_string("resourceVersion"));
  const json::value* spec = lease.at("spec");
  if (spec == nullptr || spec->is_null()) return out;
  if (!spec->is_object()) return make_error(errc::parse_error, "Lease: spec is not an object");
  out.spec.holder_identity = std::string(spec->get_string("holderIdentity"));
  out.spec.lease_duration_seconds = spec->get_int("leaseDurationSeconds");
  out.spec.acquire_time = std::string(spec->get_string("acquireTime"));
  out.spec.renew_time = std::string(spec->get_string("renewTime"));
  out.spec.lease_transitions = spec->get_int("leaseTransitions");
  return out;
}

void apply_lease_spec(json::value& lease, const lease_spec& spec,
                      const std::string& resource_version) {
  if (!resource_version.empty()) lease["metadata"]["resourceVersion"] = resource_version;
  json::value& s = lease["spec"];
  if (!s.is_object()) s = json::object{};
  s["holderIdentity"] = spec.holder_identity;
  s["leaseDurationSeconds"] = spec.lease_duration_seconds;
  if (spec.acquire_time.empty())
    s.as_object().erase("acquireTime");
  else
    s["acquireTime"] = spec.acquire_time;
  if (spec.renew_time.empty())
    s.as_object().erase("renewTime");
  else
    s["renewTime"] = spec.renew_time;
  s["leaseTransitions"] = spec.lease_transitions;
}

json::value build_election_lease(std::string_view ns, std::string_view name,
                                 const lease_spec& spec) {
  json::value lease;
  lease["apiVersion"] = resources::leases().api_version();
  lease["kind"] = "Lease";
  lease["metadata"]["name"] = name;
  lease["metadata"]["namespace"] = ns;
  apply_lease_spec(lease, spec, "");
  return lease;
}

std::string format_micro_time(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto us = floor<microseconds>(t);
  const auto secs = floor<seconds>(us);
  std::string text = rfc3339::format(sys_seconds(secs));  // "...:SSZ"
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%06lld", static_cast<long long>((us - secs).count()));
  text.insert(text.size() - 1, frac);
  return text;
}

expected<std::chrono::system_clock::time_point> parse_micro_time(std::string_view text) {
  using namespace std::chrono;
  auto secs = rfc3339::parse(text);  // validates everything; drops the fraction
  if (!secs)
    return make_error(errc::parse_error, "not an RFC 3339 time: \"" + std::string(text) +
                                             "\" (want e.g. 2024-01-15T02:00:00.123456Z)");
  system_clock::time_point t = *secs;
  if (text.size() > 19 && text[19] == '.') {
    int64_t us = 0;
    int n = 0;
    for (size_t i = 20; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++n)
      if (n < 6) us = us * 10 + (text[i] - '0');
    for (; n < 6; ++n)
      us *= 10;
    t += microseconds(us);
  }
  return t;
}

// --- the decision ----------------------------------------------------------------------

std::string_view to_string(election_action a) {
  switch (a) {
    case election_action::create:
      return "create";
    case election_action::take_over:
      return "take_over";
    case election_action::renew:
      return "renew";
    case election_action::wait:
      return "wait";
    case election_action::lost:
      return "lost";
  }
  return "?";
}

void observe(election_state& s, const std::optional<lease_spec>& read, steady::time_point now) {
  if (s.record != read || s.observed_time == steady::time_point{}) {
    s.record = read;
    s.observed_time = now;
  }
}

void record_write(election_state& s, const lease_spec& written, steady::time_point sent,
                  steady::time_point now) {
  s.record = written;
  s.observed_time = now;
  s.leading = true;
  s.last_renew = sent;
}

steady::time_point lease_expiry(const election_state& s, const leader_election_options& o) {
  const int64_t secs = s.record && s.record->lease_duration_seconds > 0
                           ? s.record->lease_duration_seconds
                           : lease_seconds(o);
  return s.observed_time + std::chrono::seconds(secs);
}

bool renew_deadline_passed(const election_state& s, const leader_election_options& o,
                           steady::time_point now) {
  return s.leading && now - s.last_renew >= o.renew_deadline;
}

election_decision decide(const election_state& s, std::string_view identity,
                         const leader_election_options& o, steady::time_point now,
                         std::chrono::system_clock::time_point wall_now) {
  election_decision d;
  if (renew_deadline_passed(s, o, now)) {
    d.action = election_action::lost;
    d.reason = "no successful renewal for " + millis_text(now - s.last_renew) +
               " (renew deadline " + millis_text(o.renew_deadline) + ")";
    return d;
  }
  const std::string now_text = format_micro_time(wall_now);
  const int64_t duration = lease_seconds(o);
  auto ours = [&](int64_t transitions) {
    return lease_spec{std::string(identity), duration, now_text, now_text, transitions};
  };
  if (!s.record) {
    d.action = election_action::create;
    d.desired = ours(0);
    d.reason = "no Lease";
    return d;
  }
  const lease_spec& r = *s.record;
  if (r.holder_identity == identity) {
    d.action = election_action::renew;
    d.desired = r;
    d.desired.lease_duration_seconds = duration;
    d.desired.renew_time = now_text;
    if (d.desired.acquire_time.empty()) d.desired.acquire_time = now_text;
    d.reason = s.leading ? "renewing" : "the Lease still names us";
    return d;
  }
  if (s.leading) {
    // Someone else wrote the Lease: whatever they meant, we are no longer the holder and must
    // stop acting before anything else.
    d.action = election_action::lost;
    d.reason = r.holder_identity.empty() ? std::string("the Lease was released by someone else")
                                         : "the Lease is now held by " + r.holder_identity;
    return d;
  }
  if (r.holder_identity.empty()) {
    d.action = election_action::take_over;
    d.desired = ours(r.lease_transitions + 1);
    d.reason = "the Lease is free";
    return d;
  }
  const auto expiry = lease_expiry(s, o);
  if (now >= expiry) {
    d.action = election_action::take_over;
    d.desired = ours(r.lease_transitions + 1);
    d.reason = "the Lease of " + r.holder_identity + " expired (unchanged for " +
               millis_text(now - s.observed_time) + ")";
    return d;
  }
  d.action = election_action::wait;
  d.retry_in = std::min(o.retry_period, std::chrono::ceil<milliseconds>(expiry - now));
  d.reason = "held by " + r.holder_identity + ", expires in " + millis_text(expiry - now);
  return d;
}

lease_spec release_spec(const lease_spec& current, std::chrono::system_clock::time_point wall_now) {
  const std::string now_text = format_micro_time(wall_now);
  return lease_spec{"", 1, now_text, now_text, current.lease_transitions};
}

// --- the mechanism ---------------------------------------------------------------------

namespace {

// Signals a waiting stop() once: explicitly, or when the last reference goes away (the loop
// dropped the posted function or the request's callback without running it).
struct stop_latch {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  void signal() {
    std::lock_guard<std::mutex> guard(mu);
    done = true;
    cv.notify_all();
  }
  bool wait_for(milliseconds d) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, d, [&] { return done; });
  }
};

struct latch_ref {
  std::shared_ptr<stop_latch> latch;
  ~latch_ref() {
    if (latch) latch->signal();
  }
};

}  // namespace

struct leader_elector::core : std::enable_shared_from_this<core> {
  core(client& cl, http::loop& lp, leader_election_options opts, leader_callbacks callbacks)
      : c(cl),
        loop(lp),
        o(std::move(opts)),
        cb(std::move(callbacks)),
        id(o.identity.empty() ? default_identity() : o.identity),
        res(resources::leases()),
        log(log::get("leader")),
        rng(std::random_device{}()) {}

  client& c;
  http::loop& loop;
  const leader_election_options o;
  leader_callbacks cb;  // never cleared (the destructor may run inside one): see `destroyed`
  const std::string id;
  const resource res;
  std::shared_ptr<spdlog::logger> log;

  // Loop thread only.
  election_state st;
  json::value last_object;  // the Lease as last read or written (kept for labels etc.)
  bool have_object = false;
  bool running = false;
  uint64_t attempt_seq = 0;  // bumped to orphan the callback of a cancelled request
  bool in_flight = false;
  client::request_id in_flight_id = 0;
  steady::time_point attempt_started{};
  std::optional<http::timer_id> retry_timer, deadline_timer;
  std::string reported_leader;
  std::string last_error;  // to log a repeated failure once at warn level
  std::mt19937 rng;

  // Any thread.
  std::atomic<bool> leader{false};
  std::atomic<bool> destroyed{false};
  mutable std::mutex mu;
  std::string observed;  // guarded by mu

  void start_on_loop() {
    if (running || destroyed) return;
    running = true;
    log->info("leader election: {} campaigning for Lease {}/{}", id, o.lease_namespace,
              o.lease_name);
    schedule(0ms);
  }

  void schedule(milliseconds delay) {
    if (retry_timer) loop.cancel_timer(*retry_timer);
    retry_timer = loop.post_after(delay, [self = shared_from_this()] {
      self->retry_timer.reset();
      self->attempt();
    });
  }

  void arm_deadline() {
    if (deadline_timer) loop.cancel_timer(*deadline_timer);
    deadline_timer = loop.post_at(st.last_renew + o.renew_deadline, [self = shared_from_this()] {
      self->deadline_timer.reset();
      self->check_deadline();
    });
  }

  void cancel_in_flight() {
    ++attempt_seq;
    if (in_flight) {
      in_flight = false;
      c.cancel(in_flight_id);
    }
  }

  void attempt() {
    if (!running || in_flight) return;
    attempt_started = steady::now();
    const uint64_t seq = ++attempt_seq;
    in_flight = true;
    const auto rid = c.get(res, o.lease_namespace, o.lease_name,
                           [self = shared_from_this(), seq](expected<json::value> r) {
                             self->on_read(seq, std::move(r));
                           });
    if (in_flight && seq == attempt_seq) in_flight_id = rid;
  }

  void on_read(uint64_t seq, expected<json::value> r) {
    if (seq != attempt_seq || !running) return;
    in_flight = false;
    const auto now = steady::now();
    std::optional<lease_spec> read;
    if (r) {
      auto parsed = parse_election_lease(*r);
      if (!parsed) {
        failed("reading", parsed.error());
        return;
      }
      read = parsed->spec;
      last_object = std::move(*r);
      have_object = true;
    } else if (r.error().code != errc::not_found) {
      failed("reading", r.error());
      return;
    } else {
      have_object = false;
    }
    observe(st, read, now);
    report_leader();
    const auto d = decide(st, id, o, now, std::chrono::system_clock::now());
    switch (d.action) {
      case election_action::wait:
        log->debug("leader election: {}: {}", id, d.reason);
        schedule(jittered(d.retry_in));
        return;
      case election_action::lost:
        lose(d.reason);
        schedule(o.retry_period);
        return;
      case election_action::create:
      case election_action::take_over:
      case election_action::renew:
        write(d);
        return;
    }
  }

  void write(const election_decision& d) {
    const uint64_t seq = ++attempt_seq;
    in_flight = true;
    auto done = [self = shared_from_this(), seq, d](expected<json::value> r) {
      self->on_written(seq, d, std::move(r));
    };
    client::request_id rid;
    if (d.action == election_action::create) {
      rid = c.create(res, o.lease_namespace,
                     build_election_lease(o.lease_namespace, o.lease_name, d.desired),
                     std::move(done));
    } else {
      json::value obj = have_object
                            ? last_object
                            : build_election_lease(o.lease_namespace, o.lease_name, d.desired);
      const auto parsed = parse_election_lease(obj);
      apply_lease_spec(obj, d.desired, parsed ? parsed->resource_version : std::string());
      rid = c.update(res, o.lease_namespace, o.lease_name, obj, std::move(done));
    }
    if (in_flight && seq == attempt_seq) in_flight_id = rid;
  }

  void on_written(uint64_t seq, const election_decision& d, expected<json::value> r) {
    if (seq != attempt_seq || !running) return;
    in_flight = false;
    const auto now = steady::now();
    if (!r) {
      if (r.error().code == errc::conflict || r.error().code == errc::already_exists) {
        // Someone else wrote between our read and our write: read again at once.
        log->debug("leader election: {}: {} lost a race ({}); reading again", id,
                   to_string(d.action), r.error().message);
        if (!check_deadline()) schedule(0ms);
        return;
      }
      failed(d.action == election_action::create ? "creating" : "updating", r.error());
      return;
    }
    last_error.clear();
    last_object = std::move(*r);
    have_object = true;
    // What the server stored (it may have normalised it) is what others will observe.
    auto stored = parse_election_lease(last_object);
    record_write(st, stored ? stored->spec : d.desired, attempt_started, now);
    arm_deadline();
    if (!leader) {
      log->info("leader election: {} is now the leader ({}; leaseTransitions {})", id, d.reason,
                st.record->lease_transitions);
      leader = true;
      report_leader();
      if (cb.started_leading && !destroyed) cb.started_leading();
    } else {
      report_leader();
    }
    schedule(o.retry_period);
  }

  // A read or write failed for another reason than a race: try again later. While leading the
  // deadline timer decides when to give up.
  void failed(const char* what, const error& e) {
    const std::string text = e.to_string();
    if (text != last_error) {
      log->warn("leader election: {}: {} Lease {}/{} failed: {}", id, what, o.lease_namespace,
                o.lease_name, text);
      last_error = text;
    } else {
      log->debug("leader election: {}: {} Lease failed again: {}", id, what, text);
    }
    if (!check_deadline()) schedule(st.leading ? o.retry_period : jittered(o.retry_period));
  }

  // Gives up the lead when renew_deadline passed. True when it did (and rescheduled).
  bool check_deadline() {
    if (!running) return false;
    const auto now = steady::now();
    if (!renew_deadline_passed(st, o, now)) return false;
    cancel_in_flight();  // a renewal still hanging must not make us leader again silently
    lose("no successful renewal for " + millis_text(now - st.last_renew) + " (renew deadline " +
         millis_text(o.renew_deadline) + ")");
    schedule(o.retry_period);
    return true;
  }

  void lose(const std::string& reason, bool graceful = false) {
    const bool was = st.leading;
    st.leading = false;
    if (deadline_timer) {
      loop.cancel_timer(*deadline_timer);
      deadline_timer.reset();
    }
    if (!was) return;
    leader = false;
    if (graceful)
      log->info("leader election: {} stopped leading: {}", id, reason);
    else
      log->warn("leader election: {} stopped leading: {}", id, reason);
    if (cb.stopped_leading && !destroyed) cb.stopped_leading();
  }

  void report_leader() {
    const std::string holder = st.record ? st.record->holder_identity : std::string();
    if (holder == reported_leader) return;
    reported_leader = holder;
    {
      std::lock_guard<std::mutex> guard(mu);
      observed = holder;
    }
    if (!holder.empty()) {
      log->info("leader election: {} sees {} as the leader", id, holder);
      if (cb.new_leader && !destroyed) cb.new_leader(holder);
    }
  }

  milliseconds jittered(milliseconds d) {
    // Up to 20% later, so standbys started together do not poll in lockstep.
    std::uniform_int_distribution<int64_t> extra(0, d.count() / 5);
    return d + milliseconds(extra(rng));
  }

  void stop_on_loop(std::shared_ptr<latch_ref> done) {
    if (!running) return;
    running = false;
    cancel_in_flight();
    if (retry_timer) {
      loop.cancel_timer(*retry_timer);
      retry_timer.reset();
    }
    const bool was_leading = st.leading;
    lose("stopping", true);
    if (!was_leading || !o.release_on_cancel || !have_object) {
      log->info("leader election: {} stopped", id);
      return;
    }
    release(std::move(done), true);
  }

  // Clears holderIdentity so that a standby takes over at its next attempt instead of after
  // the lease expired. One retry after a conflict (a renewal we cancelled may have landed).
  void release(std::shared_ptr<latch_ref> done, bool retry) {
    const auto spec =
        release_spec(st.record ? *st.record : lease_spec{}, std::chrono::system_clock::now());
    json::value obj = last_object;
    const auto parsed = parse_election_lease(obj);
    apply_lease_spec(obj, spec, parsed ? parsed->resource_version : std::string());
    c.update(res, o.lease_namespace, o.lease_name, obj,
             [self = shared_from_this(), done, retry, spec](expected<json::value> r) {
               self->on_released(done, retry, spec, std::move(r));
             });
  }

  void on_released(std::shared_ptr<latch_ref> done, bool retry, const lease_spec& spec,
                   expected<json::value> r) {
    if (r) {
      last_object = std::move(*r);
      st.record = spec;
      st.observed_time = steady::now();
      report_leader();  // no holder now (new_leader is only called for a holder)
      log->info("leader election: {} released Lease {}/{}", id, o.lease_namespace, o.lease_name);
      done->latch->signal();
      return;
    }
    if (r.error().code == errc::conflict && retry) {
      c.get(res, o.lease_namespace, o.lease_name,
            [self = shared_from_this(), done](expected<json::value> g) {
              if (!g) {
                self->log->warn("leader election: {}: release: reading the Lease failed: {}",
                                self->id, g.error().to_string());
                done->latch->signal();
                return;
              }
              auto parsed = parse_election_lease(*g);
              if (!parsed || parsed->spec.holder_identity != self->id) {
                done->latch->signal();  // not ours any more: nothing to release
                return;
              }
              self->last_object = std::move(*g);
              self->st.record = parsed->spec;
              self->release(done, false);
            });
      return;
    }
    log->warn(
        "leader election: {}: releasing the Lease failed ({}); standbys take over when it "
        "expires",
        id, r.error().to_string());
    done->latch->signal();
  }
};

leader_elector::leader_elector(client& c, http::loop& loop, leader_election_options o,
                               leader_callbacks cb)
    : core_(std::make_shared<core>(c, loop, std::move(o), std::move(cb))) {}

leader_elector::~leader_elector() {
  stop();
  // Late callbacks of requests and timers still hold the core; they see this and stay silent.
  // (The callbacks themselves are not cleared: the destructor may run inside one of them.)
  core_->destroyed = true;
}

expected<void> leader_elector::validate() const {
  if (core_->id.empty())
    return make_error(errc::invalid_argument, "leader election: empty identity");
  return k8s::validate(core_->o);
}

void leader_elector::start() {
  core_->loop.post([self = core_] { self->start_on_loop(); });
}

void leader_elector::stop() {
  auto latch = std::make_shared<stop_latch>();
  auto ref = std::make_shared<latch_ref>();
  ref->latch = latch;
  if (core_->loop.on_loop_thread()) {
    core_->stop_on_loop(std::move(ref));  // the release, if any, completes in the background
    return;
  }
  // `ref` travels with the posted function and then with the release callbacks; the latch is
  // signalled when the last of them is gone, or at once when the loop drops the function.
  core_->loop.post(
      [self = core_, ref = std::move(ref)]() mutable { self->stop_on_loop(std::move(ref)); });
  if (!latch->wait_for(5000ms))
    core_->log->warn("leader election: {}: stop() gave up waiting for the release after 5 s",
                     core_->id);
}

bool leader_elector::is_leader() const {
  return core_->leader;
}

std::string leader_elector::identity() const {
  return core_->id;
}

std::string leader_elector::observed_leader() const {
  std::lock_guard<std::mutex> guard(core_->mu);
  return core_->observed;
}

}  // namespace tidesync::k8s
