#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/archive/bundle.hpp"
#include "runtime/archive/live_tree.hpp"
#include "tests/support/files.hpp"

namespace tidesync::archive {
namespace {

namespace fs = std::filesystem;

using test::temp_dir;

using test::read_file;

// Extracts a fake revision: a.txt and b.txt both hold `content`.
void stage(const fs::path& root, const std::string& rev, const std::string& content) {
  auto dir = prepare_incoming(root, rev);
  ASSERT_TRUE(dir) << dir.error().message;
  fs::create_directories(*dir);
  std::ofstream(*dir / "a.txt") << content;
  std::ofstream(*dir / "b.txt") << content;
}

// The mirror's layout: the link in one directory, revisions and staging in a subdirectory.
tree_layout nested(const fs::path& share) {
  return {share / "current", share / ".t" / "revisions", share / ".t", ".t/revisions/"};
}

void stage(const tree_layout& t, const std::string& rev, const std::string& content) {
  auto dir = prepare_incoming(t, rev);
  ASSERT_TRUE(dir) << dir.error().message;
  fs::create_directories(*dir);
  std::ofstream(*dir / "a.txt") << content;
}

TEST(ArchiveLiveTree, ANestedLayoutSwitchesItsLinkAndPrunesByAKeepSet) {
  temp_dir tmp;
  const fs::path share = tmp.path() / "share";
  fs::create_directories(share);
  const tree_layout t = nested(share);
  EXPECT_EQ(live_revision(t), std::nullopt);
  for (const char* rev : {"r1", "r2", "r3"}) {
    stage(t, rev, rev);
    ASSERT_TRUE(promote(t, rev));
  }
  EXPECT_EQ(fs::read_symlink(share / "current"), ".t/revisions/r3");
  EXPECT_EQ(read_file(share / "current" / "a.txt"), "r3");
  EXPECT_EQ(live_revision(t), "r3");
  EXPECT_EQ(revisions(t), (std::vector<std::string>{"r1", "r2", "r3"}));
  // Leftovers of interrupted runs in both directories.
  fs::create_directories(share / ".t" / ".incoming-r9");
  fs::create_directories(share / ".t" / ".removing-r0");
  fs::create_symlink(".t/revisions/r1", share / ".current-tmp-abc");
  fs::create_directories(share / "user-data");  // not ours: left alone
  auto removed = prune_revisions(t, std::set<std::string>{"r2"});
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed,
            (std::vector<std::string>{"r1", ".current-tmp-abc", ".incoming-r9", ".removing-r0"}));
  EXPECT_EQ(revisions(t), (std::vector<std::string>{"r2", "r3"})) << "the live one is kept too";
  EXPECT_TRUE(fs::exists(share / "user-data"));
  EXPECT_FALSE(fs::exists(share / ".current-tmp-abc"));
  // Switching back to a revision still there.
  ASSERT_TRUE(promote(t, "r2"));
  EXPECT_EQ(read_file(share / "current" / "a.txt"), "r2");
}

TEST(ArchiveLiveTree, PruningALayoutThatDoesNotExistYetIsNoError) {
  temp_dir tmp;
  auto removed = prune_revisions(nested(tmp.path() / "missing"), {});
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_TRUE(removed->empty());
}

TEST(ArchiveLiveTree, PromoteTwiceLiveIsNewest) {
  temp_dir tmp;
  fs::path root = tmp.path() / "shared";
  EXPECT_EQ(live_revision(root), std::nullopt);
  EXPECT_TRUE(revisions(root).empty());
  stage(root, "r1", "one");
  ASSERT_TRUE(promote(root, "r1"));
  EXPECT_EQ(live_revision(root), "r1");
  EXPECT_EQ(read_file(root / "live/a.txt"), "one");
  stage(root, "r2", "two");
  ASSERT_TRUE(promote(root, "r2"));
  EXPECT_EQ(live_revision(root), "r2");
  EXPECT_EQ(fs::read_symlink(root / "live"), "revisions/r2");  // relative target
  EXPECT_EQ(read_file(root / "live/a.txt"), "two");
  EXPECT_EQ(revisions(root), (std::vector<std::string>{"r1", "r2"}));
  EXPECT_FALSE(fs::exists(root / ".incoming-r1"));
  EXPECT_FALSE(fs::exists(root / ".incoming-r2"));
  for (auto& e : fs::directory_iterator(root))  // no .live-tmp-* left behind
    EXPECT_TRUE(e.path().filename() == "live" || e.path().filename() == "revisions") << e.path();
}

TEST(ArchiveLiveTree, PromoteKeepsAnExistingRevision) {
  temp_dir tmp;
  fs::path root = tmp.path();
  stage(root, "r1", "first copy");
  ASSERT_TRUE(promote(root, "r1"));
  stage(root, "r2", "two");
  ASSERT_TRUE(promote(root, "r2"));
  stage(root, "r1", "second copy");
  auto r = promote(root, "r1");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(live_revision(root), "r1");
  EXPECT_EQ(read_file(root / "live/a.txt"), "first copy");
  EXPECT_FALSE(fs::exists(root / ".incoming-r1"));
}

TEST(ArchiveLiveTree, PromoteWithoutIncomingFails) {
  temp_dir tmp;
  auto r = promote(tmp.path(), "r9");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::not_found);
  EXPECT_NE(r.error().message.find(".incoming-r9"), std::string::npos) << r.error().message;
  EXPECT_EQ(live_revision(tmp.path()), std::nullopt);
}

