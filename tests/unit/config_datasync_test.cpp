// DataSync parsing, validation (docs/datasync.md "Bad input"), status JSON and quantities.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <string>
#include <vector>

#include "config/condition.hpp"
#include "config/datasync.hpp"
#include "config/validation.hpp"
#include "runtime/json/value.hpp"

using namespace std::chrono;
using namespace tidesync::config;
namespace json = tidesync::json;

namespace {

json::value parse_json(const std::string& text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? *v : json::value();
}

const std::string k_hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

// The design's example (docs/datasync.md), with a status.
std::string full_example() {
  return R"({
  "apiVersion": "tidesync.io/v1alpha1", "kind": "DataSync",
  "metadata": {"name": "ws-035-v7", "namespace": "default", "generation": 3,
               "creationTimestamp": "2026-11-23T04:00:00Z",
               "labels": {"tidesync.io/workspace": "035"}},
  "spec": {
    "workspaceId": "035", "version": "7",
    "vms": [
      {"name": "base", "sourceType": "http", "url": "https://images.example.com/base.qcow2",
       "checksum": "sha256:)" +
         k_hash + R"(", "size": 10737418240},
      {"name": "tools", "sourceType": "s3", "url": "s3://images/tools.qcow2"},
      {"name": "golden", "sourceType": "pvc", "url": "pvc://golden-images/disk.img",
       "checksum": ")" +
         k_hash + R"("}],
    "secretRef": {"name": "image-credentials"},
    "storage": {"storageClassName": "fast", "size": "20Gi", "accessModes": ["ReadWriteOnce"]}
  },
  "status": {
    "phase": "Queued", "message": "waiting for a slot: 3 of 3 syncing; position 2 in the queue",
    "queuePosition": 2, "retryCount": 1, "nextRetryTime": "2026-11-23T04:10:00Z",
    "vms": [{"name": "base", "phase": "Succeeded", "bytes": 10737418240, "size": 10737418240,
             "digest": "sha256:)" +
         k_hash + R"("},
            {"name": "tools", "phase": "Syncing", "bytes": 1048576, "size": 52428800}],
    "observedGeneration": 3,
    "conditions": [{"type": "Ready", "status": "False", "reason": "Syncing", "message": "m",
                    "lastTransitionTime": "2026-11-23T04:00:00Z"}]
  }
})";
}

// A valid object with one VM replaced by `vm` (a JSON object text).
json::value with_vm(const std::string& vm) {
  return parse_json(R"({"spec": {"workspaceId": "w", "vms": [)" + vm + "]}}");
}

std::vector<std::string> fields_of(const tidesync::error& e) {
  std::vector<std::string> out;
  for (const auto& c : e.causes)
    out.push_back(c.field);
  return out;
}

