// The admission webhook's decisions for one pod (docs/podfilesystemsync.md, "The webhook"), as
// pure functions over the pod and the namespace's PodFilesystemSyncs: which one selects the
// pod, and the JSON patch that adds the restore init container and the syncing sidecar. No
// HTTP, no clock: the webhook server (next slice) wraps these.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/podfilesystemsync.hpp"
#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::config {

// Only pods with this label reach the webhook (the configuration's objectSelector); others are
// never touched.
inline constexpr std::string_view k_volume_syncing_label = "tidesync.io/volume-syncing";
inline constexpr std::string_view k_restore_container = "init-volume-restore";
inline constexpr std::string_view k_sidecar_container = "volume-syncing-sidecar";
// The emptyDir mounted at /tmp in both agents (their root filesystem is read-only), and the
// sidecar's health file in it (`tidesync agent health`, the exec livenessProbe).
inline constexpr std::string_view k_agent_tmp_volume = "tidesync-agent-tmp";
inline constexpr std::string_view k_health_file = "/tmp/tidesync-sidecar-health";
// Set on an injected pod: the PodFilesystemSync that did it (a second admission is a no-op).
inline constexpr std::string_view k_injected_annotation = "tidesync.io/injected-by";
// Set on an injected pod when progress reports are on: the random id its token is bound to (the
// pod may have no name yet at admission).
inline constexpr std::string_view k_report_id_annotation = "tidesync.io/report-id";

struct injection_settings {
  std::string image = "tidesync/tidesync:" TIDESYNC_VERSION;
  // The sidecar as a native sidecar (an init container with restartPolicy: Always, Kubernetes
  // 1.29+), so it starts after the restore and stops after the app; else a plain container.
  bool native_sidecars = true;
  int64_t default_uid = 65532;  // when neither the spec nor the pod's annotations say
  // Progress reports (docs/podfilesystemsync.md, "Progress"): where the agents POST their
  // results, the CA PEM they trust for it, and the token granted for (namespace,
  // PodFilesystemSync, report id) (webhook::report_token). An empty URL: no reports.
  std::string report_url;
  std::string report_ca;
  std::function<std::string(std::string_view ns, std::string_view pfs, std::string_view report_id)>
      report_token;
};

struct injection_decision {
  enum class kind {
    untouched,  // not ours: no label, no PodFilesystemSync selects it, or already injected
    patch,      // admit with `patch`
    refuse,     // deny with `message` (starting would risk the remote's data)
  };
  kind what = kind::untouched;
  std::string message;  // refuse: why and what to do; untouched: why (for a log line / Event)
  std::string by;       // patch: the PodFilesystemSync's name
  json::value patch;    // an RFC 6902 JSON patch (an array)
};

// Decides for `pod` (a Pod object as admission sends it) among the PodFilesystemSyncs of its
// namespace. More than one selecting it is refused (two writers on one volume lose data). A
// pod whose remotePath cannot be rendered, whose uid/gid annotations are bad, or whose
// localPath no container mounts is refused when the spec restores from the remote (starting
// empty and then syncing would empty the remote); without fromRemote it is admitted untouched
// with the reason in `message`.
// `report_id` (random per admission) binds the pod's progress token; ignored without
// settings.report_url.
injection_decision decide_injection(const json::value& pod,
                                    const std::vector<podfilesystemsync>& syncs,
                                    const injection_settings& settings,
                                    std::string_view report_id = {});

}  // namespace tidesync::config
