// The scheduler actor under CAF's deterministic test coordinator: message transcripts with
// virtual time. A fake worker implements worker_actor, records every message and fails the
// test on anything unexpected (a second run of a running key, too many runs at once, a
// message outside its interface). Rules: docs/scheduler.md.
#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "actors/scheduler.hpp"

namespace tidesync::actors {
namespace {

using namespace std::chrono_literals;
using caf::scheduler::test_coordinator;
using run_log = std::vector<std::pair<std::string, uint32_t>>;

// What the fake worker saw. Shared with the test; the test coordinator runs every actor on
// the test's thread, so no locking is needed.
struct worker_record {
  run_log runs;                                             // every run, in order
  std::vector<std::pair<std::string, std::string>> failed;  // every failed(key, message)
  std::set<std::string> running;                            // runs not yet finished by the test
  std::size_t max_running = 0;                              // allowed concurrency
  std::size_t peak = 0;
};

worker_actor::behavior_type fake_worker(worker_actor::pointer self,
                                        std::shared_ptr<worker_record> rec) {
  self->set_default_handler(
      [](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
        ADD_FAILURE() << "fake worker: unexpected message " << caf::to_string(x.content());
        return caf::sec::unexpected_message;
      });
  return {
      [rec](atom::run, const std::string& key, uint32_t attempt) {
        if (!rec->running.insert(key).second)
          ADD_FAILURE() << "single flight violated: " << key << " runs twice";
        rec->runs.emplace_back(key, attempt);
        rec->peak = std::max(rec->peak, rec->running.size());
        if (rec->running.size() > rec->max_running)
          ADD_FAILURE() << "concurrency " << rec->running.size() << " > " << rec->max_running;
      },
      [rec](atom::failed, const std::string& key, const std::string& message) {
        if (rec->running.count(key)) ADD_FAILURE() << "failed while running: " << key;
        rec->failed.emplace_back(key, message);
      },
  };
}

// Sends one request to `h` and stores the reply in `out`.
template <class T, class... Ts>
void ask_once(caf::event_based_actor* self, scheduler_actor h,
              std::shared_ptr<std::optional<T>> out, Ts... xs) {
  self->request(h, caf::infinite, xs...).then([out](T& x) { *out = std::move(x); });
}

class SchedulerActor : public ::testing::Test {
 protected:
  SchedulerActor() {
    cfg_.set("scheduler.policy", caf::atom("testing"));
    cfg_.add_message_types<caf::id_block::tidesync>();
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    sched_ = &dynamic_cast<test_coordinator&>(sys_->scheduler());
    rec_ = std::make_shared<worker_record>();
  }

  ~SchedulerActor() override {
    // Explicit shutdown: the scheduler follows its worker (tested below); pending timers hit
    // dead actors and are dropped, so the system's destructor has nothing to wait for.
    if (worker_) caf::anon_send_exit(worker_, caf::exit_reason::user_shutdown);
    sched_->run();
    sched_->trigger_timeouts();
    sched_->run();
  }

  // Spawns the fake worker and a scheduler with `global` slots, no jitter, base backoff 1 s.
  void start(uint32_t global, uint32_t retry_limit = 3,
             std::map<std::string, uint32_t> per_ns = {}) {
    rec_->max_running = global;
    worker_ = sys_->spawn(fake_worker, rec_);
    scheduler_options o;
    o.limits = {global, std::move(per_ns)};
    o.retry.base = 1000ms;
    o.retry.jitter = 0;
    o.retry.limit = retry_limit;
    scheduler_ = sys_->spawn(scheduler, worker_, o, scheduler_logic::random_source{});
    sched_->run();
  }

  void enqueue(const std::string& key) {
    caf::anon_send(scheduler_, atom::enqueue_v, key);
    sched_->run();
  }

  // The worker finishes a run of `key` (as the real owner would, by sending done).
  void finish(const std::string& key, reconcile_outcome outcome) {
    if (rec_->running.erase(key) == 0) ADD_FAILURE() << "finish of a key not running: " << key;
    caf::anon_send(scheduler_, atom::done_v, key, std::move(outcome));
    sched_->run();
  }

