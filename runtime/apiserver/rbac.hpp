// RBAC for the embedded API server, as kube-apiserver's RBAC authorizer decides it, for the
// parts a controller's ServiceAccount meets: a request is allowed when a rule of a ClusterRole
// bound by a ClusterRoleBinding, or of a Role or ClusterRole bound by a RoleBinding in the
// request's namespace, matches its verb, API group, resource ("plural" or "plural/status") and
// name. `tidesync simulate --controller-rbac FILE` runs the simulated controller under the rules
// of FILE (deploy/base/rbac.yaml in every integration test), so a permission the controller
// needs and the shipped RBAC lacks fails as it would in a cluster: 403 Forbidden.
// Not modelled: aggregated ClusterRoles, nonResourceURLs (discovery, /version and /openapi are
// open to every user, as system:discovery makes them), impersonation.
#pragma once

#include <string>
#include <string_view>

#include "runtime/json/value.hpp"

namespace tidesync::apiserver {

class store;

// What a request asks for, in RBAC's terms.
struct request_attributes {
  std::string verb;         // get list watch create update patch delete deletecollection
  std::string group;        // "" for the core group
  std::string resource;     // the plural
  std::string subresource;  // "" or "status"
  std::string ns;           // "" for cluster-scoped types and all-namespace lists and watches
  std::string name;         // "" for collections
};

// The RBAC verb of an HTTP method on a collection (`name` empty) or an object.
std::string rbac_verb(std::string_view method, bool has_name, bool watch);

// Whether a PolicyRule (an element of a Role's `rules`) allows the request.
bool rule_allows(const json::value& rule, const request_attributes& a);

// Whether a binding's subject is `user` ("system:serviceaccount:NS:NAME" for ServiceAccounts).
// `binding_ns` is the RoleBinding's namespace ("" for a ClusterRoleBinding), the default of a
// ServiceAccount subject's namespace.
bool subject_matches(const json::value& subject, std::string_view user,
                     std::string_view binding_ns);

// Whether the store's bindings and roles allow `user` the request.
bool authorize(const store& st, std::string_view user, const request_attributes& a);

// kube-apiserver's wording of the 403: `deployments.apps "x" is forbidden: User "…" cannot
// create resource "deployments" in API group "apps" in the namespace "default"`.
std::string forbidden_message(std::string_view user, const request_attributes& a);

}  // namespace tidesync::apiserver
