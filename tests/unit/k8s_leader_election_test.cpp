// The pure half of leader election: options, the Lease codec, MicroTime, and the decision.
// The mechanism against a real API server is in tests/integration/leader_election_test.cpp.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "runtime/json/value.hpp"
#include "runtime/k8s/leader_election.hpp"

namespace tidesync::k8s {
namespace {

using namespace std::chrono_literals;
using steady = election_state::clock;
using wall = std::chrono::system_clock;

leader_election_options fast() {
  leader_election_options o;
  o.lease_duration = 1500ms;  // written as 2 s
  o.renew_deadline = 1000ms;
  o.retry_period = 200ms;
  return o;
}

const steady::time_point t0 = steady::time_point{} + 1h;
const wall::time_point w0 = wall::time_point{} + std::chrono::seconds(1705284000);  // 2024-01-15

lease_spec held_by(const std::string& who, int64_t transitions = 3) {
  return lease_spec{who, 2, "2024-01-15T01:00:00.000000Z", "2024-01-15T01:59:59.500000Z",
                    transitions};
}

// --- options ---------------------------------------------------------------------------

TEST(LeaderElectionOptions, DefaultsAndFastSettingsAreValid) {
  EXPECT_TRUE(validate(leader_election_options{}).has_value());
  EXPECT_TRUE(validate(fast()).has_value());
}

TEST(LeaderElectionOptions, RenewDeadlineMustBeBelowLeaseDuration) {
  auto o = fast();
  o.renew_deadline = o.lease_duration;
  auto r = validate(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_NE(r.error().message.find("--leader-elect-renew-deadline"), std::string::npos);
  EXPECT_NE(r.error().message.find("--leader-elect-lease-duration"), std::string::npos);
}

TEST(LeaderElectionOptions, RetryPeriodWithJitterMustFitInRenewDeadline) {
  auto o = fast();
  o.retry_period = 900ms;  // 1.2 × 900 ms > 1 s
  auto r = validate(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("--leader-elect-retry-period"), std::string::npos);
  o.retry_period = 800ms;  // 960 ms < 1 s
  EXPECT_TRUE(validate(o).has_value());
}

TEST(LeaderElectionOptions, RejectsSubSecondLeasesEmptyNamesAndNonPositiveDurations) {
  auto o = fast();
  o.lease_duration = 900ms;
  o.renew_deadline = 500ms;
  o.retry_period = 100ms;
  EXPECT_FALSE(validate(o).has_value());
  o = fast();
  o.lease_namespace.clear();
  EXPECT_FALSE(validate(o).has_value());
  o = fast();
  o.lease_name.clear();
  EXPECT_FALSE(validate(o).has_value());
  o = fast();
  o.retry_period = 0ms;
  EXPECT_FALSE(validate(o).has_value());
  o = fast();
  o.renew_deadline = -1ms;
  EXPECT_FALSE(validate(o).has_value());
}

TEST(LeaderElectionOptions, DefaultIdentityIsHostnameAndRandomSuffix) {
  const std::string a = default_identity(), b = default_identity();
  ASSERT_GT(a.size(), 9u);
  EXPECT_EQ(a[a.size() - 9], '_');
  EXPECT_EQ(a.substr(0, a.size() - 8), b.substr(0, b.size() - 8));  // same host part
  EXPECT_NE(a, b);
}

// --- MicroTime and the Lease codec ------------------------------------------------------

TEST(MicroTime, FormatsSixDigitsInUtc) {
  EXPECT_EQ(format_micro_time(w0 + 123456us), "2024-01-15T02:00:00.123456Z");
  EXPECT_EQ(format_micro_time(w0), "2024-01-15T02:00:00.000000Z");
  // Sub-microsecond parts are truncated, not rounded.
  EXPECT_EQ(format_micro_time(w0 + std::chrono::nanoseconds(999)), "2024-01-15T02:00:00.000000Z");
}

TEST(MicroTime, ParsesFractionsOffsetsAndRejectsGarbage) {
  auto a = parse_micro_time("2024-01-15T02:00:00.123456Z");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a, w0 + 123456us);
  auto b = parse_micro_time("2024-01-15T02:00:00Z");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(*b, w0);
  auto c = parse_micro_time("2024-01-15T02:00:00.5Z");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(*c, w0 + 500ms);
  auto d = parse_micro_time("2024-01-15T03:00:00.123456789+01:00");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, w0 + 123456us);
  EXPECT_FALSE(parse_micro_time("2024-01-15 02:00").has_value());
  EXPECT_FALSE(parse_micro_time("").has_value());
  EXPECT_EQ(parse_micro_time("yesterday").error().code, errc::parse_error);
  const auto now = std::chrono::floor<std::chrono::microseconds>(wall::now());
  EXPECT_EQ(*parse_micro_time(format_micro_time(now)), now);
}

TEST(LeaseCodec, BuildsAndParsesTheSpec) {
  const lease_spec spec = held_by("ctrl-a_1234", 7);
  json::value lease = build_election_lease("tidesync-system", "tidesync-controller", spec);
  EXPECT_EQ(lease.get_string("apiVersion"), "coordination.k8s.io/v1");
  EXPECT_EQ(lease.get_string("kind"), "Lease");
  EXPECT_EQ(lease.at("metadata")->get_string("namespace"), "tidesync-system");
  EXPECT_EQ(lease.at("metadata")->get_string("name"), "tidesync-controller");
  EXPECT_EQ(lease.at("spec")->get_string("renewTime"), "2024-01-15T01:59:59.500000Z");
  EXPECT_EQ(lease.at("spec")->get_int("leaseTransitions"), 7);
  EXPECT_EQ(lease.at("metadata")->at("resourceVersion"), nullptr);  // create: none
  // Round trip through the wire text.
  auto reparsed = json::parse(json::dump(lease));
  ASSERT_TRUE(reparsed.has_value());
  auto parsed = parse_election_lease(*reparsed);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->spec, spec);
  EXPECT_EQ(parsed->resource_version, "");
}

