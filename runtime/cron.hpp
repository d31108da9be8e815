// Cron schedules for BucketSyncPolicy (and later PodFilesystemSync): parsing, next fire time in
// a time zone, and the missed-run decision of a controller that was down.
//
// Pure functions over immutable values: no threads, no clocks read, no global state. The
// grammar, the daylight-saving rule and the missed-run rule are described in docs/cron.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/error.hpp"
#include "runtime/tz.hpp"

namespace tidesync::cron {

using time_point = std::chrono::system_clock::time_point;

struct parse_options {
  // Also accept six fields, "second minute hour day-of-month month day-of-week", as robfig/cron's
  // WithSeconds() parser does (`tidesync sync --schedule`). Off for Kubernetes-facing schedules
  // (BucketSyncPolicy, CronJob semantics), which have exactly five fields.
  bool allow_seconds = false;
};

class schedule {
 public:
  // Parses "minute hour day-of-month month day-of-week" (or, with allow_seconds, optionally a
  // leading second field), a macro (@daily, ...), or "@every <Go duration>", optionally prefixed
  // by "CRON_TZ=<zone> " or "TZ=<zone> ". Five fields and macros fire at second 0.
  // Errors (errc::invalid_argument) name the field, the allowed range and what to write.
  static expected<schedule> parse(std::string_view spec, parse_options opts = {});

  // The text as given, without surrounding blanks.
  [[nodiscard]] const std::string& spec() const { return spec_; }
  // The zone named by a CRON_TZ=/TZ= prefix; empty when there is none.
  [[nodiscard]] const std::string& time_zone() const { return time_zone_; }

  // "@every": fires at anchor() + k * every() for every integer k, independent of time zones.
  [[nodiscard]] bool is_every() const { return every_.count() > 0; }
  [[nodiscard]] std::chrono::seconds every() const { return every_; }
  // The origin of an @every schedule's grid; the Unix epoch unless set (e.g. to the policy's
  // creation time). Whole seconds.
  [[nodiscard]] time_point anchor() const { return anchor_; }
  [[nodiscard]] schedule with_anchor(time_point anchor) const;

  // True when the fields match this local wall-clock second (false for @every). Without a
  // seconds field only second 0 of a matching minute matches.
  [[nodiscard]] bool matches(tz::local_seconds wall) const;
  // True when the spec had a seconds field (six fields).
  [[nodiscard]] bool has_seconds_field() const { return seconds_field_; }
  // True when the hour field allows every hour; such schedules keep firing through a repeated
  // (fall-back) hour, others fire once (see docs/cron.md).
  [[nodiscard]] bool every_hour() const { return hours_ == k_all_hours; }

 private:
  friend class parser;
  friend struct search;
  static constexpr uint32_t k_all_hours = (1u << 24) - 1;

  std::string spec_;
  std::string time_zone_;
  std::chrono::seconds every_{0};
  time_point anchor_{};
  uint64_t seconds_ = 1;  // bit s: second s (0-59); second 0 only without a seconds field
  uint64_t minutes_ = 0;  // bit m: minute m (0-59)
  uint32_t hours_ = 0;    // bit h: hour h (0-23)
  uint32_t days_ = 0;     // bit d: day of month d (1-31)
  uint16_t months_ = 0;   // bit m: month m (1-12)
  uint8_t weekdays_ = 0;  // bit d: weekday d (0 = Sunday - 6)
  // Whether the day-of-month / day-of-week field starts with '*' (or is '?'): if either does,
  // a day must match both fields; if both are restricted, either may match (Vixie cron).
  bool days_star_ = true;
  bool weekdays_star_ = true;
  bool seconds_field_ = false;
};

// The first fire time strictly after `t`, in `zone`'s wall clock (ignored for @every).
// Wall times skipped by a spring-forward jump do not fire; a repeated wall time fires once
// (at its first occurrence) unless the hour field is '*'. nullopt when nothing fires within
// 9 years (an impossible date such as 30 February; 9 years cover the 8-year leap-day gap
// around 2100).
std::optional<time_point> next_after(const schedule& s, time_point t, const tz::zone& zone);

// The last fire time at or before `t` (same rules; nullopt when none within 9 years back).
std::optional<time_point> last_at_or_before(const schedule& s, time_point t, const tz::zone& zone);

// What a controller should do for one policy now, like the Kubernetes CronJob controller.
struct decision {
  bool run_now = false;            // start one run, for `scheduled_time`
  time_point scheduled_time{};     // latest missed fire in (last, now]; epoch when none
  std::optional<time_point> next;  // first fire strictly after `now`: when to look again
  int missed = 0;                  // fires in (last, now], counted up to k_max_missed_counted
  bool too_late = false;           // fires were missed but the latest is past the deadline
};

inline constexpr int k_max_missed_counted = 1000;

// `last_scheduled_time` is the fire time of the previous run, or the policy's creation time if
// it never ran. Any number of missed fires yields at most one run, for the latest of them; that
// run is skipped (too_late) when it is more than `starting_deadline` old. No deadline: the
// latest missed fire always runs.
decision decide(const schedule& s, const tz::zone& zone, time_point last_scheduled_time,
                time_point now, std::optional<std::chrono::seconds> starting_deadline);

// The zone a schedule runs in: `time_zone_field` (BucketSyncPolicy spec.timeZone) if set, else
// the schedule's CRON_TZ=/TZ= prefix, else UTC. Both set and different is an error.
expected<tz::zone> zone_for(
    const schedule& s, std::string_view time_zone_field,
    const std::filesystem::path& root = std::filesystem::path(tz::default_root));

}  // namespace tidesync::cron