// The one problem of a spec expected to have exactly one, as "field: message".
std::string only_problem(const json::value& object) {
  auto d = parse_datasync(object);
  EXPECT_FALSE(d.has_value());
  if (d.has_value()) return {};
  EXPECT_EQ(d.error().causes.size(), 1u) << d.error().message;
  return d.error().causes.at(0).field + ": " + d.error().causes.at(0).message;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST(DataSync, ParsesTheDesignExample) {
  std::vector<std::string> warnings;
  auto d = parse_datasync(parse_json(full_example()), &warnings);
  ASSERT_TRUE(d.has_value()) << d.error().message;
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  EXPECT_EQ(d->metadata.name, "ws-035-v7");
  EXPECT_EQ(d->metadata.generation, 3);
  EXPECT_EQ(d->metadata.labels.at(std::string(k_workspace_label)), "035");
  const auto& s = d->spec;
  EXPECT_EQ(s.workspace_id, "035");
  EXPECT_EQ(s.version, "7");
  ASSERT_EQ(s.vms.size(), 3u);
  EXPECT_EQ(s.vms[0].name, "base");
  EXPECT_EQ(s.vms[0].source_type, datasync_source_type::http);
  EXPECT_EQ(s.vms[0].url, "https://images.example.com/base.qcow2");
  EXPECT_EQ(s.vms[0].checksum, "sha256:" + k_hash);
  EXPECT_EQ(s.vms[0].size, int64_t{10737418240});
  EXPECT_EQ(s.vms[1].source_type, datasync_source_type::s3);
  EXPECT_FALSE(s.vms[1].checksum);
  EXPECT_FALSE(s.vms[1].size);
  EXPECT_EQ(s.vms[2].source_type, datasync_source_type::pvc);
  EXPECT_EQ(s.vms[2].checksum, "sha256:" + k_hash);  // bare hex, normalised
  ASSERT_TRUE(s.secret_ref);
  EXPECT_EQ(s.secret_ref->name, "image-credentials");
  EXPECT_EQ(s.storage.storage_class_name, "fast");
  EXPECT_EQ(s.storage.size, "20Gi");
  EXPECT_EQ(s.storage.size_bytes, int64_t{20} << 30);
  EXPECT_EQ(s.storage.access_modes, std::vector<std::string>{"ReadWriteOnce"});

  const auto& st = d->status;
  EXPECT_EQ(st.phase, datasync_phase::queued);
  EXPECT_EQ(st.queue_position, 2);
  EXPECT_EQ(st.retry_count, 1);
  EXPECT_EQ(st.next_retry_time, sys_days(2026y / 11 / 23) + 4h + 10min);
  ASSERT_EQ(st.vms.size(), 2u);
  EXPECT_EQ(st.vms[0].phase, datasync_vm_phase::succeeded);
  EXPECT_EQ(st.vms[0].digest, "sha256:" + k_hash);
  EXPECT_EQ(st.vms[1].bytes, 1048576);
  EXPECT_EQ(st.vms[1].size, 52428800);
  EXPECT_FALSE(st.vms[1].digest);
  EXPECT_EQ(st.observed_generation, 3);
  ASSERT_EQ(st.conditions.size(), 1u);
  EXPECT_EQ(st.conditions[0].reason, "Syncing");
}

TEST(DataSync, MinimalSpecHasDefaults) {
  auto d = parse_datasync(with_vm(R"({"name": "a", "sourceType": "http", "url": "http://h/x"})"));
  ASSERT_TRUE(d.has_value()) << d.error().message;
  EXPECT_FALSE(d->spec.version);
  EXPECT_FALSE(d->spec.secret_ref);
  EXPECT_FALSE(d->spec.storage.storage_class_name);
  EXPECT_FALSE(d->spec.storage.size);
  EXPECT_TRUE(d->spec.storage.access_modes.empty());
  EXPECT_EQ(d->status.phase, datasync_phase::none);
}

TEST(DataSync, RequiredFieldsAndMissingSpec) {
  auto none = parse_datasync(parse_json(R"({"metadata": {"name": "x"}})"));
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(fields_of(none.error()), std::vector<std::string>{"spec"});
  auto empty = parse_datasync(parse_json(R"({"spec": {}})"));
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(fields_of(empty.error()), (std::vector<std::string>{"spec.workspaceId", "spec.vms"}));
  for (const auto& c : empty.error().causes)
    EXPECT_EQ(c.reason, "FieldValueRequired");
  auto vm = parse_datasync(with_vm("{}"));
  ASSERT_FALSE(vm.has_value());
  EXPECT_EQ(
      fields_of(vm.error()),
      (std::vector<std::string>{"spec.vms[0].name", "spec.vms[0].sourceType", "spec.vms[0].url"}));
}

TEST(DataSync, WorkspaceId) {
  auto bad = [](const std::string& id) {
    return only_problem(parse_json(R"({"spec": {"workspaceId": )" + id + R"(, "vms": [
        {"name": "a", "sourceType": "http", "url": "http://h/x"}]}})"));
  };
  auto upper = bad(R"("WS-1")");
  EXPECT_TRUE(contains(upper, "spec.workspaceId: \"WS-1\" must be lower-case")) << upper;
  EXPECT_TRUE(contains(upper, "e.g. \"035\"")) << upper;
  EXPECT_TRUE(contains(bad(R"("-a")"), "spec.workspaceId"));
  EXPECT_TRUE(contains(bad("\"" + std::string(64, 'a') + "\""), "at most 63"));
  EXPECT_TRUE(contains(bad(R"("")"), "must not be empty"));
  EXPECT_TRUE(contains(bad("35"), "must be a string"));
}

TEST(DataSync, VmListSizeAndNames) {
  auto empty = only_problem(parse_json(R"({"spec": {"workspaceId": "w", "vms": []}})"));
  EXPECT_TRUE(contains(empty, "spec.vms: is empty; list at least one VM image")) << empty;

  std::string many;
  for (int i = 0; i < 65; ++i)
    many += std::string(i ? "," : "") + R"({"name": "v)" + std::to_string(i) +
            R"(", "sourceType": "http", "url": "http://h/x"})";
  auto too_many = only_problem(with_vm(many));
  EXPECT_TRUE(contains(too_many, "spec.vms: has 65 entries; at most 64")) << too_many;

  auto dup = parse_datasync(with_vm(R"({"name": "a", "sourceType": "http", "url": "http://h/x"},
      {"name": "b", "sourceType": "http", "url": "http://h/y"},
      {"name": "a", "sourceType": "http", "url": "http://h/z"})"));
  ASSERT_FALSE(dup.has_value());
  ASSERT_EQ(dup.error().causes.size(), 1u);
  EXPECT_EQ(dup.error().causes[0].field, "spec.vms[2].name");
  EXPECT_EQ(dup.error().causes[0].message,
            "\"a\" is also the name of spec.vms[0]; VM names must be unique: rename one of them");

  auto name = only_problem(with_vm(R"({"name": "Base_1", "sourceType": "http",
                                       "url": "http://h/x"})"));
  EXPECT_TRUE(contains(name, "spec.vms[0].name: \"Base_1\" must be lower-case")) << name;
  auto not_object = only_problem(with_vm(R"("base")"));
  EXPECT_TRUE(contains(not_object, "spec.vms[0]: must be an object")) << not_object;
}

