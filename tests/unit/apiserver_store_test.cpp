// The embedded API server's object semantics, without HTTP.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "runtime/apiserver/manifest.hpp"
#include "runtime/apiserver/store.hpp"

namespace tidesync::apiserver {
namespace {

using namespace std::chrono_literals;

json::value must_parse(std::string_view text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? *v : json::value{};
}

resource_type type_of(store& st, std::string_view group, std::string_view version,
                      std::string_view plural) {
  auto t = st.find_type(group, version, plural);
  EXPECT_TRUE(t.has_value()) << group << "/" << version << "/" << plural;
  return t ? *t : resource_type{};
}

json::value configmap(std::string_view name, std::string_view data = "v") {
  return json::object{{"apiVersion", "v1"},
                      {"kind", "ConfigMap"},
                      {"metadata", json::object{{"name", name}}},
                      {"data", json::object{{"k", data}}}};
}

uint64_t rv_of(const object_ptr& o) {
  return std::stoull(std::string(o->obj.at("metadata")->get_string("resourceVersion")));
}
int64_t generation_of(const object_ptr& o) {
  return o->obj.at("metadata")->get_int("generation");
}

constexpr const char* kWidgetCrd = R"({
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.test.tidesync.io"},
  "spec": {"group": "test.tidesync.io", "scope": "Namespaced",
    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "subresources": {"status": {}},
      "additionalPrinterColumns": [{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}]}]}})";

json::value widget(std::string_view name, int size) {
  return json::object{{"apiVersion", "test.tidesync.io/v1"},
                      {"kind", "Widget"},
                      {"metadata", json::object{{"name", name}}},
                      {"spec", json::object{{"size", size}}}};
}

class store_test : public ::testing::Test {
 protected:
  store_options opts() {
    store_options o;
    o.bookmark_interval = 50ms;
    return o;
  }
  store st{opts()};
  resource_type cms = type_of(st, "", "v1", "configmaps");
  resource_type nss = type_of(st, "", "v1", "namespaces");
  resource_type crds = type_of(st, "apiextensions.k8s.io", "v1", "customresourcedefinitions");

  resource_type install_widgets() {
    auto c = st.create(crds, "", must_parse(kWidgetCrd));
    EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().message);
    return type_of(st, "test.tidesync.io", "v1", "widgets");
  }

  // Collects watch lines until `n` arrived or 2 s passed.
  static std::vector<json::value> read_events(watch_stream& w, size_t n) {
    std::vector<json::value> out;
    auto deadline = std::chrono::steady_clock::now() + 2s;
    while (out.size() < n && std::chrono::steady_clock::now() < deadline && !w.closed()) {
      for (const auto& line : w.next(100ms))
        out.push_back(must_parse(line));
    }
    return out;
  }
};

TEST_F(store_test, create_sets_metadata_and_global_resource_version) {
  auto a = st.create(cms, "default", configmap("a"));
  ASSERT_TRUE(a.has_value()) << a.error().message;
  const auto* m = (*a)->obj.at("metadata");
  EXPECT_EQ(m->get_string("namespace"), "default");
  EXPECT_EQ(m->get_string("uid").size(), 36u);
  EXPECT_EQ(m->at("generation"), nullptr) << "v1.20 keeps no generation on ConfigMaps";
  EXPECT_EQ(m->get_string("creationTimestamp").size(), 20u);  // 2026-01-01T00:00:00Z
  auto b = st.create(nss, "", json::object{{"metadata", json::object{{"name", "other"}}}});
  ASSERT_TRUE(b.has_value());
  EXPECT_GT(rv_of(*b), rv_of(*a)) << "one resourceVersion sequence across all types";
  EXPECT_EQ(st.current_resource_version(), rv_of(*b));
  EXPECT_EQ((*b)->obj.get_string("kind"), "Namespace");
}

TEST_F(store_test, create_validates_name_namespace_and_duplicates) {
  auto bad = st.create(cms, "default", configmap("Not_Valid"));
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().http_status, 422);
  EXPECT_EQ(bad.error().reason, "Invalid");
  EXPECT_NE(bad.error().message.find("RFC 1123"), std::string::npos);

  auto no_ns = st.create(cms, "missing", configmap("a"));
  ASSERT_FALSE(no_ns.has_value());
  EXPECT_EQ(no_ns.error().http_status, 404);
  EXPECT_EQ(no_ns.error().message, "namespaces \"missing\" not found");

  ASSERT_TRUE(st.create(cms, "default", configmap("a")).has_value());
  auto dup = st.create(cms, "default", configmap("a"));
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().http_status, 409);
  EXPECT_EQ(dup.error().reason, "AlreadyExists");
}

