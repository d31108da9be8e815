// Lock Leases: the document built for a held lock, reading it back, names, MicroTime and the
// recovery verdict. Rules: docs/locks.md, "One Lease per held lock".
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "actors/lease.hpp"

namespace tidesync::actors {
namespace {

using namespace std::chrono;
using tp = lock_table::time_point;

tp at(std::string_view s) {
  auto t = parse_micro_time(s);
  EXPECT_TRUE(t.has_value()) << s;
  return t ? *t : tp{};
}

bool dns1123_label(const std::string& s) {
  static const std::regex re("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");
  return s.size() <= 63 && std::regex_match(s, re);
}

TEST(LeaseTime, FormatAndParseMicroTime) {
  tp t = sys_days{2024y / January / 15} + 2h + 3min + 4s + 123456us;
  EXPECT_EQ(format_micro_time(t), "2024-01-15T02:03:04.123456Z");
  EXPECT_EQ(format_micro_time(sys_days{2024y / February / 29}), "2024-02-29T00:00:00.000000Z");
  EXPECT_EQ(at("2024-01-15T02:03:04.123456Z"), t);
  EXPECT_EQ(at("2024-01-15T02:03:04.123456789Z"), t);  // nanoseconds truncated
  EXPECT_EQ(at("2024-01-15T02:03:04.1234Z"), t - 56us);
  EXPECT_EQ(at("2024-01-15T02:03:04Z"), t - 123456us);
  EXPECT_EQ(at("2024-01-15T04:03:04.123456+02:00"), t);
  EXPECT_EQ(at("2024-01-14t21:33:04.123456-04:30"), t);
  // Before 1970 too (the days arithmetic must not assume a positive epoch offset).
  EXPECT_EQ(format_micro_time(at("1969-12-31T23:59:59.5Z")), "1969-12-31T23:59:59.500000Z");
  for (auto bad :
       {"", "2024-01-15", "2024-01-15T02:03:04", "2024-02-30T00:00:00Z", "2024-01-15T24:00:00Z",
        "2024-01-15T02:03:04.Z", "2024-01-15T02:03:04ZZ", "2024-01-15 02:03:04Z",
        "2024-01-15T02:03:04+0200", "x024-01-15T02:03:04Z", "2024-01-15T02:03:04.1234567890Z"}) {
    auto r = parse_micro_time(bad);
    EXPECT_FALSE(r.has_value()) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, errc::parse_error);
    }
  }
}

TEST(LeaseName, Dns1123HashedAndDistinct) {
  auto n = lease_name("s3:bucket/a/b");
  EXPECT_TRUE(dns1123_label(n)) << n;
  EXPECT_EQ(n.rfind("tidesync-lock-s3-bucket-a-b-", 0), 0u) << n;
  EXPECT_EQ(n.size(), std::string("tidesync-lock-s3-bucket-a-b-").size() + 12);
  EXPECT_EQ(lease_name("s3:bucket/a/b"), n);  // stable
  // Same slug, different paths: the hash keeps them apart.
  EXPECT_NE(lease_name("s3:b/a-b"), lease_name("s3:b/a/b"));
  EXPECT_NE(lease_name("s3:b/A"), lease_name("s3:b/a"));
  std::string long_path = "s3:bucket/" + std::string(200, 'x') + "/Ünïcode dir/";
  auto l = lease_name(long_path);
  EXPECT_TRUE(dns1123_label(l)) << l;
  EXPECT_EQ(l.size(), 63u);
  EXPECT_NE(lease_name(long_path + "y"), l);
  // Nothing usable in the slug: prefix and hash only.
  EXPECT_TRUE(dns1123_label(lease_name("äö:ü")));
  std::set<std::string> names;
  for (int i = 0; i < 2000; ++i)
    names.insert(lease_name("s3:b/" + std::to_string(i)));
  EXPECT_EQ(names.size(), 2000u);
}

lease_record sample() {
  lease_record r;
  r.lease_namespace = "tidesync-system";
  r.holder = "default/nightly-1/6c1f0b3e";
  r.path = "s3:bucket/a";
  r.set = {"gcs:dst", "s3:bucket/a"};
  r.acquire_time = at("2024-01-15T02:00:00.000001Z");
  r.renew_time = at("2024-01-15T02:05:00.250000Z");
  r.duration = 600s;
  return r;
}

