#include "runtime/webhook/certs.hpp"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>

namespace tidesync::webhook {
namespace {

using sys_clock = std::chrono::system_clock;

template <auto F>
struct ossl_deleter {
  template <class T>
  void operator()(T* p) const {
    F(p);
  }
};
using bio_ptr = std::unique_ptr<BIO, ossl_deleter<BIO_free_all>>;
using x509_ptr = std::unique_ptr<X509, ossl_deleter<X509_free>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, ossl_deleter<EVP_PKEY_free>>;
using bn_ptr = std::unique_ptr<BIGNUM, ossl_deleter<BN_free>>;
using ext_ptr = std::unique_ptr<X509_EXTENSION, ossl_deleter<X509_EXTENSION_free>>;
using names_ptr = std::unique_ptr<GENERAL_NAMES, ossl_deleter<GENERAL_NAMES_free>>;
using name_ptr = std::unique_ptr<GENERAL_NAME, ossl_deleter<GENERAL_NAME_free>>;
using ia5_ptr = std::unique_ptr<ASN1_IA5STRING, ossl_deleter<ASN1_IA5STRING_free>>;
using bc_ptr = std::unique_ptr<BASIC_CONSTRAINTS, ossl_deleter<BASIC_CONSTRAINTS_free>>;

// Drains OpenSSL's error queue into one line.
std::string openssl_errors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? std::string("no OpenSSL error reported") : out;
}

error ossl_error(errc code, std::string what) {
  return make_error(code, std::move(what) + ": " + openssl_errors());
}

// Never prompt for a passphrase: an encrypted key is an error, not a terminal read.
int no_password(char*, int, int, void*) {
  return 0;
}

bio_ptr mem_bio(std::string_view text) {
  return bio_ptr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

expected<x509_ptr> read_cert(std::string_view pem, std::string_view what) {
  bio_ptr bio = mem_bio(pem);
  x509_ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, no_password, nullptr) : nullptr);
  if (!cert) return ossl_error(errc::parse_error, std::string(what) + " does not parse");
  return cert;
}

expected<pkey_ptr> read_key(std::string_view pem, std::string_view what) {
  bio_ptr bio = mem_bio(pem);
  pkey_ptr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr) : nullptr);
  if (!key) return ossl_error(errc::parse_error, std::string(what) + " does not parse");
  return key;
}

expected<std::string> bio_string(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len < 0 || (len > 0 && data == nullptr))
    return ossl_error(errc::internal, "reading a memory BIO");
  return std::string(data, static_cast<size_t>(len));
}

expected<key_pair_pem> to_pem(X509* cert, EVP_PKEY* key) {
  bio_ptr cbio(BIO_new(BIO_s_mem()));
  bio_ptr kbio(BIO_new(BIO_s_mem()));
  if (!cbio || !kbio) return ossl_error(errc::internal, "allocating a memory BIO");
  if (PEM_write_bio_X509(cbio.get(), cert) != 1)
    return ossl_error(errc::internal, "writing the certificate PEM");
  if (PEM_write_bio_PrivateKey(kbio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return ossl_error(errc::internal, "writing the private key PEM");
  auto c = bio_string(cbio.get());
  if (!c) return c.error();
  auto k = bio_string(kbio.get());
  if (!k) return k.error();
  return key_pair_pem{std::move(*c), std::move(*k)};
}

expected<pkey_ptr> new_p256_key() {
  pkey_ptr key(EVP_EC_gen("P-256"));
  if (!key) return ossl_error(errc::internal, "generating an ECDSA P-256 key");
  return key;
}

// A new v3 certificate with a random 128-bit serial, the window [now, now + validity], the
// subject CN and the public key set; extensions and the signature are the caller's.
expected<x509_ptr> new_cert(std::string_view cn, sys_clock::time_point now,
                            std::chrono::hours validity, EVP_PKEY* key) {
  x509_ptr cert(X509_new());
  if (!cert) return ossl_error(errc::internal, "allocating a certificate");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1)
    return ossl_error(errc::internal, "setting the certificate version");

  bn_ptr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr)
    return ossl_error(errc::internal, "making a random serial number");

  auto start = std::chrono::floor<std::chrono::seconds>(now);
  auto end = start + validity;
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), sys_clock::to_time_t(start)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), sys_clock::to_time_t(end)) == nullptr)
    return ossl_error(errc::internal, "setting the validity window");

  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.data()),
                                 static_cast<int>(cn.size()), -1, 0) != 1)
    return ossl_error(errc::invalid_argument,
                      "the common name \"" + std::string(cn) + "\" is not valid");
  if (X509_set_pubkey(cert.get(), key) != 1)
    return ossl_error(errc::internal, "setting the public key");
  return cert;
}

