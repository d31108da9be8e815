#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/archive/bundle.hpp"
#include "tests/support/files.hpp"
#include "tests/support/raw_archive.hpp"

namespace tidesync::archive {
namespace {

namespace fs = std::filesystem;

using test::temp_dir;

void write_file(const fs::path& p, const std::string& content, fs::perms mode = fs::perms(0644)) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
  fs::permissions(p, mode);
}

using test::dir;
using test::entry;
using test::file;
using test::hardlink;
using test::link;
using test::raw_entry;
using test::read_file;
using test::write_archive;
using test::zeros;

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// A sample tree: nested dirs, an empty dir, modes, an inside symlink, an empty file.
void make_tree(const fs::path& dir) {
  write_file(dir / "app.yaml", "name: demo\n");
  write_file(dir / "bin/run.sh", "#!/bin/sh\necho hi\n", fs::perms(0700));
  write_file(dir / "conf/nested/deep/x.conf", "x = 1\n", fs::perms(0600));
  write_file(dir / "conf/empty.txt", "");
  write_file(dir / "conf-b", "sorts between conf and conf/\n");
  write_file(dir / "d\xc3\xa9j\xc3\xa0-vu.txt", "utf-8 name\n");
  fs::create_directories(dir / "empty-dir");
  fs::create_symlink("conf/nested/deep/x.conf", dir / "x-link");
  fs::create_symlink("../app.yaml", dir / "bin/app-link");
}

TEST(ArchiveBundle, PackTwiceIsByteIdentical) {
  temp_dir tmp;
  make_tree(tmp.path() / "tree");
  auto a = pack_bundle(tmp.path() / "tree", tmp.path() / "a.tar.zst");
  ASSERT_TRUE(a) << a.error().message;
  // A different mtime on disk must not change the archive.
  fs::last_write_time(tmp.path() / "tree/app.yaml",
                      fs::last_write_time(tmp.path() / "tree/app.yaml") - std::chrono::hours(5));
  auto b = pack_bundle(tmp.path() / "tree", tmp.path() / "b.tar.zst");
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(read_file(tmp.path() / "a.tar.zst"), read_file(tmp.path() / "b.tar.zst"));
  EXPECT_EQ(a->sha256, b->sha256);
  EXPECT_EQ(a->sha256.substr(0, 7), "sha256:");
  EXPECT_EQ(a->sha256.size(), 7u + 64u);
  auto file_sum = sha256_file(tmp.path() / "a.tar.zst");
  ASSERT_TRUE(file_sum);
  EXPECT_EQ(*file_sum, a->sha256);
  EXPECT_EQ(a->archive_bytes, fs::file_size(tmp.path() / "a.tar.zst"));
  // app.yaml, bin, bin/app-link, bin/run.sh, conf, conf/empty.txt, conf/nested,
  // conf/nested/deep, conf/nested/deep/x.conf, conf-b, déjà-vu.txt, empty-dir, x-link
  EXPECT_EQ(a->entries, 13u);
  EXPECT_EQ(a->content_bytes, 11u + 18u + 6u + 0u + 29u + 11u);
  // No temporary file left next to the output.
  size_t files = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(tmp.path()))
    ++files;
  EXPECT_EQ(files, 3u);
}

TEST(ArchiveBundle, EntriesAreSortedWithOwnerZeroAndFixedMtime) {
  temp_dir tmp;
  make_tree(tmp.path() / "tree");
  auto p = pack_bundle(tmp.path() / "tree", tmp.path() / "a.tar.zst", {.mtime = 1234});
  ASSERT_TRUE(p) << p.error().message;
  struct archive* a = archive_read_new();
  archive_read_support_filter_zstd(a);
  archive_read_support_format_tar(a);
  ASSERT_EQ(archive_read_open_filename(a, (tmp.path() / "a.tar.zst").c_str(), 10240), ARCHIVE_OK);
  std::vector<std::string> names;
  archive_entry* e = nullptr;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    std::string name = archive_entry_pathname(e);
    if (!name.empty() && name.back() == '/') name.pop_back();
    names.push_back(name);
    EXPECT_EQ(archive_entry_mtime(e), 1234) << name;
    EXPECT_EQ(archive_entry_uid(e), 0) << name;
    EXPECT_EQ(archive_entry_gid(e), 0) << name;
    EXPECT_EQ(archive_entry_uname(e) == nullptr ? "" : std::string(archive_entry_uname(e)), "")
        << name;
    EXPECT_EQ(archive_entry_gname(e) == nullptr ? "" : std::string(archive_entry_gname(e)), "")
        << name;
    if (name == "conf/nested/deep/x.conf") {
      EXPECT_EQ(archive_entry_perm(e), 0644u);
    }
    if (name == "bin/run.sh") {
      EXPECT_EQ(archive_entry_perm(e), 0755u);
    }
    if (name == "conf") {
      EXPECT_EQ(archive_entry_perm(e), 0755u);
    }
  }
  archive_read_free(a);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end())) << ::testing::PrintToString(names);
  EXPECT_EQ(names.size(), 13u);
}

