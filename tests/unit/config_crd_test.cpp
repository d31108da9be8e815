// The CRDs in deploy/crds/ against the parsers in config/: same spec and status fields, same
// required fields and enums, structural (Kubernetes 1.20, no CEL), and the examples in
// deploy/examples/ pass both the CRD schema and the parser. A small OpenAPI checker below
// applies the schema the way the API server would for the keywords the CRDs use.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "config/bucketsync.hpp"
#include "config/datasync.hpp"
#include "config/podfilesystemsync.hpp"
#include "config/sharedconfig.hpp"
#include "config/sharedvolume.hpp"
#include "runtime/json/value.hpp"

namespace fs = std::filesystem;
namespace json = tidesync::json;
using namespace tidesync::config;

namespace {

fs::path source_dir() {
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// YAML → JSON as Kubernetes' decoder does for the scalars our files use.
json::value to_json_value(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted
      if (s == "null" || s == "~") return nullptr;
      if (s == "true") return true;
      if (s == "false") return false;
      if (!s.empty() && s.find_first_not_of("-0123456789") == std::string::npos &&
          s.find('-', 1) == std::string::npos)
        return static_cast<int64_t>(std::stoll(s));
      return s;
    }
    case YAML::NodeType::Sequence: {
      json::array a;
      for (const auto& e : n)
        a.push_back(to_json_value(e));
      return a;
    }
    case YAML::NodeType::Map: {
      json::object o;
      for (const auto& kv : n)
        o.set(kv.first.as<std::string>(), to_json_value(kv.second));
      return o;
    }
  }
  return nullptr;
}

std::vector<json::value> load_documents(const fs::path& p) {
  std::vector<json::value> out;
  for (const auto& doc : YAML::LoadAll(read_text(p)))
    if (!doc.IsNull()) out.push_back(to_json_value(doc));
  return out;
}

json::value load_crd(const std::string& plural) {
  auto docs = load_documents(source_dir() / "deploy/crds" / ("tidesync.io_" + plural + ".yaml"));
  EXPECT_EQ(docs.size(), 1u);
  return docs.empty() ? json::value() : docs[0];
}

const json::value& version_of(const json::value& crd) {
  return crd.at_path({"spec", "versions"})->as_array().at(0);
}

const json::value& root_schema(const json::value& crd) {
  return *version_of(crd).at_path({"schema", "openAPIV3Schema"});
}

std::vector<std::string> keys(const json::value* obj) {
  std::vector<std::string> out;
  if (obj != nullptr && obj->is_object())
    for (const auto& [k, v] : obj->as_object())
      out.push_back(k);
  return out;
}

std::vector<std::string> strings(const json::value* arr) {
  std::vector<std::string> out;
  if (arr != nullptr && arr->is_array())
    for (const auto& v : arr->as_array())
      out.push_back(v.as_string());
  return out;
}

std::vector<std::string> as_strings(const std::vector<std::string_view>& v) {
  return {v.begin(), v.end()};
}

std::set<std::string> sorted(std::vector<std::string> v) {
  return {v.begin(), v.end()};
}

// The OpenAPI subset our CRDs use, applied like the API server's validation: type, required,
// properties, additionalProperties, items, enum, pattern, minimum, minLength, maxLength,
// nullable, x-kubernetes-int-or-string. Unknown fields are not errors (they are pruned).
void check(const json::value& schema, const json::value& v, const std::string& path,
           std::vector<std::string>& errors) {
  if (v.is_null()) {
    if (!schema.get_bool("nullable")) errors.push_back(path + ": null not allowed");
    return;
  }
  if (schema.get_bool("x-kubernetes-int-or-string")) {
    if (!v.is_int() && !v.is_string()) errors.push_back(path + ": must be int or string");
    return;
  }
  std::string type(schema.get_string("type"));
  bool ok = type.empty() || (type == "object" && v.is_object()) ||
            (type == "array" && v.is_array()) || (type == "string" && v.is_string()) ||
            (type == "integer" && v.is_int()) || (type == "number" && v.is_number()) ||
            (type == "boolean" && v.is_bool());
  if (!ok) {
    errors.push_back(path + ": must be " + type);
    return;
  }
  if (const auto* e = schema.at("enum")) {
    bool found = false;
    for (const auto& x : e->as_array())
      found = found || x == v;
    if (!found) errors.push_back(path + ": not in enum");
  }
  if (v.is_string()) {
    const auto& s = v.as_string();
    if (auto* p = schema.at("pattern"); p && !std::regex_search(s, std::regex(p->as_string())))
      errors.push_back(path + ": does not match " + p->as_string());
    if (auto* m = schema.at("minLength"); m && static_cast<int64_t>(s.size()) < m->as_int())
      errors.push_back(path + ": too short");
    if (auto* m = schema.at("maxLength"); m && static_cast<int64_t>(s.size()) > m->as_int())
      errors.push_back(path + ": too long");
  }
  if (v.is_int())
    if (auto* m = schema.at("minimum"); m && v.as_int() < m->as_int())
      errors.push_back(path + ": below minimum");
  if (v.is_object()) {
    for (const auto& r : strings(schema.at("required")))
      if (!v.as_object().contains(r)) errors.push_back(path + "." + r + ": required");
    for (const auto& [k, child] : v.as_object()) {
      if (const auto* ps = schema.at_path({"properties"}); ps && ps->at(k))
        check(*ps->at(k), child, path + "." + k, errors);
      else if (const auto* ap = schema.at("additionalProperties"); ap && ap->is_object())
        check(*ap, child, path + "." + k, errors);
    }
  }
  if (v.is_array())
    if (const auto* items = schema.at("items")) {
      size_t i = 0;
      for (const auto& child : v.as_array())
        check(*items, child, path + "[" + std::to_string(i++) + "]", errors);
    }
}