// Status details come from the error's structured subject and causes, set where the store
// makes the error, never from parsing the message back.
TEST_F(store_test, errors_carry_their_subject_and_causes) {
  auto bad = st.create(cms, "default", configmap("Not_Valid"));
  ASSERT_FALSE(bad.has_value());
  const error& inv = bad.error();
  ASSERT_TRUE(inv.subject.has_value());
  EXPECT_EQ(inv.subject->kind, "ConfigMap") << "422 names the Kind";
  EXPECT_EQ(inv.subject->group, "");
  EXPECT_EQ(inv.subject->name, "Not_Valid");
  ASSERT_EQ(inv.causes.size(), 1u);
  EXPECT_EQ(inv.causes[0].reason, "FieldValueInvalid");
  EXPECT_EQ(inv.causes[0].field, "metadata.name");
  EXPECT_EQ(inv.causes[0].message.rfind("Invalid value: \"Not_Valid\": a lowercase RFC 1123", 0),
            0u)
      << inv.causes[0].message;
  EXPECT_EQ(inv.message,
            "ConfigMap \"Not_Valid\" is invalid: metadata.name: " + inv.causes[0].message);
  json::value st422 = status_for(inv);
  EXPECT_EQ(st422.get_int("code"), 422);
  const auto* d = st422.at("details");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->get_string("name"), "Not_Valid");
  EXPECT_EQ(d->at("group"), nullptr) << "omitted when empty, as metav1.StatusDetails";
  EXPECT_EQ(d->get_string("kind"), "ConfigMap");
  ASSERT_NE(d->at("causes"), nullptr);
  ASSERT_EQ(d->at("causes")->as_array().size(), 1u);
  const auto& c = d->at("causes")->as_array()[0];
  EXPECT_EQ(c.get_string("reason"), "FieldValueInvalid");
  EXPECT_EQ(c.get_string("field"), "metadata.name");
  EXPECT_EQ(c.get_string("message"), inv.causes[0].message);

  // A custom resource: the group is part of the subject.
  ASSERT_TRUE(st.create(crds, "", must_parse(kWidgetCrd)).has_value());
  auto widgets = type_of(st, "test.tidesync.io", "v1", "widgets");
  auto nf = st.get(widgets, "default", "nope");
  ASSERT_FALSE(nf.has_value());
  ASSERT_TRUE(nf.error().subject.has_value());
  EXPECT_EQ(nf.error().subject->kind, "widgets") << "404 names the resource";
  EXPECT_EQ(nf.error().subject->group, "test.tidesync.io");
  EXPECT_EQ(nf.error().subject->name, "nope");
  EXPECT_EQ(status_for(nf.error()).at("details")->get_string("group"), "test.tidesync.io");

  ASSERT_TRUE(st.create(widgets, "default", widget("w", 1)).has_value());
  auto dup = st.create(widgets, "default", widget("w", 1));
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().subject->kind, "widgets");
  EXPECT_EQ(dup.error().subject->name, "w");
  EXPECT_TRUE(dup.error().causes.empty());

  // A namespace that does not exist: the subject is the namespace.
  auto no_ns = st.create(cms, "missing", configmap("a"));
  ASSERT_FALSE(no_ns.has_value());
  EXPECT_EQ(no_ns.error().subject->kind, "namespaces");
  EXPECT_EQ(no_ns.error().subject->name, "missing");

  // A delete precondition names the Kind, as kube-apiserver does.
  ASSERT_TRUE(st.create(cms, "default", configmap("p")).has_value());
  delete_options pre;
  pre.precondition_uid = "00000000-0000-0000-0000-000000000000";
  auto wrong = st.remove(cms, "default", "p", pre);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().subject->kind, "ConfigMap");
  EXPECT_EQ(wrong.error().subject->name, "p");

  // Errors about no object have no details.
  error plain = make_error(errc::bad_request, "the object must be a JSON object");
  EXPECT_TRUE(status_details(plain).is_null());
  EXPECT_EQ(status_for(plain).at("details"), nullptr);
}

TEST_F(store_test, generate_name_adds_a_random_suffix) {
  json::value obj = configmap("");
  obj["metadata"].as_object().erase("name");
  obj["metadata"].as_object().set("generateName", "job-");
  auto a = st.create(cms, "default", obj);
  auto b = st.create(cms, "default", obj);
  ASSERT_TRUE(a.has_value() && b.has_value());
  std::string na((*a)->obj.at("metadata")->get_string("name"));
  std::string nb((*b)->obj.at("metadata")->get_string("name"));
  EXPECT_EQ(na.size(), 9u);
  EXPECT_EQ(na.rfind("job-", 0), 0u);
  EXPECT_NE(na, nb);
}

TEST_F(store_test, stale_resource_version_conflicts) {
  auto a = st.create(cms, "default", configmap("a"));
  ASSERT_TRUE(a.has_value());
  json::value v1 = (*a)->obj;
  v1["data"].as_object().set("k", "2");
  auto u1 = st.update(cms, "default", "a", v1);
  ASSERT_TRUE(u1.has_value()) << u1.error().message;
  EXPECT_GT(rv_of(*u1), rv_of(*a));
  // v1 still carries the old resourceVersion.
  v1["data"].as_object().set("k", "3");
  auto stale = st.update(cms, "default", "a", v1);
  ASSERT_FALSE(stale.has_value());
  EXPECT_EQ(stale.error().http_status, 409);
  EXPECT_EQ(stale.error().reason, "Conflict");
  EXPECT_NE(stale.error().message.find("the object has been modified"), std::string::npos);
  // Without a resourceVersion the update is unconditional.
  v1["metadata"].as_object().erase("resourceVersion");
  EXPECT_TRUE(st.update(cms, "default", "a", v1).has_value());
  auto missing = st.update(cms, "default", "nope", configmap("nope"));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().http_status, 404);
  EXPECT_EQ(missing.error().message, "configmaps \"nope\" not found");
}

