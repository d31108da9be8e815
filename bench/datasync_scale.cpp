// DataSyncs at scale (issue 6, docs/benchmarks.md "DataSync queue at scale"): N DataSyncs of V
// VMs each, created at once against `tidesync simulate` (the embedded API server; no
// controller, no kubelet), reconciled by `tidesync controller` running as its own process under
// the policy ConfigMap (concurrency C). This program plays the fast sources: every populate Job
// completes exactly D ms after this program sees it, so each DataSync's own work is D and the
// ideal time for all is N × D / C (each DataSync's VMs run side by side).
//
// Measured, from the DataSync watch of this program:
// - the time from the first create to every DataSync Succeeded, against that ideal;
// - the admission latency: for the k-th DataSync to start syncing (k > C), the time from the
//   (k-C)-th DataSync's Succeeded (the slot it freed) to that start;
// - the controller's CPU seconds and peak RSS (VmHWM);
// - and as checks: the most DataSyncs ever seen Syncing at once (must be <= C) and the starts
//   out of creation order (must be 0).
//
//   datasync_scale [--objects N] [--vms V] [--concurrency C] [--job-ms D] [--runs R]
//                  [--qps Q] [--burst B] [--tidesync PATH] [--crds DIR] [--timeout S] [--keep]
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/k8s/config.hpp"
#include "runtime/k8s/resource.hpp"
#include "runtime/log.hpp"
#include "runtime/rfc3339.hpp"
#include "runtime/watch/client_transport.hpp"
#include "runtime/watch/informer.hpp"
#include "scale_support.hpp"