std::vector<std::string> schema_errors(const json::value& crd, const json::value& object) {
  std::vector<std::string> errors;
  check(root_schema(crd), object, "", errors);
  return errors;
}

// Structural schema rules (apiextensions.k8s.io/v1): every node has a type unless it is
// int-or-string; no CEL (x-kubernetes-validations needs 1.25); properties and
// additionalProperties not together.
void check_structural(const json::value& s, const std::string& path,
                      std::vector<std::string>& errors) {
  if (s.at("x-kubernetes-validations")) errors.push_back(path + ": CEL rules need Kubernetes 1.25");
  if (!s.at("type") && !s.get_bool("x-kubernetes-int-or-string"))
    errors.push_back(path + ": no type");
  if (s.at("properties") && s.at("additionalProperties"))
    errors.push_back(path + ": properties with additionalProperties");
  if (const auto* ps = s.at("properties"))
    for (const auto& [k, child] : ps->as_object())
      check_structural(child, path + "." + k, errors);
  if (const auto* items = s.at("items")) check_structural(*items, path + "[]", errors);
  if (const auto* ap = s.at("additionalProperties"); ap && ap->is_object())
    check_structural(*ap, path + "{}", errors);
}

// Does `json_path` (".status.lastSyncTime", filters allowed) name a property in the schema?
bool path_in_schema(const json::value& root, std::string json_path) {
  json_path = std::regex_replace(json_path, std::regex(R"(\[\?\(.*?\)\])"), "");
  const json::value* s = &root;
  std::stringstream ss(json_path.substr(1));
  std::string part;
  while (std::getline(ss, part, '.')) {
    if (s->at("items")) s = s->at("items");
    const json::value* props = s->at("properties");
    if (props == nullptr || props->at(part) == nullptr) return false;
    s = props->at(part);
  }
  return true;
}

std::vector<std::string> required_reported_by_parser(const std::string& kind) {
  std::vector<std::string> out;
  auto obj = *json::parse(R"({"spec": {}})");
  auto r =
      kind == "policy" ? parse_bucket_sync_policy(obj).error() : parse_bucket_sync(obj).error();
  for (const auto& c : r.causes)
    if (c.reason == "FieldValueRequired") out.push_back(c.field.substr(5));  // drop "spec."
  return out;
}

}  // namespace

TEST(Crd, NamesSubresourcesAndPrinterColumns) {
  for (auto [plural, kind, short_name] :
       {std::tuple{"bucketsyncpolicies", "BucketSyncPolicy", "bsp"},
        std::tuple{"bucketsyncs", "BucketSync", "bs"}}) {
    auto crd = load_crd(plural);
    EXPECT_EQ(crd.get_string("apiVersion"), "apiextensions.k8s.io/v1");
    EXPECT_EQ(crd.at_path({"metadata", "name"})->as_string(), std::string(plural) + ".tidesync.io");
    EXPECT_EQ(crd.at_path({"spec", "group"})->as_string(), k_group);
    EXPECT_EQ(crd.at_path({"spec", "scope"})->as_string(), "Namespaced");
    const auto* names = crd.at_path({"spec", "names"});
    EXPECT_EQ(names->get_string("kind"), kind);
    EXPECT_EQ(names->get_string("plural"), plural);
    EXPECT_EQ(strings(names->at("shortNames")), std::vector<std::string>{short_name});
    EXPECT_EQ(strings(names->at("categories")), std::vector<std::string>{"tidesync"});
    const auto& v = version_of(crd);
    EXPECT_EQ(v.get_string("name"), k_version);
    EXPECT_TRUE(v.get_bool("served") && v.get_bool("storage"));
    EXPECT_TRUE(v.at_path({"subresources", "status"}) != nullptr);
    std::vector<std::string> columns;
    for (const auto& c : v.at("additionalPrinterColumns")->as_array()) {
      columns.push_back(c.at("name")->as_string());
      EXPECT_TRUE(c.at("jsonPath")->as_string() == ".metadata.creationTimestamp" ||
                  path_in_schema(root_schema(crd), c.at("jsonPath")->as_string()))
          << c.at("jsonPath")->as_string();
    }
    std::vector<std::string> want =
        std::string(kind) == "BucketSync"
            ? std::vector<std::string>{"Phase", "Started", "Finished", "Age"}
            : std::vector<std::string>{"Schedule", "Last Sync", "Next Sync", "Age"};
    for (const auto& w : want)
      EXPECT_NE(std::find(columns.begin(), columns.end(), w), columns.end()) << w;
    std::vector<std::string> errors;
    check_structural(root_schema(crd), "", errors);
    EXPECT_TRUE(errors.empty()) << errors.front();
  }
}

