// The controller at scale: N BucketSyncs created at once against `tidesync simulate` (the
// embedded API server, no controller, no kubelet), reconciled by `tidesync controller` running
// as its own process, with this program playing a fast Job controller (every new Job of a
// BucketSync is marked Complete at once). Measures the wall time until every BucketSync is
// Finished, the controller's CPU seconds, peak RSS and RSS growth per object, and the API
// requests the server saw. Results: docs/benchmarks.md.
//
// Not a Google Benchmark: one iteration is minutes long and spans three processes, so this is
// a plain main that prints one line per run and the medians.
//
//   controller_scale [--objects N] [--runs R] [--concurrency C] [--shared-destinations K]
//                    [--qps Q] [--burst B] [--tidesync PATH] [--crds DIR] [--timeout S] [--keep]
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
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

struct options {
  int objects = 5000;
  int runs = 3;
  int concurrency = 0;  // 0: the controller's default
  int shared = 0;       // >1: groups of this many share a destination bucket
  double qps = -1;      // <0: the controller's default
  int burst = -1;
  std::string tidesync;
  std::string crds = "deploy/crds";
  int timeout_s = 3600;
  bool keep = false;
};

k8s::resource bucket_syncs() {
  return {"tidesync.io", "v1alpha1", "bucketsyncs", "BucketSync", true};
}

// --- server-side request count -------------------------------------------------------------

// The simulated server logs every request at debug level: "[apiserver] METHOD PATH?Q -> CODE".
// Classifies them: what this program sent (BucketSync creates, Job status patches, its own
// namespaced list/watch) versus the controller (everything else). Watches are not counted as
// requests (they are long-lived streams).
struct request_count {
  uint64_t controller = 0;
  uint64_t bench = 0;
  uint64_t watches = 0;
  uint64_t non_2xx = 0;
  std::map<std::string, uint64_t> by_kind;  // controller only: "PATCH bucketsyncs/status"
};

request_count count_requests(const fs::path& server_log) {
  request_count rc;
  std::ifstream f(server_log);
  std::string line;
  bool seen_lease_list = false;
  while (std::getline(f, line)) {
    auto tag = line.find("[apiserver] ");
    auto arrow = line.rfind(" -> ");
    if (tag == std::string::npos || arrow == std::string::npos) continue;
    std::string req = line.substr(tag + 12, arrow - tag - 12);
    int code = std::atoi(line.c_str() + arrow + 4);
    auto sp = req.find(' ');
    if (sp == std::string::npos) continue;
    std::string method = req.substr(0, sp);
    std::string target = req.substr(sp + 1);
    std::string path = target.substr(0, target.find('?'));
    std::string query =
        target.find('?') == std::string::npos ? "" : target.substr(target.find('?'));
    if (path.rfind("/api", 0) != 0) continue;
    if (query.find("watch=true") != std::string::npos ||
        query.find("watch=1") != std::string::npos) {
      ++rc.watches;
      continue;
    }
    // Segments after /api/v1 or /apis/group/version.
    std::vector<std::string> seg;
    std::istringstream ps(path);
    for (std::string s; std::getline(ps, s, '/');)
      if (!s.empty()) seg.push_back(s);
    size_t base = (!seg.empty() && seg[0] == "api") ? 2 : 3;
    if (seg.size() <= base) continue;  // discovery
    std::vector<std::string> rest(seg.begin() + static_cast<long>(base), seg.end());
    std::string ns, plural, name, sub;
    if (rest[0] == "namespaces" && rest.size() >= 3) {
      ns = rest[1];
      plural = rest[2];
      if (rest.size() > 3) name = rest[3];
      if (rest.size() > 4) sub = rest[4];
    } else {
      plural = rest[0];
      if (rest.size() > 1) name = rest[1];
      if (rest.size() > 2) sub = rest[2];
    }
    // This program lists the lock Leases once before the controller starts (its informer
    // syncs first), so the first listing of that collection is ours.
    bool first_lease_list = method == "GET" && plural == "leases" && name.empty() &&
                            ns == "tidesync-system" && !seen_lease_list;
    if (first_lease_list) seen_lease_list = true;
    bool bench = first_lease_list ||
                 (method == "POST" && plural == "bucketsyncs" && ns == k_ns && name.empty()) ||
                 (method == "PATCH" && plural == "jobs" && sub == "status") ||
                 (method == "GET" && ns == k_ns && name.empty()) ||
                 (method == "POST" && plural == "namespaces");
    if (bench) {
      ++rc.bench;
      continue;
    }
    ++rc.controller;
    if (code < 200 || code > 299) ++rc.non_2xx;
    std::string k = method + " " + plural + (sub.empty() ? "" : "/" + sub) +
                    (name.empty() && method != "POST" ? " (collection)" : "");
    if (code < 200 || code > 299) k += " -> " + std::to_string(code);
    ++rc.by_kind[k];
  }
  return rc;
}