TEST(ArchiveBundle, UnpackRoundTrips) {
  temp_dir tmp;
  make_tree(tmp.path() / "tree");
  auto p = pack_bundle(tmp.path() / "tree", tmp.path() / "a.tar.zst");
  ASSERT_TRUE(p) << p.error().message;
  fs::path out = tmp.path() / "out";
  auto u = unpack_bundle(tmp.path() / "a.tar.zst", out, {.expected_sha256 = p->sha256});
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->sha256, p->sha256);
  EXPECT_EQ(u->archive_bytes, p->archive_bytes);
  EXPECT_EQ(u->entries, p->entries);
  EXPECT_EQ(u->content_bytes, p->content_bytes);
  EXPECT_EQ(read_file(out / "app.yaml"), "name: demo\n");
  EXPECT_EQ(read_file(out / "bin/run.sh"), "#!/bin/sh\necho hi\n");
  EXPECT_EQ(read_file(out / "conf/nested/deep/x.conf"), "x = 1\n");
  EXPECT_EQ(read_file(out / "conf/empty.txt"), "");
  EXPECT_EQ(read_file(out / "d\xc3\xa9j\xc3\xa0-vu.txt"), "utf-8 name\n");
  EXPECT_EQ(mode_of(out / "app.yaml"), 0644u);
  EXPECT_EQ(mode_of(out / "bin/run.sh"), 0755u);
  EXPECT_EQ(mode_of(out / "conf/nested/deep/x.conf"), 0644u);  // normalised from 0600
  EXPECT_EQ(mode_of(out / "conf/nested"), 0755u);
  EXPECT_TRUE(fs::is_directory(fs::symlink_status(out / "empty-dir")));
  EXPECT_TRUE(fs::is_empty(out / "empty-dir"));
  ASSERT_TRUE(fs::is_symlink(out / "x-link"));
  EXPECT_EQ(fs::read_symlink(out / "x-link"), "conf/nested/deep/x.conf");
  EXPECT_EQ(read_file(out / "x-link"), "x = 1\n");
  EXPECT_EQ(fs::read_symlink(out / "bin/app-link"), "../app.yaml");

  // Re-packing the extracted tree gives the same archive.
  auto again = pack_bundle(out, tmp.path() / "b.tar.zst");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->sha256, p->sha256);
}

TEST(ArchiveBundle, UnpackFromStreamAndChecksumMismatch) {
  temp_dir tmp;
  make_tree(tmp.path() / "tree");
  auto p = pack_bundle(tmp.path() / "tree", tmp.path() / "a.tar.zst");
  ASSERT_TRUE(p) << p.error().message;
  std::ifstream in(tmp.path() / "a.tar.zst", std::ios::binary);
  auto u = unpack_bundle(in, tmp.path() / "s");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->sha256, p->sha256);

  fs::create_directory(tmp.path() / "m");
  auto bad = unpack_bundle(tmp.path() / "a.tar.zst", tmp.path() / "m",
                           {.expected_sha256 = "sha256:" + std::string(64, '0')});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("checksum"), std::string::npos) << bad.error().message;
  EXPECT_TRUE(fs::is_empty(tmp.path() / "m"));
}

