// Plain data the config owner actors exchange (docs/sharedconfig.md, "The writer"). No CAF here:
// the `inspect` functions live in actors/type_ids.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "runtime/archive/revision.hpp"
#include "runtime/error.hpp"

namespace tidesync::actors {

// An owner actor's answer to `publish` and `poll`.
struct config_reply {
  bool ok = true;    // false: `code` and `message` say what failed
  int32_t code = 0;  // tidesync::errc when !ok
  std::string message;
  bool conflict = false;    // publish: the expected revision was not the current one
  bool has_latest = false;  // a latest.json exists (revision, checksum, updated_at)
  std::string revision;
  std::string checksum;
  int64_t updated_at = 0;  // seconds since the epoch

  [[nodiscard]] std::optional<archive::latest> latest() const {
    if (!has_latest) return std::nullopt;
    return archive::latest{revision, checksum,
                           std::chrono::sys_seconds{std::chrono::seconds{updated_at}}};
  }
  void set_latest(const std::optional<archive::latest>& l) {
    has_latest = l.has_value();
    revision = l ? l->revision : std::string{};
    checksum = l ? l->checksum : std::string{};
    updated_at = l ? l->updated_at.time_since_epoch().count() : 0;
  }
  static config_reply failure(const error& e) {
    config_reply r;
    r.ok = false;
    r.code = static_cast<int32_t>(e.code);
    r.message = e.message;
    return r;
  }
};

}  // namespace tidesync::actors
