#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "runtime/tz.hpp"

using namespace std::chrono;
using tidesync::errc;
using tidesync::tz::local_result;
using tidesync::tz::local_seconds;
using tidesync::tz::sys_seconds;
using tidesync::tz::zone;

namespace {

sys_seconds utc(int y, unsigned m, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return sys_days(year(y) / month(m) / day(d)) + hours(h) + minutes(mi) + seconds(s);
}

local_seconds wall(int y, unsigned m, unsigned d, int h = 0, int mi = 0) {
  return local_days(year(y) / month(m) / day(d)) + hours(h) + minutes(mi);
}

zone must_load(const std::string& name) {
  auto z = zone::load(name);
  EXPECT_TRUE(z.has_value()) << name << ": " << (z ? "" : z.error().message);
  return z ? *z : zone::utc();
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A scratch zoneinfo root, removed at the end of the test.
class temp_root {
 public:
  temp_root() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("tidesync_tz_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~temp_root() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  void write(const std::string& name, const std::string& bytes) const {
    auto p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Builds TZif bytes (RFC 8536) so tests control every field.
struct tzif_builder {
  struct type {
    int32_t offset;
    bool dst;
    std::string abbr;
  };
  char version = '2';
  std::vector<int64_t> times;
  std::vector<uint8_t> index;
  std::vector<type> types;
  std::string footer;
  uint32_t leapcnt = 0;

  static void be32(std::string& out, uint32_t v) {
    for (int i = 3; i >= 0; --i)
      out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  static void be64(std::string& out, uint64_t v) {
    for (int i = 7; i >= 0; --i)
      out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }

  std::string block(bool wide) const {
    std::string chars;
    std::vector<uint8_t> idx;
    for (const auto& t : types) {
      idx.push_back(static_cast<uint8_t>(chars.size()));
      chars += t.abbr;
      chars.push_back('\0');
    }
    std::string out = "TZif";
    out.push_back(version);
    out.append(15, '\0');
    be32(out, 0);
    be32(out, 0);
    be32(out, leapcnt);
    be32(out, static_cast<uint32_t>(times.size()));
    be32(out, static_cast<uint32_t>(types.size()));
    be32(out, static_cast<uint32_t>(chars.size()));
    for (int64_t t : times) {
      if (wide) {
        be64(out, static_cast<uint64_t>(t));
      } else {
        be32(out, static_cast<uint32_t>(static_cast<int32_t>(t)));
      }
    }
    for (uint8_t i : index)
      out.push_back(static_cast<char>(i));
    for (size_t i = 0; i < types.size(); ++i) {
      be32(out, static_cast<uint32_t>(types[i].offset));
      out.push_back(types[i].dst ? 1 : 0);
      out.push_back(static_cast<char>(idx[i]));
    }
    out += chars;
    for (uint32_t i = 0; i < leapcnt; ++i) {
      if (wide) {
        be64(out, 100);
      } else {
        be32(out, 100);
      }
      be32(out, 1);
    }
    return out;
  }

  std::string bytes() const {
    std::string out = block(false);
    if (version == '\0') return out;
    out += block(true);
    out += "\n" + footer + "\n";
    return out;
  }
};

}  // namespace

TEST(Tz, UtcAndFixedZonesNeedNoFiles) {
  for (const char* name : {"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Zulu"}) {
    auto z = zone::load(name, "/nonexistent/zoneinfo");
    ASSERT_TRUE(z) << name;
    EXPECT_EQ(z->offset_at(utc(2024, 6, 1)), seconds(0)) << name;
    EXPECT_FALSE(z->next_transition(utc(2024, 6, 1)));
  }
  auto e5 = zone::load("Etc/GMT+5", "/nonexistent/zoneinfo");
  ASSERT_TRUE(e5);
  EXPECT_EQ(e5->offset_at(utc(2024, 6, 1)), hours(-5));  // POSIX sign: GMT+5 is behind UTC
  auto e14 = zone::load("Etc/GMT-14", "/nonexistent/zoneinfo");
  ASSERT_TRUE(e14);
  EXPECT_EQ(e14->offset_at(utc(2024, 6, 1)), hours(14));
  EXPECT_FALSE(zone::load("Etc/GMT+13", "/nonexistent/zoneinfo"));

  auto f = zone::fixed(hours(5) + minutes(30));
  EXPECT_EQ(f.name(), "UTC+05:30");
  EXPECT_EQ(f.to_local(utc(2024, 1, 1, 0, 0)), wall(2024, 1, 1, 5, 30));
  auto r = f.to_sys(wall(2024, 1, 1, 5, 30));
  EXPECT_EQ(r.result, local_result::kind::unique);
  EXPECT_EQ(r.first, utc(2024, 1, 1));
  EXPECT_EQ(zone::fixed(-hours(3) - minutes(30)).name(), "UTC-03:30");
  EXPECT_EQ(zone().name(), "UTC");
}

TEST(Tz, BerlinOffsetsAndTransitions) {
  zone z = must_load("Europe/Berlin");
  EXPECT_EQ(z.name(), "Europe/Berlin");
  auto summer = z.info_at(utc(2024, 7, 1, 12));
  EXPECT_EQ(summer.offset, hours(2));
  EXPECT_TRUE(summer.is_dst);
  EXPECT_EQ(summer.abbreviation, "CEST");
  auto winter = z.info_at(utc(2024, 1, 15, 12));
  EXPECT_EQ(winter.offset, hours(1));
  EXPECT_FALSE(winter.is_dst);
  EXPECT_EQ(winter.abbreviation, "CET");

  EXPECT_EQ(z.next_transition(utc(2024, 1, 1)), utc(2024, 3, 31, 1));
  EXPECT_EQ(z.next_transition(utc(2024, 3, 31, 1)), utc(2024, 10, 27, 1));  // strictly after
  EXPECT_EQ(z.prev_transition(utc(2024, 7, 1)), utc(2024, 3, 31, 1));
  EXPECT_EQ(z.prev_transition(utc(2024, 3, 31, 1)), utc(2024, 3, 31, 1));  // at or before
  EXPECT_EQ(z.offset_at(utc(2024, 3, 31, 1) - seconds(1)), hours(1));
  EXPECT_EQ(z.offset_at(utc(2024, 3, 31, 1)), hours(2));
}

TEST(Tz, PosixFooterRulesAfterTheLastTransition) {
  // 2100 lies past the last transition in any zone file: only the footer knows these dates.
  zone berlin = must_load("Europe/Berlin");
  EXPECT_EQ(berlin.next_transition(utc(2100, 1, 1)), utc(2100, 3, 28, 1));
  EXPECT_EQ(berlin.next_transition(utc(2100, 3, 28, 1)), utc(2100, 10, 31, 1));
  EXPECT_EQ(berlin.prev_transition(utc(2100, 7, 1)), utc(2100, 3, 28, 1));
  EXPECT_EQ(berlin.info_at(utc(2100, 7, 1)).abbreviation, "CEST");
  EXPECT_EQ(berlin.offset_at(utc(2100, 12, 31, 23)), hours(1));

  zone ny = must_load("America/New_York");
  EXPECT_EQ(ny.next_transition(utc(2100, 1, 1)), utc(2100, 3, 14, 7));
  EXPECT_EQ(ny.next_transition(utc(2100, 3, 14, 7)), utc(2100, 11, 7, 6));

  zone chatham = must_load("Pacific/Chatham");  // southern hemisphere: DST spans New Year
  EXPECT_EQ(chatham.next_transition(utc(2100, 1, 1)), utc(2100, 4, 3, 14));
  EXPECT_EQ(chatham.next_transition(utc(2100, 4, 3, 14)), utc(2100, 9, 25, 14));
  EXPECT_EQ(chatham.offset_at(utc(2100, 1, 1)), hours(13) + minutes(45));
  EXPECT_EQ(chatham.offset_at(utc(2100, 6, 1)), hours(12) + minutes(45));
}

TEST(Tz, NewYorkGapAndOverlap) {
  zone z = must_load("America/New_York");
  EXPECT_EQ(z.offset_at(utc(2024, 1, 1)), hours(-5));
  EXPECT_EQ(z.offset_at(utc(2024, 7, 1)), hours(-4));
  EXPECT_EQ(z.next_transition(utc(2024, 1, 1)), utc(2024, 3, 10, 7));
  EXPECT_EQ(z.next_transition(utc(2024, 3, 10, 7)), utc(2024, 11, 3, 6));

  auto gap = z.to_sys(wall(2024, 3, 10, 2, 30));
  EXPECT_EQ(gap.result, local_result::kind::nonexistent);
  EXPECT_EQ(gap.first, utc(2024, 3, 10, 7));  // where the clock jumps from 02:00 to 03:00

  auto twice = z.to_sys(wall(2024, 11, 3, 1, 30));
  EXPECT_EQ(twice.result, local_result::kind::ambiguous);
  EXPECT_EQ(twice.first, utc(2024, 11, 3, 5, 30));   // 01:30 EDT
  EXPECT_EQ(twice.second, utc(2024, 11, 3, 6, 30));  // 01:30 EST

  auto once = z.to_sys(wall(2024, 11, 3, 3, 0));
  EXPECT_EQ(once.result, local_result::kind::unique);
  EXPECT_EQ(once.first, utc(2024, 11, 3, 8));
}

TEST(Tz, ZonesFarFromUtc) {
  zone kiri = must_load("Pacific/Kiritimati");
  auto i = kiri.info_at(utc(2024, 6, 1));
  EXPECT_EQ(i.offset, hours(14));
  EXPECT_EQ(i.abbreviation, "+14");
  EXPECT_EQ(kiri.to_local(utc(2024, 12, 31, 10)), wall(2025, 1, 1, 0));  // new year at 10:00 UTC
  EXPECT_FALSE(kiri.next_transition(utc(2024, 1, 1)));

  zone chatham = must_load("Pacific/Chatham");
  EXPECT_EQ(chatham.offset_at(utc(2024, 6, 1)), hours(12) + minutes(45));
  EXPECT_EQ(chatham.offset_at(utc(2024, 1, 1)), hours(13) + minutes(45));
  EXPECT_EQ(chatham.next_transition(utc(2024, 1, 1)), utc(2024, 4, 6, 14));
  EXPECT_EQ(chatham.to_local(utc(2024, 6, 1)), wall(2024, 6, 1, 12, 45));
}

TEST(Tz, RoundTripAndTransitionsAreConsistent) {
  // Every instant maps to a wall time that maps back to it; every reported transition changes
  // the offset; hourly samples between transitions never see a change.
  for (const char* name :
       {"Europe/Berlin", "America/New_York", "Pacific/Chatham", "Australia/Lord_Howe"}) {
    zone z = must_load(name);
    for (int start_year : {2023, 2099}) {
      sys_seconds t = utc(start_year, 1, 1);
      sys_seconds end = utc(start_year + 2, 1, 1);
      auto tr = z.next_transition(t);
      auto off = z.offset_at(t);
      for (; t < end; t += minutes(105)) {
        if (tr && t >= *tr) {
          EXPECT_NE(z.offset_at(*tr - seconds(1)), z.offset_at(*tr)) << name;
          off = z.offset_at(*tr);
          tr = z.next_transition(*tr);
        }
        ASSERT_EQ(z.offset_at(t), off) << name << " at " << t.time_since_epoch().count();
        auto back = z.to_sys(z.to_local(t));
        ASSERT_NE(back.result, local_result::kind::nonexistent) << name;
        ASSERT_TRUE(back.first == t || back.second == t) << name;
      }
    }
  }
}

TEST(Tz, RejectsBadAndUnknownNames) {
  for (const char* name : {"../../etc/passwd", "/etc/passwd", "Europe/../../etc/passwd",
                           "Europe//Berlin", "Europe/./Berlin", "Europe/Berlin/", "Europe/Ber lin",
                           "Europe\\Berlin", "Europe/Berlin\n"}) {
    auto z = zone::load(name);
    ASSERT_FALSE(z) << name;
    EXPECT_EQ(z.error().code, errc::invalid_argument) << name;
    EXPECT_NE(z.error().message.find("not a valid IANA time zone name"), std::string::npos);
  }
  auto empty = zone::load("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, errc::invalid_argument);

  auto unknown = zone::load("Mars/Olympus_Mons");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, errc::not_found);
  EXPECT_NE(unknown.error().message.find("unknown time zone \"Mars/Olympus_Mons\""),
            std::string::npos);
  EXPECT_NE(unknown.error().message.find("tzdata"), std::string::npos);

  auto dir = zone::load("Europe");  // a directory, not a zone
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().code, errc::not_found);
}

TEST(Tz, RejectsDamagedFiles) {
  temp_root root;
  root.write("Bad/Text", "this is not a zone file, just text that is long enough...........");
  root.write("Bad/Empty", "");
  std::string berlin = read_file("/usr/share/zoneinfo/Europe/Berlin");
  ASSERT_GT(berlin.size(), 100u);
  root.write("Bad/Truncated", berlin.substr(0, berlin.size() / 2));
  root.write("Bad/NoFooter", berlin.substr(0, berlin.rfind('\n', berlin.size() - 2)));
  for (const char* name : {"Bad/Text", "Bad/Empty", "Bad/Truncated", "Bad/NoFooter"}) {
    auto z = zone::load(name, root.path());
    ASSERT_FALSE(z) << name;
    EXPECT_EQ(z.error().code, errc::parse_error) << name;
    EXPECT_NE(z.error().message.find("damaged"), std::string::npos) << z.error().message;
  }

  tzif_builder leap;
  leap.types = {{0, false, "UTC"}};
  leap.leapcnt = 1;
  auto l = zone::from_tzif(leap.bytes(), "right/UTC");
  ASSERT_FALSE(l);
  EXPECT_NE(l.error().message.find("leap seconds"), std::string::npos);

  tzif_builder bad_index;
  bad_index.types = {{0, false, "UTC"}};
  bad_index.times = {1000};
  bad_index.index = {3};
  EXPECT_FALSE(zone::from_tzif(bad_index.bytes(), "x"));

  tzif_builder unordered;
  unordered.types = {{0, false, "A"}, {3600, false, "B"}};
  unordered.times = {2000, 1000};
  unordered.index = {1, 0};
  EXPECT_FALSE(zone::from_tzif(unordered.bytes(), "x"));
}

TEST(Tz, ReadsVersion1Files) {
  // A version 1 file has only the 32-bit block and no footer: keep the real Berlin data's first
  // block and mark it version 1.
  std::string berlin = read_file("/usr/share/zoneinfo/Europe/Berlin");
  ASSERT_GT(berlin.size(), 44u);
  auto be32 = [&](size_t at) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i)
      v = (v << 8) | static_cast<uint8_t>(berlin[at + i]);
    return v;
  };
  uint32_t isut = be32(20), isstd = be32(24), leap = be32(28), timecnt = be32(32),
           typecnt = be32(36), charcnt = be32(40);
  size_t v1_size = 44 + timecnt * 5 + typecnt * 6 + charcnt + leap * 8 + isstd + isut;
  std::string v1 = berlin.substr(0, v1_size);
  v1[4] = '\0';
  temp_root root;
  root.write("Old/Berlin", v1);
  auto z = zone::load("Old/Berlin", root.path());
  ASSERT_TRUE(z) << z.error().message;
  if (timecnt > 0) {  // Debian ships "fat" files with 32-bit data up to 2037
    EXPECT_EQ(z->offset_at(utc(2024, 7, 1)), hours(2));
    EXPECT_EQ(z->next_transition(utc(2024, 1, 1)), utc(2024, 3, 31, 1));
  }
}

TEST(Tz, ReadsSyntheticVersion2And3Files) {
  // Transition on 2001-01-01 from +01 to -02, then a v3 footer whose rule times are
  // outside 0-24 h (as America/Nuuk's "-1" and Greenland's "M10.5.0/0" are).
  tzif_builder b;
  b.version = '3';
  b.types = {{3600, false, "+01"}, {-7200, false, "-02"}};
  b.times = {978'307'200};
  b.index = {1};
  b.footer = "<-02>2<-01>,M3.5.0/-1,M10.5.0/0";
  auto z = zone::from_tzif(b.bytes(), "Test/Nuuk");
  ASSERT_TRUE(z) << z.error().message;
  EXPECT_EQ(z->offset_at(utc(2001, 1, 1) - seconds(1)), hours(1));
  EXPECT_EQ(z->offset_at(utc(2001, 1, 1)), hours(-2));
  EXPECT_EQ(z->next_transition(utc(2030, 1, 1)), utc(2030, 3, 31, 1));
  EXPECT_EQ(z->next_transition(utc(2030, 3, 31, 1)), utc(2030, 10, 27, 1));
  EXPECT_EQ(z->info_at(utc(2030, 7, 1)).abbreviation, "-01");
  EXPECT_EQ(z->prev_transition(utc(2001, 1, 2)), utc(2001, 1, 1));

  b.version = '2';
  b.footer = "";  // no rule: the last type stays
  auto z2 = zone::from_tzif(b.bytes(), "Test/Plain");
  ASSERT_TRUE(z2) << z2.error().message;
  EXPECT_EQ(z2->offset_at(utc(2100, 7, 1)), hours(-2));
  EXPECT_FALSE(z2->next_transition(utc(2030, 1, 1)));
}

TEST(Tz, PosixStrings) {
  auto eu = zone::from_posix("CET-1CEST,M3.5.0,M10.5.0/3");
  ASSERT_TRUE(eu) << eu.error().message;
  EXPECT_EQ(eu->next_transition(utc(2024, 1, 1)), utc(2024, 3, 31, 1));
  EXPECT_EQ(eu->offset_at(utc(2024, 12, 31, 23, 59)), hours(1));

  // Julian day forms: J60 is 1 March in every year; 59 (zero-based) is 29 Feb in leap years.
  auto j = zone::from_posix("AAA0BBB,J60/0,J305/0");
  ASSERT_TRUE(j);
  EXPECT_EQ(j->next_transition(utc(2024, 1, 1)), utc(2024, 3, 1));
  EXPECT_EQ(j->next_transition(utc(2023, 1, 1)), utc(2023, 3, 1));
  auto n = zone::from_posix("AAA0BBB,59/0,304/0");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->next_transition(utc(2024, 1, 1)), utc(2024, 2, 29));
  EXPECT_EQ(n->next_transition(utc(2023, 1, 1)), utc(2023, 3, 1));

