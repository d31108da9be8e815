// Structural-schema pruning and validation of custom resources (runtime/apiserver/schema.hpp).
// Expected messages are what kube-apiserver v1.20.2 answered for the same objects and schema.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "runtime/apiserver/schema.hpp"
#include "runtime/apiserver/store.hpp"

namespace tidesync::apiserver {
namespace {

json::value must_parse(std::string_view text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? *v : json::value{};
}

constexpr const char* kSchema = R"({"type": "object", "properties": {
  "spec": {"type": "object", "required": ["schedule"], "properties": {
    "schedule": {"type": "string", "pattern": "^[0-9*/ ,-]+$", "minLength": 1, "maxLength": 20},
    "mode": {"type": "string", "enum": ["Copy", "Sync"]},
    "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
    "ratio": {"type": "number", "minimum": 0.5, "exclusiveMaximum": true, "maximum": 2},
    "flag": {"type": "boolean"},
    "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
    "maybe": {"type": "string", "nullable": true},
    "port": {"x-kubernetes-int-or-string": true},
    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
    "nested": {"type": "object", "properties": {"a": {"type": "integer"}}}}},
  "status": {"type": "object", "properties": {"phase": {"type": "string"}}}}})";

json::value probe(std::string_view spec) {
  return must_parse(R"({"apiVersion": "apis2.test/v1", "kind": "Probe",
    "metadata": {"name": "p", "annotations": {"x": "y"}}, "spec": )" +
                    std::string(spec) + "}");
}

// "field: message" for each cause, sorted: the real server's order is not stable.
std::vector<std::string> rendered(const std::vector<error_cause>& causes) {
  std::vector<std::string> out;
  for (const auto& c : causes)
    out.push_back(c.reason + " " + c.field + ": " + c.message);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(schema_test, a_valid_object_passes_and_unknown_fields_are_pruned) {
  json::value schema = must_parse(kSchema);
  json::value obj = probe(R"({"schedule": "1", "unknown": 1, "free": {"x": {"y": 1}},
    "nested": {"a": 1, "b": 2}, "port": "http", "labels": {"k": "v", "n": null},
    "tags": null, "maybe": null, "replicas": 2.0, "ratio": 1.5})");
  obj.as_object().set("extra", 1);
  obj.as_object().set("status", json::object{{"phase", "x"}, {"zz", 1}});
  prune_custom_resource(obj, schema);
  EXPECT_EQ(json::dump(*obj.at("spec")),
            R"({"schedule":"1","free":{"x":{"y":1}},"nested":{"a":1},"port":"http",)"
            R"("labels":{"k":"v"},"maybe":null,"replicas":2,"ratio":1.5})")
      << "unknown fields and nulls of non-nullable fields dropped; preserve-unknown-fields kept";
  EXPECT_EQ(obj.at("extra"), nullptr);
  EXPECT_EQ(json::dump(*obj.at("status")), R"({"phase":"x"})");
  EXPECT_EQ(obj.get_string("apiVersion"), "apis2.test/v1") << "apiVersion and kind are kept";
  EXPECT_EQ(obj.at_path({"metadata", "annotations"})->get_string("x"), "y")
      << "metadata is never pruned";
  EXPECT_TRUE(validate_custom_resource(obj, schema).empty());
}

TEST(schema_test, type_errors_use_kube_apiserver_wording) {
  json::value schema = must_parse(kSchema);
  auto causes = validate_custom_resource(probe(R"({"schedule": 5})"), schema);
  ASSERT_EQ(causes.size(), 1u);
  EXPECT_EQ(causes[0].reason, "FieldValueInvalid");
  EXPECT_EQ(causes[0].field, "spec.schedule");
  EXPECT_EQ(causes[0].message,
            "Invalid value: \"integer\": spec.schedule in body must be of type string: "
            "\"integer\"");
  auto whole = validate_custom_resource(probe(R"("x")"), schema);
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(whole[0].field, "spec");
  EXPECT_EQ(whole[0].message,
            "Invalid value: \"string\": spec in body must be of type object: \"string\"");
}

