#include "runtime/k8s/config.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/base64.hpp"

namespace tidesync::k8s {
namespace fs = std::filesystem;

namespace {

std::optional<std::string> real_getenv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

expected<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(errc::io_error, "cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim_ws(std::string s) {
  auto is_ws = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (!s.empty() && is_ws(s.back()))
    s.pop_back();
  size_t i = 0;
  while (i < s.size() && is_ws(s[i]))
    ++i;
  return s.substr(i);
}

// Finds the entry called `name` in a kubeconfig list (clusters, users, contexts).
// (A default-constructed YAML::Node is a defined null, so absence is an empty optional.)
std::optional<YAML::Node> find_named(const YAML::Node& list, const std::string& name) {
  if (!list || !list.IsSequence()) return std::nullopt;
  for (const auto& item : list) {
    if (item.IsMap() && item["name"] && item["name"].as<std::string>() == name) return item;
  }
  return std::nullopt;
}

std::string names_of(const YAML::Node& list) {
  std::string out;
  if (list && list.IsSequence()) {
    for (const auto& item : list) {
      if (!item.IsMap() || !item["name"]) continue;
      if (!out.empty()) out += ", ";
      out += item["name"].as<std::string>();
    }
  }
  return out.empty() ? "(none)" : out;
}

std::string str(const YAML::Node& map, const char* key) {
  if (!map || !map.IsMap()) return {};
  YAML::Node n = map[key];
  if (!n || n.IsNull()) return {};
  return n.as<std::string>();
}

bool flag(const YAML::Node& map, const char* key) {
  if (!map || !map.IsMap()) return false;
  YAML::Node n = map[key];
  return n && n.IsScalar() && n.as<bool>();
}

std::string resolve(const fs::path& dir, const std::string& p) {
  if (p.empty()) return p;
  fs::path path(p);
  if (path.is_relative()) path = dir / path;
  return path.lexically_normal().string();
}

error kubeconfig_error(const std::string& path, const std::string& what) {
  return make_error(errc::config_error, "kubeconfig " + path + ": " + what);
}

expected<connection_config> parse_kubeconfig(const std::string& path, const std::string& text,
                                             const std::string& wanted_context) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return kubeconfig_error(
        path, "is not valid YAML (" + e.msg + " at line " + std::to_string(e.mark.line + 1) + ")");
  }
  if (!root.IsMap()) {
    return kubeconfig_error(path,
                            "is not a kubeconfig (expected a YAML mapping with clusters, "
                            "users and contexts)");
  }
  const fs::path dir = fs::path(path).parent_path();
  connection_config cfg;
  auto tls = std::make_shared<http::tls_options>();
  try {
    std::string context_name = wanted_context;
    if (context_name.empty()) context_name = str(root, "current-context");
    if (context_name.empty()) {
      return kubeconfig_error(path,
                              "no current-context is set and no --context was given; "
                              "contexts are: " +
                                  names_of(root["contexts"]) +
                                  " (run `kubectl config use-context NAME`)");
    }
    auto ctx_entry = find_named(root["contexts"], context_name);
    if (!ctx_entry) {
      return kubeconfig_error(
          path, (wanted_context.empty() ? "current-context \"" : "context \"") + context_name +
                    "\" names no context; contexts are: " + names_of(root["contexts"]));
    }
    YAML::Node ctx = (*ctx_entry)["context"];
    const std::string cluster_name = str(ctx, "cluster");
    const std::string user_name = str(ctx, "user");
    if (!str(ctx, "namespace").empty()) cfg.default_namespace = str(ctx, "namespace");

    auto cluster_entry = find_named(root["clusters"], cluster_name);
    if (!cluster_entry) {
      return kubeconfig_error(
          path, "context \"" + context_name + "\" refers to cluster \"" + cluster_name +
                    "\", which is not defined; clusters are: " + names_of(root["clusters"]));
    }
    YAML::Node cluster = (*cluster_entry)["cluster"];
    cfg.server = str(cluster, "server");
    if (cfg.server.empty()) {
      return kubeconfig_error(path, "cluster \"" + cluster_name + "\" has no server URL");
    }
    while (!cfg.server.empty() && cfg.server.back() == '/')
      cfg.server.pop_back();
    if (cfg.server.rfind("http://", 0) != 0 && cfg.server.rfind("https://", 0) != 0) {
      return kubeconfig_error(path, "cluster \"" + cluster_name + "\" server \"" + cfg.server +
                                        "\" is not an http:// or https:// URL");
    }
    tls->insecure_skip_verify = flag(cluster, "insecure-skip-tls-verify");
    if (auto data = str(cluster, "certificate-authority-data"); !data.empty()) {
      auto pem = base64::decode(data);
      if (!pem) {
        return kubeconfig_error(path, "cluster \"" + cluster_name +
                                          "\" certificate-authority-data is not valid base64");
      }
      tls->ca_pem = std::move(*pem);
    } else if (auto file = str(cluster, "certificate-authority"); !file.empty()) {
      tls->ca_file = resolve(dir, file);
      if (!fs::exists(tls->ca_file)) {
        return kubeconfig_error(path, "cluster \"" + cluster_name + "\" certificate-authority " +
                                          tls->ca_file + " does not exist");
      }
    }

    if (!user_name.empty()) {
      auto user_entry = find_named(root["users"], user_name);
      if (!user_entry) {
        return kubeconfig_error(
            path, "context \"" + context_name + "\" refers to user \"" + user_name +
                      "\", which is not defined; users are: " + names_of(root["users"]));
      }
      YAML::Node user = (*user_entry)["user"];
      const std::string who = "user \"" + user_name + "\"";
      if (user && user.IsMap() && (user["exec"] || user["auth-provider"])) {
        return kubeconfig_error(path, who +
                                          " uses an exec or auth-provider plugin, which "
                                          "tidesync does not run; use a token, tokenFile or "
                                          "client certificate instead");
      }
      cfg.token = str(user, "token");
      if (auto file = str(user, "tokenFile"); !file.empty()) {
        cfg.token_file = resolve(dir, file);
        if (!fs::exists(cfg.token_file)) {
          return kubeconfig_error(path, who + " tokenFile " + cfg.token_file + " does not exist");
        }
      }
      auto pem_or_file = [&](const char* data_key, const char* file_key, std::string& pem,
                             std::string& file) -> expected<void> {
        if (auto data = str(user, data_key); !data.empty()) {
          auto decoded = base64::decode(data);
          if (!decoded)
            return kubeconfig_error(path, who + " " + data_key + " is not valid base64");
          pem = std::move(*decoded);
        } else if (auto f = str(user, file_key); !f.empty()) {
          file = resolve(dir, f);
          if (!fs::exists(file)) {
            return kubeconfig_error(path, who + " " + file_key + " " + file + " does not exist");
          }
        }
        return {};
      };
      if (auto r = pem_or_file("client-certificate-data", "client-certificate", tls->cert_pem,
                               tls->cert_file);
          !r) {
        return r.error();
      }
      if (auto r = pem_or_file("client-key-data", "client-key", tls->key_pem, tls->key_file); !r) {
        return r.error();
      }
      const bool has_cert = !tls->cert_pem.empty() || !tls->cert_file.empty();
      const bool has_key = !tls->key_pem.empty() || !tls->key_file.empty();
      if (has_cert != has_key) {
        return kubeconfig_error(path, who +
                                          " has a client certificate without a key or a key "
                                          "without a certificate; give both");
      }
      cfg.username = str(user, "username");
      cfg.password = str(user, "password");
    }
    cfg.source = "kubeconfig " + path + " (context " + context_name + ")";
  } catch (const YAML::Exception& e) {
    return kubeconfig_error(path, "has an unexpected shape (" + e.msg + " at line " +
                                      std::to_string(e.mark.line + 1) + ")");
  }
  cfg.tls = std::move(tls);
  return cfg;
}

}  // namespace