TEST_F(store_test, generation_follows_spec_only_and_noop_keeps_resource_version) {
  auto widgets = install_widgets();
  auto w = st.create(widgets, "default", widget("w", 1));
  ASSERT_TRUE(w.has_value()) << w.error().message;
  EXPECT_EQ(generation_of(*w), 1);
  // A label change: new resourceVersion, same generation.
  auto labelled = st.patch(widgets, "default", "w", store::patch_type::merge,
                           must_parse(R"({"metadata":{"labels":{"a":"b"}}})"));
  ASSERT_TRUE(labelled.has_value()) << labelled.error().message;
  EXPECT_EQ(generation_of(*labelled), 1);
  EXPECT_GT(rv_of(*labelled), rv_of(*w));
  // A status change through /status: same generation.
  auto status = st.patch(widgets, "default", "w", store::patch_type::merge,
                         must_parse(R"({"status":{"phase":"Ready"}})"), true);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(generation_of(*status), 1);
  // A spec change: generation 2.
  auto spec = st.patch(widgets, "default", "w", store::patch_type::merge,
                       must_parse(R"({"spec":{"size":2}})"));
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(generation_of(*spec), 2);
  // The same spec again: nothing changes, not even the resourceVersion.
  auto noop = st.patch(widgets, "default", "w", store::patch_type::merge,
                       must_parse(R"({"spec":{"size":2}})"));
  ASSERT_TRUE(noop.has_value());
  EXPECT_EQ(rv_of(*noop), rv_of(*spec));
}

// Only kinds whose v1.20 strategy keeps a generation have one (checked on the real server by
// the conformance suite): custom resources, CRDs, Deployments (annotations count too).
TEST_F(store_test, generation_only_on_kinds_that_keep_one) {
  auto cm = st.create(cms, "default", configmap("c"));
  ASSERT_TRUE(cm.has_value());
  EXPECT_EQ((*cm)->obj.at_path({"metadata", "generation"}), nullptr);
  json::value changed = (*cm)->obj;
  changed["data"].as_object().set("k", "other");
  changed["metadata"].as_object().set("generation", 5);
  auto upd = st.update(cms, "default", "c", changed);
  ASSERT_TRUE(upd.has_value());
  EXPECT_EQ((*upd)->obj.at_path({"metadata", "generation"}), nullptr)
      << "an update cannot set a generation";
  json::value preset = configmap("d");
  preset["metadata"].as_object().set("generation", 7);
  auto kept = st.create(cms, "default", preset);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(generation_of(*kept), 7) << "a generation sent on create is stored as is";

  auto jobs = type_of(st, "batch", "v1", "jobs");
  auto job =
      st.create(jobs, "default", must_parse(R"({"metadata":{"name":"j"},"spec":{"template":{}}})"));
  ASSERT_TRUE(job.has_value()) << job.error().message;
  EXPECT_EQ((*job)->obj.at_path({"metadata", "generation"}), nullptr);

  auto deps = type_of(st, "apps", "v1", "deployments");
  auto dep =
      st.create(deps, "default", must_parse(R"({"metadata":{"name":"d"},"spec":{"replicas":1}})"));
  ASSERT_TRUE(dep.has_value()) << dep.error().message;
  EXPECT_EQ(generation_of(*dep), 1);
  auto labelled = st.patch(deps, "default", "d", store::patch_type::merge,
                           must_parse(R"({"metadata":{"labels":{"a":"b"}}})"));
  ASSERT_TRUE(labelled.has_value());
  EXPECT_EQ(generation_of(*labelled), 1) << "labels do not bump a Deployment's generation";
  auto annotated = st.patch(deps, "default", "d", store::patch_type::merge,
                            must_parse(R"({"metadata":{"annotations":{"a":"b"}}})"));
  ASSERT_TRUE(annotated.has_value());
  EXPECT_EQ(generation_of(*annotated), 2) << "annotations do";
  auto scaled = st.patch(deps, "default", "d", store::patch_type::merge,
                         must_parse(R"({"spec":{"replicas":3}})"));
  ASSERT_TRUE(scaled.has_value());
  EXPECT_EQ(generation_of(*scaled), 3);

  // Deletion with a finalizer bumps only a generation that exists.
  json::value held = configmap("h");
  held["metadata"].as_object().set("finalizers", json::array{"x.io/hold"});
  ASSERT_TRUE(st.create(cms, "default", held).has_value());
  auto deleting = st.remove(cms, "default", "h");
  ASSERT_TRUE(deleting.has_value());
  EXPECT_FALSE(deleting->deleted);
  EXPECT_EQ(deleting->object->obj.at_path({"metadata", "generation"}), nullptr);
}

