// The rclone Job built for a BucketSync: name, ownership, labels, command, env (references
// only, never secret values), security context and limits.
#include <gtest/gtest.h>

#include <string>

#include "config/bucketsync.hpp"
#include "config/job_builder.hpp"
#include "runtime/json/value.hpp"

using namespace tidesync::config;
namespace json = tidesync::json;

namespace {

const char* k_sync = R"({
  "apiVersion": "tidesync.io/v1alpha1", "kind": "BucketSync",
  "metadata": {"name": "nightly-1705316400", "namespace": "default", "uid": "uid-123",
               "generation": 1},
  "spec": {
    "source": "my-bucket/photos", "destination": "backup:backup-bucket/x",
    "timeout": "1h30m", "rcloneFlags": ["--checksum", "--transfers=8"],
    "jobLabels": {"workload-type": "backup", "tidesync.io/bucketsync": "spoofed"},
    "sourceEnv": [
      {"name": "type", "value": "s3"},
      {"name": "SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "garage-credentials",
                                                                   "key": "SECRET_ACCESS_KEY"}}},
      {"name": "ENDPOINT", "valueFrom": {"configMapKeyRef": {"name": "garage-config",
                                                             "key": "ENDPOINT"}}}
    ]
  }
})";

bucket_sync parse_sync(const std::string& text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value());
  auto bs = parse_bucket_sync(*v);
  EXPECT_TRUE(bs.has_value()) << (bs ? "" : bs.error().to_string());
  return bs ? *bs : bucket_sync{};
}

const json::value& at(const json::value& v, std::initializer_list<std::string_view> path) {
  static const json::value null;
  const json::value* p = v.at_path(path);
  EXPECT_NE(p, nullptr) << json::dump(v);
  return p ? *p : null;
}

const json::value* find_env(const json::value& container, std::string_view name) {
  for (const auto& e : container.at("env")->as_array())
    if (e.get_string("name") == name) return &e;
  return nullptr;
}

json::value build(const bucket_sync& bs, const job_settings& s = {}) {
  auto job = build_job(bs, s);
  EXPECT_TRUE(job.has_value()) << (job ? "" : job.error().to_string());
  return job ? *job : json::value();
}

const json::value& container_of(const json::value& job) {
  return at(job, {"spec", "template", "spec", "containers"}).as_array().at(0);
}

}  // namespace

TEST(JobName, ShortValidNameIsKept) {
  EXPECT_EQ(job_name("nightly-1705316400"), "nightly-1705316400");
  EXPECT_EQ(job_name(std::string(63, 'a')), std::string(63, 'a'));
}

TEST(JobName, LongOrDottedNamesGetASlugAndAHash) {
  std::string long_name;
  for (int i = 0; i < 7; ++i)
    long_name += "abcdefghi-";  // 70 characters, no '-' at the cut
  std::string n = job_name(long_name);
  EXPECT_LE(n.size(), 63U);
  EXPECT_EQ(n, job_name(long_name)) << "deterministic";
  EXPECT_EQ(n.substr(0, 52), long_name.substr(0, 52));
  EXPECT_EQ(n[52], '-');
  EXPECT_EQ(n.size(), 63U);
  // Two names that share the slug differ by the hash.
  std::string other = long_name + "4";
  EXPECT_NE(job_name(other), n);
  // Dots (valid in object names, not in labels) are slugged; the hash keeps a.b and a-b apart.
  EXPECT_NE(job_name("a.b"), "a.b");
  EXPECT_NE(job_name("a.b"), job_name("a-b"));
  EXPECT_EQ(job_name("a.b").rfind("a-b-", 0), 0U);
  for (const auto& name : {long_name, std::string("a.b"), std::string("x..y.")}) {
    std::string j = job_name(name);
    for (char c : j)
      EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') << j;
    EXPECT_NE(j.front(), '-');
    EXPECT_NE(j.back(), '-');
  }
}

