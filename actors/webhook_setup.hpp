// The webhook's objects in the cluster (docs/podfilesystemsync.md, "Certificates"): the Secret
// tidesync-webhook-tls (made, rotated and shared by every replica) and the
// MutatingWebhookConfiguration that points the API server at us. Blocking calls through the
// client; the controller runs them at start and from its rotation timer.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "config/admission.hpp"
#include "runtime/error.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/webhook/tls_secret.hpp"

namespace tidesync::actors {

struct tls_result {
  webhook::tls_material material;
  bool changed = false;  // this call wrote a new serving certificate or CA
};

// Reads the Secret in `ns`, and when plan_tls says so, writes what carry_out makes: created
// when missing (a replica that loses the race reads the winner's), updated with its
// resourceVersion (a conflict reads again and plans again). A Secret that cannot be read or
// written is an error that says which RBAC rule or object to check.
expected<tls_result> ensure_webhook_tls(k8s::client& client, const std::string& ns,
                                        const std::vector<std::string>& names,
                                        std::chrono::system_clock::time_point now,
                                        const webhook::tls_policy& policy = {});

// Creates the MutatingWebhookConfiguration of `r`, or puts its webhooks back when they differ
// (a changed caBundle or URL, or an edit by hand). Returns whether it wrote.
expected<bool> ensure_webhook_registration(k8s::client& client,
                                           const config::webhook_registration& r);

}  // namespace tidesync::actors