TEST(ArchiveLiveTree, LiveThatIsADirectoryIsAnError) {
  temp_dir tmp;
  fs::create_directories(tmp.path() / "live/x");
  stage(tmp.path(), "r1", "one");
  auto r = promote(tmp.path(), "r1");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not the live symlink"), std::string::npos) << r.error().message;
  EXPECT_TRUE(fs::exists(tmp.path() / "live/x"));
}

TEST(ArchiveLiveTree, InvalidRevisionNamesAreRefused) {
  temp_dir tmp;
  fs::path root = tmp.path() / "shared";
  for (const std::string& bad : std::vector<std::string>{"", ".", "..", "../x", "a/b", "/etc",
                                                         "a b", std::string(129, 'r')}) {
    auto p = promote(root, bad);
    ASSERT_FALSE(p) << bad;
    EXPECT_EQ(p.error().code, errc::invalid_argument);
    EXPECT_NE(p.error().message.find("not a valid revision name"), std::string::npos);
    EXPECT_FALSE(incoming_dir(root, bad)) << bad;
    EXPECT_FALSE(revision_dir(root, bad)) << bad;
    EXPECT_FALSE(prepare_incoming(root, bad)) << bad;
  }
  EXPECT_FALSE(fs::exists(root));  // nothing was created for a bad name
  auto ok = incoming_dir(root, "2026-02-05T10-30-00Z");
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, root / ".incoming-2026-02-05T10-30-00Z");
}

TEST(ArchiveLiveTree, LiveRevisionIgnoresForeignLinks) {
  temp_dir tmp;
  fs::create_symlink("/etc", tmp.path() / "live");
  EXPECT_EQ(live_revision(tmp.path()), std::nullopt);
  fs::remove(tmp.path() / "live");
  fs::create_symlink("revisions/../..", tmp.path() / "live");
  EXPECT_EQ(live_revision(tmp.path()), std::nullopt);
}

TEST(ArchiveLiveTree, PruneKeepsNewestAndLive) {
  temp_dir tmp;
  fs::path root = tmp.path();
  for (std::string rev : {"r1", "r2", "r3", "r4", "r5"}) {
    stage(root, rev, rev);
    ASSERT_TRUE(promote(root, rev));
  }
  stage(root, "r2", "again");
  ASSERT_TRUE(promote(root, "r2"));  // live is an old revision
  // Debris of interrupted runs.
  fs::create_directories(root / ".incoming-r6/half");
  fs::create_symlink("revisions/r5", root / ".live-tmp-abc");
  auto removed = prune_revisions(root, 2);
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, (std::vector<std::string>{"r1", "r3", ".incoming-r6", ".live-tmp-abc"}));
  EXPECT_EQ(revisions(root), (std::vector<std::string>{"r2", "r4", "r5"}));
  EXPECT_EQ(live_revision(root), "r2");
  EXPECT_EQ(read_file(root / "live/a.txt"), "r2");
  EXPECT_FALSE(fs::exists(root / ".incoming-r6"));

  auto again = prune_revisions(root, 0);  // keep 0: only the live one stays
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, (std::vector<std::string>{"r4", "r5"}));
  EXPECT_EQ(revisions(root), (std::vector<std::string>{"r2"}));
}

