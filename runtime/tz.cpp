#include "runtime/tz.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <system_error>
#include <vector>

namespace tidesync::tz {

namespace {

using std::chrono::days;
using std::chrono::seconds;

struct ttype {
  int32_t offset = 0;
  bool is_dst = false;
  std::string abbr;
};

// A rule date of a POSIX TZ string: "Jn", "n" or "Mm.w.d", and the local time of day (seconds,
// may be negative or above 24 h in TZif v3+).
struct rule_date {
  enum class form { julian_no_leap, zero_based, month_week_day };
  form f = form::month_week_day;
  int a = 0, b = 0, c = 0;  // Jn/n: a = n; M: a = month, b = week, c = weekday
  int32_t time = 2 * 3600;
};

struct posix_rule {
  ttype std_type;
  bool has_dst = false;
  ttype dst_type;
  rule_date start, end;
};

constexpr int64_t k_day = 86400;

int64_t days_from_civil(int y, unsigned m, unsigned d) {
  using namespace std::chrono;
  return sys_days(year(y) / month(m) / day(d)).time_since_epoch().count();
}

bool is_leap(int y) {
  return std::chrono::year(y).is_leap();
}

int year_of(int64_t t) {
  auto dp = std::chrono::floor<days>(sys_seconds(seconds(t)));
  return static_cast<int>(std::chrono::year_month_day(dp).year());
}

// Days since the epoch of a rule date in year y.
int64_t rule_day(const rule_date& r, int y) {
  switch (r.f) {
    case rule_date::form::julian_no_leap: {
      int n = r.a - 1;  // 0..364, Feb 29 never counted
      if (is_leap(y) && r.a >= 60) ++n;
      return days_from_civil(y, 1, 1) + n;
    }
    case rule_date::form::zero_based:
      return days_from_civil(y, 1, 1) + r.a;
    case rule_date::form::month_week_day: {
      using namespace std::chrono;
      auto first = sys_days(year(y) / month(r.a) / day(1));
      unsigned wd0 = weekday(first).c_encoding();
      int d = 1 + static_cast<int>((static_cast<unsigned>(r.c) + 7 - wd0) % 7) + (r.b - 1) * 7;
      int month_days = static_cast<int>(static_cast<unsigned>(
          year_month_day_last(year(y) / month(r.a) / std::chrono::last).day()));
      while (d > month_days)
        d -= 7;
      return first.time_since_epoch().count() + d - 1;
    }
  }
  return 0;
}

struct rule_event {
  int64_t at;
  bool to_dst;
};

// The rule's switches in years [y0, y1], in time order; at equal instants the switch to
// standard time sorts first, so a zone that is in DST all year (end == next start) stays DST.
std::vector<rule_event> rule_events(const posix_rule& r, int y0, int y1) {
  std::vector<rule_event> out;
  for (int y = y0; y <= y1; ++y) {
    out.push_back({rule_day(r.start, y) * k_day + r.start.time - r.std_type.offset, true});
    out.push_back({rule_day(r.end, y) * k_day + r.end.time - r.dst_type.offset, false});
  }
  std::sort(out.begin(), out.end(), [](const rule_event& a, const rule_event& b) {
    return a.at != b.at ? a.at < b.at : (!a.to_dst && b.to_dst);
  });
  return out;
}

const ttype& rule_type_at(const posix_rule& r, int64_t t) {
  if (!r.has_dst) return r.std_type;
  int y = year_of(t);
  bool dst = false;
  for (const auto& e : rule_events(r, y - 2, y + 1)) {
    if (e.at > t) break;
    dst = e.to_dst;
  }
  return dst ? r.dst_type : r.std_type;
}

// Switches at one instant (the end of one year's DST and the start of the next) count as one:
// only the state after all of them matters.
std::optional<int64_t> rule_next_change(const posix_rule& r, int64_t t) {
  if (!r.has_dst || r.std_type.offset == r.dst_type.offset) return std::nullopt;
  int32_t cur = rule_type_at(r, t).offset;
  int y = year_of(t);
  // A yearly rule that changes nothing within three years never changes (permanent DST).
  auto ev = rule_events(r, y - 1, y + 3);
  // The window's last switch may pair with one of the following year that is not listed.
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    if (ev[i].at <= t) continue;
    if (i + 1 < ev.size() && ev[i + 1].at == ev[i].at) continue;  // the last one at this instant
    int32_t next = ev[i].to_dst ? r.dst_type.offset : r.std_type.offset;
    if (next != cur) return ev[i].at;
  }
  return std::nullopt;
}

std::optional<int64_t> rule_prev_change(const posix_rule& r, int64_t t) {
  if (!r.has_dst || r.std_type.offset == r.dst_type.offset) return std::nullopt;
  int y = year_of(t);
  auto ev = rule_events(r, y - 3, y + 1);
  std::optional<int64_t> found;
  int32_t cur = rule_type_at(r, ev.front().at - 1).offset;
  for (size_t i = 0; i < ev.size(); ++i) {
    if (ev[i].at > t) break;
    if (i + 1 < ev.size() && ev[i + 1].at == ev[i].at) continue;
    int32_t next = ev[i].to_dst ? r.dst_type.offset : r.std_type.offset;
    if (next != cur) found = ev[i].at;
    cur = next;
  }
  return found;
}

// ---- POSIX TZ string parsing ------------------------------------------------------------

class posix_parser {
 public:
  explicit posix_parser(std::string_view s) : s_(s) {}