TEST(DataSync, SourceType) {
  auto unknown = only_problem(with_vm(R"({"name": "a", "sourceType": "ftp", "url": "ftp://h/x"})"));
  EXPECT_EQ(unknown,
            "spec.vms[0].sourceType: \"ftp\" is not a source type; write one of http (an http:// "
            "or https:// URL), s3 (s3://bucket/key) or pvc (pvc://claim/path)");
  // Case matters, as in the CRD's enum.
  EXPECT_TRUE(contains(only_problem(with_vm(R"({"name": "a", "sourceType": "HTTP",
                                                "url": "http://h/x"})")),
                       "\"HTTP\" is not a source type"));
}

TEST(DataSync, UrlMustMatchItsSourceType) {
  struct bad_case {
    const char* type;
    const char* url;
    const char* says;
  };
  for (const auto& c : std::vector<bad_case>{
           {"http", "images.example.com/base.qcow2", "is not a URL (no scheme://)"},
           {"http", "https:///base.qcow2", "has no host"},
           {"http", "https://user:pw@h/x", "must not carry credentials"},
           {"http", "http://h:99999/x", "port 99999"},
           {"http", "http://h:/x", "empty port"},
           {"http", "http://h/a b", "blanks"},
           {"http", "s3://images/tools.qcow2", "write sourceType: s3, or a URL such as"},
           {"http", "gopher://h/x", "has the scheme gopher://, but sourceType is http"},
           {"s3", "https://h/x", "write sourceType: http"},
           {"s3", "s3://images", "has no object key"},
           {"s3", "s3://images/", "has no object key"},
           {"s3", "s3:///key", "has no bucket"},
           {"s3", "s3://ab/key", "must be 3-63 characters"},
           {"s3", "s3://Images/key", "lower-case letters, digits, '.' and '-'"},
           {"s3", "s3://-images/key", "starting and ending"},
           {"pvc", "pvc://golden-images", "has no file path"},
           {"pvc", "pvc://golden-images//disk.img", "absolute path"},
           {"pvc", "pvc://golden-images/a/../../etc/passwd", "'..' element"},
           {"pvc", "pvc://Golden/disk.img", "claim \"Golden\""},
       }) {
    std::string vm = std::string(R"({"name": "a", "sourceType": ")") + c.type + R"(", "url": ")" +
                     c.url + R"("})";
    auto p = only_problem(with_vm(vm));
    EXPECT_TRUE(p.rfind("spec.vms[0].url: \"", 0) == 0) << p;
    EXPECT_TRUE(contains(p, c.says)) << c.url << " → " << p;
    EXPECT_TRUE(contains(p, "write")) << p;  // says what to write
  }
  for (auto [type, url] : std::vector<std::pair<const char*, const char*>>{
           {"http", "http://h/x"},
           {"http", "HTTPS://images.example.com:8443/a/b.qcow2?sig=1"},
           {"http", "http://[::1]:8080/x"},
           {"http", "http://127.0.0.1"},
           {"s3", "s3://my.images-2/dir/tools.qcow2"},
           {"pvc", "pvc://golden-images/dir/disk..img"}}) {
    std::string vm =
        std::string(R"({"name": "a", "sourceType": ")") + type + R"(", "url": ")" + url + R"("})";
    auto d = parse_datasync(with_vm(vm));
    EXPECT_TRUE(d.has_value()) << url << ": " << d.error().message;
  }
  auto loc = split_source_url(datasync_source_type::http, "https://h:8443/a/b?x=1");
  ASSERT_TRUE(loc.has_value());
  EXPECT_EQ(loc->authority, "https://h:8443");
  EXPECT_EQ(loc->path, "/a/b?x=1");
  loc = split_source_url(datasync_source_type::s3, "s3://images/dir/tools.qcow2");
  ASSERT_TRUE(loc.has_value());
  EXPECT_EQ(loc->authority, "images");
  EXPECT_EQ(loc->path, "dir/tools.qcow2");
  loc = split_source_url(datasync_source_type::pvc, "pvc://golden/disk.img");
  ASSERT_TRUE(loc.has_value());
  EXPECT_EQ(loc->authority, "golden");
  EXPECT_EQ(loc->path, "disk.img");
}

TEST(DataSync, ChecksumAndSize) {
  EXPECT_EQ(normalize_checksum(k_hash).value(), "sha256:" + k_hash);
  std::string upper = k_hash;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  EXPECT_EQ(normalize_checksum("sha256:" + upper).value(), "sha256:" + k_hash);
  EXPECT_TRUE(contains(normalize_checksum("md5:abc").error().message, "only sha256"));
  EXPECT_TRUE(contains(normalize_checksum("sha256:abc").error().message, "3 hex digits, not 64"));
  EXPECT_TRUE(contains(normalize_checksum(std::string(63, 'a') + "g").error().message,
                       "'g', not a hex digit"));

  auto bad = only_problem(with_vm(R"({"name": "a", "sourceType": "http", "url": "http://h/x",
                                      "checksum": "sha1:0a"})"));
  EXPECT_TRUE(contains(bad, "spec.vms[0].checksum: \"sha1:0a\" uses the algorithm \"sha1\""))
      << bad;
  EXPECT_TRUE(contains(bad, "write \"sha256:\" and the 64 hex digits")) << bad;

  auto negative = only_problem(with_vm(R"({"name": "a", "sourceType": "http", "url": "http://h/x",
                                           "size": -1})"));
  EXPECT_TRUE(contains(negative, "spec.vms[0].size: -1 is negative; write the image's size"))
      << negative;
  auto text = only_problem(with_vm(R"({"name": "a", "sourceType": "http", "url": "http://h/x",
                                       "size": "10Gi"})"));
  EXPECT_TRUE(contains(text, "spec.vms[0].size: must be an integer")) << text;
  EXPECT_TRUE(parse_datasync(with_vm(R"({"name": "a", "sourceType": "http", "url": "http://h/x",
                                         "size": 0})"))
                  .has_value());
}

TEST(DataSync, StorageAndSecretRef) {
  auto spec = [](const std::string& extra) {
    return parse_json(R"({"spec": {"workspaceId": "w", "vms": [
        {"name": "a", "sourceType": "http", "url": "http://h/x"}], )" +
                      extra + "}}");
  };
  auto size = only_problem(spec(R"("storage": {"size": "20GB"})"));
  EXPECT_TRUE(contains(size, "spec.storage.size: \"20GB\" has an unknown suffix \"GB\"")) << size;
  EXPECT_TRUE(contains(size, "write a quantity such as \"20Gi\"")) << size;
  EXPECT_TRUE(contains(only_problem(spec(R"("storage": {"size": "-1Gi"})")), "is negative"));
  EXPECT_TRUE(contains(only_problem(spec(R"("storage": {"size": "0"})")), "is zero"));
  auto number = only_problem(spec(R"("storage": {"size": 1000000000})"));
  EXPECT_TRUE(contains(number, "spec.storage.size: must be a quoted quantity string")) << number;
  auto ok = parse_datasync(spec(R"("storage": {"size": "1e9", "storageClassName": ""})"));
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->spec.storage.size_bytes, 1000000000);
  EXPECT_EQ(ok->spec.storage.storage_class_name, "");  // "" is kept: no dynamic provisioning

  auto modes = parse_datasync(
      spec(R"("storage": {"accessModes": ["ReadWriteOnce", "ReadWriteOncePod", "RWO"]})"));
  ASSERT_FALSE(modes.has_value());
  EXPECT_EQ(fields_of(modes.error()),
            (std::vector<std::string>{"spec.storage.accessModes[2]", "spec.storage.accessModes"}));
  EXPECT_TRUE(contains(modes.error().message,
                       "\"RWO\" is not an access mode; write one of ReadWriteOnce, ReadOnlyMany, "
                       "ReadWriteMany, ReadWriteOncePod"));
  EXPECT_TRUE(contains(modes.error().message, "ReadWriteOncePod cannot be combined"));

  auto sc = only_problem(spec(R"("storage": {"storageClassName": "Fast SSD"})"));
  EXPECT_TRUE(contains(sc, "spec.storage.storageClassName: \"Fast SSD\"")) << sc;
  auto secret = only_problem(spec(R"("secretRef": {"name": "Image_Creds"})"));
  EXPECT_TRUE(contains(secret, "spec.secretRef.name: \"Image_Creds\" must be lower-case"))
      << secret;
  auto no_name = only_problem(spec(R"("secretRef": {})"));
  EXPECT_TRUE(contains(no_name, "spec.secretRef.name: name the Secret")) << no_name;
  auto version = only_problem(spec(R"("version": "v 7")"));
  EXPECT_TRUE(contains(version, "spec.version: \"v 7\"")) << version;
}