expected<void> add_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  ext_ptr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return ossl_error(errc::internal,
                      std::string("adding the extension ") + OBJ_nid2sn(nid) + "=" + value);
  return {};
}

expected<void> add_san(X509* cert, const std::vector<std::string>& dns_names) {
  names_ptr names(GENERAL_NAMES_new());
  if (!names) return ossl_error(errc::internal, "allocating subjectAltName");
  for (const auto& dns : dns_names) {
    name_ptr name(GENERAL_NAME_new());
    // An IP address ("127.0.0.1", "::1") is an iPAddress entry: a client connecting to an IP
    // checks those (the simulation's webhook URL is https://127.0.0.1:PORT).
    if (ASN1_OCTET_STRING* ip = a2i_IPADDRESS(dns.c_str()); ip != nullptr) {
      if (!name) {
        ASN1_OCTET_STRING_free(ip);
        return ossl_error(errc::internal, "building subjectAltName");
      }
      GENERAL_NAME_set0_value(name.get(), GEN_IPADD, ip);
      if (sk_GENERAL_NAME_push(names.get(), name.get()) <= 0)
        return ossl_error(errc::internal, "building subjectAltName");
      name.release();
      continue;
    }
    ERR_clear_error();
    ia5_ptr value(ASN1_IA5STRING_new());
    if (!value || !name ||
        ASN1_STRING_set(value.get(), dns.data(), static_cast<int>(dns.size())) != 1)
      return ossl_error(errc::internal, "building subjectAltName");
    GENERAL_NAME_set0_value(name.get(), GEN_DNS, value.release());
    if (sk_GENERAL_NAME_push(names.get(), name.get()) <= 0)
      return ossl_error(errc::internal, "building subjectAltName");
    name.release();
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1)
    return ossl_error(errc::internal, "adding subjectAltName");
  return {};
}

sys_clock::time_point to_time_point(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  using namespace std::chrono;
  sys_days day =
      year_month_day{year{tm.tm_year + 1900}, month{static_cast<unsigned>(tm.tm_mon + 1)},
                     std::chrono::day{static_cast<unsigned>(tm.tm_mday)}};
  return sys_clock::time_point(day + hours{tm.tm_hour} + minutes{tm.tm_min} + seconds{tm.tm_sec});
}

bool cert_is_ca(X509* cert) {
  bc_ptr bc(static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(cert, NID_basic_constraints, nullptr, nullptr)));
  return bc && bc->ca != 0;
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

}  // namespace

expected<key_pair_pem> make_ca(std::string_view common_name, sys_clock::time_point now,
                               std::chrono::hours validity) {
  ERR_clear_error();
  if (common_name.empty() || common_name.size() > 64)
    return make_error(
        errc::invalid_argument,
        "the CA common name must be 1 to 64 characters, not " + std::to_string(common_name.size()));
  if (validity.count() <= 0)
    return make_error(errc::invalid_argument, "the CA validity must be positive");

  auto key = new_p256_key();
  if (!key) return key.error();
  auto cert = new_cert(common_name, now, validity, key->get());
  if (!cert) return cert.error();
  X509* x = cert->get();
  // Self-signed: the issuer is the subject.
  if (X509_set_issuer_name(x, X509_get_subject_name(x)) != 1)
    return ossl_error(errc::internal, "setting the CA issuer name");

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"}}) {
    if (auto r = add_ext(x, &ctx, nid, value); !r) return r.error();
  }
  if (X509_sign(x, key->get(), EVP_sha256()) <= 0)
    return ossl_error(errc::internal, "signing the CA certificate");
  return to_pem(x, key->get());
}