  expected<posix_rule> parse() {
    posix_rule r;
    if (!name(r.std_type.abbr)) return fail("expected a zone abbreviation");
    auto off = hms(24);
    if (!off) return fail("expected a UTC offset after the abbreviation");
    r.std_type.offset = -*off;  // POSIX offsets count west of Greenwich
    if (at_end()) return r;
    r.has_dst = true;
    r.dst_type.is_dst = true;
    if (!name(r.dst_type.abbr)) return fail("expected a daylight-time abbreviation");
    r.dst_type.offset = r.std_type.offset + 3600;
    if (!at_end() && peek() != ',') {
      auto doff = hms(24);
      if (!doff) return fail("expected a daylight-time offset");
      r.dst_type.offset = -*doff;
    }
    if (at_end()) {  // POSIX's default rule (the US one)
      r.start = {rule_date::form::month_week_day, 3, 2, 0, 7200};
      r.end = {rule_date::form::month_week_day, 11, 1, 0, 7200};
      return r;
    }
    if (!eat(',') || !date(r.start)) return fail("expected the start rule");
    if (!eat(',') || !date(r.end)) return fail("expected the end rule");
    if (!at_end()) return fail("unexpected text after the end rule");
    return r;
  }

 private:
  bool at_end() const { return i_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[i_]; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  static bool alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
  static bool digit(char c) { return c >= '0' && c <= '9'; }

  bool name(std::string& out) {
    if (eat('<')) {
      size_t b = i_;
      while (!at_end() && peek() != '>') {
        char c = peek();
        if (!alpha(c) && !digit(c) && c != '+' && c != '-') return false;
        ++i_;
      }
      if (!eat('>') || i_ - 1 - b < 1) return false;
      out = std::string(s_.substr(b, i_ - 1 - b));
      return true;
    }
    size_t b = i_;
    while (alpha(peek()))
      ++i_;
    if (i_ - b < 3) return false;
    out = std::string(s_.substr(b, i_ - b));
    return true;
  }

  std::optional<int32_t> number(int max) {
    if (!digit(peek())) return std::nullopt;
    int v = 0;
    while (digit(peek())) {
      v = v * 10 + (peek() - '0');
      if (v > max) return std::nullopt;
      ++i_;
    }
    return v;
  }

  // [+-]hh[:mm[:ss]] in seconds.
  std::optional<int32_t> hms(int max_hours) {
    int sign = 1;
    if (eat('-')) {
      sign = -1;
    } else {
      eat('+');
    }
    auto h = number(max_hours);
    if (!h) return std::nullopt;
    int32_t v = *h * 3600;
    if (eat(':')) {
      auto m = number(59);
      if (!m) return std::nullopt;
      v += *m * 60;
      if (eat(':')) {
        auto s = number(59);
        if (!s) return std::nullopt;
        v += *s;
      }
    }
    return sign * v;
  }

  bool date(rule_date& d) {
    if (eat('J')) {
      auto n = number(365);
      if (!n || *n < 1) return false;
      d.f = rule_date::form::julian_no_leap;
      d.a = *n;
    } else if (eat('M')) {
      auto m = number(12);
      if (!m || *m < 1 || !eat('.')) return false;
      auto w = number(5);
      if (!w || *w < 1 || !eat('.')) return false;
      auto wd = number(6);
      if (!wd) return false;
      d.f = rule_date::form::month_week_day;
      d.a = *m;
      d.b = *w;
      d.c = *wd;
    } else {
      auto n = number(365);
      if (!n) return false;
      d.f = rule_date::form::zero_based;
      d.a = *n;
    }
    d.time = 7200;
    if (eat('/')) {
      auto t = hms(167);  // RFC 8536 (TZif v3) extends the hour range to -167..167
      if (!t) return false;
      d.time = *t;
    }
    return true;
  }

  error fail(std::string_view what) const {
    return make_error(errc::parse_error, "POSIX TZ string \"" + std::string(s_) +
                                             "\": " + std::string(what) + " at position " +
                                             std::to_string(i_));
  }

  std::string_view s_;
  size_t i_ = 0;
};

std::string offset_name(int64_t off) {
  if (off == 0) return "UTC";
  char buf[32];
  int64_t a = off < 0 ? -off : off;
  if (a % 60 != 0) {
    std::snprintf(buf, sizeof buf, "UTC%c%02d:%02d:%02d", off < 0 ? '-' : '+',
                  static_cast<int>(a / 3600), static_cast<int>(a / 60 % 60),
                  static_cast<int>(a % 60));
  } else {
    std::snprintf(buf, sizeof buf, "UTC%c%02d:%02d", off < 0 ? '-' : '+',
                  static_cast<int>(a / 3600), static_cast<int>(a / 60 % 60));
  }
  return buf;
}

}  // namespace

// ---- zone data ----------------------------------------------------------------------------

struct zone::data {
  std::string name;
  std::vector<int64_t> times;        // transition instants, strictly ascending
  std::vector<uint8_t> index;        // local time type after each transition
  std::vector<ttype> types;          // at least one; types[0] applies before the first transition
  std::optional<posix_rule> footer;  // applies at and after the last transition

