// Archives written with libarchive directly, entry by entry, for the tests of what the bundle
// unpacker refuses (path traversal, escaping links, hard links, bombs): pack_bundle never makes
// such entries.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace tidesync::test {

struct raw_entry {
  std::string path{};
  unsigned type = AE_IFREG;
  std::string data{};
  std::string symlink{};
  std::string hardlink{};
  uint64_t zero_bytes = 0;  // a file of this many zero bytes instead of `data`
};

inline raw_entry entry(std::string path, unsigned type) {
  raw_entry r;
  r.path = std::move(path);
  r.type = type;
  return r;
}
inline raw_entry file(std::string path, std::string data = "data") {
  raw_entry r = entry(std::move(path), AE_IFREG);
  r.data = std::move(data);
  return r;
}
inline raw_entry zeros(std::string path, uint64_t n) {
  raw_entry r = entry(std::move(path), AE_IFREG);
  r.zero_bytes = n;
  return r;
}
inline raw_entry dir(std::string path) {
  return entry(std::move(path), AE_IFDIR);
}
inline raw_entry link(std::string path, std::string target) {
  raw_entry r = entry(std::move(path), AE_IFLNK);
  r.symlink = std::move(target);
  return r;
}
inline raw_entry hardlink(std::string path, std::string target) {
  raw_entry r = entry(std::move(path), AE_IFREG);
  r.hardlink = std::move(target);
  return r;
}

inline void write_archive(const std::filesystem::path& out, const std::vector<raw_entry>& entries) {
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_add_filter_zstd(a);
  ASSERT_EQ(archive_write_open_filename(a, out.c_str()), ARCHIVE_OK);
  std::string zeros(1 << 20, '\0');
  for (const auto& r : entries) {
    archive_entry* e = archive_entry_new();
    archive_entry_copy_pathname(e, r.path.c_str());
    archive_entry_set_filetype(e, r.type);
    archive_entry_set_perm(e, r.type == AE_IFDIR ? 0755 : 0644);
    uint64_t size = r.type == AE_IFREG && r.hardlink.empty()
                        ? (r.zero_bytes > 0 ? r.zero_bytes : r.data.size())
                        : 0;
    archive_entry_set_size(e, static_cast<la_int64_t>(size));
    if (!r.symlink.empty()) archive_entry_copy_symlink(e, r.symlink.c_str());
    if (!r.hardlink.empty()) archive_entry_copy_hardlink(e, r.hardlink.c_str());
    ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK) << archive_error_string(a);
    if (r.zero_bytes > 0) {
      for (uint64_t left = r.zero_bytes; left > 0;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(left, zeros.size()));
        archive_write_data(a, zeros.data(), n);
        left -= n;
      }
    } else if (size > 0) {
      archive_write_data(a, r.data.data(), r.data.size());
    }
    archive_entry_free(e);
  }
  ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
}

}  // namespace tidesync::test