TEST(Crd, SchemaFieldsMatchWhatTheParsersRead) {
  auto policy = load_crd("bucketsyncpolicies");
  auto sync = load_crd("bucketsyncs");
  const auto& ps = root_schema(policy);
  const auto& ss = root_schema(sync);
  EXPECT_EQ(keys(ps.at_path({"properties", "spec", "properties"})),
            as_strings(bucket_sync_policy_spec_fields()));
  EXPECT_EQ(keys(ps.at_path({"properties", "status", "properties"})),
            as_strings(bucket_sync_policy_status_fields()));
  EXPECT_EQ(keys(ss.at_path({"properties", "spec", "properties"})),
            as_strings(bucket_sync_spec_fields()));
  EXPECT_EQ(keys(ss.at_path({"properties", "status", "properties"})),
            as_strings(bucket_sync_status_fields()));
  // The status JSON the controllers patch has exactly the schema's fields.
  EXPECT_EQ(keys(ps.at_path({"properties", "status", "properties"})),
            keys(&static_cast<const json::value&>(to_json(bucket_sync_policy_status{}))));
  EXPECT_EQ(keys(ss.at_path({"properties", "status", "properties"})),
            keys(&static_cast<const json::value&>(to_json(bucket_sync_status{}))));

  // Required fields: the schema's list is what the parser calls required on an empty spec.
  EXPECT_EQ(sorted(strings(ps.at_path({"properties", "spec", "required"}))),
            sorted(required_reported_by_parser("policy")));
  EXPECT_EQ(sorted(strings(ss.at_path({"properties", "spec", "required"}))),
            sorted(required_reported_by_parser("sync")));

  // Enums.
  std::vector<std::string> phases;
  for (auto p : {bucket_sync_phase::initialize, bucket_sync_phase::sync,
                 bucket_sync_phase::finalize, bucket_sync_phase::finished})
    phases.emplace_back(to_string(p));
  EXPECT_EQ(strings(ss.at_path({"properties", "status", "properties", "phase", "enum"})), phases);
  EXPECT_EQ(strings(ps.at_path({"properties", "spec", "properties", "concurrencyPolicy", "enum"})),
            (std::vector<std::string>{std::string(to_string(concurrency_policy::forbid)),
                                      std::string(to_string(concurrency_policy::allow))}));

  // EnvVar items: the fields parse_env_list reads.
  for (const char* list : {"sourceEnv", "destinationEnv"}) {
    const auto* items = ps.at_path({"properties", "spec", "properties", list, "items"});
    ASSERT_NE(items, nullptr);
    EXPECT_EQ(keys(items->at("properties")),
              (std::vector<std::string>{"name", "value", "valueFrom"}));
    EXPECT_EQ(keys(items->at_path({"properties", "valueFrom", "properties"})),
              (std::vector<std::string>{"secretKeyRef", "configMapKeyRef", "fieldRef",
                                        "resourceFieldRef"}));
    EXPECT_EQ(*items, *ss.at_path({"properties", "spec", "properties", list, "items"}));
  }
}

TEST(Crd, ExamplesPassTheSchemaAndTheParser) {
  auto policy_crd = load_crd("bucketsyncpolicies");
  auto sync_crd = load_crd("bucketsyncs");
  int policies = 0, syncs = 0;
  for (const auto& entry : fs::directory_iterator(source_dir() / "deploy/examples")) {
    std::string name = entry.path().filename().string();
    if (name.rfind("bucketsync", 0) != 0) continue;
    for (const auto& doc : load_documents(entry.path())) {
      std::string kind(doc.get_string("kind"));
      std::vector<std::string> warnings;
      if (kind == k_bucket_sync_policy_kind) {
        ++policies;
        auto errors = schema_errors(policy_crd, doc);
        EXPECT_TRUE(errors.empty()) << name << ": " << errors.front();
        auto p = parse_bucket_sync_policy(doc, &warnings);
        EXPECT_TRUE(p.has_value()) << name << ": " << p.error().message;
      } else if (kind == k_bucket_sync_kind) {
        ++syncs;
        auto errors = schema_errors(sync_crd, doc);
        EXPECT_TRUE(errors.empty()) << name << ": " << errors.front();
        auto b = parse_bucket_sync(doc, &warnings);
        EXPECT_TRUE(b.has_value()) << name << ": " << b.error().message;
      }
      EXPECT_TRUE(warnings.empty()) << name << ": " << warnings.front();
    }
  }
  EXPECT_GE(policies, 1);
  EXPECT_GE(syncs, 1);
}

// Each bad value is refused by the CRD schema (kubectl apply fails) AND by the parser (a
// controller reading an object stored before the CRD changed still refuses it).
TEST(Crd, SchemaAndParserRejectTheSameBadValues) {
  auto crd = load_crd("bucketsyncpolicies");
  const char* base = R"({"apiVersion": "tidesync.io/v1alpha1", "kind": "BucketSyncPolicy",
      "metadata": {"name": "x"},
      "spec": {"source": "a", "destination": "b", "schedule": "@daily"}})";
  ASSERT_TRUE(schema_errors(crd, *json::parse(base)).empty());
  ASSERT_TRUE(parse_bucket_sync_policy(*json::parse(base)).has_value());
  std::vector<std::pair<std::string, json::value>> bad = {
      {"syncHistoryLimit", 0},
      {"startingDeadlineSeconds", -5},
      {"concurrencyPolicy", "Replace"},
      {"suspend", "yes"},
      {"timeout", "10"},
      {"rcloneFlags", json::array{"sync"}},
      {"sourceEnv", json::array{json::object{{"name", "access-key"}, {"value", "x"}}}},
      {"destinationEnv",
       json::array{json::object{
           {"name", "K"},
           {"valueFrom", json::object{{"secretKeyRef", json::object{{"name", "s"}}}}}}}},
      {"jobLabels", json::object{{"a", 1}}},
      {"source", ""},
  };
  for (const auto& [field, value] : bad) {
    auto obj = *json::parse(base);
    obj["spec"].as_object().set(field, value);
    EXPECT_FALSE(schema_errors(crd, obj).empty()) << field << " accepted by the schema";
    auto p = parse_bucket_sync_policy(obj);
    EXPECT_FALSE(p.has_value()) << field << " accepted by the parser";
  }
}

