// spec.sourceEnv / destinationEnv → the rclone Job's container env.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/env_var.hpp"
#include "config/rclone_env.hpp"
#include "runtime/json/value.hpp"

using namespace tidesync::config;
namespace json = tidesync::json;

namespace {

env_var literal(std::string name, std::string value) {
  return {.name = std::move(name), .value = std::move(value), .value_from = std::nullopt};
}

env_var secret(std::string name, std::string secret_name, std::string key) {
  env_var e{.name = std::move(name), .value = std::nullopt, .value_from = env_var_source{}};
  e.value_from->secret_key_ref = key_selector{std::move(secret_name), std::move(key), {}};
  return e;
}

}  // namespace

TEST(RcloneEnv, PrefixesAndUpperCasesAsTheSeedShows) {
  EXPECT_EQ(rclone_env_name("source", "TYPE"), "RCLONE_CONFIG_SOURCE_TYPE");
  EXPECT_EQ(rclone_env_name("destination", "access_key_id"),
            "RCLONE_CONFIG_DESTINATION_ACCESS_KEY_ID");
  auto env = rclone_env({literal("TYPE", "s3"), literal("provider", "Garage")},
                        {secret("ACCESS_KEY_ID", "s3-credentials", "ACCESS_KEY_ID")});
  ASSERT_TRUE(env.has_value()) << env.error().message;
  ASSERT_EQ(env->size(), 3u);
  EXPECT_EQ((*env)[0].name, "RCLONE_CONFIG_SOURCE_TYPE");
  EXPECT_EQ((*env)[0].value, "s3");
  EXPECT_EQ((*env)[1].name, "RCLONE_CONFIG_SOURCE_PROVIDER");
  EXPECT_EQ((*env)[1].value, "Garage");  // values keep their case
  EXPECT_EQ((*env)[2].name, "RCLONE_CONFIG_DESTINATION_ACCESS_KEY_ID");
}

TEST(RcloneEnv, ValueFromStaysAReference) {
  auto env =
      rclone_env({secret("SECRET_ACCESS_KEY", "garage-credentials", "SECRET_ACCESS_KEY")}, {});
  ASSERT_TRUE(env.has_value());
  const auto& e = (*env)[0];
  EXPECT_FALSE(e.value);
  EXPECT_EQ(json::dump(to_json(e)),
            R"({"name":"RCLONE_CONFIG_SOURCE_SECRET_ACCESS_KEY","valueFrom":)"
            R"({"secretKeyRef":{"name":"garage-credentials","key":"SECRET_ACCESS_KEY"}}})");
}

TEST(RcloneEnv, RejectsBadAndCollidingNamesWithTheirPaths) {
  auto env = rclone_env({literal("access-key", "x"), literal("TYPE", "s3"), literal("type", "b2")},
                        {literal("9LIVES", "x"), literal("", "x")});
  ASSERT_FALSE(env.has_value());
  const auto& e = env.error();
  EXPECT_EQ(e.code, tidesync::errc::invalid_argument);
  ASSERT_EQ(e.causes.size(), 4u) << e.message;
  EXPECT_EQ(e.causes[0].field, "spec.sourceEnv[0].name");
  EXPECT_NE(e.causes[0].message.find("\"access-key\" is not a valid environment variable name"),
            std::string::npos);
  EXPECT_NE(e.causes[0].message.find("ACCESS_KEY_ID"), std::string::npos);
  EXPECT_EQ(e.causes[1].field, "spec.sourceEnv[2].name");
  EXPECT_NE(e.causes[1].message.find("RCLONE_CONFIG_SOURCE_TYPE"), std::string::npos);
  EXPECT_EQ(e.causes[2].field, "spec.destinationEnv[0].name");
  EXPECT_EQ(e.causes[3].field, "spec.destinationEnv[1].name");
  // The same name on both sides is fine: the prefixes differ.
  EXPECT_TRUE(rclone_env({literal("TYPE", "s3")}, {literal("TYPE", "s3")}).has_value());
}

TEST(RcloneEnv, PrefixEnvForOneRemote) {
  auto env = prefix_env({literal("Type", "local")}, "dst2", "spec.extraEnv");
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ((*env)[0].name, "RCLONE_CONFIG_DST2_TYPE");
  auto bad = prefix_env({literal("A B", "x")}, "dst2", "spec.extraEnv");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().causes[0].field, "spec.extraEnv[0].name");
}

TEST(RcloneEnv, ArgumentForALocation) {
  EXPECT_EQ(rclone_argument("my-bucket", k_source_remote, true), "source:my-bucket");
  EXPECT_EQ(rclone_argument("my-bucket/a", k_destination_remote, true), "destination:my-bucket/a");
  EXPECT_EQ(rclone_argument("s3:my-bucket", k_source_remote, true), "s3:my-bucket");
  EXPECT_EQ(rclone_argument(":s3:my-bucket", k_source_remote, true), ":s3:my-bucket");
  EXPECT_EQ(rclone_argument("/data/import", k_source_remote, false), "/data/import");
}

TEST(EnvVar, ParsesFieldRefAndResourceFieldRefAndRoundTrips) {
  auto list = json::parse(R"([
    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                       "divisor": "1Mi"}}},
    {"name": "EMPTY"}])");
  ASSERT_TRUE(list.has_value());
  problems p;
  auto env = parse_env_list(&*list, "spec.sourceEnv", p);
  EXPECT_TRUE(p.empty()) << p.to_error("x").message;
  ASSERT_EQ(env.size(), 3u);
  EXPECT_EQ(env[0].value_from->field_ref->field_path, "metadata.namespace");
  EXPECT_EQ(env[1].value_from->resource_field_ref->divisor, "1Mi");
  EXPECT_EQ(to_json(env), *list);
}
