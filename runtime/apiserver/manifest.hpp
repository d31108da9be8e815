// Reads Kubernetes manifests (YAML or JSON, multi-document) into JSON values, for
// `tidesync simulate FILE_OR_DIR...`.
#pragma once

#include <string>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::apiserver {

struct manifest_document {
  std::string source;  // "path (document N)"
  json::value object;
};

// Parses YAML text (one or more documents separated by ---). A `kind: List` is expanded.
// Empty documents are skipped. Errors name `source_name` and the document number.
expected<std::vector<manifest_document>> parse_manifests(const std::string& text,
                                                         const std::string& source_name);
// Reads a file, or every *.yaml / *.yml / *.json file in a directory (sorted by name).
expected<std::vector<manifest_document>> load_manifests(const std::string& path);

// Converts a YAML scalar's text to JSON the way Kubernetes' YAML decoder does (YAML 1.1-ish
// core schema: null, booleans, integers, floats; anything else is a string).
json::value yaml_scalar(const std::string& text, bool quoted);

}  // namespace tidesync::apiserver
