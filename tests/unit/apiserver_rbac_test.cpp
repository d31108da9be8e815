// RBAC decisions of the embedded API server (rbac.hpp): rule matching, subjects, bindings in the
// store, and the 403 wording.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <string>

#include "runtime/apiserver/manifest.hpp"
#include "runtime/apiserver/rbac.hpp"
#include "runtime/apiserver/store.hpp"
#include "tests/support/files.hpp"

namespace tidesync::apiserver {
namespace {

json::value rule(std::string_view text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? *v : json::value{};
}

request_attributes req(std::string verb, std::string group, std::string resource,
                       std::string ns = "default", std::string name = "",
                       std::string subresource = "") {
  return {std::move(verb),        std::move(group), std::move(resource),
          std::move(subresource), std::move(ns),    std::move(name)};
}

TEST(rbac_verb, maps_methods_as_kubernetes_does) {
  EXPECT_EQ(rbac_verb("GET", true, false), "get");
  EXPECT_EQ(rbac_verb("GET", false, false), "list");
  EXPECT_EQ(rbac_verb("GET", false, true), "watch");
  EXPECT_EQ(rbac_verb("POST", false, false), "create");
  EXPECT_EQ(rbac_verb("PUT", true, false), "update");
  EXPECT_EQ(rbac_verb("PATCH", true, false), "patch");
  EXPECT_EQ(rbac_verb("DELETE", true, false), "delete");
  EXPECT_EQ(rbac_verb("DELETE", false, false), "deletecollection");
}

TEST(rule_allows, needs_verb_group_and_resource) {
  auto r = rule(R"({"apiGroups":["apps"],"resources":["deployments"],"verbs":["get","list"]})");
  EXPECT_TRUE(rule_allows(r, req("get", "apps", "deployments", "ns", "x")));
  EXPECT_TRUE(rule_allows(r, req("list", "apps", "deployments")));
  EXPECT_FALSE(rule_allows(r, req("create", "apps", "deployments")));
  EXPECT_FALSE(rule_allows(r, req("get", "", "deployments", "ns", "x")));
  EXPECT_FALSE(rule_allows(r, req("get", "apps", "statefulsets", "ns", "x")));
  EXPECT_FALSE(rule_allows(rule(R"({"resources":["deployments"],"verbs":["get"]})"),
                           req("get", "apps", "deployments", "ns", "x")));
}

TEST(rule_allows, a_subresource_needs_its_own_entry) {
  auto plain = rule(R"({"apiGroups":["tidesync.io"],"resources":["bucketsyncs"],"verbs":["*"]})");
  auto status = req("patch", "tidesync.io", "bucketsyncs", "ns", "b", "status");
  EXPECT_FALSE(rule_allows(plain, status));
  EXPECT_TRUE(rule_allows(
      rule(R"({"apiGroups":["tidesync.io"],"resources":["bucketsyncs/status"],"verbs":["patch"]})"),
      status));
  EXPECT_TRUE(rule_allows(rule(R"({"apiGroups":["*"],"resources":["*/status"],"verbs":["patch"]})"),
                          status));
  EXPECT_TRUE(rule_allows(rule(R"({"apiGroups":["*"],"resources":["*"],"verbs":["*"]})"), status));
}

TEST(rule_allows, resource_names_limit_to_named_objects) {
  auto r = rule(
      R"({"apiGroups":[""],"resources":["secrets"],"resourceNames":["tls"],"verbs":["get","update","create","list"]})");
  EXPECT_TRUE(rule_allows(r, req("update", "", "secrets", "ns", "tls")));
  EXPECT_FALSE(rule_allows(r, req("update", "", "secrets", "ns", "other")));
  // Without a name (create, list) a named rule never applies, as in Kubernetes.
  EXPECT_FALSE(rule_allows(r, req("create", "", "secrets", "ns")));
  EXPECT_FALSE(rule_allows(r, req("list", "", "secrets", "ns")));
}

TEST(subject_matches, service_accounts_users_and_groups) {
  const std::string sa = "system:serviceaccount:tidesync-system:tidesync-controller";
  EXPECT_TRUE(subject_matches(
      rule(
          R"({"kind":"ServiceAccount","name":"tidesync-controller","namespace":"tidesync-system"})"),
      sa, ""));
  // A RoleBinding's ServiceAccount subject without a namespace means the binding's.
  EXPECT_TRUE(subject_matches(rule(R"({"kind":"ServiceAccount","name":"tidesync-controller"})"), sa,
                              "tidesync-system"));
  EXPECT_FALSE(subject_matches(rule(R"({"kind":"ServiceAccount","name":"tidesync-controller"})"),
                               sa, "default"));
  EXPECT_FALSE(subject_matches(
      rule(R"({"kind":"ServiceAccount","name":"other","namespace":"tidesync-system"})"), sa, ""));
  EXPECT_FALSE(subject_matches(rule(R"({"kind":"User","name":"tidesync-controller"})"), sa, ""));
  EXPECT_TRUE(subject_matches(rule(R"({"kind":"User","name":"alice"})"), "alice", ""));
  EXPECT_TRUE(
      subject_matches(rule(R"({"kind":"Group","name":"system:serviceaccounts"})"), sa, "default"));
  EXPECT_TRUE(subject_matches(
      rule(R"({"kind":"Group","name":"system:serviceaccounts:tidesync-system"})"), sa, ""));
  EXPECT_FALSE(
      subject_matches(rule(R"({"kind":"Group","name":"system:serviceaccounts:default"})"), sa, ""));
  EXPECT_FALSE(
      subject_matches(rule(R"({"kind":"Group","name":"system:serviceaccounts"})"), "alice", ""));
}

class rbac_store : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = st.find_type("", "v1", "namespaces");
    ASSERT_TRUE(t.has_value());
    for (const char* ns : {"ops", "team", "tidesync-system"})
      ASSERT_TRUE(st.create(*t, "",
                            json::object{{"apiVersion", "v1"},
                                         {"kind", "Namespace"},
                                         {"metadata", json::object{{"name", ns}}}})
                      .has_value());
  }
  void apply(std::string_view yaml) {
    auto docs = parse_manifests(std::string(yaml), "test");
    ASSERT_TRUE(docs.has_value()) << docs.error().message;
    for (const auto& d : *docs)
      create(d.object);
  }
  // Stores an object of the v1 kinds these tests use (ServiceAccount, RBAC).
  void create(const json::value& obj) {
    const std::string_view api = obj.get_string("apiVersion");
    const auto slash = api.find('/');
    const std::string group(slash == std::string_view::npos ? "" : api.substr(0, slash));
    std::string plural;
    for (char c : obj.get_string("kind"))
      plural += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    plural += "s";
    auto t = st.find_type(group, "v1", plural);
    ASSERT_TRUE(t.has_value()) << plural;
    const auto* meta = obj.at("metadata");
    const std::string ns(t->res.namespaced ? meta->get_string("namespace") : "");
    ASSERT_TRUE(st.create(*t, ns, obj).has_value()) << plural;
  }
  store st;
  const std::string user = "system:serviceaccount:ops:ctl";
};

