#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "runtime/cron.hpp"
#include "runtime/tz.hpp"

using namespace std::chrono;
using tidesync::errc;
using tidesync::cron::decide;
using tidesync::cron::last_at_or_before;
using tidesync::cron::next_after;
using tidesync::cron::schedule;
using tp = tidesync::cron::time_point;
using tidesync::tz::zone;

namespace {

tp utc(int y, unsigned m, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return tp(sys_days(year(y) / month(m) / day(d)) + hours(h) + minutes(mi) + seconds(s));
}

tidesync::tz::local_seconds wall(int y, unsigned m, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return local_days(year(y) / month(m) / day(d)) + hours(h) + minutes(mi) + seconds(s);
}

constexpr tidesync::cron::parse_options k_seconds{.allow_seconds = true};

schedule must(const std::string& spec) {
  auto s = schedule::parse(spec);
  EXPECT_TRUE(s.has_value()) << spec << ": " << (s ? "" : s.error().message);
  return s ? *s : *schedule::parse("* * * * *");
}

// Parsed with the optional seconds field allowed (robfig/cron's WithSeconds()).
schedule must_s(const std::string& spec) {
  auto s = schedule::parse(spec, k_seconds);
  EXPECT_TRUE(s.has_value()) << spec << ": " << (s ? "" : s.error().message);
  return s ? *s : *schedule::parse("* * * * *");
}

zone load(const std::string& name) {
  auto z = zone::load(name);
  EXPECT_TRUE(z.has_value()) << name;
  return z ? *z : zone::utc();
}

// The fires of `s` strictly after `from`, `n` of them.
std::vector<tp> fires(const schedule& s, tp from, int n, const zone& z = zone::utc()) {
  std::vector<tp> out;
  for (int i = 0; i < n; ++i) {
    auto f = next_after(s, from, z);
    if (!f) break;
    out.push_back(*f);
    from = *f;
  }
  return out;
}

std::vector<tp> fires(const std::string& spec, tp from, int n, const zone& z = zone::utc()) {
  return fires(must(spec), from, n, z);
}

// The same, for a spec parsed with a seconds field allowed.
std::vector<tp> fires_s(const std::string& spec, tp from, int n, const zone& z = zone::utc()) {
  return fires(must_s(spec), from, n, z);
}

std::string parse_error(const std::string& spec, tidesync::cron::parse_options opts = {}) {
  auto s = schedule::parse(spec, opts);
  if (s) return "(accepted)";
  EXPECT_EQ(s.error().code, errc::invalid_argument);
  return s.error().message;
}

}  // namespace

TEST(Cron, NextIsStrictlyAfter) {
  auto s = must("*/15 * * * *");
  EXPECT_EQ(next_after(s, utc(2024, 5, 1, 10, 7), zone()), utc(2024, 5, 1, 10, 15));
  EXPECT_EQ(next_after(s, utc(2024, 5, 1, 10, 15), zone()), utc(2024, 5, 1, 10, 30));
  EXPECT_EQ(next_after(s, utc(2024, 5, 1, 10, 14, 59) + milliseconds(999), zone()),
            utc(2024, 5, 1, 10, 15));
  EXPECT_EQ(next_after(s, utc(2024, 12, 31, 23, 50), zone()), utc(2025, 1, 1, 0, 0));
  auto daily = must("0 3 * * *");
  EXPECT_EQ(next_after(daily, utc(2024, 5, 1, 3, 0), zone()), utc(2024, 5, 2, 3, 0));
  EXPECT_EQ(last_at_or_before(daily, utc(2024, 5, 1, 3, 0), zone()), utc(2024, 5, 1, 3, 0));
  EXPECT_EQ(last_at_or_before(daily, utc(2024, 5, 1, 2, 59), zone()), utc(2024, 4, 30, 3, 0));
}

TEST(Cron, MonthEnds) {
  EXPECT_EQ(
      fires("0 0 31 * *", utc(2024, 1, 31), 4),
      (std::vector<tp>{utc(2024, 3, 31), utc(2024, 5, 31), utc(2024, 7, 31), utc(2024, 8, 31)}));
  EXPECT_EQ(fires("0 0 30 * *", utc(2023, 1, 30), 2),
            (std::vector<tp>{utc(2023, 3, 30), utc(2023, 4, 30)}));
  EXPECT_EQ(fires("59 23 28-31 2 *", utc(2023, 2, 28, 23, 59), 3),
            (std::vector<tp>{utc(2024, 2, 28, 23, 59), utc(2024, 2, 29, 23, 59),
                             utc(2025, 2, 28, 23, 59)}));
  EXPECT_EQ(last_at_or_before(must("0 0 31 * *"), utc(2024, 3, 30), zone()), utc(2024, 1, 31));
}

TEST(Cron, LeapDayOnlyInLeapYears) {
  EXPECT_EQ(fires("0 0 29 2 *", utc(2023, 1, 1), 3),
            (std::vector<tp>{utc(2024, 2, 29), utc(2028, 2, 29), utc(2032, 2, 29)}));
  // 2100 is not a leap year: eight years between leap days.
  EXPECT_EQ(fires("0 0 29 2 *", utc(2096, 3, 1), 1), (std::vector<tp>{utc(2104, 2, 29)}));
  EXPECT_EQ(last_at_or_before(must("0 0 29 2 *"), utc(2104, 2, 28), zone()), utc(2096, 2, 29));
}

TEST(Cron, ImpossibleSchedulesEndQuickly) {
  auto start = steady_clock::now();
  for (const char* spec : {"0 0 30 2 *", "0 0 31 2 *", "0 0 31 4,6,9,11 *", "* * 30,31 FEB *"}) {
    auto s = must(spec);
    EXPECT_EQ(next_after(s, utc(2024, 1, 1), zone()), std::nullopt) << spec;
    EXPECT_EQ(next_after(s, utc(2024, 1, 1), load("Europe/Berlin")), std::nullopt) << spec;
    EXPECT_EQ(last_at_or_before(s, utc(2024, 1, 1), load("America/New_York")), std::nullopt)
        << spec;
  }
  EXPECT_LT(steady_clock::now() - start, milliseconds(500));
}

