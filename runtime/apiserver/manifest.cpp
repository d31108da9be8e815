// YAML manifests → JSON values (see manifest.hpp).
#include "runtime/apiserver/manifest.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tidesync::apiserver {
namespace {

json::value convert(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      // yaml-cpp tags quoted scalars "!" and plain ones "?": only plain ones get typed.
      return yaml_scalar(n.Scalar(), n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str");
    case YAML::NodeType::Sequence: {
      json::array a;
      for (const auto& e : n)
        a.push_back(convert(e));
      return a;
    }
    case YAML::NodeType::Map: {
      json::object o;
      for (const auto& kv : n)
        o.set(kv.first.as<std::string>(), convert(kv.second));
      return o;
    }
  }
  return nullptr;
}

}  // namespace

json::value yaml_scalar(const std::string& s, bool quoted) {
  if (quoted) return s;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  const char* b = s.c_str();
  char* end = nullptr;
  bool digits_only = std::all_of(s.begin() + (s[0] == '-' || s[0] == '+' ? 1 : 0), s.end(),
                                 [](char c) { return c >= '0' && c <= '9'; }) &&
                     s.size() > (s[0] == '-' || s[0] == '+' ? 1u : 0u);
  if (digits_only) {
    errno = 0;
    long long v = std::strtoll(b, &end, 10);
    if (errno == 0 && *end == '\0') return static_cast<int64_t>(v);
  }
  bool floaty = s.find_first_not_of("0123456789+-.eE") == std::string::npos &&
                s.find_first_of("0123456789") != std::string::npos;
  if (floaty) {
    double d = std::strtod(b, &end);
    if (*end == '\0') return d;
  }
  return s;
}

expected<std::vector<manifest_document>> parse_manifests(const std::string& text,
                                                         const std::string& source_name) {
  std::vector<manifest_document> out;
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    // yaml-cpp stops at the first bad document; its mark tells the line.
    size_t doc = 1;
    for (int i = 0, line = 0; i < static_cast<int>(text.size()) && line < e.mark.line; ++i) {
      if (text[i] == '\n') {
        ++line;
        if (text.compare(i + 1, 3, "---") == 0) ++doc;
      }
    }
    return make_error(errc::parse_error, source_name + " (document " + std::to_string(doc) +
                                             "): invalid YAML at line " +
                                             std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  for (size_t i = 0; i < docs.size(); ++i) {
    std::string where = source_name + " (document " + std::to_string(i + 1) + ")";
    json::value v;
    try {
      v = convert(docs[i]);
    } catch (const YAML::Exception& e) {
      return make_error(errc::parse_error, where + ": " + e.msg);
    }
    if (v.is_null()) continue;
    if (!v.is_object())
      return make_error(errc::parse_error,
                        where + ": a manifest must be a mapping with apiVersion and kind");
    if (v.get_string("kind") == "List") {
      if (const auto* items = v.at("items"); items != nullptr && items->is_array())
        for (const auto& item : items->as_array())
          out.push_back({where, item});
      continue;
    }
    if (v.get_string("apiVersion").empty() || v.get_string("kind").empty())
      return make_error(errc::parse_error, where + ": apiVersion and kind are required");
    out.push_back({where, std::move(v)});
  }
  return out;
}

expected<std::vector<manifest_document>> load_manifests(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> files;
  if (fs::is_directory(path, ec)) {
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      auto ext = entry.path().extension().string();
      // kustomize's own file (deploy/crds is also a kustomization) is not a Kubernetes object.
      const auto stem = entry.path().filename().string();
      if (stem == "kustomization.yaml" || stem == "kustomization.yml" || stem == "Kustomization")
        continue;
      if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json"))
        files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
  } else if (fs::exists(path, ec)) {
    files.push_back(path);
  } else {
    return make_error(errc::not_found, "manifest " + path + " does not exist");
  }
  std::vector<manifest_document> out;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) return make_error(errc::io_error, "cannot read manifest " + f);
    std::stringstream ss;
    ss << in.rdbuf();
    auto docs = parse_manifests(ss.str(), f);
    if (!docs) return docs.error();
    for (auto& d : *docs)
      out.push_back(std::move(d));
  }
  return out;
}

}  // namespace tidesync::apiserver