  void advance(caf::timespan d) {
    sched_->advance_time(d);
    sched_->run();
  }

  // Asks the scheduler through a helper event-based actor (a scoped_actor's blocking receive
  // would deadlock under the test coordinator).
  template <class T, class... Ts>
  T ask(Ts... xs) {
    auto out = std::make_shared<std::optional<T>>();
    // A function with arguments, not a capturing lambda: CAF 0.17's init_fun_factory
    // dereferences a null argument tuple for argument-less spawns (UBSan reports it).
    sys_->spawn(ask_once<T, Ts...>, scheduler_, out, xs...);
    sched_->run();
    if (!out->has_value()) {
      ADD_FAILURE() << "no reply";
      return T{};
    }
    return std::move(**out);
  }

  std::map<std::string, uint64_t> positions() {
    return ask<std::map<std::string, uint64_t>>(atom::positions_v);
  }
  scheduler_stats stats() { return ask<scheduler_stats>(atom::stats_v); }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  test_coordinator* sched_ = nullptr;
  std::shared_ptr<worker_record> rec_;
  worker_actor worker_;
  scheduler_actor scheduler_;
};

TEST_F(SchedulerActor, FifoWithinTheConcurrencyLimit) {
  start(2);
  for (auto k : {"ns/a", "ns/b", "ns/c", "ns/d", "ns/e"})
    enqueue(k);
  EXPECT_EQ(rec_->runs, (run_log{{"ns/a", 1}, {"ns/b", 1}}));
  EXPECT_EQ(positions(), (std::map<std::string, uint64_t>{{"ns/c", 1}, {"ns/d", 2}, {"ns/e", 3}}));
  finish("ns/b", reconcile_outcome::success());
  finish("ns/a", reconcile_outcome::success());
  finish("ns/c", reconcile_outcome::success());
  EXPECT_EQ(rec_->runs, (run_log{{"ns/a", 1}, {"ns/b", 1}, {"ns/c", 1}, {"ns/d", 1}, {"ns/e", 1}}));
  EXPECT_EQ(rec_->peak, 2u);
  auto s = stats();
  EXPECT_EQ(s.running, 2u);
  EXPECT_EQ(s.admitted, 5u);
  EXPECT_EQ(s.queued, 0u);
}

TEST_F(SchedulerActor, SingleFlightAndDirtyRerunAtTheBack) {
  start(1);
  enqueue("ns/a");
  enqueue("ns/b");
  enqueue("ns/a");  // while running: dirty
  enqueue("ns/a");  // collapses with the dirty mark
  enqueue("ns/b");  // collapses with the queued entry
  EXPECT_EQ(positions(), (std::map<std::string, uint64_t>{{"ns/b", 1}}));
  finish("ns/a", reconcile_outcome::success());
  EXPECT_EQ(positions(), (std::map<std::string, uint64_t>{{"ns/a", 1}}));
  finish("ns/b", reconcile_outcome::success());
  finish("ns/a", reconcile_outcome::success());
  EXPECT_EQ(rec_->runs, (run_log{{"ns/a", 1}, {"ns/b", 1}, {"ns/a", 1}}));
  advance(1h);
  EXPECT_EQ(rec_->runs.size(), 3u);
}

TEST_F(SchedulerActor, BackoffInVirtualTimeThenTerminalFailure) {
  start(4, /*retry_limit=*/2);
  enqueue("ns/a");
  finish("ns/a", reconcile_outcome::transient("connection refused"));
  advance(999ms);
  EXPECT_EQ(rec_->runs.size(), 1u);
  advance(1ms);  // 1 s
  ASSERT_EQ(rec_->runs.size(), 2u);
  EXPECT_EQ(rec_->runs.back(), (std::pair<std::string, uint32_t>{"ns/a", 2}));
  finish("ns/a", reconcile_outcome::transient("connection refused"));
  advance(1999ms);
  EXPECT_EQ(rec_->runs.size(), 2u);
  advance(1ms);  // 2 s
  ASSERT_EQ(rec_->runs.size(), 3u);
  EXPECT_EQ(rec_->runs.back().second, 3u);
  EXPECT_EQ(stats().retries, 2u);
  finish("ns/a", reconcile_outcome::transient("connection refused"));  // 3rd failure > limit 2
  EXPECT_EQ(rec_->failed,
            (std::vector<std::pair<std::string, std::string>>{{"ns/a", "connection refused"}}));
  advance(1h);
  EXPECT_EQ(rec_->runs.size(), 3u);
  EXPECT_EQ(stats().delayed, 0u);
  EXPECT_FALSE(sched_->has_pending_timeout());  // an idle scheduler arms no timer
}

TEST_F(SchedulerActor, RequeueAfterAndSuccessResetsRetries) {
  start(1);
  enqueue("ns/a");
  finish("ns/a", reconcile_outcome::transient("x"));
  advance(1s);
  ASSERT_EQ(rec_->runs.back(), (std::pair<std::string, uint32_t>{"ns/a", 2}));
  finish("ns/a", reconcile_outcome::requeue(30s));
  advance(29s);
  EXPECT_EQ(rec_->runs.size(), 2u);
  advance(1s);
  ASSERT_EQ(rec_->runs.size(), 3u);
  EXPECT_EQ(rec_->runs.back().second, 1u);  // the requeue reset the retry count
  finish("ns/a", reconcile_outcome::success());
}

TEST_F(SchedulerActor, EarlierTimerSupersedesALaterOne) {
  start(2);
  enqueue("ns/slow");
  enqueue("ns/fast");
  finish("ns/slow", reconcile_outcome::requeue(60s));
  finish("ns/fast", reconcile_outcome::requeue(5s));  // arms an earlier timer
  advance(5s);
  EXPECT_EQ(rec_->runs.back().first, "ns/fast");
  finish("ns/fast", reconcile_outcome::success());
  advance(54s);
  EXPECT_EQ(rec_->runs.size(), 3u);
  advance(1s);  // the stale 60 s tick and the current one both fire: one run only
  EXPECT_EQ(rec_->runs.size(), 4u);
  EXPECT_EQ(rec_->runs.back().first, "ns/slow");
}

TEST_F(SchedulerActor, LimitsChangeAtRunTime) {
  start(1);
  for (auto k : {"ns/a", "ns/b", "ns/c", "ns/d"})
    enqueue(k);
  EXPECT_EQ(rec_->runs.size(), 1u);
  rec_->max_running = 3;
  caf::anon_send(scheduler_, atom::limits_v, scheduler_limits{3, {}});
  sched_->run();
  EXPECT_EQ(rec_->runs, (run_log{{"ns/a", 1}, {"ns/b", 1}, {"ns/c", 1}}));  // admitted at once
  caf::anon_send(scheduler_, atom::limits_v, scheduler_limits{1, {}});
  sched_->run();
  EXPECT_EQ(stats().running, 3u);  // lowering stops nothing
  finish("ns/a", reconcile_outcome::success());
  finish("ns/b", reconcile_outcome::success());
  EXPECT_EQ(rec_->runs.size(), 3u);
  finish("ns/c", reconcile_outcome::success());
  EXPECT_EQ(rec_->runs.back().first, "ns/d");
}

TEST_F(SchedulerActor, PerNamespaceLimit) {
  start(4, 3, {{"team-a", 1}});
  for (auto k : {"team-a/x", "team-a/y", "team-b/x"})
    enqueue(k);
  EXPECT_EQ(rec_->runs, (run_log{{"team-a/x", 1}, {"team-b/x", 1}}));
  EXPECT_EQ(positions(), (std::map<std::string, uint64_t>{{"team-a/y", 1}}));
  finish("team-a/x", reconcile_outcome::success());
  EXPECT_EQ(rec_->runs.back().first, "team-a/y");
}

TEST_F(SchedulerActor, ForgetDropsQueuedDelayedAndRunningKeys) {
  start(1);
  enqueue("ns/a");
  enqueue("ns/b");
  caf::anon_send(scheduler_, atom::forget_v, std::string{"ns/b"});
  enqueue("ns/a");                                                  // dirty...
  caf::anon_send(scheduler_, atom::forget_v, std::string{"ns/a"});  // ...then deleted
  sched_->run();
  finish("ns/a", reconcile_outcome::success());
  EXPECT_EQ(rec_->runs, (run_log{{"ns/a", 1}}));
  enqueue("ns/c");
  finish("ns/c", reconcile_outcome::transient("x"));
  caf::anon_send(scheduler_, atom::forget_v, std::string{"ns/c"});
  sched_->run();
  advance(1h);
  EXPECT_EQ(rec_->runs.size(), 2u);
  EXPECT_EQ(stats().forgotten, 3u);
}

TEST_F(SchedulerActor, StaleDoneIsIgnored) {
  start(1);
  caf::anon_send(scheduler_, atom::done_v, std::string{"ns/ghost"}, reconcile_outcome::success());
  sched_->run();
  enqueue("ns/a");
  EXPECT_EQ(rec_->runs.size(), 1u);
}

// The inspect functions of actors/type_ids.hpp: every message type survives serialisation
// (what a remote node would receive) and prints readably.
TEST_F(SchedulerActor, MessageTypesRoundTrip) {
  auto roundtrip = [this](auto x) {
    std::vector<char> buf;
    caf::binary_serializer sink{*sys_, buf};
    EXPECT_FALSE(sink(x));
    decltype(x) y{};
    caf::binary_deserializer source{*sys_, buf};
    EXPECT_FALSE(source(y));
    return y;
  };
  auto out = reconcile_outcome::requeue(90s);
  EXPECT_EQ(roundtrip(out), out);
  auto err = reconcile_outcome::terminal("source bucket not found");
  EXPECT_EQ(roundtrip(err), err);
  scheduler_limits lim{7, {{"a", 1}, {"", 2}}};
  EXPECT_EQ(roundtrip(lim), lim);
  scheduler_stats st{1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(roundtrip(st), st);
  EXPECT_NE(caf::deep_to_string(err).find("terminal_error"), std::string::npos)
      << caf::deep_to_string(err);
  // Registered under the type-id block's names.
  EXPECT_EQ(sys_->types().portable_name(0, &typeid(reconcile_outcome)),
            "tidesync::actors::reconcile_outcome");
}

// A monitor that records when an actor terminates.
struct down_flag {
  bool down = false;
};

caf::behavior watch_down(caf::event_based_actor* self, caf::actor_addr target,
                         std::shared_ptr<down_flag> flag) {
  self->monitor(target);
  self->set_down_handler([self, flag](const caf::down_msg&) {
    flag->down = true;
    self->quit();
  });
  return {[](int) {}};
}

TEST_F(SchedulerActor, QuitsWithItsWorkerEvenWithATimerPending) {
  start(1);
  enqueue("ns/a");
  finish("ns/a", reconcile_outcome::requeue(10min));
  ASSERT_TRUE(sched_->has_pending_timeout());
  auto flag = std::make_shared<down_flag>();
  // Keep a handle: CAF 0.17 destroys an actor nobody references, monitors do not count.
  auto watcher = sys_->spawn(watch_down, scheduler_.address(), flag);
  sched_->run();
  caf::anon_send_exit(worker_, caf::exit_reason::user_shutdown);
  sched_->run();
  EXPECT_TRUE(flag->down);
  advance(10min);  // the tick reaches a dead actor and is dropped
  EXPECT_EQ(rec_->runs.size(), 1u);
}

TEST_F(SchedulerActor, StopsOnAnExitMessage) {
  start(1);
  auto flag = std::make_shared<down_flag>();
  // Keep a handle: CAF 0.17 destroys an actor nobody references, monitors do not count.
  auto watcher = sys_->spawn(watch_down, scheduler_.address(), flag);
  sched_->run();
  caf::anon_send_exit(scheduler_, caf::exit_reason::user_shutdown);
  sched_->run();
  EXPECT_TRUE(flag->down);
}

}  // namespace
}  // namespace tidesync::actors