TEST(Cron, DayOfMonthOrDayOfWeek) {
  // Both restricted: a day matches if either matches (Vixie cron, Kubernetes).
  auto s = must("0 0 13 * 5");
  EXPECT_TRUE(s.matches(wall(2024, 9, 6)));    // a Friday, not the 13th
  EXPECT_TRUE(s.matches(wall(2024, 9, 13)));   // the 13th (also a Friday)
  EXPECT_TRUE(s.matches(wall(2024, 10, 13)));  // the 13th, a Sunday
  EXPECT_FALSE(s.matches(wall(2024, 9, 7)));
  EXPECT_EQ(next_after(s, utc(2024, 9, 1), zone()), utc(2024, 9, 6));
  // One of them '*' (even with a step): both must match.
  auto and_rule = must("0 0 */2 * MON");
  EXPECT_TRUE(and_rule.matches(wall(2024, 9, 9)));    // Monday the 9th (odd day)
  EXPECT_FALSE(and_rule.matches(wall(2024, 9, 16)));  // Monday the 16th
  EXPECT_FALSE(and_rule.matches(wall(2024, 9, 11)));  // odd day, Wednesday
  auto mondays = must("0 0 * * 1");
  EXPECT_EQ(next_after(mondays, utc(2024, 9, 1), zone()), utc(2024, 9, 2));
  auto first = must("0 0 1 * *");
  EXPECT_EQ(next_after(first, utc(2024, 9, 1), zone()), utc(2024, 10, 1));
  auto q = must("0 0 ? * MON");  // '?' is '*' in the day fields
  EXPECT_EQ(next_after(q, utc(2024, 9, 1), zone()), utc(2024, 9, 2));
}

TEST(Cron, StepsRangesAndNames) {
  auto s = must("1-30/5 * * * *");
  std::vector<int> minutes_seen;
  for (auto t : fires("1-30/5 * * * *", utc(2024, 1, 1), 7)) {
    minutes_seen.push_back(static_cast<int>(duration_cast<minutes>(t - utc(2024, 1, 1)).count()));
  }
  EXPECT_EQ(minutes_seen, (std::vector<int>{1, 6, 11, 16, 21, 26, 61}));
  EXPECT_EQ(fires("5/15 * * * *", utc(2024, 1, 1), 5),
            (std::vector<tp>{utc(2024, 1, 1, 0, 5), utc(2024, 1, 1, 0, 20), utc(2024, 1, 1, 0, 35),
                             utc(2024, 1, 1, 0, 50), utc(2024, 1, 1, 1, 5)}));
  EXPECT_EQ(fires("0 9-17/4 * * *", utc(2024, 1, 1), 4),
            (std::vector<tp>{utc(2024, 1, 1, 9), utc(2024, 1, 1, 13), utc(2024, 1, 1, 17),
                             utc(2024, 1, 2, 9)}));
  EXPECT_EQ(fires("0 0 1 jan,Jul,DEC *", utc(2024, 1, 1), 3),
            (std::vector<tp>{utc(2024, 7, 1), utc(2024, 12, 1), utc(2025, 1, 1)}));
  EXPECT_EQ(fires("0 0 1 FEB-APR *", utc(2024, 1, 1), 4),
            (std::vector<tp>{utc(2024, 2, 1), utc(2024, 3, 1), utc(2024, 4, 1), utc(2025, 2, 1)}));
  // 2024-09-01 is a Sunday. 7 is Sunday too; 5-7 is Friday to Sunday.
  EXPECT_EQ(fires("0 0 * * 7", utc(2024, 8, 31), 1), (std::vector<tp>{utc(2024, 9, 1)}));
  EXPECT_EQ(fires("0 0 * * 5-7", utc(2024, 9, 1), 4),
            (std::vector<tp>{utc(2024, 9, 6), utc(2024, 9, 7), utc(2024, 9, 8), utc(2024, 9, 13)}));
  EXPECT_EQ(fires("0 0 * * mon-FRI", utc(2024, 9, 6), 2),
            (std::vector<tp>{utc(2024, 9, 9), utc(2024, 9, 10)}));
  EXPECT_EQ(fires("0 0 * * sun,sat", utc(2024, 9, 2), 2),
            (std::vector<tp>{utc(2024, 9, 7), utc(2024, 9, 8)}));
  EXPECT_EQ(fires("0,30 8,20 * * *", utc(2024, 1, 1), 5),
            (std::vector<tp>{utc(2024, 1, 1, 8), utc(2024, 1, 1, 8, 30), utc(2024, 1, 1, 20),
                             utc(2024, 1, 1, 20, 30), utc(2024, 1, 2, 8)}));
  EXPECT_EQ(fires("  15\t10 * * *  ", utc(2024, 1, 1), 1),
            (std::vector<tp>{utc(2024, 1, 1, 10, 15)}));
  EXPECT_EQ(s.spec(), "1-30/5 * * * *");
}