expected<key_pair_pem> make_serving_cert(const key_pair_pem& ca,
                                         const std::vector<std::string>& dns_names,
                                         sys_clock::time_point now, std::chrono::hours validity) {
  ERR_clear_error();
  if (dns_names.empty())
    return make_error(errc::invalid_argument, "a serving certificate needs at least one DNS name");
  for (const auto& name : dns_names) {
    if (name.empty() || name.find_first_of(", \t\r\n") != std::string::npos)
      return make_error(errc::invalid_argument, "\"" + name + "\" is not a DNS name");
  }
  if (dns_names.front().size() > 64)
    return make_error(errc::invalid_argument,
                      "the first DNS name \"" + dns_names.front() +
                          "\" is the common name and must be at most 64 characters");
  if (validity.count() <= 0)
    return make_error(errc::invalid_argument, "the serving certificate validity must be positive");

  auto ca_cert = read_cert(ca.cert, "the CA PEM");
  if (!ca_cert) return ca_cert.error();
  auto ca_key = read_key(ca.key, "the CA key PEM");
  if (!ca_key) return ca_key.error();
  if (!cert_is_ca(ca_cert->get()))
    return make_error(errc::invalid_argument,
                      "the CA certificate is not a CA (basicConstraints CA:TRUE missing)");
  if (X509_check_private_key(ca_cert->get(), ca_key->get()) != 1) {
    ERR_clear_error();
    return make_error(errc::invalid_argument, "the CA key does not match the CA certificate");
  }

  auto key = new_p256_key();
  if (!key) return key.error();
  auto cert = new_cert(dns_names.front(), now, validity, key->get());
  if (!cert) return cert.error();
  X509* x = cert->get();
  if (X509_set_issuer_name(x, X509_get_subject_name(ca_cert->get())) != 1)
    return ossl_error(errc::internal, "setting the issuer name");

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, ca_cert->get(), x, nullptr, nullptr, 0);
  for (auto [nid, value] :
       {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
        std::pair{NID_key_usage, "critical,digitalSignature"},
        std::pair{NID_ext_key_usage, "serverAuth"}, std::pair{NID_subject_key_identifier, "hash"},
        std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (auto r = add_ext(x, &ctx, nid, value); !r) return r.error();
  }
  if (auto r = add_san(x, dns_names); !r) return r.error();
  if (X509_sign(x, ca_key->get(), EVP_sha256()) <= 0)
    return ossl_error(errc::internal, "signing the serving certificate");
  return to_pem(x, key->get());
}

expected<cert_info> inspect_cert(std::string_view pem) {
  ERR_clear_error();
  auto cert = read_cert(pem, "the certificate PEM");
  if (!cert) return cert.error();
  X509* x = cert->get();
  cert_info info;
  info.not_before = to_time_point(X509_get0_notBefore(x));
  info.not_after = to_time_point(X509_get0_notAfter(x));
  info.is_ca = cert_is_ca(x);
  names_ptr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr)));
  if (names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
      if (name->type == GEN_IPADD) {
        const ASN1_OCTET_STRING* ip = name->d.iPAddress;
        char text[INET6_ADDRSTRLEN] = {};
        int len = ASN1_STRING_length(ip);
        if ((len == 4 || len == 16) &&
            inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(ip), text,
                      sizeof text) != nullptr)
          info.dns_names.emplace_back(text);
        continue;
      }
      if (name->type != GEN_DNS) continue;
      const ASN1_IA5STRING* dns = name->d.dNSName;
      info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                                  static_cast<size_t>(ASN1_STRING_length(dns)));
    }
  }
  ERR_clear_error();
  return info;
}

expected<bool> verify_signed_by(std::string_view cert_pem, std::string_view ca_pem) {
  ERR_clear_error();
  auto cert = read_cert(cert_pem, "the certificate PEM");
  if (!cert) return cert.error();
  auto ca = read_cert(ca_pem, "the CA PEM");
  if (!ca) return ca.error();
  if (X509_NAME_cmp(X509_get_issuer_name(cert->get()), X509_get_subject_name(ca->get())) != 0)
    return false;
  EVP_PKEY* ca_key = X509_get0_pubkey(ca->get());
  if (ca_key == nullptr)
    return ossl_error(errc::parse_error, "the CA PEM has no usable public key");
  bool ok = X509_verify(cert->get(), ca_key) == 1;
  ERR_clear_error();
  return ok;
}

bool needs_rotation(const cert_info& c, sys_clock::time_point now,
                    std::chrono::hours renew_before) {
  return now >= c.not_after - renew_before || now < c.not_before;
}

bool covers(const cert_info& c, const std::vector<std::string>& wanted_names) {
  for (const auto& wanted : wanted_names) {
    bool found = false;
    for (const auto& have : c.dns_names) {
      if (iequals(have, wanted)) {
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

std::vector<std::string> service_dns_names(std::string_view service, std::string_view ns) {
  std::string s(service);
  std::string with_ns = s + "." + std::string(ns);
  return {s, with_ns, with_ns + ".svc", with_ns + ".svc.cluster.local"};
}

}  // namespace tidesync::webhook
