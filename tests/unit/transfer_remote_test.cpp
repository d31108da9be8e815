// parse_location: local paths, NAME:bucket/prefix with rclone's RCLONE_CONFIG_<NAME>_* env
// (given as a map, not the process environment), and the errors that say what to set.
#include <gtest/gtest.h>

#include <map>

#include "runtime/transfer/remote.hpp"

namespace {

using namespace tidesync;
using namespace tidesync::transfer;

env_lookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

const std::map<std::string, std::string> k_minio = {
    {"RCLONE_CONFIG_MY_REMOTE_TYPE", "s3"},
    {"RCLONE_CONFIG_MY_REMOTE_PROVIDER", "Minio"},
    {"RCLONE_CONFIG_MY_REMOTE_ACCESS_KEY_ID", "AKIAEXAMPLE"},
    {"RCLONE_CONFIG_MY_REMOTE_SECRET_ACCESS_KEY", "very-secret"},
    {"RCLONE_CONFIG_MY_REMOTE_ENDPOINT", "http://minio:9000/"},
    {"RCLONE_CONFIG_MY_REMOTE_REGION", "eu-west-1"},
};

TEST(transfer_remote, local_paths) {
  for (const char* p : {"/data", "relative/dir", "./a:b", "/x/y:z", "dir"}) {
    auto loc = parse_location(p, env_of({}));
    ASSERT_TRUE(loc) << p << ": " << loc.error().to_string();
    EXPECT_EQ(loc->kind, location_kind::local) << p;
    EXPECT_EQ(loc->path, p);
  }
  EXPECT_FALSE(parse_location("", env_of({})));
}

TEST(transfer_remote, s3_remote_name_upper_cased_dash_to_underscore) {
  auto loc = parse_location("my-remote:bucket/some/prefix/", env_of(k_minio));
  ASSERT_TRUE(loc) << loc.error().to_string();
  EXPECT_EQ(loc->kind, location_kind::s3);
  EXPECT_EQ(loc->remote_name, "my-remote");
  EXPECT_EQ(loc->bucket, "bucket");
  EXPECT_EQ(loc->prefix, "some/prefix/");
  EXPECT_EQ(loc->s3.endpoint, "http://minio:9000");
  EXPECT_EQ(loc->s3.region, "eu-west-1");
  EXPECT_EQ(loc->s3.access_key_id, "AKIAEXAMPLE");
  EXPECT_EQ(loc->s3.secret_access_key, "very-secret");
  EXPECT_TRUE(loc->s3.path_style);

  auto root = parse_location("MY_REMOTE:bucket", env_of(k_minio));
  ASSERT_TRUE(root) << root.error().to_string();
  EXPECT_EQ(root->prefix, "");
}

TEST(transfer_remote, path_style_and_default_endpoint) {
  auto vars = k_minio;
  vars["RCLONE_CONFIG_MY_REMOTE_FORCE_PATH_STYLE"] = "false";
  auto loc = parse_location("my_remote:b", env_of(vars));
  ASSERT_TRUE(loc) << loc.error().to_string();
  EXPECT_FALSE(loc->s3.path_style);
  vars["RCLONE_CONFIG_MY_REMOTE_FORCE_PATH_STYLE"] = "maybe";
  auto bad = parse_location("my_remote:b", env_of(vars));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("FORCE_PATH_STYLE"), std::string::npos);

  vars.erase("RCLONE_CONFIG_MY_REMOTE_FORCE_PATH_STYLE");
  vars.erase("RCLONE_CONFIG_MY_REMOTE_ENDPOINT");
  vars["RCLONE_CONFIG_MY_REMOTE_PROVIDER"] = "AWS";
  auto aws = parse_location("my_remote:b", env_of(vars));
  ASSERT_TRUE(aws) << aws.error().to_string();
  EXPECT_EQ(aws->s3.endpoint, "https://s3.eu-west-1.amazonaws.com");

  vars["RCLONE_CONFIG_MY_REMOTE_PROVIDER"] = "Minio";
  auto minio = parse_location("my_remote:b", env_of(vars));
  ASSERT_FALSE(minio);
  EXPECT_NE(minio.error().message.find("RCLONE_CONFIG_MY_REMOTE_ENDPOINT"), std::string::npos);
}

TEST(transfer_remote, unknown_remote_says_what_to_set) {
  auto loc = parse_location("backup:bucket", env_of({}));
  ASSERT_FALSE(loc);
  EXPECT_EQ(loc.error().code, errc::config_error);
  EXPECT_NE(loc.error().message.find("no RCLONE_CONFIG_BACKUP_TYPE in the environment"),
            std::string::npos)
      << loc.error().message;
}

TEST(transfer_remote, unsupported_type) {
  auto loc = parse_location("box:x", env_of({{"RCLONE_CONFIG_BOX_TYPE", "sftp"}}));
  ASSERT_FALSE(loc);
  EXPECT_EQ(loc.error().code, errc::config_error);
  EXPECT_NE(loc.error().message.find("not supported"), std::string::npos);
}

TEST(transfer_remote, missing_credentials_named_and_secret_never_printed) {
  auto vars = k_minio;
  vars.erase("RCLONE_CONFIG_MY_REMOTE_SECRET_ACCESS_KEY");
  auto loc = parse_location("my-remote:b", env_of(vars));
  ASSERT_FALSE(loc);
  EXPECT_EQ(loc.error().code, errc::config_error);
  EXPECT_NE(loc.error().message.find("set RCLONE_CONFIG_MY_REMOTE_SECRET_ACCESS_KEY"),
            std::string::npos)
      << loc.error().message;
  EXPECT_EQ(loc.error().message.find("AKIAEXAMPLE"), std::string::npos);

  vars = k_minio;
  vars["RCLONE_CONFIG_MY_REMOTE_FORCE_PATH_STYLE"] = "nope";
  auto bad = parse_location("my-remote:b", env_of(vars));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message.find("very-secret"), std::string::npos);
}

TEST(transfer_remote, bucket_required) {
  auto loc = parse_location("my-remote:", env_of(k_minio));
  ASSERT_FALSE(loc);
  EXPECT_EQ(loc.error().code, errc::invalid_argument);
}

}  // namespace