TEST(Cron, Macros) {
  struct {
    const char* macro;
    const char* fields;
  } cases[] = {{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
               {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
               {"@hourly", "0 * * * *"}, {"@DAILY", "0 0 * * *"}};
  for (const auto& c : cases) {
    EXPECT_EQ(fires(c.macro, utc(2023, 12, 30, 5), 3), fires(c.fields, utc(2023, 12, 30, 5), 3))
        << c.macro;
  }
  EXPECT_EQ(fires("@yearly", utc(2024, 1, 1), 1), (std::vector<tp>{utc(2025, 1, 1)}));
  EXPECT_EQ(fires("@weekly", utc(2024, 9, 1), 1), (std::vector<tp>{utc(2024, 9, 8)}));
  EXPECT_EQ(fires("@hourly", utc(2024, 9, 1, 7, 59), 1), (std::vector<tp>{utc(2024, 9, 1, 8)}));
}

TEST(Cron, Every) {
  auto s = must("@every 90s");
  EXPECT_TRUE(s.is_every());
  EXPECT_EQ(s.every(), seconds(90));
  // Anchored at the Unix epoch by default: 2024-01-01T00:00Z is a multiple of 90 s.
  EXPECT_EQ(next_after(s, utc(2024, 1, 1), zone()), utc(2024, 1, 1, 0, 1, 30));
  EXPECT_EQ(next_after(s, utc(2024, 1, 1, 0, 0, 1), zone()), utc(2024, 1, 1, 0, 1, 30));
  EXPECT_EQ(last_at_or_before(s, utc(2024, 1, 1, 0, 1, 29), zone()), utc(2024, 1, 1));
  auto anchored = s.with_anchor(utc(2024, 1, 1, 0, 0, 7) + milliseconds(300));
  EXPECT_EQ(anchored.anchor(), utc(2024, 1, 1, 0, 0, 7));
  EXPECT_EQ(next_after(anchored, utc(2024, 1, 1, 0, 0, 7), zone()), utc(2024, 1, 1, 0, 1, 37));
  EXPECT_EQ(next_after(anchored, utc(2023, 12, 31, 23, 58), zone()),
            utc(2023, 12, 31, 23, 58, 37));  // before the anchor too: a fixed grid
  EXPECT_EQ(must("@every 5m").every(), minutes(5));
  EXPECT_EQ(must("@every 1h30m").every(), minutes(90));
  EXPECT_EQ(must("@every 1.5h").every(), minutes(90));
  EXPECT_EQ(must("@every 2000ms").every(), seconds(2));
  EXPECT_EQ(must("@every 1m0.5s500ms").every(), seconds(61));
  // Real time, not wall time: across New York's fall-back the interval stays one hour.
  auto hourly = must("@every 1h").with_anchor(utc(2024, 11, 3, 4, 30));
  EXPECT_EQ(next_after(hourly, utc(2024, 11, 3, 5, 30), load("America/New_York")),
            utc(2024, 11, 3, 6, 30));
}

TEST(Cron, BerlinSpringForwardSkipsTheGap) {
  // 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00Z).
  zone z = load("Europe/Berlin");
  auto s = must("30 2 * * *");
  EXPECT_EQ(next_after(s, utc(2024, 3, 30, 12), z), utc(2024, 4, 1, 0, 30));  // 31st skipped
  EXPECT_EQ(last_at_or_before(s, utc(2024, 4, 1, 0), z), utc(2024, 3, 30, 1, 30));
  EXPECT_EQ(fires("*/30 * * * *", utc(2024, 3, 31, 0, 0), 3, z),
            (std::vector<tp>{utc(2024, 3, 31, 0, 30),  // 01:30 CET
                             utc(2024, 3, 31, 1, 0),   // 03:00 CEST
                             utc(2024, 3, 31, 1, 30)}));
}

TEST(Cron, BerlinFallBackFiresOnce) {
  // 2024-10-27: 03:00 CEST falls back to 02:00 CET (01:00Z); 02:00-02:59 happens twice.
  zone z = load("Europe/Berlin");
  EXPECT_EQ(fires("30 2 * * *", utc(2024, 10, 26, 12), 2, z),
            (std::vector<tp>{utc(2024, 10, 27, 0, 30),  // first 02:30 (CEST) only
                             utc(2024, 10, 28, 1, 30)}));
  EXPECT_EQ(last_at_or_before(must("30 2 * * *"), utc(2024, 10, 27, 23), z),
            utc(2024, 10, 27, 0, 30));
  // Between the two passes, the next 02:30 is tomorrow's.
  EXPECT_EQ(next_after(must("30 2 * * *"), utc(2024, 10, 27, 1, 10), z), utc(2024, 10, 28, 1, 30));
  // Every-hour schedules keep real-time spacing through the repeated hour.
  EXPECT_EQ(fires("0 * * * *", utc(2024, 10, 26, 23, 30), 4, z),
            (std::vector<tp>{utc(2024, 10, 27, 0), utc(2024, 10, 27, 1), utc(2024, 10, 27, 2),
                             utc(2024, 10, 27, 3)}));
  EXPECT_EQ(fires("*/30 * * * *", utc(2024, 10, 27, 0, 15), 4, z),
            (std::vector<tp>{utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 1, 0),
                             utc(2024, 10, 27, 1, 30), utc(2024, 10, 27, 2, 0)}));
  EXPECT_EQ(last_at_or_before(must("*/30 * * * *"), utc(2024, 10, 27, 1, 45), z),
            utc(2024, 10, 27, 1, 30));
}

TEST(Cron, NewYorkBothDirections) {
  zone z = load("America/New_York");
  // 2024-03-10: 02:00 EST jumps to 03:00 EDT (07:00Z).
  EXPECT_EQ(next_after(must("30 2 * * *"), utc(2024, 3, 9, 12), z), utc(2024, 3, 11, 6, 30));
  EXPECT_EQ(next_after(must("0 3 * * *"), utc(2024, 3, 9, 12), z), utc(2024, 3, 10, 7));
  EXPECT_EQ(next_after(must("59 1 * * *"), utc(2024, 3, 9, 12), z), utc(2024, 3, 10, 6, 59));
  // 2024-11-03: 02:00 EDT falls back to 01:00 EST (06:00Z).
  EXPECT_EQ(fires("30 1 * * *", utc(2024, 11, 2, 12), 2, z),
            (std::vector<tp>{utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)}));
  EXPECT_EQ(
      fires("*/20 * * * *", utc(2024, 11, 3, 5, 30), 5, z),
      (std::vector<tp>{utc(2024, 11, 3, 5, 40), utc(2024, 11, 3, 6, 0), utc(2024, 11, 3, 6, 20),
                       utc(2024, 11, 3, 6, 40), utc(2024, 11, 3, 7, 0)}));
}

TEST(Cron, ZonesFarFromUtc) {
  zone kiri = load("Pacific/Kiritimati");  // UTC+14: local new year at 10:00Z the day before
  EXPECT_EQ(next_after(must("@yearly"), utc(2024, 6, 1), kiri), utc(2024, 12, 31, 10));
  EXPECT_EQ(next_after(must("0 0 * * MON"), utc(2024, 9, 1), kiri), utc(2024, 9, 1, 10));
  zone chatham = load("Pacific/Chatham");  // UTC+12:45, DST +13:45
  EXPECT_EQ(next_after(must("0 9 * * *"), utc(2024, 6, 1), chatham), utc(2024, 6, 1, 20, 15));
  // 2024-09-29 02:45 jumps to 03:45: 03:00 that day does not exist.
  EXPECT_EQ(next_after(must("0 3 * * *"), utc(2024, 9, 28, 0), chatham),
            utc(2024, 9, 29, 13, 15));  // 2024-09-30 03:00 +1345
  EXPECT_EQ(next_after(must("50 3 * * *"), utc(2024, 9, 28, 0), chatham),
            utc(2024, 9, 28, 14, 5));  // 03:50 exists that day
}

TEST(Cron, FooterRulesIn2100) {
  zone z = load("Europe/Berlin");  // 2100-03-28 is the last Sunday of March
  EXPECT_EQ(next_after(must("30 2 * * *"), utc(2100, 3, 27, 12), z), utc(2100, 3, 29, 0, 30));
  EXPECT_EQ(next_after(must("0 12 * * *"), utc(2100, 7, 1), z), utc(2100, 7, 1, 10));
  EXPECT_EQ(fires("30 2 * * *", utc(2100, 10, 30, 12), 2, z),
            (std::vector<tp>{utc(2100, 10, 31, 0, 30), utc(2100, 11, 1, 1, 30)}));
}

