// What the Secret `tidesync-webhook-tls` holds and what to do with it (docs/podfilesystemsync.md,
// "Certificates"): the CA, the serving certificate and the key that signs the agents' progress
// tokens. Pure decisions over the Secret's data plus the functions that make new material; the
// controller (actors/webhook_setup) reads and writes the Secret.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/webhook/certs.hpp"

namespace tidesync::webhook {

inline constexpr std::string_view k_tls_secret = "tidesync-webhook-tls";

// The Secret's keys: ca.crt, ca.key, tls.crt, tls.key (the kubernetes.io/tls names), report.key,
// ca-previous.crt.
struct tls_material {
  key_pair_pem ca;
  key_pair_pem serving;
  std::string report_key;   // 32 random bytes, hex
  std::string previous_ca;  // the CA before the last CA rotation (still trusted while valid)
};
tls_material from_secret_data(const std::map<std::string, std::string>& data);  // decoded values
std::map<std::string, std::string> to_secret_data(const tls_material& m);

// The caBundle: the CA, then the previous CA while it is valid at `now`, so replicas still
// serving a certificate of the previous CA are trusted until they have read the new one.
std::string ca_bundle(const tls_material& m, std::chrono::system_clock::time_point now);

struct tls_policy {
  std::chrono::hours ca_validity{24 * 365 * 10};
  std::chrono::hours serving_validity{24 * 365};
  std::chrono::hours renew_before{24 * 30};  // both: replace this long before expiry
};

enum class tls_action {
  keep,         // all valid
  new_serving,  // a new serving certificate under the same CA (the caBundle stays)
  new_ca,       // a new CA and serving certificate (the caBundle changes)
};

struct tls_plan {
  tls_action action = tls_action::keep;
  bool new_report_key = false;  // missing or malformed: make one (tokens granted so far break)
  std::string reason;           // for the log: why not keep
};

// What to do with `current` so it serves `names` at `now`.
tls_plan plan_tls(const tls_material& current, const std::vector<std::string>& names,
                  std::chrono::system_clock::time_point now, const tls_policy& policy = {});

// `current` with the plan carried out (new certificates valid from a minute before `now`, for
// clock skew). Errors: internal (OpenSSL).
expected<tls_material> carry_out(const tls_material& current, const tls_plan& plan,
                                 const std::vector<std::string>& names,
                                 std::chrono::system_clock::time_point now,
                                 const tls_policy& policy = {});

// The progress token granted to a pod at admission: "<report_id>.<hex HMAC-SHA256 over
// namespace, PodFilesystemSync and report_id>". `report_id` is random per pod (the pod has no
// name yet when admitted with generateName) and is written into the pod's annotations.
std::string report_token(std::string_view report_key, std::string_view ns, std::string_view pfs,
                         std::string_view report_id);
// The report_id when `token` was granted for (ns, pfs) under `report_key` (constant-time check).
std::optional<std::string> check_report_token(std::string_view report_key, std::string_view token,
                                              std::string_view ns, std::string_view pfs);

// n random bytes as lower-case hex (OpenSSL's RAND_bytes).
std::string random_hex(size_t n);

}  // namespace tidesync::webhook
