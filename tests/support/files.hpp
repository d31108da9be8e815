// File-tree helpers for the tests: a temporary directory, deterministic payloads, write/read,
// and a tree snapshot to compare two directories byte for byte.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace tidesync::test {

// The repository root (this file is tests/support/files.hpp), for tests that read what ships.
inline std::filesystem::path source_dir() {
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

// A directory under /tmp made with mkdtemp (`prefix` names it), removed with everything in it
// when it goes out of scope.
class temp_dir {
 public:
  explicit temp_dir(const std::string& prefix = "tidesync-test") {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// `n` pseudo-random bytes (xorshift), the same for the same seed.
inline std::string payload(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return s;
}

// Writes `data` to `p`, creating the parent directories.
inline void write_file(const std::filesystem::path& p, const std::string& data) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Relative path -> content ("<dir>" for directories).
inline std::map<std::string, std::string> tree(const std::filesystem::path& root) {
  std::map<std::string, std::string> out;
  if (!std::filesystem::exists(root)) return out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    const auto rel = std::filesystem::relative(e.path(), root).string();
    out[rel] = e.is_directory() ? "<dir>" : read_file(e.path());
  }
  return out;
}

// Files only (directories left out): for trees whose empty directories a backend drops.
inline std::map<std::string, std::string> files(const std::filesystem::path& root) {
  auto t = tree(root);
  for (auto it = t.begin(); it != t.end();) {
    it = it->second == "<dir>" ? t.erase(it) : std::next(it);
  }
  return t;
}

}  // namespace tidesync::test