TEST(Cron, MatchesBruteForceAroundTransitions) {
  // Oracle: a UTC minute fires when its wall time matches and it is the first instant showing
  // that wall time (or the hour field is '*'). Compared minute by minute around transitions.
  std::mt19937 rng(42);
  const char* minutes_f[] = {"*", "0", "30", "*/7", "10-40/10", "59", "0,15,45"};
  const char* hours_f[] = {"*", "1", "2", "3", "1-3", "*/2", "0,2,4"};
  const char* dom_f[] = {"*", "*", "27-31", "1,15", "*/3"};
  const char* dow_f[] = {"*", "*", "0", "SUN,MON", "1-5"};
  struct window {
    const char* zone;
    tp from;
  } windows[] = {
      {"Europe/Berlin", utc(2024, 3, 30, 12)},    {"Europe/Berlin", utc(2024, 10, 26, 12)},
      {"America/New_York", utc(2024, 11, 2, 18)}, {"America/New_York", utc(2024, 3, 9, 18)},
      {"Pacific/Chatham", utc(2024, 9, 28, 0)},   {"Australia/Lord_Howe", utc(2024, 4, 6, 0)},
      {"Europe/Berlin", utc(2100, 10, 30, 12)}};
  for (const auto& w : windows) {
    zone z = load(w.zone);
    for (int k = 0; k < 12; ++k) {
      std::string spec = std::string(minutes_f[rng() % 7]) + " " + hours_f[rng() % 7] + " " +
                         dom_f[rng() % 5] + " * " + dow_f[rng() % 5];
      schedule s = must(spec);
      std::vector<tp> expect;
      const tp end = w.from + hours(48);
      for (tp t = w.from + minutes(1); t < end; t += minutes(1)) {
        auto lt = z.to_local(time_point_cast<seconds>(t));
        if (!s.matches(lt)) continue;
        if (!s.every_hour() && z.to_sys(lt).first != time_point_cast<seconds>(t)) continue;
        expect.push_back(t);
      }
      std::vector<tp> got;
      for (auto t = next_after(s, w.from, z); t && *t < end; t = next_after(s, *t, z)) {
        got.push_back(*t);
      }
      ASSERT_EQ(got, expect) << spec << " in " << w.zone;
      // Backwards gives the same fires.
      std::vector<tp> back;
      for (auto t = last_at_or_before(s, end - seconds(1), z); t && *t > w.from;
           t = last_at_or_before(s, *t - seconds(1), z)) {
        back.insert(back.begin(), *t);
      }
      ASSERT_EQ(back, expect) << spec << " in " << w.zone << " (backwards)";
    }
  }
}

TEST(Cron, TimeZonePrefix) {
  auto s = must("CRON_TZ=Europe/Berlin 0 3 * * *");
  EXPECT_EQ(s.time_zone(), "Europe/Berlin");
  auto z = tidesync::cron::zone_for(s, "");
  ASSERT_TRUE(z);
  EXPECT_EQ(z->name(), "Europe/Berlin");
  EXPECT_EQ(next_after(s, utc(2024, 7, 1), *z), utc(2024, 7, 1, 1));
  EXPECT_EQ(must("TZ=America/New_York @daily").time_zone(), "America/New_York");
  EXPECT_EQ(must("0 3 * * *").time_zone(), "");
  EXPECT_EQ(tidesync::cron::zone_for(must("0 3 * * *"), "")->name(), "UTC");
  EXPECT_EQ(tidesync::cron::zone_for(must("0 3 * * *"), "Asia/Tokyo")->name(), "Asia/Tokyo");
  EXPECT_TRUE(tidesync::cron::zone_for(s, "Europe/Berlin"));
  auto both = tidesync::cron::zone_for(s, "Asia/Tokyo");
  ASSERT_FALSE(both);
  EXPECT_NE(both.error().message.find("time zone given twice"), std::string::npos);
  auto unknown = tidesync::cron::zone_for(must("CRON_TZ=Mars/Base 0 3 * * *"), "");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, errc::not_found);
}

TEST(Cron, ParseErrorMessages) {
  struct {
    const char* spec;
    const char* message;
  } cases[] = {
      {"",
       "cron schedule is empty: write 5 fields (minute hour day-of-month month day-of-week) "
       "such as \"0 3 * * *\", or a macro such as \"@daily\""},
      {"   ",
       "cron schedule is empty: write 5 fields (minute hour day-of-month month "
       "day-of-week) such as \"0 3 * * *\", or a macro such as \"@daily\""},
      {"61 * * * *", "minute field \"61\": must be 0-59"},
      {"5,61 * * * *", "minute field \"5,61\": 61 must be 0-59"},
      {"* 24 * * *", "hour field \"24\": must be 0-23"},
      {"* * 0 * *", "day-of-month field \"0\": must be 1-31"},
      {"* * 32 * *", "day-of-month field \"32\": must be 1-31"},
      {"* * * 13 *", "month field \"13\": must be 1-12 or JAN-DEC"},
      {"* * * 0 *", "month field \"0\": must be 1-12 or JAN-DEC"},
      {"* * * * 8", "day-of-week field \"8\": must be 0-7 (0 and 7 are Sunday) or SUN-SAT"},
      {"* * * FOO *", "month field \"FOO\": is not a number or name: must be 1-12 or JAN-DEC"},
      {"* * * * MOO",
       "day-of-week field \"MOO\": is not a number or name: must be 0-7 (0 and 7 "
       "are Sunday) or SUN-SAT"},
      {"a * * * *", "minute field \"a\": is not a number: must be 0-59"},
      {"* * * JAN *", "(accepted)"},
      {"MON * * * *", "minute field \"MON\": is not a number: must be 0-59"},
      {"*/0 * * * *", "minute field \"*/0\": has step 0: a step must be at least 1, e.g. */5"},
      {"*/x * * * *", "minute field \"*/x\": has a step that is not a number: write e.g. */5"},
      {"*/ * * * *", "minute field \"*/\": has a step that is not a number: write e.g. */5"},
      {"*/61 * * * *",
       "minute field \"*/61\": has step 61, larger than the field's 60 values: "
       "use a single value instead"},
      {"/5 * * * *", "minute field \"/5\": needs a value or * before the step, e.g. */5"},
      {"30-10 * * * *",
       "minute field \"30-10\": is a range that ends before it starts: ranges "
       "do not wrap, write two items instead, e.g. 30-59,0-10"},
      {"1- * * * *",
       "minute field \"1-\": has a range with a missing bound: write it as a-b, "
       "e.g. 0-59"},
      {"1,,2 * * * *", "minute field \"1,,2\": has an empty list item: remove the extra comma"},
      {", * * * *", "minute field \",\": has an empty list item: remove the extra comma"},
      {"* * L * *", "day-of-month field \"L\": uses L, W or #, which are not supported: use 1-31"},
      {"* * * * 5#3",
       "day-of-week field \"5#3\": uses L, W or #, which are not supported: use "
       "0-7 (0 and 7 are Sunday) or SUN-SAT"},
      {"? * * * *",
       "minute field \"?\": is only allowed in the day-of-month and day-of-week "
       "fields"},
      {"*-5 * * * *", "minute field \"*-5\": * cannot be part of a range: write * alone or a-b"},
      {"* * * *",
       "cron schedule \"* * * *\" has 4 fields, expected 5 (minute hour day-of-month "
       "month day-of-week): write e.g. \"*/15 * * * *\" or \"0 3 * * MON-FRI\""},
      {"0 * * * * *",
       "cron schedule \"0 * * * * *\" has 6 fields, expected 5 (minute hour "
       "day-of-month month day-of-week); a seconds field is not allowed here "
       "(Kubernetes CronJob syntax has five fields): write e.g. \"*/15 * * * *\" or "
       "\"0 3 * * MON-FRI\""},
      {"0 0 * * * * 2024",
       "cron schedule \"0 0 * * * * 2024\" has 7 fields, expected 5 (minute hour "
       "day-of-month month day-of-week); seconds and year fields are not "
       "supported: write e.g. \"*/15 * * * *\" or \"0 3 * * MON-FRI\""},
      {"daily",
       "cron schedule \"daily\" has 1 field, expected 5 (minute hour day-of-month month "
       "day-of-week): write e.g. \"*/15 * * * *\" or \"0 3 * * MON-FRI\""},
      {"@fortnightly",
       "unknown cron macro \"@fortnightly\": use @yearly, @annually, @monthly, "
       "@weekly, @daily, @midnight, @hourly or @every <duration>"},
      {"@daily 3", "@daily takes no arguments: write \"@daily\" alone or use 5 fields"},
      {"@every", "@every needs exactly one duration, e.g. \"@every 1h30m\""},
      {"@every 1h 30m", "@every needs exactly one duration, e.g. \"@every 1h30m\""},
      {"@every 500ms",
       "@every \"500ms\": must be at least 1s; write a Go duration such as 90s, "
       "5m or 1h30m"},
      {"@every 0",
       "@every \"0\": must be at least 1s; write a Go duration such as 90s, 5m or "
       "1h30m"},
      {"@every 0s",
       "@every \"0s\": must be at least 1s; write a Go duration such as 90s, 5m or "
       "1h30m"},
      {"@every -5m",
       "@every \"-5m\": must be positive; write a Go duration such as 90s, 5m or "
       "1h30m"},
      {"@every 5",
       "@every \"5\": is missing a unit after \"5\" (h, m, s, ms, us or ns); write a "
       "Go duration such as 90s, 5m or 1h30m"},
      {"@every 5x",
       "@every \"5x\": has unknown unit \"x\" (use h, m, s, ms, us or ns); write a "
       "Go duration such as 90s, 5m or 1h30m"},
      {"@every 5d",
       "@every \"5d\": has unknown unit \"d\" (use h, m, s, ms, us or ns); write a "
       "Go duration such as 90s, 5m or 1h30m"},
      {"@every 1500ms",
       "@every \"1500ms\": must be a whole number of seconds; write a Go "
       "duration such as 90s, 5m or 1h30m"},
      {"@every h",
       "@every \"h\": expected a number at \"h\"; write a Go duration such as 90s, "
       "5m or 1h30m"},
      {"@every 99999999999999999999h",
       "@every \"99999999999999999999h\": is too large; write a "
       "Go duration such as 90s, 5m or 1h30m"},
      {"CRON_TZ= 0 3 * * *",
       "CRON_TZ= needs a time zone name, e.g. \"CRON_TZ=Europe/Berlin 0 3 "
       "* * *\""},
      {"TZ=../../etc/passwd 0 3 * * *",
       "TZ=../../etc/passwd: not a valid IANA time zone name; "
       "use e.g. \"Europe/Berlin\""},
      {"CRON_TZ=Europe/Berlin",
       "CRON_TZ=Europe/Berlin must be followed by a schedule, e.g. "
       "\"CRON_TZ=Europe/Berlin 0 3 * * *\""},
      {"CRON_TZ=Europe/Berlin 61 * * * *", "minute field \"61\": must be 0-59"},
  };
  for (const auto& c : cases)
    EXPECT_EQ(parse_error(c.spec), c.message) << c.spec;
}

