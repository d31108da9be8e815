// Decodes the Kubernetes protobuf wire format for the few built-in types that kubectl's
// typed commands send that way (`kubectl create configmap|secret|namespace|serviceaccount`
// POST `application/vnd.kubernetes.protobuf` and do not fall back to JSON on a 415).
//
// Only what those commands send is read: ObjectMeta's name, generateName, namespace, labels,
// annotations, ownerReferences, finalizers, and each type's own fields. Other kinds answer
// 415 with a message that says to use JSON (`kubectl apply -f`).
#pragma once

#include <string_view>

#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::apiserver {

// `body` is the whole request body ("k8s\0" magic + runtime.Unknown). Returns the object as
// JSON with apiVersion and kind set.
expected<json::value> decode_k8s_protobuf(std::string_view body);

}  // namespace tidesync::apiserver