  // True when `t` is governed by the footer rule.
  bool in_footer(int64_t t) const { return footer && (times.empty() || t >= times.back()); }

  const ttype& type_at(int64_t t) const {
    if (in_footer(t)) return rule_type_at(*footer, t);
    if (times.empty() || t < times.front()) return types[0];
    auto it = std::upper_bound(times.begin(), times.end(), t);
    return types[index[static_cast<size_t>(it - times.begin()) - 1]];
  }

  int32_t offset_before_table(size_t j) const {
    return j == 0 ? types[0].offset : types[index[j - 1]].offset;
  }

  std::optional<int64_t> next_change(int64_t t) const {
    if (!in_footer(t)) {
      size_t j =
          static_cast<size_t>(std::upper_bound(times.begin(), times.end(), t) - times.begin());
      for (; j < times.size(); ++j) {
        if (types[index[j]].offset != offset_before_table(j)) return times[j];
      }
      if (!footer) return std::nullopt;
      t = times.back();
    }
    return rule_next_change(*footer, t);
  }

  std::optional<int64_t> prev_change(int64_t t) const {
    if (in_footer(t)) {
      auto p = rule_prev_change(*footer, t);
      if (p && (times.empty() || *p > times.back())) return p;
      if (times.empty()) return std::nullopt;
      t = times.back();
    }
    if (times.empty() || t < times.front()) return std::nullopt;
    size_t j = static_cast<size_t>(std::upper_bound(times.begin(), times.end(), t) - times.begin());
    while (j > 0) {
      --j;
      if (types[index[j]].offset != offset_before_table(j)) return times[j];
    }
    return std::nullopt;
  }
};

namespace {

std::shared_ptr<zone::data> fixed_data(int64_t offset, std::string name) {
  auto d = std::make_shared<zone::data>();
  d->name = name.empty() ? offset_name(offset) : std::move(name);
  d->types.push_back({static_cast<int32_t>(offset), false, d->name});
  return d;
}

// ---- TZif parsing --------------------------------------------------------------------------

class reader {
 public:
  explicit reader(std::string_view b) : b_(b) {}
  bool has(size_t n) const { return b_.size() - pos_ >= n; }
  size_t pos() const { return pos_; }
  void skip(size_t n) { pos_ += n; }
  uint8_t u8() { return static_cast<uint8_t>(b_[pos_++]); }
  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
      v = (v << 8) | u8();
    return v;
  }
  int64_t i64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
      v = (v << 8) | u8();
    return static_cast<int64_t>(v);
  }
  std::string_view rest() const { return b_.substr(pos_); }

