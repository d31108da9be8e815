#include "config/object_meta.hpp"

namespace tidesync::config {

std::map<std::string, std::string> read_string_map(const json::value* v) {
  std::map<std::string, std::string> out;
  if (v == nullptr || !v->is_object()) return out;
  for (const auto& [k, val] : v->as_object())
    if (val.is_string()) out[k] = val.as_string();
  return out;
}

object_meta read_meta(const json::value& object, problems& p) {
  object_meta m;
  const json::value* md = object.at("metadata");
  if (md == nullptr || !md->is_object()) return m;
  m.name = std::string(md->get_string("name"));
  m.namespace_ = std::string(md->get_string("namespace"));
  m.uid = std::string(md->get_string("uid"));
  m.resource_version = std::string(md->get_string("resourceVersion"));
  m.generation = md->get_int("generation", 0);
  m.creation_timestamp = read_time(*md, "creationTimestamp", "metadata.creationTimestamp", p);
  m.deletion_timestamp = read_time(*md, "deletionTimestamp", "metadata.deletionTimestamp", p);
  m.labels = read_string_map(md->at("labels"));
  m.annotations = read_string_map(md->at("annotations"));
  return m;
}

void check_type_meta(const json::value& object, std::string_view kind, problems& p) {
  if (auto av = read_string(object, "apiVersion", "apiVersion", p); av && *av != k_api_version)
    p.invalid("apiVersion", "\"" + *av + "\" is not served by tidesync; write apiVersion: " +
                                std::string(k_api_version));
  if (auto k = read_string(object, "kind", "kind", p); k && *k != kind)
    p.invalid("kind", "expected " + std::string(kind) + ", got \"" + *k + "\"");
}

std::string object_label(std::string_view kind, const object_meta& m) {
  std::string s(kind);
  if (m.name.empty()) return s;
  s += ' ';
  if (!m.namespace_.empty()) {
    s += m.namespace_;
    s += '/';
  }
  s += m.name;
  return s;
}

void demote(problems& local, problems& p) {
  for (const auto& pr : local.list())
    p.warn(pr.field + ": " + pr.message + "; ignored");
  for (const auto& w : local.warnings())
    p.warn(w);
}

}  // namespace tidesync::config