TEST(LeaseCodec, ApplyKeepsOtherFieldsAndSetsResourceVersion) {
  json::value lease = build_election_lease("ns", "l", held_by("a"));
  lease["metadata"]["labels"]["team"] = "data";
  lease["metadata"]["resourceVersion"] = "41";
  lease_spec released{"", 1, "2024-01-15T02:00:00.000000Z", "", 3};
  apply_lease_spec(lease, released, "42");
  EXPECT_EQ(lease.at_path({"metadata", "labels"})->get_string("team"), "data");
  EXPECT_EQ(lease.at("metadata")->get_string("resourceVersion"), "42");
  const json::value* spec = lease.at("spec");
  ASSERT_NE(spec->at("holderIdentity"), nullptr);  // written even when empty
  EXPECT_EQ(spec->get_string("holderIdentity", "unset"), "");
  EXPECT_EQ(spec->at("renewTime"), nullptr);  // empty times are left out
  auto parsed = parse_election_lease(lease);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->spec, released);
  EXPECT_EQ(parsed->resource_version, "42");
}

TEST(LeaseCodec, LeaseWithoutSpecReadsAsFreeAndNonObjectsAreErrors) {
  json::value bare;
  bare["metadata"]["name"] = "l";
  bare["metadata"]["resourceVersion"] = "5";
  auto parsed = parse_election_lease(bare);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->spec, lease_spec{});
  EXPECT_EQ(parsed->resource_version, "5");
  EXPECT_EQ(parse_election_lease(json::value("x")).error().code, errc::parse_error);
  json::value bad_spec;
  bad_spec["spec"] = 3;
  EXPECT_FALSE(parse_election_lease(bad_spec).has_value());
}

// --- the decision ----------------------------------------------------------------------

TEST(LeaderDecision, NoLeaseMeansCreateWithUsAsHolder) {
  election_state s;
  observe(s, std::nullopt, t0);
  auto d = decide(s, "me", fast(), t0, w0 + 5us);
  EXPECT_EQ(d.action, election_action::create);
  EXPECT_EQ(d.desired.holder_identity, "me");
  EXPECT_EQ(d.desired.lease_duration_seconds, 2);  // 1.5 s rounded up
  EXPECT_EQ(d.desired.acquire_time, "2024-01-15T02:00:00.000005Z");
  EXPECT_EQ(d.desired.renew_time, d.desired.acquire_time);
  EXPECT_EQ(d.desired.lease_transitions, 0);
}

TEST(LeaderDecision, FreshLeaseOfAnotherHolderMeansWait) {
  election_state s;
  observe(s, held_by("other"), t0);
  auto d = decide(s, "me", fast(), t0 + 100ms, w0);
  EXPECT_EQ(d.action, election_action::wait);
  EXPECT_EQ(d.retry_in, 200ms);
  EXPECT_NE(d.reason.find("held by other"), std::string::npos);
  // Close to expiry, look again right when it expires rather than a whole retry period later.
  d = decide(s, "me", fast(), t0 + 1950ms, w0);
  EXPECT_EQ(d.action, election_action::wait);
  EXPECT_EQ(d.retry_in, 50ms);
}

