// `tidesync agent wait datasync/NAME`: blocks until a DataSync is Ready (docs/datasync.md,
// "Readiness"), for an init container of a workspace pod, so a workspace started before its
// data waits instead of failing.
//
// It watches the DataSyncs of one namespace with the informer (list, then watch; re-watch with
// backoff on errors, relist on 410), so an API server restart or a dropped connection only
// delays it. Ready means condition Ready=True for the object's current generation; Failed the
// same for phase Failed. A DataSync that does not exist yet is waited for.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "config/validation.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/k8s/config.hpp"
#include "runtime/watch/client_transport.hpp"
#include "runtime/watch/informer.hpp"

namespace tidesync::cli {
namespace {

constexpr int k_ready = 0;
constexpr int k_failed = 1;
constexpr int k_usage = 2;
constexpr int k_timed_out = 3;

void wait_usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: tidesync agent wait datasync/NAME [-n NAMESPACE] [--timeout D] "
               "[--kubeconfig PATH]\n\n"
               "Blocks until the DataSync is Ready (every VM image downloaded and verified), for\n"
               "an init container of a workspace pod. Prints each change of its phase. A\n"
               "DataSync that does not exist yet is waited for.\n\n"
               "Flags:\n"
               "  -n, --namespace NS   its namespace (default: the pod's own, or the kubeconfig "
               "context's)\n"
               "  --timeout D          give up after D (Go duration, e.g. 30m; default: wait "
               "forever)\n"
               "  --kubeconfig PATH    default: $KUBECONFIG, ~/.kube/config, in-cluster\n\n"
               "The pod's service account needs get, list and watch on datasyncs.tidesync.io.\n"
               "Exit codes: 0 Ready, 1 Failed (the message says why), 2 bad usage or no API\n"
               "configuration, 3 timed out.\n");
}

// What a DataSync's status says, for this wait.
struct verdict {
  bool exists = false;
  bool ready = false;
  bool failed = false;
  std::string phase;
  std::string message;
  std::string reason;  // of the Ready condition
};

verdict judge(const json::value& ds) {
  verdict v;
  v.exists = true;
  const auto* status = ds.at("status");
  if (status == nullptr || !status->is_object()) return v;
  v.phase = std::string(status->get_string("phase"));
  v.message = std::string(status->get_string("message"));
  auto generation = ds.at_path({"metadata", "generation"});
  bool current = generation != nullptr && generation->is_int() &&
                 status->get_int("observedGeneration") == generation->as_int();
  if (!current) return v;  // the controller has not looked at this spec yet
  if (v.phase == "Failed") v.failed = true;
  if (const auto* conds = status->at("conditions"); conds && conds->is_array())
    for (const auto& c : conds->as_array())
      if (c.get_string("type") == "Ready") {
        v.ready = c.get_string("status") == "True";
        v.reason = std::string(c.get_string("reason"));
      }
  return v;
}

}  // namespace

