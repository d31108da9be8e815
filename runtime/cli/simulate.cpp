// `tidesync simulate`: the embedded Kubernetes API server on 127.0.0.1, with a kubeconfig for
// kubectl, state saved across restarts, and manifests applied at start.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "config/validation.hpp"
#include "runtime/apiserver/kubelet.hpp"
#include "runtime/apiserver/manifest.hpp"
#include "runtime/apiserver/server.hpp"
#include "runtime/apiserver/store.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/controller.hpp"
#include "runtime/log.hpp"

namespace tidesync::cli {
namespace {

constexpr const char* kUsage =
    R"(Usage: tidesync simulate [--port N] [--kubeconfig PATH] [--data-dir DIR]
                         [--no-controller] [--no-kubelet] [--volume-claim-grace D]
                         [--controller-rbac FILE] [--history N] [MANIFEST_OR_DIR ...]

Runs an embedded Kubernetes API server on 127.0.0.1 that speaks the real wire protocol
(discovery, CRDs, list/watch, /status, patches, finalizers, garbage collection), writes a
kubeconfig for kubectl, applies the given manifests, and serves until SIGINT or SIGTERM.
A simulated kubelet runs Jobs, Deployments and bare Pods whose containers are rclone or
tidesync as local processes, so syncs really move bytes; other images (the app of a pod) are
placeholders; an nfs volume is the shared folder <data-dir>/nfs/<server>/<path>
(docs/kubelet.md). The controller's admission webhook is registered on a loopback port, so
labelled pods get the PodFilesystemSync agents (docs/podfilesystemsync.md).

Flags:
  --port N           port to listen on (default 0: pick a free one)
  --kubeconfig PATH  where to write the kubeconfig (default <data-dir>/kubeconfig)
  --data-dir DIR     state directory; objects are saved to DIR/state.json on exit and at
                     most once a second while they change, and loaded on start
                     (default ./.tidesync-sim)
  --no-controller    do not run the controller in this process (run `tidesync controller
                     --kubeconfig ...` yourself, e.g. to try leader election)
  --no-kubelet       do not run Jobs, Deployments or Pods (Jobs and Deployments get no pods,
                     Pods stay Pending, as on a cluster with no nodes)
  --volume-claim-grace D  the controller's --volume-claim-grace (default 30s)
  --controller-rbac FILE  apply FILE (a ServiceAccount and its Roles and bindings, e.g.
                     deploy/base/rbac.yaml) and run the controller as that ServiceAccount:
                     its requests are authorized by RBAC, a missing permission is 403
                     Forbidden and logged ("RBAC denied"), as in a cluster. Without it the
                     controller, like kubectl, may do anything. DATA_DIR/controller-kubeconfig
                     is that identity, for `tidesync controller` beside --no-controller.
  --history N        watch events kept for resuming a watch (default 10000); a watch from
                     an older resourceVersion gets 410 Expired
  -h, --help         show this help

MANIFEST_OR_DIR: YAML or JSON files (multi-document) or directories of *.yaml, *.yml,
*.json files, applied in order (created, or updated when they exist).

Once ready, prints one line:
  tidesync simulate: API server on http://127.0.0.1:PORT, kubeconfig at PATH
)";

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "tidesync simulate: %s\n\n%s", msg.c_str(), kUsage);
  return 2;
}

