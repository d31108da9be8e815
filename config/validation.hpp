// Helpers shared by the CRD parsers: a collector of field problems (so a user sees every
// mistake at once, not one per `kubectl apply`), typed readers over the JSON DOM, RFC 3339
// timestamps and Go durations, and Kubernetes name/label syntax checks.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::config {

using sys_seconds = std::chrono::sys_seconds;

// One thing wrong with one field. `field` is a path as Kubernetes prints it
// ("spec.sourceEnv[2].name"); `message` says what is wrong and what to write instead.
struct problem {
  std::string field;
  std::string reason;  // Kubernetes cause type: FieldValueRequired, FieldValueInvalid, ...
  std::string message;
};

// Collects problems and warnings while a parser walks a document.
class problems {
 public:
  void required(std::string field, std::string message);
  void invalid(std::string field, std::string message);
  void type(std::string field, std::string_view expected_type, const json::value& got);
  void warn(std::string message) { warnings_.push_back(std::move(message)); }

  [[nodiscard]] bool empty() const { return list_.empty(); }
  [[nodiscard]] const std::vector<problem>& list() const { return list_; }
  [[nodiscard]] const std::vector<std::string>& warnings() const { return warnings_; }
  std::vector<std::string> take_warnings() { return std::move(warnings_); }

  // errc::invalid with one cause per problem; the message lists them all, one per "; ".
  // `what` names the object, e.g. "BucketSyncPolicy default/nightly".
  [[nodiscard]] error to_error(std::string_view what) const;

 private:
  std::vector<problem> list_;
  std::vector<std::string> warnings_;
};

// "string", "integer", "object", ... for messages.
std::string_view type_name(const json::value& v);
// A short rendering of a value for messages (strings quoted, long values cut).
std::string describe(const json::value& v);

// Typed readers: a missing or null member yields nullopt; a member of the wrong type is
// reported to `p` and also yields nullopt.
std::optional<std::string> read_string(const json::value& obj, std::string_view key,
                                       const std::string& path, problems& p);
std::optional<int64_t> read_int(const json::value& obj, std::string_view key,
                                const std::string& path, problems& p);
std::optional<bool> read_bool(const json::value& obj, std::string_view key, const std::string& path,
                              problems& p);
// A timestamp member (RFC 3339). Used for status, so a bad value is a warning, not an error.
std::optional<sys_seconds> read_time(const json::value& obj, std::string_view key,
                                     const std::string& path, problems& p);

// Warns about members of `obj` not in `known` ("spec.foo: unknown field ...").
void warn_unknown_fields(const json::value& obj, const std::string& path,
                         const std::vector<std::string_view>& known, problems& p);

// json::value of a time, or null.
json::value time_or_null(const std::optional<sys_seconds>& t);

// Go's time.ParseDuration ("90s", "1h30m", "1.5h"), rounded down to whole seconds. Errors are
// plain text for a message ("needs a unit ...").
expected<std::chrono::seconds> parse_duration(std::string_view text);
// The shortest Go-style rendering of whole seconds: 5400s → "1h30m0s" is Go's; we write "1h30m".
std::string format_duration(std::chrono::seconds d);

// Kubernetes syntax checks. Each returns an empty string when valid, else what is wrong.
std::string check_dns_subdomain(std::string_view s);  // object names (Secret, ConfigMap)
std::string check_label_key(std::string_view s);
std::string check_label_value(std::string_view s);
std::string check_config_map_key(std::string_view s);  // Secret / ConfigMap data keys

}  // namespace tidesync::config
