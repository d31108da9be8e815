// Scheduler admissions per second with 100,000 queued keys (docs/benchmarks.md).
//
// Steady state: every iteration finishes one running key, enqueues it again at the back and
// admits the next one, so the queue stays at 100,000 keys. Variants: global limit only, and
// 1,000 namespaces with a per-namespace limit (admission skips namespaces at their limit).
// The actor variant runs the same loop through the scheduler actor and a worker that answers
// at once, on CAF's single-threaded test coordinator (message cost without thread noise).
#include <benchmark/benchmark.h>

#include <caf/all.hpp>
#include <memory>
#include <string>
#include <vector>

#include "actors/scheduler.hpp"
#include "actors/scheduler_logic.hpp"

namespace {

using tidesync::actors::reconcile_outcome;
using tidesync::actors::scheduler_logic;
using tidesync::actors::scheduler_options;

constexpr int queued_keys = 100'000;

std::vector<std::string> make_keys(int n, int namespaces) {
  std::vector<std::string> keys;
  keys.reserve(n);
  for (int i = 0; i < n; ++i)
    keys.push_back("ns-" + std::to_string(i % namespaces) + "/bucketsync-" + std::to_string(i));
  return keys;
}

void run_logic(benchmark::State& state, int namespaces, uint32_t per_ns_limit) {
  scheduler_options o;
  o.limits.global = 64;
  if (per_ns_limit > 0)
    for (int i = 0; i < namespaces; ++i)
      o.limits.per_namespace["ns-" + std::to_string(i)] = per_ns_limit;
  scheduler_logic s(o, [] { return 0.5; });
  auto keys = make_keys(queued_keys + 64, namespaces);
  scheduler_logic::time_point t{};
  for (auto& k : keys)
    s.enqueue(k, t);
  std::vector<std::string> running;
  for (auto& r : s.admit(t))
    running.push_back(r.key);
  std::size_t next = 0;
  for (auto _ : state) {
    // Finish the oldest running key, re-enqueue it, admit one.
    auto key = std::move(running[next]);
    s.done(key, reconcile_outcome::success(), t);
    s.enqueue(key, t);
    auto admitted = s.admit(t);
    running[next] = std::move(admitted.front().key);
    next = (next + 1) % running.size();
    benchmark::DoNotOptimize(admitted);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["queued"] = static_cast<double>(s.stats().queued);
}

void BM_LogicAdmitGlobalLimit(benchmark::State& state) {
  run_logic(state, 1000, 0);
}
void BM_LogicAdmitPerNamespaceLimit(benchmark::State& state) {
  run_logic(state, 1000, 1);
}
BENCHMARK(BM_LogicAdmitGlobalLimit);
BENCHMARK(BM_LogicAdmitPerNamespaceLimit);

// Enqueueing 100,000 keys into an empty scheduler, then admitting all of them.
void BM_LogicFillAndDrain(benchmark::State& state) {
  auto keys = make_keys(queued_keys, 1000);
  for (auto _ : state) {
    scheduler_options o;
    o.limits.global = queued_keys;
    scheduler_logic s(o, [] { return 0.5; });
    scheduler_logic::time_point t{};
    for (auto& k : keys)
      s.enqueue(k, t);
    benchmark::DoNotOptimize(s.admit(t));
  }
  state.SetItemsProcessed(state.iterations() * queued_keys);
}
BENCHMARK(BM_LogicFillAndDrain)->Unit(benchmark::kMillisecond);

// -- through the actor ----------------------------------------------------------------------

using namespace tidesync;

struct loop_state {
  actors::scheduler_actor scheduler;
  uint64_t runs = 0;
};

// Answers every run at once with done(success) and enqueues the key again.
actors::worker_actor::behavior_type echo_worker(actors::worker_actor::pointer self,
                                                std::shared_ptr<loop_state> st) {
  return {
      [self, st](atom::run, const std::string& key, uint32_t) {
        ++st->runs;
        self->send(st->scheduler, atom::done_v, key, reconcile_outcome::success());
        self->send(st->scheduler, atom::enqueue_v, key);
      },
      [](atom::failed, const std::string&, const std::string&) {},
  };
}

void BM_ActorAdmitGlobalLimit(benchmark::State& state) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.policy", caf::atom("testing"));
  cfg.add_message_types<caf::id_block::tidesync>();
  caf::actor_system sys{cfg};
  auto& sched = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  auto st = std::make_shared<loop_state>();
  auto worker = sys.spawn(echo_worker, st);
  scheduler_options o;
  o.limits.global = 64;
  st->scheduler = sys.spawn(actors::scheduler, worker, o, scheduler_logic::random_source{});
  sched.run();
  for (auto& k : make_keys(queued_keys + 64, 1000))
    caf::anon_send(st->scheduler, atom::enqueue_v, k);
  sched.run(1);  // the scheduler's mailbox holds every enqueue; it drains them in batches
  uint64_t before = st->runs;
  for (auto _ : state)
    sched.run(64);
  state.SetItemsProcessed(static_cast<int64_t>(st->runs - before));
  caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(st->scheduler, caf::exit_reason::user_shutdown);
  st->scheduler = actors::scheduler_actor{};
  sched.run();
}
BENCHMARK(BM_ActorAdmitGlobalLimit);

}  // namespace

BENCHMARK_MAIN();
