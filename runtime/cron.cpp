#include "runtime/cron.hpp"

#include <array>
#include <bit>
#include <limits>
#include <vector>

namespace tidesync::cron {

namespace {

using std::chrono::seconds;

constexpr int64_t k_day = 86400;
// How far next_after / last_at_or_before look: 9 years cover the 8-year gap between leap days
// around 2100 (2096 -> 2104), the longest wait a valid schedule can have.
constexpr int64_t k_horizon = int64_t{9} * 366 * k_day;

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

bool blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && blank(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && blank(s.back()))
    s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_blanks(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && blank(s[i]))
      ++i;
    size_t b = i;
    while (i < s.size() && !blank(s[i]))
      ++i;
    if (i > b) out.push_back(s.substr(b, i - b));
  }
  return out;
}

char upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (upper(a[i]) != upper(b[i])) return false;
  }
  return true;
}

struct field_def {
  const char* name;
  int min;
  int max;
  const char* range_text;                              // what the error says is allowed
  const std::array<const char*, 12>* names = nullptr;  // names[i] means min + i
  bool question_mark = false;  // '?' allowed as '*' (day fields, like robfig/Quartz)
};

constexpr std::array<const char*, 12> k_month_names = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<const char*, 12> k_day_names = {
    "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", nullptr, nullptr, nullptr, nullptr, nullptr};

const field_def k_second{"second", 0, 59, "0-59"};
const field_def k_minute{"minute", 0, 59, "0-59"};
const field_def k_hour{"hour", 0, 23, "0-23"};
const field_def k_dom{"day-of-month", 1, 31, "1-31", nullptr, true};
const field_def k_month{"month", 1, 12, "1-12 or JAN-DEC", &k_month_names};
const field_def k_dow{"day-of-week", 0,   7, "0-7 (0 and 7 are Sunday) or SUN-SAT",
                      &k_day_names,  true};

error invalid(std::string message) {
  return make_error(errc::invalid_argument, std::move(message));
}

struct field_result {
  uint64_t bits = 0;
  bool star = false;  // the field starts with '*' or is '?'
};

class field_parser {
 public:
  field_parser(const field_def& f, std::string_view text) : f_(f), text_(text) {}

  expected<field_result> parse() {
    field_result r;
    if (text_.empty()) return fail("", "is empty: write * or a value in " + range());
    r.star = text_.front() == '*' || (f_.question_mark && text_ == "?");
    size_t i = 0;
    while (i <= text_.size()) {
      size_t end = text_.find(',', i);
      if (end == std::string_view::npos) end = text_.size();
      std::string_view item = text_.substr(i, end - i);
      if (item.empty()) return fail("", "has an empty list item: remove the extra comma");
      auto bits = parse_item(item);
      if (!bits) return bits.error();
      r.bits |= *bits;
      i = end + 1;
    }
    if (&f_ == &k_dow && (r.bits & (1u << 7))) r.bits = (r.bits & 0x7f) | 1u;  // 7 is Sunday
    return r;
  }

 private:
  std::string range() const { return f_.range_text; }

  error fail(std::string_view token, const std::string& what) const {
    std::string m = std::string(f_.name) + " field \"" + std::string(text_) + "\": ";
    if (!token.empty() && token != text_) m += std::string(token) + " ";
    return invalid(m + what);
  }

