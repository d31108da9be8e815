#include "runtime/archive/revision.hpp"

#include <cstdio>

#include "runtime/json/value.hpp"
#include "runtime/rfc3339.hpp"

namespace tidesync::archive {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// "2026-02-05T10-30-00Z": RFC 3339 with '-' for ':' so it is a portable file name.
std::string seed_revision(std::chrono::system_clock::time_point now) {
  using namespace std::chrono;
  auto secs = floor<seconds>(now);
  auto days = floor<std::chrono::days>(secs);
  year_month_day ymd{days};
  hh_mm_ss hms{secs - days};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d-%02d-%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

}  // namespace

bool valid_revision(std::string_view rev) {
  if (rev.empty() || rev.size() > 128 || rev == "." || rev == "..") return false;
  for (char c : rev) {
    bool ok = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string make_revision(std::chrono::system_clock::time_point now, std::string_view previous) {
  std::string seed = seed_revision(now);
  if (std::string_view(seed) > previous) return seed;
  std::string next(previous);
  size_t n = next.size();
  if (n >= 6 && next[n - 5] == '-' && is_digit(next[n - 4]) && is_digit(next[n - 3]) &&
      is_digit(next[n - 2]) && is_digit(next[n - 1])) {
    int counter = std::stoi(next.substr(n - 4));
    if (counter < 9999) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "%04d", counter + 1);
      next.replace(n - 4, 4, buf);
      return next;
    }
  }
  next += "-0001";
  return next;
}

bool valid_checksum(std::string_view checksum) {
  constexpr std::string_view prefix = "sha256:";
  if (checksum.size() != prefix.size() + 64 || checksum.substr(0, prefix.size()) != prefix)
    return false;
  for (char c : checksum.substr(prefix.size()))
    if (!is_digit(c) && !(c >= 'a' && c <= 'f')) return false;
  return true;
}

expected<latest> parse_latest(std::string_view json_text) {
  auto doc = json::parse(json_text);
  if (!doc)
    return make_error(errc::parse_error, "latest.json is not valid JSON (" + doc.error().message +
                                             "); re-publish the bundle to rewrite it");
  if (!doc->is_object())
    return make_error(errc::parse_error,
                      "latest.json must be a JSON object with revision, checksum and updated_at");
  auto field = [&](std::string_view name) -> expected<std::string> {
    const json::value* v = doc->at(name);
    if (v == nullptr)
      return make_error(errc::parse_error, "latest.json has no \"" + std::string(name) + "\"");
    if (!v->is_string())
      return make_error(errc::parse_error,
                        "latest.json \"" + std::string(name) + "\" must be a string");
    return v->as_string();
  };
  latest out;
  auto rev = field("revision");
  if (!rev) return rev.error();
  if (!valid_revision(*rev))
    return make_error(errc::parse_error,
                      "latest.json \"revision\" \"" + *rev +
                          "\" is not a valid revision name (1..128 characters of "
                          "[0-9A-Za-z._-], not \".\" or \"..\")");
  out.revision = std::move(*rev);
  auto sum = field("checksum");
  if (!sum) return sum.error();
  if (!valid_checksum(*sum))
    return make_error(errc::parse_error,
                      "latest.json \"checksum\" \"" + *sum +
                          "\" must be \"sha256:\" followed by 64 lower-case hex digits");
  out.checksum = std::move(*sum);
  auto at = field("updated_at");
  if (!at) return at.error();
  auto t = rfc3339::parse(*at);
  if (!t)
    return make_error(errc::parse_error, "latest.json \"updated_at\" \"" + *at +
                                             "\" is not an RFC 3339 time such as "
                                             "2026-02-05T10:30:00Z");
  out.updated_at = *t;
  return out;
}

std::string render_latest(const latest& l) {
  json::object o{{"revision", json::value(l.revision)},
                 {"checksum", json::value(l.checksum)},
                 {"updated_at", json::value(rfc3339::format(l.updated_at))}};
  std::string out = json::dump(json::value(std::move(o)));
  out.push_back('\n');
  return out;
}

}  // namespace tidesync::archive