TEST(DataSync, EveryProblemIsReportedAtOnce) {
  // The design's bad-input cases together: each is named with its path, in one message.
  auto d = parse_datasync(parse_json(R"({
    "apiVersion": "tidesync.io/v1alpha1", "kind": "DataSync",
    "metadata": {"name": "bad", "namespace": "ns"},
    "spec": {"workspaceId": "Team A", "vms": [
      {"name": "base", "sourceType": "http", "url": "not a url"},
      {"name": "tools", "sourceType": "ftp", "url": "ftp://h/x"},
      {"name": "base", "sourceType": "s3", "url": "s3://b/k", "checksum": "x", "size": -5}],
      "storage": {"size": "lots"}, "secretRef": {"name": "-x"}}})"));
  ASSERT_FALSE(d.has_value());
  const auto& e = d.error();
  EXPECT_EQ(e.code, tidesync::errc::invalid);
  EXPECT_EQ(fields_of(e), (std::vector<std::string>{
                              "spec.workspaceId", "spec.vms[0].url", "spec.vms[1].sourceType",
                              "spec.vms[2].url", "spec.vms[2].checksum", "spec.vms[2].size",
                              "spec.vms[2].name", "spec.secretRef.name", "spec.storage.size"}));
  EXPECT_EQ(e.message.rfind("DataSync ns/bad is invalid: spec.workspaceId: ", 0), 0u) << e.message;
  for (const auto& c : e.causes) {
    EXPECT_FALSE(c.reason.empty()) << c.field;
    EXPECT_TRUE(contains(e.message, c.field + ": " + c.message)) << c.field;
  }
}