// --- one run -------------------------------------------------------------------------------

struct run_result {
  bool ok = false;
  double created_s = 0;   // all creates answered
  double finished_s = 0;  // every BucketSync has phase Finished
  double quiet_s = 0;     // ... and no finalizer left and no Job left
  double controller_cpu_s = 0;
  double controller_hwm_mib = 0;
  double rss_before_mib = 0;
  double rss_after_mib = 0;
  double bytes_per_object = 0;
  double server_cpu_s = 0;
  double bench_cpu_s = 0;
  int controller_threads = 0;
  uint64_t jobs_completed = 0;
  uint64_t sync_errors = 0;
  std::string first_error;
  request_count requests;
  int log_warnings = 0;
  int log_errors = 0;
  std::vector<std::string> log_samples;
};

json::value bucket_sync_object(const options& o, int i) {
  char name[32];
  std::snprintf(name, sizeof name, "scale-%05d", i);
  int dst = o.shared > 1 ? i / o.shared : i;
  return json::value(json::object{
      {"apiVersion", "tidesync.io/v1alpha1"},
      {"kind", "BucketSync"},
      {"metadata", json::object{{"name", name}, {"namespace", k_ns}}},
      {"spec", json::object{{"source", "bench-src-" + std::to_string(i) + "/data"},
                            {"destination", "bench-dst-" + std::to_string(dst) + "/data"}}},
  });
}

