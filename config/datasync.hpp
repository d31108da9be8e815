// DataSync (tidesync.io/v1alpha1): the VM images a workspace needs, each downloaded into its own
// volume under the cluster policy (docs/datasync.md). Spec and status types, parsing with every
// validation of the design's "Bad input", and the status JSON the controller patches. The
// reference is docs/crds/datasync.md; deploy/crds/tidesync.io_datasyncs.yaml is the CRD, and a
// unit test checks that it and the field lists below agree.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/bucketsync.hpp"  // object_meta, k_api_version
#include "config/condition.hpp"
#include "config/validation.hpp"
#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::config {

inline constexpr std::string_view k_datasync_kind = "DataSync";
// Set by the controller on each DataSync: pruning groups versions by workspace.
inline constexpr std::string_view k_workspace_label = "tidesync.io/workspace";
// spec.vms holds 1..k_datasync_max_vms entries.
inline constexpr size_t k_datasync_max_vms = 64;

enum class datasync_source_type { http, s3, pvc };
// "http", "s3", "pvc".
std::string_view to_string(datasync_source_type t);
std::optional<datasync_source_type> parse_datasync_source_type(std::string_view s);

// A source URL split by its type: http → {"https://host:port", "/path?query"}; s3 →
// {bucket, key}; pvc → {claim, relative path}.
struct source_location {
  std::string authority;
  std::string path;
};
// Checks that `url` is well-formed for `type` (see docs/crds/datasync.md). The error message
// says what is wrong and what to write ("needs a bucket name ...").
expected<source_location> split_source_url(datasync_source_type type, std::string_view url);

// "sha256:<64 lower-case hex>" from that form or from 64 bare hex digits (any case).
expected<std::string> normalize_checksum(std::string_view text);

// A Kubernetes resource quantity ("20Gi", "500M", "1e9", "1.5Gi") in whole units, rounded up
// as Quantity.Value() does. Negative values, unknown suffixes and values above int64 fail.
expected<int64_t> parse_quantity(std::string_view text);

struct datasync_vm {
  std::string name;  // DNS label; the PVC is "<datasync>-<name>"
  datasync_source_type source_type = datasync_source_type::http;
  std::string url;
  std::optional<std::string> checksum;  // normalised "sha256:<hex>"
  std::optional<int64_t> size;          // bytes
};

struct datasync_storage {
  // Absent: the cluster's default class; "": no class (pre-provisioned volumes only).
  std::optional<std::string> storage_class_name;
  std::optional<std::string> size;        // the quantity as written, for the PVC request
  std::optional<int64_t> size_bytes;      // the same in bytes
  std::vector<std::string> access_modes;  // empty: [ReadWriteOnce]
};

struct secret_reference {
  std::string name;  // a Secret in the DataSync's namespace
};

struct datasync_spec {
  std::string workspace_id;
  std::optional<std::string> version;
  std::vector<datasync_vm> vms;
  std::optional<secret_reference> secret_ref;
  datasync_storage storage;
};

enum class datasync_phase { none, queued, syncing, succeeded, failed };
// "", "Queued", "Syncing", "Succeeded", "Failed".
std::string_view to_string(datasync_phase p);
std::optional<datasync_phase> parse_datasync_phase(std::string_view s);

enum class datasync_vm_phase { pending, syncing, succeeded, failed };
// "Pending", "Syncing", "Succeeded", "Failed".
std::string_view to_string(datasync_vm_phase p);
std::optional<datasync_vm_phase> parse_datasync_vm_phase(std::string_view s);

struct datasync_vm_status {
  std::string name;
  datasync_vm_phase phase = datasync_vm_phase::pending;
  int64_t bytes = 0;                   // written so far
  std::optional<int64_t> size;         // total, once known
  std::optional<std::string> digest;   // "sha256:<hex>" of the verified data
  std::optional<std::string> message;  // why it failed, or what it waits for

  friend bool operator==(const datasync_vm_status&, const datasync_vm_status&) = default;
};

struct datasync_status {
  datasync_phase phase = datasync_phase::none;
  std::string message;                    // empty: null in the JSON
  std::optional<int64_t> queue_position;  // while Queued; 1 = next
  int64_t retry_count = 0;
  std::optional<sys_seconds> next_retry_time;  // while waiting out a backoff
  std::vector<datasync_vm_status> vms;
  int64_t observed_generation = 0;
  std::vector<condition> conditions;
  std::optional<sys_seconds> last_reconciled_time;
};

struct datasync {
  object_meta metadata;
  datasync_spec spec;
  datasync_status status;
};

// Parses a whole object (apiVersion, kind, metadata, spec, status). Every problem in the spec
// is reported in one errc::invalid error whose `causes` list each field (path, reason, what to
// write instead). Unknown spec fields and unreadable status fields go to `warnings`.
expected<datasync> parse_datasync(const json::value& object,
                                  std::vector<std::string>* warnings = nullptr);

// Like parse_datasync, but always returns what could be read: a DataSync with a bad spec still
// has metadata and status, which the controller needs to mark it Failed with the message.
// `problem` gets the error parse_datasync would return (reset when there is none).
datasync parse_datasync_partial(const json::value& object, std::optional<error>* problem,
                                std::vector<std::string>* warnings = nullptr);

// The spec parser on its own (`spec` is the object under .spec; paths start with "spec").
datasync_spec parse_datasync_spec(const json::value& spec, problems& p);

// Lenient status reader (status is our own output; bad fields become warnings).
datasync_status parse_datasync_status(const json::value* status, problems& p);

// The full status object for a merge patch {"status": ...}: every field is present, unset
// ones as null, so a patch also clears stale values (an old queue position or retry time).
// In status.vms entries unset fields are left out instead (a list is replaced whole).
json::value to_json(const datasync_status& s);
json::value to_json(const datasync_vm_status& s);

// The spec/status field names the parsers read, in CRD order (checked against the CRD).
const std::vector<std::string_view>& datasync_spec_fields();
const std::vector<std::string_view>& datasync_vm_fields();
const std::vector<std::string_view>& datasync_storage_fields();
const std::vector<std::string_view>& datasync_status_fields();
const std::vector<std::string_view>& datasync_vm_status_fields();

}  // namespace tidesync::config