TEST(ArchiveLiveTree, BundleToLiveEndToEnd) {
  temp_dir tmp;
  fs::create_directories(tmp.path() / "src/conf");
  std::ofstream(tmp.path() / "src/conf/app.yaml") << "v: 1\n";
  auto packed = pack_bundle(tmp.path() / "src", tmp.path() / "b.tar.zst");
  ASSERT_TRUE(packed) << packed.error().message;
  fs::path root = tmp.path() / "shared";
  std::string rev = make_revision(std::chrono::system_clock::now(), "");
  auto incoming = prepare_incoming(root, rev);
  ASSERT_TRUE(incoming) << incoming.error().message;
  auto unpacked =
      unpack_bundle(tmp.path() / "b.tar.zst", *incoming, {.expected_sha256 = packed->sha256});
  ASSERT_TRUE(unpacked) << unpacked.error().message;
  ASSERT_TRUE(promote(root, rev));
  EXPECT_EQ(read_file(root / "live/conf/app.yaml"), "v: 1\n");
}

// Reads a.txt and b.txt through one descriptor of <root>/live: both must hold the same
// revision name, and the link must always be readable.
std::string read_through(int dir_fd, const char* name) {
  int fd = ::openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "<open failed: " + std::to_string(errno) + ">";
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  return n < 0 ? "<read failed>" : std::string(buf, static_cast<size_t>(n));
}

TEST(ArchiveLiveTree, PromoteIsAtomicForReaders) {
  temp_dir tmp;
  fs::path root = tmp.path();
  fs::path live = root / "live";
  auto now = std::chrono::system_clock::now();
  std::string rev = make_revision(now, "");
  stage(root, rev, rev);
  ASSERT_TRUE(promote(root, rev));

  std::atomic<bool> stop{false};
  std::atomic<bool> started{false};
  std::atomic<long> reads{0};
  std::atomic<bool> failed{false};
  std::string failure;  // written by the reader before it sets `failed`, read after join
  std::thread reader([&] {
    while (!stop.load()) {
      char target[512];
      ssize_t n = ::readlink(live.c_str(), target, sizeof target);
      if (n <= 0) {
        failure = "readlink failed: errno " + std::to_string(errno);
        break;
      }
      std::string t(target, static_cast<size_t>(n));
      if (t.rfind("revisions/", 0) != 0 || !valid_revision(t.substr(10))) {
        failure = "bad link target " + t;
        break;
      }
      int dir_fd = ::open(live.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dir_fd < 0) {
        failure = "open live failed: errno " + std::to_string(errno);
        break;
      }
      std::string a = read_through(dir_fd, "a.txt");
      std::string b = read_through(dir_fd, "b.txt");
      ::close(dir_fd);
      if (a != b || !valid_revision(a)) {
        failure = "mixed or bad content: a=" + a + " b=" + b;
        break;
      }
      reads.fetch_add(1);
      started.store(true);
    }
    if (!failure.empty()) failed.store(true);
    started.store(true);  // never leave the writer waiting
  });
  while (!started.load())
    std::this_thread::yield();

  for (int i = 0; i < 200 && !failed.load(); ++i) {
    rev = make_revision(now, rev);  // same second: suffixed revisions
    stage(root, rev, rev);
    auto r = promote(root, rev);
    ASSERT_TRUE(r) << r.error().message;
  }
  long reads_before_stop = reads.load();
  stop.store(true);
  reader.join();
  EXPECT_EQ(failure, "");
  EXPECT_GT(reads_before_stop, 0);
  EXPECT_EQ(live_revision(root), rev);
  EXPECT_EQ(revisions(root).size(), 201u);
  EXPECT_EQ(revisions(root).back(), rev);  // byte order is publish order
}

}  // namespace
}  // namespace tidesync::archive
