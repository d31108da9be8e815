// A small mutable JSON document model.
//
// simdjson is read-only, but the embedded API server and the controller need to build and
// change Kubernetes objects (set metadata, apply merge patches, write status). This type
// keeps object members in insertion order, so documents round-trip the way people wrote
// them. Parsing goes through simdjson (runtime/json/value.cpp); hot read-only paths (watch
// decoding) use simdjson directly and never build a DOM.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "runtime/error.hpp"

namespace tidesync::json {

class value;

using array = std::vector<value>;

// An ordered map from keys to values. Lookups are linear: Kubernetes objects have few keys
// per level, and order matters more than asymptotics here.
class object {
 public:
  using member = std::pair<std::string, value>;
  using iterator = std::vector<member>::iterator;
  using const_iterator = std::vector<member>::const_iterator;

  object() = default;
  object(std::initializer_list<member> members);
  // Takes members whose keys are already unique (the caller guarantees it).
  explicit object(std::vector<member>&& unique_members) : members_(std::move(unique_members)) {}

  // Returns the value for `key`, or nullptr.
  [[nodiscard]] const value* find(std::string_view key) const;
  value* find(std::string_view key);
  [[nodiscard]] bool contains(std::string_view key) const { return find(key) != nullptr; }
  // Returns the value for `key`, inserting null at the end when absent.
  value& operator[](std::string_view key);
  // Sets `key` to `v`, keeping its position when it exists.
  void set(std::string_view key, value v);
  // Removes `key`; returns whether it was there.
  bool erase(std::string_view key);

  [[nodiscard]] size_t size() const { return members_.size(); }
  [[nodiscard]] bool empty() const { return members_.empty(); }
  iterator begin() { return members_.begin(); }
  iterator end() { return members_.end(); }
  [[nodiscard]] const_iterator begin() const { return members_.begin(); }
  [[nodiscard]] const_iterator end() const { return members_.end(); }

  friend bool operator==(const object& a, const object& b);

 private:
  std::vector<member> members_;
};

enum class kind : uint8_t { null, boolean, integer, number, string, array, object };

class value {
 public:
  value() = default;
  value(std::nullptr_t) {}
  value(bool b) : v_(b) {}
  value(int i) : v_(int64_t{i}) {}
  value(int64_t i) : v_(i) {}
  value(uint32_t i) : v_(int64_t{i}) {}
  value(double d) : v_(d) {}
  value(const char* s) : v_(std::string(s)) {}
  value(std::string s) : v_(std::move(s)) {}
  value(std::string_view s) : v_(std::string(s)) {}
  value(array a) : v_(std::move(a)) {}
  value(object o) : v_(std::move(o)) {}

  [[nodiscard]] kind type() const { return static_cast<kind>(v_.index()); }
  [[nodiscard]] bool is_null() const { return type() == kind::null; }
  [[nodiscard]] bool is_bool() const { return type() == kind::boolean; }
  [[nodiscard]] bool is_int() const { return type() == kind::integer; }
  // True for integers and floating-point numbers.
  [[nodiscard]] bool is_number() const { return type() == kind::integer || type() == kind::number; }
  [[nodiscard]] bool is_string() const { return type() == kind::string; }
  [[nodiscard]] bool is_array() const { return type() == kind::array; }
  [[nodiscard]] bool is_object() const { return type() == kind::object; }

  // Checked accessors: these throw std::bad_variant_access on the wrong type. Use the
  // `get_*` helpers below when the document comes from a user.
  [[nodiscard]] bool as_bool() const { return std::get<bool>(v_); }
  [[nodiscard]] int64_t as_int() const { return std::get<int64_t>(v_); }
  [[nodiscard]] double as_double() const;
  [[nodiscard]] const std::string& as_string() const { return std::get<std::string>(v_); }
  std::string& as_string() { return std::get<std::string>(v_); }
  [[nodiscard]] const array& as_array() const { return std::get<array>(v_); }
  array& as_array() { return std::get<array>(v_); }
  [[nodiscard]] const object& as_object() const { return std::get<object>(v_); }
  object& as_object() { return std::get<object>(v_); }

  // Object member access. `at` returns nullptr when this is not an object or has no such key.
  [[nodiscard]] const value* at(std::string_view key) const;
  value* at(std::string_view key);
  // Follows a path of object keys; nullptr when any step is missing.
  [[nodiscard]] const value* at_path(std::initializer_list<std::string_view> path) const;
  value* at_path(std::initializer_list<std::string_view> path);
  // Turns this into an object when it is null, then returns the member (inserting null).
  value& operator[](std::string_view key);

  // Convenience readers with defaults for optional fields.
  [[nodiscard]] std::string_view get_string(std::string_view key,
                                            std::string_view fallback = {}) const;
  [[nodiscard]] int64_t get_int(std::string_view key, int64_t fallback = 0) const;
  [[nodiscard]] bool get_bool(std::string_view key, bool fallback = false) const;

  friend bool operator==(const value& a, const value& b);

 private:
  std::variant<std::nullptr_t, bool, int64_t, double, std::string, array, object> v_;
};

// Parses a complete JSON text. Errors name what is wrong (simdjson's message).
expected<value> parse(std::string_view text);

// Serialises compactly (no whitespace), escaping as JSON requires. Output is valid UTF-8
// when the strings are.
std::string dump(const value& v);
void dump_to(std::string& out, const value& v);
// Indented output for people (two spaces).
std::string dump_pretty(const value& v);

// Appends `s` as a quoted JSON string.
void append_quoted(std::string& out, std::string_view s);

// RFC 7386 JSON Merge Patch: returns `target` with `patch` applied.
value merge_patch(value target, const value& patch);

// RFC 6902 JSON Patch. `patch` must be an array of operations; a failed `test` or a bad
// path is an error and leaves nothing half-applied (the caller's value is not modified).
expected<value> json_patch(const value& target, const value& patch);

}  // namespace tidesync::json