  expected<int> value(std::string_view v) const {
    if (v.empty())
      return fail("", "has a range with a missing bound: write it as a-b, e.g. " +
                          std::to_string(f_.min) + "-" + std::to_string(f_.max));
    bool digits = true;
    for (char c : v)
      digits = digits && c >= '0' && c <= '9';
    if (digits) {
      if (v.size() > 4) return fail(v, "must be " + range());
      int n = 0;
      for (char c : v)
        n = n * 10 + (c - '0');
      if (n < f_.min || n > f_.max) return fail(v, "must be " + range());
      return n;
    }
    if (f_.names) {
      for (size_t k = 0; k < f_.names->size(); ++k) {
        const char* name = (*f_.names)[k];
        if (name && iequals(v, name)) return f_.min + static_cast<int>(k);
      }
    }
    for (char c : v) {
      if (c == 'L' || c == 'W' || c == '#') {
        return fail(v, "uses L, W or #, which are not supported: use " + range());
      }
    }
    if (v == "?") return fail(v, "is only allowed in the day-of-month and day-of-week fields");
    if (v == "*") return fail(v, "cannot be part of a range: write * alone or a-b");
    return fail(v, std::string("is not a ") + (f_.names ? "number or name" : "number") +
                       ": must be " + range());
  }

  expected<uint64_t> parse_item(std::string_view item) const {
    std::string_view range_part = item;
    int step = 1;
    bool has_step = false;
    if (size_t slash = item.find('/'); slash != std::string_view::npos) {
      range_part = item.substr(0, slash);
      std::string_view st = item.substr(slash + 1);
      has_step = true;
      if (st.empty() || st.size() > 4 ||
          st.find_first_not_of("0123456789") != std::string_view::npos) {
        return fail(item, "has a step that is not a number: write e.g. */5");
      }
      step = 0;
      for (char c : st)
        step = step * 10 + (c - '0');
      if (step == 0) return fail(item, "has step 0: a step must be at least 1, e.g. */5");
      int span = (&f_ == &k_dow ? 7 : f_.max - f_.min + 1);
      if (step > span) {
        return fail(item, "has step " + std::to_string(step) + ", larger than the field's " +
                              std::to_string(span) + " values: use a single value instead");
      }
    }
    int lo = f_.min;
    int hi = (&f_ == &k_dow) ? 6 : f_.max;
    if (range_part.empty()) {
      return fail(item, "needs a value or * before the step, e.g. */5");
    }
    if (range_part == "*" || (f_.question_mark && range_part == "?")) {
      // the whole range
    } else if (size_t dash = range_part.find('-'); dash != std::string_view::npos) {
      auto a = value(range_part.substr(0, dash));
      if (!a) return a.error();
      auto b = value(range_part.substr(dash + 1));
      if (!b) return b.error();
      lo = *a;
      hi = *b;
      if (lo > hi) {
        return fail(item,
                    "is a range that ends before it starts: ranges do not wrap, write "
                    "two items instead, e.g. " +
                        std::to_string(lo) + "-" + std::to_string(f_.max) + "," +
                        std::to_string(f_.min) + "-" + std::to_string(hi));
      }
    } else {
      auto a = value(range_part);
      if (!a) return a.error();
      lo = *a;
      hi = has_step ? f_.max : *a;  // "5/15" means 5-max/15, as in Vixie cron
    }
    uint64_t bits = 0;
    for (int v = lo; v <= hi; v += step)
      bits |= uint64_t{1} << v;
    return bits;
  }

  const field_def& f_;
  std::string_view text_;
};

