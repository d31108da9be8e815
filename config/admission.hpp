// The AdmissionReview protocol (admission.k8s.io/v1) around the webhook's decision
// (config/pod_injection.hpp), as a pure function: the HTTPS server (issue 8, slice 3) hands it
// the request body and writes back what it returns.
#pragma once

#include <functional>
#include <string>

#include "config/pod_injection.hpp"
#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::config {

// Decides for one pod of `ns` (the request's namespace: a pod created with generateName may not
// carry one yet).
using pod_decider =
    std::function<injection_decision(const json::value& pod, const std::string& ns)>;

// The AdmissionReview to answer `review` with. Pod CREATE: the decision as a base64 JSONPatch,
// a denial (403 with the message) or an admission without a patch (with the reason as an
// admission warning when a PodFilesystemSync selected the pod but could not serve it). Any
// other kind or operation is allowed untouched. errc::bad_request when `review` is not an
// AdmissionReview v1 request (no request.uid): the server answers 400.
expected<json::value> answer_admission_review(const json::value& review, const pod_decider& decide);

}  // namespace tidesync::config
