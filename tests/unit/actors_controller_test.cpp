// The controller actor's queue metrics under CAF's deterministic test coordinator (virtual
// time): the in-flight gauges (workqueue_unfinished_work_seconds,
// workqueue_longest_running_processor_seconds) while a reconcile runs and after it ends, and
// controller_runtime_reconcile_total by result. The controller runs its real scheduler; its
// own informer is never started (an empty cache: every key reads as deleted, which the
// controller still reconciles); resource actors are fakes that run until the test says `done`.
#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "actors/controller.hpp"
#include "runtime/metrics/metrics.hpp"
#include "runtime/watch/informer.hpp"
#include "runtime/watch/transport.hpp"

namespace tidesync::actors {
namespace {

using namespace std::chrono_literals;
using caf::scheduler::test_coordinator;

// A transport for an informer that is never started: anything it is asked fails the test.
class idle_transport : public watch::transport {
 public:
  void list(const watch::list_request&, std::function<void(expected<std::string>)>) override {
    ADD_FAILURE() << "idle transport: list";
  }
  watch_id watch(const watch::watch_request&, std::function<void(std::string_view)>,
                 std::function<void(expected<void>)>) override {
    ADD_FAILURE() << "idle transport: watch";
    return 0;
  }
  void cancel(watch_id) override {}
  void post_after(std::chrono::milliseconds, std::function<void()>) override {
    ADD_FAILURE() << "idle transport: post_after";
  }
  clock::time_point now() override { return {}; }
};

// The controller's own kind: an informer with an empty cache, and the transport it refers to
// (declared first, destroyed last).
struct idle_source {
  idle_transport transport;
  watched source;
};

std::shared_ptr<watched> make_idle_source() {
  auto s = std::make_shared<idle_source>();
  s->source.resource = "things";
  s->source.informer = std::make_unique<watch::informer>(s->transport);
  return {s, &s->source};  // shares ownership of the transport
}

// Runs the fake resource actors were told to start, in order. The test coordinator runs every
// actor on the test's thread: no locking.
struct run_record {
  std::vector<std::string> runs;
};

resource_actor::behavior_type fake_resource(resource_actor::pointer self, std::string key,
                                            std::shared_ptr<run_record> rec) {
  self->set_default_handler(
      [](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
        ADD_FAILURE() << "fake resource: unexpected message " << caf::to_string(x.content());
        return caf::sec::unexpected_message;
      });
  return {
      // Runs until the test sends the controller `done` for this key.
      [key, rec](atom::run, uint32_t) { rec->runs.push_back(key); },
      [](atom::api, const api_reply&) { ADD_FAILURE() << "fake resource: api reply"; },
  };
}

// "name{labels} value" lines → value by "name{labels}".
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    auto sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    out[line.substr(0, sp)] = std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return out;
}

class ControllerMetrics : public ::testing::Test {
 protected:
  ControllerMetrics() {
    cfg_.set("scheduler.policy", caf::atom("testing"));
    cfg_.add_message_types<caf::id_block::tidesync>();
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    sched_ = &dynamic_cast<test_coordinator&>(sys_->scheduler());
    metrics_ = std::make_shared<metrics::registry>();
    metrics_->init_controller("bucketsync");  // as `tidesync controller` does
    rec_ = std::make_shared<run_record>();
    auto ctx = std::make_shared<controller_context>();
    ctx->metrics = metrics_;
    controller_hooks hooks;
    hooks.name = "bucketsync";
    hooks.own = make_idle_source();
    hooks.spawn = [rec = rec_](caf::actor_system& sys, const std::string& key, controller_actor) {
      return sys.spawn(fake_resource, key, rec);
    };
    scheduler_options options;
    options.limits.global = 4;
    controller_ = sys_->spawn(controller, std::move(hooks),
                              std::shared_ptr<const controller_context>(std::move(ctx)), options,
                              std::vector<watcher_actor>{});
    sched_->run();
  }

  ~ControllerMetrics() override {
    // The controller takes its scheduler and resource actors down with it (links); pending
    // timers then hit dead actors and are dropped.
    caf::anon_send_exit(controller_, caf::exit_reason::user_shutdown);
    sched_->run();
    sched_->trigger_timeouts();
    sched_->run();
  }

  // The object of `key` changed: the controller enqueues it and, with room, runs it.
  void change(const std::string& key) {
    caf::anon_send(controller_, atom::changed_v, std::string("things"), key);
    sched_->run();
  }

