// The lock manager actor under CAF's deterministic test coordinator, with virtual time. A
// recording lease_sink plays the API server: it keeps the Leases by name and fails the test
// on a create of an existing Lease, an update or delete of a missing one, or a Lease whose
// holder disagrees. Rules: docs/locks.md.
#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "actors/lock_manager.hpp"

namespace tidesync::actors {
namespace {

using namespace std::chrono_literals;
using caf::scheduler::test_coordinator;
using tp = lock_table::time_point;

const tp wall0 = tp{} + 1700000000s;

struct recording_sink : lease_sink {
  std::set<std::string, std::less<>> alive_holders;
  std::map<std::string, lease_record> leases;  // by name: what the API server would hold
  std::vector<std::string> ops;                // "granted <holder> <paths...>", ...

  bool alive(std::string_view holder) override { return alive_holders.count(holder) > 0; }

  static std::string describe(const char* op, const std::vector<lease_record>& ls) {
    std::string s = op;
    if (!ls.empty()) s += " " + ls.front().holder;
    for (const auto& l : ls)
      s += " " + l.path;
    return s;
  }
  void granted(const std::vector<lease_record>& ls) override {
    ops.push_back(describe("granted", ls));
    for (const auto& l : ls) {
      if (!leases.emplace(l.name, l).second) ADD_FAILURE() << "create of existing " << l.name;
      EXPECT_EQ(l.name, lease_name(l.path));
    }
  }
  void renewed(const std::vector<lease_record>& ls) override {
    ops.push_back(describe("renewed", ls));
    for (const auto& l : ls)
      leases[l.name] = l;  // update, or create if missing
  }
  void released(const std::vector<lease_record>& ls) override {
    ops.push_back(describe("released", ls));
    for (const auto& l : ls) {
      auto it = leases.find(l.name);
      if (it == leases.end()) {
        ADD_FAILURE() << "delete of missing " << l.name;
        continue;
      }
      EXPECT_EQ(it->second.holder, l.holder);
      leases.erase(it);
    }
  }
};

template <class T, class... Ts>
void ask_once(caf::event_based_actor* self, lock_manager_actor h,
              std::shared_ptr<std::optional<T>> out, Ts... xs) {
  self->request(h, caf::infinite, xs...).then([out](T& x) { *out = std::move(x); });
}

class LockManagerActor : public ::testing::Test {
 protected:
  LockManagerActor() {
    cfg_.set("scheduler.policy", caf::atom("testing"));
    cfg_.add_message_types<caf::id_block::tidesync>();
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    sched_ = &dynamic_cast<test_coordinator&>(sys_->scheduler());
    sink_ = std::make_shared<recording_sink>();
  }

  ~LockManagerActor() override {
    if (mgr_) caf::anon_send_exit(mgr_, caf::exit_reason::user_shutdown);
    sched_->run();
    sched_->trigger_timeouts();
    sched_->run();
  }

  void start(std::vector<lease_record> existing = {}) {
    lock_options o;
    o.ttl = 600s;
    o.renew_interval = 60s;
    o.wall_start = wall0;
    o.lease_namespace = "tidesync-system";
    mgr_ = sys_->spawn(lock_manager, o, std::move(existing),
                       std::static_pointer_cast<lease_sink>(sink_));
    sched_->run();
  }

  // Sends a request through a helper event-based actor; the reply lands in the returned slot
  // (maybe later: await_lock is deferred). Never a blocking receive under the coordinator.
  template <class T, class... Ts>
  std::shared_ptr<std::optional<T>> ask(Ts... xs) {
    auto out = std::make_shared<std::optional<T>>();
    sys_->spawn(ask_once<T, Ts...>, mgr_, out, xs...);
    sched_->run();
    return out;
  }