  // DST all year (RFC 8536's example): a constant offset, no transitions.
  auto perm = zone::from_posix("EST5EDT,0/0,J365/25");
  ASSERT_TRUE(perm) << perm.error().message;
  for (auto t : {utc(2024, 1, 1), utc(2024, 6, 1), utc(2024, 12, 31, 23), utc(2025, 1, 1, 4)}) {
    EXPECT_EQ(perm->offset_at(t), hours(-4));
  }
  EXPECT_FALSE(perm->next_transition(utc(2024, 1, 1)));

  auto chatham = zone::from_posix("<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45");
  ASSERT_TRUE(chatham);
  EXPECT_EQ(chatham->next_transition(utc(2024, 1, 1)), utc(2024, 4, 6, 14));
  EXPECT_EQ(chatham->info_at(utc(2024, 1, 1)).abbreviation, "+1345");

  auto fixed = zone::from_posix("<+14>-14");
  ASSERT_TRUE(fixed);
  EXPECT_EQ(fixed->offset_at(utc(2024, 1, 1)), hours(14));

  auto us_default = zone::from_posix("EST5EDT");  // no rule: POSIX's default (US) rule
  ASSERT_TRUE(us_default);
  EXPECT_EQ(us_default->next_transition(utc(2024, 1, 1)), utc(2024, 3, 10, 7));

  for (const char* bad : {"", "E", "EST", "EST5EDT,M3.2.0", "EST5EDT,M13.2.0,M11.1.0",
                          "EST5EDT,M3.2.0,M11.1.0 junk", "<+14-14", "EST99"}) {
    auto z = zone::from_posix(bad);
    EXPECT_FALSE(z) << bad;
    if (!z) {
      EXPECT_EQ(z.error().code, errc::parse_error);
    }
  }
}