TEST_F(store_test, status_subresource_separates_spec_and_status) {
  auto widgets = install_widgets();
  json::value with_status = widget("w", 1);
  with_status.as_object().set("status", json::object{{"phase", "Made-up"}});
  auto w = st.create(widgets, "default", with_status);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ((*w)->obj.at("status"), nullptr) << "status is not settable on create";
  // A main-resource update cannot change status...
  json::value body = (*w)->obj;
  body.as_object().set("status", json::object{{"phase", "Sneaky"}});
  body["spec"].as_object().set("size", 5);
  auto u = st.update(widgets, "default", "w", body);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ((*u)->obj.at("status"), nullptr);
  EXPECT_EQ((*u)->obj.at_path({"spec", "size"})->as_int(), 5);
  // ...and a /status update cannot change spec.
  body = (*u)->obj;
  body.as_object().set("status", json::object{{"phase", "Ready"}});
  body["spec"].as_object().set("size", 9);
  auto s = st.update(widgets, "default", "w", body, true);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ((*s)->obj.at_path({"status", "phase"})->as_string(), "Ready");
  EXPECT_EQ((*s)->obj.at_path({"spec", "size"})->as_int(), 5);
}

TEST_F(store_test, json_patch_applies_and_failed_test_is_invalid) {
  ASSERT_TRUE(st.create(cms, "default", configmap("a", "x")).has_value());
  auto ok = st.patch(
      cms, "default", "a", store::patch_type::json,
      must_parse(
          R"([{"op":"test","path":"/data/k","value":"x"},{"op":"replace","path":"/data/k","value":"y"}])"));
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ((*ok)->obj.at_path({"data", "k"})->as_string(), "y");
  auto bad = st.patch(cms, "default", "a", store::patch_type::json,
                      must_parse(R"([{"op":"test","path":"/data/k","value":"x"}])"));
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().http_status, 422);
  // A merge patch carrying a stale resourceVersion is a conflict, as on a real server.
  auto stale = st.patch(cms, "default", "a", store::patch_type::merge,
                        must_parse(R"({"metadata":{"resourceVersion":"1"},"data":{"k":"z"}})"));
  ASSERT_FALSE(stale.has_value());
  EXPECT_EQ(stale.error().http_status, 409);
}

TEST_F(store_test, finalizers_hold_deletion_until_removed) {
  json::value obj = configmap("held");
  obj["metadata"].as_object().set("finalizers", json::array{"tidesync.io/cleanup"});
  auto c = st.create(cms, "default", obj);
  ASSERT_TRUE(c.has_value());
  auto w = st.watch(cms, "default", {std::to_string(rv_of(*c)), "", "", false, nullptr});
  ASSERT_TRUE(w.has_value());
  auto d = st.remove(cms, "default", "held");
  ASSERT_TRUE(d.has_value());
  EXPECT_FALSE(d->deleted);
  EXPECT_NE(d->object->obj.at_path({"metadata", "deletionTimestamp"}), nullptr);
  EXPECT_TRUE(st.get(cms, "default", "held").has_value());
  // Adding a finalizer while deleting is forbidden.
  auto add = st.patch(cms, "default", "held", store::patch_type::merge,
                      must_parse(R"({"metadata":{"finalizers":["tidesync.io/cleanup","x/y"]}})"));
  ASSERT_FALSE(add.has_value());
  EXPECT_EQ(add.error().http_status, 422);
  auto done = st.patch(cms, "default", "held", store::patch_type::merge,
                       must_parse(R"({"metadata":{"finalizers":null}})"));
  ASSERT_TRUE(done.has_value()) << done.error().message;
  EXPECT_FALSE(st.get(cms, "default", "held").has_value());
  auto events = read_events(**w, 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].get_string("type"), "MODIFIED");
  EXPECT_EQ(events[1].get_string("type"), "DELETED");
}

TEST_F(store_test, owner_references_cascade) {
  auto owner = st.create(cms, "default", configmap("owner"));
  auto other = st.create(cms, "default", configmap("other"));
  ASSERT_TRUE(owner.has_value() && other.has_value());
  auto ref = [](const object_ptr& o) {
    return json::object{{"apiVersion", "v1"},
                        {"kind", "ConfigMap"},
                        {"name", std::string(o->obj.at("metadata")->get_string("name"))},
                        {"uid", o->uid}};
  };
  json::value only = configmap("only-child");
  only["metadata"].as_object().set("ownerReferences", json::array{ref(*owner)});
  json::value shared = configmap("shared-child");
  shared["metadata"].as_object().set("ownerReferences", json::array{ref(*owner), ref(*other)});
  json::value grandchild = configmap("grandchild");
  ASSERT_TRUE(st.create(cms, "default", only).has_value());
  auto sc = st.create(cms, "default", shared);
  ASSERT_TRUE(sc.has_value());
  auto oc = st.get(cms, "default", "only-child");
  grandchild["metadata"].as_object().set("ownerReferences", json::array{ref(*oc)});
  ASSERT_TRUE(st.create(cms, "default", grandchild).has_value());

  ASSERT_TRUE(st.remove(cms, "default", "owner", {"Background", "", ""}).has_value());
  EXPECT_FALSE(st.get(cms, "default", "only-child").has_value());
  EXPECT_FALSE(st.get(cms, "default", "grandchild").has_value()) << "cascade is transitive";
  auto kept = st.get(cms, "default", "shared-child");
  ASSERT_TRUE(kept.has_value()) << "an object with a live owner stays";
  EXPECT_EQ((*kept)->obj.at_path({"metadata", "ownerReferences"})->as_array().size(), 1u);

  // Orphan: the dependent stays and loses its reference.
  ASSERT_TRUE(st.remove(cms, "default", "other", {"Orphan", "", ""}).has_value());
  auto orphan = st.get(cms, "default", "shared-child");
  ASSERT_TRUE(orphan.has_value());
  EXPECT_EQ((*orphan)->obj.at_path({"metadata", "ownerReferences"}), nullptr);
}