TEST_F(rbac_store, cluster_and_namespaced_bindings) {
  apply(R"(
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: read-jobs}
rules:
- {apiGroups: [batch], resources: [jobs], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ctl-read-jobs}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: read-jobs}
subjects: [{kind: ServiceAccount, name: ctl, namespace: ops}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: leases, namespace: ops}
rules:
- {apiGroups: [coordination.k8s.io], resources: [leases], verbs: ["*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ctl-leases, namespace: ops}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leases}
subjects: [{kind: ServiceAccount, name: ctl}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ctl-jobs-create, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: read-jobs}
subjects: [{kind: ServiceAccount, name: ctl, namespace: ops}]
)");
  // The ClusterRoleBinding: everywhere, and across namespaces.
  EXPECT_TRUE(authorize(st, user, req("list", "batch", "jobs", "")));
  EXPECT_TRUE(authorize(st, user, req("watch", "batch", "jobs", "team")));
  EXPECT_FALSE(authorize(st, user, req("create", "batch", "jobs", "team")));
  // The Role only in its namespace.
  EXPECT_TRUE(authorize(st, user, req("update", "coordination.k8s.io", "leases", "ops", "l")));
  EXPECT_FALSE(authorize(st, user, req("update", "coordination.k8s.io", "leases", "team", "l")));
  EXPECT_FALSE(authorize(st, user, req("list", "coordination.k8s.io", "leases", "")));
  // Someone else gets nothing.
  EXPECT_FALSE(authorize(st, "system:serviceaccount:ops:other", req("list", "batch", "jobs", "")));
}

TEST_F(rbac_store, a_binding_to_a_missing_role_grants_nothing) {
  apply(R"(
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: dangling}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: nowhere}
subjects: [{kind: ServiceAccount, name: ctl, namespace: ops}]
)");
  EXPECT_FALSE(authorize(st, user, req("get", "", "pods", "ops", "p")));
}

TEST_F(rbac_store, the_shipped_rbac_covers_the_controllers_core_requests) {
  auto docs = load_manifests((test::source_dir() / "deploy/base/rbac.yaml").string());
  ASSERT_TRUE(docs.has_value()) << docs.error().message;
  for (const auto& d : *docs)
    create(d.object);
  const std::string ctl = "system:serviceaccount:tidesync-system:tidesync-controller";
  EXPECT_TRUE(authorize(st, ctl, req("watch", "tidesync.io", "bucketsyncs", "")));
  EXPECT_TRUE(authorize(st, ctl, req("patch", "tidesync.io", "datasyncs", "a", "d", "status")));
  EXPECT_TRUE(
      authorize(st, ctl, req("update", "coordination.k8s.io", "leases", "tidesync-system", "l")));
  // Leases only in the controller's namespace; no Secret reads across the cluster by list.
  EXPECT_FALSE(authorize(st, ctl, req("update", "coordination.k8s.io", "leases", "default", "l")));
  EXPECT_FALSE(authorize(st, ctl, req("list", "", "secrets", "")));
  EXPECT_FALSE(authorize(st, ctl, req("delete", "", "secrets", "default", "s")));
}

TEST(forbidden_message, words_it_as_kube_apiserver) {
  EXPECT_EQ(forbidden_message("restricted", req("list", "", "configmaps", "ns")),
            "configmaps is forbidden: User \"restricted\" cannot list resource \"configmaps\" in "
            "API group \"\" in the namespace \"ns\"");
  EXPECT_EQ(forbidden_message("u", req("get", "tidesync.io", "bucketsyncs", "ns", "x")),
            "bucketsyncs.tidesync.io \"x\" is forbidden: User \"u\" cannot get resource "
            "\"bucketsyncs\" in API group \"tidesync.io\" in the namespace \"ns\"");
  EXPECT_EQ(forbidden_message("u", req("patch", "tidesync.io", "bucketsyncs", "ns", "x", "status")),
            "bucketsyncs.tidesync.io \"x\" is forbidden: User \"u\" cannot patch resource "
            "\"bucketsyncs/status\" in API group \"tidesync.io\" in the namespace \"ns\"");
  EXPECT_EQ(forbidden_message("u", req("create", "", "persistentvolumes", "", "")),
            "persistentvolumes is forbidden: User \"u\" cannot create resource "
            "\"persistentvolumes\" in API group \"\" at the cluster scope");
}

}  // namespace
}  // namespace tidesync::apiserver
