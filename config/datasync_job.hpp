// The objects a DataSync owns (docs/datasync.md, "The work"): per VM a PersistentVolumeClaim
// and a batch/v1 Job that runs `tidesync agent populate` into it.
//
// Pure: JSON from the parsed DataSync. Names are functions of the DataSync's name, the VM's
// name, the generation and the retry count, so a restarted controller finds what it created
// and a retry never collides with the Job it replaces. Secret values are never read: the
// Secret is passed by reference (envFrom) for the kubelet to resolve.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/datasync.hpp"
#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::config {

// On the PVCs, the Jobs and the populate pods: which DataSync (its name, or a hashed form when
// the name is not a valid label value) and which VM.
inline constexpr std::string_view k_datasync_label = "tidesync.io/datasync";
inline constexpr std::string_view k_datasync_vm_label = "tidesync.io/datasync-vm";
inline constexpr std::string_view k_populate_container = "populate";
// Where the Job mounts the VM's volume, and (sourceType pvc) the source claim, read-only.
inline constexpr std::string_view k_populate_data_path = "/data";
inline constexpr std::string_view k_populate_source_path = "/source";
// A VM without spec.storage.size and without spec.vms[].size gets this much.
inline constexpr std::string_view k_default_volume_size = "10Gi";

struct populate_settings {
  // The image with the tidesync binary (`tidesync controller --agent-image`).
  std::string image = "tidesync/tidesync:" TIDESYNC_VERSION;
  int64_t run_as_user = 65532;  // and group and fsGroup: the volume is writable by it
  std::string service_account;  // empty: the namespace's default
  // activeDeadlineSeconds of each populate Job: a download that hangs fails (transient) and
  // is retried under the policy.
  int64_t deadline_seconds = 6 * 3600;
};

// "<datasync>-<vm>" (hashed down to 253 characters when longer).
std::string datasync_claim_name(std::string_view datasync, std::string_view vm);

// "<datasync>-<vm>-<generation>-<retry>" as a DNS label (config::job_name's rule).
std::string datasync_job_name(std::string_view datasync, std::string_view vm, int64_t generation,
                              int64_t retry);

// The value of the tidesync.io/datasync label for a DataSync name.
std::string datasync_label_value(std::string_view datasync);

// The requested size of a VM's volume as a quantity: spec.storage.size when set; else the VM's
// size rounded up to a whole MiB, plus 10 % of that rounded up to a MiB (1 GiB → "1127Mi"; it
// errs towards more, never less); else k_default_volume_size.
std::string datasync_volume_size(const datasync_spec& spec, const datasync_vm& vm);

// The claim for `vm` (v1 PersistentVolumeClaim): owned by the DataSync (controller,
// blockOwnerDeletion), labels datasync/vm/workspace/managed-by, accessModes (default
// ReadWriteOnce), storageClassName when set (also ""), the size above. Errors
// (invalid_argument): missing name/namespace/uid.
expected<json::value> build_datasync_claim(const datasync& obj, const datasync_vm& vm);

// The populate Job for `vm` at the DataSync's current generation and status.retryCount:
// backoffLimit 0 (retries are the policy's, made by the controller), activeDeadlineSeconds, a
// non-root pod with a read-only root and no capabilities running
//   tidesync agent populate --source-type T --url U --dest /data [--checksum C] [--size N]
//     [--pvc-root /source] --termination-log /dev/termination-log
// with the claim at /data, for pvc sources the source claim read-only at /source, an emptyDir
// at /tmp (HOME), and spec.secretRef as envFrom. Errors (invalid_argument): missing
// name/namespace/uid, or a pvc URL that does not parse.
expected<json::value> build_populate_job(const datasync& obj, const datasync_vm& vm,
                                         const populate_settings& settings = {});

}  // namespace tidesync::config