TEST(ArchiveBundle, EmptyDirectoryPacksAndUnpacks) {
  temp_dir tmp;
  fs::create_directory(tmp.path() / "empty");
  auto p = pack_bundle(tmp.path() / "empty", tmp.path() / "e.tar.zst");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->entries, 0u);
  auto u = unpack_bundle(tmp.path() / "e.tar.zst", tmp.path() / "out");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->entries, 0u);
  EXPECT_TRUE(fs::is_empty(tmp.path() / "out"));
}

TEST(ArchiveBundle, PackRefusesSpecialFiles) {
  temp_dir tmp;
  write_file(tmp.path() / "tree/ok.txt", "ok");
  ASSERT_EQ(::mkfifo((tmp.path() / "tree/pipe").c_str(), 0644), 0);
  auto p = pack_bundle(tmp.path() / "tree", tmp.path() / "a.tar.zst");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("tree/pipe"), std::string::npos) << p.error().message;
  EXPECT_NE(p.error().message.find("fifo"), std::string::npos) << p.error().message;
  EXPECT_FALSE(fs::exists(tmp.path() / "a.tar.zst"));
}

TEST(ArchiveBundle, PackRefusesOutputInsideTheTree) {
  temp_dir tmp;
  write_file(tmp.path() / "tree/ok.txt", "ok");
  auto p = pack_bundle(tmp.path() / "tree", tmp.path() / "tree/self.tar.zst");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("inside"), std::string::npos) << p.error().message;
}

TEST(ArchiveBundle, UnpackRefusesNonEmptyDestination) {
  temp_dir tmp;
  make_tree(tmp.path() / "tree");
  ASSERT_TRUE(pack_bundle(tmp.path() / "tree", tmp.path() / "a.tar.zst"));
  write_file(tmp.path() / "busy/keep.txt", "mine");
  auto u = unpack_bundle(tmp.path() / "a.tar.zst", tmp.path() / "busy");
  ASSERT_FALSE(u);
  EXPECT_NE(u.error().message.find("not empty"), std::string::npos) << u.error().message;
  EXPECT_EQ(read_file(tmp.path() / "busy/keep.txt"), "mine");
}

// ---- hostile archives, written with libarchive directly ----

uint64_t disk_usage(const fs::path& dir) {
  uint64_t total = 0;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return total;
}

// Unpacks `entries` into <tmp>/box/dest and checks it fails with a message containing every
// needle, leaving dest empty and nothing else in <tmp>/box or <tmp>.
void expect_refused(const std::vector<raw_entry>& entries, const std::vector<std::string>& needles,
                    unpack_limits limits = {}) {
  temp_dir tmp;
  fs::path archive_file = tmp.path() / "hostile.tar.zst";
  write_archive(archive_file, entries);
  fs::create_directory(tmp.path() / "box");
  fs::path dest = tmp.path() / "box/dest";
  auto u = unpack_bundle(archive_file, dest, limits);
  ASSERT_FALSE(u) << "unpacked although it should not have";
  for (const auto& needle : needles)
    EXPECT_NE(u.error().message.find(needle), std::string::npos)
        << "message: " << u.error().message << "\nwanted: " << needle;
  EXPECT_TRUE(fs::is_empty(dest)) << "dest not cleaned up";
  std::vector<std::string> top, box;
  for (auto& e : fs::directory_iterator(tmp.path()))
    top.push_back(e.path().filename());
  for (auto& e : fs::directory_iterator(tmp.path() / "box"))
    box.push_back(e.path().filename());
  std::sort(top.begin(), top.end());
  EXPECT_EQ(top, (std::vector<std::string>{"box", "hostile.tar.zst"}));
  EXPECT_EQ(box, (std::vector<std::string>{"dest"}));
}

TEST(ArchiveBundleHostile, DotDotPaths) {
  expect_refused({file("../x")}, {"\"../x\"", "\"..\" component"});
  expect_refused({dir("a"), file("a/../../x")}, {"\"a/../../x\"", "\"..\" component"});
  expect_refused({file("ok"), dir("..")}, {"\"..\"", "\"..\" component"});
}

TEST(ArchiveBundleHostile, AbsolutePaths) {
  ASSERT_FALSE(fs::exists("/etc/tidesync-archive-test-x"));
  expect_refused({file("/etc/tidesync-archive-test-x")},
                 {"\"/etc/tidesync-archive-test-x\"", "absolute path"});
  EXPECT_FALSE(fs::exists("/etc/tidesync-archive-test-x"));
}

