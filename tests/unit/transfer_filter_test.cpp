#include <gtest/gtest.h>

#include "runtime/transfer/filter.hpp"

namespace tidesync::transfer {
namespace {

filter make(std::vector<filter_rule> rules) {
  auto f = filter::parse(rules);
  EXPECT_TRUE(f.has_value()) << (f ? "" : f.error().message);
  return std::move(*f);
}

filter excl(const std::string& p) {
  return make({{filter_action::exclude, p}});
}

// true when the single exclude pattern matches the file path
bool hit(const std::string& pattern, const std::string& path) {
  return !excl(pattern).included(path, false);
}

TEST(TransferFilter, EmptyRulesIncludeEverything) {
  auto f = make({});
  EXPECT_TRUE(f.empty());
  EXPECT_TRUE(f.included("a/b/c", false));
  EXPECT_TRUE(f.included("a", true));
}

TEST(TransferFilter, UnanchoredMatchesWholeTrailingElements) {
  EXPECT_TRUE(hit("file.jpg", "file.jpg"));
  EXPECT_TRUE(hit("file.jpg", "directory/file.jpg"));
  EXPECT_FALSE(hit("file.jpg", "afile.jpg"));
  EXPECT_FALSE(hit("file.jpg", "directory/afile.jpg"));
  EXPECT_TRUE(hit("b/c.txt", "a/b/c.txt"));
  EXPECT_FALSE(hit("b/c.txt", "a/xb/c.txt"));
}

TEST(TransferFilter, LeadingSlashAnchorsAtRoot) {
  EXPECT_TRUE(hit("/file.jpg", "file.jpg"));
  EXPECT_FALSE(hit("/file.jpg", "directory/file.jpg"));
  EXPECT_TRUE(hit("/*.jpg", "file2.jpg"));
  EXPECT_FALSE(hit("/*.jpg", "dir/file.jpg"));
}

TEST(TransferFilter, StarDoesNotCrossSlashDoubleStarDoes) {
  EXPECT_TRUE(hit("*.jpg", "dir/file.jpg"));  // unanchored: the last element
  EXPECT_FALSE(hit("/a/*.jpg", "a/b/file.jpg"));
  EXPECT_TRUE(hit("/a/**.jpg", "a/b/file.jpg"));
  EXPECT_TRUE(hit("dir/**", "dir/anyfile"));
  EXPECT_TRUE(hit("dir/**", "subdir/dir/subsubdir/anyfile"));
  EXPECT_FALSE(hit("dir/**", "subdir/file.png"));
  EXPECT_TRUE(hit("**", "x/y/z"));
  EXPECT_TRUE(hit("*", "x/y/z"));  // matches the last element "z"
  EXPECT_FALSE(hit("/*", "x/y"));
  EXPECT_TRUE(hit("/*", "x"));
}

TEST(TransferFilter, QuestionMarkIsOneCodePointNotSlash) {
  EXPECT_TRUE(hit("*.t?t", "file.txt"));
  EXPECT_TRUE(hit("*.t?t", "dir/file.tzt"));
  EXPECT_FALSE(hit("*.t?t", "file.tt"));
  EXPECT_FALSE(hit("a?b", "a/b"));
  EXPECT_TRUE(hit("caf?", "café"));  // é is two bytes, one code point
  EXPECT_FALSE(hit("caf??", "café"));
  EXPECT_TRUE(hit("?.txt", "日.txt"));  // three bytes
}

TEST(TransferFilter, CharacterClasses) {
  EXPECT_TRUE(hit("*.[a-z]", "file.a"));
  EXPECT_FALSE(hit("*.[a-z]", "file.0"));
  EXPECT_TRUE(hit("*.[!a-z]", "file.0"));
  EXPECT_TRUE(hit("*.[^a-z]", "file.0"));
  EXPECT_FALSE(hit("*.[!a-z]", "file.b"));
  EXPECT_TRUE(hit("[é]x", "éx"));
  EXPECT_TRUE(hit("[\\]]", "]"));
  EXPECT_TRUE(hit("[a\\-z]", "-"));
  EXPECT_FALSE(hit("[a\\-z]", "b"));
  EXPECT_FALSE(hit("a[/]b", "a/b"));  // a class never matches the separator
}

TEST(TransferFilter, Alternatives) {
  EXPECT_TRUE(hit("*.{jpg,png}", "file.jpg"));
  EXPECT_TRUE(hit("*.{jpg,png}", "dir/file.png"));
  EXPECT_FALSE(hit("*.{jpg,png}", "file.gif"));
  EXPECT_TRUE(hit("{a,b{c,d}}.txt", "bd.txt"));
  EXPECT_FALSE(hit("{a,b{c,d}}.txt", "b.txt"));
  EXPECT_TRUE(hit("x{,y}", "x"));
  EXPECT_TRUE(hit("/{dir1,dir2}/**", "dir2/a/b"));
  EXPECT_FALSE(hit("/{dir1,dir2}/**", "dir3/a"));
}

TEST(TransferFilter, EscapesAndLiterals) {
  EXPECT_TRUE(hit("*.\\?\\?\\?", "file.???"));
  EXPECT_FALSE(hit("*.\\?\\?\\?", "file.abc"));
  EXPECT_TRUE(hit("\\*", "*"));
  EXPECT_FALSE(hit("\\*", "a"));
  EXPECT_TRUE(hit("*\\[{JP,KR}\\]*", "song [JP] live.mp3"));
  EXPECT_TRUE(hit("my file.txt", "dir with space/my file.txt"));
  EXPECT_TRUE(hit("a,b", "a,b"));  // a comma outside braces is literal
}

TEST(TransferFilter, CaseSensitive) {
  EXPECT_TRUE(hit("potato", "potato"));
  EXPECT_FALSE(hit("potato", "POTATO"));
  EXPECT_FALSE(hit("*.JPG", "a.jpg"));
}

TEST(TransferFilter, FirstMatchWins) {
  auto f = make({{filter_action::include, "keep.log"}, {filter_action::exclude, "*.log"}});
  EXPECT_TRUE(f.included("keep.log", false));
  EXPECT_TRUE(f.included("d/keep.log", false));
  EXPECT_FALSE(f.included("other.log", false));
  EXPECT_TRUE(f.included("other.txt", false));  // no rule matches: included
  auto g = make({{filter_action::exclude, "*.log"}, {filter_action::include, "keep.log"}});
  EXPECT_FALSE(g.included("keep.log", false));
}

TEST(TransferFilter, FromFlagsPutsIncludesFirstAndImpliesExcludeAll) {
  auto f = filter::from_flags({"*.jpg"}, {"secret.jpg"});
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(f->included("a.jpg", false));
  EXPECT_TRUE(f->included("secret.jpg", false));  // includes are processed before excludes
  EXPECT_FALSE(f->included("a.png", false));      // the implied "- **"
  auto g = filter::from_flags({}, {"*.tmp"});
  ASSERT_TRUE(g.has_value());
  EXPECT_TRUE(g->included("a.png", false));
  EXPECT_FALSE(g->included("x/a.tmp", false));
}

TEST(TransferFilter, DirectoryRules) {
  auto f = excl("cache/");
  EXPECT_FALSE(f.included("cache", true));
  EXPECT_FALSE(f.included("a/cache", true));
  EXPECT_FALSE(f.included("a/cache/deeper", true));  // below an excluded directory
  EXPECT_FALSE(f.included("cache/file", false));     // "dir/" excludes its files too
  EXPECT_FALSE(f.included("a/cache/x/y", false));
  EXPECT_TRUE(f.included("cache", false));  // a FILE named cache is not a directory
  EXPECT_TRUE(f.included("cachex/file", false));

  auto g = excl("*.d");  // a file rule does not match directories
  EXPECT_TRUE(g.included("conf.d", true));
  EXPECT_FALSE(g.included("conf.d", false));

  auto anchored = excl("/top/");
  EXPECT_FALSE(anchored.included("top/x", false));
  EXPECT_TRUE(anchored.included("a/top/x", false));
}

TEST(TransferFilter, IncludeDirectoryRuleDoesNotMatchFiles) {
  auto f = filter::from_flags({"/directory/"}, {});
  ASSERT_TRUE(f.has_value());
  EXPECT_FALSE(f->included("directory/file", false));  // as rclone: "- **" still applies
  EXPECT_TRUE(f->included("directory", true));
  // an include directory rule before an exclude one keeps that directory
  auto g = make({{filter_action::include, "/keep/"}, {filter_action::exclude, "*/"}});
  EXPECT_TRUE(g.included("keep", true));
  EXPECT_FALSE(g.included("other", true));
  EXPECT_TRUE(g.included("keep/f", false));
  EXPECT_FALSE(g.included("other/f", false));
}

TEST(TransferFilter, BadPatternsNameThePattern) {
  for (const char* bad : {"[abc", "[]", "*.{jpg", "a}b", "{{re}}", "x\\", "\\d", "[[:alpha:]]",
                          "[z-a]", "", "/", "/*/{a,b"}) {
    auto f = filter::parse({{filter_action::exclude, bad}});
    ASSERT_FALSE(f.has_value()) << bad;
    EXPECT_EQ(f.error().code, errc::invalid_argument);
    EXPECT_NE(f.error().message.find(std::string("\"") + bad + "\""), std::string::npos)
        << f.error().message;
  }
}

TEST(TransferFilter, TooManyAlternativesIsAnError) {
  std::string p;
  for (int i = 0; i < 13; ++i)
    p += "{a,b}";  // 8192 alternatives
  auto f = filter::parse({{filter_action::exclude, p}});
  EXPECT_FALSE(f.has_value());
}

TEST(TransferFilter, ManyStarsStayFast) {
  // Exponential without memoisation: 20 stars against a 200-char name with no final 'b'.
  std::string p;
  for (int i = 0; i < 20; ++i)
    p += "*a";
  p += "b";
  std::string name(200, 'a');
  EXPECT_FALSE(hit(p, name));
  EXPECT_TRUE(hit(p, name + "b"));
}

}  // namespace
}  // namespace tidesync::transfer