TEST(LeaderDecision, ExpiryCountsFromWhenWeSawTheLastChangeNotFromRenewTime) {
  // The holder's clock is far behind ours (renewTime an hour old by our wall clock), but we
  // only just saw it change: not expired.
  election_state s;
  observe(s, held_by("other"), t0);
  EXPECT_EQ(decide(s, "me", fast(), t0 + 1999ms, w0 + 1h).action, election_action::wait);
  // Seen again unchanged: it keeps aging from the first sighting.
  observe(s, held_by("other"), t0 + 1500ms);
  EXPECT_EQ(s.observed_time, t0);
  auto d = decide(s, "me", fast(), t0 + 2000ms, w0);
  EXPECT_EQ(d.action, election_action::take_over);
  EXPECT_EQ(d.desired.holder_identity, "me");
  EXPECT_EQ(d.desired.lease_transitions, 4);
  EXPECT_EQ(d.desired.acquire_time, format_micro_time(w0));
  EXPECT_EQ(d.desired.renew_time, format_micro_time(w0));
}

TEST(LeaderDecision, ARenewalSeenRestartsTheClock) {
  election_state s;
  observe(s, held_by("other"), t0);
  auto renewed = held_by("other");
  renewed.renew_time = "2024-01-15T02:00:01.000000Z";
  observe(s, renewed, t0 + 1900ms);
  EXPECT_EQ(s.observed_time, t0 + 1900ms);
  EXPECT_EQ(decide(s, "me", fast(), t0 + 2500ms, w0).action, election_action::wait);
  EXPECT_EQ(decide(s, "me", fast(), t0 + 3900ms, w0).action, election_action::take_over);
}

TEST(LeaderDecision, TheHoldersDurationCountsNotOurs) {
  election_state s;
  auto long_lease = held_by("other");
  long_lease.lease_duration_seconds = 30;
  observe(s, long_lease, t0);
  EXPECT_EQ(decide(s, "me", fast(), t0 + 10s, w0).action, election_action::wait);
  EXPECT_EQ(decide(s, "me", fast(), t0 + 30s, w0).action, election_action::take_over);
  // No duration in the Lease: ours (2 s).
  auto no_duration = held_by("other");
  no_duration.lease_duration_seconds = 0;
  election_state s2;
  observe(s2, no_duration, t0);
  EXPECT_EQ(decide(s2, "me", fast(), t0 + 1900ms, w0).action, election_action::wait);
  EXPECT_EQ(decide(s2, "me", fast(), t0 + 2s, w0).action, election_action::take_over);
}

TEST(LeaderDecision, ReleasedLeaseIsTakenAtOnceCountingATransition) {
  election_state s;
  observe(s, release_spec(held_by("other", 5), w0), t0);
  auto d = decide(s, "me", fast(), t0, w0 + 1s);
  EXPECT_EQ(d.action, election_action::take_over);
  EXPECT_EQ(d.desired.lease_transitions, 6);
  EXPECT_EQ(d.desired.holder_identity, "me");
}

TEST(LeaderDecision, LeaderRenewsKeepingAcquireTimeAndTransitions) {
  election_state s;
  record_write(s, held_by("me", 4), t0, t0 + 10ms);
  EXPECT_TRUE(s.leading);
  auto d = decide(s, "me", fast(), t0 + 200ms, w0 + 200ms);
  EXPECT_EQ(d.action, election_action::renew);
  EXPECT_EQ(d.desired.acquire_time, "2024-01-15T01:00:00.000000Z");
  EXPECT_EQ(d.desired.renew_time, "2024-01-15T02:00:00.200000Z");
  EXPECT_EQ(d.desired.lease_transitions, 4);
  EXPECT_EQ(d.desired.lease_duration_seconds, 2);
}

TEST(LeaderDecision, LeaseStillNamingUsAfterARestartIsRenewedWithoutATransition) {
  election_state s;  // a fresh process with the same --leader-elect-id
  observe(s, held_by("me", 4), t0);
  auto d = decide(s, "me", fast(), t0, w0);
  EXPECT_EQ(d.action, election_action::renew);
  EXPECT_EQ(d.desired.lease_transitions, 4);
}

TEST(LeaderDecision, LeaderSeeingAnotherHolderHasLost) {
  election_state s;
  record_write(s, held_by("me"), t0, t0);
  observe(s, held_by("other", 4), t0 + 200ms);
  auto d = decide(s, "me", fast(), t0 + 200ms, w0);
  EXPECT_EQ(d.action, election_action::lost);
  EXPECT_NE(d.reason.find("other"), std::string::npos);
  // Someone cleared the holder by hand: also lost (stop first, campaign again afterwards).
  election_state s2;
  record_write(s2, held_by("me"), t0, t0);
  observe(s2, release_spec(held_by("me"), w0), t0 + 200ms);
  EXPECT_EQ(decide(s2, "me", fast(), t0 + 200ms, w0).action, election_action::lost);
}