TEST(ArchiveBundleHostile, SymlinksOutside) {
  expect_refused({link("evil", "/etc")}, {"\"evil\"", "absolute path \"/etc\""});
  expect_refused({link("evil", "../..")}, {"\"evil\"", "points outside the bundle"});
  expect_refused({dir("a"), link("a/evil", "../../x")}, {"\"a/evil\"", "outside the bundle"});
  // Each link alone stays inside; followed together they leave the bundle.
  expect_refused({dir("sub"), link("sub/up", ".."), link("evil", "sub/up/..")},
                 {"\"evil\"", "leads outside the bundle through other symlinks"});
  expect_refused({link("l1", "l2"), link("l2", "l1")}, {"symlink loop"});
}

TEST(ArchiveBundleHostile, WritingThroughASymlink) {
  expect_refused({dir("sub"), link("link", "sub"), file("link/file")},
                 {"\"link/file\"", "goes through the symlink \"link\""});
  // (the tar writer stores directory names with a trailing '/', errors quote them as stored)
  expect_refused({link("link", "."), dir("link")}, {"\"link/\"", "duplicate"});
  // A file first, then a symlink at a parent of it: the symlink cannot be created.
  expect_refused({dir("d"), file("d/f"), link("d", ".")}, {"\"d\"", "symlink"});
}

TEST(ArchiveBundleHostile, HardLinksFifosDevices) {
  expect_refused({file("a"), hardlink("b", "a")}, {"\"b\"", "hard link"});
  expect_refused({entry("pipe", AE_IFIFO)}, {"\"pipe\"", "fifo"});
  expect_refused({entry("dev", AE_IFCHR)}, {"\"dev\"", "character device"});
  expect_refused({entry("blk", AE_IFBLK)}, {"\"blk\"", "block device"});
}

TEST(ArchiveBundleHostile, DuplicatesAndFileAsParent) {
  expect_refused({file("a"), file("a")}, {"\"a\"", "another entry already has that path"});
  expect_refused({file("a"), file("a/b")}, {"\"a/b\"", "parent \"a\" is not a directory"});
  expect_refused({file("a"), dir("a")}, {"\"a/\"", "another entry already has that path"});
}

TEST(ArchiveBundleHostile, TooManyEntries) {
  std::vector<raw_entry> entries;
  for (int i = 0; i < 11; ++i)
    entries.push_back(file("f" + std::to_string(i)));
  expect_refused(entries, {"\"f10\"", "more than 10 entries"}, {.max_entries = 10});
}

TEST(ArchiveBundleHostile, ZipBombStopsEarly) {
  temp_dir tmp;
  fs::path bomb = tmp.path() / "bomb.tar.zst";
  write_archive(bomb, {file("small", "x"), zeros("huge", 100ULL << 20)});
  EXPECT_LT(fs::file_size(bomb), 1u << 20);  // it really is a bomb
  fs::path dest = tmp.path() / "dest";
  auto u = unpack_bundle(bomb, dest, {.max_bytes = 10ULL << 20});
  ASSERT_FALSE(u);
  EXPECT_NE(u.error().message.find("\"huge\""), std::string::npos) << u.error().message;
  EXPECT_NE(u.error().message.find("max_bytes"), std::string::npos) << u.error().message;
  EXPECT_LT(disk_usage(tmp.path()), 2u << 20);
  EXPECT_TRUE(fs::is_empty(dest));

  // Many entries each under the limit: stopped when the total would pass it.
  std::vector<raw_entry> many;
  for (int i = 0; i < 20; ++i)
    many.push_back(zeros("part" + std::to_string(i), 1ULL << 20));
  expect_refused(many, {"\"part10\"", "uncompressed total", "max_bytes"},
                 {.max_bytes = 10ULL << 20});
}