  // The resource actor of `key` reports its run done.
  void finish(const std::string& key, reconcile_outcome outcome) {
    caf::anon_send(controller_, atom::done_v, key, std::move(outcome));
    sched_->run();
  }

  // Virtual time passes; timers due by then fire.
  void advance(caf::timespan d) {
    sched_->advance_time(d);
    sched_->run();
  }

  // The value of one series in /metrics; fails the test when it is missing.
  double metric(const std::string& series) const {
    auto s = samples(metrics_->text());
    auto it = s.find(series);
    EXPECT_NE(it, s.end()) << "missing series " << series;
    return it == s.end() ? -1 : it->second;
  }
  double unfinished() const {
    return metric("workqueue_unfinished_work_seconds{name=\"bucketsync\"}");
  }
  double longest() const {
    return metric("workqueue_longest_running_processor_seconds{name=\"bucketsync\"}");
  }
  double reconciles(const std::string& result) const {
    return metric("controller_runtime_reconcile_total{controller=\"bucketsync\",result=\"" +
                  result + "\"}");
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  test_coordinator* sched_ = nullptr;
  std::shared_ptr<metrics::registry> metrics_;
  std::shared_ptr<run_record> rec_;
  controller_actor controller_;
};

TEST_F(ControllerMetrics, InFlightGaugesGrowWhileAReconcileRunsAndDropToZeroAfter) {
  // The series exist from the start, at 0, as client-go's do.
  EXPECT_EQ(unfinished(), 0);
  EXPECT_EQ(longest(), 0);

  change("ns/a");
  ASSERT_EQ(rec_->runs, std::vector<std::string>{"ns/a"});
  advance(3s);
  EXPECT_DOUBLE_EQ(unfinished(), 3);
  EXPECT_DOUBLE_EQ(longest(), 3);
  // Nothing but time passes: the periodic refresh keeps a stuck reconcile's age growing.
  advance(500ms);
  EXPECT_DOUBLE_EQ(unfinished(), 3.5);
  EXPECT_DOUBLE_EQ(longest(), 3.5);

  change("ns/b");
  ASSERT_EQ(rec_->runs, (std::vector<std::string>{"ns/a", "ns/b"}));
  advance(1s);
  EXPECT_DOUBLE_EQ(unfinished(), 4.5 + 1);  // the sum of both ages
  EXPECT_DOUBLE_EQ(longest(), 4.5);         // the older one

  finish("ns/a", reconcile_outcome::success());
  EXPECT_DOUBLE_EQ(unfinished(), 1);  // at once, not at the next refresh
  EXPECT_DOUBLE_EQ(longest(), 1);

  finish("ns/b", reconcile_outcome::success());
  EXPECT_EQ(unfinished(), 0);
  EXPECT_EQ(longest(), 0);
  advance(10s);  // and they stay there
  EXPECT_EQ(unfinished(), 0);
  EXPECT_EQ(longest(), 0);
  EXPECT_EQ(rec_->runs.size(), 2u);
}

TEST_F(ControllerMetrics, ReconcileTotalTellsARequeueFromARequeueAfter) {
  change("ns/a");
  finish("ns/a", reconcile_outcome::requeue(0ms));  // back in the queue at once: runs again
  ASSERT_EQ(rec_->runs, (std::vector<std::string>{"ns/a", "ns/a"}));
  EXPECT_EQ(reconciles("requeue"), 1);
  EXPECT_EQ(reconciles("requeue_after"), 0);

  finish("ns/a", reconcile_outcome::requeue(5s));
  EXPECT_EQ(reconciles("requeue"), 1);
  EXPECT_EQ(reconciles("requeue_after"), 1);
  advance(5s);
  ASSERT_EQ(rec_->runs.size(), 3u);

  finish("ns/a", reconcile_outcome::transient("boom"));
  EXPECT_EQ(reconciles("error"), 1);
  advance(2s);  // the default retry backoff (1 s, jitter up to 20 %)
  ASSERT_EQ(rec_->runs.size(), 4u);
  finish("ns/a", reconcile_outcome::success());
  EXPECT_EQ(reconciles("success"), 1);
  EXPECT_EQ(reconciles("requeue"), 1);
  EXPECT_EQ(reconciles("requeue_after"), 1);
}

}  // namespace
}  // namespace tidesync::actors
