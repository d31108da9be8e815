#include "config/admission.hpp"

#include <utility>

#include "runtime/base64.hpp"

namespace tidesync::config {

expected<json::value> answer_admission_review(const json::value& review,
                                              const pod_decider& decide) {
  const auto* request = review.at("request");
  if (review.get_string("kind") != "AdmissionReview" || request == nullptr ||
      !request->is_object() || request->get_string("uid").empty())
    return make_error(errc::bad_request,
                      "not an AdmissionReview request (admission.k8s.io/v1 with request.uid)");
  json::object response{{"uid", std::string(request->get_string("uid"))}, {"allowed", true}};
  const auto* kind = request->at("kind");
  const bool pod =
      kind != nullptr && kind->get_string("group").empty() && kind->get_string("kind") == "Pod";
  const auto* object = request->at("object");
  if (pod && request->get_string("operation") == "CREATE" && object != nullptr &&
      object->is_object()) {
    auto d = decide(*object, std::string(request->get_string("namespace")));
    switch (d.what) {
      case injection_decision::kind::patch:
        response.set("patchType", "JSONPatch");
        response.set("patch", base64::encode(json::dump(d.patch)));
        break;
      case injection_decision::kind::refuse:
        response.set("allowed", false);
        response.set("status", json::object{{"code", 403},
                                            {"reason", "Forbidden"},
                                            {"message", "tidesync: " + d.message}});
        break;
      case injection_decision::kind::untouched:
        // Only worth a warning when a PodFilesystemSync meant to serve the pod.
        if (d.message.rfind("PodFilesystemSync ", 0) == 0)
          response.set("warnings", json::array{"tidesync: " + d.message});
        break;
    }
  }
  return json::value(json::object{{"apiVersion", "admission.k8s.io/v1"},
                                  {"kind", "AdmissionReview"},
                                  {"response", std::move(response)}});
}

json::value mutating_webhook_configuration(const webhook_registration& r) {
  json::object client;
  if (!r.url.empty()) {
    client.set("url", r.url);
  } else {
    client.set("service", json::object{{"namespace", r.service_namespace},
                                       {"name", r.service_name},
                                       {"path", r.path},
                                       {"port", static_cast<int64_t>(r.service_port)}});
  }
  client.set("caBundle", base64::encode(r.ca_bundle_pem));
  json::object hook{
      {"name", "pods.tidesync.io"},
      {"admissionReviewVersions", json::array{"v1"}},
      {"clientConfig", std::move(client)},
      {"rules", json::array{json::object{{"operations", json::array{"CREATE"}},
                                         {"apiGroups", json::array{""}},
                                         {"apiVersions", json::array{"v1"}},
                                         {"resources", json::array{"pods"}},
                                         {"scope", "Namespaced"}}}},
      {"objectSelector",
       json::object{{"matchLabels", json::object{{std::string(k_volume_syncing_label), "true"}}}}},
      {"failurePolicy", "Ignore"},
      {"matchPolicy", "Equivalent"},
      {"sideEffects", "None"},
      {"timeoutSeconds", static_cast<int64_t>(r.timeout_seconds)},
      {"reinvocationPolicy", "IfNeeded"},
  };
  return json::value(json::object{
      {"apiVersion", "admissionregistration.k8s.io/v1"},
      {"kind", "MutatingWebhookConfiguration"},
      {"metadata",
       json::object{{"name", r.name},
                    {"labels", json::object{{"app.kubernetes.io/managed-by", "tidesync"}}}}},
      {"webhooks", json::array{std::move(hook)}},
  });
}

}  // namespace tidesync::config