expected<connection_config> load_kubeconfig(const std::string& path, const std::string& context) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return make_error(errc::config_error, "kubeconfig " + path +
                                              " does not exist; pass --kubeconfig PATH or set "
                                              "KUBECONFIG to an existing file");
  }
  auto text = read_file(path);
  if (!text) return kubeconfig_error(path, "cannot be read (check its permissions)");
  return parse_kubeconfig(path, *text, context);
}

expected<connection_config> load_in_cluster(const std::string& root, const std::string& host,
                                            const std::string& port) {
  connection_config cfg;
  const std::string host_part = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  cfg.server = "https://" + host_part + ":" + (port.empty() ? "443" : port);
  cfg.token_file = (fs::path(root) / "token").string();
  if (!fs::exists(cfg.token_file)) {
    return make_error(errc::config_error,
                      "in-cluster config: service account token " + cfg.token_file +
                          " does not exist (is automountServiceAccountToken disabled?)");
  }
  auto tls = std::make_shared<http::tls_options>();
  const std::string ca = (fs::path(root) / "ca.crt").string();
  if (fs::exists(ca)) tls->ca_file = ca;
  cfg.tls = std::move(tls);
  if (auto ns = read_file((fs::path(root) / "namespace").string())) {
    std::string n = trim_ws(*ns);
    if (!n.empty()) cfg.default_namespace = n;
  }
  cfg.source = "in-cluster (" + root + ")";
  return cfg;
}