 private:
  std::string_view b_;
  size_t pos_ = 0;
};

struct tzif_header {
  char version = 0;
  uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

std::optional<tzif_header> read_header(reader& r) {
  if (!r.has(44)) return std::nullopt;
  if (r.rest().substr(0, 4) != "TZif") return std::nullopt;
  r.skip(4);
  tzif_header h;
  h.version = static_cast<char>(r.u8());
  r.skip(15);
  h.isutcnt = r.u32();
  h.isstdcnt = r.u32();
  h.leapcnt = r.u32();
  h.timecnt = r.u32();
  h.typecnt = r.u32();
  h.charcnt = r.u32();
  return h;
}

size_t block_size(const tzif_header& h, size_t time_size) {
  return size_t{h.timecnt} * time_size + h.timecnt + size_t{h.typecnt} * 6 + h.charcnt +
         size_t{h.leapcnt} * (time_size + 4) + h.isstdcnt + h.isutcnt;
}

}  // namespace

zone::zone() : zone(utc()) {}
zone::zone(std::shared_ptr<const data> d) : d_(std::move(d)) {}

zone zone::utc() {
  // Shared by every UTC zone; immutable, so sharing needs no synchronisation.
  static const std::shared_ptr<const data> utc_data = fixed_data(0, "UTC");
  return zone(utc_data);
}

zone zone::fixed(std::chrono::seconds offset, std::string name) {
  return zone(fixed_data(offset.count(), std::move(name)));
}

expected<zone> zone::from_posix(std::string_view tz_string) {
  auto r = posix_parser(tz_string).parse();
  if (!r) return r.error();
  auto d = std::make_shared<data>();
  d->name = std::string(tz_string);
  d->types.push_back(r->std_type);
  d->footer = std::move(*r);
  return zone(std::move(d));
}

