#include "runtime/webhook/tls_secret.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace tidesync::webhook {
namespace {

std::string hex(const unsigned char* p, size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(digits[p[i] >> 4]);
    out.push_back(digits[p[i] & 15]);
  }
  return out;
}

bool is_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string get(const std::map<std::string, std::string>& m, const char* k) {
  auto it = m.find(k);
  return it == m.end() ? std::string() : it->second;
}

}  // namespace

tls_material from_secret_data(const std::map<std::string, std::string>& data) {
  tls_material m;
  m.ca = {get(data, "ca.crt"), get(data, "ca.key")};
  m.serving = {get(data, "tls.crt"), get(data, "tls.key")};
  m.report_key = get(data, "report.key");
  m.previous_ca = get(data, "ca-previous.crt");
  return m;
}

std::map<std::string, std::string> to_secret_data(const tls_material& m) {
  return {{"ca.crt", m.ca.cert},        {"ca.key", m.ca.key},
          {"tls.crt", m.serving.cert},  {"tls.key", m.serving.key},
          {"report.key", m.report_key}, {"ca-previous.crt", m.previous_ca}};
}

std::string ca_bundle(const tls_material& m, std::chrono::system_clock::time_point now) {
  std::string out = m.ca.cert;
  if (auto prev = inspect_cert(m.previous_ca);
      prev && prev->is_ca && prev->not_before <= now && now < prev->not_after) {
    if (!out.empty() && out.back() != '\n') out.push_back('\n');
    out += m.previous_ca;
  }
  return out;
}

tls_plan plan_tls(const tls_material& current, const std::vector<std::string>& names,
                  std::chrono::system_clock::time_point now, const tls_policy& policy) {
  tls_plan p;
  p.new_report_key = current.report_key.size() != 64 || !is_hex(current.report_key);
  auto ca = inspect_cert(current.ca.cert);
  if (current.ca.cert.empty() || current.ca.key.empty()) {
    p.action = tls_action::new_ca;
    p.reason = "no CA yet";
  } else if (!ca || !ca->is_ca) {
    p.action = tls_action::new_ca;
    p.reason = "the CA certificate does not parse or is not a CA";
  } else if (needs_rotation(*ca, now, policy.renew_before)) {
    p.action = tls_action::new_ca;
    p.reason =
        "the CA expires within " + std::to_string(policy.renew_before.count() / 24) + " days";
  }
  if (p.action == tls_action::new_ca) return p;
  auto serving = inspect_cert(current.serving.cert);
  auto signed_by = verify_signed_by(current.serving.cert, current.ca.cert);
  if (current.serving.cert.empty() || current.serving.key.empty() || !serving) {
    p.action = tls_action::new_serving;
    p.reason = "no serving certificate yet";
  } else if (!signed_by || !*signed_by) {
    p.action = tls_action::new_serving;
    p.reason = "the serving certificate is not signed by the CA";
  } else if (!covers(*serving, names)) {
    p.action = tls_action::new_serving;
    p.reason = "the serving certificate does not cover every name of the webhook";
  } else if (needs_rotation(*serving, now, policy.renew_before)) {
    p.action = tls_action::new_serving;
    p.reason = "the serving certificate expires within " +
               std::to_string(policy.renew_before.count() / 24) + " days";
  }
  return p;
}

expected<tls_material> carry_out(const tls_material& current, const tls_plan& plan,
                                 const std::vector<std::string>& names,
                                 std::chrono::system_clock::time_point now,
                                 const tls_policy& policy) {
  tls_material next = current;
  const auto from = now - std::chrono::minutes(1);
  if (plan.action == tls_action::new_ca) {
    auto ca = make_ca("tidesync-webhook-ca", from, policy.ca_validity);
    if (!ca) return ca.error();
    auto old = inspect_cert(current.ca.cert);
    next.previous_ca = old && old->is_ca ? current.ca.cert : std::string();
    next.ca = std::move(*ca);
  }
  if (plan.action != tls_action::keep) {
    auto serving = make_serving_cert(next.ca, names, from, policy.serving_validity);
    if (!serving) return serving.error();
    next.serving = std::move(*serving);
  }
  if (plan.new_report_key) next.report_key = random_hex(32);
  return next;
}

std::string random_hex(size_t n) {
  std::string bytes(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("RAND_bytes failed");
  return hex(reinterpret_cast<const unsigned char*>(bytes.data()), n);
}

std::string report_token(std::string_view report_key, std::string_view ns, std::string_view pfs,
                         std::string_view report_id) {
  std::string msg;
  msg.append(ns).push_back('\n');
  msg.append(pfs).push_back('\n');
  msg.append(report_id);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), report_key.data(), static_cast<int>(report_key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len);
  return std::string(report_id) + "." + hex(mac, len);
}

std::optional<std::string> check_report_token(std::string_view report_key, std::string_view token,
                                              std::string_view ns, std::string_view pfs) {
  auto dot = token.find('.');
  if (report_key.empty() || dot == std::string_view::npos || dot == 0) return std::nullopt;
  std::string id(token.substr(0, dot));
  if (id.find('\n') != std::string::npos) return std::nullopt;
  auto want = report_token(report_key, ns, pfs, id);
  if (want.size() != token.size() || CRYPTO_memcmp(want.data(), token.data(), want.size()) != 0)
    return std::nullopt;
  return id;
}

}  // namespace tidesync::webhook
