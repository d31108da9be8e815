#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/transfer/safety.hpp"

namespace tidesync::transfer {
namespace {

namespace fs = std::filesystem;

TEST(TransferSafety, NormalizesPaths) {
  EXPECT_EQ(normalize_local_path("/"), "/");
  EXPECT_EQ(normalize_local_path("//usr//bin/"), "/usr/bin");
  EXPECT_EQ(normalize_local_path("/usr/./lib/../bin"), "/usr/bin");
  EXPECT_EQ(normalize_local_path("/.."), "/");
  EXPECT_EQ(normalize_local_path("/a/b/../../.."), "/");
  EXPECT_EQ(normalize_local_path("/data/my dir/é"), "/data/my dir/é");
  const std::string cwd = fs::current_path().string();
  EXPECT_EQ(normalize_local_path("x/y"), cwd == "/" ? "/x/y" : cwd + "/x/y");
}

TEST(TransferSafety, RefusesSystemRoots) {
  for (const char* p : {"/",         "/bin",         "/sbin",         "/usr",      "/usr/bin",
                        "/usr/lib",  "/usr/lib64",   "/lib",          "/lib64",    "/lib32",
                        "/etc",      "/home",        "/root",         "/boot",     "/dev",
                        "/proc",     "/sys",         "/var",          "/usr/bin/", "/home/",
                        "//",        "/usr/../home", "/home/user/..", "/./etc/.",  "/usr/local/..",
                        "/../../bin"}) {
    auto r = check_sync_root(p);
    ASSERT_FALSE(r.has_value()) << p;
    EXPECT_EQ(r.error().code, errc::invalid_argument);
    EXPECT_NE(r.error().message.find("--force-delete-local-dir"), std::string::npos);
  }
}

TEST(TransferSafety, AllowsDataDirectories) {
  for (const char* p : {"/home/user", "/home/user/data", "/var/www", "/data", "/usr/bin/x/..x",
                        "/library", "/lib64x", "/tmp/sync", "/srv/app", "/Home"}) {
    EXPECT_TRUE(check_sync_root(p).has_value()) << p;
  }
}

TEST(TransferSafety, EmptySourceNeverEmptiesDestination) {
  auto to_remote = check_not_emptying(0, 5, direction::to_remote);
  ASSERT_FALSE(to_remote.has_value());
  EXPECT_NE(to_remote.error().message.find("local directory is empty"), std::string::npos);
  EXPECT_NE(to_remote.error().message.find("5 file(s)"), std::string::npos);
  EXPECT_NE(to_remote.error().message.find("--force-delete-remote-dir"), std::string::npos);

  auto to_local = check_not_emptying(0, 1, direction::to_local);
  ASSERT_FALSE(to_local.has_value());
  EXPECT_NE(to_local.error().message.find("remote directory is empty"), std::string::npos);
  EXPECT_NE(to_local.error().message.find("--force-delete-local-dir"), std::string::npos);

  EXPECT_TRUE(check_not_emptying(0, 0, direction::to_local).has_value());  // nothing to lose
  EXPECT_TRUE(check_not_emptying(1, 100, direction::to_remote).has_value());
  EXPECT_TRUE(check_not_emptying(3, 0, direction::to_local).has_value());
}

class TransferSafetyOwner : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tidesync_safety_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // Running as root (containers, CI), a fresh dir is root-owned: hand it to another uid so
    // that the "owned by the sync's uid" path is exercised too.
    owner_ = ::geteuid();
    if (owner_ == 0) {
      owner_ = 54321;
      ASSERT_EQ(::chown(dir_.c_str(), owner_, owner_), 0);
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  uid_t owner_ = 0;
};

TEST_F(TransferSafetyOwner, OwnDirectoryPasses) {
  auto r = check_owner(dir_.string(), owner_);
  EXPECT_TRUE(r.has_value()) << r.error().message;
}

TEST_F(TransferSafetyOwner, OtherUidIsRefused) {
  const uid_t other = owner_ + 1;
  auto r = check_owner(dir_.string(), other);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::forbidden);
  EXPECT_NE(r.error().message.find("owned by uid " + std::to_string(owner_)), std::string::npos);
  EXPECT_NE(r.error().message.find("--force-delete-local-dir"), std::string::npos);
}

TEST_F(TransferSafetyOwner, RootOwnedIsRefusedEvenForRoot) {
  auto r = check_owner("/", 0);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("owned by root"), std::string::npos);
  EXPECT_FALSE(check_owner("/", ::geteuid()).has_value());
}

TEST_F(TransferSafetyOwner, MissingTargetPassesFileIsRefused) {
  EXPECT_TRUE(check_owner((dir_ / "not yet").string(), owner_).has_value());
  const auto file = dir_ / "a file";
  std::ofstream(file) << "x";
  auto r = check_owner(file.string(), owner_);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("not a directory"), std::string::npos);
}

}  // namespace
}  // namespace tidesync::transfer
