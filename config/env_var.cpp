// corev1.EnvVar parsing and serialisation (see env_var.hpp).
#include "config/env_var.hpp"

#include <algorithm>
#include <cctype>
#include <set>

namespace tidesync::config {

namespace {

std::optional<key_selector> parse_key_selector(const json::value& v, const std::string& path,
                                               std::string_view owner_kind, problems& p) {
  if (!v.is_object()) {
    p.type(path, "an object with name and key", v);
    return std::nullopt;
  }
  warn_unknown_fields(v, path, {"name", "key", "optional"}, p);
  key_selector k;
  size_t before = p.list().size();
  auto name = read_string(v, "name", path + ".name", p);
  if (!name || name->empty()) {
    if (!name && v.at("name") != nullptr && !v.at("name")->is_null()) {
      // type error already reported
    } else {
      p.required(path + ".name", "the " + std::string(owner_kind) +
                                     "'s name is required, e.g. name: backup-credentials");
    }
  } else if (auto err = check_dns_subdomain(*name); !err.empty()) {
    p.invalid(path + ".name",
              "\"" + *name + "\" is not a valid " + std::string(owner_kind) + " name: " + err);
  } else {
    k.name = *name;
  }
  auto key = read_string(v, "key", path + ".key", p);
  if (!key || key->empty()) {
    if (!(v.at("key") != nullptr && !v.at("key")->is_null() && !v.at("key")->is_string()))
      p.required(path + ".key", "the key inside the " + std::string(owner_kind) +
                                    " is required, e.g. key: ACCESS_KEY_ID");
  } else if (auto err = check_config_map_key(*key); !err.empty()) {
    p.invalid(path + ".key", "\"" + *key + "\" " + err);
  } else {
    k.key = *key;
  }
  k.optional = read_bool(v, "optional", path + ".optional", p);
  if (p.list().size() != before) return std::nullopt;
  return k;
}

std::optional<env_var_source> parse_source(const json::value& v, const std::string& path,
                                           problems& p) {
  if (!v.is_object()) {
    p.type(path, "an object (secretKeyRef, configMapKeyRef, fieldRef or resourceFieldRef)", v);
    return std::nullopt;
  }
  warn_unknown_fields(v, path, {"secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef"},
                      p);
  env_var_source s;
  int count = 0;
  size_t before = p.list().size();
  if (const auto* r = v.at("secretKeyRef"); r != nullptr && !r->is_null()) {
    ++count;
    s.secret_key_ref = parse_key_selector(*r, path + ".secretKeyRef", "Secret", p);
  }
  if (const auto* r = v.at("configMapKeyRef"); r != nullptr && !r->is_null()) {
    ++count;
    s.config_map_key_ref = parse_key_selector(*r, path + ".configMapKeyRef", "ConfigMap", p);
  }
  if (const auto* r = v.at("fieldRef"); r != nullptr && !r->is_null()) {
    ++count;
    std::string at = path + ".fieldRef";
    if (!r->is_object()) {
      p.type(at, "an object with fieldPath", *r);
    } else {
      warn_unknown_fields(*r, at, {"apiVersion", "fieldPath"}, p);
      field_selector f;
      f.api_version = read_string(*r, "apiVersion", at + ".apiVersion", p).value_or("");
      f.field_path = read_string(*r, "fieldPath", at + ".fieldPath", p).value_or("");
      if (f.field_path.empty())
        p.required(at + ".fieldPath", "write the pod field to read, e.g. metadata.namespace");
      s.field_ref = f;
    }
  }
  if (const auto* r = v.at("resourceFieldRef"); r != nullptr && !r->is_null()) {
    ++count;
    std::string at = path + ".resourceFieldRef";
    if (!r->is_object()) {
      p.type(at, "an object with resource", *r);
    } else {
      warn_unknown_fields(*r, at, {"containerName", "resource", "divisor"}, p);
      resource_field_selector f;
      f.container_name = read_string(*r, "containerName", at + ".containerName", p).value_or("");
      f.resource = read_string(*r, "resource", at + ".resource", p).value_or("");
      if (const auto* d = r->at("divisor"); d != nullptr && !d->is_null()) {
        if (d->is_string())
          f.divisor = d->as_string();
        else if (d->is_int())
          f.divisor = std::to_string(d->as_int());
        else
          p.type(at + ".divisor", "a quantity such as \"1Mi\"", *d);
      }
      if (f.resource.empty())
        p.required(at + ".resource", "write the resource to read, e.g. limits.memory");
      s.resource_field_ref = f;
    }
  }
  if (count == 0)
    p.required(path,
               "valueFrom needs one of secretKeyRef, configMapKeyRef, fieldRef or "
               "resourceFieldRef, e.g. secretKeyRef: {name: backup-credentials, key: "
               "ACCESS_KEY_ID}");
  else if (count > 1)
    p.invalid(path,
              "valueFrom may name only one source; keep one of secretKeyRef, "
              "configMapKeyRef, fieldRef, resourceFieldRef");
  if (p.list().size() != before) return std::nullopt;
  return s;
}

json::value key_selector_json(const key_selector& k) {
  json::object o{{"name", k.name}, {"key", k.key}};
  if (k.optional) o.set("optional", *k.optional);
  return o;
}

}  // namespace

std::string ascii_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool valid_env_name(std::string_view name) {
  if (name.empty()) return false;
  auto c0 = static_cast<unsigned char>(name.front());
  if (!(std::isalpha(c0) || c0 == '_')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x80 && (std::isalnum(u) || u == '_');
  });
}