  lock_reply acquire(const std::string& holder, std::vector<std::string> paths) {
    auto r = ask<lock_reply>(atom::acquire_v, holder, std::move(paths));
    if (!r->has_value()) {
      ADD_FAILURE() << "no reply to acquire";
      return {};
    }
    return **r;
  }
  std::shared_ptr<std::optional<lock_reply>> await(const std::string& holder) {
    return ask<lock_reply>(atom::await_lock_v, holder);
  }
  void release(const std::string& holder) {
    caf::anon_send(mgr_, atom::release_v, holder);
    sched_->run();
  }
  std::string holder_of(const std::string& path) {
    auto r = ask<std::string>(atom::holder_of_v, path);
    return r->value_or("<no reply>");
  }
  void advance(caf::timespan d) {
    sched_->advance_time(d);
    sched_->run();
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  test_coordinator* sched_ = nullptr;
  std::shared_ptr<recording_sink> sink_;
  lock_manager_actor mgr_;
};

TEST_F(LockManagerActor, SecondSyncOnABucketWaitsAndIsGrantedOnRelease) {
  sink_->alive_holders = {"ns/a/1", "ns/b/2"};
  start();
  auto a = acquire("ns/a/1", {"S3:Src/data/", "gcs:dst"});
  EXPECT_EQ(a.what, lock_reply::kind::granted);
  ASSERT_EQ(sink_->leases.size(), 2u);
  const auto& l = sink_->leases.at(lease_name("s3:src/data"));
  EXPECT_EQ(l.holder, "ns/a/1");
  EXPECT_EQ(l.set, (std::vector<std::string>{"gcs:dst", "s3:src/data"}));
  EXPECT_EQ(l.acquire_time, wall0);
  EXPECT_EQ(l.lease_namespace, "tidesync-system");
  EXPECT_EQ(l.duration, 600s);

  advance(5s);
  auto b = acquire("ns/b/2", {"s3:src", "gcs:other"});  // s3:src contains s3:src/data
  EXPECT_EQ(b.what, lock_reply::kind::waiting);
  EXPECT_EQ(b.blocker, "ns/a/1");
  EXPECT_EQ(b.path, "s3:src");
  EXPECT_EQ(b.position, 1u);
  EXPECT_EQ(holder_of("s3:src/data/x"), "ns/a/1");
  EXPECT_EQ(holder_of("s3:srcx"), "");
  EXPECT_EQ(acquire("ns/b/2", {"gcs:other", "s3:src"}), b);  // idempotent

  auto granted = await("ns/b/2");
  EXPECT_FALSE(granted->has_value());  // deferred
  advance(20s);
  release("ns/a/1");
  ASSERT_TRUE(granted->has_value());
  EXPECT_EQ((*granted)->what, lock_reply::kind::granted);
  EXPECT_EQ(sink_->ops, (std::vector<std::string>{
                            "granted ns/a/1 gcs:dst s3:src/data",
                            "released ns/a/1 s3:src/data gcs:dst",  // reverse order
                            "granted ns/b/2 gcs:other s3:src",
                        }));
  EXPECT_EQ(sink_->leases.at(lease_name("s3:src")).acquire_time, wall0 + 25s);
  EXPECT_EQ(acquire("ns/b/2", {"s3:src", "gcs:other"}).what, lock_reply::kind::granted);
  EXPECT_EQ(sink_->ops.size(), 3u);  // an idempotent acquire writes nothing
  release("ns/b/2");
  EXPECT_TRUE(sink_->leases.empty());
}

TEST_F(LockManagerActor, RenewsLiveHoldersOnATimerAndGoesIdle) {
  sink_->alive_holders = {"ns/a/1"};
  start();
  EXPECT_FALSE(sched_->has_pending_timeout());  // nothing held: no timer
  acquire("ns/a/1", {"s3:b"});
  advance(60s);
  EXPECT_EQ(sink_->leases.at(lease_name("s3:b")).renew_time, wall0 + 60s);
  advance(60s);
  EXPECT_EQ(sink_->leases.at(lease_name("s3:b")).renew_time, wall0 + 120s);
  EXPECT_EQ(sink_->leases.at(lease_name("s3:b")).acquire_time, wall0);
  // Live however long it runs: never reclaimed.
  for (int i = 0; i < 20; ++i)
    advance(60s);
  EXPECT_EQ(holder_of("s3:b"), "ns/a/1");
  release("ns/a/1");
  advance(60s);  // the last tick finds nothing and arms no new timer
  EXPECT_FALSE(sched_->has_pending_timeout());
}

TEST_F(LockManagerActor, RestartRecoveryAdoptsReclaimsAndHoldsUntilTheTtl) {
  auto rec = [](std::string holder, std::vector<std::string> set, std::string path, tp renewed) {
    lease_record r;
    r.name = lease_name(path);
    r.lease_namespace = "tidesync-system";
    r.holder = std::move(holder);
    r.path = std::move(path);
    r.set = std::move(set);
    r.acquire_time = renewed - 1h;
    r.renew_time = renewed;
    r.duration = 600s;
    return r;
  };
  // live: renewed an hour ago (no controller ran), one of its two Leases was never written.
  // gone-fresh: its BucketSync is gone, renewed a minute ago. gone-stale: renewed 11 min ago.
  std::vector<lease_record> existing = {
      rec("ns/live/1", {"s3:l1", "s3:l2"}, "s3:l1", wall0 - 1h),
      rec("ns/gone-fresh/2", {"s3:f"}, "s3:f", wall0 - 60s),
      rec("ns/gone-stale/3", {"s3:s"}, "s3:s", wall0 - 11min),
  };
  for (const auto& r : existing)
    sink_->leases[r.name] = r;
  sink_->alive_holders = {"ns/live/1", "ns/w/4", "ns/x/5"};
  start(existing);

  EXPECT_EQ(sink_->ops, (std::vector<std::string>{
                            "released ns/gone-stale/3 s3:s",
                            "renewed ns/live/1 s3:l1 s3:l2",  // re-creates the missing s3:l2
                        }));
  EXPECT_EQ(sink_->leases.at(lease_name("s3:l2")).renew_time, wall0);
  EXPECT_EQ(sink_->leases.at(lease_name("s3:l2")).acquire_time, wall0 - 2h);
  // The live holder's next acquire of its set is granted at once (it adopts its Job).
  EXPECT_EQ(acquire("ns/live/1", {"s3:l2", "s3:l1"}).what, lock_reply::kind::granted);
  EXPECT_EQ(acquire("ns/x/5", {"s3:s"}).what, lock_reply::kind::granted);  // reclaimed
  auto w = acquire("ns/w/4", {"s3:f/sub"});
  EXPECT_EQ(w.what, lock_reply::kind::waiting);
  EXPECT_EQ(w.blocker, "ns/gone-fresh/2");
  auto granted = await("ns/w/4");

  advance(8min);  // gone-fresh was renewed 9 min ago: not yet stale
  EXPECT_FALSE(granted->has_value());
  EXPECT_EQ(holder_of("s3:f"), "ns/gone-fresh/2");
  advance(60s);  // 10 min since its renewal: reclaimed, the waiter is granted
  ASSERT_TRUE(granted->has_value());
  EXPECT_EQ((*granted)->what, lock_reply::kind::granted);
  EXPECT_EQ(holder_of("s3:f"), "ns/w/4");
  EXPECT_EQ(sink_->leases.count(lease_name("s3:f")), 0u);
  EXPECT_EQ(sink_->leases.at(lease_name("s3:f/sub")).holder, "ns/w/4");
  EXPECT_EQ(holder_of("s3:l1"), "ns/live/1");
}

TEST_F(LockManagerActor, ConflictingLeasesAtStartAreLeftAlone) {
  lease_record a;
  a.holder = "ns/a/1";
  a.path = "s3:b";
  a.set = {"s3:b"};
  a.name = lease_name(a.path);
  a.renew_time = a.acquire_time = wall0;
  auto b = a;
  b.holder = "ns/b/2";
  b.path = "s3:b/x";
  b.set = {"s3:b/x"};
  b.name = lease_name(b.path);
  sink_->alive_holders = {"ns/a/1", "ns/b/2"};
  start({a, b});
  EXPECT_EQ(holder_of("s3:b/x"), "ns/a/1");  // the first adopted wins; the other is reported
  EXPECT_EQ(sink_->ops, (std::vector<std::string>{"renewed ns/a/1 s3:b"}));
}

TEST_F(LockManagerActor, RejectionsAndWithdrawal) {
  sink_->alive_holders = {"ns/a/1", "ns/b/2"};
  start();
  auto bad = acquire("ns/a/1", {"s3:b/../c"});
  EXPECT_EQ(bad.what, lock_reply::kind::rejected);
  EXPECT_NE(bad.message.find(".."), std::string::npos);
  EXPECT_EQ(acquire("ns/a/1", {}).what, lock_reply::kind::rejected);
  auto not_waiting = await("ns/a/1");
  ASSERT_TRUE(not_waiting->has_value());
  EXPECT_EQ((*not_waiting)->what, lock_reply::kind::rejected);

  EXPECT_EQ(acquire("ns/a/1", {"s3:b"}).what, lock_reply::kind::granted);
  EXPECT_EQ(acquire("ns/a/1", {"s3:c"}).what, lock_reply::kind::rejected);  // different set
  auto held = await("ns/a/1");
  ASSERT_TRUE(held->has_value());
  EXPECT_EQ((*held)->what, lock_reply::kind::granted);

  EXPECT_EQ(acquire("ns/b/2", {"s3:b"}).what, lock_reply::kind::waiting);
  auto w1 = await("ns/b/2");
  auto w2 = await("ns/b/2");
  release("ns/b/2");  // deleted while waiting
  ASSERT_TRUE(w1->has_value() && w2->has_value());
  EXPECT_EQ((*w1)->what, lock_reply::kind::rejected);
  EXPECT_NE((*w2)->message.find("withdrew"), std::string::npos);
  EXPECT_EQ(holder_of("not valid/.."), "");
  release("ns/unknown/9");  // ignored
  EXPECT_EQ(holder_of("s3:b"), "ns/a/1");
}

}  // namespace
}  // namespace tidesync::actors