namespace {

using namespace tidesync;
using namespace tidesync::bench;

constexpr const char* k_ns = "bench";
constexpr const char* k_controller_ns = "tidesync-system";

struct options {
  int objects = 1000;
  int vms = 3;
  int concurrency = 4;
  int job_ms = 100;
  int runs = 3;
  double qps = -1;  // <0: the controller's default
  int burst = -1;
  std::string tidesync;
  std::string crds = "deploy/crds";
  int timeout_s = 3600;
  bool keep = false;
};

k8s::resource datasyncs() {
  return {"tidesync.io", "v1alpha1", "datasyncs", "DataSync", true};
}

json::value namespace_object(const std::string& name) {
  return json::value(json::object{
      {"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", json::object{{"name", name}}}});
}

json::value policy_object(const options& o) {
  return json::value(json::object{
      {"apiVersion", "v1"},
      {"kind", "ConfigMap"},
      {"metadata", json::object{{"name", "tidesync-policy"}, {"namespace", k_controller_ns}}},
      {"data", json::object{{"concurrency", std::to_string(o.concurrency)},
                            {"retryLimit", "0"},
                            {"retryBackoffDuration", "1s"}}},
  });
}

std::string datasync_name(int i) {
  char name[32];
  std::snprintf(name, sizeof name, "ws-%05d", i);
  return name;
}

json::value datasync_object(const options& o, int i) {
  json::array vms;
  for (int v = 0; v < o.vms; ++v)
    vms.push_back(json::value(json::object{
        {"name", "vm" + std::to_string(v)},
        {"sourceType", "http"},
        {"url", "http://127.0.0.1:9/images/" + datasync_name(i) + "/vm" + std::to_string(v)},
    }));
  return json::value(json::object{
      {"apiVersion", "tidesync.io/v1alpha1"},
      {"kind", "DataSync"},
      {"metadata", json::object{{"name", datasync_name(i)}, {"namespace", k_ns}}},
      {"spec", json::object{{"workspaceId", "w" + std::to_string(i)},
                            {"storage", json::object{{"size", "1Mi"}}},
                            {"vms", std::move(vms)}}},
  });
}

json::value job_complete_patch() {
  std::string now = rfc3339::now();
  return json::value(json::object{
      {"status", json::object{{"startTime", now},
                              {"completionTime", now},
                              {"active", 0},
                              {"succeeded", 1},
                              {"conditions", json::array{json::value(json::object{
                                                 {"type", "Complete"},
                                                 {"status", "True"},
                                                 {"lastProbeTime", now},
                                                 {"lastTransitionTime", now},
                                             })}}}},
  });
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

struct run_result {
  bool ok = false;
  double all_succeeded_s = 0;
  double ideal_s = 0;
  double admission_median_ms = 0, admission_p99_ms = 0, admission_max_ms = 0;
  int max_syncing = 0;
  int out_of_order = 0;
  int failed = 0;
  uint64_t jobs_completed = 0;
  double controller_cpu_s = 0;
  double controller_hwm_mib = 0;
  double rss_before_mib = 0;
  int log_warnings = 0, log_errors = 0;
  std::vector<std::string> log_samples;
};

run_result run_once(const options& o, int run_index) {
  run_result r;
  r.ideal_s = static_cast<double>(o.objects) * o.job_ms / 1000.0 / o.concurrency;
  char tmpl[] = "/tmp/tidesync-dsscale-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::perror("mkdtemp");
    return r;
  }
  fs::path dir = tmpl;
  fs::path server_log = dir / "simulate.log", controller_log = dir / "controller.log";
  std::fprintf(stderr, "run %d: dir %s, load %s\n", run_index, dir.c_str(), loadavg().c_str());

  child sim = start_api_server(o.tidesync, o.crds, dir, server_log);
  if (sim.pid < 0) return r;
  auto conn = k8s::load_kubeconfig((dir / "kubeconfig").string(), "");
  if (!conn) {
    std::fprintf(stderr, "  kubeconfig: %s\n", conn.error().message.c_str());
    stop_child(sim, "simulate", std::chrono::seconds(10));
    return r;
  }

  {
    http::loop loop;
    k8s::client_options copts;
    copts.qps = 0;  // this program is not what is measured: no client-side limit
    k8s::client client(loop, *conn, copts);
    for (const char* ns : {k_ns, k_controller_ns})
      if (auto res = client.create_sync(k8s::resources::namespaces(), "", namespace_object(ns));
          !res && res.error().code != errc::already_exists)
        std::fprintf(stderr, "  create namespace %s: %s\n", ns, res.error().message.c_str());
    if (auto res =
            client.create_sync(k8s::resources::configmaps(), k_controller_ns, policy_object(o));
        !res)
      std::fprintf(stderr, "  create the policy: %s\n", res.error().message.c_str());

    // The fast sources (populate Jobs complete D ms after they appear) and the DataSync watch:
    // informers on our loop thread; all their state is touched only there.
    watch::client_transport job_transport(client, k8s::resources::jobs(), k_ns);
    watch::client_transport ds_transport(client, datasyncs(), k_ns);
    watch::watcher_options jw;
    jw.name = "bench/jobs";
    jw.label_selector = "tidesync.io/datasync";
    watch::watcher_options dw;
    dw.name = "bench/datasyncs";
    watch::informer jobs(job_transport, jw);
    watch::informer syncs(ds_transport, dw);

    std::mutex mu;
    std::condition_variable cv;
    std::unordered_set<std::string> seen_jobs;
    std::atomic<uint64_t> jobs_completed{0}, patch_errors{0};
    struct times {
      std::optional<clock_type::time_point> syncing, done;
      std::string order_key;  // creationTimestamp + name: the FIFO order
    };
    std::unordered_map<std::string, times> by_key;
    std::vector<clock_type::time_point> starts, completions;
    std::string max_started_order;
    int syncing_now = 0, max_syncing = 0, out_of_order = 0, failed = 0;
    size_t done_count = 0;
    std::atomic<bool> all_done{false};
    std::atomic<size_t> progress_done{0}, progress_started{0};
    clock_type::time_point t0{}, t_done{};
    const size_t n = static_cast<size_t>(o.objects);

    jobs.add_handler([&](const std::string& key) {
      auto h = jobs.store().get(key);
      if (!h || h->meta.deleting || !seen_jobs.insert(key).second) return;
      std::string ns = h->meta.ns, name = h->meta.name;
      loop.post_after(std::chrono::milliseconds(o.job_ms), [&, ns, name] {
        client.patch_status(k8s::resources::jobs(), ns, name, k8s::patch_type::merge,
                            job_complete_patch(), [&](expected<json::value> res) {
                              if (res) {
                                ++jobs_completed;
                              } else if (res.error().code != errc::not_found) {
                                ++patch_errors;
                                std::fprintf(stderr, "  job status patch: %s\n",
                                             res.error().message.c_str());
                              }
                            });
      });
    });

    syncs.add_handler([&](const std::string& key) {
      auto h = syncs.store().get(key);
      if (!h) return;
      auto doc = h->parse();
      if (!doc) return;
      auto& t = by_key[key];
      if (t.order_key.empty()) {
        const auto* ts = doc->at_path({"metadata", "creationTimestamp"});
        t.order_key = (ts && ts->is_string() ? ts->as_string() : "") + "/" + h->meta.name;
      }
      const auto* p = doc->at_path({"status", "phase"});
      std::string phase = p && p->is_string() ? p->as_string() : "";
      auto now = clock_type::now();
      if (!t.syncing && (phase == "Syncing" || phase == "Succeeded")) {
        t.syncing = now;
        starts.push_back(now);
        ++progress_started;
        if (t.order_key < max_started_order) ++out_of_order;
        max_started_order = std::max(max_started_order, t.order_key);
        max_syncing = std::max(max_syncing, ++syncing_now);
      }
      if (!t.done && (phase == "Succeeded" || phase == "Failed")) {
        t.done = now;
        completions.push_back(now);
        if (t.syncing) --syncing_now;
        if (phase == "Failed") {
          if (failed++ < 3) {
            const auto* m = doc->at_path({"status", "message"});
            std::fprintf(stderr, "  %s failed: %s\n", key.c_str(),
                         m && m->is_string() ? m->as_string().c_str() : "");
          }
        }
        progress_done = ++done_count;
        if (done_count == n) {
          t_done = now;
          std::lock_guard<std::mutex> g(mu);
          all_done = true;
          cv.notify_all();
        }
      }
    });

    loop.post([&] {
      jobs.start();
      syncs.start();
    });
    if (!wait_until([&] { return jobs.has_synced() && syncs.has_synced(); },
                    std::chrono::seconds(30)))
      std::fprintf(stderr, "  the bench's informers did not sync\n");

    std::vector<std::string> cargs = {
        o.tidesync,       "controller", "--kubeconfig",  (dir / "kubeconfig").string(),
        "--metrics-addr", "0",          "--health-addr", "0"};
    if (o.qps >= 0) {
      cargs.push_back("--kube-api-qps");
      cargs.push_back(std::to_string(o.qps));
    }
    if (o.burst >= 0) {
      cargs.push_back("--kube-api-burst");
      cargs.push_back(std::to_string(o.burst));
    }
    child ctl = start_controller(cargs, controller_log);
    if (ctl.pid > 0) {
      proc_sample before = sample(ctl.pid);
      r.rss_before_mib = before.rss_mib;
      std::fprintf(stderr, "  controller pid %d, simulate pid %d; RSS %.1f MiB before\n", ctl.pid,
                   sim.pid, before.rss_mib);

      // All DataSyncs at once, 64 creates in flight, in name order (so creation order and
      // name order agree within one second).
      std::atomic<int> next{0}, create_errors{0}, in_flight{0};
      std::function<void()> create_more = [&] {
        while (in_flight < 64 && next < o.objects) {
          int i = next++;
          ++in_flight;
          client.create(datasyncs(), k_ns, datasync_object(o, i), [&](expected<json::value> res) {
            --in_flight;
            if (!res && create_errors++ < 5)
              std::fprintf(stderr, "  create: %s\n", res.error().message.c_str());
            create_more();
          });
        }
      };
      t0 = clock_type::now();
      loop.post(create_more);

      auto deadline = t0 + std::chrono::seconds(o.timeout_s);
      for (;;) {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait_for(lk, std::chrono::seconds(10), [&] { return all_done.load(); });
        lk.unlock();
        if (all_done) break;
        if (exited(ctl)) {
          std::fprintf(stderr, "  the controller exited during the run; see %s\n",
                       controller_log.c_str());
          break;
        }
        if (clock_type::now() > deadline) {
          std::fprintf(stderr, "  timeout after %d s\n", o.timeout_s);
          break;
        }
        auto s = sample(ctl.pid);
        std::fprintf(stderr,
                     "  %6.1f s: started %zu, done %zu, jobs completed %llu; controller CPU "
                     "%.1f s RSS %.1f MiB; load %s\n",
                     seconds_since(t0), progress_started.load(), progress_done.load(),
                     static_cast<unsigned long long>(jobs_completed.load()), s.cpu_s - before.cpu_s,
                     s.rss_mib, loadavg().c_str());
      }
      if (all_done) {
        proc_sample after = sample(ctl.pid);
        // Read the loop thread's state on the loop thread.
        std::promise<void> got;
        loop.post([&] {
          r.all_succeeded_s = std::chrono::duration<double>(t_done - t0).count();
          std::vector<double> admission;
          auto c = static_cast<size_t>(o.concurrency);
          for (size_t k = c; k < starts.size() && k - c < completions.size(); ++k)
            admission.push_back(
                std::chrono::duration<double, std::milli>(starts[k] - completions[k - c]).count());
          r.admission_median_ms = percentile(admission, 0.5);
          r.admission_p99_ms = percentile(admission, 0.99);
          r.admission_max_ms = percentile(admission, 1.0);
          r.max_syncing = max_syncing;
          r.out_of_order = out_of_order;
          r.failed = failed;
          got.set_value();
        });
        got.get_future().wait();
        r.controller_cpu_s = after.cpu_s - before.cpu_s;
        r.controller_hwm_mib = after.hwm_mib;
        r.ok = create_errors == 0 && patch_errors == 0 && r.failed == 0;
      }
      r.jobs_completed = jobs_completed;
    }

    stop_child(ctl, "controller", std::chrono::seconds(30));
    std::promise<void> stopped;
    loop.post([&] {
      jobs.stop();
      syncs.stop();
      stopped.set_value();
    });
    stopped.get_future().wait_for(std::chrono::seconds(10));
    loop.stop();
  }
  stop_child(sim, "simulate", std::chrono::seconds(30));

  auto scanned = scan_log(controller_log);
  r.log_warnings = scanned.warnings;
  r.log_errors = scanned.errors;
  r.log_samples = std::move(scanned.samples);
  if (r.ok && !o.keep && r.log_errors == 0) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  } else {
    std::fprintf(stderr, "  kept %s (logs, state)\n", dir.c_str());
  }
  return r;
}