run_result run_once(const options& o, int run_index) {
  run_result r;
  char tmpl[] = "/tmp/tidesync-scale-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::perror("mkdtemp");
    return r;
  }
  fs::path dir = tmpl;
  fs::path server_log = dir / "simulate.log", controller_log = dir / "controller.log";
  std::fprintf(stderr, "run %d: dir %s, load %s\n", run_index, dir.c_str(), loadavg().c_str());

  // 1. The API server, logging every request (debug) so the server side can count them.
  child sim = start_api_server(o.tidesync, o.crds, dir, server_log);
  if (sim.pid < 0) return r;
  auto conn = k8s::load_kubeconfig((dir / "kubeconfig").string(), "");
  if (!conn) {
    std::fprintf(stderr, "  kubeconfig: %s\n", conn.error().message.c_str());
    stop_child(sim, "simulate", std::chrono::seconds(10));
    return r;
  }

  run_result* out = &r;
  {
    http::loop loop;
    k8s::client_options copts;
    copts.qps = 0;  // this program is not what is measured: no client-side limit
    k8s::client client(loop, *conn, copts);
    if (auto ns = client.create_sync(
            k8s::resources::namespaces(), "",
            json::value(json::object{{"apiVersion", "v1"},
                                     {"kind", "Namespace"},
                                     {"metadata", json::object{{"name", k_ns}}}}));
        !ns) {
      std::fprintf(stderr, "  create namespace: %s\n", ns.error().message.c_str());
    }

    // 2. The fast Job controller and the BucketSync watch: informers on our loop thread.
    watch::client_transport job_transport(client, k8s::resources::jobs(), k_ns);
    watch::client_transport bs_transport(client, bucket_syncs(), k_ns);
    // The lock Leases: the controller is done only when it has released (deleted) them all.
    watch::client_transport lease_transport(client, k8s::resources::leases(), "tidesync-system");
    watch::watcher_options jw;
    jw.name = "bench/jobs";
    jw.label_selector = "tidesync.io/bucketsync";
    watch::watcher_options bw;
    bw.name = "bench/bucketsyncs";
    watch::informer jobs(job_transport, jw);
    watch::informer syncs(bs_transport, bw);
    watch::watcher_options lw;
    lw.name = "bench/leases";
    watch::informer leases(lease_transport, lw);

    std::mutex mu;
    std::condition_variable cv;
    // Loop-thread state.
    std::unordered_set<std::string> patched, finished, clean;
    std::atomic<uint64_t> jobs_completed{0}, patch_errors{0}, finished_count{0}, clean_count{0};
    std::atomic<bool> all_finished{false}, all_clean{false};
    clock_type::time_point t0{}, t_finished{}, t_clean{};
    std::string first_error;
    uint64_t sync_errors = 0;
    const size_t n = static_cast<size_t>(o.objects);

    jobs.add_handler([&](const std::string& key) {
      auto h = jobs.store().get(key);
      if (!h || h->meta.deleting || patched.count(key)) return;
      auto doc = h->parse();
      if (!doc) return;
      if (const auto* s = doc->at_path({"status", "succeeded"});
          s && s->is_int() && s->as_int() > 0)
        return;
      patched.insert(key);
      std::string now = rfc3339::now();
      json::value patch(json::object{
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
      client.patch_status(k8s::resources::jobs(), h->meta.ns, h->meta.name, k8s::patch_type::merge,
                          patch, [&](expected<json::value> res) {
                            if (res) {
                              ++jobs_completed;
                            } else if (res.error().code != errc::not_found) {
                              ++patch_errors;
                              std::fprintf(stderr, "  job status patch: %s\n",
                                           res.error().message.c_str());
                            }
                          });
    });

    // Whether every object is Finished, and whether the controller is done with it (finalizer
    // removed, its Job gone, its lock Leases deleted).
    auto check_clean = [&]() {
      if (all_clean || !all_finished || jobs.store().size() != 0 || leases.store().size() != 0)
        return;
      if (clean.size() < n) return;
      t_clean = clock_type::now();
      std::lock_guard<std::mutex> g(mu);
      all_clean = true;
      cv.notify_all();
    };
    syncs.add_handler([&](const std::string& key) {
      auto h = syncs.store().get(key);
      if (!h) return;
      auto doc = h->parse();
      if (!doc) return;
      if (!finished.count(key)) {
        const auto* phase = doc->at_path({"status", "phase"});
        if (phase && phase->is_string() && phase->as_string() == "Finished") {
          finished.insert(key);
          ++finished_count;
          auto err = doc->at_path({"status", "error"});
          if (err && err->is_string() && !err->as_string().empty()) {
            if (sync_errors++ == 0) first_error = key + ": " + err->as_string();
          }
          if (finished.size() == n) {
            t_finished = clock_type::now();
            std::lock_guard<std::mutex> g(mu);
            all_finished = true;
            cv.notify_all();
          }
        }
      }
      if (finished.count(key) && !clean.count(key)) {
        const auto* fin = doc->at_path({"metadata", "finalizers"});
        if (fin == nullptr || !fin->is_array() || fin->as_array().empty()) {
          clean.insert(key);
          ++clean_count;
        }
      }
      check_clean();
    });
    // A Job deletion can be the last thing the controller does.
    jobs.add_handler([&](const std::string&) { check_clean(); });
    leases.add_handler([&](const std::string&) { check_clean(); });

    loop.post([&] {
      jobs.start();
      syncs.start();
      leases.start();
    });
    if (!wait_until([&] { return jobs.has_synced() && syncs.has_synced() && leases.has_synced(); },
                    std::chrono::seconds(30))) {
      std::fprintf(stderr, "  the bench's informers did not sync\n");
    }

    // 3. The controller, as its own process.
    std::vector<std::string> cargs = {
        o.tidesync,       "controller", "--kubeconfig",  (dir / "kubeconfig").string(),
        "--metrics-addr", "0",          "--health-addr", "0"};
    if (o.concurrency > 0) {
      cargs.push_back("--concurrency");
      cargs.push_back(std::to_string(o.concurrency));
    }
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
      proc_sample sim_before = sample(sim.pid);
      double bench_cpu0 = rusage_cpu_self();
      std::fprintf(stderr, "  controller pid %d, simulate pid %d; RSS %.1f MiB before\n", ctl.pid,
                   sim.pid, before.rss_mib);

      // 4. All objects at once: as fast as the server takes them, 64 requests in flight.
      std::atomic<int> next{0}, answered{0}, create_errors{0};
      std::atomic<bool> all_created{false};
      clock_type::time_point t_created{};
      std::function<void()> create_more;
      std::atomic<int> in_flight{0};
      create_more = [&] {
        while (in_flight < 64 && next < o.objects) {
          int i = next++;
          ++in_flight;
          client.create(bucket_syncs(), k_ns, bucket_sync_object(o, i),
                        [&](expected<json::value> res) {
                          --in_flight;
                          if (!res) {
                            if (create_errors++ < 5)
                              std::fprintf(stderr, "  create: %s\n", res.error().message.c_str());
                          }
                          if (++answered == o.objects) {
                            t_created = clock_type::now();
                            all_created = true;
                          }
                          create_more();
                        });
        }
      };
      t0 = clock_type::now();
      loop.post(create_more);

      auto deadline = t0 + std::chrono::seconds(o.timeout_s);
      auto last_progress = clock_type::now();
      for (;;) {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait_for(lk, std::chrono::seconds(10), [&] { return all_clean.load(); });
        lk.unlock();
        if (all_clean) break;
        if (exited(ctl)) {
          int status = 0;
          wait_exit(ctl, std::chrono::milliseconds(1000), &status);
          std::fprintf(stderr, "  the controller exited during the run (%s %d); see %s\n",
                       WIFSIGNALED(status) ? "signal" : "exit code",
                       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                       controller_log.c_str());
          break;
        }
        if (clock_type::now() > deadline) {
          std::fprintf(stderr, "  timeout after %d s\n", o.timeout_s);
          break;
        }
        if (clock_type::now() - last_progress >= std::chrono::seconds(10)) {
          last_progress = clock_type::now();
          auto s = sample(ctl.pid);
          std::fprintf(stderr,
                       "  %6.1f s: created %d, jobs completed %llu, finished %llu, clean %llu, "
                       "leases %zu; controller CPU %.1f s RSS %.1f MiB; load %s\n",
                       seconds_since(t0), answered.load(),
                       static_cast<unsigned long long>(jobs_completed.load()),
                       static_cast<unsigned long long>(finished_count.load()),
                       static_cast<unsigned long long>(clean_count.load()), leases.store().size(),
                       s.cpu_s - before.cpu_s, s.rss_mib, loadavg().c_str());
        }
      }
      if (all_clean) {
        proc_sample after = sample(ctl.pid);
        proc_sample sim_after = sample(sim.pid);
        out->ok = create_errors == 0 && patch_errors == 0;
        out->created_s = std::chrono::duration<double>(t_created - t0).count();
        out->finished_s = std::chrono::duration<double>(t_finished - t0).count();
        out->quiet_s = std::chrono::duration<double>(t_clean - t0).count();
        out->controller_cpu_s = after.cpu_s - before.cpu_s;
        out->controller_hwm_mib = after.hwm_mib;
        out->rss_before_mib = before.rss_mib;
        out->rss_after_mib = after.rss_mib;
        out->bytes_per_object = (after.rss_mib - before.rss_mib) * 1024 * 1024 / o.objects;
        out->server_cpu_s = sim_after.cpu_s - sim_before.cpu_s;
        out->bench_cpu_s = rusage_cpu_self() - bench_cpu0;
        out->controller_threads = after.threads;
      }
      out->jobs_completed = jobs_completed;
      out->sync_errors = sync_errors;
      out->first_error = first_error;
    }

    // 5. Stop everything we started, by PID.
    stop_child(ctl, "controller", std::chrono::seconds(30));
    std::promise<void> stopped;
    loop.post([&] {
      jobs.stop();
      syncs.stop();
      leases.stop();
      stopped.set_value();
    });
    stopped.get_future().wait_for(std::chrono::seconds(10));
    loop.stop();
  }
  stop_child(sim, "simulate", std::chrono::seconds(30));

  r.requests = count_requests(server_log);
  auto scanned = scan_log(controller_log);
  r.log_warnings = scanned.warnings;
  r.log_errors = scanned.errors;
  r.log_samples = std::move(scanned.samples);
  // Anything odd (a warning in the controller's log, a refused request) keeps the logs.
  if (r.ok && !o.keep && r.log_warnings == 0 && r.log_errors == 0 && r.requests.non_2xx == 0) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  } else {
    std::fprintf(stderr, "  kept %s (logs, state)\n", dir.c_str());
  }
  return r;
}

