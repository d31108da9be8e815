// RFC 3339 times as Kubernetes writes them (metav1.Time): parsing and formatting.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tidesync::rfc3339 {

using sys_seconds = std::chrono::sys_seconds;

// "2024-01-15T02:00:00Z"; fractions and ±hh:mm offsets accepted (fractions dropped).
std::optional<sys_seconds> parse(std::string_view text);
// Always UTC with a Z and whole seconds, as metav1.Time serialises.
std::string format(sys_seconds t);
// The current time, formatted.
std::string now();

}  // namespace tidesync::rfc3339
