// tidesync controller: the Kubernetes controller process (docs/controller.md).
#include "runtime/cli/controller.hpp"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "actors/config_api.hpp"
#include "actors/manager.hpp"
#include "config/validation.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/k8s/leader_election.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics/endpoints.hpp"
#include "runtime/metrics/http_server.hpp"
#include "runtime/metrics/metrics.hpp"
#include "runtime/webhook/certs.hpp"

namespace tidesync::cli {

const char* controller_usage() {
  return R"(Usage: tidesync controller [FLAGS]

Runs the tidesync controller: reconciles BucketSyncPolicies and BucketSyncs (rclone Jobs under
bucket locks). Uses the in-cluster service account unless --kubeconfig (or $KUBECONFIG) is given.

Flags:
  --kubeconfig PATH                 kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, in-cluster)
  --namespace NS                    the controller's namespace: lock and leader Leases (default tidesync-system)
  --watch-namespace NS              watch only this namespace (default: all)
  --leader-elect                    run as one of several replicas; only the Lease holder reconciles
  --leader-elect-id ID              identity in the leader Lease (default: hostname_random)
  --leader-elect-lease-duration D   default 15s
  --leader-elect-renew-deadline D   default 10s
  --leader-elect-retry-period D     default 2s
  --metrics-addr HOST:PORT          /metrics (default 0.0.0.0:8080; "0" disables)
  --health-addr HOST:PORT           /healthz and /readyz (default 0.0.0.0:8081; "0" disables)
  --concurrency N                   BucketSyncs reconciled at once (default 10)
  --namespace-concurrency NS=N,...  at most N of them from namespace NS (default: no cap)
  --lock-ttl D                      reclaim a bucket lock whose holder is gone after D (default 10m)
  --rclone-image IMAGE              image of the rclone Jobs (default rclone/rclone:1.68.2)
  --agent-image IMAGE               image of the DataSync populate Jobs (default
                                    tidesync/tidesync:<this version>)
  --config-api-addr HOST:PORT       serve the SharedConfig config API there (e.g. :8085; default
                                    "0": off); its bearer token is the key token of the Secret
                                    tidesync-config-api in --namespace (created when missing)
  --webhook-addr HOST:PORT          serve the admission webhook (PodFilesystemSync) there over
                                    HTTPS (e.g. :9443; default "0": off); its certificates live in
                                    the Secret tidesync-webhook-tls in --namespace (made and
                                    rotated by the controller)
  --webhook-service NAME            the Service in front of the webhook (default tidesync-webhook)
  --webhook-service-port N          its port (default 443)
  --webhook-url URL                 register this URL instead of the Service (a controller outside
                                    the cluster); "{port}" is replaced by the bound port
  --webhook-config NAME             the MutatingWebhookConfiguration kept by the controller
                                    (default tidesync-pod-injection)
  --native-sidecars=false           inject the syncing sidecar as a plain container (Kubernetes
                                    before 1.29); default: a native sidecar
  --nfs-image IMAGE                 the NFS server of SharedVolumes with dynamic storage (default
                                    itsthenetwork/nfs-server-alpine:12)
  --volume-claim-grace D            a namespace keeps its claim of a SharedVolume this long after
                                    its last consumer pod is gone (default 30s)
  --kube-api-qps Q, --kube-api-burst N   client-side rate limit (default 50, 100); lock Lease
                                    writes and Events each have a budget of the same size
  -h, --help                        show this help

Durations are Go-style: 30s, 10m, 1h30m.
)";
}