expected<connection_config> load_config(const config_options& options) {
  auto env = options.getenv ? options.getenv : real_getenv;
  if (!options.kubeconfig.empty()) return load_kubeconfig(options.kubeconfig, options.context);

  if (auto list = env("KUBECONFIG")) {
    std::string tried;
    std::stringstream ss(*list);
    std::string item;
    while (std::getline(ss, item, ':')) {
      if (item.empty()) continue;
      std::error_code ec;
      if (fs::exists(item, ec)) return load_kubeconfig(item, options.context);
      tried += tried.empty() ? item : ", " + item;
    }
    return make_error(errc::config_error, "KUBECONFIG names no existing file (tried " + tried +
                                              "); fix KUBECONFIG or pass --kubeconfig PATH");
  }

  if (options.allow_in_cluster) {
    auto host = env("KUBERNETES_SERVICE_HOST");
    auto port = env("KUBERNETES_SERVICE_PORT");
    if (host) return load_in_cluster(options.in_cluster_root, *host, port.value_or("443"));
  }

  if (auto home = env("HOME")) {
    const std::string path = (fs::path(*home) / ".kube" / "config").string();
    std::error_code ec;
    if (fs::exists(path, ec)) return load_kubeconfig(path, options.context);
  }
  return make_error(errc::config_error,
                    "no Kubernetes configuration found: pass --kubeconfig PATH, set KUBECONFIG, "
                    "run in a pod, or create ~/.kube/config (`tidesync simulate` writes one)");
}

// --- token_source ----------------------------------------------------------------------

token_source::token_source(std::string token, std::string file, std::chrono::milliseconds recheck)
    : token_(std::move(token)), file_(std::move(file)), recheck_(recheck) {}

std::string token_source::get(clock::time_point now) {
  std::lock_guard<std::mutex> guard(mu_);
  if (file_.empty()) return token_;
  if (last_check_ && now - *last_check_ < recheck_) return token_;
  last_check_ = now;
  std::error_code ec;
  auto mtime = fs::last_write_time(file_, ec);
  if (ec) return token_;  // keep the last good token
  // Size is compared too: a rewrite within the file system's timestamp granularity still
  // changes it most of the time.
  const uintmax_t size = fs::file_size(file_, ec);
  const auto key = std::chrono::duration_cast<std::chrono::nanoseconds>(mtime.time_since_epoch());
  if (mtime_ && *mtime_ == key && size_ == size) return token_;
  if (auto text = read_file(file_)) {
    std::string t = trim_ws(*text);
    if (!t.empty()) {
      token_ = std::move(t);
      mtime_ = key;
      size_ = size;
    }
  }
  return token_;
}

}  // namespace tidesync::k8s