TEST(DataSync, PartialParseKeepsMetadataAndStatus) {
  auto obj = parse_json(R"({"metadata": {"name": "x", "generation": 4},
      "spec": {"workspaceId": "w", "vms": []},
      "status": {"phase": "Syncing", "retryCount": 2}})");
  std::optional<tidesync::error> problem;
  auto d = parse_datasync_partial(obj, &problem);
  ASSERT_TRUE(problem);
  EXPECT_EQ(fields_of(*problem), std::vector<std::string>{"spec.vms"});
  EXPECT_EQ(d.metadata.generation, 4);
  EXPECT_EQ(d.status.phase, datasync_phase::syncing);
  EXPECT_EQ(d.status.retry_count, 2);
  EXPECT_EQ(d.spec.workspace_id, "w");

  auto good = parse_datasync_partial(parse_json(full_example()), &problem);
  EXPECT_FALSE(problem);
  EXPECT_EQ(good.spec.vms.size(), 3u);

  auto wrong_kind = parse_datasync(parse_json(R"({"apiVersion": "tidesync.io/v1",
      "kind": "BucketSync", "spec": {"workspaceId": "w", "vms": [
      {"name": "a", "sourceType": "http", "url": "http://h/x"}]}})"));
  ASSERT_FALSE(wrong_kind.has_value());
  EXPECT_EQ(fields_of(wrong_kind.error()), (std::vector<std::string>{"apiVersion", "kind"}));
}