std::string parse_controller_flags(int argc, char** argv, controller_flags& out, bool& help) {
  help = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto is = [&](const char* flag) {
      return a == flag || a.rfind(std::string(flag) + "=", 0) == 0;
    };
    auto value = [&](const char* flag) -> const char* {
      std::string prefix = std::string(flag) + "=";
      if (a.rfind(prefix, 0) == 0) return argv[i] + prefix.size();
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    auto text = [&](const char* flag, std::string& into) -> std::string {
      const char* v = value(flag);
      if (v == nullptr || *v == '\0') return std::string(flag) + " needs a value";
      into = v;
      return {};
    };
    auto duration = [&](const char* flag, std::chrono::seconds& into) -> std::string {
      const char* v = value(flag);
      if (v == nullptr) return std::string(flag) + " needs a duration such as 15s";
      auto d = config::parse_duration(v);
      if (!d || d->count() <= 0)
        return std::string(flag) + ": \"" + v + "\" is not a positive duration (write e.g. 15s)";
      into = *d;
      return {};
    };
    std::string err;
    if (a == "-h" || a == "--help") {
      help = true;
      return {};
    } else if (a == "--leader-elect" || a == "--leader-elect=true") {
      out.leader_elect = true;
    } else if (a == "--leader-elect=false") {
      out.leader_elect = false;
    } else if (is("--kubeconfig")) {
      err = text("--kubeconfig", out.kubeconfig);
    } else if (is("--namespace")) {
      err = text("--namespace", out.ns);
    } else if (is("--watch-namespace")) {
      err = text("--watch-namespace", out.watch_namespace);
    } else if (is("--leader-elect-id")) {
      err = text("--leader-elect-id", out.leader_elect_id);
    } else if (is("--leader-elect-lease-duration")) {
      err = duration("--leader-elect-lease-duration", out.lease_duration);
    } else if (is("--leader-elect-renew-deadline")) {
      err = duration("--leader-elect-renew-deadline", out.renew_deadline);
    } else if (is("--leader-elect-retry-period")) {
      err = duration("--leader-elect-retry-period", out.retry_period);
    } else if (is("--metrics-addr")) {
      err = text("--metrics-addr", out.metrics_addr);
    } else if (is("--health-addr")) {
      err = text("--health-addr", out.health_addr);
    } else if (is("--lock-ttl")) {
      err = duration("--lock-ttl", out.lock_ttl);
    } else if (is("--namespace-concurrency")) {
      const char* v = value("--namespace-concurrency");
      if (v == nullptr || *v == '\0')
        return "--namespace-concurrency needs NS=N pairs, e.g. team-a=2,team-b=4";
      std::string list = v;
      size_t start = 0;
      while (start <= list.size()) {
        size_t comma = list.find(',', start);
        std::string item = list.substr(start, comma == std::string::npos ? comma : comma - start);
        auto eq = item.find('=');
        char* end = nullptr;
        long n = eq == std::string::npos ? -1 : std::strtol(item.c_str() + eq + 1, &end, 10);
        if (eq == std::string::npos || eq == 0 || end == item.c_str() + eq + 1 || *end != '\0' ||
            n < 0 || n > 1'000'000)
          return "--namespace-concurrency: \"" + item +
                 "\" is not NS=N (a namespace and a number, e.g. team-a=2)";
        out.namespace_concurrency[item.substr(0, eq)] = static_cast<uint32_t>(n);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (is("--rclone-image")) {
      err = text("--rclone-image", out.rclone_image);
    } else if (is("--agent-image")) {
      err = text("--agent-image", out.agent_image);
    } else if (is("--config-api-addr")) {
      err = text("--config-api-addr", out.config_api_addr);
    } else if (is("--webhook-addr")) {
      err = text("--webhook-addr", out.webhook_addr);
    } else if (is("--webhook-service")) {
      err = text("--webhook-service", out.webhook_service);
    } else if (is("--webhook-url")) {
      err = text("--webhook-url", out.webhook_url);
      if (err.empty() && out.webhook_url.rfind("https://", 0) != 0)
        err = "--webhook-url must start with https:// (the API server calls webhooks over TLS)";
    } else if (is("--webhook-config")) {
      err = text("--webhook-config", out.webhook_config);
    } else if (is("--webhook-service-port")) {
      const char* v = value("--webhook-service-port");
      char* end = nullptr;
      long n = v ? std::strtol(v, &end, 10) : 0;
      if (v == nullptr || end == v || *end != '\0' || n < 1 || n > 65535)
        return "--webhook-service-port needs a port number 1-65535";
      out.webhook_service_port = static_cast<int>(n);
    } else if (is("--nfs-image")) {
      err = text("--nfs-image", out.nfs_image);
    } else if (is("--volume-claim-grace")) {
      err = duration("--volume-claim-grace", out.volume_claim_grace);
    } else if (a == "--native-sidecars" || a == "--native-sidecars=true") {
      out.native_sidecars = true;
    } else if (a == "--native-sidecars=false") {
      out.native_sidecars = false;
    } else if (is("--concurrency") || is("--kube-api-qps") || is("--kube-api-burst")) {
      std::string flag = a.substr(0, a.find('='));
      const char* v = value(flag.c_str());
      char* end = nullptr;
      double n = v ? std::strtod(v, &end) : 0;
      if (v == nullptr || end == v || *end != '\0' || n <= 0 || n > 1e6)
        return flag + " needs a positive number";
      if (flag == "--concurrency")
        out.concurrency = static_cast<uint32_t>(n);
      else if (flag == "--kube-api-qps")
        out.qps = n;
      else
        out.burst = static_cast<int>(n);
    } else {
      return "unknown flag " + a;
    }
    if (!err.empty()) return err;
  }
  return {};
}

namespace {

bool disabled(const std::string& addr) {
  return addr.empty() || addr == "0";
}

// The webhook's settings from the flags: the Service (or URL) the API server calls, the names
// its certificate must cover, and where the agents report.
actors::webhook_settings webhook_settings_of(const controller_flags& f) {
  actors::webhook_settings w;
  w.server.address = f.webhook_addr;
  w.registration.name = f.webhook_config;
  w.registration.service_namespace = f.ns;
  w.registration.service_name = f.webhook_service;
  w.registration.service_port = f.webhook_service_port;
  w.registration.url = f.webhook_url;
  if (!f.webhook_url.empty()) {
    // https://HOST[:PORT]/PATH: the certificate covers HOST, reports go to /report beside PATH.
    std::string rest = f.webhook_url.substr(8);
    auto slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    std::string host = authority;
    if (!host.empty() && host[0] == '[') {
      host = host.substr(1, host.find(']') - 1);
    } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
      host = host.substr(0, colon);
    }
    w.cert_names = {host};
    w.report_url = "https://" + authority + "/report";
  } else {
    w.cert_names = webhook::service_dns_names(f.webhook_service, f.ns);
    w.report_url = "https://" + f.webhook_service + "." + f.ns +
                   ".svc:" + std::to_string(f.webhook_service_port) + "/report";
  }
  if (!f.agent_image.empty()) {
    w.injection.image = f.agent_image;
    w.volumes.agent_image = f.agent_image;
  }
  if (!f.nfs_image.empty()) w.volumes.nfs_image = f.nfs_image;
  w.volume_claim_grace = f.volume_claim_grace;
  w.injection.native_sidecars = f.native_sidecars;
  return w;
}

}  // namespace

int run_controller_until(const controller_flags& flags, const std::atomic<bool>& stop,
                         const k8s::connection_config* connection) {
  auto log = log::get("controller");
  k8s::leader_election_options lo;
  lo.lease_namespace = flags.ns;
  lo.identity = flags.leader_elect_id.empty() ? k8s::default_identity() : flags.leader_elect_id;
  lo.lease_duration = flags.lease_duration;
  lo.renew_deadline = flags.renew_deadline;
  lo.retry_period = flags.retry_period;
  if (flags.leader_elect) {
    if (auto v = k8s::validate(lo); !v) {
      std::fprintf(stderr, "tidesync controller: %s\n", v.error().message.c_str());
      return 2;
    }
  }

  k8s::connection_config conn;
  if (connection != nullptr) {
    conn = *connection;
  } else {
    k8s::config_options co;
    co.kubeconfig = flags.kubeconfig;
    auto loaded = k8s::load_config(co);
    if (!loaded) {
      std::fprintf(stderr, "tidesync controller: %s\n", loaded.error().message.c_str());
      return 1;
    }
    conn = std::move(*loaded);
  }

  auto registry = std::make_shared<metrics::registry>();
  registry->init_controller("bucketsync");
  registry->init_controller("bucketsyncpolicy");
  registry->init_controller("datasync");
  std::unique_ptr<metrics::endpoints> endpoints;
  if (!disabled(flags.metrics_addr) || !disabled(flags.health_addr)) {
    metrics::endpoints_options eo;
    eo.metrics_addr = disabled(flags.metrics_addr) ? "" : flags.metrics_addr;
    eo.health_addr = disabled(flags.health_addr) ? "" : flags.health_addr;
    auto started = metrics::endpoints::start(registry, eo);
    if (!started) {
      std::fprintf(stderr, "tidesync controller: %s\n", started.error().message.c_str());
      return 1;
    }
    endpoints = std::move(*started);
  }

  http::loop loop;
  k8s::client_options copts;
  copts.qps = flags.qps;
  copts.burst = flags.burst;
  k8s::client client(loop, conn, copts);
  // Lock Lease writes get their own budget, as large as the main one (see
  // manager_options::lease_client): a fifth of it was measured to fall behind, since every
  // held lock is renewed every TTL/3 and thousands can be held at once.
  k8s::client lease_client(loop, conn, copts);
  // Events too (5 of the ~12 writes of a sync): they must not delay reconciles.
  k8s::client events_client(loop, conn, copts);

  actors::manager_options mo;
  mo.ns = flags.ns;
  mo.watch_namespace = flags.watch_namespace;
  mo.locks.ttl = flags.lock_ttl;
  mo.bucket_syncs.limits.global = flags.concurrency;
  mo.bucket_syncs.limits.per_namespace = flags.namespace_concurrency;
  mo.policies.limits.global = std::max<uint32_t>(4, flags.concurrency / 2);
  if (!flags.rclone_image.empty()) mo.job.default_image = flags.rclone_image;
  if (!flags.agent_image.empty()) mo.populate.image = flags.agent_image;
  mo.datasyncs.limits.global = flags.concurrency;
  mo.metrics = registry;
  mo.lease_client = &lease_client;
  mo.events_client = &events_client;
  actors::manager mgr(client, loop, mo);

  std::atomic<bool> leading{!flags.leader_elect};
  std::atomic<bool> lost{false};
  if (endpoints) {
    endpoints->add_liveness("ping", [] { return metrics::check_result{}; });
    endpoints->add_readiness("informers", [&mgr] {
      if (mgr.synced()) return metrics::check_result{};
      return metrics::check_result{false, "the informer caches have not synced yet"};
    });
  }

  if (auto w = mgr.start_watching(); !w) {
    std::fprintf(stderr, "tidesync controller: %s\n", w.error().message.c_str());
    return 1;
  }

  if (!disabled(flags.config_api_addr)) {
    auto token = actors::config_api_token_source(client, flags.ns);
    if (!token) {
      std::fprintf(stderr, "tidesync controller: the config API: %s\n",
                   token.error().message.c_str());
      return 1;
    }
    configapi::server_options so;
    so.address = flags.config_api_addr;
    so.token = std::move(*token);
    auto port = mgr.start_config_api(std::move(so), [&leading] { return leading.load(); });
    if (!port) {
      std::fprintf(stderr, "tidesync controller: the config API: %s\n",
                   port.error().message.c_str());
      return 1;
    }
    if (!flags.config_api_url_file.empty()) {
      auto addr = metrics::parse_listen_address(flags.config_api_addr);
      std::string host = addr && addr->host != "0.0.0.0" ? addr->host : "127.0.0.1";
      std::ofstream(flags.config_api_url_file)
          << "http://" << metrics::host_port(host, *port) << "\n";
    }
  }

  if (!disabled(flags.webhook_addr)) {
    auto port =
        mgr.start_webhook(webhook_settings_of(flags), [&leading] { return leading.load(); });
    if (!port) {
      std::fprintf(stderr, "tidesync controller: the admission webhook: %s\n",
                   port.error().message.c_str());
      return 1;
    }
  }

  std::unique_ptr<k8s::leader_elector> elector;
  if (flags.leader_elect) {
    k8s::leader_callbacks cb;
    cb.started_leading = [&] {
      leading = true;
      registry->leader(true);
    };
    cb.stopped_leading = [&] {
      if (leading.exchange(false)) lost = true;
      registry->leader(false);
    };
    cb.new_leader = [log](const std::string& id) { log->info("the leader is now {}", id); };
    elector = std::make_unique<k8s::leader_elector>(client, loop, lo, std::move(cb));
    elector->start();
    log->info("waiting for the leader Lease {}/{} as {}", lo.lease_namespace, lo.lease_name,
              lo.identity);
  } else {
    registry->leader(true);
  }

  int exit_code = 0;
  auto watch_started = std::chrono::steady_clock::now();
  bool warned_unsynced = false, said_synced = false;
  while (!stop.load()) {
    if (!mgr.synced()) {
      // Not fatal: the informers keep retrying (a CRD applied later is picked up); /readyz
      // says not ready meanwhile.
      if (!warned_unsynced &&
          std::chrono::steady_clock::now() - watch_started > std::chrono::seconds(30)) {
        log->warn(
            "still waiting for the first listing of: {}; is the CRD installed (kubectl "
            "apply -f deploy/crds) and may the controller list and watch it (RBAC)?",
            mgr.unsynced());
        warned_unsynced = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (!said_synced) {
      log->info("informer caches synced");
      said_synced = true;
    }
    if (lost.load()) {
      log->error("lost the leader Lease: exiting so a restart rejoins the election cleanly");
      exit_code = 2;
      break;
    }
    if (leading.load() && !mgr.controllers_running()) {
      if (auto s = mgr.start_controllers(); !s) {
        log->error("cannot start the controllers: {}", s.error().message);
        exit_code = 1;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  log->info("shutting down");
  mgr.stop();
  if (elector) elector->stop();
  if (endpoints) endpoints->stop();
  loop.stop();
  return exit_code;
}

int run_controller(int argc, char** argv) {
  controller_flags flags;
  bool help = false;
  auto err = parse_controller_flags(argc, argv, flags, help);
  if (help) {
    std::fputs(controller_usage(), stdout);
    return 0;
  }
  if (!err.empty()) {
    std::fprintf(stderr, "tidesync controller: %s\n\n%s", err.c_str(), controller_usage());
    return 2;
  }
  // SIGTERM/SIGINT are taken by a watcher thread that sets the stop flag; every other thread
  // starts with them blocked.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);
  static std::atomic<bool> stop{false};
  std::thread([sigs] {
    int sig = 0;
    sigwait(&sigs, &sig);
    log::get("controller")->info("received {}", sig == SIGINT ? "SIGINT" : "SIGTERM");
    stop = true;
  }).detach();
  return run_controller_until(flags, stop);
}

}  // namespace tidesync::cli