// DataSync (deploy/crds/tidesync.io_datasyncs.yaml against config/datasync.cpp).

TEST(Crd, DataSyncNamesColumnsAndStructure) {
  auto crd = load_crd("datasyncs");
  EXPECT_EQ(crd.get_string("apiVersion"), "apiextensions.k8s.io/v1");
  EXPECT_EQ(crd.at_path({"metadata", "name"})->as_string(), "datasyncs.tidesync.io");
  EXPECT_EQ(crd.at_path({"spec", "group"})->as_string(), k_group);
  EXPECT_EQ(crd.at_path({"spec", "scope"})->as_string(), "Namespaced");
  const auto* names = crd.at_path({"spec", "names"});
  EXPECT_EQ(names->get_string("kind"), k_datasync_kind);
  EXPECT_EQ(names->get_string("plural"), "datasyncs");
  EXPECT_EQ(strings(names->at("categories")), std::vector<std::string>{"tidesync"});
  // "ds" is kubectl's short name for DaemonSets, which would shadow ours.
  EXPECT_EQ(strings(names->at("shortNames")), std::vector<std::string>{"dsync"});
  std::set<std::string> short_names;
  for (const auto& entry : fs::directory_iterator(source_dir() / "deploy/crds"))
    for (const auto& doc : load_documents(entry.path()))
      for (const auto& s : strings(doc.at_path({"spec", "names", "shortNames"})))
        EXPECT_TRUE(short_names.insert(s).second) << s << " used twice";
  const auto& v = version_of(crd);
  EXPECT_EQ(v.get_string("name"), k_version);
  EXPECT_TRUE(v.get_bool("served") && v.get_bool("storage"));
  EXPECT_TRUE(v.at_path({"subresources", "status"}) != nullptr);
  std::vector<std::string> columns;
  for (const auto& c : v.at("additionalPrinterColumns")->as_array()) {
    columns.push_back(c.at("name")->as_string());
    EXPECT_TRUE(c.at("jsonPath")->as_string() == ".metadata.creationTimestamp" ||
                path_in_schema(root_schema(crd), c.at("jsonPath")->as_string()))
        << c.at("jsonPath")->as_string();
  }
  for (const char* w : {"Workspace", "Phase", "Queue", "Age"})
    EXPECT_NE(std::find(columns.begin(), columns.end(), w), columns.end()) << w;
  std::vector<std::string> errors;
  check_structural(root_schema(crd), "", errors);
  EXPECT_TRUE(errors.empty()) << errors.front();
}

TEST(Crd, DataSyncSchemaFieldsMatchWhatTheParserReads) {
  auto crd = load_crd("datasyncs");
  const auto* spec = root_schema(crd).at_path({"properties", "spec"});
  const auto* status = root_schema(crd).at_path({"properties", "status"});
  ASSERT_TRUE(spec && status);
  EXPECT_EQ(keys(spec->at("properties")), as_strings(datasync_spec_fields()));
  EXPECT_EQ(keys(spec->at_path({"properties", "vms", "items", "properties"})),
            as_strings(datasync_vm_fields()));
  EXPECT_EQ(keys(spec->at_path({"properties", "storage", "properties"})),
            as_strings(datasync_storage_fields()));
  EXPECT_EQ(keys(status->at("properties")), as_strings(datasync_status_fields()));
  EXPECT_EQ(keys(status->at("properties")),
            keys(&static_cast<const json::value&>(to_json(datasync_status{}))));
  EXPECT_EQ(keys(status->at_path({"properties", "vms", "items", "properties"})),
            as_strings(datasync_vm_status_fields()));

  // Required: what the parser reports as FieldValueRequired on an empty spec and an empty VM.
  auto required_of = [](const char* text, const std::string& prefix) {
    std::vector<std::string> out;
    auto d = parse_datasync(*json::parse(text));
    EXPECT_FALSE(d.has_value());
    if (!d.has_value())
      for (const auto& c : d.error().causes)
        if (c.reason == "FieldValueRequired") out.push_back(c.field.substr(prefix.size()));
    return out;
  };
  EXPECT_EQ(sorted(strings(spec->at("required"))), sorted(required_of(R"({"spec": {}})", "spec.")));
  EXPECT_EQ(sorted(strings(spec->at_path({"properties", "vms", "items", "required"}))),
            sorted(required_of(R"({"spec": {"workspaceId": "w", "vms": [{}]}})", "spec.vms[0].")));
  const auto* min_items = spec->at_path({"properties", "vms", "minItems"});
  const auto* max_items = spec->at_path({"properties", "vms", "maxItems"});
  ASSERT_TRUE(min_items && max_items);
  EXPECT_EQ(min_items->as_int(), 1);
  EXPECT_EQ(max_items->as_int(), static_cast<int64_t>(k_datasync_max_vms));

  // Enums.
  std::vector<std::string> types, phases, vm_phases;
  for (auto t : {datasync_source_type::http, datasync_source_type::s3, datasync_source_type::pvc})
    types.emplace_back(to_string(t));
  for (auto p : {datasync_phase::queued, datasync_phase::syncing, datasync_phase::succeeded,
                 datasync_phase::failed})
    phases.emplace_back(to_string(p));
  for (auto p : {datasync_vm_phase::pending, datasync_vm_phase::syncing,
                 datasync_vm_phase::succeeded, datasync_vm_phase::failed})
    vm_phases.emplace_back(to_string(p));
  EXPECT_EQ(
      strings(spec->at_path({"properties", "vms", "items", "properties", "sourceType", "enum"})),
      types);
  EXPECT_EQ(strings(status->at_path({"properties", "phase", "enum"})), phases);
  EXPECT_EQ(strings(status->at_path({"properties", "vms", "items", "properties", "phase", "enum"})),
            vm_phases);
  for (const auto& mode : strings(spec->at_path(
           {"properties", "storage", "properties", "accessModes", "items", "enum"}))) {
    auto d = parse_datasync(*json::parse(
        R"({"spec": {"workspaceId": "w", "vms": [{"name": "a", "sourceType": "http",
            "url": "http://h/x"}], "storage": {"accessModes": [")" +
        mode + R"("]}}})"));
    EXPECT_TRUE(d.has_value()) << mode;
  }
}

