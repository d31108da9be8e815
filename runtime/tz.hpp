// Time zones for cron schedules: IANA zones read from TZif files, UTC and fixed offsets.
//
// GCC 12's libstdc++ has no std::chrono::tzdb, so this reads the compiled zone files itself
// (RFC 8536: TZif v1, v2, v3 and v4, the 64-bit section when present) including the POSIX TZ
// string in the footer, which gives the rules for times after the last listed transition
// (e.g. Europe/Berlin in 2100). A `zone` is immutable and cheap to copy (shared data); no
// global state, no setenv("TZ"), no thread-unsafe libc calls.
//
// Files come from `/usr/share/zoneinfo` (Debian package `tzdata`) unless a caller passes
// another root (tests do). "UTC", "Etc/UTC", "GMT", "Etc/GMT±N" work without any file.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/error.hpp"

namespace tidesync::tz {

using sys_seconds = std::chrono::sys_seconds;
using local_seconds = std::chrono::local_seconds;

// Where zone files are looked up unless the caller says otherwise.
inline constexpr std::string_view default_root = "/usr/share/zoneinfo";

// The local time type in effect at an instant.
struct zone_info {
  std::chrono::seconds offset{0};  // local = UTC + offset
  bool is_dst = false;
  std::string abbreviation;  // "CEST", "+1245", "UTC"
};

// How a local (wall-clock) time maps back to UTC.
struct local_result {
  enum class kind {
    unique,       // exactly one instant: `first`
    nonexistent,  // skipped by a forward jump (spring forward); `first` is the instant the gap
                  // starts at, i.e. where the clock jumps
    ambiguous,    // happens twice (fall back): `first` (earlier offset) and `second`
  };
  kind result = kind::unique;
  sys_seconds first{};
  sys_seconds second{};
};

class zone {
 public:
  // UTC. A default-constructed zone is UTC too.
  zone();
  static zone utc();

  // A zone with a constant offset (east of Greenwich is positive). The name defaults to
  // "UTC+05:30"-style text.
  static zone fixed(std::chrono::seconds offset, std::string name = {});

  // Loads the IANA zone `name` ("Europe/Berlin") from `root`. Names are checked before any file
  // is touched: only [A-Za-z0-9._+-] components separated by '/', no "." or ".." component, not
  // absolute. Errors: invalid_argument for a malformed name, not_found for an unknown zone,
  // parse_error for a damaged file.
  static expected<zone> load(std::string_view name, const std::filesystem::path& root =
                                                        std::filesystem::path(default_root));

  // Parses TZif bytes (the content of a zone file).
  static expected<zone> from_tzif(std::string_view bytes, std::string name);

  // A zone given by a POSIX TZ string, e.g. "CET-1CEST,M3.5.0,M10.5.0/3" or "<+1245>-12:45".
  static expected<zone> from_posix(std::string_view tz_string);

  // True when `name` is syntactically a zone name load() would try (no path traversal).
  static bool valid_name(std::string_view name);

  [[nodiscard]] const std::string& name() const;

  [[nodiscard]] zone_info info_at(sys_seconds t) const;
  [[nodiscard]] std::chrono::seconds offset_at(sys_seconds t) const;
  [[nodiscard]] local_seconds to_local(sys_seconds t) const;
  [[nodiscard]] local_result to_sys(local_seconds t) const;

  // The first instant strictly after `t` at which the UTC offset changes (nullopt: never again).
  [[nodiscard]] std::optional<sys_seconds> next_transition(sys_seconds t) const;
  // The last instant at or before `t` at which the UTC offset changed (nullopt: never before).
  [[nodiscard]] std::optional<sys_seconds> prev_transition(sys_seconds t) const;

  struct data;  // defined in tz.cpp

 private:
  explicit zone(std::shared_ptr<const data> d);
  std::shared_ptr<const data> d_;
};

}  // namespace tidesync::tz