// `owner_only`: the file is readable by its owner only from the moment it exists (a token).
expected<void> write_file_atomic(const std::string& path, const std::string& text,
                                 bool owner_only = false) {
  std::string tmp = path + ".tmp";
  std::error_code ec;
  std::filesystem::remove(tmp, ec);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return make_error(errc::io_error, "cannot write " + tmp);
    if (owner_only)
      std::filesystem::permissions(
          tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
    if (ec) return make_error(errc::io_error, "cannot restrict " + tmp + ": " + ec.message());
    out << text;
    if (!out.flush()) return make_error(errc::io_error, "cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    return make_error(errc::io_error, "cannot rename " + tmp + " to " + path + ": " + ec.message());
  return {};
}

// A kubeconfig for the server; with a token, for the user that token names (--controller-rbac).
std::string kubeconfig_text(int port, const std::string& token = {}) {
  std::string server = "http://127.0.0.1:" + std::to_string(port);
  return "apiVersion: v1\n"
         "kind: Config\n"
         "clusters:\n"
         "- name: tidesync-simulate\n"
         "  cluster:\n"
         "    server: " +
         server +
         "\n"
         "contexts:\n"
         "- name: tidesync-simulate\n"
         "  context:\n"
         "    cluster: tidesync-simulate\n"
         "    namespace: default\n"
         "    user: tidesync-simulate\n"
         "current-context: tidesync-simulate\n"
         "users:\n"
         "- name: tidesync-simulate\n"
         "  user: " +
         (token.empty() ? std::string("{}") : "{token: " + token + "}") +
         "\n"
         "preferences: {}\n";
}

// Create, or update when it exists (what `kubectl apply` does, without the three-way merge).
expected<void> apply(apiserver::store& st, const apiserver::manifest_document& doc) {
  const json::value& obj = doc.object;
  std::string api_version(obj.get_string("apiVersion"));
  std::string kind(obj.get_string("kind"));
  std::string group, version = api_version;
  if (auto slash = api_version.find('/'); slash != std::string::npos) {
    group = api_version.substr(0, slash);
    version = api_version.substr(slash + 1);
  }
  std::optional<apiserver::resource_type> type;
  for (auto& t : st.types())
    if (t.res.group == group && t.res.version == version && t.res.kind == kind) type = t;
  if (!type)
    return make_error(errc::not_found, doc.source + ": no resource type for kind \"" + kind +
                                           "\" in " + api_version +
                                           " (apply its CustomResourceDefinition first)");
  std::string ns;
  std::string name;
  if (const auto* m = obj.at("metadata")) {
    ns = std::string(m->get_string("namespace"));
    name = std::string(m->get_string("name"));
  }
  if (type->res.namespaced && ns.empty()) ns = "default";
  auto created = st.create(*type, ns, obj);
  if (created) return {};
  if (created.error().code != errc::already_exists)
    return make_error(created.error().code, doc.source + ": " + created.error().message);
  auto cur = st.get(*type, ns, name);
  if (!cur) return make_error(cur.error().code, doc.source + ": " + cur.error().message);
  json::value next = obj;
  next["metadata"].as_object().set("resourceVersion", std::to_string((*cur)->rv));
  auto updated = st.update(*type, ns, name, std::move(next));
  if (!updated)
    return make_error(updated.error().code, doc.source + ": " + updated.error().message);
  return {};
}

}  // namespace

int run_simulate(int argc, char** argv) {
  int port = 0;
  std::string kubeconfig, data_dir = "./.tidesync-sim";
  size_t history = 10000;
  bool run_kubelet = true;
  std::chrono::seconds volume_claim_grace{30};
  bool run_controller = true;
  std::string controller_rbac;
  std::vector<std::string> manifests;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* flag) -> const char* {
      std::string prefix = std::string(flag) + "=";
      if (a.rfind(prefix, 0) == 0) return argv[i] + prefix.size();
      if (a == flag) return i + 1 < argc ? argv[++i] : nullptr;
      return nullptr;
    };
    auto is = [&](const char* flag) {
      return a == flag || a.rfind(std::string(flag) + "=", 0) == 0;
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (is("--port")) {
      const char* v = value("--port");
      char* end = nullptr;
      long p = v != nullptr ? std::strtol(v, &end, 10) : -1;
      if (v == nullptr || *end != '\0' || p < 0 || p > 65535)
        return usage_error("--port needs a number 0-65535");
      port = static_cast<int>(p);
    } else if (is("--kubeconfig")) {
      const char* v = value("--kubeconfig");
      if (v == nullptr || *v == '\0') return usage_error("--kubeconfig needs a path");
      kubeconfig = v;
    } else if (is("--data-dir")) {
      const char* v = value("--data-dir");
      if (v == nullptr || *v == '\0') return usage_error("--data-dir needs a directory");
      data_dir = v;
    } else if (is("--history")) {
      const char* v = value("--history");
      char* end = nullptr;
      long long n = v != nullptr ? std::strtoll(v, &end, 10) : -1;
      if (v == nullptr || *end != '\0' || n < 1)
        return usage_error("--history needs a positive number");
      history = static_cast<size_t>(n);
    } else if (is("--volume-claim-grace")) {
      const char* v = value("--volume-claim-grace");
      auto d = v != nullptr ? config::parse_duration(v) : make_error(errc::invalid, "");
      if (!d || d->count() < 0)
        return usage_error("--volume-claim-grace needs a duration such as 30s");
      volume_claim_grace = *d;
    } else if (is("--controller-rbac")) {
      const char* v = value("--controller-rbac");
      if (v == nullptr || *v == '\0') return usage_error("--controller-rbac needs a manifest file");
      controller_rbac = v;
    } else if (a == "--no-kubelet") {
      run_kubelet = false;
    } else if (a == "--no-controller") {
      run_controller = false;
    } else if (!a.empty() && a[0] == '-') {
      return usage_error("unknown flag " + a);
    } else {
      manifests.push_back(a);
    }
  }
  auto log = tidesync::log::get("simulate");

  // Read every manifest before starting anything: a typo should not leave a server behind.
  std::vector<apiserver::manifest_document> docs;
  for (const auto& m : manifests) {
    auto loaded = apiserver::load_manifests(m);
    if (!loaded) {
      std::fprintf(stderr, "tidesync simulate: %s\n", loaded.error().message.c_str());
      return 2;
    }
    for (auto& d : *loaded)
      docs.push_back(std::move(d));
  }

  // The controller's identity: the one ServiceAccount of --controller-rbac, with a bearer token
  // made up for this run.
  std::vector<apiserver::manifest_document> rbac_docs;
  std::string controller_user, controller_token;
  if (!controller_rbac.empty()) {
    auto loaded = apiserver::load_manifests(controller_rbac);
    if (!loaded) {
      std::fprintf(stderr, "tidesync simulate: --controller-rbac: %s\n",
                   loaded.error().message.c_str());
      return 2;
    }
    rbac_docs = std::move(*loaded);
    for (const auto& d : rbac_docs) {
      if (d.object.get_string("kind") != "ServiceAccount") continue;
      if (!controller_user.empty())
        return usage_error("--controller-rbac " + controller_rbac +
                           " has more than one ServiceAccount; keep the controller's only");
      const auto* meta = d.object.at("metadata");
      std::string ns = meta ? std::string(meta->get_string("namespace")) : "";
      if (ns.empty()) ns = "default";
      controller_user =
          "system:serviceaccount:" + ns + ":" + std::string(meta ? meta->get_string("name") : "");
    }
    if (controller_user.empty())
      return usage_error("--controller-rbac " + controller_rbac +
                         " has no ServiceAccount: it names the controller's identity");
    std::random_device rd;
    char hex[17];
    for (int k = 0; k < 2; ++k) {
      std::snprintf(hex, sizeof hex, "%08x%08x", rd(), rd());
      controller_token += hex;
    }
  }

  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    std::fprintf(stderr, "tidesync simulate: cannot create data dir %s: %s\n", data_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  if (kubeconfig.empty()) kubeconfig = (std::filesystem::path(data_dir) / "kubeconfig").string();
  // Print an absolute path: people paste it into KUBECONFIG from another directory.
  kubeconfig = std::filesystem::absolute(kubeconfig).lexically_normal().string();
  std::string state_path = (std::filesystem::path(data_dir) / "state.json").string();

  // Signals are taken synchronously by this thread; every other thread starts with them
  // blocked, so SIGINT/SIGTERM never interrupt a server thread.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  apiserver::store_options so;
  so.history = history;
  apiserver::store st(so);
  if (std::filesystem::exists(state_path, ec)) {
    auto loaded = st.load(state_path);
    if (!loaded) {
      std::fprintf(stderr, "tidesync simulate: %s (move it away to start empty)\n",
                   loaded.error().message.c_str());
      return 1;
    }
    log->info("loaded saved state from {} (resourceVersion {})", state_path,
              st.current_resource_version());
  }

  apiserver::server_options opts;
  opts.port = port;
  if (!controller_token.empty()) opts.token_users[controller_token] = controller_user;
  apiserver::server srv(st, opts);
  auto bound = srv.start();
  if (!bound) {
    std::fprintf(stderr, "tidesync simulate: %s\n", bound.error().message.c_str());
    return 1;
  }
  // The controller's namespace (lock and leader Leases), as `kubectl apply -f deploy/` makes it.
  if (auto ns = apply(st,
                      apiserver::manifest_document{
                          "(built in)", json::value(json::object{
                                            {"apiVersion", "v1"},
                                            {"kind", "Namespace"},
                                            {"metadata", json::object{{"name", "tidesync-system"}}},
                                        })});
      !ns) {
    std::fprintf(stderr, "tidesync simulate: %s\n", ns.error().message.c_str());
    srv.stop();
    return 1;
  }
  // The controller's RBAC, and its kubeconfig, before the kubeconfig that tells the server is up.
  for (const auto& d : rbac_docs) {
    if (auto a = apply(st, d); !a) {
      std::fprintf(stderr, "tidesync simulate: --controller-rbac: cannot apply %s\n",
                   a.error().message.c_str());
      srv.stop();
      return 1;
    }
  }
  if (!controller_token.empty()) {
    log->info("the controller runs as {} under the RBAC of {}", controller_user, controller_rbac);
    const auto path = (std::filesystem::path(data_dir) / "controller-kubeconfig").string();
    auto w = write_file_atomic(path, kubeconfig_text(*bound, controller_token), true);
    if (!w) {
      std::fprintf(stderr, "tidesync simulate: %s\n", w.error().message.c_str());
      srv.stop();
      return 1;
    }
  }
  if (auto w = write_file_atomic(kubeconfig, kubeconfig_text(*bound)); !w) {
    std::fprintf(stderr, "tidesync simulate: %s\n", w.error().message.c_str());
    srv.stop();
    return 1;
  }
  for (const auto& d : docs) {
    if (auto a = apply(st, d); !a) {
      std::fprintf(stderr, "tidesync simulate: cannot apply %s\n", a.error().message.c_str());
      srv.stop();
      return 1;
    }
  }
  if (!docs.empty()) log->info("applied {} object(s)", docs.size());
  // The simulated kubelet runs rclone/tidesync Jobs, Deployments and Pods as local processes
  // (this binary for tidesync images).
  std::unique_ptr<apiserver::kubelet> kubelet;
  if (run_kubelet) {
    apiserver::kubelet_options ko;
    ko.data_dir = data_dir;
    ko.tidesync_binary = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    kubelet = std::make_unique<apiserver::kubelet>(st, ko);
    if (auto k = kubelet->start(); !k) {
      std::fprintf(stderr, "tidesync simulate: cannot start the simulated kubelet: %s\n",
                   k.error().message.c_str());
      srv.stop();
      return 1;
    }
  }
  std::printf("tidesync simulate: API server on http://127.0.0.1:%d, kubeconfig at %s\n", *bound,
              kubeconfig.c_str());
  std::fflush(stdout);

  // The controller runs in this process against the server, exactly as it would in a cluster
  // (HTTP, list/watch); metrics and health endpoints are off here.
  std::atomic<bool> stop_controller{false};
  std::atomic<int> controller_exit{-1};
  std::thread controller_thread;
  if (run_controller) {
    controller_flags cf;
    cf.metrics_addr = "0";
    cf.health_addr = "0";
    // The config API on a free loopback port; its URL in DATA_DIR/config-api.
    cf.config_api_addr = "127.0.0.1:0";
    cf.config_api_url_file = (std::filesystem::path(data_dir) / "config-api").string();
    // The admission webhook on a free loopback port, registered by URL; the embedded API server
    // calls it on pod creation (PodFilesystemSync).
    cf.webhook_addr = "127.0.0.1:0";
    cf.webhook_url = "https://127.0.0.1:{port}/mutate-pods";
    cf.volume_claim_grace = volume_claim_grace;
    k8s::connection_config conn;
    conn.server = "http://127.0.0.1:" + std::to_string(*bound);
    conn.token = controller_token;
    controller_thread = std::thread([cf, conn, &stop_controller, &controller_exit] {
      controller_exit = run_controller_until(cf, stop_controller, &conn);
    });
  }

  int exit_code = 0;
  for (;;) {
    if (controller_exit.load() >= 0) {
      log->error("the controller stopped (exit code {}); shutting down", controller_exit.load());
      exit_code = 1;
      break;
    }
    timespec tick{1, 0};
    int sig = sigtimedwait(&sigs, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      log->info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
      break;
    }
    if (st.dirty()) {
      if (auto s = st.save(state_path); !s) log->warn("cannot save state: {}", s.error().message);
    }
  }
  stop_controller = true;
  if (controller_thread.joinable()) controller_thread.join();
  if (kubelet) kubelet->stop();
  srv.stop();
  if (auto s = st.save(state_path); !s) {
    log->error("cannot save state: {}", s.error().message);
    exit_code = 1;
  }
  return exit_code;
}

}  // namespace tidesync::cli