TEST_F(store_test, delete_preconditions_and_namespace_cascade) {
  auto a = st.create(nss, "", json::object{{"metadata", json::object{{"name", "team"}}}});
  ASSERT_TRUE(a.has_value());
  auto c = st.create(cms, "team", configmap("a"));
  ASSERT_TRUE(c.has_value());
  auto pre = st.remove(cms, "team", "a", {"", "wrong-uid", ""});
  ASSERT_FALSE(pre.has_value());
  EXPECT_EQ(pre.error().http_status, 409);
  auto d = st.remove(nss, "", "team");
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->deleted);
  EXPECT_FALSE(st.get(cms, "team", "a").has_value());
  EXPECT_FALSE(st.get(nss, "", "team").has_value());
}

TEST_F(store_test, list_pages_and_selectors) {
  for (int i = 0; i < 25; ++i) {
    json::value cm = configmap("cm-" + std::to_string(100 + i));
    cm["metadata"].as_object().set("labels", json::object{{"parity", i % 2 == 0 ? "even" : "odd"}});
    ASSERT_TRUE(st.create(cms, "default", cm).has_value());
  }
  list_options o;
  o.limit = 10;
  std::vector<std::string> names;
  std::string rv;
  for (int page = 0; page < 5; ++page) {
    auto l = st.list(cms, "default", o);
    ASSERT_TRUE(l.has_value()) << l.error().message;
    if (page == 0) rv = l->resource_version;
    EXPECT_EQ(l->resource_version, rv) << "every page reports the first page's resourceVersion";
    for (const auto& it : l->items)
      names.emplace_back(it->obj.at("metadata")->get_string("name"));
    if (l->continue_token.empty()) break;
    o.continue_token = l->continue_token;
  }
  ASSERT_EQ(names.size(), 25u);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));

  list_options sel;
  sel.label_selector = "parity=even";
  EXPECT_EQ(st.list(cms, "default", sel)->items.size(), 13u);
  sel.label_selector = "parity in (odd),!missing";
  EXPECT_EQ(st.list(cms, "default", sel)->items.size(), 12u);
  sel.label_selector = "parity in (";
  auto bad = st.list(cms, "default", sel);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().http_status, 400);
  list_options field;
  field.field_selector = "metadata.name=cm-107";
  ASSERT_EQ(st.list(cms, "", field)->items.size(), 1u);
  field.field_selector = "metadata.namespace!=default";
  EXPECT_EQ(st.list(cms, "", field)->items.size(), 0u);

  // A continue token from before a compaction is too old.
  list_options first;
  first.limit = 5;
  auto l = st.list(cms, "default", first);
  ASSERT_FALSE(l->continue_token.empty());
  ASSERT_TRUE(st.create(cms, "default", configmap("late")).has_value());
  st.compact();
  first.continue_token = l->continue_token;
  auto expired = st.list(cms, "default", first);
  ASSERT_FALSE(expired.has_value());
  EXPECT_EQ(expired.error().http_status, 410);
  EXPECT_EQ(expired.error().reason, "Expired");
}

TEST_F(store_test, watch_resumes_from_resource_version_and_expires_after_compaction) {
  auto a = st.create(cms, "default", configmap("a"));
  ASSERT_TRUE(a.has_value());
  std::string from = std::to_string(rv_of(*a));
  ASSERT_TRUE(st.create(cms, "default", configmap("b")).has_value());
  ASSERT_TRUE(st.remove(cms, "default", "a").has_value());
  auto w = st.watch(cms, "default", {from, "", "", false, nullptr});
  ASSERT_TRUE(w.has_value());
  auto events = read_events(**w, 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].get_string("type"), "ADDED");
  EXPECT_EQ(events[0].at_path({"object", "metadata"})->get_string("name"), "b");
  EXPECT_EQ(events[1].get_string("type"), "DELETED");

  // Start "now": every current object as ADDED first.
  auto now = st.watch(cms, "default", {"", "", "", false, nullptr});
  ASSERT_TRUE(now.has_value());
  auto initial = read_events(**now, 1);
  ASSERT_EQ(initial.size(), 1u);
  EXPECT_EQ(initial[0].at_path({"object", "metadata"})->get_string("name"), "b");

  st.compact();
  auto old = st.watch(cms, "default", {from, "", "", false, nullptr});
  ASSERT_TRUE(old.has_value());
  auto err = read_events(**old, 1);
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].get_string("type"), "ERROR");
  EXPECT_EQ(err[0].at("object")->get_int("code"), 410);
  EXPECT_EQ(err[0].at("object")->get_string("reason"), "Expired");
  EXPECT_TRUE((*old)->closed());
}