TEST(CronDecide, NeverRan) {
  // A policy created at 10:05 with an hourly schedule: its "last" time is its creation time.
  auto s = must("0 * * * *");
  auto d = decide(s, zone(), utc(2024, 1, 1, 10, 5), utc(2024, 1, 1, 10, 30), std::nullopt);
  EXPECT_FALSE(d.run_now);
  EXPECT_EQ(d.missed, 0);
  EXPECT_EQ(d.next, utc(2024, 1, 1, 11));
  d = decide(s, zone(), utc(2024, 1, 1, 10, 5), utc(2024, 1, 1, 11, 0, 5), seconds(60));
  EXPECT_TRUE(d.run_now);
  EXPECT_EQ(d.scheduled_time, utc(2024, 1, 1, 11));
  EXPECT_EQ(d.missed, 1);
  EXPECT_EQ(d.next, utc(2024, 1, 1, 12));
}

TEST(CronDecide, RanRecently) {
  auto s = must("0 * * * *");
  auto d = decide(s, zone(), utc(2024, 1, 1, 11), utc(2024, 1, 1, 11, 30), seconds(60));
  EXPECT_FALSE(d.run_now);
  EXPECT_FALSE(d.too_late);
  EXPECT_EQ(d.missed, 0);
  EXPECT_EQ(d.next, utc(2024, 1, 1, 12));
  // Exactly at the fire time after the last run: that fire is due.
  d = decide(s, zone(), utc(2024, 1, 1, 11), utc(2024, 1, 1, 12), seconds(60));
  EXPECT_TRUE(d.run_now);
  EXPECT_EQ(d.scheduled_time, utc(2024, 1, 1, 12));
}

TEST(CronDecide, DowntimeOfDays) {
  auto s = must("0 * * * *");
  auto last = utc(2024, 1, 1, 11);
  auto now = utc(2024, 1, 4, 9, 10);
  // No deadline: one run, for the latest missed fire; 70 fires were missed.
  auto d = decide(s, zone(), last, now, std::nullopt);
  EXPECT_TRUE(d.run_now);
  EXPECT_FALSE(d.too_late);
  EXPECT_EQ(d.scheduled_time, utc(2024, 1, 4, 9));
  EXPECT_EQ(d.missed, 70);
  EXPECT_EQ(d.next, utc(2024, 1, 4, 10));
  // A 200 s deadline: the latest fire is 600 s old, so nothing runs until 10:00.
  d = decide(s, zone(), last, now, seconds(200));
  EXPECT_FALSE(d.run_now);
  EXPECT_TRUE(d.too_late);
  EXPECT_EQ(d.missed, 70);
  EXPECT_EQ(d.scheduled_time, utc(2024, 1, 4, 9));
  EXPECT_EQ(d.next, utc(2024, 1, 4, 10));
  // A one-hour deadline covers it; exactly at the deadline still runs.
  EXPECT_TRUE(decide(s, zone(), last, now, seconds(3600)).run_now);
  EXPECT_TRUE(decide(s, zone(), last, now, seconds(600)).run_now);
  EXPECT_FALSE(decide(s, zone(), last, now, seconds(599)).run_now);
}

