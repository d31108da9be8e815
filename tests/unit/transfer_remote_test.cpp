// parse_location: local paths, NAME:bucket/prefix with rclone's RCLONE_CONFIG_<NAME>_* env
// (given as a map, not the process environment), and the errors that say what to set.
#include <gtest/gtest.h>

#include <map>

#include "runtime/transfer/crypt.hpp"
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
  auto loc = parse_location("box:x", env_of({{"RCLONE_CONFIG_BOX_TYPE", "drive"}}));
  ASSERT_FALSE(loc);
  EXPECT_EQ(loc.error().code, errc::config_error);
  EXPECT_NE(loc.error().message.find("not supported"), std::string::npos);
  EXPECT_NE(loc.error().message.find("--engine=rclone"), std::string::npos);
}

TEST(transfer_remote, http_urls_and_http_remotes) {
  auto direct = parse_location("https://example.com/files/", env_of({}));
  ASSERT_TRUE(direct) << direct.error().message;
  EXPECT_EQ(direct->kind, location_kind::http);
  EXPECT_EQ(direct->url, "https://example.com/files/");

  auto named =
      parse_location("web:sub/dir/", env_of({{"RCLONE_CONFIG_WEB_TYPE", "http"},
                                             {"RCLONE_CONFIG_WEB_URL", "http://h:8080/root"}}));
  ASSERT_TRUE(named) << named.error().message;
  EXPECT_EQ(named->url, "http://h:8080/root/sub/dir/");

  auto no_url = parse_location("web:x", env_of({{"RCLONE_CONFIG_WEB_TYPE", "http"}}));
  ASSERT_FALSE(no_url);
  EXPECT_NE(no_url.error().message.find("RCLONE_CONFIG_WEB_URL"), std::string::npos);
}

TEST(transfer_remote, sftp_remote_reveals_the_obscured_password) {
  const std::string obscured = tidesync::transfer::crypt::obscure("hunter2");
  auto loc = parse_location("box:/srv/data/", env_of({{"RCLONE_CONFIG_BOX_TYPE", "sftp"},
                                                      {"RCLONE_CONFIG_BOX_HOST", "10.0.0.5"},
                                                      {"RCLONE_CONFIG_BOX_PORT", "2222"},
                                                      {"RCLONE_CONFIG_BOX_USER", "backup"},
                                                      {"RCLONE_CONFIG_BOX_PASS", obscured}}));
  ASSERT_TRUE(loc) << loc.error().message;
  EXPECT_EQ(loc->kind, location_kind::sftp);
  EXPECT_EQ(loc->sftp.host, "10.0.0.5");
  EXPECT_EQ(loc->sftp.port, 2222);
  EXPECT_EQ(loc->sftp.user, "backup");
  EXPECT_EQ(loc->sftp.password, "hunter2");
  EXPECT_EQ(loc->path, "/srv/data");

  auto plain = parse_location("box:x", env_of({{"RCLONE_CONFIG_BOX_TYPE", "sftp"},
                                               {"RCLONE_CONFIG_BOX_HOST", "h"},
                                               {"RCLONE_CONFIG_BOX_USER", "u"},
                                               {"RCLONE_CONFIG_BOX_PASS", "hunter2"}}));
  ASSERT_FALSE(plain) << "a plain password where rclone wants an obscured one";
  EXPECT_NE(plain.error().message.find("rclone obscure"), std::string::npos);
  EXPECT_EQ(plain.error().message.find("hunter2"), std::string::npos) << "never echoed";

  auto bad_port = parse_location("box:x", env_of({{"RCLONE_CONFIG_BOX_TYPE", "sftp"},
                                                  {"RCLONE_CONFIG_BOX_HOST", "h"},
                                                  {"RCLONE_CONFIG_BOX_USER", "u"},
                                                  {"RCLONE_CONFIG_BOX_KEY_FILE", "/k"},
                                                  {"RCLONE_CONFIG_BOX_PORT", "99999"}}));
  ASSERT_FALSE(bad_port);
  EXPECT_NE(bad_port.error().message.find("PORT"), std::string::npos);
}

TEST(transfer_remote, crypt_wraps_another_remote) {
  auto vars = k_minio;
  vars["RCLONE_CONFIG_VAULT_TYPE"] = "crypt";
  vars["RCLONE_CONFIG_VAULT_REMOTE"] = "my-remote:bucket/enc";
  vars["RCLONE_CONFIG_VAULT_PASSWORD"] = tidesync::transfer::crypt::obscure("pw");
  vars["RCLONE_CONFIG_VAULT_FILENAME_ENCRYPTION"] = "off";
  auto loc = parse_location("vault:/photos/", env_of(vars));
  ASSERT_TRUE(loc) << loc.error().message;
  EXPECT_EQ(loc->kind, location_kind::crypt);
  EXPECT_EQ(loc->path, "photos");
  ASSERT_NE(loc->inner, nullptr);
  EXPECT_EQ(loc->inner->kind, location_kind::s3);
  EXPECT_EQ(loc->inner->bucket, "bucket");
  EXPECT_EQ(loc->crypt.password, "pw");
  EXPECT_TRUE(loc->crypt.salt.empty());
  EXPECT_FALSE(loc->crypt.encrypt_names);

  vars.erase("RCLONE_CONFIG_VAULT_PASSWORD");
  auto no_pw = parse_location("vault:", env_of(vars));
  ASSERT_FALSE(no_pw);
  EXPECT_NE(no_pw.error().message.find("RCLONE_CONFIG_VAULT_PASSWORD"), std::string::npos);

  auto loop = env_of({{"RCLONE_CONFIG_A_TYPE", "crypt"},
                      {"RCLONE_CONFIG_A_REMOTE", "a:x"},
                      {"RCLONE_CONFIG_A_PASSWORD", tidesync::transfer::crypt::obscure("pw")}});
  auto looped = parse_location("a:", loop);
  ASSERT_FALSE(looped);
  EXPECT_NE(looped.error().message.find("deep"), std::string::npos);
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