TEST(JobBuilder, MetadataOwnerAndLabels) {
  auto bs = parse_sync(k_sync);
  auto job = build(bs);
  EXPECT_EQ(job.get_string("apiVersion"), "batch/v1");
  EXPECT_EQ(job.get_string("kind"), "Job");
  EXPECT_EQ(at(job, {"metadata", "name"}).as_string(), "nightly-1705316400");
  EXPECT_EQ(at(job, {"metadata", "namespace"}).as_string(), "default");

  const auto& owners = at(job, {"metadata", "ownerReferences"}).as_array();
  ASSERT_EQ(owners.size(), 1U);
  auto expected_owner = json::parse(
      R"({"apiVersion":"tidesync.io/v1alpha1","kind":"BucketSync","name":"nightly-1705316400",
          "uid":"uid-123","controller":true,"blockOwnerDeletion":true})");
  EXPECT_EQ(owners[0], *expected_owner);

  auto expected_labels = json::parse(
      R"({"app.kubernetes.io/managed-by":"tidesync","tidesync.io/bucketsync":"nightly-1705316400",
          "workload-type":"backup"})");
  EXPECT_EQ(at(job, {"metadata", "labels"}), *expected_labels) << "ours win over jobLabels";
  EXPECT_EQ(at(job, {"spec", "template", "metadata", "labels"}), *expected_labels);
}

TEST(JobBuilder, SpecLimitsAndSecurity) {
  auto job = build(parse_sync(k_sync));
  EXPECT_EQ(at(job, {"spec", "backoffLimit"}).as_int(), 0);
  EXPECT_EQ(at(job, {"spec", "activeDeadlineSeconds"}).as_int(), 5400);
  const auto& pod = at(job, {"spec", "template", "spec"});
  EXPECT_EQ(pod.get_string("restartPolicy"), "Never");
  EXPECT_EQ(at(pod, {"securityContext", "runAsNonRoot"}).as_bool(), true);
  EXPECT_EQ(at(pod, {"securityContext", "runAsUser"}).as_int(), 65532);
  EXPECT_EQ(pod.at("serviceAccountName"), nullptr);

  const auto& c = container_of(job);
  EXPECT_EQ(c.get_string("image"), k_default_rclone_image);
  const auto& sc = *c.at("securityContext");
  EXPECT_EQ(sc.at("readOnlyRootFilesystem")->as_bool(), true);
  EXPECT_EQ(sc.at("allowPrivilegeEscalation")->as_bool(), false);
  EXPECT_EQ(sc.at("runAsNonRoot")->as_bool(), true);
  EXPECT_EQ(sc.at("runAsUser")->as_int(), 65532);
  EXPECT_EQ(*sc.at_path({"capabilities", "drop"}), json::value(json::array{"ALL"}));

  // The only writable place: an emptyDir at /tmp, where rclone's config and cache go.
  EXPECT_EQ(*pod.at("volumes"), *json::parse(R"([{"name":"tmp","emptyDir":{}}])"));
  EXPECT_EQ(*c.at("volumeMounts"), *json::parse(R"([{"name":"tmp","mountPath":"/tmp"}])"));
  ASSERT_NE(find_env(c, "RCLONE_CONFIG"), nullptr);
  EXPECT_EQ(find_env(c, "RCLONE_CONFIG")->get_string("value"), "/tmp/rclone.conf");
  EXPECT_EQ(find_env(c, "HOME")->get_string("value"), "/tmp");
}

TEST(JobBuilder, NoTimeoutNoDeadlineAndImageAndAccountFromSettings) {
  auto bs = parse_sync(k_sync);
  bs.spec.timeout.reset();
  job_settings s;
  s.default_image = "registry.local/rclone:test";
  s.run_as_user = 1000;
  s.service_account = "syncer";
  auto job = build(bs, s);
  EXPECT_EQ(job.at_path({"spec", "activeDeadlineSeconds"}), nullptr);
  EXPECT_EQ(container_of(job).get_string("image"), "registry.local/rclone:test");
  EXPECT_EQ(at(job, {"spec", "template", "spec", "serviceAccountName"}).as_string(), "syncer");
  EXPECT_EQ(at(job, {"spec", "template", "spec", "securityContext", "runAsUser"}).as_int(), 1000);
  bs.spec.image = "my/rclone:custom";
  EXPECT_EQ(container_of(build(bs, s)).get_string("image"), "my/rclone:custom");
}

