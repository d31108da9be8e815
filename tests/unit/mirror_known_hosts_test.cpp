// SSH host key checks against known_hosts text (pure), as the git syncer does them.
#include <gtest/gtest.h>

#include <string>

#include "runtime/base64.hpp"
#include "runtime/mirror/known_hosts.hpp"

namespace tidesync::mirror {
namespace {

// An ed25519 public key blob (SSH wire format) whose key bytes are 0, 1, ... 31.
const std::string k_key_b64 =
    "AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
const std::string k_other_b64 =
    "AAAAC3NzaC1lZDI1NTE5AAAAIGykkJVD/G4ZhkPXeJIa7pKSBRnnqeS0C4PYZl7wG3x4";

std::string blob(const std::string& b64) {
  return *base64::decode(b64);
}

TEST(MirrorKnownHosts, NamesPortsAsOpenSshDoes) {
  EXPECT_EQ(known_hosts_name("git.example.com", 22), "git.example.com");
  EXPECT_EQ(known_hosts_name("git.example.com", 0), "git.example.com");
  EXPECT_EQ(known_hosts_name("127.0.0.1", 2222), "[127.0.0.1]:2222");
}

TEST(MirrorKnownHosts, KeyTypeAndFingerprint) {
  EXPECT_EQ(key_type(blob(k_key_b64)), "ssh-ed25519");
  EXPECT_EQ(key_type("xx"), "");
  // As `ssh-keygen -l` prints it (computed independently with Python's hashlib).
  EXPECT_EQ(sha256_fingerprint(blob(k_key_b64)),
            "SHA256:ZkAslGjFiUHdGf/WUL8rQvkib4PTvQatUV0OUQSncCA");
}

TEST(MirrorKnownHosts, PlainNamesPatternsAndPorts) {
  const std::string file =
      "# comment\n\n"
      "git.example.com,10.0.0.5 ssh-ed25519 " +
      k_key_b64 +
      " c\n"
      "*.corp.example ssh-ed25519 " +
      k_key_b64 +
      "\n"
      "[127.0.0.1]:2222 ssh-ed25519 " +
      k_key_b64 + "\n";
  const std::string key = blob(k_key_b64);
  EXPECT_EQ(check_host_key(file, "git.example.com", 22, key).verdict, host_key_verdict::match);
  EXPECT_EQ(check_host_key(file, "GIT.example.com", 22, key).verdict, host_key_verdict::match);
  EXPECT_EQ(check_host_key(file, "10.0.0.5", 22, key).verdict, host_key_verdict::match);
  EXPECT_EQ(check_host_key(file, "a.corp.example", 22, key).verdict, host_key_verdict::match);
  EXPECT_EQ(check_host_key(file, "127.0.0.1", 2222, key).verdict, host_key_verdict::match);
  EXPECT_EQ(check_host_key(file, "127.0.0.1", 22, key).verdict, host_key_verdict::unknown_host)
      << "port 22 is another entry than [host]:2222";
  EXPECT_EQ(check_host_key(file, "git.example.com", 2200, key).verdict,
            host_key_verdict::unknown_host);
  EXPECT_EQ(check_host_key(file, "other.example.com", 22, key).verdict,
            host_key_verdict::unknown_host);
}

TEST(MirrorKnownHosts, AnotherKeyForAKnownHostIsAMismatchThatNamesTheKnownTypes) {
  const std::string file = "git.example.com ssh-ed25519 " + k_key_b64 + "\n" +
                           "git.example.com ssh-rsa " + k_other_b64 + "\n";
  auto r = check_host_key(file, "git.example.com", 22, blob(k_other_b64.substr(0, 8) + "AAAA"));
  EXPECT_EQ(r.verdict, host_key_verdict::mismatch);
  EXPECT_EQ(r.known_types, (std::vector<std::string>{"ssh-ed25519", "ssh-rsa"}));
  auto ok = check_host_key(file, "git.example.com", 22, blob(k_other_b64));
  EXPECT_EQ(ok.verdict, host_key_verdict::match) << "any listed key of the host will do";
  EXPECT_TRUE(ok.known_types.empty());
}

TEST(MirrorKnownHosts, HashedNamesMatchTheirHostOnly) {
  // ssh-keygen -H form, salt 00 01 .. 13 (HMAC-SHA1 computed independently).
  const std::string file =
      "|1|AAECAwQFBgcICQoLDA0ODxAREhM=|nnUK16ANsXd3hL31YfAkGOluSjU= ssh-ed25519 " + k_key_b64 +
      "\n|1|AAECAwQFBgcICQoLDA0ODxAREhM=|zKYaAqmSav3Qxr2sffNqWFIcbe4= ssh-ed25519 " + k_key_b64 +
      "\n";
  const std::string key = blob(k_key_b64);
  EXPECT_EQ(check_host_key(file, "example.com", 22, key).verdict, host_key_verdict::match);
  EXPECT_EQ(check_host_key(file, "127.0.0.1", 2222, key).verdict, host_key_verdict::match);
  EXPECT_EQ(check_host_key(file, "example.org", 22, key).verdict, host_key_verdict::unknown_host);
}

TEST(MirrorKnownHosts, NegationAndMarkers) {
  const std::string key = blob(k_key_b64);
  const std::string negated = "*.example.com,!bad.example.com ssh-ed25519 " + k_key_b64 + "\n";
  EXPECT_EQ(check_host_key(negated, "good.example.com", 22, key).verdict, host_key_verdict::match);
  EXPECT_EQ(check_host_key(negated, "bad.example.com", 22, key).verdict,
            host_key_verdict::unknown_host);
  const std::string revoked = "git.example.com ssh-ed25519 " + k_key_b64 + "\n" +
                              "@revoked * ssh-ed25519 " + k_key_b64 + "\n";
  EXPECT_EQ(check_host_key(revoked, "git.example.com", 22, key).verdict, host_key_verdict::revoked);
  const std::string ca = "@cert-authority *.example.com ssh-ed25519 " + k_key_b64 + "\n";
  EXPECT_EQ(check_host_key(ca, "git.example.com", 22, key).verdict, host_key_verdict::unknown_host)
      << "host certificates are not supported: a CA line is no host key";
  EXPECT_EQ(check_host_key("garbage line\r\nhost ssh-ed25519 !!!\n", "host", 22, key).verdict,
            host_key_verdict::mismatch);
}

TEST(MirrorKnownHosts, PatternMatching) {
  EXPECT_TRUE(host_pattern_match("*", "anything"));
  EXPECT_TRUE(host_pattern_match("git?.example.com", "git1.example.com"));
  EXPECT_FALSE(host_pattern_match("git?.example.com", "git12.example.com"));
  EXPECT_TRUE(host_pattern_match("*.a.*", "x.a.y"));
  EXPECT_FALSE(host_pattern_match("a", "ab"));
  EXPECT_TRUE(host_pattern_match("[127.0.0.1]:22*", "[127.0.0.1]:2222"));
}

}  // namespace
}  // namespace tidesync::mirror