TEST(CronDecide, LongDowntimeIsCheapAndCapped) {
  auto start = steady_clock::now();
  auto d = decide(must("* * * * *"), load("Europe/Berlin"), utc(2023, 1, 1),
                  utc(2024, 6, 1, 0, 0, 30), std::nullopt);
  EXPECT_TRUE(d.run_now);
  EXPECT_EQ(d.scheduled_time, utc(2024, 6, 1));
  EXPECT_EQ(d.missed, tidesync::cron::k_max_missed_counted);
  EXPECT_LT(steady_clock::now() - start, milliseconds(1000));

  auto every = must("@every 90s");
  auto e = decide(every, zone(), utc(2024, 1, 1), utc(2024, 1, 1, 1, 0, 45), seconds(30));
  EXPECT_EQ(e.missed, 40);
  EXPECT_EQ(e.scheduled_time, utc(2024, 1, 1, 1));
  EXPECT_FALSE(e.run_now);  // 45 s late with a 30 s deadline
  EXPECT_TRUE(e.too_late);
  EXPECT_EQ(e.next, utc(2024, 1, 1, 1, 1, 30));

  auto never = decide(must("0 0 30 2 *"), zone(), utc(2024, 1, 1), utc(2024, 6, 1), std::nullopt);
  EXPECT_FALSE(never.run_now);
  EXPECT_EQ(never.next, std::nullopt);
}

// ---- the optional seconds field (parse_options::allow_seconds) -----------------------------

TEST(CronSeconds, ParseErrorMessages) {
  struct {
    const char* spec;
    const char* message;
  } cases[] = {
      {"0 30 * * * *", "(accepted)"},
      {"*/15 * * * *", "(accepted)"},
      {"@every 1m", "(accepted)"},
      {"@every 10s", "(accepted)"},
      {"CRON_TZ=Europe/Berlin 0 30 * * * *", "(accepted)"},
      {"61 * * * * *", "second field \"61\": must be 0-59"},
      {"0,61 * * * * *", "second field \"0,61\": 61 must be 0-59"},
      {"x * * * * *", "second field \"x\": is not a number: must be 0-59"},
      {"*/0 * * * * *", "second field \"*/0\": has step 0: a step must be at least 1, e.g. */5"},
      {"*/61 * * * * *",
       "second field \"*/61\": has step 61, larger than the field's 60 values: use a single "
       "value instead"},
      {"50-10 * * * * *",
       "second field \"50-10\": is a range that ends before it starts: ranges do not wrap, "
       "write two items instead, e.g. 50-59,0-10"},
      {"0 61 * * * *", "minute field \"61\": must be 0-59"},
      {"0 0 24 * * *", "hour field \"24\": must be 0-23"},
      {"CRON_TZ=Europe/Berlin 61 0 * * * *", "second field \"61\": must be 0-59"},
      {"0 0 0 * * * 2024",
       "cron schedule \"0 0 0 * * * 2024\" has 7 fields, expected 5 or 6 ([second] minute "
       "hour day-of-month month day-of-week); a year field is not supported: write e.g. "
       "\"*/15 * * * * *\" or \"0 30 * * * *\""},
      {"* * * *",
       "cron schedule \"* * * *\" has 4 fields, expected 5 or 6 ([second] minute hour "
       "day-of-month month day-of-week): write e.g. \"*/15 * * * * *\" or \"0 30 * * * *\""},
      {"",
       "cron schedule is empty: write 5 or 6 fields ([second] minute hour day-of-month month "
       "day-of-week) such as \"0 30 * * * *\", or a macro such as \"@every 1m\""},
      {"@every 500ms",
       "@every \"500ms\": must be at least 1s; write a Go duration such as 90s, 5m or 1h30m"},
      {"@daily 3", "@daily takes no arguments: write \"@daily\" alone or use 5 fields"},
  };
  for (const auto& c : cases)
    EXPECT_EQ(parse_error(c.spec, k_seconds), c.message) << c.spec;
  // Without the option (BucketSyncPolicy, CronJob semantics) six fields stay an error.
  EXPECT_EQ(parse_error("61 * * * * *"),
            "cron schedule \"61 * * * * *\" has 6 fields, expected 5 (minute hour day-of-month "
            "month day-of-week); a seconds field is not allowed here (Kubernetes CronJob syntax "
            "has five fields): write e.g. \"*/15 * * * *\" or \"0 3 * * MON-FRI\"");
  EXPECT_TRUE(must_s("0 30 * * * *").has_seconds_field());
  EXPECT_FALSE(must_s("30 * * * *").has_seconds_field());
  EXPECT_FALSE(must_s("@hourly").has_seconds_field());
}

TEST(CronSeconds, NextAfterStepsListsAndRanges) {
  auto s = must_s("*/15 * * * * *");
  EXPECT_EQ(next_after(s, utc(2024, 5, 1, 12, 0, 7), zone()), utc(2024, 5, 1, 12, 0, 15));
  EXPECT_EQ(next_after(s, utc(2024, 5, 1, 12, 0, 15), zone()), utc(2024, 5, 1, 12, 0, 30));
  EXPECT_EQ(next_after(s, utc(2024, 5, 1, 12, 0, 14) + milliseconds(999), zone()),
            utc(2024, 5, 1, 12, 0, 15));
  EXPECT_EQ(fires(s, utc(2024, 5, 1, 12, 0, 7), 4),
            (std::vector<tp>{utc(2024, 5, 1, 12, 0, 15), utc(2024, 5, 1, 12, 0, 30),
                             utc(2024, 5, 1, 12, 0, 45), utc(2024, 5, 1, 12, 1, 0)}));
  EXPECT_EQ(fires_s("5/20 * * * * *", utc(2024, 5, 1, 12), 4),
            (std::vector<tp>{utc(2024, 5, 1, 12, 0, 5), utc(2024, 5, 1, 12, 0, 25),
                             utc(2024, 5, 1, 12, 0, 45), utc(2024, 5, 1, 12, 1, 5)}));
  EXPECT_EQ(fires_s("5,10,50 * * * * *", utc(2024, 5, 1, 12, 0, 10), 3),
            (std::vector<tp>{utc(2024, 5, 1, 12, 0, 50), utc(2024, 5, 1, 12, 1, 5),
                             utc(2024, 5, 1, 12, 1, 10)}));
  // Range, then hour rollover: minute 0 only.
  EXPECT_EQ(fires_s("10-12 0 * * * *", utc(2024, 5, 1, 12, 0, 11), 3),
            (std::vector<tp>{utc(2024, 5, 1, 12, 0, 12), utc(2024, 5, 1, 13, 0, 10),
                             utc(2024, 5, 1, 13, 0, 11)}));
  EXPECT_EQ(fires_s("0-30/10 15 9 * * MON", utc(2024, 9, 2, 9, 15, 25), 3),
            (std::vector<tp>{utc(2024, 9, 2, 9, 15, 30), utc(2024, 9, 9, 9, 15, 0),
                             utc(2024, 9, 9, 9, 15, 10)}));
  // Minute, hour, day and year rollover.
  EXPECT_EQ(next_after(must_s("*/20 * * * * *"), utc(2024, 5, 1, 12, 0, 45), zone()),
            utc(2024, 5, 1, 12, 1, 0));
  EXPECT_EQ(next_after(must_s("30 59 * * * *"), utc(2024, 5, 1, 12, 59, 31), zone()),
            utc(2024, 5, 1, 13, 59, 30));
  EXPECT_EQ(next_after(must_s("59 59 23 * * *"), utc(2024, 12, 31, 23, 59, 59), zone()),
            utc(2025, 1, 1, 23, 59, 59));
  // The seed's example: every hour at half past, second 0.
  auto half = must_s("0 30 * * * *");
  EXPECT_EQ(next_after(half, utc(2024, 5, 1, 12, 29, 59) + milliseconds(500), zone()),
            utc(2024, 5, 1, 12, 30));
  EXPECT_EQ(next_after(half, utc(2024, 5, 1, 12, 30), zone()), utc(2024, 5, 1, 13, 30));
  EXPECT_EQ(next_after(half, utc(2024, 5, 1, 12, 30, 1), zone()), utc(2024, 5, 1, 13, 30));
  // matches() looks at the second.
  EXPECT_TRUE(must_s("*/15 30 * * * *").matches(wall(2024, 1, 1, 3, 30, 15)));
  EXPECT_FALSE(must_s("*/15 30 * * * *").matches(wall(2024, 1, 1, 3, 30, 16)));
  EXPECT_TRUE(must("30 * * * *").matches(wall(2024, 1, 1, 3, 30, 0)));
  EXPECT_FALSE(must("30 * * * *").matches(wall(2024, 1, 1, 3, 30, 5)));
}