TEST(store_history, watch_older_than_history_gets_410) {
  store_options o;
  o.history = 3;
  store st(o);
  auto cms = *st.find_type("", "v1", "configmaps");
  auto first = st.create(cms, "default", configmap("a"));
  ASSERT_TRUE(first.has_value());
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(st.create(cms, "default", configmap("b" + std::to_string(i))).has_value());
  auto w = st.watch(cms, "default", {std::to_string(rv_of(*first)), "", "", false, nullptr});
  ASSERT_TRUE(w.has_value());
  auto lines = (*w)->next(100ms);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("\"code\":410"), std::string::npos) << lines[0];
  // A recent resourceVersion is still inside the history.
  auto recent = st.watch(
      cms, "default", {std::to_string(st.current_resource_version() - 1), "", "", false, nullptr});
  auto ev = (*recent)->next(100ms);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_NE(ev[0].find("\"ADDED\""), std::string::npos);
}

TEST_F(store_test, watch_selectors_turn_leaving_objects_into_deletes_and_send_bookmarks) {
  json::value cm = configmap("a");
  cm["metadata"].as_object().set("labels", json::object{{"app", "x"}});
  auto c = st.create(cms, "default", cm);
  ASSERT_TRUE(c.has_value());
  auto w = st.watch(cms, "default", {std::to_string(rv_of(*c)), "app=x", "", true, nullptr});
  ASSERT_TRUE(w.has_value());
  ASSERT_TRUE(st.patch(cms, "default", "a", store::patch_type::merge,
                       must_parse(R"({"metadata":{"labels":{"app":"y"}}})"))
                  .has_value());
  ASSERT_TRUE(st.patch(cms, "default", "a", store::patch_type::merge,
                       must_parse(R"({"metadata":{"labels":{"app":"x"}}})"))
                  .has_value());
  auto events = read_events(**w, 3);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[0].get_string("type"), "DELETED");
  EXPECT_EQ(events[1].get_string("type"), "ADDED");
  EXPECT_EQ(events[2].get_string("type"), "BOOKMARK");
  EXPECT_EQ(events[2].at_path({"object", "metadata"})->get_string("resourceVersion"),
            std::to_string(st.current_resource_version()));
  EXPECT_EQ(events[2].at("object")->get_string("kind"), "ConfigMap");
}

TEST_F(store_test, close_watches_ends_streams) {
  auto w = st.watch(cms, "default", {"", "", "", false, nullptr});
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(st.open_watch_count(), 1u);
  st.close_watches();
  EXPECT_TRUE((*w)->next(1s).empty());
  EXPECT_TRUE((*w)->closed());
  w.value().reset();
  EXPECT_EQ(st.open_watch_count(), 0u);
}

TEST_F(store_test, crd_registers_and_removes_its_type) {
  EXPECT_FALSE(st.find_type("test.tidesync.io", "v1", "widgets").has_value());
  auto widgets = install_widgets();
  EXPECT_TRUE(widgets.status_subresource);
  EXPECT_EQ(widgets.res.kind, "Widget");
  ASSERT_EQ(widgets.columns.size(), 1u);
  EXPECT_EQ(widgets.columns[0].json_path, ".status.phase");
  auto crd = st.get(crds, "", "widgets.test.tidesync.io");
  ASSERT_TRUE(crd.has_value());
  const auto* conds = (*crd)->obj.at_path({"status", "conditions"});
  ASSERT_NE(conds, nullptr);
  bool established = false;
  for (const auto& c : conds->as_array())
    established |= c.get_string("type") == "Established" && c.get_string("status") == "True";
  EXPECT_TRUE(established);
  ASSERT_TRUE(st.create(widgets, "default", widget("w", 1)).has_value());
  ASSERT_TRUE(st.remove(crds, "", "widgets.test.tidesync.io").has_value());
  EXPECT_FALSE(st.find_type("test.tidesync.io", "v1", "widgets").has_value());
  // A bad CRD is rejected with 422.
  json::value bad = must_parse(kWidgetCrd);
  bad["metadata"].as_object().set("name", "wrong.name");
  auto r = st.create(crds, "", bad);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().http_status, 422);
}

TEST_F(store_test, delete_collection_by_selector) {
  for (const char* name : {"a", "b", "c"}) {
    json::value cm = configmap(name);
    cm["metadata"].as_object().set("labels", json::object{{"drop", name[0] == 'c' ? "no" : "yes"}});
    ASSERT_TRUE(st.create(cms, "default", cm).has_value());
  }
  list_options o;
  o.label_selector = "drop=yes";
  auto removed = st.remove_collection(cms, "default", o);
  ASSERT_TRUE(removed.has_value()) << removed.error().message;
  EXPECT_EQ(removed->items.size(), 2u);
  auto left = st.list(cms, "default", {});
  ASSERT_EQ(left->items.size(), 1u);
  EXPECT_EQ(left->items[0]->obj.at("metadata")->get_string("name"), "c");
}