TEST(DataSync, UnknownFieldsAreWarnings) {
  std::vector<std::string> warnings;
  auto d = parse_datasync(parse_json(R"({"spec": {"workspaceId": "w", "workspace": "x",
      "vms": [{"name": "a", "sourceType": "http", "url": "http://h/x", "sha": "1"}],
      "secretRef": {"name": "s", "key": "k"}, "storage": {"class": "fast"}}})"),
                          &warnings);
  ASSERT_TRUE(d.has_value()) << d.error().message;
  ASSERT_EQ(warnings.size(), 4u);
  EXPECT_EQ(warnings[0].rfind("spec.workspace: unknown field", 0), 0u) << warnings[0];
  EXPECT_TRUE(contains(warnings[0], "workspaceId, version, vms, secretRef, storage"));
  EXPECT_EQ(warnings[1].rfind("spec.vms[0].sha: unknown field", 0), 0u) << warnings[1];
  EXPECT_EQ(warnings[2].rfind("spec.secretRef.key: unknown field", 0), 0u) << warnings[2];
  EXPECT_EQ(warnings[3].rfind("spec.storage.class: unknown field", 0), 0u) << warnings[3];
}

TEST(DataSync, StatusToJsonHasEveryFieldAndReadsBack) {
  datasync_status empty;
  auto e = to_json(empty);
  for (auto f : datasync_status_fields())
    EXPECT_NE(e.at(f), nullptr) << f;
  EXPECT_EQ(json::dump(e),
            R"({"phase":null,"message":null,"queuePosition":null,"retryCount":0,)"
            R"("nextRetryTime":null,"vms":[],"observedGeneration":0,"conditions":[],)"
            R"("lastReconciledTime":null})");

  datasync_status s;
  s.phase = datasync_phase::queued;
  s.message = "waiting for a slot";
  s.queue_position = 2;
  s.retry_count = 1;
  s.next_retry_time = sys_days(2026y / 11 / 23) + 4h + 10min;
  s.vms.push_back({"base", datasync_vm_phase::succeeded, 10, 10, "sha256:" + k_hash, {}});
  s.vms.push_back({"tools", datasync_vm_phase::failed, 5, {}, {}, "404 Not Found"});
  s.observed_generation = 3;
  set_condition(s.conditions, make_condition("Ready", "False", "Syncing", "m"),
                sys_days(2026y / 11 / 23));
  s.last_reconciled_time = sys_days(2026y / 11 / 23) + 4h;
  auto j = to_json(s);
  EXPECT_EQ(json::dump(*j.at("vms")),
            R"([{"name":"base","phase":"Succeeded","bytes":10,"size":10,"digest":"sha256:)" +
                k_hash +
                R"("},{"name":"tools","phase":"Failed","bytes":5,"message":"404 Not Found"}])");
  EXPECT_EQ(*j.at("nextRetryTime"), json::value("2026-11-23T04:10:00Z"));
  problems pr;
  auto back = parse_datasync_status(&j, pr);
  EXPECT_TRUE(pr.warnings().empty()) << pr.warnings().front();
  EXPECT_EQ(back.phase, s.phase);
  EXPECT_EQ(back.message, s.message);
  EXPECT_EQ(back.queue_position, s.queue_position);
  EXPECT_EQ(back.retry_count, s.retry_count);
  EXPECT_EQ(back.next_retry_time, s.next_retry_time);
  EXPECT_EQ(back.vms, s.vms);
  EXPECT_EQ(back.observed_generation, s.observed_generation);
  EXPECT_EQ(back.conditions, s.conditions);
  EXPECT_EQ(back.last_reconciled_time, s.last_reconciled_time);

  for (auto p : {datasync_phase::queued, datasync_phase::syncing, datasync_phase::succeeded,
                 datasync_phase::failed})
    EXPECT_EQ(parse_datasync_phase(to_string(p)), p);
  EXPECT_FALSE(parse_datasync_phase("Running"));
  for (auto p : {datasync_vm_phase::pending, datasync_vm_phase::syncing,
                 datasync_vm_phase::succeeded, datasync_vm_phase::failed})
    EXPECT_EQ(parse_datasync_vm_phase(to_string(p)), p);
  for (auto t : {datasync_source_type::http, datasync_source_type::s3, datasync_source_type::pvc})
    EXPECT_EQ(parse_datasync_source_type(to_string(t)), t);
}

