#include "actors/webhook_setup.hpp"

#include <map>

#include "runtime/base64.hpp"
#include "runtime/log.hpp"

namespace tidesync::actors {
namespace {

std::map<std::string, std::string> decoded_data(const json::value& secret) {
  std::map<std::string, std::string> out;
  if (const auto* data = secret.at("data"); data && data->is_object())
    for (const auto& [k, v] : data->as_object())
      if (v.is_string())
        if (auto d = base64::decode(v.as_string())) out[k] = std::move(*d);
  return out;
}

json::object encoded_data(const webhook::tls_material& m) {
  json::object data;
  for (const auto& [k, v] : webhook::to_secret_data(m))
    if (!v.empty()) data.set(k, base64::encode(v));
  return data;
}

std::string where(const std::string& ns) {
  return "Secret " + ns + "/" + std::string(webhook::k_tls_secret);
}

}  // namespace

expected<tls_result> ensure_webhook_tls(k8s::client& client, const std::string& ns,
                                        const std::vector<std::string>& names,
                                        std::chrono::system_clock::time_point now,
                                        const webhook::tls_policy& policy) {
  auto log = log::get("webhook");
  const std::string name(webhook::k_tls_secret);
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto secret = client.get_sync(k8s::resources::secrets(), ns, name);
    if (!secret && secret.error().code != errc::not_found)
      return make_error(secret.error().code, "reading " + where(ns) +
                                                 " (the controller needs get/create/update on "
                                                 "Secrets in its namespace): " +
                                                 secret.error().message);
    webhook::tls_material current;
    if (secret) current = webhook::from_secret_data(decoded_data(*secret));
    auto plan = webhook::plan_tls(current, names, now, policy);
    if (plan.action == webhook::tls_action::keep && !plan.new_report_key)
      return tls_result{std::move(current), false};
    auto next = webhook::carry_out(current, plan, names, now, policy);
    if (!next) return next.error();
    expected<json::value> written = json::value{};
    if (!secret) {
      json::value obj(json::object{
          {"apiVersion", "v1"},
          {"kind", "Secret"},
          {"metadata",
           json::object{{"name", name},
                        {"namespace", ns},
                        {"labels", json::object{{"app.kubernetes.io/name", "tidesync"}}}}},
          {"type", "Opaque"},
          {"data", encoded_data(*next)},
      });
      written = client.create_sync(k8s::resources::secrets(), ns, obj);
      if (!written && written.error().code == errc::already_exists) continue;  // read theirs
    } else {
      json::value obj = *secret;
      obj.as_object().set("data", encoded_data(*next));
      written = client.update_sync(k8s::resources::secrets(), ns, name, obj);
      if (!written && written.error().code == errc::conflict) continue;  // plan on theirs
    }
    if (!written)
      return make_error(written.error().code,
                        "writing " + where(ns) + ": " + written.error().message);
    if (plan.action != webhook::tls_action::keep)
      log->info("{}: {} ({})", where(ns),
                plan.action == webhook::tls_action::new_ca ? "made a new CA and serving certificate"
                                                           : "made a new serving certificate",
                plan.reason);
    if (plan.new_report_key) log->info("{}: made a new progress report key", where(ns));
    return tls_result{std::move(*next), plan.action != webhook::tls_action::keep};
  }
  return make_error(errc::conflict, where(ns) +
                                        " kept changing while it was being written: is another "
                                        "program writing it?");
}

expected<bool> ensure_webhook_registration(k8s::client& client,
                                           const config::webhook_registration& r) {
  const auto res = k8s::resources::mutatingwebhookconfigurations();
  auto want = config::mutating_webhook_configuration(r);
  auto have = client.get_sync(res, "", r.name);
  auto help = [&](const error& e, const char* what) {
    return make_error(e.code, std::string(what) + " MutatingWebhookConfiguration " + r.name +
                                  " (the controller needs get/create/update on "
                                  "mutatingwebhookconfigurations): " +
                                  e.message);
  };
  if (!have && have.error().code == errc::not_found) {
    auto c = client.create_sync(res, "", want);
    if (c) return true;
    if (c.error().code != errc::already_exists) return help(c.error(), "creating");
    have = client.get_sync(res, "", r.name);
  }
  if (!have) return help(have.error(), "reading");
  const auto* hooks = have->at("webhooks");
  const auto& wanted = want.at("webhooks")->as_array();
  // Compare what we set: the API server adds defaults (namespaceSelector, ...) we do not own.
  bool same = hooks != nullptr && hooks->is_array() && hooks->as_array().size() == wanted.size();
  for (size_t i = 0; same && i < wanted.size(); ++i) {
    const auto& h = hooks->as_array()[i];
    for (const auto& [k, v] : wanted[i].as_object()) {
      const auto* got = h.at(k);
      if (got == nullptr || json::dump(*got) != json::dump(v)) {
        same = false;
        break;
      }
    }
  }
  if (same) return false;
  json::value obj = *have;
  obj.as_object().set("webhooks", *want.at("webhooks"));
  auto u = client.update_sync(res, "", r.name, obj);
  if (!u) return help(u.error(), "updating");
  log::get("webhook")->info("MutatingWebhookConfiguration {} updated", r.name);
  return true;
}

}  // namespace tidesync::actors