// A full DataSync passes both; each bad value is refused by the schema (kubectl apply fails)
// AND by the parser. The checks the schema cannot express (URL against sourceType, duplicate
// names, quantities beyond the pattern) are the parser's alone: config_datasync_test.cpp.
TEST(Crd, DataSyncSchemaAndParserAgree) {
  auto crd = load_crd("datasyncs");
  const char* base = R"({"apiVersion": "tidesync.io/v1alpha1", "kind": "DataSync",
      "metadata": {"name": "ws-035-v7"},
      "spec": {"workspaceId": "035", "version": "7",
               "vms": [{"name": "base", "sourceType": "http",
                        "url": "https://images.example.com/base.qcow2",
                        "checksum": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                        "size": 10737418240},
                       {"name": "tools", "sourceType": "s3", "url": "s3://images/tools.qcow2"},
                       {"name": "golden", "sourceType": "pvc",
                        "url": "pvc://golden-images/disk.img"}],
               "secretRef": {"name": "image-credentials"},
               "storage": {"storageClassName": "fast", "size": "20Gi",
                           "accessModes": ["ReadWriteOnce"]}},
      "status": {"phase": "Syncing", "retryCount": 0, "observedGeneration": 1,
                 "vms": [{"name": "base", "phase": "Syncing", "bytes": 5}]}})";
  ASSERT_TRUE(schema_errors(crd, *json::parse(base)).empty())
      << schema_errors(crd, *json::parse(base)).front();
  std::vector<std::string> warnings;
  auto ok = parse_datasync(*json::parse(base), &warnings);
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_TRUE(warnings.empty());
  // The status the controller writes passes the schema too (nulls included).
  datasync_status s;
  s.phase = datasync_phase::queued;
  s.queue_position = 1;
  s.vms.push_back({"base", datasync_vm_phase::pending, 0, {}, {}, {}});
  auto with_status = *json::parse(base);
  with_status.as_object().set("status", to_json(s));
  EXPECT_TRUE(schema_errors(crd, with_status).empty()) << schema_errors(crd, with_status).front();

  std::vector<std::pair<std::vector<std::string_view>, json::value>> bad = {
      {{"workspaceId"}, "WS-1"},
      {{"workspaceId"}, std::string(64, 'a')},
      {{"version"}, "v 7"},
      {{"vms", "0", "name"}, "Base"},
      {{"vms", "0", "sourceType"}, "ftp"},
      {{"vms", "0", "url"}, "not a url"},
      {{"vms", "0", "checksum"}, "sha1:0a"},
      {{"vms", "0", "size"}, -1},
      {{"vms", "0", "url"}, nullptr},
      {{"storage", "size"}, "20GB"},
      {{"storage", "size"}, "-1Gi"},
      {{"storage", "size"}, 20},
      {{"storage", "accessModes"}, json::array{"RWO"}},
      {{"secretRef"}, json::object{}},
  };
  for (const auto& [path, value] : bad) {
    auto obj = *json::parse(base);
    json::value* at = &obj["spec"];
    for (size_t i = 0; i + 1 < path.size(); ++i)
      at = at->is_array() ? &at->as_array().at(std::stoul(std::string(path[i]))) : &(*at)[path[i]];
    if (value.is_null())
      at->as_object().erase(path.back());
    else
      at->as_object().set(path.back(), value);
    std::string where(path.back());
    EXPECT_FALSE(schema_errors(crd, obj).empty()) << where << " accepted by the schema";
    EXPECT_FALSE(parse_datasync(obj).has_value()) << where << " accepted by the parser";
  }
}