TEST(CronSeconds, LastAtOrBefore) {
  auto s = must_s("*/15 * * * * *");
  EXPECT_EQ(last_at_or_before(s, utc(2024, 5, 1, 12, 0, 7), zone()), utc(2024, 5, 1, 12, 0, 0));
  EXPECT_EQ(last_at_or_before(s, utc(2024, 5, 1, 12, 0, 15), zone()), utc(2024, 5, 1, 12, 0, 15));
  EXPECT_EQ(last_at_or_before(s, utc(2024, 5, 1, 12, 0, 14) + milliseconds(999), zone()),
            utc(2024, 5, 1, 12, 0, 0));
  EXPECT_EQ(last_at_or_before(s, utc(2024, 5, 1, 12, 0, 0) - milliseconds(1), zone()),
            utc(2024, 5, 1, 11, 59, 45));
  EXPECT_EQ(last_at_or_before(must_s("10-12 0 * * * *"), utc(2024, 5, 1, 12, 30), zone()),
            utc(2024, 5, 1, 12, 0, 12));
  EXPECT_EQ(last_at_or_before(must_s("10-12 0 * * * *"), utc(2024, 5, 1, 12, 0, 9), zone()),
            utc(2024, 5, 1, 11, 0, 12));
  EXPECT_EQ(last_at_or_before(must_s("0 30 * * * *"), utc(2024, 5, 1, 12, 29, 59), zone()),
            utc(2024, 5, 1, 11, 30));
  EXPECT_EQ(last_at_or_before(must_s("5 0 0 1 1 *"), utc(2024, 1, 1, 0, 0, 4), zone()),
            utc(2023, 1, 1, 0, 0, 5));
}

TEST(CronSeconds, FiveFieldsAreTheDefaultParse) {
  zone berlin = load("Europe/Berlin");
  for (const char* spec :
       {"*/15 * * * *", "0 3 * * MON-FRI", "30 2 * * *", "0 0 13 * FRI", "@hourly", "@daily",
        "@weekly", "@every 90s", "CRON_TZ=Europe/Berlin 0 9 * * *"}) {
    schedule a = must(spec);
    schedule b = must_s(spec);
    EXPECT_EQ(b.spec(), a.spec());
    EXPECT_EQ(b.time_zone(), a.time_zone());
    EXPECT_EQ(b.every(), a.every());
    for (tp from : {utc(2024, 3, 30, 12, 0, 7), utc(2024, 10, 26, 23, 59, 59)}) {
      EXPECT_EQ(fires(b, from, 30, berlin), fires(a, from, 30, berlin)) << spec;
      EXPECT_EQ(last_at_or_before(b, from, berlin), last_at_or_before(a, from, berlin)) << spec;
    }
  }
  // Macros fire at second 0.
  EXPECT_EQ(next_after(must_s("@hourly"), utc(2024, 1, 1, 0, 0, 1), zone()), utc(2024, 1, 1, 1));
  EXPECT_EQ(next_after(must_s("@daily"), utc(2024, 1, 1, 0, 0, 1), zone()), utc(2024, 1, 2));
  EXPECT_EQ(last_at_or_before(must_s("@hourly"), utc(2024, 1, 1, 0, 59, 59), zone()),
            utc(2024, 1, 1));
}

TEST(CronSeconds, EveryTenSeconds) {
  for (auto opts : {tidesync::cron::parse_options{}, k_seconds}) {
    auto s = schedule::parse("@every 10s", opts);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->every(), seconds(10));
    EXPECT_EQ(fires(*s, utc(2024, 1, 1, 0, 0, 3), 3),
              (std::vector<tp>{utc(2024, 1, 1, 0, 0, 10), utc(2024, 1, 1, 0, 0, 20),
                               utc(2024, 1, 1, 0, 0, 30)}));
    EXPECT_EQ(last_at_or_before(*s, utc(2024, 1, 1, 0, 0, 29), zone()), utc(2024, 1, 1, 0, 0, 20));
    auto anchored = s->with_anchor(utc(2024, 1, 1, 0, 0, 3));
    EXPECT_EQ(next_after(anchored, utc(2024, 1, 1, 0, 0, 3), zone()), utc(2024, 1, 1, 0, 0, 13));
  }
  EXPECT_EQ(must_s("@every 1m").every(), seconds(60));
}

TEST(CronSeconds, DaylightSavingInBerlin) {
  zone z = load("Europe/Berlin");
  // 2024-03-31 02:00 CET jumps to 03:00 CEST (01:00Z): 02:30:15 does not exist that day.
  EXPECT_EQ(next_after(must_s("15 30 2 * * *"), utc(2024, 3, 30, 12), z),
            utc(2024, 4, 1, 0, 30, 15));
  // Every-hour schedules keep real-time spacing across the jump.
  EXPECT_EQ(fires_s("*/20 * * * * *", utc(2024, 3, 31, 0, 59, 30), 3, z),
            (std::vector<tp>{utc(2024, 3, 31, 0, 59, 40), utc(2024, 3, 31, 1, 0, 0),
                             utc(2024, 3, 31, 1, 0, 20)}));
  // 2024-10-27 03:00 CEST falls back to 02:00 CET (01:00Z): 02:30:10 fires once.
  EXPECT_EQ(fires_s("10 30 2 * * *", utc(2024, 10, 26, 12), 2, z),
            (std::vector<tp>{utc(2024, 10, 27, 0, 30, 10), utc(2024, 10, 28, 1, 30, 10)}));
  EXPECT_EQ(last_at_or_before(must_s("10 30 2 * * *"), utc(2024, 10, 27, 1, 45), z),
            utc(2024, 10, 27, 0, 30, 10));
  // ... but with hour '*' the repeated hour fires too.
  EXPECT_EQ(fires_s("30 */30 * * * *", utc(2024, 10, 27, 0, 45), 3, z),
            (std::vector<tp>{utc(2024, 10, 27, 1, 0, 30), utc(2024, 10, 27, 1, 30, 30),
                             utc(2024, 10, 27, 2, 0, 30)}));
  EXPECT_EQ(last_at_or_before(must_s("30 */30 * * * *"), utc(2024, 10, 27, 1, 15), z),
            utc(2024, 10, 27, 1, 0, 30));
}

