// Certificates for the admission webhook (issue 8; docs/podfilesystemsync.md, "The webhook").
//
// Mechanisms only, over OpenSSL 3's EVP/X509 APIs: make a self-signed CA, make a serving
// certificate signed by it, read a certificate back, check a signature, and the two pure
// decisions the controller's rotation loop needs (rotate now? does it cover these names?).
// Where the PEMs live (the Secret `tidesync-webhook-tls`) and when this runs is the
// controller's business.
//
// Keys are ECDSA P-256; private keys are written as unencrypted PKCS#8 ("PRIVATE KEY"), which
// Go's crypto/tls (the kube-apiserver side) and OpenSSL both read. Validity windows are exactly
// [now, now + validity] at whole seconds: a caller that fears clock skew passes an earlier `now`.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"

namespace tidesync::webhook {

// A certificate and its private key, both PEM.
struct key_pair_pem {
  std::string cert;
  std::string key;
};

// A self-signed X.509 v3 CA: CN=`common_name`, basicConstraints CA:TRUE (critical), keyUsage
// keyCertSign|cRLSign (critical), subjectKeyIdentifier, a random 128-bit serial.
// Errors: invalid_argument (empty or over-long name, validity <= 0), internal (OpenSSL).
expected<key_pair_pem> make_ca(std::string_view common_name,
                               std::chrono::system_clock::time_point now,
                               std::chrono::hours validity);

// A serving certificate signed by `ca`: subjectAltName entries `dns_names` in order (a name that
// is an IPv4/IPv6 address becomes an iPAddress entry)
// (Kubernetes only looks there), CN = the first name, extendedKeyUsage serverAuth, keyUsage
// digitalSignature (critical), basicConstraints CA:FALSE, subject and authority key
// identifiers. Errors: invalid_argument (no names, an empty name or one with a comma,
// validity <= 0, `ca` not a CA or its key not matching), parse_error (the CA PEMs).
expected<key_pair_pem> make_serving_cert(const key_pair_pem& ca,
                                         const std::vector<std::string>& dns_names,
                                         std::chrono::system_clock::time_point now,
                                         std::chrono::hours validity);

// What the rotation loop needs to know about a certificate.
struct cert_info {
  std::chrono::system_clock::time_point not_before, not_after;
  std::vector<std::string> dns_names;  // the subjectAltName DNS and IP entries, in order
  bool is_ca = false;                  // basicConstraints CA:TRUE
};

// Reads the first certificate of a PEM. Errors: parse_error.
expected<cert_info> inspect_cert(std::string_view pem);

// True when `ca_pem`'s key signed `cert_pem` and the issuer name is the CA's subject.
// Errors: parse_error when either PEM does not parse.
expected<bool> verify_signed_by(std::string_view cert_pem, std::string_view ca_pem);

// True when the certificate must be replaced: `now` is within `renew_before` of its expiry (or
// past it), or before its start.
bool needs_rotation(const cert_info& c, std::chrono::system_clock::time_point now,
                    std::chrono::hours renew_before);

// True when every wanted name is one of the certificate's DNS names (ASCII case-insensitive,
// no wildcard matching).
bool covers(const cert_info& c, const std::vector<std::string>& wanted_names);

// The names a Service answers to in the cluster: {service, service.ns, service.ns.svc,
// service.ns.svc.cluster.local}.
std::vector<std::string> service_dns_names(std::string_view service, std::string_view ns);

}  // namespace tidesync::webhook
