#include "runtime/transfer/remote.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "runtime/transfer/crypt.hpp"

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

expected<location> parse_location_at(std::string_view text, const env_lookup& env, int depth);

using getter = std::function<std::optional<std::string>(std::string_view)>;

std::string trim_slashes(std::string_view p) {
  while (!p.empty() && p.front() == '/')
    p.remove_prefix(1);
  while (!p.empty() && p.back() == '/')
    p.remove_suffix(1);
  return std::string(p);
}

// An rclone-obscured secret from NAME_KEY, or a plain one from the file NAME_KEY_FILE (a
// mounted Secret). `required` makes a missing one an error.
expected<std::string> secret_value(const std::string& name, std::string_view key, const getter& get,
                                   bool required) {
  const std::string file_key = std::string(key) + "_FILE";
  if (auto file = get(file_key); file && !file->empty()) {
    std::ifstream in(*file, std::ios::binary);
    if (!in) {
      return make_error(errc::config_error, "remote \"" + name + "\": cannot read " +
                                                env_name(name, file_key) + " (\"" + *file + "\")");
    }
    std::string v((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!v.empty() && (v.back() == '\n' || v.back() == '\r'))
      v.pop_back();
    if (v.empty() && required) {
      return make_error(errc::config_error, "remote \"" + name + "\": the file named by " +
                                                env_name(name, file_key) + " is empty");
    }
    return v;
  }
  auto v = get(key);
  if (!v || v->empty()) {
    if (!required) return std::string{};
    return make_error(errc::config_error,
                      "remote \"" + name + "\": missing " + env_name(name, key) +
                          " (rclone-obscured, as `rclone "
                          "obscure` prints it) or " +
                          env_name(name, file_key) + " (a file holding it in plain text)");
  }
  auto plain = crypt::reveal(*v);
  if (!plain) {
    return make_error(errc::config_error, "remote \"" + name + "\": " + env_name(name, key) +
                                              " is not an rclone-obscured value: run `rclone "
                                              "obscure` on the secret, or use " +
                                              env_name(name, file_key));
  }
  return *plain;
}

expected<location> parse_http(location loc, const std::string& name, std::string_view rest,
                              const getter& get) {
  auto url = get("URL");
  if (!url || url->empty()) {
    return make_error(errc::config_error, "remote \"" + name + "\": missing " +
                                              env_name(name, "URL") +
                                              ", the base URL, e.g. https://example.com/files/");
  }
  if (url->rfind("http://", 0) != 0 && url->rfind("https://", 0) != 0) {
    return make_error(errc::config_error,
                      env_name(name, "URL") + " must start with http:// or https://");
  }
  loc.kind = location_kind::http;
  loc.remote_name = name;
  std::string base = *url;
  if (base.back() != '/') base += '/';
  while (!rest.empty() && rest.front() == '/')
    rest.remove_prefix(1);
  loc.url = base + std::string(rest);
  return loc;
}

expected<location> parse_sftp(location loc, const std::string& name, std::string_view rest,
                              const getter& get) {
  loc.kind = location_kind::sftp;
  loc.remote_name = name;
  auto host = get("HOST");
  if (!host || host->empty()) {
    return make_error(errc::config_error,
                      "remote \"" + name + "\": missing " + env_name(name, "HOST"));
  }
  loc.sftp.host = *host;
  if (auto port = get("PORT"); port && !port->empty()) {
    char* end = nullptr;
    const long p = std::strtol(port->c_str(), &end, 10);
    if (*end != '\0' || p < 1 || p > 65535) {
      return make_error(errc::config_error,
                        env_name(name, "PORT") + " must be a port number, not \"" + *port + "\"");
    }
    loc.sftp.port = static_cast<int>(p);
  }
  auto user = get("USER");
  if (!user || user->empty()) {
    return make_error(errc::config_error,
                      "remote \"" + name + "\": missing " + env_name(name, "USER"));
  }
  loc.sftp.user = *user;
  auto pass = secret_value(name, "PASS", get, false);
  if (!pass) return pass.error();
  loc.sftp.password = *pass;
  if (auto key = get("KEY_FILE")) loc.sftp.key_file = *key;
  if (auto kh = get("KNOWN_HOSTS_FILE")) loc.sftp.known_hosts_file = *kh;
  if (loc.sftp.password.empty() && loc.sftp.key_file.empty()) {
    return make_error(errc::config_error, "remote \"" + name + "\": set " +
                                              env_name(name, "KEY_FILE") + " or " +
                                              env_name(name, "PASS"));
  }
  std::string path(rest);
  while (path.size() > 1 && path.back() == '/')
    path.pop_back();
  loc.path = path;
  return loc;
}

expected<location> parse_crypt(location loc, const std::string& name, std::string_view rest,
                               const getter& get, const env_lookup& env, int depth) {
  loc.kind = location_kind::crypt;
  loc.remote_name = name;
  if (depth >= 4) {
    return make_error(errc::config_error,
                      "remote \"" + name + "\": crypt remotes nest more than 4 deep (a loop?)");
  }
  auto inner_text = get("REMOTE");
  if (!inner_text || inner_text->empty()) {
    return make_error(errc::config_error, "remote \"" + name + "\": missing " +
                                              env_name(name, "REMOTE") +
                                              ", the remote holding the encrypted data, e.g. "
                                              "s3remote:bucket/encrypted");
  }
  auto inner = parse_location_at(*inner_text, env, depth + 1);
  if (!inner) {
    auto e = inner.error();
    e.message = "remote \"" + name + "\" wraps \"" + *inner_text + "\": " + e.message;
    return e;
  }
  if (inner->kind == location_kind::http || inner->kind == location_kind::crypt) {
    return make_error(errc::config_error,
                      "remote \"" + name + "\": a crypt remote over " +
                          (inner->kind == location_kind::http ? "http" : "crypt") +
                          " is not supported by the native engine");
  }
  auto password = secret_value(name, "PASSWORD", get, true);
  if (!password) return password.error();
  auto salt = secret_value(name, "PASSWORD2", get, false);
  if (!salt) return salt.error();
  loc.crypt.password = *password;
  loc.crypt.salt = *salt;
  if (auto fe = get("FILENAME_ENCRYPTION"); fe && !fe->empty()) {
    const auto v = lower(*fe);
    if (v == "standard") {
      loc.crypt.encrypt_names = true;
    } else if (v == "off") {
      loc.crypt.encrypt_names = false;
    } else {
      return make_error(errc::config_error, env_name(name, "FILENAME_ENCRYPTION") + "=" + *fe +
                                                " is not supported by the native engine "
                                                "(supported: standard, off)");
    }
  }
  if (auto de = get("DIRECTORY_NAME_ENCRYPTION"); de && !de->empty()) {
    const auto v = lower(*de);
    if (v != "true" && v != "false") {
      return make_error(errc::config_error, env_name(name, "DIRECTORY_NAME_ENCRYPTION") +
                                                " must be true or false, not \"" + *de + "\"");
    }
    loc.crypt.encrypt_dir_names = v == "true";
  }
  loc.inner = std::make_shared<const location>(std::move(*inner));
  loc.path = trim_slashes(rest);
  return loc;
}

}  // namespace