expected<zone> zone::from_tzif(std::string_view bytes, std::string name) {
  auto bad = [&](std::string_view why) {
    return make_error(errc::parse_error, "time zone file for \"" + name + "\" is damaged: " +
                                             std::string(why) + "; reinstall the tzdata package");
  };
  reader r(bytes);
  auto h1 = read_header(r);
  if (!h1) return bad("not a TZif file (no \"TZif\" header)");
  bool v2 = h1->version >= '2';
  tzif_header h = *h1;
  size_t time_size = 4;
  if (v2) {
    // Skip the 32-bit block; the 64-bit one that follows has the full range.
    size_t n = block_size(*h1, 4);
    if (!r.has(n)) return bad("truncated version 1 data");
    r.skip(n);
    auto h2 = read_header(r);
    if (!h2) return bad("missing the second (64-bit) header");
    h = *h2;
    time_size = 8;
  }
  if (h.typecnt == 0 || h.typecnt > 256 || h.charcnt == 0) return bad("no local time types");
  if (h.leapcnt != 0) {
    return make_error(errc::invalid_argument,
                      "time zone \"" + name +
                          "\" counts leap seconds (a \"right/\" zone); use the zone without the "
                          "\"right/\" prefix");
  }
  if (!r.has(block_size(h, time_size))) return bad("truncated data");
  auto d = std::make_shared<data>();
  d->name = name;
  d->times.reserve(h.timecnt);
  for (uint32_t i = 0; i < h.timecnt; ++i) {
    int64_t t = time_size == 8 ? r.i64() : static_cast<int32_t>(r.u32());
    if (!d->times.empty() && t <= d->times.back()) return bad("transitions out of order");
    d->times.push_back(t);
  }
  for (uint32_t i = 0; i < h.timecnt; ++i) {
    uint8_t k = r.u8();
    if (k >= h.typecnt) return bad("transition names an unknown type");
    d->index.push_back(k);
  }
  std::vector<uint8_t> desig;
  for (uint32_t i = 0; i < h.typecnt; ++i) {
    ttype t;
    t.offset = static_cast<int32_t>(r.u32());
    if (t.offset < -89999 || t.offset > 93599) return bad("UTC offset out of range");
    t.is_dst = r.u8() != 0;
    desig.push_back(r.u8());
    if (desig.back() >= h.charcnt) return bad("abbreviation index out of range");
    d->types.push_back(std::move(t));
  }
  std::string_view chars = r.rest().substr(0, h.charcnt);
  for (size_t i = 0; i < d->types.size(); ++i) {
    auto s = chars.substr(desig[i]);
    d->types[i].abbr = std::string(s.substr(0, s.find('\0')));
  }
  r.skip(h.charcnt + h.isstdcnt + h.isutcnt);  // no leap records (checked above)
  if (v2) {
    std::string_view rest = r.rest();
    if (rest.size() < 2 || rest[0] != '\n') return bad("missing the POSIX TZ footer");
    size_t nl = rest.find('\n', 1);
    if (nl == std::string_view::npos) return bad("unterminated POSIX TZ footer");
    std::string_view footer = rest.substr(1, nl - 1);
    if (!footer.empty()) {
      auto rule = posix_parser(footer).parse();
      if (!rule) return bad(rule.error().message);
      d->footer = std::move(*rule);
    }
  }
  return zone(std::move(d));
}

bool zone::valid_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '/' || name.back() == '/') {
    return false;
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    for (char c : part) {
      bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-' || c == '+' || c == '.';
      if (!ok) return false;
    }
    start = end + 1;
  }
  return true;
}

namespace {

// Zones that need no file: UTC under its usual names and "Etc/GMT±N" (POSIX sign convention:
// Etc/GMT+5 is five hours *behind* UTC).
std::optional<zone> builtin_zone(std::string_view name) {
  static constexpr std::array<std::string_view, 16> utc_names = {
      "UTC", "Etc/UTC", "UCT",  "Etc/UCT",  "Universal", "Etc/Universal", "Zulu",      "Etc/Zulu",
      "GMT", "Etc/GMT", "GMT0", "Etc/GMT0", "GMT+0",     "GMT-0",         "Etc/GMT+0", "Etc/GMT-0"};
  for (auto n : utc_names) {
    if (n == name) return zone::fixed(std::chrono::seconds(0), std::string(name));
  }
  constexpr std::string_view prefix = "Etc/GMT";
  if (name.substr(0, prefix.size()) == prefix && name.size() > prefix.size() + 1 &&
      name.size() <= prefix.size() + 3) {
    char sign = name[prefix.size()];
    std::string_view digits = name.substr(prefix.size() + 1);
    if (sign != '+' && sign != '-') return std::nullopt;
    int n = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      n = n * 10 + (c - '0');
    }
    if (digits.size() > 1 && digits[0] == '0') return std::nullopt;
    if ((sign == '+' && n > 12) || (sign == '-' && n > 14)) return std::nullopt;
    return zone::fixed(std::chrono::hours(sign == '+' ? -n : n), std::string(name));
  }
  return std::nullopt;
}

}  // namespace

