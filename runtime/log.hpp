// One named spdlog logger per subsystem ("apiserver", "client", "watch", ...).
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace tidesync::log {

// Returns the logger for `subsystem`, creating it on first use (thread-safe). Loggers write
// to stderr; the level comes from set_level() (default info, or TIDESYNC_LOG_LEVEL).
std::shared_ptr<spdlog::logger> get(const std::string& subsystem);

// "trace", "debug", "info", "warn", "error", "off". Unknown names return false.
bool set_level(const std::string& level);

}  // namespace tidesync::log
