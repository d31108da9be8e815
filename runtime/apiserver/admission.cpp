#include "runtime/apiserver/admission.hpp"

#include <httplib.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "runtime/base64.hpp"
#include "runtime/k8s/selector.hpp"
#include "runtime/log.hpp"

namespace tidesync::apiserver {
namespace {

error status_error(int status, std::string reason, std::string message) {
  error e = make_error(status == 403   ? errc::forbidden
                       : status >= 500 ? errc::internal
                                       : errc::bad_request,
                       std::move(message));
  e.http_status = status;
  e.reason = std::move(reason);
  return e;
}

bool listed(const json::value* list, std::string_view want) {
  if (list == nullptr || !list->is_array()) return false;
  return std::any_of(list->as_array().begin(), list->as_array().end(), [&](const json::value& v) {
    return v.is_string() && (v.as_string() == "*" || v.as_string() == want);
  });
}

bool rules_match(const json::value& hook, const resource_type& t) {
  const auto* rules = hook.at("rules");
  if (rules == nullptr || !rules->is_array()) return false;
  for (const auto& r : rules->as_array()) {
    if (!listed(r.at("operations"), "CREATE")) continue;
    if (!listed(r.at("apiGroups"), t.res.group)) continue;
    if (!listed(r.at("apiVersions"), t.res.version)) continue;
    if (!listed(r.at("resources"), t.res.plural)) continue;
    auto scope = r.get_string("scope");
    if (scope == "Namespaced" && !t.res.namespaced) continue;
    if (scope == "Cluster" && t.res.namespaced) continue;
    return true;
  }
  return false;
}

std::map<std::string, std::string> labels_of(const json::value& obj) {
  std::map<std::string, std::string> out;
  if (const auto* l = obj.at_path({"metadata", "labels"}); l && l->is_object())
    for (const auto& [k, v] : l->as_object())
      if (v.is_string()) out[k] = v.as_string();
  return out;
}

// false when the selector is malformed (such a webhook is skipped, as a broken selector
// matches nothing).
bool selector_matches(const json::value* selector, const std::map<std::string, std::string>& l) {
  if (selector == nullptr || selector->is_null()) return true;
  auto s = k8s::label_selector::from_json(*selector);
  return s && s->matches(l);
}

struct x509_store_deleter {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};

// An X509_STORE with every certificate of the PEM bundle, or null.
X509_STORE* trust_store(const std::string& pem) {
  std::unique_ptr<X509_STORE, x509_store_deleter> st(X509_STORE_new());
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    if (X509_STORE_add_cert(st.get(), cert) == 1) ++added;
    X509_free(cert);
  }
  BIO_free(bio);
  ERR_clear_error();
  return added > 0 ? st.release() : nullptr;
}

std::string request_uid() {
  unsigned char b[16];
  RAND_bytes(b, sizeof b);
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

// One call; the AdmissionReview response, or why the call failed.
expected<json::value> call(const json::value& hook, const json::value& review) {
  const auto* cc = hook.at("clientConfig");
  if (cc == nullptr || !cc->is_object())
    return make_error(errc::invalid, "the webhook has no clientConfig");
  auto url = std::string(cc->get_string("url"));
  if (url.empty())
    return make_error(errc::unavailable,
                      "only clientConfig.url can be reached in the simulation (no Service "
                      "network)");
  if (url.rfind("https://", 0) != 0)
    return make_error(errc::invalid, "clientConfig.url must be https://");
  std::string rest = url.substr(8);
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string host = authority;
  int port = 443;
  if (auto colon = authority.rfind(':');
      colon != std::string::npos && authority.find(']') == std::string::npos) {
    host = authority.substr(0, colon);
    port = std::atoi(authority.c_str() + colon + 1);
  }
  auto bundle = base64::decode(cc->get_string("caBundle"));
  X509_STORE* trust = bundle ? trust_store(*bundle) : nullptr;
  if (trust == nullptr)
    return make_error(errc::invalid, "clientConfig.caBundle holds no PEM certificate");
  httplib::SSLClient client(host, port);
  client.set_ca_cert_store(trust);  // the client owns it from here
  client.enable_server_certificate_verification(true);
  int64_t timeout = 10;
  if (const auto* t = hook.at("timeoutSeconds"); t != nullptr && t->is_int())
    timeout = std::clamp<int64_t>(t->as_int(), 1, 30);
  client.set_connection_timeout(static_cast<time_t>(timeout));
  client.set_read_timeout(static_cast<time_t>(timeout));
  client.set_write_timeout(static_cast<time_t>(timeout));
  auto res = client.Post(path, json::dump(review), "application/json");
  if (!res)
    return make_error(errc::unavailable, "calling " + url + ": " + httplib::to_string(res.error()));
  if (res->status != 200)
    return make_error(errc::unavailable,
                      "calling " + url + ": HTTP " + std::to_string(res->status));
  auto body = json::parse(res->body);
  if (!body || !body->is_object() || body->at("response") == nullptr)
    return make_error(errc::invalid, "the webhook's answer is not an AdmissionReview");
  return std::move(*body);
}

// A webhook may see a dry-run request when it declares it has no side effects (None), or none
// on a dry run (NoneOnDryRun); "Some", "Unknown" (admissionregistration v1beta1) or no
// declaration at all means it might change something outside the object.
bool side_effect_free_on_dry_run(const json::value& hook) {
  auto se = hook.get_string("sideEffects");
  return se == "None" || se == "NoneOnDryRun";
}

// The request's options as the AdmissionReview carries them.
json::value create_options(bool dry_run) {
  json::object o{{"apiVersion", "meta.k8s.io/v1"}, {"kind", "CreateOptions"}};
  if (dry_run) o.set("dryRun", json::array{"All"});
  return o;
}

}  // namespace

expected<json::value> admit_create(const store& st, const resource_type& t, std::string_view ns,
                                   json::value obj, write_mode mode) {
  const bool dry_run = mode == write_mode::dry_run;
  auto mwc = st.find_type("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations");
  if (!mwc) return obj;
  auto configs = st.list(*mwc, "", {});
  if (!configs || configs->items.empty()) return obj;
  std::map<std::string, std::string> ns_labels;
  if (!ns.empty()) {
    if (auto nst = st.find_type("", "v1", "namespaces"))
      if (auto n = st.get(*nst, "", ns)) ns_labels = labels_of((*n)->obj);
    ns_labels.emplace("kubernetes.io/metadata.name", std::string(ns));
  }
  auto log = log::get("apiserver");
  for (const auto& c : configs->items) {
    const auto* hooks = c->obj.at("webhooks");
    if (hooks == nullptr || !hooks->is_array()) continue;
    for (const auto& hook : hooks->as_array()) {
      const std::string name(hook.get_string("name"));
      if (!rules_match(hook, t)) continue;
      if (!selector_matches(hook.at("objectSelector"), labels_of(obj))) continue;
      if (t.res.namespaced && !selector_matches(hook.at("namespaceSelector"), ns_labels)) continue;
      // kube-apiserver checks this before calling, and the failurePolicy does not apply.
      if (dry_run && !side_effect_free_on_dry_run(hook))
        return status_error(400, "BadRequest",
                            "admission webhook \"" + name + "\" does not support dry run");
      const std::string uid = request_uid();
      json::value review(json::object{
          {"apiVersion", "admission.k8s.io/v1"},
          {"kind", "AdmissionReview"},
          {"request",
           json::object{
               {"uid", uid},
               {"kind",
                json::object{
                    {"group", t.res.group}, {"version", t.res.version}, {"kind", t.res.kind}}},
               {"resource", json::object{{"group", t.res.group},
                                         {"version", t.res.version},
                                         {"resource", t.res.plural}}},
               {"name", std::string(obj.at_path({"metadata", "name"})
                                        ? obj.at_path({"metadata", "name"})->as_string()
                                        : "")},
               {"namespace", std::string(ns)},
               {"operation", "CREATE"},
               {"userInfo", json::object{{"username", "tidesync-simulate"}}},
               {"object", obj},
               {"oldObject", json::value()},
               {"dryRun", dry_run},
               {"options", create_options(dry_run)},
           }},
      });
      auto answer = call(hook, review);
      const bool ignore = hook.get_string("failurePolicy") == "Ignore";
      auto failed = [&](const std::string& why) -> expected<json::value> {
        if (ignore) {
          log->warn("mutating webhook {} failed (failurePolicy Ignore: admitted without it): {}",
                    name, why);
          return json::value();
        }
        return status_error(
            500, "InternalError",
            "Internal error occurred: failed calling webhook \"" + name + "\": " + why);
      };
      if (!answer) {
        auto f = failed(answer.error().message);
        if (!f) return f.error();
        continue;
      }
      const auto& response = *answer->at("response");
      if (response.get_string("uid") != uid) {
        auto f = failed("the response's uid does not match the request's");
        if (!f) return f.error();
        continue;
      }
      const auto* allowed = response.at("allowed");
      if (allowed == nullptr || !allowed->is_bool() || !allowed->as_bool()) {
        int code = 400;
        std::string message;
        if (const auto* s = response.at("status"); s != nullptr && s->is_object()) {
          if (const auto* c2 = s->at("code"); c2 != nullptr && c2->is_int() && c2->as_int() >= 400)
            code = static_cast<int>(c2->as_int());
          message = std::string(s->get_string("message"));
        }
        return status_error(code, code == 403 ? "Forbidden" : "BadRequest",
                            "admission webhook \"" + name + "\" denied the request" +
                                (message.empty() ? "" : ": " + message));
      }
      if (const auto* p = response.at("patch"); p != nullptr && p->is_string()) {
        if (response.get_string("patchType") != "JSONPatch") {
          auto f = failed("patchType must be JSONPatch");
          if (!f) return f.error();
          continue;
        }
        auto text = base64::decode(p->as_string());
        auto patch = json::parse(text.value_or(""));
        if (!text || !patch) {
          auto f = failed("the patch is not base64 JSON");
          if (!f) return f.error();
          continue;
        }
        auto patched = json::json_patch(obj, *patch);
        if (!patched) {
          auto f = failed("the patch does not apply: " + patched.error().message);
          if (!f) return f.error();
          continue;
        }
        obj = std::move(*patched);
      }
    }
  }
  return obj;
}

}  // namespace tidesync::apiserver
