#include "runtime/apiserver/rbac.hpp"

#include "runtime/apiserver/store.hpp"

namespace tidesync::apiserver {
namespace {

// Whether a string list of a rule holds `want` (or "*").
bool lists(const json::value& rule, std::string_view key, std::string_view want) {
  const auto* v = rule.at(key);
  if (!v || !v->is_array()) return false;
  for (const auto& e : v->as_array())
    if (e.is_string() && (e.as_string() == "*" || e.as_string() == want)) return true;
  return false;
}

bool resource_matches(const json::value& rule, const request_attributes& a) {
  const auto* v = rule.at("resources");
  if (!v || !v->is_array()) return false;
  const std::string full = a.subresource.empty() ? a.resource : a.resource + "/" + a.subresource;
  for (const auto& e : v->as_array()) {
    if (!e.is_string()) continue;
    const std::string& r = e.as_string();
    if (r == "*" || r == full) return true;
    // "*/status": the subresource of every resource.
    if (!a.subresource.empty() && r == "*/" + a.subresource) return true;
  }
  return false;
}

bool names_match(const json::value& rule, const request_attributes& a) {
  const auto* v = rule.at("resourceNames");
  if (!v || !v->is_array() || v->as_array().empty()) return true;
  // A rule with resourceNames never allows a request without a name (create, list, watch,
  // deletecollection), as in Kubernetes.
  if (a.name.empty()) return false;
  for (const auto& e : v->as_array())
    if (e.is_string() && e.as_string() == a.name) return true;
  return false;
}

// The rules of the role a binding refers to; null when it does not exist.
const json::value* role_rules(const store& st, const json::value& binding, std::string_view ns,
                              object_ptr& holder) {
  const auto* ref = binding.at("roleRef");
  if (!ref) return nullptr;
  const std::string_view kind = ref->get_string("kind");
  const std::string_view name = ref->get_string("name");
  std::optional<resource_type> t;
  if (kind == "ClusterRole") {
    t = st.find_type("rbac.authorization.k8s.io", "v1", "clusterroles");
    ns = "";
  } else if (kind == "Role" && !ns.empty()) {
    t = st.find_type("rbac.authorization.k8s.io", "v1", "roles");
  }
  if (!t) return nullptr;
  auto got = st.get(*t, ns, name);
  if (!got) return nullptr;
  holder = *got;
  return holder->obj.at("rules");
}

bool binding_allows(const store& st, const json::value& binding, std::string_view binding_ns,
                    std::string_view user, const request_attributes& a) {
  const auto* subjects = binding.at("subjects");
  if (!subjects || !subjects->is_array()) return false;
  bool bound = false;
  for (const auto& s : subjects->as_array())
    if (subject_matches(s, user, binding_ns)) bound = true;
  if (!bound) return false;
  object_ptr holder;
  const auto* rules = role_rules(st, binding, binding_ns, holder);
  if (!rules || !rules->is_array()) return false;
  for (const auto& rule : rules->as_array())
    if (rule_allows(rule, a)) return true;
  return false;
}

}  // namespace

std::string rbac_verb(std::string_view method, bool has_name, bool watch) {
  if (method == "GET") return watch ? "watch" : has_name ? "get" : "list";
  if (method == "POST") return "create";
  if (method == "PUT") return "update";
  if (method == "PATCH") return "patch";
  if (method == "DELETE") return has_name ? "delete" : "deletecollection";
  return std::string(method);
}

bool rule_allows(const json::value& rule, const request_attributes& a) {
  return lists(rule, "verbs", a.verb) && lists(rule, "apiGroups", a.group) &&
         resource_matches(rule, a) && names_match(rule, a);
}

bool subject_matches(const json::value& subject, std::string_view user,
                     std::string_view binding_ns) {
  const std::string_view kind = subject.get_string("kind");
  const std::string_view name = subject.get_string("name");
  if (kind == "User") return name == user;
  const std::string_view sa_prefix = "system:serviceaccount:";
  const bool is_sa = user.substr(0, sa_prefix.size()) == sa_prefix;
  if (kind == "ServiceAccount") {
    std::string_view ns = subject.get_string("namespace");
    if (ns.empty()) ns = binding_ns;
    return is_sa && user == std::string(sa_prefix) + std::string(ns) + ":" + std::string(name);
  }
  if (kind == "Group") {
    if (name == "system:authenticated") return true;
    if (!is_sa) return false;
    if (name == "system:serviceaccounts") return true;
    const std::string_view rest = user.substr(sa_prefix.size());
    const std::string_view sa_ns = rest.substr(0, rest.find(':'));
    return name == "system:serviceaccounts:" + std::string(sa_ns);
  }
  return false;
}

bool authorize(const store& st, std::string_view user, const request_attributes& a) {
  if (auto t = st.find_type("rbac.authorization.k8s.io", "v1", "clusterrolebindings")) {
    if (auto l = st.list(*t, "", {}))
      for (const auto& b : l->items)
        if (binding_allows(st, b->obj, "", user, a)) return true;
  }
  if (a.ns.empty()) return false;
  if (auto t = st.find_type("rbac.authorization.k8s.io", "v1", "rolebindings")) {
    if (auto l = st.list(*t, a.ns, {}))
      for (const auto& b : l->items)
        if (binding_allows(st, b->obj, a.ns, user, a)) return true;
  }
  return false;
}

std::string forbidden_message(std::string_view user, const request_attributes& a) {
  std::string what = a.resource;
  if (!a.group.empty()) what += "." + a.group;
  std::string out = what;
  if (!a.name.empty()) out += " \"" + a.name + "\"";
  const std::string res = a.subresource.empty() ? a.resource : a.resource + "/" + a.subresource;
  out += " is forbidden: User \"" + std::string(user) + "\" cannot " + a.verb + " resource \"" +
         res + "\"";
  out += " in API group \"" + a.group + "\"";
  out += a.ns.empty() ? std::string(" at the cluster scope") : " in the namespace \"" + a.ns + "\"";
  return out;
}

}  // namespace tidesync::apiserver
