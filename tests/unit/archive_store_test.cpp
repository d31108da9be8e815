// config_store over a local-folder backend: the owner's folder layout, latest.json, streaming
// a bundle with its checksum, the size limit, listing and removing revisions.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/archive/bundle.hpp"
#include "runtime/archive/revision.hpp"
#include "runtime/archive/store.hpp"
#include "runtime/transfer/backend.hpp"
#include "tests/support/files.hpp"

namespace tidesync::archive {
namespace {

namespace fs = std::filesystem;

using test::temp_dir;

using test::read_file;

void write_file(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

// `n` pseudo-random (incompressible) bytes.
std::string noise(size_t n, uint32_t seed) {
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

config_store local_store(const fs::path& owner_dir) {
  transfer::location loc;
  loc.kind = transfer::location_kind::local;
  loc.text = owner_dir.string();
  loc.path = owner_dir.string();
  return config_store(transfer::make_local_backend(loc));
}

latest make_latest(const std::string& rev, const std::string& checksum) {
  latest l;
  l.revision = rev;
  l.checksum = checksum;
  l.updated_at = std::chrono::sys_seconds(std::chrono::seconds(1770287400));
  return l;
}

// A packed bundle of a small tree; returns its pack_result.
pack_result pack_small(const fs::path& work, const std::string& marker, const fs::path& out) {
  const fs::path src = work / ("src-" + marker);
  write_file(src / "app.conf", "revision=" + marker + "\n");
  write_file(src / "nested" / "data.txt", "data of " + marker + "\n");
  auto packed = pack_bundle(src, out, pack_options{.fsync = false});
  EXPECT_TRUE(packed) << packed.error().to_string();
  return packed ? *packed : pack_result{};
}

TEST(ArchiveStore, NoLatestJsonIsNotAnError) {
  temp_dir tmp;
  auto store = local_store(tmp.path() / "bucket" / "owner");  // does not exist yet
  auto l = store.read_latest();
  ASSERT_TRUE(l) << l.error().to_string();
  EXPECT_FALSE(l->has_value());
  auto revs = store.list_revisions();
  ASSERT_TRUE(revs) << revs.error().to_string();
  EXPECT_TRUE(revs->empty());
}

TEST(ArchiveStore, PublishThenDownloadRoundTripsWithTheChecksum) {
  temp_dir tmp;
  const fs::path owner = tmp.path() / "store" / "alice";
  auto store = local_store(owner);
  const std::string rev = "2026-02-05T10-30-00Z";
  auto packed = pack_small(tmp.path(), "one", tmp.path() / "one.tar.zst");

  ASSERT_TRUE(store.upload_bundle(rev, tmp.path() / "one.tar.zst"));
  const latest l = make_latest(rev, packed.sha256);
  ASSERT_TRUE(store.write_latest(l));
  // The layout of docs/sharedconfig.md.
  EXPECT_TRUE(fs::is_regular_file(owner / "latest.json"));
  EXPECT_EQ(read_file(owner / "revisions" / (rev + ".tar.zst")),
            read_file(tmp.path() / "one.tar.zst"));
  EXPECT_EQ(read_file(owner / "latest.json"), render_latest(l));

  auto read = store.read_latest();
  ASSERT_TRUE(read) << read.error().to_string();
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ(**read, l);

  const fs::path file = tmp.path() / "shared" / ".incoming-x.tar.zst";
  fs::create_directories(file.parent_path());
  auto sha = store.download_bundle(rev, file, 1 << 20);
  ASSERT_TRUE(sha) << sha.error().to_string();
  EXPECT_EQ(*sha, packed.sha256);
  EXPECT_EQ(read_file(file), read_file(tmp.path() / "one.tar.zst"));
  EXPECT_FALSE(fs::exists(file.string() + ".part"));

  auto unpacked = unpack_bundle(file, tmp.path() / "out", unpack_limits{.fsync = false});
  ASSERT_TRUE(unpacked) << unpacked.error().to_string();
  EXPECT_EQ(read_file(tmp.path() / "out" / "app.conf"), "revision=one\n");
}

TEST(ArchiveStore, LargeBundleStreamsInChunks) {
  temp_dir tmp;
  auto store = local_store(tmp.path() / "owner");
  const fs::path src = tmp.path() / "src";
  write_file(src / "big.bin", noise(12u << 20, 5));  // incompressible: a 12 MiB archive
  auto packed = pack_bundle(src, tmp.path() / "big.tar.zst", pack_options{.fsync = false});
  ASSERT_TRUE(packed) << packed.error().to_string();
  ASSERT_GT(packed->archive_bytes, 8u << 20);
  const std::string rev = "2026-02-05T10-30-00Z";
  ASSERT_TRUE(store.upload_bundle(rev, tmp.path() / "big.tar.zst"));
  auto sha = store.download_bundle(rev, tmp.path() / "got.tar.zst", 1ull << 30);
  ASSERT_TRUE(sha) << sha.error().to_string();
  EXPECT_EQ(*sha, packed->sha256);
  EXPECT_EQ(fs::file_size(tmp.path() / "got.tar.zst"), packed->archive_bytes);
}

TEST(ArchiveStore, BundleOverTheLimitIsRefusedBeforeDownloading) {
  temp_dir tmp;
  auto store = local_store(tmp.path() / "owner");
  auto packed = pack_small(tmp.path(), "one", tmp.path() / "one.tar.zst");
  const std::string rev = "2026-02-05T10-30-00Z";
  ASSERT_TRUE(store.upload_bundle(rev, tmp.path() / "one.tar.zst"));
  const fs::path file = tmp.path() / "got.tar.zst";
  auto sha = store.download_bundle(rev, file, packed.archive_bytes - 1);
  ASSERT_FALSE(sha);
  EXPECT_EQ(sha.error().code, errc::invalid_argument);
  EXPECT_NE(sha.error().message.find("--max-bytes"), std::string::npos) << sha.error().message;
  EXPECT_FALSE(fs::exists(file));
  EXPECT_FALSE(fs::exists(file.string() + ".part"));
  EXPECT_TRUE(store.download_bundle(rev, file, packed.archive_bytes));
}

TEST(ArchiveStore, MissingBundleIsNotFound) {
  temp_dir tmp;
  auto store = local_store(tmp.path() / "owner");
  auto sha = store.download_bundle("2026-02-05T10-30-00Z", tmp.path() / "got.tar.zst", 1 << 20);
  ASSERT_FALSE(sha);
  EXPECT_EQ(sha.error().code, errc::not_found);
  EXPECT_FALSE(fs::exists(tmp.path() / "got.tar.zst"));
}

TEST(ArchiveStore, InvalidRevisionsNeverBecomeKeys) {
  temp_dir tmp;
  auto store = local_store(tmp.path() / "owner");
  write_file(tmp.path() / "secret.tar.zst", "not for you");
  for (const std::string rev : {"../secret", "..", "a/b", "", "x y"}) {
    auto sha = store.download_bundle(rev, tmp.path() / "got.tar.zst", 1 << 20);
    ASSERT_FALSE(sha) << rev;
    EXPECT_EQ(sha.error().code, errc::invalid_argument) << rev;
    EXPECT_FALSE(store.upload_bundle(rev, tmp.path() / "secret.tar.zst")) << rev;
    EXPECT_FALSE(store.remove_revision(rev)) << rev;
  }
  EXPECT_FALSE(bundle_key("../x"));
  EXPECT_EQ(*bundle_key("2026-02-05T10-30-00Z-0001"),
            "revisions/2026-02-05T10-30-00Z-0001.tar.zst");
  EXPECT_FALSE(store.write_latest(make_latest("../x", "sha256:" + std::string(64, 'a'))));
  EXPECT_FALSE(store.write_latest(make_latest("2026-02-05T10-30-00Z", "md5:abc")));
  EXPECT_FALSE(fs::exists(tmp.path() / "owner" / "latest.json"));
}

TEST(ArchiveStore, MalformedLatestJsonIsAParseError) {
  temp_dir tmp;
  auto store = local_store(tmp.path() / "owner");
  write_file(tmp.path() / "owner" / "latest.json", "{\"revision\": \"../../etc\"}");
  auto l = store.read_latest();
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().code, errc::parse_error);
  EXPECT_NE(l.error().message.find("latest.json"), std::string::npos) << l.error().message;

  write_file(tmp.path() / "owner" / "latest.json", std::string(100 << 10, ' '));
  auto big = store.read_latest();
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, errc::parse_error);
}

TEST(ArchiveStore, ListAndRemoveRevisions) {
  temp_dir tmp;
  const fs::path owner = tmp.path() / "owner";
  auto store = local_store(owner);
  pack_small(tmp.path(), "one", tmp.path() / "one.tar.zst");
  const std::vector<std::string> revs = {"2026-02-05T10-30-00Z-0001", "2026-02-05T10-30-00Z",
                                         "2026-02-06T08-00-00Z"};
  for (const auto& r : revs)
    ASSERT_TRUE(store.upload_bundle(r, tmp.path() / "one.tar.zst")) << r;
  // Keys that are not bundles are ignored.
  write_file(owner / "revisions" / "notes.txt", "x");
  write_file(owner / "revisions" / "deeper" / "2026-01-01T00-00-00Z.tar.zst", "x");
  write_file(owner / "latest.json", "{}");

  auto listed = store.list_revisions();
  ASSERT_TRUE(listed) << listed.error().to_string();
  EXPECT_EQ(*listed, (std::vector<std::string>{"2026-02-05T10-30-00Z", "2026-02-05T10-30-00Z-0001",
                                               "2026-02-06T08-00-00Z"}));
  ASSERT_TRUE(store.remove_revision("2026-02-05T10-30-00Z"));
  ASSERT_TRUE(store.remove_revision("2026-02-05T10-30-00Z")) << "a missing one is not an error";
  listed = store.list_revisions();
  ASSERT_TRUE(listed);
  EXPECT_EQ(*listed,
            (std::vector<std::string>{"2026-02-05T10-30-00Z-0001", "2026-02-06T08-00-00Z"}));
}

TEST(ArchiveStore, BackendStatAnswersForOneFile) {
  temp_dir tmp;
  transfer::location loc;
  loc.kind = transfer::location_kind::local;
  loc.path = tmp.path().string();
  auto b = transfer::make_local_backend(loc);
  write_file(tmp.path() / "d" / "f.txt", "12345");
  auto st = b->stat("d/f.txt");
  ASSERT_TRUE(st) << st.error().to_string();
  ASSERT_TRUE(st->has_value());
  EXPECT_EQ((*st)->size, 5u);
  EXPECT_EQ((*st)->path, "d/f.txt");
  auto missing = b->stat("d/nope");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
  auto dir = b->stat("d");
  ASSERT_TRUE(dir);
  EXPECT_FALSE(dir->has_value()) << "a directory is not a file";
}

}  // namespace
}  // namespace tidesync::archive