int usage() {
  std::fputs(
      "usage: datasync_scale [--objects N] [--vms V] [--concurrency C] [--job-ms D] [--runs R]\n"
      "                      [--qps Q] [--burst B] [--tidesync PATH] [--crds DIR] [--timeout S] "
      "[--keep]\n",
      stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  o.tidesync = default_tidesync();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--keep") {
      o.keep = true;
      continue;
    }
    if (a == "-h" || a == "--help" || i + 1 >= argc) return usage();
    const char* v = argv[++i];
    if (a == "--objects")
      o.objects = std::atoi(v);
    else if (a == "--vms")
      o.vms = std::atoi(v);
    else if (a == "--concurrency")
      o.concurrency = std::atoi(v);
    else if (a == "--job-ms")
      o.job_ms = std::atoi(v);
    else if (a == "--runs")
      o.runs = std::atoi(v);
    else if (a == "--qps")
      o.qps = std::atof(v);
    else if (a == "--burst")
      o.burst = std::atoi(v);
    else if (a == "--tidesync")
      o.tidesync = v;
    else if (a == "--crds")
      o.crds = v;
    else if (a == "--timeout")
      o.timeout_s = std::atoi(v);
    else
      return usage();
  }
  if (o.objects <= 0 || o.runs <= 0 || o.vms <= 0 || o.concurrency <= 0 || o.job_ms < 0)
    return usage();
  if (!fs::exists(o.tidesync) || !fs::exists(o.crds)) {
    std::fprintf(stderr,
                 "need the tidesync binary (%s) and the CRDs (%s): see --tidesync, --crds\n",
                 o.tidesync.c_str(), o.crds.c_str());
    return 2;
  }
  log::set_level("warn");
  signal(SIGPIPE, SIG_IGN);

  std::printf("# %d DataSyncs x %d VMs, concurrency %d, each Job %d ms, qps/burst %s/%s\n",
              o.objects, o.vms, o.concurrency, o.job_ms,
              o.qps >= 0 ? std::to_string(o.qps).c_str() : "default",
              o.burst >= 0 ? std::to_string(o.burst).c_str() : "default");
  std::vector<run_result> results;
  for (int i = 1; i <= o.runs; ++i) {
    auto r = run_once(o, i);
    std::printf(
        "run %d: %s | all Succeeded %.2f s, ideal %.2f s (%.0f %%) | admission after a slot "
        "frees: median %.1f ms, p99 %.1f ms, max %.1f ms | max Syncing %d (limit %d), starts out "
        "of order %d, failed %d | controller CPU %.2f s, peak RSS %.1f MiB (%.1f before) | log "
        "warnings %d errors %d\n",
        i, r.ok ? "ok" : "FAILED", r.all_succeeded_s, r.ideal_s,
        r.all_succeeded_s > 0 ? 100.0 * r.ideal_s / r.all_succeeded_s : 0.0, r.admission_median_ms,
        r.admission_p99_ms, r.admission_max_ms, r.max_syncing, o.concurrency, r.out_of_order,
        r.failed, r.controller_cpu_s, r.controller_hwm_mib, r.rss_before_mib, r.log_warnings,
        r.log_errors);
    for (const auto& s : r.log_samples)
      std::printf("    log: %s\n", s.c_str());
    std::fflush(stdout);
    if (r.ok) results.push_back(std::move(r));
  }
  if (results.empty()) return 1;
  auto med = [&](auto field) {
    std::vector<double> v;
    for (const auto& r : results)
      v.push_back(field(r));
    return median(v);
  };
  std::printf(
      "median of %zu: all Succeeded %.2f s against ideal %.2f s | admission median %.1f ms, p99 "
      "%.1f ms | controller CPU %.2f s | peak RSS %.1f MiB\n",
      results.size(), med([](const run_result& r) { return r.all_succeeded_s; }),
      results.front().ideal_s, med([](const run_result& r) { return r.admission_median_ms; }),
      med([](const run_result& r) { return r.admission_p99_ms; }),
      med([](const run_result& r) { return r.controller_cpu_s; }),
      med([](const run_result& r) { return r.controller_hwm_mib; }));
  bool checks = true;
  for (const auto& r : results)
    checks = checks && r.max_syncing <= o.concurrency && r.out_of_order == 0;
  if (!checks) std::printf("CHECK FAILED: concurrency exceeded or FIFO order broken\n");
  return results.size() == static_cast<size_t>(o.runs) && checks ? 0 : 1;
}
