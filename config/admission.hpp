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

// Where the API server finds the webhook and how it calls it: the controller keeps the
// MutatingWebhookConfiguration `name` equal to mutating_webhook_configuration() of this.
struct webhook_registration {
  std::string name = "tidesync-pod-injection";
  // clientConfig: the Service in front of the controller, or (when `url` is set: the simulation,
  // a controller outside the cluster) a URL.
  std::string service_namespace = "tidesync-system";
  std::string service_name = "tidesync-webhook";
  int service_port = 443;
  std::string url;
  std::string path = "/mutate-pods";
  // The second webhook (SharedVolume mounts, docs/sharedvolume.md): every pod CREATE outside
  // kube-system; with `url`, the same server and this path.
  std::string volumes_path = "/mount-volumes";
  std::string ca_bundle_pem;  // the CA that signed the serving certificate
  // A controller that is down or slow never blocks pod creation: Ignore, and a short timeout.
  int timeout_seconds = 5;
};

// The MutatingWebhookConfiguration: Pod CREATE only, only pods labelled
// tidesync.io/volume-syncing=true (objectSelector), failurePolicy Ignore, sideEffects None,
// admissionReviewVersions v1, reinvocationPolicy IfNeeded (another webhook adding a container
// after us gets our answer again; a second admission is a no-op). A second webhook,
// volumes.tidesync.io, sends every pod CREATE outside kube-system to `volumes_path` (pods name
// shared volumes by annotation, which no selector can see), also Ignore with the timeout.
json::value mutating_webhook_configuration(const webhook_registration& r);

}  // namespace tidesync::config