TEST(schema_test, every_keyword_reports_like_v1_20) {
  json::value schema = must_parse(kSchema);
  json::value obj = probe(R"({"schedule": "x y", "mode": "Bad", "replicas": 9, "ratio": 2,
    "flag": "no", "tags": [], "maybe": null, "port": true, "labels": {"a": 1},
    "nested": {"a": "s"}})");
  prune_custom_resource(obj, schema);
  auto got = rendered(validate_custom_resource(obj, schema));
  std::vector<std::string> want{
      "FieldValueNotSupported spec.mode: Unsupported value: \"Bad\": supported values: "
      "\"Copy\", \"Sync\"",
      "FieldValueInvalid spec.labels.a: Invalid value: \"integer\": spec.labels.a in body must "
      "be of type string: \"integer\"",
      "FieldValueInvalid spec.nested.a: Invalid value: \"string\": spec.nested.a in body must "
      "be of type integer: \"string\"",
      "FieldValueInvalid spec.flag: Invalid value: \"string\": spec.flag in body must be of "
      "type boolean: \"string\"",
      "FieldValueInvalid spec.ratio: Invalid value: 2: spec.ratio in body should be less than 2",
      "FieldValueInvalid spec.port: Invalid value: \"boolean\": spec.port in body must be of "
      "type integer,string: \"boolean\"",
      "FieldValueInvalid spec.schedule: Invalid value: \"x y\": spec.schedule in body should "
      "match '^[0-9*/ ,-]+$'",
      "FieldValueInvalid spec.replicas: Invalid value: 9: spec.replicas in body should be less "
      "than or equal to 5",
      "FieldValueInvalid spec.tags: Invalid value: 0: spec.tags in body should have at least 1 "
      "items",
  };
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);

  auto more = rendered(validate_custom_resource(
      probe(R"({"schedule": "123456789012345678901", "replicas": 0, "ratio": 0.1,
                "tags": ["a", 1, null], "port": 1.5})"),
      schema));
  std::vector<std::string> want_more{
      "FieldValueInvalid spec.schedule: Invalid value: \"123456789012345678901\": spec.schedule "
      "in body should be at most 20 chars long",
      "FieldValueInvalid spec.replicas: Invalid value: 0: spec.replicas in body should be "
      "greater than or equal to 1",
      "FieldValueInvalid spec.ratio: Invalid value: 0.1: spec.ratio in body should be greater "
      "than or equal to 0.5",
      "FieldValueInvalid spec.tags: Invalid value: 3: spec.tags in body should have at most 2 "
      "items",
      "FieldValueInvalid spec.tags: Invalid value: \"integer\": spec.tags in body must be of "
      "type string: \"integer\"",
      "FieldValueInvalid spec.tags: Invalid value: \"null\": spec.tags in body must be of type "
      "string: \"null\"",
      "FieldValueInvalid spec.port: Invalid value: \"number\": spec.port in body must be of "
      "type integer,string: \"number\"",
  };
  std::sort(want_more.begin(), want_more.end());
  EXPECT_EQ(more, want_more);

  auto required = validate_custom_resource(probe(R"({"mode": "Copy"})"), schema);
  ASSERT_EQ(required.size(), 1u);
  EXPECT_EQ(required[0].reason, "FieldValueRequired");
  EXPECT_EQ(required[0].field, "spec.schedule");
  EXPECT_EQ(required[0].message, "Required value");
  EXPECT_TRUE(
      validate_custom_resource(probe(R"({"schedule": "1", "replicas": 1.5})"), schema).size() == 1)
      << "1.5 is not an integer";
}

