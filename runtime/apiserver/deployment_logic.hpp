// The Deployment controller of the simulated kubelet (docs/kubelet.md, "Deployments"): its
// decisions as pure functions over a Deployment and its Pods, so they are tested without a
// store, processes or a clock. The kubelet lists, applies the plan and writes the status.
//
// No ReplicaSet objects are made: the Pods are owned by the Deployment itself (ownerReference
// with controller: true) and carry the template's labels plus `pod-template-hash`. A "replica
// set" here is the set of the Deployment's Pods with one hash; it is named `<deployment>-<hash>`
// in the status messages, as Kubernetes names its ReplicaSet.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/json/value.hpp"

namespace tidesync::apiserver {

// The label that tells the template a Pod was made from.
inline constexpr const char* k_pod_template_hash = "pod-template-hash";

// The hash of a pod template: FNV-1a 32 over its JSON with every object's keys sorted (key order
// does not change it), its decimal digits mapped onto "bcdfghjklmnpqrstvwxz2456789" as
// Kubernetes' rand.SafeEncodeString renders it (so it looks like "5d4b8c7f96").
std::string pod_template_hash(const json::value& pod_template);

// The uid of the Deployment that controls `pod` (its ownerReference of kind Deployment with
// controller: true), or "".
std::string controlling_deployment(const json::value& pod);

// A Pod to delete, with the uid the delete is conditioned on.
struct pod_key {
  std::string name, uid;
};

// What to do with a Deployment's Pods now.
struct deployment_plan {
  std::string hash;             // pod-template-hash of the current template
  int64_t create = 0;           // Pods to create from the template (with this hash)
  std::vector<pod_key> remove;  // Pods to delete (gracefully)
  std::string reason;           // one line for the log ("" when nothing is to be done)
};

// Decides, level-based, from the Deployment and every Pod it controls (deleted ones included):
// - nothing for a paused Deployment or one being deleted;
// - Pods that ended (Succeeded/Failed) are deleted (they are replaced below);
// - Recreate: while Pods of an older template are active they are deleted, and no new Pod is
//   made until every one of them is gone; then the new template's Pods are scaled;
// - RollingUpdate (the default): the new template's Pods are made at once (maxSurge 100%), and
//   an older Pod is deleted for each new one that is available (maxUnavailable 0);
// - scaling: the new template's active Pods are brought to spec.replicas (default 1); extra ones
//   go in Kubernetes' order (unbound, Pending, not ready, ready for less time, newest first).
deployment_plan plan_deployment(const json::value& deployment, const std::vector<json::value>& pods,
                                std::chrono::system_clock::time_point now);

// The Pod to create for `deployment`'s template: named `<deployment>-<hash>-<suffix>`, labels
// from the template plus pod-template-hash, annotations from the template, an ownerReference
// to the Deployment (controller, blockOwnerDeletion), spec from the template, no node (the
// kubelet binds it as the scheduler would).
json::value deployment_pod(const json::value& deployment, const std::string& hash,
                           std::string_view suffix);

// The Deployment's status from its Pods (as they are after the plan was applied): replicas,
// updatedReplicas, readyReplicas, availableReplicas (ready for minReadySeconds),
// unavailableReplicas, observedGeneration and the conditions Available (True when
// availableReplicas >= spec.replicas), Progressing (ReplicaSetUpdated while it rolls out,
// NewReplicaSetAvailable once complete, False ProgressDeadlineExceeded when no progress was made
// for progressDeadlineSeconds, Unknown DeploymentPaused) and ReplicaFailure (FailedCreate, when
// `create_error` is set). Condition times are kept from the current status when nothing changed.
json::value deployment_status(const json::value& deployment, const std::vector<json::value>& pods,
                              std::chrono::system_clock::time_point now,
                              std::string_view create_error);

}  // namespace tidesync::apiserver
