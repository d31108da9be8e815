// Revision names of config bundles and the latest.json pointer that names the current one.
//
// Pure functions: no I/O. A revision is the UTC second it was published,
// "2026-02-05T10-30-00Z", so byte order is time order. When that seed is not strictly greater
// than the previous revision (two publishes in one second, or the clock went back), the
// previous revision gets a counter instead:
//   - previous ends in "-dddd" (4 digits) below 9999: that counter + 1, same length
//     ("...Z-0001" -> "...Z-0002");
//   - otherwise: previous + "-0001" ("...Z" -> "...Z-0001", "...Z-9999" -> "...Z-9999-0001").
// A string sorts after its own prefix, and a same-length counter increment sorts after the
// old counter, so the result is always strictly greater than `previous`; a later second sorts
// after every suffixed revision of an earlier second because the seconds digits differ first.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "runtime/error.hpp"

namespace tidesync::archive {

// True when `rev` may name a revision (and so a directory): 1..128 characters from
// [0-9A-Za-z._-], and not "." or "..".
bool valid_revision(std::string_view rev);

// The next revision after `previous` (empty when there is none) for a publish at `now`; see
// the rule above. The result is strictly greater than `previous` in byte order.
std::string make_revision(std::chrono::system_clock::time_point now, std::string_view previous);

// The content of <prefix>/<owner>/latest.json.
struct latest {
  std::string revision;  // a valid_revision() name
  std::string checksum;  // "sha256:" + 64 lower-case hex digits of the .tar.zst
  std::chrono::sys_seconds updated_at{};

  friend bool operator==(const latest&, const latest&) = default;
};

// Parses latest.json; each missing or malformed field is an error naming the field. Unknown
// fields are ignored so newer writers can add some.
expected<latest> parse_latest(std::string_view json_text);

// Serialises `l` as latest.json (compact JSON with a trailing newline).
std::string render_latest(const latest& l);

// True when `checksum` is "sha256:" followed by 64 lower-case hex digits.
bool valid_checksum(std::string_view checksum);

}  // namespace tidesync::archive