expected<zone> zone::load(std::string_view name, const std::filesystem::path& root) {
  if (name.empty()) {
    return make_error(errc::invalid_argument,
                      "time zone name is empty: use an IANA name such as \"Europe/Berlin\" or "
                      "\"UTC\"");
  }
  if (!valid_name(name)) {
    return make_error(errc::invalid_argument,
                      "time zone \"" + std::string(name) +
                          "\" is not a valid IANA time zone name: use a name such as "
                          "\"Europe/Berlin\" or \"America/New_York\" (letters, digits, '_', "
                          "'-', '+', separated by '/')");
  }
  if (auto b = builtin_zone(name)) return *b;
  std::filesystem::path p = root / std::string(name);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(p, ec)) {
    return make_error(errc::not_found,
                      "unknown time zone \"" + std::string(name) + "\": no zone file " +
                          p.string() +
                          "; check the spelling (e.g. \"America/New_York\") or install the "
                          "tzdata package");
  }
  auto size = std::filesystem::file_size(p, ec);
  if (ec || size > (1u << 20)) {
    return make_error(errc::io_error, "time zone file " + p.string() + " cannot be read");
  }
  std::ifstream in(p, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) {
    return make_error(errc::io_error, "time zone file " + p.string() + " cannot be read");
  }
  return from_tzif(bytes, std::string(name));
}

const std::string& zone::name() const {
  return d_->name;
}

zone_info zone::info_at(sys_seconds t) const {
  const ttype& ty = d_->type_at(t.time_since_epoch().count());
  return {seconds(ty.offset), ty.is_dst, ty.abbr};
}

std::chrono::seconds zone::offset_at(sys_seconds t) const {
  return seconds(d_->type_at(t.time_since_epoch().count()).offset);
}

local_seconds zone::to_local(sys_seconds t) const {
  return local_seconds((t + offset_at(t)).time_since_epoch());
}

local_result zone::to_sys(local_seconds lt) const {
  int64_t l = lt.time_since_epoch().count();
  // UTC offsets stay within ±26 h, so every instant that shows wall time `l` lies in
  // [l - 26 h, l + 26 h]; collect the offsets in force over that window and test each.
  std::vector<int64_t> offsets;
  int64_t x = l - 2 * k_day;
  offsets.push_back(d_->type_at(x).offset);
  for (auto n = d_->next_change(x); n && *n <= l + 2 * k_day; n = d_->next_change(*n)) {
    offsets.push_back(d_->type_at(*n).offset);
  }
  std::vector<int64_t> hits;
  for (int64_t off : offsets) {
    int64_t u = l - off;
    if (d_->type_at(u).offset == off) hits.push_back(u);
  }
  std::sort(hits.begin(), hits.end());
  hits.erase(std::unique(hits.begin(), hits.end()), hits.end());
  local_result r;
  if (hits.empty()) {
    r.result = local_result::kind::nonexistent;
    // The clock jumps over `l` at the first change after the latest instant that could show it.
    int64_t max_off = *std::max_element(offsets.begin(), offsets.end());
    auto n = d_->next_change(l - max_off);
    r.first = r.second = sys_seconds(seconds(n ? *n : l - max_off));
    return r;
  }
  r.first = sys_seconds(seconds(hits.front()));
  r.second = sys_seconds(seconds(hits.back()));
  r.result = hits.size() > 1 ? local_result::kind::ambiguous : local_result::kind::unique;
  return r;
}

std::optional<sys_seconds> zone::next_transition(sys_seconds t) const {
  auto n = d_->next_change(t.time_since_epoch().count());
  if (!n) return std::nullopt;
  return sys_seconds(seconds(*n));
}

std::optional<sys_seconds> zone::prev_transition(sys_seconds t) const {
  auto p = d_->prev_change(t.time_since_epoch().count());
  if (!p) return std::nullopt;
  return sys_seconds(seconds(*p));
}

}  // namespace tidesync::tz