// SharedConfig (deploy/crds/tidesync.io_sharedconfigs.yaml against config/sharedconfig.cpp).

TEST(Crd, SharedConfigNamesStructureAndFields) {
  auto crd = load_crd("sharedconfigs");
  EXPECT_EQ(crd.at_path({"metadata", "name"})->as_string(), "sharedconfigs.tidesync.io");
  EXPECT_EQ(crd.at_path({"spec", "group"})->as_string(), k_group);
  EXPECT_EQ(crd.at_path({"spec", "scope"})->as_string(), "Namespaced");
  EXPECT_EQ(crd.at_path({"spec", "names", "kind"})->as_string(), k_sharedconfig_kind);
  const auto& v = version_of(crd);
  EXPECT_EQ(v.get_string("name"), k_version);
  EXPECT_TRUE(v.at_path({"subresources", "status"}) != nullptr);
  for (const auto& c : v.at("additionalPrinterColumns")->as_array())
    EXPECT_TRUE(c.at("jsonPath")->as_string() == ".metadata.creationTimestamp" ||
                path_in_schema(root_schema(crd), c.at("jsonPath")->as_string()))
        << c.at("jsonPath")->as_string();
  std::vector<std::string> errors;
  check_structural(root_schema(crd), "", errors);
  EXPECT_TRUE(errors.empty()) << errors.front();
  const auto* spec = root_schema(crd).at_path({"properties", "spec"});
  const auto* status = root_schema(crd).at_path({"properties", "status"});
  ASSERT_TRUE(spec && status);
  EXPECT_EQ(keys(spec->at("properties")), as_strings(sharedconfig_spec_fields()));
  EXPECT_EQ(keys(status->at("properties")), as_strings(sharedconfig_status_fields()));
  auto written = to_json(sharedconfig_status{});
  EXPECT_EQ(keys(&written), as_strings(sharedconfig_status_fields()));
}

// PodFilesystemSync (deploy/crds/tidesync.io_podfilesystemsyncs.yaml against
// config/podfilesystemsync.cpp).

TEST(Crd, PodFilesystemSyncNamesStructureAndFields) {
  auto crd = load_crd("podfilesystemsyncs");
  EXPECT_EQ(crd.get_string("apiVersion"), "apiextensions.k8s.io/v1");
  EXPECT_EQ(crd.at_path({"metadata", "name"})->as_string(), "podfilesystemsyncs.tidesync.io");
  EXPECT_EQ(crd.at_path({"spec", "group"})->as_string(), k_group);
  EXPECT_EQ(crd.at_path({"spec", "scope"})->as_string(), "Namespaced");
  const auto* names = crd.at_path({"spec", "names"});
  EXPECT_EQ(names->get_string("kind"), k_podfilesystemsync_kind);
  EXPECT_EQ(names->get_string("plural"), "podfilesystemsyncs");
  EXPECT_EQ(strings(names->at("categories")), std::vector<std::string>{"tidesync"});
  EXPECT_EQ(strings(names->at("shortNames")), std::vector<std::string>{"pfsync"});
  // Short names are unique among ours and do not shadow kubectl's built-in ones.
  const std::set<std::string> kubectl = {"cm", "cs",  "csr", "cj",  "crd",    "deploy", "ds",
                                         "ep", "ev",  "hpa", "ing", "limits", "netpol", "no",
                                         "ns", "pdb", "po",  "psp", "pv",     "pvc",    "quota",
                                         "rc", "rs",  "sa",  "sc",  "sts",    "svc",    "pc"};
  std::set<std::string> short_names;
  for (const auto& entry : fs::directory_iterator(source_dir() / "deploy/crds"))
    for (const auto& doc : load_documents(entry.path()))
      for (const auto& s : strings(doc.at_path({"spec", "names", "shortNames"}))) {
        EXPECT_TRUE(short_names.insert(s).second) << s << " used twice";
        EXPECT_FALSE(kubectl.contains(s)) << s << " shadows a kubectl short name";
      }
  const auto& v = version_of(crd);
  EXPECT_EQ(v.get_string("name"), k_version);
  EXPECT_TRUE(v.get_bool("served") && v.get_bool("storage"));
  EXPECT_TRUE(v.at_path({"subresources", "status"}) != nullptr);
  std::vector<std::string> columns;
  for (const auto& c : v.at("additionalPrinterColumns")->as_array()) {
    columns.push_back(c.at("name")->as_string());
    EXPECT_TRUE(c.at("jsonPath")->as_string() == ".metadata.creationTimestamp" ||
                path_in_schema(root_schema(crd), c.at("jsonPath")->as_string()))
        << c.at("jsonPath")->as_string();
  }
  for (const char* w : {"LocalPath", "RemotePath", "Method", "Age"})
    EXPECT_NE(std::find(columns.begin(), columns.end(), w), columns.end()) << w;
  std::vector<std::string> errors;
  check_structural(root_schema(crd), "", errors);
  EXPECT_TRUE(errors.empty()) << errors.front();

  const auto* spec = root_schema(crd).at_path({"properties", "spec"});
  const auto* status = root_schema(crd).at_path({"properties", "status"});
  ASSERT_TRUE(spec && status);
  EXPECT_EQ(keys(spec->at("properties")), as_strings(podfilesystemsync_spec_fields()));
  EXPECT_EQ(keys(spec->at_path({"properties", "initContainerPlacement", "properties"})),
            as_strings(podfilesystemsync_placement_fields()));
  EXPECT_EQ(keys(spec->at_path({"properties", "syncOptions", "properties"})),
            as_strings(podfilesystemsync_sync_options_fields()));
  EXPECT_EQ(keys(status->at("properties")), as_strings(podfilesystemsync_status_fields()));
  podfilesystemsync_status with_last;
  with_last.last_sync = pod_sync_status{};
  auto written = to_json(with_last);
  EXPECT_EQ(keys(&written), as_strings(podfilesystemsync_status_fields()));
  EXPECT_EQ(keys(status->at_path({"properties", "pods", "items", "properties"})),
            as_strings(podfilesystemsync_pod_status_fields()));
  EXPECT_EQ(keys(status->at_path({"properties", "lastSync", "properties"})),
            as_strings(podfilesystemsync_pod_status_fields()));

  // Required: what the parser reports as FieldValueRequired on an empty spec.
  std::vector<std::string> required;
  auto r = parse_podfilesystemsync(*json::parse(R"({"spec": {}})"));
  ASSERT_FALSE(r.has_value());
  for (const auto& c : r.error().causes)
    if (c.reason == "FieldValueRequired") required.push_back(c.field.substr(5));
  EXPECT_EQ(sorted(strings(spec->at("required"))), sorted(required));

  // Enums.
  std::vector<std::string> placements, methods;
  for (auto p : {container_placement::before, container_placement::after,
                 container_placement::first, container_placement::last})
    placements.emplace_back(to_string(p));
  for (auto m : {sync_method::scheduler, sync_method::fsnotify})
    methods.emplace_back(to_string(m));
  EXPECT_EQ(strings(spec->at_path(
                {"properties", "initContainerPlacement", "properties", "placement", "enum"})),
            placements);
  EXPECT_EQ(strings(spec->at_path({"properties", "syncOptions", "properties", "method", "enum"})),
            methods);
}

