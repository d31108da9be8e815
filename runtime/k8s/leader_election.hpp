// Leader election with a coordination.k8s.io/v1 Lease, after client-go's leaderelection.
//
// Two halves:
// - The decision (pure, unit-tested): given the Lease as last read, what this candidate
//   remembers, its identity, the options and the time → create / take over / renew / wait /
//   lost. Expiry is measured on the *local* steady clock from the moment this candidate saw the
//   Lease change (not from the renewTime written in it), so clock skew between machines does
//   not matter, only clock rates.
// - The mechanism (`leader_elector`): runs the decision on the http::loop thread of a
//   k8s::client, reading the Lease and writing it with resourceVersion preconditions (a 409
//   means someone else wrote: read again).
//
// Safety: a leader writes renewals every retry_period; when none has succeeded for
// renew_deadline (measured from when the last successful write was *sent*) it calls
// stopped_leading. Others take over only lease_duration after they last saw the Lease change,
// which is after that write was sent; renew_deadline < lease_duration leaves the margin.
// Rules and flags for people: docs/leader-election.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::http {
class loop;
}

namespace tidesync::k8s {

class client;

struct leader_election_options {
  std::string lease_namespace = "tidesync-system";
  std::string lease_name = "tidesync-controller";
  std::string identity;  // empty: hostname + "_" + random suffix
  // How long a Lease stays valid after its holder was last seen renewing it. Written into the
  // Lease as leaseDurationSeconds, rounded up to whole seconds.
  std::chrono::milliseconds lease_duration{15000};
  // A leader that has not renewed for this long stops leading.
  std::chrono::milliseconds renew_deadline{10000};
  // Time between attempts (renewals by the leader, reads by standbys).
  std::chrono::milliseconds retry_period{2000};
  bool release_on_cancel = true;  // on stop(): clear holderIdentity so a standby takes over at once
};

// Rules: every duration positive, retry_period * 1.2 < renew_deadline < lease_duration,
// lease_duration of at least one second, namespace and name set. Messages name the flags.
expected<void> validate(const leader_election_options& o);

// hostname + "_" + 8 random hex digits.
std::string default_identity();

// --- the Lease -------------------------------------------------------------------------

// The spec of a Lease as leader election uses it. Times are kept as the MicroTime text that was
// read or written: decisions never parse them (see the header comment), and equality of the
// text is what "the Lease changed" means.
struct lease_spec {
  std::string holder_identity;  // "" : free (released)
  int64_t lease_duration_seconds = 0;
  std::string acquire_time;  // MicroTime, "2024-01-15T02:00:00.123456Z"
  std::string renew_time;
  int64_t lease_transitions = 0;

