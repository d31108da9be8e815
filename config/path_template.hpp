// PodFilesystemSync spec.remotePath templates: a small, safe subset of Jinja2 rendered against a
// pod. Literal text plus these expressions, whitespace inside the braces optional:
//   {{ pod.metadata.name }}                 {{ pod.ObjectMeta.Name }}
//   {{ pod.metadata.namespace }}            {{ pod.ObjectMeta.Namespace }}
//   {{ pod.metadata.labels["key"] }}        {{ pod.ObjectMeta.Labels["key"] }}
//   {{ pod.metadata.annotations["key"] }}   {{ pod.ObjectMeta.Annotations["key"] }}
// (single quotes work too). Nothing else: no filters, no statements ({% %}), no comments ({# #}),
// no arithmetic; anything else is an error naming its position.
//
// The rendered result is a remote path relative to the remote's root, normalised:
//   - a leading '/' is dropped ("/bucket/dir" and "bucket/dir" are the same remote path, as for
//     rclone's "remote:/bucket/dir"), repeated '/' are collapsed, a trailing '/' is dropped;
//   - it must not be empty (syncing the whole remote is refused, as the seed's safety valve);
//   - no "." or ".." segment, no control character, no '\', at most 1024 bytes;
//   - a substituted value (label, annotation, name) must be non-empty and must not contain '/',
//     '\' or control characters: one value never spans or escapes a path segment, so a label
//     or annotation cannot move a pod's data into another pod's folder.
// Pure: no I/O, no global state.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::config {

inline constexpr size_t k_max_remote_path_bytes = 1024;

struct template_part {
  enum class kind { literal, name, namespace_, label, annotation };
  kind what = kind::literal;
  std::string text;     // the literal text, or the label/annotation key
  size_t position = 0;  // 1-based offset of the part in the template (for messages)
  friend bool operator==(const template_part&, const template_part&) = default;
};

struct path_template {
  std::string source;
  std::vector<template_part> parts;
  // True when the template has no expression (the same path for every pod).
  [[nodiscard]] bool is_literal() const;
};

// Parses `text`. Errors (errc::invalid_argument) say "at position N" (1-based) what is wrong and
// list what may be written; a template whose literal text alone makes an unsafe path (".."
// segments, control characters, nothing but '/') is refused here too.
expected<path_template> parse_template(std::string_view text);

// Renders against a Pod object (its metadata.name, namespace, labels, annotations). A missing
// label or annotation is an error naming it; the result is normalised and checked as above.
expected<std::string> render(const path_template& t, const json::value& pod);

// Normalises and checks a rendered remote path (the rules above). Exposed for tests and for
// callers that build paths themselves.
expected<std::string> normalize_remote_path(std::string_view path);

}  // namespace tidesync::config
