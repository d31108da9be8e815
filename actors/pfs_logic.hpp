// The PodFilesystemSync controller's pure decisions (docs/podfilesystemsync.md, "Status"): the
// status from the spec, the namespace's labelled pods (with the last report each pod's agents
// sent, kept in the pod annotation tidesync.io/last-sync) and what is known of the Secrets;
// the key Secret of automaticEncryption; reading and writing a report.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/podfilesystemsync.hpp"
#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::actors {

// Written on the pod by the controller replica that received the report.
inline constexpr const char* k_last_sync_annotation = "tidesync.io/last-sync";

// What the controller found when it looked at the Secrets the spec names.
struct pfs_secrets {
  std::vector<std::string> missing;  // envFromSecret names that do not exist
  std::string encryption_problem;    // automaticEncryption's Secret unusable ("" when fine)
};

// The status for `s` given the labelled pods of its namespace (the ones its podSelector selects
// are listed, sorted by name) and the Secrets. Conditions:
//   Ready         False SecretNotFound / EncryptionKeyInvalid; True Selecting
//   PodsSelected  False NoMatchingPods (with what to label); True with the count
//   Synced        Unknown NoReports; False SyncFailed naming a pod and its message; True
config::podfilesystemsync_status pfs_status(const config::podfilesystemsync& s,
                                            const std::vector<json::value>& pods,
                                            const pfs_secrets& secrets, config::sys_seconds now);

// A report as an agent POSTs it (runtime/cli/agent_pfs.cpp): validated, as the annotation's
// pod_sync_status (name = the pod). errc::bad_request says which field is wrong.
struct pfs_report {
  std::string ns, pod, pfs;
  config::pod_sync_status sync;
};
expected<pfs_report> parse_pfs_report(const json::value& body);
// The annotation value for a report, and back (nullopt when absent or malformed).
std::string last_sync_annotation(const config::pod_sync_status& s);
std::optional<config::pod_sync_status> read_last_sync(const json::value& pod);

// The automaticEncryption Secret's keys (rclone-obscured, usable as RCLONE_CONFIG_* for a crypt
// remote named tidesync-crypt in a disaster recovery).
inline constexpr const char* k_crypt_password_key = "RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD";
inline constexpr const char* k_crypt_salt_key = "RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD2";
// "" when `secret` (a Secret object) holds both keys as rclone-obscured non-empty values; else
// what is wrong (never the values).
std::string check_encryption_secret(const json::value& secret);
// A new Secret `name` in `ns` with a random password and salt (32 random bytes each).
json::value new_encryption_secret(const std::string& ns, const std::string& name,
                                  const std::string& pfs_name);

}  // namespace tidesync::actors
