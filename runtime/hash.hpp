// FNV-1a 64: the stable, dependency-free hash behind names that must be the same in every
// process and release (Job names, lock Lease names, policy run names). Never change it: a
// different hash renames objects a running controller must find again.
#pragma once

#include <cstdint>
#include <string_view>

namespace tidesync {

constexpr uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 14695981039346656037ULL;  // offset basis
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;  // prime
  }
  return h;
}

static_assert(fnv1a64("") == 14695981039346656037ULL);
static_assert(fnv1a64("a") == 0xaf63dc4c8601ec8cULL);  // the published FNV-1a test vector

}  // namespace tidesync
