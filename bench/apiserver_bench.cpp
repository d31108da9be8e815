// Embedded API server throughput over real HTTP on 127.0.0.1: creates, big lists, watch
// fan-out. In-process server, httplib client with keep-alive. Results: docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/apiserver/server.hpp"
#include "runtime/apiserver/store.hpp"
#include "runtime/json/value.hpp"
#include "runtime/log.hpp"

namespace {

using namespace tidesync;

struct fixture {
  apiserver::store st;
  apiserver::server srv{st};
  int port = 0;
  fixture() {
    tidesync::log::set_level("warn");
    port = *srv.start();
  }
};

// A ConfigMap of about 300 bytes serialised, like a small real one.
std::string configmap_body(const std::string& name) {
  return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name +
         R"(","labels":{"app":"bench","tier":"backend"},"annotations":{"note":"benchmark object"}},)"
         R"("data":{"config.yaml":"retries: 3\ntimeout: 30s\nendpoint: http://example.invalid/api\n"}})";
}

void BM_store_create(benchmark::State& state) {
  apiserver::store st;
  auto cms = *st.find_type("", "v1", "configmaps");
  int64_t i = 0;
  for (auto _ : state) {
    auto obj = json::parse(configmap_body("cm-" + std::to_string(i++)));
    auto r = st.create(cms, "default", std::move(*obj));
    if (!r) state.SkipWithError(r.error().message.c_str());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_store_create);

void BM_http_create(benchmark::State& state) {
  fixture f;
  httplib::Client c("127.0.0.1", f.port);
  c.set_keep_alive(true);
  c.set_tcp_nodelay(true);
  int64_t i = 0;
  for (auto _ : state) {
    auto r = c.Post("/api/v1/namespaces/default/configmaps",
                    configmap_body("cm-" + std::to_string(i++)), "application/json");
    if (!r || r->status != 201) state.SkipWithError("create failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_http_create)->UseRealTime();

// GET of 10,000 objects; arg 0 = identity, 1 = gzip (what kubectl and Go clients ask for).
void BM_http_list_10000(benchmark::State& state) {
  fixture f;
  auto cms = *f.st.find_type("", "v1", "configmaps");
  for (int i = 0; i < 10000; ++i)
    (void)f.st.create(cms, "default", *json::parse(configmap_body("cm-" + std::to_string(i))));
  httplib::Client c("127.0.0.1", f.port);
  c.set_keep_alive(true);
  c.set_tcp_nodelay(true);
  c.set_read_timeout(60, 0);
  httplib::Headers h{{"Accept-Encoding", state.range(0) == 1 ? "gzip" : "identity"}};
  int64_t bytes = 0;
  for (auto _ : state) {
    auto r = c.Get("/api/v1/namespaces/default/configmaps", h);
    if (!r || r->status != 200) {
      state.SkipWithError("list failed");
      break;
    }
    bytes += static_cast<int64_t>(r->body.size());
  }
  state.SetBytesProcessed(bytes);
  state.SetItemsProcessed(state.iterations() * 10000);
  state.SetLabel(state.range(0) == 1 ? "gzip" : "identity");
}
BENCHMARK(BM_http_list_10000)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// 10 watchers on one collection; each iteration creates 100 objects and waits until every
// watcher has received all 100 events. items/s = events delivered per second.
void BM_watch_fanout_10(benchmark::State& state) {
  constexpr int kWatchers = 10;
  constexpr int kBatch = 100;
  fixture f;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int64_t> seen(kWatchers, 0);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWatchers; ++w) {
    threads.emplace_back([&, w] {
      httplib::Client c("127.0.0.1", f.port);
      c.set_read_timeout(60, 0);
      c.Get("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=" +
                std::to_string(f.st.current_resource_version()),
            [&, w](const char* data, size_t n) {
              int64_t lines = 0;
              for (size_t i = 0; i < n; ++i)
                lines += data[i] == '\n';
              {
                std::lock_guard lock(mu);
                seen[w] += lines;
              }
              cv.notify_all();
              return !stop.load();
            });
    });
  }
  while (f.st.open_watch_count() < kWatchers)
    std::this_thread::yield();
  httplib::Client c("127.0.0.1", f.port);
  c.set_keep_alive(true);
  c.set_tcp_nodelay(true);
  int64_t created = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i)
      (void)c.Post("/api/v1/namespaces/default/configmaps",
                   configmap_body("w-" + std::to_string(created++)), "application/json");
    std::unique_lock lock(mu);
    cv.wait(lock, [&] {
      for (auto s : seen)
        if (s < created) return false;
      return true;
    });
  }
  state.SetItemsProcessed(state.iterations() * kBatch * kWatchers);
  stop = true;
  f.st.close_watches();
  for (auto& t : threads)
    t.join();
}
BENCHMARK(BM_watch_fanout_10)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