int usage() {
  std::fputs(
      "usage: controller_scale [--objects N] [--runs R] [--concurrency C] "
      "[--shared-destinations K]\n"
      "                        [--qps Q] [--burst B] [--tidesync PATH] [--crds DIR] [--timeout S] "
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
    auto val = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--keep") {
      o.keep = true;
      continue;
    }
    if (a == "-h" || a == "--help") return usage();
    v = val();
    if (v == nullptr) return usage();
    if (a == "--objects")
      o.objects = std::atoi(v);
    else if (a == "--runs")
      o.runs = std::atoi(v);
    else if (a == "--concurrency")
      o.concurrency = std::atoi(v);
    else if (a == "--shared-destinations")
      o.shared = std::atoi(v);
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
  if (o.objects <= 0 || o.runs <= 0) return usage();
  if (!fs::exists(o.tidesync) || !fs::exists(o.crds)) {
    std::fprintf(stderr,
                 "need the tidesync binary (%s) and the CRDs (%s): see --tidesync, --crds\n",
                 o.tidesync.c_str(), o.crds.c_str());
    return 2;
  }
  log::set_level("warn");
  signal(SIGPIPE, SIG_IGN);

  std::printf(
      "# %d BucketSyncs, destinations %s, concurrency %s, qps/burst %s/%s\n", o.objects,
      o.shared > 1 ? ("shared by groups of " + std::to_string(o.shared)).c_str() : "distinct",
      o.concurrency > 0 ? std::to_string(o.concurrency).c_str() : "default",
      o.qps >= 0 ? std::to_string(o.qps).c_str() : "default",
      o.burst >= 0 ? std::to_string(o.burst).c_str() : "default");
  std::vector<run_result> results;
  for (int i = 1; i <= o.runs; ++i) {
    auto r = run_once(o, i);
    if (!r.ok) {
      std::printf(
          "run %d: FAILED (finished %s; jobs completed %llu; controller log: %d warnings, %d "
          "errors)\n",
          i, r.finished_s > 0 ? "yes" : "no", static_cast<unsigned long long>(r.jobs_completed),
          r.log_warnings, r.log_errors);
      for (const auto& s : r.log_samples)
        std::printf("    %s\n", s.c_str());
      std::fflush(stdout);
      continue;
    }
    double per_obj = static_cast<double>(r.requests.controller) / o.objects;
    std::printf(
        "run %d: objects %d | created %.2f s | all Finished %.2f s (%.0f objects/s) | quiet %.2f s "
        "| controller CPU %.2f s (%.2f ms/object) | peak RSS %.1f MiB | RSS %.1f -> %.1f MiB = "
        "%.0f bytes/object | controller API requests %llu (%.1f/object, %llu non-2xx), watches "
        "%llu | server CPU %.2f s, bench CPU %.2f s | sync errors %llu | log warnings %d errors "
        "%d\n",
        i, o.objects, r.created_s, r.finished_s, o.objects / r.finished_s, r.quiet_s,
        r.controller_cpu_s, r.controller_cpu_s * 1000 / o.objects, r.controller_hwm_mib,
        r.rss_before_mib, r.rss_after_mib, r.bytes_per_object,
        static_cast<unsigned long long>(r.requests.controller), per_obj,
        static_cast<unsigned long long>(r.requests.non_2xx),
        static_cast<unsigned long long>(r.requests.watches), r.server_cpu_s, r.bench_cpu_s,
        static_cast<unsigned long long>(r.sync_errors), r.log_warnings, r.log_errors);
    if (!r.first_error.empty()) std::printf("    first sync error: %s\n", r.first_error.c_str());
    for (const auto& s : r.log_samples)
      std::printf("    log: %s\n", s.c_str());
    // Every kind on the first run; afterwards only the refused ones ("... -> 409").
    std::string kinds;
    for (const auto& [k, c] : r.requests.by_kind)
      if (i == 1 || k.find(" -> ") != std::string::npos)
        kinds += " [" + k + "] " + std::to_string(c);
    if (!kinds.empty()) std::printf("    controller requests by kind:%s\n", kinds.c_str());
    std::fflush(stdout);
    results.push_back(std::move(r));
  }
  if (results.empty()) return 1;
  auto med = [&](auto field) {
    std::vector<double> v;
    for (const auto& r : results)
      v.push_back(field(r));
    return median(v);
  };
  double fin = med([](const run_result& r) { return r.finished_s; });
  double cpu = med([](const run_result& r) { return r.controller_cpu_s; });
  std::printf(
      "median of %zu: all Finished %.2f s (%.0f objects/s) | controller CPU %.2f s (%.2f "
      "ms/object) | peak RSS %.1f MiB | %.0f bytes/object | %.1f API requests/object\n",
      results.size(), fin, o.objects / fin, cpu, cpu * 1000 / o.objects,
      med([](const run_result& r) { return r.controller_hwm_mib; }),
      med([](const run_result& r) { return r.bytes_per_object; }), med([&](const run_result& r) {
        return static_cast<double>(r.requests.controller) / o.objects;
      }));
  return results.size() == static_cast<size_t>(o.runs) ? 0 : 1;
}
