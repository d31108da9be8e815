#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "runtime/webhook/certs.hpp"

namespace tidesync::webhook {
namespace {

using namespace std::chrono_literals;
using std::chrono::hours;
using std::chrono::system_clock;

constexpr hours kDay{24};

// A fixed instant with a sub-second part: certificates hold whole seconds.
system_clock::time_point fixed_now() {
  return system_clock::time_point(std::chrono::seconds(1'700'000'000)) + 250ms;
}
system_clock::time_point whole(system_clock::time_point t) {
  return std::chrono::floor<std::chrono::seconds>(t);
}

key_pair_pem ca_or_die(std::string_view cn = "tidesync-webhook-ca") {
  auto ca = make_ca(cn, fixed_now(), 3650 * kDay);
  EXPECT_TRUE(ca.has_value()) << ca.error().to_string();
  return ca ? *ca : key_pair_pem{};
}

std::vector<std::string> names() {
  return service_dns_names("tidesync-webhook", "tidesync-system");
}

TEST(WebhookCerts, ServiceDnsNames) {
  EXPECT_EQ(service_dns_names("svc", "ns"),
            (std::vector<std::string>{"svc", "svc.ns", "svc.ns.svc", "svc.ns.svc.cluster.local"}));
}

TEST(WebhookCerts, CaIsASelfSignedCaWithTheAskedWindow) {
  auto ca = ca_or_die();
  EXPECT_NE(ca.cert.find("-----BEGIN CERTIFICATE-----"), std::string::npos);
  EXPECT_NE(ca.key.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  auto info = inspect_cert(ca.cert);
  ASSERT_TRUE(info.has_value()) << info.error().to_string();
  EXPECT_TRUE(info->is_ca);
  EXPECT_TRUE(info->dns_names.empty());
  EXPECT_EQ(info->not_before, whole(fixed_now()));
  EXPECT_EQ(info->not_after, whole(fixed_now()) + 3650 * kDay);
  auto self = verify_signed_by(ca.cert, ca.cert);
  ASSERT_TRUE(self.has_value()) << self.error().to_string();
  EXPECT_TRUE(*self);
}

TEST(WebhookCerts, CaHasTheV3Extensions) {
  auto ca = ca_or_die();
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(ca.cert.data(), static_cast<int>(ca.cert.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> x(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
  ASSERT_TRUE(x);
  EXPECT_EQ(X509_get_version(x.get()), X509_VERSION_3);
  EXPECT_TRUE(X509_get_key_usage(x.get()) & KU_KEY_CERT_SIGN);
  EXPECT_TRUE(X509_get_key_usage(x.get()) & KU_CRL_SIGN);
  EXPECT_NE(X509_get0_subject_key_id(x.get()), nullptr);
  int crit = 0;
  void* bc = X509_get_ext_d2i(x.get(), NID_basic_constraints, &crit, nullptr);
  ASSERT_NE(bc, nullptr);
  BASIC_CONSTRAINTS_free(static_cast<BASIC_CONSTRAINTS*>(bc));
  EXPECT_EQ(crit, 1);
  // Two CAs never share a serial (random 128 bits).
  auto other = ca_or_die();
  std::unique_ptr<BIO, decltype(&BIO_free)> bio2(
      BIO_new_mem_buf(other.cert.data(), static_cast<int>(other.cert.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> y(
      PEM_read_bio_X509(bio2.get(), nullptr, nullptr, nullptr), X509_free);
  ASSERT_TRUE(y);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(x.get()), X509_get0_serialNumber(y.get())), 0);
}

TEST(WebhookCerts, ServingCertVerifiesAgainstItsCaOnly) {
  auto ca = ca_or_die();
  auto other = ca_or_die();  // same name, different key
  auto other_name = ca_or_die("another-ca");
  auto serving = make_serving_cert(ca, names(), fixed_now(), 365 * kDay);
  ASSERT_TRUE(serving.has_value()) << serving.error().to_string();

  auto mine = verify_signed_by(serving->cert, ca.cert);
  ASSERT_TRUE(mine.has_value()) << mine.error().to_string();
  EXPECT_TRUE(*mine);
  auto theirs = verify_signed_by(serving->cert, other.cert);
  ASSERT_TRUE(theirs.has_value()) << theirs.error().to_string();
  EXPECT_FALSE(*theirs) << "same issuer name, wrong key";
  auto named = verify_signed_by(serving->cert, other_name.cert);
  ASSERT_TRUE(named.has_value());
  EXPECT_FALSE(*named) << "wrong issuer name";
}

TEST(WebhookCerts, ServingCertHasExactlyTheGivenNamesAndWindow) {
  auto ca = ca_or_die();
  auto serving = make_serving_cert(ca, names(), fixed_now(), 365 * kDay);
  ASSERT_TRUE(serving.has_value()) << serving.error().to_string();
  auto info = inspect_cert(serving->cert);
  ASSERT_TRUE(info.has_value()) << info.error().to_string();
  EXPECT_FALSE(info->is_ca);
  EXPECT_EQ(info->dns_names, names());
  EXPECT_EQ(info->not_before, whole(fixed_now()));
  EXPECT_EQ(info->not_after, whole(fixed_now()) + 365 * kDay);
  EXPECT_TRUE(covers(*info, {"tidesync-webhook.tidesync-system.svc"}));
  EXPECT_TRUE(covers(*info, names()));
}

TEST(WebhookCerts, ServingCertHasTheServerExtensions) {
  auto ca = ca_or_die();
  auto serving = make_serving_cert(ca, names(), fixed_now(), 365 * kDay);
  ASSERT_TRUE(serving.has_value());
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(serving->cert.data(), static_cast<int>(serving->cert.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> x(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
  ASSERT_TRUE(x);
  EXPECT_TRUE(X509_get_extended_key_usage(x.get()) & XKU_SSL_SERVER);
  EXPECT_TRUE(X509_get_key_usage(x.get()) & KU_DIGITAL_SIGNATURE);
  EXPECT_FALSE(X509_get_key_usage(x.get()) & KU_KEY_CERT_SIGN);
  EXPECT_NE(X509_get0_authority_key_id(x.get()), nullptr);
  EXPECT_EQ(X509_check_ca(x.get()), 0);
  EXPECT_EQ(X509_check_host(x.get(), "tidesync-webhook.tidesync-system.svc", 0, 0, nullptr), 1);
  EXPECT_NE(X509_check_host(x.get(), "other.tidesync-system.svc", 0, 0, nullptr), 1);
}

TEST(WebhookCerts, ServingCertAndKeyLoadBackAndMatch) {
  auto ca = ca_or_die();
  auto serving = make_serving_cert(ca, names(), fixed_now(), 365 * kDay);
  ASSERT_TRUE(serving.has_value());
  std::unique_ptr<BIO, decltype(&BIO_free)> cbio(
      BIO_new_mem_buf(serving->cert.data(), static_cast<int>(serving->cert.size())), BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> kbio(
      BIO_new_mem_buf(serving->key.data(), static_cast<int>(serving->key.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr), X509_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  ASSERT_TRUE(cert);
  ASSERT_TRUE(key);
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "EC"));
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);

  // The CA's key does not match the serving certificate.
  std::unique_ptr<BIO, decltype(&BIO_free)> cabio(
      BIO_new_mem_buf(ca.key.data(), static_cast<int>(ca.key.size())), BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> ca_key(
      PEM_read_bio_PrivateKey(cabio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  ASSERT_TRUE(ca_key);
  EXPECT_NE(X509_check_private_key(cert.get(), ca_key.get()), 1);
  ERR_clear_error();
}

TEST(WebhookCerts, ServingCertLoadsIntoAnSslContext) {
  auto ca = ca_or_die();
  auto serving = make_serving_cert(ca, names(), system_clock::now(), 365 * kDay);
  ASSERT_TRUE(serving.has_value());
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_server_method()),
                                                        SSL_CTX_free);
  ASSERT_TRUE(ctx);
  std::unique_ptr<BIO, decltype(&BIO_free)> cbio(
      BIO_new_mem_buf(serving->cert.data(), static_cast<int>(serving->cert.size())), BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> kbio(
      BIO_new_mem_buf(serving->key.data(), static_cast<int>(serving->key.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr), X509_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  ASSERT_TRUE(cert && key);
  EXPECT_EQ(SSL_CTX_use_certificate(ctx.get(), cert.get()), 1);
  EXPECT_EQ(SSL_CTX_use_PrivateKey(ctx.get(), key.get()), 1);
  EXPECT_EQ(SSL_CTX_check_private_key(ctx.get()), 1);

  // And a client trusting only the CA accepts the chain (what the kube-apiserver checks).
  std::unique_ptr<BIO, decltype(&BIO_free)> cabio(
      BIO_new_mem_buf(ca.cert.data(), static_cast<int>(ca.cert.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> ca_cert(
      PEM_read_bio_X509(cabio.get(), nullptr, nullptr, nullptr), X509_free);
  ASSERT_TRUE(ca_cert);
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  ASSERT_EQ(X509_STORE_add_cert(store.get(), ca_cert.get()), 1);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> vctx(X509_STORE_CTX_new(),
                                                                       X509_STORE_CTX_free);
  ASSERT_EQ(X509_STORE_CTX_init(vctx.get(), store.get(), cert.get(), nullptr), 1);
  X509_STORE_CTX_set_purpose(vctx.get(), X509_PURPOSE_SSL_SERVER);
  EXPECT_EQ(X509_verify_cert(vctx.get()), 1)
      << X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx.get()));
}

TEST(WebhookCerts, NeedsRotationAtTheEdges) {
  cert_info c;
  c.not_before = fixed_now();
  c.not_after = fixed_now() + 365 * kDay;
  const hours window = 30 * kDay;
  EXPECT_TRUE(needs_rotation(c, c.not_after - 29 * kDay, window));
  EXPECT_FALSE(needs_rotation(c, c.not_after - 31 * kDay, window));
  EXPECT_TRUE(needs_rotation(c, c.not_after - 30 * kDay, window)) << "the edge itself rotates";
  EXPECT_FALSE(needs_rotation(c, c.not_after - 30 * kDay - 1s, window));
  EXPECT_TRUE(needs_rotation(c, c.not_after + 1s, window)) << "expired";
  EXPECT_TRUE(needs_rotation(c, c.not_before - 1s, window)) << "not yet valid";
  EXPECT_FALSE(needs_rotation(c, c.not_before, window));
}

TEST(WebhookCerts, NeedsRotationOnAMadeCert) {
  auto ca = ca_or_die();
  auto serving = make_serving_cert(ca, names(), fixed_now(), 90 * kDay);
  ASSERT_TRUE(serving.has_value());
  auto info = inspect_cert(serving->cert);
  ASSERT_TRUE(info.has_value());
  EXPECT_FALSE(needs_rotation(*info, fixed_now() + 59 * kDay, 30 * kDay));
  EXPECT_TRUE(needs_rotation(*info, fixed_now() + 61 * kDay, 30 * kDay));
}

TEST(WebhookCerts, Covers) {
  cert_info c;
  c.dns_names = {"a.ns.svc", "a.ns"};
  EXPECT_TRUE(covers(c, {}));
  EXPECT_TRUE(covers(c, {"a.ns"}));
  EXPECT_TRUE(covers(c, {"A.NS.svc", "a.ns"})) << "DNS names compare case-insensitively";
  EXPECT_FALSE(covers(c, {"a.ns", "a.ns.svc.cluster.local"}));
  EXPECT_FALSE(covers(c, {"a"}));
  EXPECT_FALSE(covers(cert_info{}, {"a"}));
}

TEST(WebhookCerts, GarbageIsAnError) {
  auto info = inspect_cert("not a certificate");
  ASSERT_FALSE(info.has_value());
  EXPECT_EQ(info.error().code, errc::parse_error);
  EXPECT_NE(info.error().message.find("does not parse"), std::string::npos) << info.error().message;

  auto ca = ca_or_die();
  auto bad = verify_signed_by(ca.cert, "garbage");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("the CA PEM does not parse"), std::string::npos)
      << bad.error().message;

  auto serving = make_serving_cert(key_pair_pem{"garbage", ca.key}, names(), fixed_now(), kDay);
  ASSERT_FALSE(serving.has_value());
  EXPECT_EQ(serving.error().code, errc::parse_error);
  EXPECT_NE(serving.error().message.find("the CA PEM does not parse: "), std::string::npos)
      << serving.error().message;
}

TEST(WebhookCerts, RejectsBadInput) {
  auto ca = ca_or_die();
  auto other = ca_or_die();
  EXPECT_EQ(make_ca("", fixed_now(), kDay).error().code, errc::invalid_argument);
  EXPECT_EQ(make_ca("ca", fixed_now(), hours{0}).error().code, errc::invalid_argument);
  EXPECT_EQ(make_serving_cert(ca, {}, fixed_now(), kDay).error().code, errc::invalid_argument);
  EXPECT_EQ(make_serving_cert(ca, {"a,b"}, fixed_now(), kDay).error().code, errc::invalid_argument);
  EXPECT_EQ(make_serving_cert(ca, {"a"}, fixed_now(), hours{-1}).error().code,
            errc::invalid_argument);
  auto mismatched = make_serving_cert(key_pair_pem{ca.cert, other.key}, {"a"}, fixed_now(), kDay);
  ASSERT_FALSE(mismatched.has_value());
  EXPECT_NE(mismatched.error().message.find("does not match"), std::string::npos)
      << mismatched.error().message;

  // A serving certificate cannot sign another.
  auto serving = make_serving_cert(ca, {"a"}, fixed_now(), kDay);
  ASSERT_TRUE(serving.has_value());
  auto chained = make_serving_cert(*serving, {"b"}, fixed_now(), kDay);
  ASSERT_FALSE(chained.has_value());
  EXPECT_NE(chained.error().message.find("not a CA"), std::string::npos) << chained.error().message;
}

}  // namespace
}  // namespace tidesync::webhook