TEST(LeaseDoc, BuildShape) {
  auto r = sample();
  auto v = build_lease(r);
  EXPECT_EQ(v.get_string("apiVersion"), "coordination.k8s.io/v1");
  EXPECT_EQ(v.get_string("kind"), "Lease");
  EXPECT_EQ(v.at_path({"metadata", "name"})->as_string(), lease_name("s3:bucket/a"));
  EXPECT_EQ(v.at_path({"metadata", "namespace"})->as_string(), "tidesync-system");
  EXPECT_EQ(v.at_path({"metadata", "labels", "tidesync.io/lock"})->as_string(), "true");
  EXPECT_EQ(v.at_path({"metadata", "annotations", "tidesync.io/lock-path"})->as_string(),
            "s3:bucket/a");
  EXPECT_EQ(v.at_path({"metadata", "annotations", "tidesync.io/lock-set"})->as_string(),
            R"(["gcs:dst","s3:bucket/a"])");
  EXPECT_EQ(v.at("metadata")->at("resourceVersion"), nullptr);  // create: none
  const auto* spec = v.at("spec");
  ASSERT_NE(spec, nullptr);
  EXPECT_EQ(spec->get_string("holderIdentity"), "default/nightly-1/6c1f0b3e");
  EXPECT_EQ(spec->get_string("acquireTime"), "2024-01-15T02:00:00.000001Z");
  EXPECT_EQ(spec->get_string("renewTime"), "2024-01-15T02:05:00.250000Z");
  EXPECT_EQ(spec->get_int("leaseDurationSeconds"), 600);
}

TEST(LeaseDoc, RoundTripThroughText) {
  auto r = sample();
  r.resource_version = "42";
  auto text = json::dump(build_lease(r));
  auto doc = json::parse(text);
  ASSERT_TRUE(doc) << doc.error().message;
  auto back = parse_lease(*doc);
  ASSERT_TRUE(back) << back.error().message;
  r.name = lease_name(r.path);
  EXPECT_EQ(*back, r);
}

TEST(LeaseDoc, ParseNormalisesAndDefaults) {
  auto doc = json::parse(R"({"apiVersion":"coordination.k8s.io/v1","kind":"Lease",
    "metadata":{"name":"x","namespace":"ns","annotations":{"tidesync.io/lock-path":"S3:Bucket/a/"}},
    "spec":{"holderIdentity":"a/b/c","renewTime":"2024-01-15T02:05:00Z"}})");
  ASSERT_TRUE(doc);
  auto r = parse_lease(*doc);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->path, "s3:bucket/a");
  EXPECT_EQ(r->set, (std::vector<std::string>{"s3:bucket/a"}));  // no set: just the path
  EXPECT_EQ(r->acquire_time, r->renew_time);
  EXPECT_EQ(r->duration, 600s);
}

TEST(LeaseDoc, ParseErrorsNameTheField) {
  auto base = build_lease(sample());
  auto expect_error = [](const json::value& v, std::string_view needle) {
    auto r = parse_lease(v);
    ASSERT_FALSE(r.has_value()) << needle;
    EXPECT_EQ(r.error().code, errc::parse_error);
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  };
  expect_error(json::value(1), "not an object");
  auto v = base;
  v.as_object().set("kind", "ConfigMap");
  expect_error(v, "not a coordination.k8s.io/v1 Lease");
  v = base;
  v.at("metadata")->at("annotations")->as_object().erase("tidesync.io/lock-path");
  expect_error(v, "not a tidesync lock");
  v = base;
  v.at("metadata")->at("annotations")->as_object().set("tidesync.io/lock-path", "s3:b/../c");
  expect_error(v, "..");
  v = base;
  v.at("metadata")->at("annotations")->as_object().set("tidesync.io/lock-set", "[1]");
  expect_error(v, "non-string");
  v = base;
  v.at("metadata")->at("annotations")->as_object().set("tidesync.io/lock-set", "{");
  expect_error(v, "JSON array");
  v = base;
  v.at("spec")->as_object().erase("holderIdentity");
  expect_error(v, "holderIdentity");
  v = base;
  v.at("spec")->as_object().set("renewTime", "yesterday");
  expect_error(v, "spec.renewTime");
  v = base;
  v.at("spec")->as_object().set("acquireTime", "2024-13-01T00:00:00Z");
  expect_error(v, "spec.acquireTime");
  v = base;
  v.at("spec")->as_object().set("leaseDurationSeconds", 0);
  expect_error(v, "leaseDurationSeconds");
  v = base;
  v.as_object().erase("spec");
  expect_error(v, "no spec");
}

TEST(LeaseVerdict, AliveAdoptsGoneWaitsForTheTtl) {
  auto r = sample();
  auto ttl = seconds{600};
  EXPECT_FALSE(lease_stale(r.renew_time, r.renew_time + 599s, ttl));
  EXPECT_TRUE(lease_stale(r.renew_time, r.renew_time + 600s, ttl));
  // A live holder is adopted however old the Lease: no controller was renewing it.
  EXPECT_EQ(judge_lease(r, r.renew_time + 24h, ttl, true), lease_verdict::adopt);
  EXPECT_EQ(judge_lease(r, r.renew_time + 10s, ttl, false), lease_verdict::hold);
  EXPECT_EQ(judge_lease(r, r.renew_time + 600s, ttl, false), lease_verdict::reclaim);
}

}  // namespace
}  // namespace tidesync::actors