TEST_F(store_test, deleting_a_crd_ends_watches_of_its_type) {
  auto widgets = install_widgets();
  ASSERT_TRUE(st.create(widgets, "default", widget("w", 1)).has_value());
  auto w = st.watch(widgets, "", {"", "", "", false, nullptr});
  ASSERT_TRUE(w.has_value());
  ASSERT_TRUE(st.remove(crds, "", "widgets.test.tidesync.io").has_value());
  auto events = read_events(**w, 3);
  ASSERT_EQ(events.size(), 2u);  // the initial ADDED, then DELETED when the CRD went
  EXPECT_EQ(events[1].get_string("type"), "DELETED");
  EXPECT_TRUE((*w)->next(100ms).empty());
  EXPECT_TRUE((*w)->closed());
}

TEST_F(store_test, save_and_load_round_trip) {
  auto widgets = install_widgets();
  ASSERT_TRUE(st.create(widgets, "default", widget("w", 7)).has_value());
  ASSERT_TRUE(st.create(cms, "default", configmap("a")).has_value());
  auto path = (std::filesystem::temp_directory_path() /
               ("tidesync-store-" + std::to_string(::getpid()) + ".json"))
                  .string();
  EXPECT_TRUE(st.dirty());
  ASSERT_TRUE(st.save(path).has_value());
  EXPECT_FALSE(st.dirty());
  uint64_t rv = st.current_resource_version();

  store restored;
  ASSERT_TRUE(restored.load(path).has_value());
  std::filesystem::remove(path);
  EXPECT_EQ(restored.current_resource_version(), rv);
  auto t = restored.find_type("test.tidesync.io", "v1", "widgets");
  ASSERT_TRUE(t.has_value()) << "the CRD's type is served again after load";
  auto w = restored.get(*t, "default", "w");
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ((*w)->obj.at_path({"spec", "size"})->as_int(), 7);
  auto next = restored.create(cms, "default", configmap("b"));
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(rv_of(*next), rv + 1) << "the resourceVersion sequence continues";
  EXPECT_FALSE(restored.load("/nonexistent/state.json").has_value());
}

