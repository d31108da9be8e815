// Structural-schema handling of custom resources, as kube-apiserver v1.20 does it for a CRD
// version's `openAPIV3Schema`: pruning of unknown fields and validation.
//
// Order, as in the real server: prune, then default, then validate.
//
// Pruning (before validation, as the real server's decoder does): fields a schema does not
// specify are dropped silently, except under `x-kubernetes-preserve-unknown-fields: true`;
// null values of non-nullable object members are dropped too. At the root, apiVersion, kind
// and metadata are never touched (the store handles metadata).
//
// Validation covers the common keywords: type (object, array, string, integer, number,
// boolean), required, enum, minimum/maximum (with exclusive*), minLength/maxLength, pattern,
// minItems/maxItems, nullable, x-kubernetes-int-or-string and additionalProperties. The causes
// use kube-apiserver's wording and field paths ("spec.schedule"; items of an array report the
// array's path, as v1.20 does). `pattern` is matched with std::regex (ECMAScript), not Go's RE2:
// the common subset agrees; look-arounds would be accepted here and rejected by a CRD there.
#pragma once

#include <vector>

#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::apiserver {

// Drops what `schema` does not specify from the custom resource `obj` (in place).
void prune_custom_resource(json::value& obj, const json::value& schema);

// Fills in `default` values of absent fields (in place), after pruning and before
// validation, as the real server does: only inside objects that exist (a default under
// `spec` applies when `spec` is present or itself defaulted), for array items and map values
// too; apiVersion, kind and metadata are left alone.
void default_custom_resource(json::value& obj, const json::value& schema);

// Field errors of `obj` against `schema`, in kube-apiserver's form (empty when valid).
std::vector<error_cause> validate_custom_resource(const json::value& obj,
                                                  const json::value& schema);

}  // namespace tidesync::apiserver
