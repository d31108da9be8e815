// Git URL forms, their redaction for logs, and scrubbing secrets out of messages (pure).
#include <gtest/gtest.h>

#include <string>

#include "runtime/mirror/git_url.hpp"

namespace tidesync::mirror {
namespace {

TEST(MirrorGitUrl, ParsesTheAcceptedForms) {
  auto https = parse_git_url("https://alice:s3cret@git.example.com:8443/org/docs.git");
  ASSERT_TRUE(https) << https.error().message;
  EXPECT_EQ(https->transport, git_transport::https);
  EXPECT_EQ(https->user, "alice");
  EXPECT_EQ(https->password, "s3cret");
  EXPECT_EQ(https->host, "git.example.com");
  EXPECT_EQ(https->port, 8443);
  EXPECT_EQ(https->path, "/org/docs.git");

  auto ssh = parse_git_url("ssh://git@[::1]:2222/org/docs.git");
  ASSERT_TRUE(ssh) << ssh.error().message;
  EXPECT_EQ(ssh->transport, git_transport::ssh);
  EXPECT_EQ(ssh->user, "git");
  EXPECT_EQ(ssh->host, "::1");
  EXPECT_EQ(ssh->port, 2222);

  auto scp = parse_git_url("git@github.com:org/repo.git");
  ASSERT_TRUE(scp) << scp.error().message;
  EXPECT_EQ(scp->transport, git_transport::ssh);
  EXPECT_TRUE(scp->scp_like);
  EXPECT_EQ(scp->user, "git");
  EXPECT_EQ(scp->host, "github.com");
  EXPECT_EQ(scp->path, "org/repo.git");
  EXPECT_EQ(scp->port, 0);

  auto file = parse_git_url("file:///srv/git/docs.git");
  ASSERT_TRUE(file);
  EXPECT_EQ(file->transport, git_transport::local);
  EXPECT_EQ(file->path, "/srv/git/docs.git");
  auto path = parse_git_url("/srv/git/docs");
  ASSERT_TRUE(path);
  EXPECT_EQ(path->transport, git_transport::local);
  auto rel = parse_git_url("./docs");
  ASSERT_TRUE(rel);
  EXPECT_EQ(rel->transport, git_transport::local);
  auto git = parse_git_url("git://host/repo");
  ASSERT_TRUE(git);
  EXPECT_EQ(git->transport, git_transport::git);
  auto encoded = parse_git_url("https://u:p%40ss@host/r");
  ASSERT_TRUE(encoded);
  EXPECT_EQ(encoded->password, "p@ss");
}

TEST(MirrorGitUrl, RefusesWhatIsNoGitUrlWithoutShowingSecrets) {
  for (const char* bad : {"", "ftp://host/repo", "https://host", "https://host/", "noscheme/path",
                          "host:", ":path", "https://host:99999/r", "https://host:x/r",
                          "ssh://u:pw@host/r", "with space:x", "user@:path"}) {
    auto r = parse_git_url(bad);
    EXPECT_FALSE(r) << bad;
  }
  auto r = parse_git_url("ftp://bob:hunter2@host/repo");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.find("hunter2"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("https://"), std::string::npos);
}

TEST(MirrorGitUrl, RedactionDropsUserInfoAndQueries) {
  EXPECT_EQ(redact_url("https://alice:s3cret@host/org/r.git"), "https://host/org/r.git");
  EXPECT_EQ(redact_url("https://ghp_TOKEN@host/org/r.git"), "https://host/org/r.git")
      << "a token may be the user name";
  EXPECT_EQ(redact_url("https://host/r.git?private_token=abc#x"), "https://host/r.git");
  EXPECT_EQ(redact_url("ssh://git@host:22/r.git"), "ssh://git@host:22/r.git");
  EXPECT_EQ(redact_url("ssh://git:pw@host/r.git"), "ssh://git@host/r.git");
  EXPECT_EQ(redact_url("git@host:org/r.git"), "git@host:org/r.git");
  EXPECT_EQ(redact_url("/srv/git/docs"), "/srv/git/docs");
  EXPECT_EQ(redact_url("https://u:p@host"), "https://host");
  EXPECT_EQ(redact_url("bucket/prefix"), "bucket/prefix");
}

TEST(MirrorGitUrl, ScrubReplacesEverySecretLongestFirst) {
  EXPECT_EQ(scrub("auth for alice:s3cret failed; s3cret again", {"s3cret", "alice:s3cret"}),
            "auth for *** failed; *** again");
  EXPECT_EQ(scrub("nothing here", {"", "zzz"}), "nothing here");
  EXPECT_EQ(scrub("aaaa", {"aa"}), "******");
}

}  // namespace
}  // namespace tidesync::mirror