TEST(DataSync, DamagedStatusIsAWarningNotAnError) {
  std::vector<std::string> warnings;
  auto d = parse_datasync(parse_json(R"({"spec": {"workspaceId": "w", "vms": [
      {"name": "a", "sourceType": "http", "url": "http://h/x"}]},
      "status": {"phase": "Running", "queuePosition": "first", "nextRetryTime": "soon",
                 "vms": [{"phase": "Succeeded"}, {"name": "a", "phase": "Done", "bytes": 3}]}})"),
                          &warnings);
  ASSERT_TRUE(d.has_value()) << d.error().message;
  EXPECT_EQ(warnings.size(), 5u);
  EXPECT_EQ(d->status.phase, datasync_phase::none);
  EXPECT_FALSE(d->status.queue_position);
  EXPECT_FALSE(d->status.next_retry_time);
  ASSERT_EQ(d->status.vms.size(), 1u);
  EXPECT_EQ(d->status.vms[0].phase, datasync_vm_phase::pending);
  EXPECT_EQ(d->status.vms[0].bytes, 3);
}

TEST(Quantity, ParsesKubernetesQuantitiesToBytes) {
  EXPECT_EQ(parse_quantity("20Gi").value(), int64_t{20} << 30);
  EXPECT_EQ(parse_quantity("500M").value(), 500'000'000);
  EXPECT_EQ(parse_quantity("1e9").value(), 1'000'000'000);
  EXPECT_EQ(parse_quantity("1E3").value(), 1000);
  EXPECT_EQ(parse_quantity("1E").value(), 1'000'000'000'000'000'000);
  EXPECT_EQ(parse_quantity("1.5Gi").value(), int64_t{3} << 29);
  EXPECT_EQ(parse_quantity("0.5Ki").value(), 512);
  EXPECT_EQ(parse_quantity("+1k").value(), 1000);
  EXPECT_EQ(parse_quantity("1234").value(), 1234);
  EXPECT_EQ(parse_quantity("007").value(), 7);
  EXPECT_EQ(parse_quantity(".5k").value(), 500);
  EXPECT_EQ(parse_quantity("0").value(), 0);
  EXPECT_EQ(parse_quantity("0.000Gi").value(), 0);
  EXPECT_EQ(parse_quantity("1500m").value(), 2);  // rounded up, as Quantity.Value()
  EXPECT_EQ(parse_quantity("1n").value(), 1);
  EXPECT_EQ(parse_quantity("12e-1").value(), 2);
  EXPECT_EQ(parse_quantity("7Ei").value(), int64_t{7} << 60);
  for (const char* bad : {"", "-1Gi", "Gi", "1GB", "1gi", "1 Gi", "1.2.3", "1e", "1e+", "1ex",
                          "8Ei", "10E", "1e19", "99999999999999999999", ".", "abc"})
    EXPECT_FALSE(parse_quantity(bad).has_value()) << bad;
  EXPECT_EQ(parse_quantity("-1").error().message, "is negative");
  EXPECT_TRUE(contains(parse_quantity("1GB").error().message, "unknown suffix \"GB\""));
}
