#include "runtime/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <mutex>

namespace tidesync::log {
namespace {

std::mutex mu;

spdlog::level::level_enum& current_level() {
  static spdlog::level::level_enum lvl = [] {
    const char* env = std::getenv("TIDESYNC_LOG_LEVEL");
    if (env != nullptr) {
      auto l = spdlog::level::from_str(env);
      if (l != spdlog::level::off || std::string(env) == "off") return l;
    }
    return spdlog::level::info;
  }();
  return lvl;
}

std::shared_ptr<spdlog::sinks::stderr_color_sink_mt> shared_sink() {
  static auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  return sink;
}

}  // namespace

std::shared_ptr<spdlog::logger> get(const std::string& subsystem) {
  std::lock_guard<std::mutex> guard(mu);
  if (auto existing = spdlog::get(subsystem)) return existing;
  auto logger = std::make_shared<spdlog::logger>(subsystem, shared_sink());
  logger->set_level(current_level());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  spdlog::register_logger(logger);
  return logger;
}

bool set_level(const std::string& level) {
  auto l = spdlog::level::from_str(level);
  if (l == spdlog::level::off && level != "off") return false;
  std::lock_guard<std::mutex> guard(mu);
  current_level() = l;
  spdlog::apply_all([l](const std::shared_ptr<spdlog::logger>& lg) { lg->set_level(l); });
  return true;
}

}  // namespace tidesync::log