// The example passes both; each bad value is refused by the schema AND by the parser. The
// checks the schema cannot express (forbidden roots, templates, env names, placement rules,
// the schedule) are the parser's alone: config_podfilesystemsync_test.cpp.
TEST(Crd, PodFilesystemSyncExampleAndBadValues) {
  auto crd = load_crd("podfilesystemsyncs");
  // The demo's PodFilesystemSync (beside its Secret) passes too.
  for (const auto& doc : load_documents(source_dir() / "deploy/examples/demo-site.yaml")) {
    if (doc.get_string("kind") != "PodFilesystemSync") continue;
    EXPECT_TRUE(schema_errors(crd, doc).empty()) << schema_errors(crd, doc).front();
    std::vector<std::string> demo_warnings;
    auto demo = parse_podfilesystemsync(doc, &demo_warnings);
    EXPECT_TRUE(demo.has_value()) << demo.error().message;
    EXPECT_TRUE(demo_warnings.empty()) << demo_warnings.front();
  }
  auto docs = load_documents(source_dir() / "deploy/examples/podfilesystemsync.yaml");
  ASSERT_EQ(docs.size(), 1u);
  const auto& example = docs[0];
  ASSERT_TRUE(schema_errors(crd, example).empty()) << schema_errors(crd, example).front();
  std::vector<std::string> warnings;
  auto ok = parse_podfilesystemsync(example, &warnings);
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  // The status the controller writes passes the schema too (nulls included).
  podfilesystemsync_status s;
  s.observed_generation = 1;
  pod_sync_status blank;
  blank.name = "press-0";
  s.pods.push_back(blank);
  pod_sync_status full;
  full.name = "press-1";
  full.injected = false;
  full.last_sync_time = sys_seconds(std::chrono::seconds(1'800'000'000));
  full.kind = "final";
  full.deleted = 2;
  full.consecutive_failures = 1;
  full.result = "Failed";
  full.message = "m";
  s.pods.push_back(full);
  s.last_sync = full;
  auto with_status = example;
  with_status.as_object().set("status", to_json(s));
  EXPECT_TRUE(schema_errors(crd, with_status).empty()) << schema_errors(crd, with_status).front();

  std::vector<std::pair<std::vector<std::string_view>, json::value>> bad = {
      {{"localPath"}, "relative"},
      {{"localPath"}, nullptr},
      {{"remotePath"}, ""},
      {{"remotePath"}, nullptr},
      {{"podSelector"}, nullptr},
      {{"initContainerPlacement", "placement"}, "middle"},
      {{"syncOptions", "method"}, "inotify"},
      {{"syncOptions", "permissions", "uid"}, -1},
      {{"syncOptions", "permissions", "gid"}, "1001"},
      {{"syncOptions", "cleanUp", "remote"}, "yes"},
      {{"syncOptions", "maxOneSyncPerMinutes"}, true},
      {{"allowedDirectories", "toRemote"}, 1},
      {{"restoreRemoteOnFirstRun"}, "true"},
      {{"env", "REMOTE_TYPE"}, 5},
      {{"envFromSecret"}, json::array{json::object{}}},
      {{"unhealthyAfterFailures"}, -1},
  };
  for (const auto& [path, value] : bad) {
    auto obj = example;
    json::value* at = &obj["spec"];
    for (size_t i = 0; i + 1 < path.size(); ++i)
      at = &(*at)[path[i]];
    if (value.is_null())
      at->as_object().erase(path.back());
    else
      at->as_object().set(path.back(), value);
    std::string where(path.back());
    EXPECT_FALSE(schema_errors(crd, obj).empty()) << where << " accepted by the schema";
    EXPECT_FALSE(parse_podfilesystemsync(obj).has_value()) << where << " accepted by the parser";
  }
}

// Both volume kinds share one schema: names, scope, fields as the parser reads and the status
// writes, the example, and bad values refused by both the schema and the parser.
TEST(Crd, SharedVolumeKindsNamesStructureFieldsAndExamples) {
  for (const auto& [plural, kind, scope] :
       {std::tuple{"sharedvolumes", k_sharedvolume_kind, "Namespaced"},
        std::tuple{"clustersharedvolumes", k_cluster_sharedvolume_kind, "Cluster"}}) {
    auto crd = load_crd(plural);
    EXPECT_EQ(crd.at_path({"spec", "scope"})->as_string(), scope);
    EXPECT_EQ(crd.at_path({"spec", "names"})->get_string("kind"), kind);
    std::vector<std::string> errors;
    check_structural(root_schema(crd), "", errors);
    EXPECT_TRUE(errors.empty()) << errors.front();
    const auto& v = version_of(crd);
    for (const auto& c : v.at("additionalPrinterColumns")->as_array())
      EXPECT_TRUE(c.at("jsonPath")->as_string() == ".metadata.creationTimestamp" ||
                  path_in_schema(root_schema(crd), c.at("jsonPath")->as_string()))
          << c.at("jsonPath")->as_string();
    const auto* spec = root_schema(crd).at_path({"properties", "spec"});
    const auto* status = root_schema(crd).at_path({"properties", "status"});
    ASSERT_TRUE(spec && status);
    EXPECT_EQ(keys(spec->at("properties")), as_strings(sharedvolume_spec_fields()));
    EXPECT_EQ(keys(spec->at_path({"properties", "source", "properties"})),
              as_strings(sharedvolume_source_fields()));
    EXPECT_EQ(keys(spec->at_path({"properties", "storage", "properties"})),
              as_strings(sharedvolume_storage_fields()));
    EXPECT_EQ(keys(status->at("properties")), as_strings(sharedvolume_status_fields()));
    sharedvolume_status full;
    full.phase = "Ready";
    full.nfs_server = "docs-nfs.team-a.svc.cluster.local";
    full.nfs_path = "/";
    full.revision = "4f2c9e1";
    full.last_sync_time = sys_seconds(std::chrono::seconds(1'800'000'000));
    full.last_sync_result = "Succeeded";
    full.last_sync_message = "m";
    full.consumers.push_back({"team-a", 2});
    auto written = to_json(full);
    EXPECT_EQ(keys(&written), as_strings(sharedvolume_status_fields()));
    // The CRD's own copy of the other kind's schema is the same.
    EXPECT_EQ(json::dump(*root_schema(crd).at("properties")),
              json::dump(*root_schema(load_crd("sharedvolumes")).at("properties")));
  }
  int examples = 0;
  for (const auto& doc : load_documents(source_dir() / "docs/examples/sharedvolume.yaml")) {
    ++examples;
    bool cluster = doc.get_string("kind") == k_cluster_sharedvolume_kind;
    auto crd = load_crd(cluster ? "clustersharedvolumes" : "sharedvolumes");
    EXPECT_TRUE(schema_errors(crd, doc).empty()) << schema_errors(crd, doc).front();
    std::vector<std::string> warnings;
    auto v = parse_sharedvolume(doc, &warnings);
    ASSERT_TRUE(v.has_value()) << v.error().message;
    EXPECT_TRUE(warnings.empty()) << warnings.front();
    EXPECT_EQ(v->cluster, cluster);
    auto with_status = doc;
    sharedvolume_status st;
    st.phase = "Pending";
    with_status.as_object().set("status", to_json(st));
    EXPECT_TRUE(schema_errors(crd, with_status).empty()) << schema_errors(crd, with_status).front();
  }
  EXPECT_EQ(examples, 2);

  auto crd = load_crd("sharedvolumes");
  const auto example = load_documents(source_dir() / "docs/examples/sharedvolume.yaml")[0];
  std::vector<std::pair<std::vector<std::string_view>, json::value>> bad = {
      {{"source"}, nullptr},
      {{"source", "git", "url"}, nullptr},
      {{"source", "git", "url"}, ""},
      {{"source", "git", "ref", "commit"}, "not-a-sha"},
      {{"source", "git", "secretRef"}, json::object{}},
      {{"readOnly"}, "yes"},
      {{"storage", "external"}, json::object{}},
  };
  for (const auto& [path, value] : bad) {
    auto obj = example;
    json::value* at = &obj["spec"];
    for (size_t i = 0; i + 1 < path.size(); ++i)
      at = &(*at)[path[i]];
    if (value.is_null())
      at->as_object().erase(path.back());
    else
      at->as_object().set(path.back(), value);
    std::string where(path.back());
    EXPECT_FALSE(schema_errors(crd, obj).empty()) << where << " accepted by the schema";
    EXPECT_FALSE(parse_sharedvolume(obj).has_value()) << where << " accepted by the parser";
  }
}
