// Watch decoding speed against simdjson's own parse speed of the same bytes (the ceiling).
//
// Generates realistic watch streams in memory: MODIFIED events of pod-like objects of about
// 1 KiB and 8 KiB (metadata with labels, annotations and managedFields-like bulk, a spec
// with containers and env, a status with conditions). Then, in the same run:
//   BM_watch_decoder     our decoder fed in 16 KiB chunks (framing, copies, metadata,
//                        one shared string per object: everything the watcher pays for)
//   BM_simdjson_dom      simdjson::dom::parser::parse of every line (full parse, no copy)
//   BM_simdjson_ondemand ondemand iterate + raw_json of every line (a lower bound for any
//                        decoder that must find the object's span)
// Items are events, bytes are stream bytes, so items/s and bytes/s compare directly.
#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "runtime/watch/watch_decoder.hpp"

namespace {

std::string pod_object(int i, size_t target_bytes, std::mt19937& rng) {
  auto hex = [&](int n) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (int k = 0; k < n; ++k)
      s.push_back(digits[rng() % 16]);
    return s;
  };
  std::string name = "web-" + std::to_string(i) + "-" + hex(5);
  std::string o;
  o +=
      R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":")" + name +
      R"(","generateName":"web-","namespace":"team-)" + std::to_string(i % 17) + R"(","uid":")" +
      hex(8) + "-" + hex(4) + "-" + hex(4) + "-" + hex(4) + "-" + hex(12) +
      R"(","resourceVersion":")" + std::to_string(100000 + i) + R"(","generation":)" +
      std::to_string(1 + i % 5) +
      R"(,"creationTimestamp":"2024-05-01T10:00:00Z","labels":{"app":"web","pod-template-hash":")" +
      hex(10) + R"(","release":"stable","shard":")" + std::to_string(i % 8) +
      R"(","tier":"frontend"},"annotations":{"kubectl.kubernetes.io/restartedAt":"2024-05-01T09:59:00Z","prometheus.io/scrape":"true","note":")";
  // Bulk goes into an annotation and env entries, like real objects carry managedFields.
  std::string spec =
      R"("}},"spec":{"restartPolicy":"Always","serviceAccountName":"web","nodeName":"node-)" +
      std::to_string(i % 40) +
      R"(","containers":[{"name":"web","image":"registry.example.com/web:1.2.)" +
      std::to_string(i % 9) +
      R"(","ports":[{"containerPort":8080,"protocol":"TCP"}],"resources":{"requests":{"cpu":"250m","memory":"256Mi"},"limits":{"cpu":"1","memory":"512Mi"}},"env":[)";
  std::string status =
      R"(]}]},"status":{"phase":"Running","podIP":"10.1.)" + std::to_string(i % 250) + "." +
      std::to_string(i % 200) +
      R"(","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2024-05-01T10:00:05Z"},{"type":"ContainersReady","status":"True","lastTransitionTime":"2024-05-01T10:00:05Z"}],"containerStatuses":[{"name":"web","ready":true,"restartCount":0,"image":"registry.example.com/web:1.2.3","containerID":"containerd://)" +
      hex(32) + R"("}]}})";
  size_t fixed = o.size() + spec.size() + status.size();
  size_t env_budget = target_bytes > fixed + 64 ? (target_bytes - fixed) * 3 / 4 : 0;
  std::string env;
  for (int k = 0; env.size() < env_budget; ++k) {
    if (k) env += ",";
    env += R"({"name":"SETTING_)" + std::to_string(k) + R"(","value":")" + hex(24) + R"("})";
  }
  std::string note;
  size_t now = fixed + env.size();
  if (target_bytes > now) note = hex(static_cast<int>(target_bytes - now));
  return o + note + spec + env + status;
}

struct stream {
  std::string bytes;            // the whole body, padded at the end
  std::vector<size_t> starts;   // line starts
  std::vector<size_t> lengths;  // line lengths (without the newline)
  size_t body_size = 0;
};

stream make_stream(size_t object_bytes, size_t total_bytes) {
  std::mt19937 rng(1234);
  stream s;
  for (int i = 0; s.bytes.size() < total_bytes; ++i) {
    s.starts.push_back(s.bytes.size());
    std::string line = R"({"type":"MODIFIED","object":)" + pod_object(i, object_bytes, rng) + "}";
    s.lengths.push_back(line.size());
    s.bytes += line;
    s.bytes += '\n';
  }
  s.body_size = s.bytes.size();
  s.bytes.append(simdjson::SIMDJSON_PADDING, ' ');
  return s;
}

const stream& stream_for(int64_t kib) {
  static const stream s1 = make_stream(1024, 16 << 20);
  static const stream s8 = make_stream(8192, 16 << 20);
  return kib == 1 ? s1 : s8;
}

void BM_watch_decoder(benchmark::State& state) {
  const stream& s = stream_for(state.range(0));
  constexpr size_t kChunk = 16 << 10;
  tidesync::watch::watch_decoder d;
  std::vector<tidesync::expected<tidesync::watch::watch_event>> out;
  out.reserve(256);
  size_t events = 0;
  for (auto _ : state) {
    for (size_t off = 0; off < s.body_size; off += kChunk) {
      size_t n = std::min(kChunk, s.body_size - off);
      d.feed(std::string_view(s.bytes.data() + off, n), out);
      for (auto& e : out) {
        if (!e) state.SkipWithError(e.error().message.c_str());
      }
      events += out.size();
      out.clear();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(events));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * s.body_size));
  state.counters["object_bytes"] = static_cast<double>(s.body_size / s.starts.size());
}

void BM_simdjson_dom(benchmark::State& state) {
  const stream& s = stream_for(state.range(0));
  simdjson::dom::parser parser;
  size_t events = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < s.starts.size(); ++i) {
      simdjson::dom::element doc;
      // The line sits inside the padded stream buffer: parse in place, like our decoder.
      auto err = parser.parse(s.bytes.data() + s.starts[i], s.lengths[i], false).get(doc);
      if (err) state.SkipWithError(simdjson::error_message(err));
      benchmark::DoNotOptimize(doc);
      ++events;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(events));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * s.body_size));
}

void BM_simdjson_ondemand(benchmark::State& state) {
  const stream& s = stream_for(state.range(0));
  simdjson::ondemand::parser parser;
  size_t events = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < s.starts.size(); ++i) {
      simdjson::ondemand::document doc;
      std::string_view raw;
      auto err =
          parser.iterate(s.bytes.data() + s.starts[i], s.lengths[i], s.bytes.size() - s.starts[i])
              .get(doc);
      if (!err) err = doc.raw_json().get(raw);
      if (err) state.SkipWithError(simdjson::error_message(err));
      benchmark::DoNotOptimize(raw);
      ++events;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(events));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * s.body_size));
}

}  // namespace

BENCHMARK(BM_watch_decoder)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_simdjson_dom)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_simdjson_ondemand)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("simdjson_active_implementation",
                              simdjson::get_active_implementation()->name());
  // On-Demand is compiled into this program for the best implementation the compiler flags
  // allow (stage 1 still dispatches at run time, see above).
#define TIDESYNC_STR2(x) #x
#define TIDESYNC_STR(x) TIDESYNC_STR2(x)
  benchmark::AddCustomContext("simdjson_ondemand_builtin",
                              TIDESYNC_STR(SIMDJSON_BUILTIN_IMPLEMENTATION));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