  friend bool operator==(const lease_spec&, const lease_spec&) = default;
};

// A Lease as read from the server.
struct observed_lease {
  lease_spec spec;
  std::string resource_version;
};

// Reads spec and metadata.resourceVersion. Missing spec fields read as empty / 0 (a Lease made
// by hand may have no spec at all); only a non-object is an error (parse_error).
expected<observed_lease> parse_election_lease(const json::value& lease);
// Sets the spec fields of `lease` (keeping its other fields, e.g. labels) and, when not empty,
// metadata.resourceVersion. Empty times are left out; holderIdentity is always written.
void apply_lease_spec(json::value& lease, const lease_spec& spec,
                      const std::string& resource_version);
// A new Lease document: apiVersion, kind, metadata.name/namespace and the spec.
json::value build_election_lease(std::string_view ns, std::string_view name,
                                 const lease_spec& spec);

// Kubernetes MicroTime: UTC, exactly six fractional digits. Sub-microsecond parts truncated.
std::string format_micro_time(std::chrono::system_clock::time_point t);
// RFC 3339 with or without a fraction (any number of digits, truncated to microseconds), `Z`
// or an offset.
expected<std::chrono::system_clock::time_point> parse_micro_time(std::string_view text);

// --- the decision ----------------------------------------------------------------------

enum class election_action {
  create,     // no Lease: create it, holding it
  take_over,  // free or expired: write us as holder, leaseTransitions + 1, acquireTime now
  renew,      // it names us: write renewTime now (also re-acquires a Lease that still names us
              // after a restart with a fixed identity, without a new transition)
  wait,       // someone else holds it and it has not expired
  lost,       // we were leading and must stop now (another holder, or renew_deadline passed)
};
std::string_view to_string(election_action a);

// What a candidate remembers between attempts. Times on the local steady clock.
struct election_state {
  using clock = std::chrono::steady_clock;
  std::optional<lease_spec> record;   // last spec read or written; nullopt: no Lease seen
  clock::time_point observed_time{};  // when `record` last changed, as seen here
  bool leading = false;
  clock::time_point last_renew{};  // when the last successful write was sent
};

// Records a read (nullopt: 404). observed_time moves only when the spec differs from the
// remembered one: an unchanged Lease keeps aging.
void observe(election_state& s, const std::optional<lease_spec>& read,
             election_state::clock::time_point now);
// Records a successful create/take_over/renew of `written`, which was sent at `sent`.
void record_write(election_state& s, const lease_spec& written,
                  election_state::clock::time_point sent, election_state::clock::time_point now);

// When another holder's Lease expires here: observed_time + its leaseDurationSeconds (our own
// lease_duration when the Lease has none). Meaningless without a record.
election_state::clock::time_point lease_expiry(const election_state& s,
                                               const leader_election_options& o);
// True when leading and no write has succeeded for renew_deadline.
bool renew_deadline_passed(const election_state& s, const leader_election_options& o,
                           election_state::clock::time_point now);

struct election_decision {
  election_action action = election_action::wait;
  lease_spec desired;  // what to write for create / take_over / renew
  // wait: when to look again (retry_period, or sooner when the Lease expires sooner).
  std::chrono::milliseconds retry_in{0};
  std::string reason;  // for logs: "held by b, expires in 1.2 s"
};

// The decision after observe(). `wall_now` only feeds the times written into the Lease.
election_decision decide(const election_state& s, std::string_view identity,
                         const leader_election_options& o, election_state::clock::time_point now,
                         std::chrono::system_clock::time_point wall_now);

// The spec a leader writes when it steps down: no holder, leaseDurationSeconds 1, both times
// now, transitions kept (client-go's release). The next holder counts the transition.
lease_spec release_spec(const lease_spec& current, std::chrono::system_clock::time_point wall_now);

// --- the mechanism ---------------------------------------------------------------------

struct leader_callbacks {
  std::function<void()> started_leading;  // on the loop thread
  std::function<void()> stopped_leading;  // on the loop thread; after this we must stop acting
  // On the loop thread, whenever the observed holder changes to a non-empty identity (ours
  // included).
  std::function<void(const std::string& identity)> new_leader;
};

// Runs the election on the client's loop thread. After losing the lead (stopped_leading) the
// elector carries on as a candidate and may lead again later; a process that prefers to exit
// does so from stopped_leading.
//
// Lifetime: the client and loop must outlive the elector; stop the elector before stopping the
// loop, else the release cannot be written (stop() then returns at once without it).
class leader_elector {
 public:
  leader_elector(client& c, http::loop& loop, leader_election_options o, leader_callbacks cb);
  // Stops (releasing as stop() does); no callback runs after the destructor returned.
  ~leader_elector();
  leader_elector(const leader_elector&) = delete;
  leader_elector& operator=(const leader_elector&) = delete;

  // validate(options) plus a non-empty identity.
  [[nodiscard]] expected<void> validate() const;
  // Begins campaigning. Any thread; a second call does nothing.
  void start();
  // Stops campaigning: cancels what is in flight; when leading, calls stopped_leading and, with
  // release_on_cancel, writes the release. From another thread it blocks until the release
  // write finished (or failed) or 5 s passed. On the loop thread it cannot block: it does the
  // same, with stopped_leading called before it returns, and the release write finishes later
  // in the background. Idempotent; start() may be called again afterwards.
  void stop();
  [[nodiscard]] bool is_leader() const;  // any thread
  [[nodiscard]] std::string identity() const;
  // The holder last seen in the Lease ("" when none or released). Any thread.
  [[nodiscard]] std::string observed_leader() const;

 private:
  struct core;
  std::shared_ptr<core> core_;
};

}  // namespace tidesync::k8s
