// SharedConfig parsing and validation (config/sharedconfig.hpp): every bad field is reported at
// once, with what to write instead.
#include <gtest/gtest.h>

#include <string>

#include "config/sharedconfig.hpp"
#include "runtime/json/value.hpp"

using namespace tidesync;
using namespace tidesync::config;

namespace {

json::value object(const std::string& spec) {
  auto v = json::parse(R"({"apiVersion":"tidesync.io/v1alpha1","kind":"SharedConfig",
    "metadata":{"name":"alice","namespace":"team-a","uid":"u1","generation":2},"spec":)" +
                       spec + "}");
  EXPECT_TRUE(v.has_value()) << spec;
  return v ? std::move(*v) : json::value{};
}

}  // namespace

TEST(SharedConfig, ParsesWithDefaults) {
  auto c = parse_sharedconfig(
      object(R"({"ownerId":"alice","bucket":"spritz-config","secretRef":{"name":"store"}})"));
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->metadata.namespace_, "team-a");
  EXPECT_EQ(c->spec.owner_id, "alice");
  EXPECT_EQ(c->spec.bucket, "spritz-config");
  EXPECT_EQ(c->spec.prefix, "");
  EXPECT_EQ(c->spec.secret_name, "store");
  EXPECT_EQ(c->spec.max_bundle_bytes, k_default_max_bundle_bytes);
  EXPECT_EQ(c->spec.retain_revisions, k_default_retain_revisions);
  EXPECT_EQ(sharedconfig_root(c->spec), "alice");
}

TEST(SharedConfig, PrefixAndLimits) {
  auto c = parse_sharedconfig(object(
      R"({"ownerId":"u-1.a_b","bucket":"b12","prefix":"spritz-config/v1","secretRef":{"name":"s"},
          "maxBundleBytes":2048,"retainRevisions":3})"));
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(sharedconfig_root(c->spec), "spritz-config/v1/u-1.a_b");
  EXPECT_EQ(c->spec.max_bundle_bytes, 2048);
  EXPECT_EQ(c->spec.retain_revisions, 3);
}

TEST(SharedConfig, EveryProblemAtOnce) {
  auto c = parse_sharedconfig(object(
      R"({"ownerId":"../etc","bucket":"B","prefix":"/a//b/","maxBundleBytes":1,"retainRevisions":0})"));
  ASSERT_FALSE(c.has_value());
  const auto& m = c.error().message;
  for (const char* field : {"spec.ownerId", "spec.bucket", "spec.prefix", "spec.secretRef",
                            "spec.maxBundleBytes", "spec.retainRevisions"})
    EXPECT_NE(m.find(field), std::string::npos) << field << " in " << m;
  EXPECT_NE(m.find("SharedConfig team-a/alice"), std::string::npos) << m;
}

TEST(SharedConfig, MissingSpecAndWrongTypes) {
  auto v = json::parse(R"({"kind":"SharedConfig","metadata":{"name":"x","namespace":"n"}})");
  auto c = parse_sharedconfig(*v);
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("spec"), std::string::npos);
  c = parse_sharedconfig(object(R"({"ownerId":5,"bucket":"abc","secretRef":"s"})"));
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("spec.ownerId"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("spec.secretRef"), std::string::npos) << c.error().message;
}

TEST(SharedConfig, StatusRoundTrip) {
  sharedconfig_status s;
  s.revision = "2026-02-05T10-30-00Z";
  s.checksum = "sha256:" + std::string(64, 'a');
  s.size = 42;
  s.observed_generation = 2;
  s.conditions.push_back(make_condition("Ready", "True", "Published", "revision x"));
  auto doc = object(R"({"ownerId":"alice","bucket":"abc","secretRef":{"name":"s"}})");
  doc.as_object()["status"] = to_json(s);
  auto c = parse_sharedconfig(doc);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->status.revision, s.revision);
  EXPECT_EQ(c->status.checksum, s.checksum);
  EXPECT_EQ(c->status.size, 42);
  ASSERT_EQ(c->status.conditions.size(), 1U);
  EXPECT_EQ(c->status.conditions[0].reason, "Published");
  EXPECT_TRUE(to_json(sharedconfig_status{}).at("revision")->is_null());
}
