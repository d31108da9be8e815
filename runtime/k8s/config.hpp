// Where the Kubernetes API server is and how to authenticate: kubeconfig or in-cluster.
//
// Lookup order of load_config() (as kubectl/client-go, minus merging):
//   1. options.kubeconfig (the --kubeconfig flag);
//   2. $KUBECONFIG: a colon-separated list; the FIRST file that exists is used (client-go
//      merges all of them; we do not: keep the whole config in one file);
//   3. in-cluster: $KUBERNETES_SERVICE_HOST/$KUBERNETES_SERVICE_PORT and the service account
//      files under options.in_cluster_root (token, ca.crt, namespace);
//   4. ~/.kube/config.
// Errors name the file, what is wrong and what to do. Tokens are never logged or put in errors.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "runtime/error.hpp"
#include "runtime/http/loop.hpp"

namespace tidesync::k8s {

struct config_options {
  std::string kubeconfig;  // --kubeconfig; empty: look it up
  std::string context;     // --context; empty: the kubeconfig's current-context
  std::string in_cluster_root = "/var/run/secrets/kubernetes.io/serviceaccount";
  bool allow_in_cluster = true;
  // Environment lookup (tests replace it); default: std::getenv.
  std::function<std::optional<std::string>(const std::string&)> getenv;
};

struct connection_config {
  std::string server;  // e.g. "https://10.0.0.1:443", no trailing slash
  std::shared_ptr<const http::tls_options> tls = std::make_shared<http::tls_options>();
  std::string token;       // static bearer token (may be empty)
  std::string token_file;  // bearer token file, re-read when it changes; wins over `token`
  std::string username;    // basic auth (optional)
  std::string password;
  std::string default_namespace = "default";  // the context's namespace, or in-cluster's
  std::string source;  // for messages: "kubeconfig /x (context y)" or "in-cluster"
};

expected<connection_config> load_config(const config_options& options);

// One kubeconfig file; `context` empty means its current-context.
expected<connection_config> load_kubeconfig(const std::string& path, const std::string& context);

// In-cluster config from the service account directory `root` and the given host/port.
expected<connection_config> load_in_cluster(const std::string& root, const std::string& host,
                                            const std::string& port);

// Supplies the bearer token: a fixed token, or a file re-read when its modification time
// changes, checked at most every `recheck` (the in-cluster token is rotated by the kubelet).
// Thread-safe.
class token_source {
 public:
  using clock = std::chrono::steady_clock;

  token_source(std::string token, std::string file,
               std::chrono::milliseconds recheck = std::chrono::seconds(60));

  // The current token, or empty when there is none. When a re-read fails, the last good token
  // is kept (a rotation replaces the file, it does not remove it for long).
  std::string get(clock::time_point now = clock::now());

 private:
  std::mutex mu_;
  std::string token_;
  std::string file_;
  std::chrono::milliseconds recheck_;
  std::optional<clock::time_point> last_check_;
  // Modification time and size of the file when it was last read.
  std::optional<std::chrono::nanoseconds> mtime_;
  uintmax_t size_ = 0;
};

}  // namespace tidesync::k8s
