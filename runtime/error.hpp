// The project's error type: a code with a transient/terminal split and a message for people.
//
// No exception crosses a module boundary: functions that can fail return `expected<T>`.
// Messages say what is wrong and, where it helps, what to do about it.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace tidesync {

enum class errc {
  invalid_argument,   // the caller's input is wrong (terminal)
  parse_error,        // malformed JSON/YAML/wire data (terminal)
  not_found,          // HTTP 404 / missing file (terminal for the request)
  already_exists,     // HTTP 409 AlreadyExists on create
  conflict,           // HTTP 409 Conflict: stale resourceVersion; re-read and retry
  gone,               // HTTP 410: resourceVersion too old; relist
  invalid,            // HTTP 422: the server rejected the object
  bad_request,        // HTTP 400
  unauthorized,       // HTTP 401
  forbidden,          // HTTP 403
  too_many_requests,  // HTTP 429 (transient)
  timeout,            // a deadline passed (transient)
  unavailable,        // connection failed, 5xx (transient)
  io_error,           // local file system (terminal unless retried by policy)
  config_error,       // kubeconfig / flags / environment (terminal)
  cancelled,          // the operation was stopped on purpose
  internal,           // a bug: please report
};

// Short stable name of a code, e.g. "conflict".
std::string_view to_string(errc code);

// The object an error is about, as a Kubernetes Status `details` names it: `kind` is the
// resource (plural, "configmaps") for NotFound/AlreadyExists/Conflict and the Kind
// ("ConfigMap") for Invalid; `group` is empty for the core group. A server sets it where it
// makes the error (so message and details cannot disagree); a client can fill it from a
// Status body's `details`.
struct error_subject {
  std::string kind;
  std::string group;
  std::string name;
};

// One field-level cause of an Invalid error (Status details.causes[]): `reason` is the cause
// type ("FieldValueInvalid", "FieldValueRequired", ...), `field` the path ("spec.schedule"),
// `message` what follows the path ("Invalid value: ...").
struct error_cause {
  std::string reason;
  std::string field;
  std::string message;
};

struct error {
  errc code = errc::internal;
  std::string message;
  // HTTP status when the error came from a server (0 otherwise) and the server's `reason`.
  int http_status = 0;
  std::string reason;
  // What the error is about, when it is about one object.
  std::optional<error_subject> subject;
  // Field-level causes (422 Invalid); empty otherwise.
  std::vector<error_cause> causes;

  // Transient errors are worth retrying with backoff; terminal ones are not.
  [[nodiscard]] bool transient() const;
  // "conflict: <message>"
  [[nodiscard]] std::string to_string() const;
};

inline error make_error(errc code, std::string message) {
  error e;
  e.code = code;
  e.message = std::move(message);
  return e;
}

// Maps an HTTP status to the error code a client should see.
errc errc_from_http_status(int status);

// A value or an error. Kept minimal on purpose (std::expected is C++23).
template <class T>
class expected {
 public:
  expected(T v) : v_(std::in_place_index<0>, std::move(v)) {}
  expected(tidesync::error e) : v_(std::in_place_index<1>, std::move(e)) {}

  [[nodiscard]] bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & {
    assert(has_value());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(has_value());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  [[nodiscard]] const tidesync::error& error() const {
    assert(!has_value());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, tidesync::error> v_;
};

// expected<void>: success or an error.
template <>
class expected<void> {
 public:
  expected() = default;
  expected(tidesync::error e) : err_(std::move(e)), ok_(false) {}
  [[nodiscard]] bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  [[nodiscard]] const tidesync::error& error() const {
    assert(!ok_);
    return err_;
  }

 private:
  tidesync::error err_;
  bool ok_ = true;
};

}  // namespace tidesync