std::vector<env_var> parse_env_list(const json::value* list, const std::string& path, problems& p) {
  std::vector<env_var> out;
  if (list == nullptr || list->is_null()) return out;
  if (!list->is_array()) {
    p.type(path, "a list of {name, value} or {name, valueFrom}", *list);
    return out;
  }
  std::set<std::string> seen;
  size_t i = 0;
  for (const auto& item : list->as_array()) {
    std::string at = path + "[" + std::to_string(i++) + "]";
    if (!item.is_object()) {
      p.type(at, "an object such as {name: TYPE, value: s3}", item);
      continue;
    }
    warn_unknown_fields(item, at, {"name", "value", "valueFrom"}, p);
    size_t before = p.list().size();
    env_var e;
    auto name = read_string(item, "name", at + ".name", p);
    if (!name || name->empty()) {
      if (!(item.at("name") != nullptr && !item.at("name")->is_null() &&
            !item.at("name")->is_string()))
        p.required(at + ".name", "every variable needs a name, e.g. name: ACCESS_KEY_ID");
    } else if (!valid_env_name(*name)) {
      p.invalid(at + ".name",
                "\"" + *name +
                    "\" is not a valid environment variable name: use letters, digits and '_', "
                    "not starting with a digit (e.g. \"ACCESS_KEY_ID\")");
    } else if (!seen.insert(ascii_upper(*name)).second) {
      p.invalid(at + ".name", "\"" + *name +
                                  "\" is set twice (names are upper-cased for "
                                  "rclone, so case does not make them different); remove one");
    } else {
      e.name = *name;
    }
    e.value = read_string(item, "value", at + ".value", p);
    if (const auto* vf = item.at("valueFrom"); vf != nullptr && !vf->is_null()) {
      if (e.value)
        p.invalid(at,
                  "has both value and valueFrom; keep value for a literal or valueFrom for "
                  "a Secret/ConfigMap reference");
      e.value_from = parse_source(*vf, at + ".valueFrom", p);
    }
    if (p.list().size() == before) out.push_back(std::move(e));
  }
  return out;
}

json::value to_json(const env_var& e) {
  json::object o{{"name", e.name}};
  if (e.value) o.set("value", *e.value);
  if (e.value_from) {
    json::object from;
    const auto& s = *e.value_from;
    if (s.secret_key_ref) from.set("secretKeyRef", key_selector_json(*s.secret_key_ref));
    if (s.config_map_key_ref) from.set("configMapKeyRef", key_selector_json(*s.config_map_key_ref));
    if (s.field_ref) {
      json::object f;
      if (!s.field_ref->api_version.empty()) f.set("apiVersion", s.field_ref->api_version);
      f.set("fieldPath", s.field_ref->field_path);
      from.set("fieldRef", std::move(f));
    }
    if (s.resource_field_ref) {
      json::object f;
      if (!s.resource_field_ref->container_name.empty())
        f.set("containerName", s.resource_field_ref->container_name);
      f.set("resource", s.resource_field_ref->resource);
      if (!s.resource_field_ref->divisor.empty()) f.set("divisor", s.resource_field_ref->divisor);
      from.set("resourceFieldRef", std::move(f));
    }
    o.set("valueFrom", std::move(from));
  }
  return o;
}

json::value to_json(const std::vector<env_var>& list) {
  json::array a;
  a.reserve(list.size());
  for (const auto& e : list)
    a.push_back(to_json(e));
  return a;
}

}  // namespace tidesync::config