// Through the store: 422 with the Kind, details and causes on create, update and /status;
// pruning on every write.
TEST(schema_test, defaults_fill_absent_fields_inside_existing_objects) {
  auto schema = must_parse(R"({"type": "object", "properties": {
    "spec": {"type": "object", "properties": {
      "suspend": {"type": "boolean", "default": false},
      "mode": {"type": "string", "default": "Sync"},
      "limits": {"type": "object", "default": {}, "properties": {
        "retries": {"type": "integer", "default": 3}}},
      "targets": {"type": "array", "items": {"type": "object", "properties": {
        "weight": {"type": "integer", "default": 1}}}},
      "byName": {"type": "object", "additionalProperties": {"type": "object", "properties": {
        "on": {"type": "boolean", "default": true}}}}}},
    "status": {"type": "object", "properties": {"phase": {"type": "string", "default": "New"}}}}})");
  auto obj = probe(R"({"mode": "Copy", "targets": [{}, {"weight": 5}], "byName": {"a": {}}})");
  default_custom_resource(obj, schema);
  const json::value& spec = *obj.at("spec");
  EXPECT_EQ(spec.at("suspend")->as_bool(), false);
  EXPECT_EQ(spec.get_string("mode"), "Copy") << "a value that is present is kept";
  EXPECT_EQ(spec.at_path({"limits", "retries"})->as_int(), 3) << "defaults inside a default";
  EXPECT_EQ(spec.at("targets")->as_array()[0].get_int("weight"), 1);
  EXPECT_EQ(spec.at("targets")->as_array()[1].get_int("weight"), 5);
  EXPECT_EQ(spec.at_path({"byName", "a", "on"})->as_bool(), true);
  EXPECT_EQ(obj.at("status"), nullptr) << "no default under an object that is absent";
  EXPECT_EQ(obj.at_path({"metadata", "name"})->as_string(), "p");
}

TEST(schema_test, the_store_validates_and_prunes_custom_resources) {
  store st;
  auto crds = st.find_type("apiextensions.k8s.io", "v1", "customresourcedefinitions");
  ASSERT_TRUE(crds.has_value());
  json::value crd = must_parse(R"({"apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition", "metadata": {"name": "probes.apis2.test"},
    "spec": {"group": "apis2.test", "scope": "Namespaced",
      "names": {"plural": "probes", "singular": "probe", "kind": "Probe"},
      "versions": [{"name": "v1", "served": true, "storage": true,
        "subresources": {"status": {}}, "schema": {"openAPIV3Schema": )" +
                               std::string(kSchema) + "}}]}}");
  ASSERT_TRUE(st.create(*crds, "", crd).has_value());
  auto probes = st.find_type("apis2.test", "v1", "probes");
  ASSERT_TRUE(probes.has_value());

  auto bad = st.create(*probes, "default", probe(R"({"schedule": 5})"));
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().http_status, 422);
  EXPECT_EQ(bad.error().message,
            "Probe.apis2.test \"p\" is invalid: spec.schedule: Invalid value: \"integer\": "
            "spec.schedule in body must be of type string: \"integer\"");
  json::value status = status_for(bad.error());
  EXPECT_EQ(status.at("details")->get_string("kind"), "Probe");
  EXPECT_EQ(status.at("details")->get_string("group"), "apis2.test");
  EXPECT_EQ(status.at_path({"details", "causes"})->as_array()[0].get_string("field"),
            "spec.schedule");

  auto ok = st.create(*probes, "default", probe(R"({"schedule": "1", "unknown": true})"));
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ((*ok)->obj.at_path({"spec", "unknown"}), nullptr);

  auto patched = st.patch(*probes, "default", "p", store::patch_type::merge,
                          must_parse(R"({"spec": {"zzz": 1}})"));
  ASSERT_TRUE(patched.has_value());
  EXPECT_EQ((*patched)->rv, (*ok)->rv) << "a patch of only unknown fields changes nothing";

  auto bad_patch = st.patch(*probes, "default", "p", store::patch_type::merge,
                            must_parse(R"({"spec": {"replicas": "x"}})"));
  ASSERT_FALSE(bad_patch.has_value());
  EXPECT_EQ(bad_patch.error().causes.at(0).field, "spec.replicas");

  auto st_ok = st.patch(*probes, "default", "p", store::patch_type::merge,
                        must_parse(R"({"status": {"phase": "ok", "zz": 1}})"), true);
  ASSERT_TRUE(st_ok.has_value());
  EXPECT_EQ(json::dump(*(*st_ok)->obj.at("status")), R"({"phase":"ok"})");
  auto st_bad = st.patch(*probes, "default", "p", store::patch_type::merge,
                         must_parse(R"({"status": {"phase": 5}})"), true);
  ASSERT_FALSE(st_bad.has_value());
  EXPECT_EQ(st_bad.error().causes.at(0).field, "status.phase");
}

}  // namespace
}  // namespace tidesync::apiserver
