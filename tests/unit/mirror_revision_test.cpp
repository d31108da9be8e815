// Revision names, source types and git refs of `tidesync agent mirror` (pure).
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "runtime/archive/revision.hpp"
#include "runtime/mirror/revision.hpp"

namespace tidesync::mirror {
namespace {

using namespace std::chrono_literals;

transfer::entry file(std::string path, uint64_t size, std::chrono::seconds mtime,
                     std::optional<std::string> md5 = std::nullopt) {
  transfer::entry e;
  e.path = std::move(path);
  e.size = size;
  e.mtime = std::chrono::system_clock::time_point(mtime);
  e.md5 = std::move(md5);
  return e;
}

transfer::entry dir(std::string path) {
  transfer::entry e;
  e.path = std::move(path);
  e.dir = true;
  return e;
}

TEST(MirrorRevision, SourceTypesParseAndPrint) {
  for (auto t : {source_type::git, source_type::s3, source_type::sftp, source_type::http}) {
    auto parsed = parse_source_type(to_string(t));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, t);
  }
  auto bad = parse_source_type("ftp");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("git, s3, sftp or http"), std::string::npos);
}

TEST(MirrorRevision, ListingRevisionIsStableAndAValidDirectoryName) {
  std::vector<transfer::entry> a{file("b.txt", 3, 100s), dir("d"), file("d/c.bin", 10, 200s)};
  std::vector<transfer::entry> shuffled{a[2], a[0], a[1]};
  const std::string rev = listing_revision(source_type::s3, "bucket/prefix", a);
  EXPECT_EQ(rev, listing_revision(source_type::s3, "bucket/prefix", shuffled)) << "order-free";
  EXPECT_EQ(rev.rfind("sha256-", 0), 0u) << rev;
  EXPECT_EQ(rev.size(), 7u + 16u) << rev;
  EXPECT_TRUE(archive::valid_revision(rev));
}

TEST(MirrorRevision, ListingRevisionChangesWithNamesSizesTimesAndSource) {
  const std::vector<transfer::entry> base{file("a.txt", 3, 100s), file("b.txt", 4, 100s)};
  const std::string rev = listing_revision(source_type::s3, "b/p", base);
  auto changed = [&](std::vector<transfer::entry> v) {
    return listing_revision(source_type::s3, "b/p", std::move(v)) != rev;
  };
  EXPECT_TRUE(changed({file("a.txt", 3, 100s), file("c.txt", 4, 100s)}));  // a name
  EXPECT_TRUE(changed({file("a.txt", 3, 100s), file("b.txt", 5, 100s)}));  // a size
  EXPECT_TRUE(changed({file("a.txt", 3, 100s), file("b.txt", 4, 101s)}));  // a time
  EXPECT_TRUE(changed({file("a.txt", 3, 100s)}));                          // a file gone
  EXPECT_TRUE(changed({file("a.txt", 3, 100s), file("b.txt", 4, 100s), dir("empty")}));
  EXPECT_NE(listing_revision(source_type::s3, "b/other", base), rev);
  EXPECT_NE(listing_revision(source_type::sftp, "b/p", base), rev);
  // Sub-second differences do not count: listings carry whole seconds.
  auto t = file("b.txt", 4, 100s);
  t.mtime += 300ms;
  EXPECT_FALSE(changed({file("a.txt", 3, 100s), t}));
}

TEST(MirrorRevision, AnEtagStandsForTheContentWhateverTheTime) {
  const std::string md5 = "0123456789abcdef0123456789abcdef";
  const auto rev = listing_revision(source_type::s3, "b", {file("a", 3, 100s, md5)});
  EXPECT_EQ(rev, listing_revision(source_type::s3, "b", {file("a", 3, 999s, md5)}))
      << "re-uploading the same bytes is no new revision";
  EXPECT_NE(rev, listing_revision(source_type::s3, "b",
                                  {file("a", 3, 100s, "ffffffffffffffffffffffffffffffff")}));
}

TEST(MirrorRevision, RefsAreCheckedAsGitChecksThem) {
  EXPECT_TRUE(make_ref(ref_kind::branch, "main"));
  EXPECT_TRUE(make_ref(ref_kind::branch, "feature/x-1.2"));
  EXPECT_TRUE(make_ref(ref_kind::tag, "v1.2.0"));
  for (const char* bad :
       {"",     "-x", "a..b", "a b",  "a:b", "a~1",    "a^",   "x?",    "x*", "x[",
        "a\\b", "/a", "a/",   "a//b", "a.",  "a.lock", "a/.b", "a@{1}", "@",  "a/b.lock/c"}) {
    auto r = make_ref(ref_kind::branch, bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_NE(r.error().message.find("branch name"), std::string::npos);
    }
  }
  auto c = make_ref(ref_kind::commit, "ABCDEF0123");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->name, "abcdef0123") << "lower-cased";
  EXPECT_FALSE(make_ref(ref_kind::commit, "abc"));
  EXPECT_FALSE(make_ref(ref_kind::commit, std::string(41, 'a')));
  EXPECT_FALSE(make_ref(ref_kind::commit, "main"));
  auto head = make_ref(ref_kind::head, "ignored");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->name, "");
}

TEST(MirrorRevision, RefspecsAndRefNames) {
  const git_ref head{ref_kind::head, ""};
  const git_ref branch{ref_kind::branch, "main"};
  const git_ref tag{ref_kind::tag, "v1"};
  const git_ref commit{ref_kind::commit, "abcd"};
  EXPECT_EQ(fetch_refspecs(head), std::vector<std::string>{"+refs/heads/*:refs/remotes/origin/*"});
  EXPECT_EQ(fetch_refspecs(branch),
            std::vector<std::string>{"+refs/heads/main:refs/remotes/origin/main"});
  EXPECT_EQ(fetch_refspecs(tag), std::vector<std::string>{"+refs/tags/v1:refs/tags/v1"});
  EXPECT_EQ(fetch_refspecs(commit).size(), 2u);
  EXPECT_EQ(advertised_ref(head), "HEAD");
  EXPECT_EQ(advertised_ref(branch), "refs/heads/main");
  EXPECT_EQ(advertised_ref(tag), "refs/tags/v1");
  EXPECT_EQ(advertised_ref(commit), "");
  EXPECT_EQ(local_ref(branch), "refs/remotes/origin/main");
  EXPECT_EQ(local_ref(tag), "refs/tags/v1");
  EXPECT_EQ(describe(branch), "branch main");
  EXPECT_EQ(describe(head), "the remote's HEAD");
}

TEST(MirrorRevision, CommitIdsAreFortyLowerHexDigits) {
  EXPECT_TRUE(is_commit_id(std::string(40, 'a')));
  EXPECT_TRUE(archive::valid_revision(std::string(40, '0')));
  EXPECT_FALSE(is_commit_id(std::string(39, 'a')));
  EXPECT_FALSE(is_commit_id(std::string(40, 'A')));
  EXPECT_FALSE(is_commit_id(std::string(40, 'g')));
}

}  // namespace
}  // namespace tidesync::mirror
