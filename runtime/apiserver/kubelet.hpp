// A simulated kubelet, Job controller and Deployment controller for `tidesync simulate`.
//
// Jobs: it watches batch/v1 Jobs in the embedded store and, for a Job whose pod template runs
// an rclone or tidesync image, creates the Pod a real Job controller would create and runs its
// first container as a local process (the local `rclone` binary or the tidesync binary). Pod
// and Job status are written as a kubelet and the Job controller would (phases,
// containerStatuses, active/succeeded/failed, Complete/Failed conditions, backoffLimit,
// activeDeadlineSeconds).
//
// Bare Pods (no Job owns them: a Deployment's Pods are bare Pods here) with no node or node
// `tidesync-simulate` are bound to that node and run as a kubelet runs them: init containers in
// order, native sidecars (init containers with restartPolicy Always), then every regular container;
// restarts per restartPolicy; initContainerStatuses/containerStatuses. A container whose image is
// neither rclone nor tidesync is a placeholder: no process, `running` until the Pod goes (the app
// is imaginary).
//
// Deployments: it plays the Deployment and ReplicaSet controllers (deployment_logic.hpp): each
// Deployment keeps spec.replicas Pods of its template (labels + pod-template-hash, owned by the
// Deployment; no ReplicaSet object), replaced when the template changes (Recreate, or a rolling
// update), when they end or are deleted; its status (replicas, ready/available/updated counts,
// Available and Progressing conditions) is written as the Deployment controller writes it. Those
// Pods are then run as bare Pods.
//
// It registers its node with the store, so deleting one of its Pods is graceful (store.hpp,
// register_node): regular containers get SIGTERM, then the sidecars in reverse order, SIGKILL
// at the end of the grace period, then the Pod is deleted for good.
//
// Env comes from literal values, Secrets, ConfigMaps and the Downward API; volumes map to
// local folders (an `nfs` volume, or a claim bound to an nfs PersistentVolume, to the folder
// <data-dir>/nfs/<server>/<path> that plays the NFS server). docs/kubelet.md has the rules and
// the limits.
//
// One thread does everything: it reads the Job and Pod watches, reaps exited processes and
// enforces deadlines. Processes write straight into their log file (no pump threads).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "runtime/error.hpp"

namespace tidesync::apiserver {

class store;

struct kubelet_options {
  // Root for logs/, volumes/ (persistentVolumeClaims), nfs/ (nfs volumes) and pods/ (emptyDir,
  // working dirs).
  std::string data_dir;
  // The rclone binary; a bare name is looked up in PATH.
  std::string rclone_binary = "rclone";
  // The tidesync binary; empty: Jobs with a tidesync image stay Pending.
  std::string tidesync_binary;
  // Environment every container starts with (the container's own env goes on top). A real
  // container does not inherit the node's environment, so by default only PATH is passed.
  std::map<std::string, std::string> base_env;
  bool inherit_path = true;  // add this process's PATH to base_env when it has none
  // SIGTERM → SIGKILL grace when a process is killed (Job deleted, deadline, a Pod deleted
  // without grace period, stop()). A Pod's graceful deletion uses its own grace period.
  std::chrono::milliseconds kill_grace{std::chrono::seconds(2)};
  // Bare Pods: the delay before a container that exited is started again (restartPolicy, a
  // failed init container, a native sidecar); it doubles with each restart up to
  // max_restart_backoff and starts over after a run longer than that.
  std::chrono::milliseconds restart_backoff{std::chrono::seconds(1)};
  std::chrono::milliseconds max_restart_backoff{std::chrono::seconds(30)};
  // How often the control loop wakes when nothing happens (process exits are seen this late
  // at most); also the retry interval of Pods waiting on a missing Secret or ConfigMap.
  std::chrono::milliseconds tick{std::chrono::milliseconds(50)};
};

class kubelet {
 public:
  kubelet(store& st, kubelet_options options);
  ~kubelet();  // stop()
  kubelet(const kubelet&) = delete;
  kubelet& operator=(const kubelet&) = delete;

  // Registers node `tidesync-simulate` with the store, lists the Jobs, Pods and Deployments,
  // takes over the unfinished ones and starts the control thread. Job pods left Pending/Running
  // by an earlier run (whose processes are gone) are marked Failed; bare Pods (a Deployment's
  // too) are run again (restartPolicy Never: Failed); Pods left being deleted are deleted for
  // good.
  expected<void> start();
  // Unregisters the node (deletions are immediate again), kills every running process
  // (SIGTERM, then SIGKILL after kill_grace), reaps them, deletes for good the Pods that were
  // being deleted and joins the thread. Other Pod/Job status is left as it was. Idempotent.
  void stop();

  // Processes currently running (tests and metrics).
  [[nodiscard]] size_t running_processes() const { return running_.load(); }

 private:
  struct state;
  void run();

  store& store_;
  kubelet_options options_;
  std::unique_ptr<state> state_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> running_{0};
};

}  // namespace tidesync::apiserver
