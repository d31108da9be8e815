#include "runtime/transfer/remote.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace tidesync::transfer {
namespace {

std::string env_name(const std::string& remote, std::string_view key) {
  std::string out = "RCLONE_CONFIG_";
  for (char c : remote) {
    out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  out += '_';
  out += key;
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool valid_remote_name(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == ' ' || c == '+' || c == '@';
  });
}

}  // namespace

env_lookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

expected<location> parse_location(std::string_view text, const env_lookup& env) {
  location loc;
  loc.text = std::string(text);
  if (text.empty()) return make_error(errc::invalid_argument, "an empty path is not a location");
  const auto colon = text.find(':');
  const auto slash = text.find('/');
  if (colon == std::string_view::npos || (slash != std::string_view::npos && slash < colon)) {
    loc.kind = location_kind::local;
    loc.path = std::string(text);
    return loc;
  }
  const std::string name(text.substr(0, colon));
  if (!valid_remote_name(name)) {
    return make_error(errc::invalid_argument,
                      "\"" + loc.text +
                          "\": a remote name may hold letters, digits, '_', '-', '.', ' ', '+' "
                          "and '@' only; for a local path containing ':' write ./" +
                          loc.text);
  }
  loc.remote_name = name;
  const std::string type_var = env_name(name, "TYPE");
  auto type = env(type_var);
  if (!type || type->empty()) {
    return make_error(errc::config_error, "unknown remote \"" + name + "\": no " + type_var +
                                              " in the environment: set it, e.g. " + type_var +
                                              "=s3 " + env_name(name, "ACCESS_KEY_ID") + "=... " +
                                              env_name(name, "SECRET_ACCESS_KEY") + "=... " +
                                              env_name(name, "ENDPOINT") +
                                              "=https://s3.example.com");
  }
  if (lower(*type) != "s3") {
    return make_error(errc::config_error, "remote \"" + name + "\": " + type_var + "=" + *type +
                                              " is not supported by the native engine yet "
                                              "(supported: s3)");
  }
  loc.kind = location_kind::s3;

  // bucket/prefix
  std::string_view rest = text.substr(colon + 1);
  while (!rest.empty() && rest.front() == '/')
    rest.remove_prefix(1);
  const auto bslash = rest.find('/');
  loc.bucket = std::string(rest.substr(0, bslash));
  if (bslash != std::string_view::npos) {
    std::string prefix(rest.substr(bslash + 1));
    while (!prefix.empty() && prefix.back() == '/')
      prefix.pop_back();
    if (!prefix.empty()) prefix += '/';
    loc.prefix = std::move(prefix);
  }
  if (loc.bucket.empty()) {
    return make_error(errc::invalid_argument,
                      "\"" + loc.text + "\": name a bucket, e.g. " + name + ":my-bucket/path");
  }

  auto get = [&](std::string_view key) { return env(env_name(name, key)); };
  auto env_auth = get("ENV_AUTH");
  if (env_auth && lower(*env_auth) == "true") {
    return make_error(errc::config_error,
                      "remote \"" + name + "\": " + env_name(name, "ENV_AUTH") +
                          "=true is not supported by the native engine yet; set " +
                          env_name(name, "ACCESS_KEY_ID") + " and " +
                          env_name(name, "SECRET_ACCESS_KEY") + " instead");
  }
  auto key_id = get("ACCESS_KEY_ID");
  auto secret = get("SECRET_ACCESS_KEY");
  std::string missing;
  if (!key_id || key_id->empty()) missing += env_name(name, "ACCESS_KEY_ID");
  if (!secret || secret->empty()) {
    if (!missing.empty()) missing += " and ";
    missing += env_name(name, "SECRET_ACCESS_KEY");
  }
  if (!missing.empty()) {
    return make_error(errc::config_error,
                      "remote \"" + name + "\": missing credentials: set " + missing);
  }
  loc.s3.access_key_id = *key_id;
  loc.s3.secret_access_key = *secret;
  if (auto token = get("SESSION_TOKEN")) loc.s3.session_token = *token;
  if (auto region = get("REGION"); region && !region->empty()) loc.s3.region = *region;
  auto endpoint = get("ENDPOINT");
  if (!endpoint || endpoint->empty()) {
    auto provider = get("PROVIDER");
    if (provider && !provider->empty() && lower(*provider) != "aws") {
      return make_error(errc::config_error, "remote \"" + name + "\": provider " + *provider +
                                                " needs an endpoint: set " +
                                                env_name(name, "ENDPOINT"));
    }
    loc.s3.endpoint = "https://s3." + loc.s3.region + ".amazonaws.com";
  } else {
    loc.s3.endpoint = *endpoint;
    if (loc.s3.endpoint.find("://") == std::string::npos)
      loc.s3.endpoint = "https://" + loc.s3.endpoint;
    while (!loc.s3.endpoint.empty() && loc.s3.endpoint.back() == '/')
      loc.s3.endpoint.pop_back();
  }
  if (auto acl = get("ACL"); acl && !acl->empty()) loc.s3.acl = *acl;
  // rclone's default is path style (force_path_style = true).
  if (auto ps = get("FORCE_PATH_STYLE"); ps && !ps->empty()) {
    const auto v = lower(*ps);
    if (v == "true" || v == "1") {
      loc.s3.path_style = true;
    } else if (v == "false" || v == "0") {
      loc.s3.path_style = false;
    } else {
      return make_error(errc::config_error, env_name(name, "FORCE_PATH_STYLE") +
                                                " must be true or false, not \"" + *ps + "\"");
    }
  }
  return loc;
}

}  // namespace tidesync::transfer