env_lookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

env_lookup with_seed_remote(env_lookup base) {
  return [base = std::move(base)](const std::string& name) -> std::optional<std::string> {
    static const std::string prefix = "RCLONE_CONFIG_REMOTE_";
    if (name.rfind(prefix, 0) == 0) {
      if (auto v = base("REMOTE_" + name.substr(prefix.size()))) return v;
    }
    return base(name);
  };
}

expected<location> parse_location(std::string_view text, const env_lookup& env) {
  return parse_location_at(text, env, 0);
}

namespace {

expected<location> parse_location_at(std::string_view text, const env_lookup& env, int depth) {
  location loc;
  loc.text = std::string(text);
  if (text.empty()) return make_error(errc::invalid_argument, "an empty path is not a location");
  if (text.rfind("http://", 0) == 0 || text.rfind("https://", 0) == 0) {
    loc.kind = location_kind::http;
    loc.url = std::string(text);
    return loc;
  }
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
  const std::string kind = lower(*type);
  std::string_view rest = text.substr(colon + 1);
  auto get = [&](std::string_view key) { return env(env_name(name, key)); };
  if (kind == "http") return parse_http(std::move(loc), name, rest, get);
  if (kind == "sftp") return parse_sftp(std::move(loc), name, rest, get);
  if (kind == "crypt") return parse_crypt(std::move(loc), name, rest, get, env, depth);
  if (kind != "s3") {
    return make_error(errc::config_error, "remote \"" + name + "\": " + type_var + "=" + *type +
                                              " is not supported by the native engine (supported: "
                                              "s3, http, sftp, crypt); --engine=rclone runs rclone "
                                              "for it");
  }
  loc.kind = location_kind::s3;

  // bucket/prefix
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

}  // namespace

}  // namespace tidesync::transfer
