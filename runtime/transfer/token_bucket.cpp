#include "runtime/transfer/token_bucket.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>

namespace tidesync::transfer {

token_bucket::token_bucket(double rate, uint64_t burst)
    : rate_(rate), burst_(burst > 0 ? static_cast<double>(burst) : rate) {}

std::chrono::nanoseconds token_bucket::reserve(clock::time_point now, uint64_t bytes) {
  std::lock_guard lock(mu_);
  const auto burst_time = std::chrono::duration<double>(burst_ / rate_);
  // With no debt, the bucket is full: free_at_ is `burst_time` ago at most.
  auto earliest = now - std::chrono::duration_cast<clock::duration>(burst_time);
  clock::time_point start = free_at_ ? std::max(*free_at_, earliest) : earliest;
  start += std::chrono::duration_cast<clock::duration>(
      std::chrono::duration<double>(static_cast<double>(bytes) / rate_));
  free_at_ = start;
  if (start <= now) return std::chrono::nanoseconds(0);
  return std::chrono::duration_cast<std::chrono::nanoseconds>(start - now);
}

void token_bucket::take(uint64_t bytes) {
  const auto wait = reserve(clock::now(), bytes);
  if (wait.count() > 0) std::this_thread::sleep_for(wait);
}

expected<uint64_t> parse_size(std::string_view text) {
  auto bad = [&] {
    return make_error(errc::invalid_argument,
                      "\"" + std::string(text) +
                          "\" is not a size: want a number with an optional suffix K, M, G, T "
                          "(powers of 1024), e.g. 10M, 1.5G, 512K, or off");
  };
  std::string s(text);
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "off") return uint64_t{0};
  if (s.size() > 2 && s.compare(s.size() - 2, 2, "/s") == 0) s.resize(s.size() - 2);
  if (s.empty()) return bad();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end == s.c_str() || !std::isfinite(v) || v < 0) return bad();
  std::string suffix(end);
  // rclone's SizeSuffix: a bare number is KiB ("--bwlimit 512" is 512 KiB/s); "B" is bytes.
  if (suffix == "b") return static_cast<uint64_t>(v);
  if (suffix.empty()) suffix = "k";
  if (suffix.size() == 3 && suffix.compare(1, 2, "ib") == 0) suffix.resize(1);
  if (suffix.size() == 2 && suffix[1] == 'i') suffix.resize(1);
  if (suffix.size() != 1) return bad();
  static const std::string units = "kmgtp";
  const auto pos = units.find(suffix[0]);
  if (pos == std::string::npos) return bad();
  const double mult = std::pow(1024.0, static_cast<double>(pos + 1));
  const double bytes = v * mult;
  if (bytes > 9.0e18) return bad();
  return static_cast<uint64_t>(bytes);
}

}  // namespace tidesync::transfer