// A dry run (write_mode::dry_run) answers what the write would store and changes nothing: no
// resourceVersion, no event, no save pending (dirty), no garbage collection, no namespace
// cleanup, no CRD (un)registration.
TEST_F(store_test, dry_run_writes_answer_the_result_and_change_nothing) {
  auto widgets = install_widgets();
  ASSERT_TRUE(st.create(widgets, "default", widget("w", 1)).has_value());
  ASSERT_TRUE(
      st.create(nss, "", json::object{{"metadata", json::object{{"name", "team"}}}}).has_value());
  ASSERT_TRUE(st.create(cms, "team", configmap("inside")).has_value());
  auto owner = st.create(cms, "default", configmap("owner"));
  ASSERT_TRUE(owner.has_value());
  json::value dep = configmap("dependent");
  dep["metadata"].as_object().set(
      "ownerReferences",
      json::array{json::object{
          {"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"name", "owner"}, {"uid", (*owner)->uid}}});
  ASSERT_TRUE(st.create(cms, "default", dep).has_value());
  json::value held = configmap("held");
  held["metadata"].as_object().set("finalizers", json::array{"test.tidesync.io/hold"});
  ASSERT_TRUE(st.create(cms, "default", held).has_value());

  const auto path = (std::filesystem::temp_directory_path() /
                     ("tidesync-dry-run-" + std::to_string(::getpid()) + ".json"))
                        .string();
  ASSERT_TRUE(st.save(path).has_value());
  std::filesystem::remove(path);
  const uint64_t rv = st.current_resource_version();
  auto w = st.watch(cms, "", {std::to_string(rv), "", "", false, nullptr});
  ASSERT_TRUE(w.has_value());
  const auto dry = write_mode::dry_run;
  delete_options dry_delete;
  dry_delete.mode = dry;

  auto created = st.create(cms, "default", configmap("new"), dry);
  ASSERT_TRUE(created.has_value()) << created.error().message;
  EXPECT_FALSE((*created)->uid.empty());
  EXPECT_EQ((*created)->obj.at_path({"metadata", "resourceVersion"}), nullptr)
      << "as kube-apiserver: a dry-run create has no resourceVersion";
  EXPECT_FALSE(st.get(cms, "default", "new").has_value());
  auto dup = st.create(cms, "default", configmap("owner"), dry);
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().http_status, 409);

  auto updated = st.update(widgets, "default", "w", widget("w", 2), false, dry);
  ASSERT_TRUE(updated.has_value()) << updated.error().message;
  EXPECT_EQ(generation_of(*updated), 2);
  EXPECT_EQ((*updated)->obj.at_path({"spec", "size"})->as_int(), 2);
  auto status = st.patch(widgets, "default", "w", store::patch_type::merge,
                         must_parse(R"({"status":{"phase":"Ready"}})"), true, dry);
  ASSERT_TRUE(status.has_value()) << status.error().message;
  EXPECT_EQ((*status)->obj.at_path({"status", "phase"})->as_string(), "Ready");
  auto stored = st.get(widgets, "default", "w");
  EXPECT_EQ(generation_of(*stored), 1);
  EXPECT_EQ((*stored)->obj.at_path({"spec", "size"})->as_int(), 1);
  EXPECT_EQ((*stored)->obj.at("status"), nullptr);
  EXPECT_EQ(rv_of(*updated), rv_of(*stored)) << "a dry-run update keeps the resourceVersion";

  // Deletes: the owner's dependents stay (Background and Orphan alike).
  auto gone = st.remove(cms, "default", "owner", dry_delete);
  ASSERT_TRUE(gone.has_value());
  EXPECT_TRUE(gone->deleted);
  delete_options orphan = dry_delete;
  orphan.propagation_policy = "Orphan";
  ASSERT_TRUE(st.remove(cms, "default", "owner", orphan).has_value());
  EXPECT_TRUE(st.get(cms, "default", "owner").has_value());
  auto still = st.get(cms, "default", "dependent");
  ASSERT_TRUE(still.has_value());
  EXPECT_NE((*still)->obj.at_path({"metadata", "ownerReferences"}), nullptr);
  // Finalizers: answered with a deletionTimestamp, stored without one.
  auto marked = st.remove(cms, "default", "held", dry_delete);
  ASSERT_TRUE(marked.has_value());
  EXPECT_FALSE(marked->deleted);
  EXPECT_NE(marked->object->obj.at_path({"metadata", "deletionTimestamp"}), nullptr);
  EXPECT_EQ((*st.get(cms, "default", "held"))->obj.at_path({"metadata", "deletionTimestamp"}),
            nullptr);
  // A namespace: answered Terminating; it and its contents stay.
  auto ns = st.remove(nss, "", "team", dry_delete);
  ASSERT_TRUE(ns.has_value());
  EXPECT_EQ(ns->object->obj.at_path({"status", "phase"})->as_string(), "Terminating");
  EXPECT_EQ((*st.get(nss, "", "team"))->obj.at_path({"status", "phase"})->as_string(), "Active");
  EXPECT_TRUE(st.get(cms, "team", "inside").has_value());
  // A CRD: its type is still served, its objects still there.
  ASSERT_TRUE(st.remove(crds, "", "widgets.test.tidesync.io", dry_delete).has_value());
  EXPECT_TRUE(st.find_type("test.tidesync.io", "v1", "widgets").has_value());
  EXPECT_TRUE(st.get(widgets, "default", "w").has_value());
  // A collection.
  auto all = st.remove_collection(cms, "default", {}, dry_delete);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->items.size(), 3u);
  EXPECT_EQ(st.list(cms, "default", {})->items.size(), 3u);
  // A dry-run create of a CRD registers no type.
  json::value other = must_parse(kWidgetCrd);
  other["metadata"].as_object().set("name", "gears.test.tidesync.io");
  other["spec"]["names"] = must_parse(R"({"plural":"gears","singular":"gear","kind":"Gear"})");
  ASSERT_TRUE(st.create(crds, "", other, dry).has_value());
  EXPECT_FALSE(st.find_type("test.tidesync.io", "v1", "gears").has_value());

  EXPECT_EQ(st.current_resource_version(), rv);
  EXPECT_FALSE(st.dirty()) << "nothing for simulate to save";
  // The watch opened before saw none of it: the first event it gets is the next real write.
  ASSERT_TRUE(st.create(cms, "default", configmap("real")).has_value());
  auto events = read_events(**w, 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].get_string("type"), "ADDED");
  EXPECT_EQ(events[0].at_path({"object", "metadata"})->get_string("name"), "real");
}

TEST(manifest, multi_document_yaml_with_types_and_lists) {
  auto docs = parse_manifests(R"(apiVersion: v1
kind: ConfigMap
metadata:
  name: a
data:
  quoted: "3"
  plain: hello
---
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Secret
  metadata: {name: s}
  immutable: true
  extra: 42
)",
                              "test.yaml");
  ASSERT_TRUE(docs.has_value()) << docs.error().message;
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ((*docs)[0].object.at_path({"data", "quoted"})->as_string(), "3");
  EXPECT_TRUE((*docs)[1].object.at("immutable")->as_bool());
  EXPECT_EQ((*docs)[1].object.at("extra")->as_int(), 42);
  EXPECT_EQ((*docs)[0].source, "test.yaml (document 1)");
}

TEST(manifest, bad_yaml_names_file_and_document) {
  auto docs =
      parse_manifests("apiVersion: v1\nkind: ConfigMap\n---\nkind: [unclosed\n", "bad.yaml");
  ASSERT_FALSE(docs.has_value());
  EXPECT_NE(docs.error().message.find("bad.yaml (document 2)"), std::string::npos)
      << docs.error().message;
  auto not_k8s = parse_manifests("- a\n- b\n", "list.yaml");
  ASSERT_FALSE(not_k8s.has_value());
  EXPECT_NE(not_k8s.error().message.find("list.yaml (document 1)"), std::string::npos);
  EXPECT_FALSE(load_manifests("/nonexistent/dir").has_value());
}

}  // namespace
}  // namespace tidesync::apiserver
