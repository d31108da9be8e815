// SharedVolume / ClusterSharedVolume decisions (docs/sharedvolume.md), pure: the status from what
// the controller observed, which consumer namespaces lose their claim, and a syncer report.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/sharedvolume.hpp"
#include "config/sharedvolume_objects.hpp"
#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::actors {

struct volume_observation {
  bool server_ready = false;  // external storage, or the NFS Deployment is Available
  std::string server_message;
  std::map<std::string, std::vector<std::string>> consumers;  // namespace → pod names
  std::string missing_secret;  // the source's Secret, when it does not exist
};

// The status to write: conditions ServerReady, Synced, Ready; phase; nfs; consumers. The sync
// fields (revision, lastSync*) are the syncer's (reported) and kept as they are.
config::sharedvolume_status volume_status(const config::sharedvolume& v,
                                          const volume_observation& o,
                                          const std::pair<std::string, std::string>& nfs,
                                          config::sys_seconds now);

// The pods of `pods` (any namespace) that mount `r`: running or pending, not terminating, their
// annotations naming it. namespace → pod names.
std::map<std::string, std::vector<std::string>> consumers_of(const config::volume_ref& r,
                                                             const std::vector<json::value>& pods);

// Consumer namespaces whose claim can go: no consumer left and the claim older than `grace`
// (a pod being replaced in a rolling update keeps it). `claims`: namespace → creation time.
std::vector<std::string> claims_to_remove(
    const std::map<std::string, std::optional<config::sys_seconds>>& claims,
    const std::map<std::string, std::vector<std::string>>& consumers, config::sys_seconds now,
    std::chrono::seconds grace);

// A syncer's report, validated; the status fields it sets.
struct volume_report {
  config::volume_ref ref;
  std::string revision;
  std::string result;  // Succeeded, Failed
  std::string message;
  config::sys_seconds time{};
};
expected<volume_report> parse_volume_report(const json::value& body);
// The merge patch {"status": {...}} of a report (a failure keeps the revision that is served).
json::value volume_report_patch(const volume_report& r);

}  // namespace tidesync::actors
