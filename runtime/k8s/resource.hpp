// Names a Kubernetes resource type and builds its REST paths.
#pragma once

#include <string>
#include <string_view>

namespace tidesync::k8s {

// A group/version/resource with what is needed to address it. `group` is empty for the
// core API ("v1" under /api).
struct resource {
  std::string group;    // "" for core, e.g. "batch", "tidesync.io"
  std::string version;  // "v1", "v1alpha1"
  std::string plural;   // "pods", "bucketsyncs"
  std::string kind;     // "Pod", "BucketSync"
  bool namespaced = true;

  // "v1" or "batch/v1": the apiVersion field of objects of this resource.
  [[nodiscard]] std::string api_version() const {
    return group.empty() ? version : group + "/" + version;
  }
  // "/api/v1" or "/apis/batch/v1".
  [[nodiscard]] std::string group_version_path() const {
    return group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  }
  // Collection path, e.g. "/api/v1/namespaces/default/pods" (cluster-wide when `ns` is
  // empty or the resource is cluster-scoped).
  [[nodiscard]] std::string collection_path(std::string_view ns) const {
    std::string p = group_version_path();
    if (namespaced && !ns.empty()) {
      p += "/namespaces/";
      p += ns;
    }
    p += "/";
    p += plural;
    return p;
  }
  // Object path, e.g. "/api/v1/namespaces/default/pods/web-0".
  [[nodiscard]] std::string object_path(std::string_view ns, std::string_view name) const {
    std::string p = collection_path(ns);
    p += "/";
    p += name;
    return p;
  }
  friend bool operator==(const resource&, const resource&) = default;
};

// Well-known resources.
namespace resources {
inline resource namespaces() {
  return {"", "v1", "namespaces", "Namespace", false};
}
inline resource configmaps() {
  return {"", "v1", "configmaps", "ConfigMap", true};
}
inline resource secrets() {
  return {"", "v1", "secrets", "Secret", true};
}
inline resource pods() {
  return {"", "v1", "pods", "Pod", true};
}
inline resource persistentvolumeclaims() {
  return {"", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true};
}
inline resource events() {
  return {"", "v1", "events", "Event", true};
}
inline resource jobs() {
  return {"batch", "v1", "jobs", "Job", true};
}
inline resource leases() {
  return {"coordination.k8s.io", "v1", "leases", "Lease", true};
}
inline resource mutatingwebhookconfigurations() {
  return {"admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
          "MutatingWebhookConfiguration", false};
}
inline resource crds() {
  return {"apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
          false};
}
}  // namespace resources

}  // namespace tidesync::k8s