TEST(JobBuilder, CommandAndArguments) {
  auto job = build(parse_sync(k_sync));
  const auto& c = container_of(job);
  EXPECT_EQ(*c.at("command"), json::value(json::array{"rclone"}));
  // The source has settings in sourceEnv: it lives on the "source" remote. The destination
  // names its remote explicitly and is passed unchanged.
  EXPECT_EQ(*c.at("args"),
            json::value(json::array{"sync", "source:my-bucket/photos", "backup:backup-bucket/x",
                                    "--checksum", "--transfers=8"}));
}

TEST(JobBuilder, EnvIsPrefixedAndReferencesStayReferences) {
  auto job = build(parse_sync(k_sync));
  const auto& c = container_of(job);
  ASSERT_NE(find_env(c, "RCLONE_CONFIG_SOURCE_TYPE"), nullptr);
  EXPECT_EQ(find_env(c, "RCLONE_CONFIG_SOURCE_TYPE")->get_string("value"), "s3");
  const json::value* secret = find_env(c, "RCLONE_CONFIG_SOURCE_SECRET_ACCESS_KEY");
  ASSERT_NE(secret, nullptr);
  EXPECT_EQ(secret->at("value"), nullptr) << "a secret is never inlined";
  EXPECT_EQ(*secret->at("valueFrom"), *json::parse(R"({"secretKeyRef":{"name":"garage-credentials",
                                             "key":"SECRET_ACCESS_KEY"}})"));
  const json::value* endpoint = find_env(c, "RCLONE_CONFIG_SOURCE_ENDPOINT");
  ASSERT_NE(endpoint, nullptr);
  EXPECT_EQ(endpoint->at("value"), nullptr);
  EXPECT_EQ(*endpoint->at("valueFrom"),
            *json::parse(R"({"configMapKeyRef":{"name":"garage-config","key":"ENDPOINT"}})"));
  // The env order: source settings, then the scratch variables.
  const auto& env = c.at("env")->as_array();
  EXPECT_EQ(env.front().get_string("name"), "RCLONE_CONFIG_SOURCE_TYPE");
  // Nothing in the whole Job looks like a resolved secret: only names and keys appear.
  std::string text = json::dump(job);
  EXPECT_EQ(text.find("\"value\":\"SECRET"), std::string::npos);
}

TEST(JobBuilder, LongNameUsesHashedNameAndLabel) {
  auto bs = parse_sync(k_sync);
  bs.metadata.name = "policy-with-a-really-quite-long-name-for-its-runs.backup-1705316400";
  auto job = build(bs);
  std::string name = at(job, {"metadata", "name"}).as_string();
  EXPECT_EQ(name, job_name(bs.metadata.name));
  EXPECT_LE(name.size(), 63U);
  EXPECT_EQ(at(job, {"metadata", "labels", "tidesync.io/bucketsync"}).as_string(), name);
  EXPECT_EQ(at(job, {"metadata", "ownerReferences"}).as_array()[0].get_string("name"),
            bs.metadata.name);
}

TEST(JobBuilder, Errors) {
  auto bs = parse_sync(k_sync);
  auto no_uid = bs;
  no_uid.metadata.uid.clear();
  auto r = build_job(no_uid, {});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, tidesync::errc::invalid_argument);
  EXPECT_NE(r.error().message.find("uid"), std::string::npos);

  auto bad_env = bs;
  bad_env.spec.destination_env.push_back(env_var{"1BAD", std::string("x"), std::nullopt});
  auto r2 = build_job(bad_env, {});
  ASSERT_FALSE(r2.has_value());
  EXPECT_NE(r2.error().message.find("1BAD"), std::string::npos) << r2.error().message;
}