TEST(CronSeconds, MatchesBruteForceAroundTransitions) {
  // The oracle of MatchesBruteForceAroundTransitions, second by second over two hours around
  // each transition.
  std::mt19937 rng(7);
  const char* seconds_f[] = {"*/15", "0", "30", "59", "10-12", "0,20,40", "*"};
  const char* minutes_f[] = {"*", "0", "30", "*/7", "59"};
  const char* hours_f[] = {"*", "1", "2", "3", "1-3"};
  struct window {
    const char* zone;
    tp from;
  } windows[] = {
      {"Europe/Berlin", utc(2024, 3, 31, 0)},       {"Europe/Berlin", utc(2024, 10, 27, 0)},
      {"America/New_York", utc(2024, 3, 10, 6)},    {"America/New_York", utc(2024, 11, 3, 5)},
      {"Australia/Lord_Howe", utc(2024, 4, 6, 14)}, {"Pacific/Chatham", utc(2024, 9, 28, 13)}};
  for (const auto& w : windows) {
    zone z = load(w.zone);
    for (int k = 0; k < 6; ++k) {
      std::string spec = std::string(seconds_f[rng() % 7]) + " " + minutes_f[rng() % 5] + " " +
                         hours_f[rng() % 5] + " * * *";
      schedule s = must_s(spec);
      std::vector<tp> expect;
      const tp end = w.from + hours(2);
      for (tp t = w.from + seconds(1); t < end; t += seconds(1)) {
        auto lt = z.to_local(time_point_cast<seconds>(t));
        if (!s.matches(lt)) continue;
        if (!s.every_hour() && z.to_sys(lt).first != time_point_cast<seconds>(t)) continue;
        expect.push_back(t);
      }
      std::vector<tp> got;
      for (auto t = next_after(s, w.from, z); t && *t < end; t = next_after(s, *t, z)) {
        got.push_back(*t);
      }
      ASSERT_EQ(got, expect) << spec << " in " << w.zone;
      std::vector<tp> back;
      for (auto t = last_at_or_before(s, end - seconds(1), z); t && *t > w.from;
           t = last_at_or_before(s, *t - seconds(1), z)) {
        back.push_back(*t);
      }
      std::reverse(back.begin(), back.end());
      ASSERT_EQ(back, expect) << spec << " in " << w.zone << " (backwards)";
    }
  }
}

TEST(CronSeconds, RareSchedulesAreCheap) {
  // The search skips months, days, hours and minutes before looking at seconds.
  auto start = steady_clock::now();
  zone berlin = load("Europe/Berlin");
  EXPECT_EQ(next_after(must_s("30 0 0 1 1 *"), utc(2024, 6, 1), berlin),
            utc(2024, 12, 31, 23, 0, 30));
  EXPECT_EQ(last_at_or_before(must_s("30 0 0 1 1 *"), utc(2024, 6, 1), berlin),
            utc(2023, 12, 31, 23, 0, 30));
  EXPECT_EQ(next_after(must_s("59 59 23 29 2 *"), utc(2096, 3, 1), zone()),
            utc(2104, 2, 29, 23, 59, 59));
  for (const char* spec : {"* * * 30 2 *", "*/5 * * 31 4,6,9,11 *"}) {
    EXPECT_EQ(next_after(must_s(spec), utc(2024, 1, 1), berlin), std::nullopt) << spec;
    EXPECT_EQ(last_at_or_before(must_s(spec), utc(2024, 1, 1), berlin), std::nullopt) << spec;
  }
  EXPECT_LT(steady_clock::now() - start, milliseconds(500));
}

TEST(CronSeconds, Decide) {
  auto s = must_s("*/10 * * * * *");
  auto last = utc(2024, 1, 1, 12);
  auto now = utc(2024, 1, 1, 12, 1, 5);
  auto d = decide(s, zone(), last, now, std::nullopt);
  EXPECT_TRUE(d.run_now);
  EXPECT_EQ(d.scheduled_time, utc(2024, 1, 1, 12, 1, 0));
  EXPECT_EQ(d.missed, 6);  // 12:00:10 ... 12:01:00
  EXPECT_EQ(d.next, utc(2024, 1, 1, 12, 1, 10));
  d = decide(s, zone(), last, now, seconds(4));
  EXPECT_FALSE(d.run_now);
  EXPECT_TRUE(d.too_late);
  EXPECT_TRUE(decide(s, zone(), last, now, seconds(5)).run_now);
  // Already ran for 12:01:00.
  d = decide(s, zone(), utc(2024, 1, 1, 12, 1, 0), now, std::nullopt);
  EXPECT_FALSE(d.run_now);
  EXPECT_EQ(d.missed, 0);

  // The seed's hourly schedule.
  auto half = must_s("0 30 * * * *");
  d = decide(half, zone(), utc(2024, 1, 1, 10, 30), utc(2024, 1, 1, 11, 30) + milliseconds(500),
             std::nullopt);
  EXPECT_TRUE(d.run_now);
  EXPECT_EQ(d.scheduled_time, utc(2024, 1, 1, 11, 30));
  EXPECT_EQ(d.missed, 1);
  EXPECT_EQ(d.next, utc(2024, 1, 1, 12, 30));

  // A long downtime with a fire every second is counted up to the cap, quickly.
  auto start = steady_clock::now();
  d = decide(must_s("* * * * * *"), load("Europe/Berlin"), utc(2023, 1, 1),
             utc(2024, 6, 1, 0, 0, 30) + milliseconds(500), std::nullopt);
  EXPECT_TRUE(d.run_now);
  EXPECT_EQ(d.scheduled_time, utc(2024, 6, 1, 0, 0, 30));
  EXPECT_EQ(d.missed, tidesync::cron::k_max_missed_counted);
  EXPECT_EQ(d.next, utc(2024, 6, 1, 0, 0, 31));
  EXPECT_LT(steady_clock::now() - start, milliseconds(1000));
}