int run_agent_wait(int argc, char** argv) {
  std::string target, ns, kubeconfig;
  std::optional<std::chrono::seconds> timeout;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view flag) -> std::optional<std::string> {
      std::string prefix = std::string(flag) + "=";
      if (a.rfind(prefix, 0) == 0) return std::string(a.substr(prefix.size()));
      if (a == flag && i + 1 < argc) return std::string(argv[++i]);
      return std::nullopt;
    };
    auto bad = [&](const std::string& why) {
      std::fprintf(stderr, "tidesync agent wait: %s\n\n", why.c_str());
      wait_usage(stderr);
      return k_usage;
    };
    if (a == "-h" || a == "--help") {
      wait_usage(stdout);
      return 0;
    }
    if (a == "-n" || a.rfind("--namespace", 0) == 0) {
      auto v = a == "-n" ? value("-n") : value("--namespace");
      if (!v || v->empty()) return bad("--namespace needs a value");
      ns = *v;
    } else if (a.rfind("--timeout", 0) == 0) {
      auto v = value("--timeout");
      if (!v) return bad("--timeout needs a duration (e.g. 30m)");
      auto d = config::parse_duration(*v);
      if (!d || d->count() <= 0)
        return bad("--timeout \"" + *v + "\" is not a positive Go duration (e.g. 90s, 30m, 1h)");
      timeout = *d;
    } else if (a.rfind("--kubeconfig", 0) == 0) {
      auto v = value("--kubeconfig");
      if (!v || v->empty()) return bad("--kubeconfig needs a path");
      kubeconfig = *v;
    } else if (!a.empty() && a.front() == '-') {
      return bad("unknown flag " + std::string(a));
    } else if (target.empty()) {
      target = std::string(a);
    } else {
      return bad("one DataSync only (got \"" + target + "\" and \"" + std::string(a) + "\")");
    }
  }
  std::string name;
  for (std::string_view p : {"datasync/", "datasyncs/", "datasync.tidesync.io/"})
    if (target.rfind(p, 0) == 0) name = target.substr(p.size());
  if (name.empty() || !config::check_dns_subdomain(name).empty()) {
    std::fprintf(stderr, "tidesync agent wait: name the DataSync as datasync/NAME (got \"%s\")\n\n",
                 target.c_str());
    wait_usage(stderr);
    return k_usage;
  }

  k8s::config_options co;
  co.kubeconfig = kubeconfig;
  auto conn = k8s::load_config(co);
  if (!conn) {
    std::fprintf(stderr, "tidesync agent wait: %s\n", conn.error().message.c_str());
    return k_usage;
  }
  if (ns.empty()) ns = conn->default_namespace.empty() ? "default" : conn->default_namespace;

  http::loop loop;
  k8s::client client(loop, *conn);
  watch::client_transport transport(client,
                                    {"tidesync.io", "v1alpha1", "datasyncs", "DataSync", true}, ns,
                                    std::chrono::seconds(30));
  watch::watcher_options wo;
  wo.name = "datasyncs";
  watch::informer informer(transport, wo);

  std::mutex mu;
  std::condition_variable cv;
  verdict latest;
  bool seen_any = false;
  const std::string key = ns + "/" + name;
  auto look = [&] {
    verdict v;
    if (auto h = informer.store().get(key))
      if (auto doc = h->parse()) v = judge(*doc);
    std::lock_guard<std::mutex> g(mu);
    latest = std::move(v);
    seen_any = seen_any || informer.has_synced();
    cv.notify_all();
  };
  informer.add_handler([&](const std::string& k) {
    if (k == key) look();
  });
  loop.post([&] { informer.start(); });

  std::fprintf(stderr, "waiting for datasync/%s in namespace %s to be Ready\n", name.c_str(),
               ns.c_str());
  auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                          : std::chrono::steady_clock::time_point::max();
  std::string shown;
  int result = k_timed_out;
  {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      // The informer's first listing tells whether the DataSync exists at all.
      if (!seen_any && informer.has_synced()) {
        seen_any = true;
        lock.unlock();
        look();
        lock.lock();
      }
      std::string now = !latest.exists ? (seen_any ? "not created yet" : "")
                                       : (latest.phase.empty() ? "no status yet" : latest.phase) +
                                             (latest.message.empty() ? "" : ": " + latest.message);
      if (!now.empty() && now != shown) {
        std::fprintf(stderr, "datasync/%s: %s\n", name.c_str(), now.c_str());
        shown = now;
      }
      if (latest.ready) {
        result = k_ready;
        break;
      }
      if (latest.failed) {
        result = k_failed;
        break;
      }
      auto until = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(1));
      cv.wait_until(lock, until);
      if (std::chrono::steady_clock::now() >= deadline) break;
    }
  }
  std::promise<void> stopped;
  loop.post([&] {
    informer.stop();
    stopped.set_value();
  });
  stopped.get_future().wait();
  loop.stop();
  if (result == k_ready) std::printf("datasync/%s is Ready\n", name.c_str());
  if (result == k_failed)
    std::fprintf(stderr, "datasync/%s failed (%s): %s\n", name.c_str(), latest.reason.c_str(),
                 latest.message.c_str());
  if (result == k_timed_out)
    std::fprintf(stderr, "datasync/%s is not Ready after %s (last: %s)\n", name.c_str(),
                 config::format_duration(timeout.value_or(std::chrono::seconds(0))).c_str(),
                 shown.empty() ? "nothing seen: is the API server reachable?" : shown.c_str());
  return result;
}

}  // namespace tidesync::cli