TEST(LeaderDecision, LeaderThatCouldNotRenewWithinTheDeadlineHasLost) {
  election_state s;
  record_write(s, held_by("me"), t0, t0 + 50ms);  // sent at t0, answered 50 ms later
  EXPECT_FALSE(renew_deadline_passed(s, fast(), t0 + 999ms));
  EXPECT_EQ(decide(s, "me", fast(), t0 + 999ms, w0).action, election_action::renew);
  // The deadline counts from when the write was sent, not answered.
  EXPECT_TRUE(renew_deadline_passed(s, fast(), t0 + 1000ms));
  auto d = decide(s, "me", fast(), t0 + 1000ms, w0);
  EXPECT_EQ(d.action, election_action::lost);
  EXPECT_NE(d.reason.find("renew deadline"), std::string::npos);
  s.leading = false;  // what the elector does on lost
  EXPECT_FALSE(renew_deadline_passed(s, fast(), t0 + 1h));
}

TEST(LeaderDecision, DeletedLeaseIsCreatedAgain) {
  election_state s;
  record_write(s, held_by("me"), t0, t0);
  observe(s, std::nullopt, t0 + 200ms);
  EXPECT_EQ(s.observed_time, t0 + 200ms);
  EXPECT_EQ(decide(s, "me", fast(), t0 + 200ms, w0).action, election_action::create);
}

TEST(LeaderDecision, ReleaseClearsHolderAndKeepsTransitions) {
  auto r = release_spec(held_by("me", 9), w0);
  EXPECT_EQ(r.holder_identity, "");
  EXPECT_EQ(r.lease_duration_seconds, 1);
  EXPECT_EQ(r.lease_transitions, 9);
  EXPECT_EQ(r.acquire_time, "2024-01-15T02:00:00.000000Z");
  EXPECT_EQ(r.renew_time, r.acquire_time);
}

TEST(LeaderDecision, ActionNames) {
  EXPECT_EQ(to_string(election_action::create), "create");
  EXPECT_EQ(to_string(election_action::take_over), "take_over");
  EXPECT_EQ(to_string(election_action::renew), "renew");
  EXPECT_EQ(to_string(election_action::wait), "wait");
  EXPECT_EQ(to_string(election_action::lost), "lost");
}

// Two candidates against one simulated Lease on virtual time (10 ms steps), each attempting
// every retry period. From 3 s on the leader's requests all fail (a partition). Whatever the
// phase of the standby's attempts, there must never be two leaders, the leader must give up
// at the renew deadline, and the standby must take over once the lease expired.
TEST(LeaderDecision, SimulatedPartitionNeverHasTwoLeaders) {
  const auto o = fast();
  for (int phase_ms = 0; phase_ms < 200; phase_ms += 30) {
    SCOPED_TRACE("standby phase " + std::to_string(phase_ms) + " ms");
    std::optional<lease_spec> server;
    struct candidate {
      std::string id;
      election_state s;
      steady::time_point next;
    };
    candidate cands[2] = {{"a", {}, t0}, {"b", {}, t0 + std::chrono::milliseconds(phase_ms)}};
    const auto partition = t0 + 3s;
    std::optional<steady::time_point> a_lost, b_led;
    for (auto now = t0; now < t0 + 8s; now += 10ms) {
      const auto wnow = w0 + (now - t0);
      for (int i = 0; i < 2; ++i) {
        candidate& c = cands[i];
        if (now < c.next) continue;
        c.next = now + o.retry_period;
        const bool cut_off = i == 0 && now >= partition;
        if (cut_off) {
          // The read fails: only the deadline can change anything.
          if (renew_deadline_passed(c.s, o, now)) {
            c.s.leading = false;
            if (!a_lost) a_lost = now;
          }
          continue;
        }
        observe(c.s, server, now);
        auto d = decide(c.s, c.id, o, now, wnow);
        if (d.action == election_action::lost) {
          c.s.leading = false;
        } else if (d.action != election_action::wait) {
          server = d.desired;  // the write succeeds (no concurrent writer in the same step)
          record_write(c.s, d.desired, now, now);
          if (i == 1 && !b_led) b_led = now;
        }
      }
      ASSERT_FALSE(cands[0].s.leading && cands[1].s.leading)
          << "two leaders at +" << (now - t0) / 1ms << " ms";
    }
    ASSERT_TRUE(a_lost.has_value());
    ASSERT_TRUE(b_led.has_value());
    EXPECT_LE(*a_lost - partition, o.renew_deadline + o.retry_period);
    EXPECT_LT(*a_lost, *b_led);
    EXPECT_LE(*b_led - partition, 2s + o.retry_period + 10ms);  // leaseDurationSeconds = 2
    EXPECT_EQ(server->holder_identity, "b");
    EXPECT_EQ(server->lease_transitions, 1);
  }
}

}  // namespace
}  // namespace tidesync::k8s
