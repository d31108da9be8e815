// The controller process as a function, shared by `tidesync controller` and
// `tidesync simulate` (which runs it in a thread against its embedded API server).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "runtime/k8s/config.hpp"

namespace tidesync::cli {

struct controller_flags {
  std::string kubeconfig;
  std::string ns = "tidesync-system";  // --namespace: locks, leases, policy
  std::string watch_namespace;         // --watch-namespace: "" = all
  bool leader_elect = false;
  std::string leader_elect_id;
  std::chrono::seconds lease_duration{15};
  std::chrono::seconds renew_deadline{10};
  std::chrono::seconds retry_period{2};
  std::string metrics_addr = "0.0.0.0:8080";  // "0" disables
  std::string health_addr = "0.0.0.0:8081";
  uint32_t concurrency = 10;                              // BucketSyncs reconciled at once
  std::map<std::string, uint32_t> namespace_concurrency;  // optional per-namespace caps
  std::chrono::seconds lock_ttl{600};
  std::string rclone_image;  // "" : the default
  std::string agent_image;   // "" : tidesync/tidesync:<version>
  double qps = 50;
  int burst = 100;
  // The config API for SharedConfigs (docs/sharedconfig.md); "0" (the default) disables it.
  std::string config_api_addr = "0";
  // When set, "http://HOST:PORT" of the config API is written here once it listens (simulate).
  std::string config_api_url_file;
  // The admission webhook and PodFilesystemSync (docs/podfilesystemsync.md); "0" disables.
  std::string webhook_addr = "0";
  std::string webhook_service = "tidesync-webhook";  // the Service in --namespace
  int webhook_service_port = 443;
  std::string webhook_url;  // instead of the Service (simulate); "{port}": the bound port
  std::string webhook_config = "tidesync-pod-injection";
  bool native_sidecars = true;  // Kubernetes >= 1.29
  // SharedVolume (docs/sharedvolume.md): the NFS server image, and how long a namespace keeps
  // its claim of a volume after its last consumer pod.
  std::string nfs_image;  // "" : the default
  std::chrono::seconds volume_claim_grace{30};
};

// Parses `tidesync controller` flags; returns an error message ("" on success). `help` is
// set for -h/--help.
std::string parse_controller_flags(int argc, char** argv, controller_flags& out, bool& help);
const char* controller_usage();

// Runs until `stop` becomes true (or, with leader election, the lead is lost: exit code 2).
// Returns the process exit code. `connection` set: use it instead of loading a kubeconfig.
int run_controller_until(const controller_flags& flags, const std::atomic<bool>& stop,
                         const k8s::connection_config* connection = nullptr);

}  // namespace tidesync::cli
