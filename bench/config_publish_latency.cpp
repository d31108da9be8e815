// Shared config bundles (issue 7, docs/benchmarks.md "Config publish to live"): how long from a
// publish until two agents serve it. Everything on loopback: s3rver (scripts/s3rver.sh),
// `tidesync simulate --no-kubelet` (the embedded API server and the controller with its config
// API), a SharedConfig, and two `tidesync agent config watch --api ... --wait 30s --interval 60s`
// agents (so only the long-poll can explain a switch under a minute). Each round packs a small
// folder (a few files, one carrying the round number), PUTs it through the config API, and
// watches both agents' `live` links (readlink every 0.5 ms) until both name the new revision.
//
// Printed per round and as median / p99 / max over the rounds:
//   put      the PUT until its 201 (check, upload of the bundle, then latest.json)
//   live     the PUT's start until BOTH agents' live links name the new revision
//
//   config_publish_latency [--rounds N] [--tidesync PATH] [--crds DIR] [--keep]
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/archive/bundle.hpp"
#include "runtime/base64.hpp"
#include "runtime/configapi/client.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/k8s/config.hpp"
#include "runtime/k8s/resource.hpp"
#include "runtime/log.hpp"
#include "scale_support.hpp"

namespace {

using namespace tidesync;
using namespace tidesync::bench;

k8s::resource sharedconfigs() {
  return {"tidesync.io", "v1alpha1", "sharedconfigs", "SharedConfig", true};
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Runs a command to completion; its output goes to `log`. Returns the last line of it.
std::string run_script(const std::vector<std::string>& argv, const fs::path& log) {
  int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  child c = spawn(argv, fd, fd, {{"AWS_CA_BUNDLE", ""}}, {});
  close(fd);
  int st = 0;
  wait_exit(c, std::chrono::seconds(120), &st);
  auto text = read_file(log);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  return text.substr(text.find_last_of('\n') + 1);
}

std::string live_of(const fs::path& root) {
  std::error_code ec;
  auto target = fs::read_symlink(root / "live", ec);
  return ec ? std::string{} : target.filename().string();
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 50;
  bool keep = false;
  std::string tidesync = default_tidesync(), crds = "deploy/crds";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--keep") {
      keep = true;
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (a == "--tidesync" && i + 1 < argc) {
      tidesync = argv[++i];
    } else if (a == "--crds" && i + 1 < argc) {
      crds = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: config_publish_latency [--rounds N] [--tidesync PATH] [--crds DIR] "
                   "[--keep]\n(run from the source tree: it uses scripts/s3rver.sh)\n");
      return 2;
    }
  }
  if (rounds <= 0 || !fs::exists("scripts/s3rver.sh")) {
    std::fprintf(stderr, "run from the source tree (scripts/s3rver.sh), with --rounds > 0\n");
    return 2;
  }
  log::set_level("warn");
  signal(SIGPIPE, SIG_IGN);
  char tmpl[] = "/tmp/tidesync-publish-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  fs::path dir = tmpl;
  std::fprintf(stderr, "working in %s\n", dir.c_str());

