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

namespace {

json::value client_config(const webhook_registration& r, const std::string& path) {
  json::object client;
  if (!r.url.empty()) {
    // The same scheme and authority, this path.
    auto slash = r.url.find('/', r.url.find("://") + 3);
    client.set("url", (slash == std::string::npos ? r.url : r.url.substr(0, slash)) + path);
  } else {
    client.set("service", json::object{{"namespace", r.service_namespace},
                                       {"name", r.service_name},
                                       {"path", path},
                                       {"port", static_cast<int64_t>(r.service_port)}});
  }
  client.set("caBundle", base64::encode(r.ca_bundle_pem));
  return json::value(std::move(client));
}

json::object hook_of(const webhook_registration& r, const char* name, const std::string& path) {
  return json::object{
      {"name", name},
      {"admissionReviewVersions", json::array{"v1"}},
      {"clientConfig", client_config(r, path)},
      {"rules", json::array{json::object{{"operations", json::array{"CREATE"}},
                                         {"apiGroups", json::array{""}},
                                         {"apiVersions", json::array{"v1"}},
                                         {"resources", json::array{"pods"}},
                                         {"scope", "Namespaced"}}}},
      {"failurePolicy", "Ignore"},
      {"matchPolicy", "Equivalent"},
      {"sideEffects", "NoneOnDryRun"},
      {"timeoutSeconds", static_cast<int64_t>(r.timeout_seconds)},
      {"reinvocationPolicy", "IfNeeded"},
  };
}

}  // namespace

json::value mutating_webhook_configuration(const webhook_registration& r) {
  auto pods = hook_of(r, "pods.tidesync.io", r.path);
  pods.set("sideEffects", "None");
  pods.set(
      "objectSelector",
      json::object{{"matchLabels", json::object{{std::string(k_volume_syncing_label), "true"}}}});
  // Mounting a shared volume makes the namespace's PV and PVC when missing: a side effect,
  // skipped on dry runs.
  auto volumes = hook_of(r, "volumes.tidesync.io", r.volumes_path);
  volumes.set("namespaceSelector",
              json::object{{"matchExpressions",
                            json::array{json::object{{"key", "kubernetes.io/metadata.name"},
                                                     {"operator", "NotIn"},
                                                     {"values", json::array{"kube-system"}}}}}});
  return json::value(json::object{
      {"apiVersion", "admissionregistration.k8s.io/v1"},
      {"kind", "MutatingWebhookConfiguration"},
      {"metadata",
       json::object{{"name", r.name},
                    {"labels", json::object{{"app.kubernetes.io/managed-by", "tidesync"}}}}},
      {"webhooks", json::array{std::move(pods), std::move(volumes)}},
  });
}

}  // namespace tidesync::config