// Go's time.ParseDuration, restricted to what a schedule needs: positive, whole seconds.
expected<seconds> parse_go_duration(std::string_view text) {
  auto bad = [&](const std::string& what) {
    return invalid("@every \"" + std::string(text) + "\": " + what +
                   "; write a Go duration such as 90s, 5m or 1h30m");
  };
  if (text.empty()) return bad("needs a duration");
  if (text.front() == '-') return bad("must be positive");
  if (text.front() == '+') text.remove_prefix(1);
  // Nanoseconds in 128 bits, so huge inputs are caught instead of wrapping.
  __int128 total = 0;
  constexpr __int128 k_max = static_cast<__int128>(std::numeric_limits<int64_t>::max());
  size_t i = 0;
  if (text == "0") return bad("must be at least 1s");
  while (i < text.size()) {
    size_t b = i;
    __int128 whole = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      whole = whole * 10 + (text[i] - '0');
      if (whole > k_max) return bad("is too large");
      ++i;
    }
    bool had_digits = i > b;
    __int128 frac = 0, scale = 1;
    if (i < text.size() && text[i] == '.') {
      ++i;
      size_t fb = i;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        if (scale < static_cast<__int128>(1'000'000'000'000'000'000LL)) {
          frac = frac * 10 + (text[i] - '0');
          scale *= 10;
        }
        ++i;
      }
      had_digits = had_digits || i > fb;
    }
    if (!had_digits) return bad("expected a number at \"" + std::string(text.substr(b)) + "\"");
    size_t ub = i;
    while (i < text.size() && !(text[i] >= '0' && text[i] <= '9') && text[i] != '.')
      ++i;
    std::string_view unit = text.substr(ub, i - ub);
    __int128 ns;
    if (unit.empty()) {
      return bad("is missing a unit after \"" + std::string(text.substr(b, i - b)) +
                 "\" (h, m, s, ms, us or ns)");
    } else if (unit == "ns") {
      ns = 1;
    } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {
      ns = 1'000;
    } else if (unit == "ms") {
      ns = 1'000'000;
    } else if (unit == "s") {
      ns = 1'000'000'000;
    } else if (unit == "m") {
      ns = 60'000'000'000;
    } else if (unit == "h") {
      ns = 3'600'000'000'000;
    } else {
      return bad("has unknown unit \"" + std::string(unit) + "\" (use h, m, s, ms, us or ns)");
    }
    total += whole * ns + frac * ns / scale;
    if (total > k_max) return bad("is too large");
  }
  if (total < 1'000'000'000) return bad("must be at least 1s");
  if (total % 1'000'000'000 != 0) return bad("must be a whole number of seconds");
  return seconds(static_cast<int64_t>(total / 1'000'000'000));
}

struct civil {
  int y;
  unsigned m, d;
  int64_t hour, minute, second;
  int64_t days;  // since the epoch
};

civil breakdown(int64_t wall) {
  int64_t dn = floor_div(wall, k_day);
  int64_t sod = wall - dn * k_day;
  std::chrono::year_month_day ymd{std::chrono::sys_days(std::chrono::days(dn))};
  return {static_cast<int>(ymd.year()),
          static_cast<unsigned>(ymd.month()),
          static_cast<unsigned>(ymd.day()),
          static_cast<int>(sod / 3600),
          static_cast<int>(sod / 60 % 60),
          static_cast<int>(sod % 60),
          dn};
}

int64_t days_from_civil(int y, unsigned m, unsigned d) {
  using namespace std::chrono;
  return sys_days(year(y) / month(m) / day(d)).time_since_epoch().count();
}

// Smallest set bit >= pos, or -1.
int next_bit(uint64_t mask, int pos) {
  if (pos >= 64) return -1;
  uint64_t m = mask >> pos;
  return m == 0 ? -1 : pos + std::countr_zero(m);
}

// Largest set bit <= pos, or -1.
int prev_bit(uint64_t mask, int pos) {
  if (pos < 0) return -1;
  uint64_t m = pos >= 63 ? mask : mask & ((uint64_t{1} << (pos + 1)) - 1);
  return m == 0 ? -1 : 63 - std::countl_zero(m);
}

time_point to_tp(int64_t s) {
  return time_point(std::chrono::seconds(s));
}

int64_t floor_seconds(time_point t) {
  return std::chrono::floor<seconds>(t.time_since_epoch()).count();
}

}  // namespace

// ---- parsing ------------------------------------------------------------------------------

class parser {
 public:
  static expected<schedule> parse(std::string_view spec, parse_options opts) {
    schedule s;
    std::string_view rest = trim(spec);
    s.spec_ = std::string(rest);
    if (rest.empty()) {
      if (opts.allow_seconds) {
        return invalid(
            "cron schedule is empty: write 5 or 6 fields ([second] minute hour day-of-month "
            "month day-of-week) such as \"0 30 * * * *\", or a macro such as \"@every 1m\"");
      }
      return invalid(
          "cron schedule is empty: write 5 fields (minute hour day-of-month month "
          "day-of-week) such as \"0 3 * * *\", or a macro such as \"@daily\"");
    }
    for (std::string_view prefix : {std::string_view("CRON_TZ="), std::string_view("TZ=")}) {
      if (rest.substr(0, prefix.size()) != prefix) continue;
      size_t end = rest.find_first_of(" \t\n\r\v\f");
      std::string_view zone =
          rest.substr(prefix.size(),
                      end == std::string_view::npos ? std::string_view::npos : end - prefix.size());
      std::string p(prefix.substr(0, prefix.size() - 1));
      if (zone.empty()) {
        std::string m = p;
        m += "= needs a time zone name, e.g. \"";
        m += p;
        m += "=Europe/Berlin 0 3 * * *\"";
        return invalid(std::move(m));
      }
      if (!tz::zone::valid_name(zone)) {
        return invalid(p + "=" + std::string(zone) +
                       ": not a valid IANA time zone name; use e.g. \"Europe/Berlin\"");
      }
      s.time_zone_ = std::string(zone);
      rest = end == std::string_view::npos ? std::string_view() : trim(rest.substr(end));
      if (rest.empty()) {
        std::string with_zone = p + "=" + std::string(zone);
        std::string m = with_zone;
        m += " must be followed by a schedule, e.g. \"";
        m += with_zone;
        m += " 0 3 * * *\"";
        return invalid(std::move(m));
      }
      break;
    }
    auto fields = split_blanks(rest);
    if (fields[0].front() == '@') return parse_macro(std::move(s), fields);
    const bool six = opts.allow_seconds && fields.size() == 6;
    if (fields.size() != 5 && !six) {
      std::string m = "cron schedule \"" + std::string(rest) + "\" has " +
                      std::to_string(fields.size()) + (fields.size() == 1 ? " field" : " fields");
      if (opts.allow_seconds) {
        m += ", expected 5 or 6 ([second] minute hour day-of-month month day-of-week)";
        if (fields.size() == 7) m += "; a year field is not supported";
        return invalid(m + ": write e.g. \"*/15 * * * * *\" or \"0 30 * * * *\"");
      }
      m += ", expected 5 (minute hour day-of-month month day-of-week)";
      if (fields.size() == 6) {
        // The likely cause is a robfig/cron or Quartz schedule pasted into a policy.
        m += "; a seconds field is not allowed here (Kubernetes CronJob syntax has five fields)";
      } else if (fields.size() == 7) {
        m += "; seconds and year fields are not supported";
      }
      return invalid(m + ": write e.g. \"*/15 * * * *\" or \"0 3 * * MON-FRI\"");
    }
    return parse_fields(std::move(s), std::move(fields));
  }

 private:
  // Five fields, or six with a leading second field.
  static expected<schedule> parse_fields(schedule s, std::vector<std::string_view> f) {
    if (f.size() == 6) {
      auto sec = field_parser(k_second, f[0]).parse();
      if (!sec) return sec.error();
      s.seconds_ = sec->bits;
      s.seconds_field_ = true;
      f.erase(f.begin());
    }
    auto mi = field_parser(k_minute, f[0]).parse();
    if (!mi) return mi.error();
    auto h = field_parser(k_hour, f[1]).parse();
    if (!h) return h.error();
    auto dom = field_parser(k_dom, f[2]).parse();
    if (!dom) return dom.error();
    auto mo = field_parser(k_month, f[3]).parse();
    if (!mo) return mo.error();
    auto dow = field_parser(k_dow, f[4]).parse();
    if (!dow) return dow.error();
    s.minutes_ = mi->bits;
    s.hours_ = static_cast<uint32_t>(h->bits);
    s.days_ = static_cast<uint32_t>(dom->bits);
    s.months_ = static_cast<uint16_t>(mo->bits);
    s.weekdays_ = static_cast<uint8_t>(dow->bits);
    s.days_star_ = dom->star;
    s.weekdays_star_ = dow->star;
    return s;
  }

  static expected<schedule> parse_macro(schedule s, const std::vector<std::string_view>& f) {
    std::string_view m = f[0];
    if (iequals(m, "@every")) {
      if (f.size() != 2) {
        return invalid("@every needs exactly one duration, e.g. \"@every 1h30m\"");
      }
      auto d = parse_go_duration(f[1]);
      if (!d) return d.error();
      s.every_ = *d;
      return s;
    }
    struct macro {
      const char* name;
      const char* fields;
    };
    static constexpr std::array<macro, 7> k_macros = {{{"@yearly", "0 0 1 1 *"},
                                                       {"@annually", "0 0 1 1 *"},
                                                       {"@monthly", "0 0 1 * *"},
                                                       {"@weekly", "0 0 * * 0"},
                                                       {"@daily", "0 0 * * *"},
                                                       {"@midnight", "0 0 * * *"},
                                                       {"@hourly", "0 * * * *"}}};
    for (const auto& k : k_macros) {
      if (!iequals(m, k.name)) continue;
      if (f.size() != 1) {
        return invalid(std::string(k.name) + " takes no arguments: write \"" + k.name +
                       "\" alone or use 5 fields");
      }
      return parse_fields(std::move(s), split_blanks(k.fields));
    }
    return invalid("unknown cron macro \"" + std::string(m) +
                   "\": use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly "
                   "or @every <duration>");
  }
};

expected<schedule> schedule::parse(std::string_view spec, parse_options opts) {
  return parser::parse(spec, opts);
}

schedule schedule::with_anchor(time_point anchor) const {
  schedule s = *this;
  s.anchor_ = to_tp(floor_seconds(anchor));
  return s;
}

// ---- search -------------------------------------------------------------------------------

struct search {
  const schedule& s;

  bool day_matches(const civil& c) const {
    bool dom = (s.days_ >> c.d) & 1u;
    unsigned wd =
        std::chrono::weekday(std::chrono::sys_days(std::chrono::days(c.days))).c_encoding();
    bool dow = (s.weekdays_ >> wd) & 1u;
    if (s.days_star_ || s.weekdays_star_) return dom && dow;
    return dom || dow;
  }

  bool matches(int64_t wall) const {
    civil c = breakdown(wall);
    return ((s.months_ >> c.m) & 1u) && day_matches(c) && ((s.hours_ >> c.hour) & 1u) &&
           ((s.minutes_ >> c.minute) & 1u) && ((s.seconds_ >> c.second) & 1u);
  }

  // First matching wall second in [from, end), skipping whole months, days, hours and minutes.
  std::optional<int64_t> next_wall(int64_t from, int64_t end) const {
    while (from < end) {
      civil c = breakdown(from);
      if (!((s.months_ >> c.m) & 1u)) {
        int m = next_bit(s.months_, static_cast<int>(c.m) + 1);
        int y = c.y;
        if (m < 0) {
          ++y;
          m = next_bit(s.months_, 1);
        }
        from = days_from_civil(y, static_cast<unsigned>(m), 1) * k_day;
        continue;
      }
      if (!day_matches(c)) {
        from = (c.days + 1) * k_day;
        continue;
      }
      if (!((s.hours_ >> c.hour) & 1u)) {
        int64_t h = next_bit(s.hours_, static_cast<int>(c.hour) + 1);
        from = h < 0 ? (c.days + 1) * k_day : c.days * k_day + h * 3600;
        continue;
      }
      if (!((s.minutes_ >> c.minute) & 1u)) {
        int64_t mi = next_bit(s.minutes_, static_cast<int>(c.minute) + 1);
        from = c.days * k_day + c.hour * 3600 + (mi < 0 ? 3600 : mi * 60);
        continue;
      }
      if (!((s.seconds_ >> c.second) & 1u)) {
        int64_t se = next_bit(s.seconds_, static_cast<int>(c.second) + 1);
        from = c.days * k_day + c.hour * 3600 + c.minute * 60 + (se < 0 ? 60 : se);
        continue;
      }
      return from;
    }
    return std::nullopt;
  }

  // Last matching wall second in [begin, from]. Jumps land on the last second of the span
  // before the one that did not match.
  std::optional<int64_t> prev_wall(int64_t from, int64_t begin) const {
    while (from >= begin) {
      civil c = breakdown(from);
      if (!((s.months_ >> c.m) & 1u)) {
        int m = prev_bit(s.months_, static_cast<int>(c.m) - 1);
        int y = c.y;
        if (m < 1) {
          --y;
          m = prev_bit(s.months_, 12);
        }
        // Last second of month m: one second before the first day of the month after it.
        int ny = m == 12 ? y + 1 : y;
        unsigned nm = m == 12 ? 1u : static_cast<unsigned>(m + 1);
        from = days_from_civil(ny, nm, 1) * k_day - 1;
        continue;
      }
      if (!day_matches(c)) {
        from = c.days * k_day - 1;
        continue;
      }
      if (!((s.hours_ >> c.hour) & 1u)) {
        int64_t h = prev_bit(s.hours_, static_cast<int>(c.hour) - 1);
        from = h < 0 ? c.days * k_day - 1 : c.days * k_day + h * 3600 + 3599;
        continue;
      }
      if (!((s.minutes_ >> c.minute) & 1u)) {
        int64_t mi = prev_bit(s.minutes_, static_cast<int>(c.minute) - 1);
        from = c.days * k_day + c.hour * 3600 + (mi < 0 ? -1 : mi * 60 + 59);
        continue;
      }
      if (!((s.seconds_ >> c.second) & 1u)) {
        int64_t se = prev_bit(s.seconds_, static_cast<int>(c.second) - 1);
        from = c.days * k_day + c.hour * 3600 + c.minute * 60 + (se < 0 ? -1 : se);
        continue;
      }
      return from;
    }
    return std::nullopt;
  }

  // Segments are maximal spans of constant UTC offset. Within one, wall time is UTC plus a
  // constant, so the calendar search runs on wall time and maps back exactly; wall times in a
  // spring-forward gap belong to no segment and so never fire. Wall times of a fall-back
  // repeat belong to two segments: the second one is skipped unless every hour fires.
  std::optional<int64_t> repeat_end(int64_t seg_begin, int64_t off, const tz::zone& z) const {
    if (s.every_hour()) return std::nullopt;
    int64_t prev = z.offset_at(tz::sys_seconds(seconds(seg_begin - 1))).count();
    if (prev <= off) return std::nullopt;
    return seg_begin + prev;  // wall times below this were already shown before seg_begin
  }

  std::optional<int64_t> next(int64_t t, const tz::zone& z) const {
    const int64_t limit = t + k_horizon;
    int64_t x = t + 1;
    auto pb = z.prev_transition(tz::sys_seconds(seconds(x)));
    std::optional<int64_t> seg_begin;
    if (pb) seg_begin = pb->time_since_epoch().count();
    for (;;) {
      int64_t off = z.offset_at(tz::sys_seconds(seconds(x))).count();
      auto ne = z.next_transition(tz::sys_seconds(seconds(x)));
      int64_t seg_end = ne ? std::min(ne->time_since_epoch().count(), limit) : limit;
      int64_t wall_from = x + off;
      if (seg_begin) {
        if (auto r = repeat_end(*seg_begin, off, z)) wall_from = std::max(wall_from, *r);
      }
      if (auto w = next_wall(wall_from, seg_end + off)) return *w - off;
      if (seg_end >= limit) return std::nullopt;
      seg_begin = seg_end;
      x = seg_end;
    }
  }

  std::optional<int64_t> prev(int64_t t, const tz::zone& z) const {
    const int64_t limit = t - k_horizon;
    int64_t x = t;
    for (;;) {
      int64_t off = z.offset_at(tz::sys_seconds(seconds(x))).count();
      auto pb = z.prev_transition(tz::sys_seconds(seconds(x)));
      int64_t seg_begin = pb ? std::max(pb->time_since_epoch().count(), limit) : limit;
      int64_t lower = seg_begin + off;
      if (pb && pb->time_since_epoch().count() > limit) {
        if (auto r = repeat_end(seg_begin, off, z)) lower = std::max(lower, *r);
      }
      if (auto w = prev_wall(x + off, lower)) return *w - off;
      if (seg_begin <= limit) return std::nullopt;
      x = seg_begin - 1;
    }
  }
};

bool schedule::matches(tz::local_seconds wall) const {
  if (is_every()) return false;
  return search{*this}.matches(wall.time_since_epoch().count());
}

std::optional<time_point> next_after(const schedule& s, time_point t, const tz::zone& zone) {
  if (s.is_every()) {
    auto d = std::chrono::duration_cast<time_point::duration>(s.every());
    auto k = floor_div((t - s.anchor()).count(), d.count()) + 1;
    return s.anchor() + d * k;
  }
  auto r = search{s}.next(floor_seconds(t), zone);
  if (!r) return std::nullopt;
  return to_tp(*r);
}

std::optional<time_point> last_at_or_before(const schedule& s, time_point t, const tz::zone& zone) {
  if (s.is_every()) {
    auto d = std::chrono::duration_cast<time_point::duration>(s.every());
    auto k = floor_div((t - s.anchor()).count(), d.count());
    return s.anchor() + d * k;
  }
  auto r = search{s}.prev(floor_seconds(t), zone);
  if (!r) return std::nullopt;
  return to_tp(*r);
}

decision decide(const schedule& s, const tz::zone& zone, time_point last_scheduled_time,
                time_point now, std::optional<std::chrono::seconds> starting_deadline) {
  decision d;
  d.next = next_after(s, now, zone);
  auto latest = last_at_or_before(s, now, zone);
  if (!latest || *latest <= last_scheduled_time) return d;
  d.scheduled_time = *latest;
  // Count what was missed, for events and metrics; only the latest fire can run.
  if (s.is_every()) {
    auto per = std::chrono::duration_cast<time_point::duration>(s.every()).count();
    int64_t n = floor_div((*latest - s.anchor()).count(), per) -
                floor_div((last_scheduled_time - s.anchor()).count(), per);
    d.missed = static_cast<int>(std::min<int64_t>(n, k_max_missed_counted));
  } else {
    time_point x = last_scheduled_time;
    while (d.missed < k_max_missed_counted) {
      auto f = next_after(s, x, zone);
      if (!f || *f > *latest) break;
      ++d.missed;
      x = *f;
    }
  }
  d.too_late = starting_deadline && now - *latest > *starting_deadline;
  d.run_now = !d.too_late;
  return d;
}

expected<tz::zone> zone_for(const schedule& s, std::string_view time_zone_field,
                            const std::filesystem::path& root) {
  if (!time_zone_field.empty() && !s.time_zone().empty() && time_zone_field != s.time_zone()) {
    return invalid("time zone given twice: timeZone \"" + std::string(time_zone_field) +
                   "\" and \"" + s.time_zone() +
                   "\" in the schedule's CRON_TZ=/TZ= prefix; keep only timeZone");
  }
  std::string_view name = !time_zone_field.empty() ? time_zone_field : s.time_zone();
  if (name.empty()) return tz::zone::utc();
  return tz::zone::load(name, root);
}

}  // namespace tidesync::cron