TEST(ArchiveBundleHostile, TruncatedAndGarbage) {
  temp_dir tmp;
  // Incompressible content so half the archive is half the entries.
  std::mt19937_64 rng(42);
  std::string noise(256 * 1024, '\0');
  for (auto& c : noise)
    c = static_cast<char>(rng());
  write_file(tmp.path() / "tree/a.bin", noise);
  write_file(tmp.path() / "tree/b.bin", noise.substr(1000) + "tail");
  auto p = pack_bundle(tmp.path() / "tree", tmp.path() / "full.tar.zst");
  ASSERT_TRUE(p) << p.error().message;
  std::string bytes = read_file(tmp.path() / "full.tar.zst");
  {
    std::ofstream(tmp.path() / "half.tar.zst", std::ios::binary)
        << bytes.substr(0, bytes.size() / 2);
  }
  auto u = unpack_bundle(tmp.path() / "half.tar.zst", tmp.path() / "d1");
  ASSERT_FALSE(u);
  EXPECT_NE(u.error().message.find("corrupt or truncated"), std::string::npos) << u.error().message;
  EXPECT_TRUE(fs::is_empty(tmp.path() / "d1"));

  std::string garbage(4096, '\0');
  for (auto& c : garbage)
    c = static_cast<char>(rng());
  std::istringstream in(garbage);
  auto g = unpack_bundle(in, tmp.path() / "d2");
  ASSERT_FALSE(g);
  EXPECT_NE(g.error().message.find("not a readable tar.zst archive"), std::string::npos)
      << g.error().message;
  EXPECT_TRUE(fs::is_empty(tmp.path() / "d2"));

  std::istringstream empty("");
  EXPECT_FALSE(unpack_bundle(empty, tmp.path() / "d3"));
}

TEST(ArchiveBundleHostile, SourceErrorsAreReported) {
  temp_dir tmp;
  read_callback failing = [](char*, size_t) -> expected<size_t> {
    return make_error(errc::unavailable, "connection reset by peer");
  };
  auto u = unpack_bundle(failing, tmp.path() / "d");
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().code, errc::unavailable);
  EXPECT_NE(u.error().message.find("connection reset by peer"), std::string::npos)
      << u.error().message;
}

TEST(ArchiveBundle, AcceptsDotSlashNames) {
  temp_dir tmp;
  write_archive(tmp.path() / "a.tar.zst",
                {dir("./"), dir("./d/"), file("./d/f", "hello"), link("./d/l", "f")});
  auto u = unpack_bundle(tmp.path() / "a.tar.zst", tmp.path() / "out");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(read_file(tmp.path() / "out/d/f"), "hello");
  EXPECT_EQ(read_file(tmp.path() / "out/d/l"), "hello");
}

long max_rss_kib() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

TEST(ArchiveBundle, LargeBundleStreamsInBoundedMemory) {
  temp_dir tmp;
  // 192 MiB of pseudo-random data written in 1 MiB chunks (incompressible).
  {
    fs::create_directories(tmp.path() / "tree");
    std::ofstream out(tmp.path() / "tree/big.bin", std::ios::binary);
    std::mt19937_64 rng(7);
    std::vector<uint64_t> chunk((1 << 20) / 8);
    for (int i = 0; i < 192; ++i) {
      for (auto& w : chunk)
        w = rng();
      out.write(reinterpret_cast<const char*>(chunk.data()),
                static_cast<std::streamsize>(chunk.size() * 8));
    }
  }
  long before = max_rss_kib();
  auto p = pack_bundle(tmp.path() / "tree", tmp.path() / "big.tar.zst",
                       {.compression_level = 1, .fsync = false});
  ASSERT_TRUE(p) << p.error().message;
  auto u = unpack_bundle(tmp.path() / "big.tar.zst", tmp.path() / "out",
                         {.max_bytes = 1ULL << 30, .fsync = false});
  ASSERT_TRUE(u) << u.error().message;
  long growth_mib = (max_rss_kib() - before) / 1024;
  std::printf("peak RSS growth packing and unpacking 192 MiB: %ld MiB\n", growth_mib);
  EXPECT_LT(growth_mib, 64) << "peak RSS grew by " << growth_mib << " MiB";
  EXPECT_EQ(u->content_bytes, 192ULL << 20);
  EXPECT_EQ(u->sha256, p->sha256);
  EXPECT_EQ(fs::file_size(tmp.path() / "out/big.bin"), 192ULL << 20);
}

}  // namespace
}  // namespace tidesync::archive