  // 1. s3rver with a bucket, the simulation with the controller (and its config API).
  auto port_line =
      run_script({"/bin/bash", "scripts/s3rver.sh", "start", (dir / "s3").string(), "0", "configs"},
                 dir / "s3rver-start.log");
  int s3_port = std::atoi(port_line.c_str());
  if (s3_port <= 0) {
    std::fprintf(stderr, "s3rver did not start: %s\n", (dir / "s3rver-start.log").c_str());
    return 1;
  }
  int simlog = open((dir / "simulate.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  child sim = spawn({tidesync, "simulate", "--port", "0", "--no-kubelet", "--data-dir",
                     (dir / "sim").string(), crds},
                    simlog, simlog, {}, {"TIDESYNC_LOG_LEVEL", "KUBECONFIG"});
  close(simlog);
  int status = 1;
  std::vector<child> agents;
  if (!wait_until([&] { return exited(sim) || fs::exists(dir / "sim" / "config-api"); },
                  std::chrono::seconds(60))) {
    std::fprintf(stderr, "the simulation did not start its config API; see %s\n",
                 (dir / "simulate.log").c_str());
  } else {
    std::string api = read_file(dir / "sim" / "config-api");
    while (!api.empty() && api.back() == '\n')
      api.pop_back();
    auto conn = k8s::load_kubeconfig((dir / "sim" / "kubeconfig").string(), "");
    http::loop loop;
    k8s::client_options copts;
    copts.qps = 0;
    k8s::client k(loop, *conn, copts);
    const std::string endpoint = "http://127.0.0.1:" + std::to_string(s3_port);
    json::object env{{"REMOTE_TYPE", base64::encode("s3")},
                     {"REMOTE_PROVIDER", base64::encode("Other")},
                     {"REMOTE_ENDPOINT", base64::encode(endpoint)},
                     {"REMOTE_REGION", base64::encode("us-east-1")},
                     {"REMOTE_FORCE_PATH_STYLE", base64::encode("true")},
                     {"REMOTE_ACCESS_KEY_ID", base64::encode("S3RVER")},
                     {"REMOTE_SECRET_ACCESS_KEY", base64::encode("S3RVER")}};
    auto secret =
        k.create_sync(k8s::resources::secrets(), "default",
                      json::value(json::object{
                          {"apiVersion", "v1"},
                          {"kind", "Secret"},
                          {"metadata", json::object{{"name", "store"}, {"namespace", "default"}}},
                          {"data", env}}));
    auto sc =
        k.create_sync(sharedconfigs(), "default",
                      json::value(json::object{
                          {"apiVersion", "tidesync.io/v1alpha1"},
                          {"kind", "SharedConfig"},
                          {"metadata", json::object{{"name", "alice"}, {"namespace", "default"}}},
                          {"spec", json::object{{"ownerId", "alice"},
                                                {"bucket", "configs"},
                                                {"prefix", "bench"},
                                                {"secretRef", json::object{{"name", "store"}}}}}}));
    auto token_secret =
        k.get_sync(k8s::resources::secrets(), "tidesync-system", "tidesync-config-api");
    if (!secret || !sc || !token_secret) {
      std::fprintf(stderr, "setup failed: %s\n",
                   !secret ? secret.error().message.c_str()
                   : !sc   ? sc.error().message.c_str()
                           : token_secret.error().message.c_str());
    } else {
      auto token = base64::decode(token_secret->at_path({"data", "token"})->as_string());
      std::ofstream(dir / "token") << *token << "\n";
      // 2. Two agents following the owner by long-poll.
      std::vector<std::pair<std::string, std::string>> agent_env = {
          {"REMOTE_TYPE", "s3"},
          {"REMOTE_PROVIDER", "Other"},
          {"REMOTE_ENDPOINT", endpoint},
          {"REMOTE_REGION", "us-east-1"},
          {"REMOTE_FORCE_PATH_STYLE", "true"},
          {"REMOTE_ACCESS_KEY_ID", "S3RVER"},
          {"REMOTE_SECRET_ACCESS_KEY", "S3RVER"}};
      for (int a = 0; a < 2; ++a) {
        auto root = dir / ("root-" + std::to_string(a));
        int fd = open((dir / ("agent-" + std::to_string(a) + ".log")).c_str(),
                      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        agents.push_back(
            spawn({tidesync, "agent", "config", "watch", "--api", api, "--config", "default/alice",
                   "--token-file", (dir / "token").string(), "--store", "s3://configs/bench/alice",
                   "--root", root.string(), "--interval", "60s", "--wait", "30s"},
                  fd, fd, agent_env, {}));
        close(fd);
      }
      configapi::client_options co;
      co.api = api;
      co.config = {"default", "alice"};
      co.token_file = (dir / "token").string();
      configapi::client api_client(loop, co);
      std::vector<double> put_ms, live_ms;
      std::string current;
      bool ok = true;
      for (int r = 1; r <= rounds && ok; ++r) {
        auto tree = dir / "tree";
        fs::remove_all(tree);
        fs::create_directories(tree / "conf.d");
        std::ofstream(tree / "round") << r << "\n";
        std::ofstream(tree / "conf.d" / "app.yaml") << "replicas: 3\nround: " << r << "\n";
        std::ofstream(tree / "settings.json") << R"({"feature": true, "round": )" << r << "}\n";
        auto packed = archive::pack_bundle(tree, dir / "bundle.tar.zst");
        if (!packed) return 1;
        std::string body = read_file(dir / "bundle.tar.zst");
        // The agents are waiting on `current` (their long-poll is open) before each round.
        auto t0 = clock_type::now();
        auto answer = api_client.put_latest(current, body);
        if (!answer || answer->status != 201) {
          std::fprintf(stderr, "round %d: publish failed: %s\n", r,
                       answer ? answer->body.c_str() : answer.error().message.c_str());
          ok = false;
          break;
        }
        double put = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
        auto latest = archive::parse_latest(answer->body);
        current = latest->revision;
        bool live = false;
        for (auto deadline = t0 + std::chrono::seconds(60); clock_type::now() < deadline;) {
          if (live_of(dir / "root-0") == current && live_of(dir / "root-1") == current) {
            live = true;
            break;
          }
          std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
        double both = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
        if (!live) {
          std::fprintf(stderr, "round %d: the agents did not switch within 60 s\n", r);
          ok = false;
          break;
        }
        put_ms.push_back(put);
        live_ms.push_back(both);
        std::printf("round %d: put %.1f ms, both live %.1f ms\n", r, put, both);
        std::fflush(stdout);
        // Let both agents finish the round (prune, .status.json) and open their next poll.
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
      }
      if (ok) {
        std::printf(
            "%d rounds: put median %.1f ms, p99 %.1f ms | publish -> both agents live: median "
            "%.1f ms, p99 %.1f ms, max %.1f ms\n",
            rounds, percentile(put_ms, 0.5), percentile(put_ms, 0.99), percentile(live_ms, 0.5),
            percentile(live_ms, 0.99), percentile(live_ms, 1.0));
        status = 0;
      }
    }
    for (auto& a : agents)
      stop_child(a, "agent", std::chrono::seconds(10));
    loop.stop();
  }
  stop_child(sim, "simulate", std::chrono::seconds(30));
  run_script({"/bin/bash", "scripts/s3rver.sh", "stop", (dir / "s3").string()},
             dir / "s3rver-stop.log");
  if (!keep && status == 0) fs::remove_all(dir);
  return status;
}
