// The lock Leases written through the real client to the embedded API server over HTTP on
// 127.0.0.1: the lease_writer alone (create, renew, delete, coalescing, conflicts, a server
// that goes away), list_lock_leases, and the full loop with a real lock manager actor in a
// threaded actor system, through a restart. Rules: docs/locks.md, "Writing the Leases".
#include "actors/lease_writer.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <caf/all.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "actors/lease.hpp"
#include "actors/lock_manager.hpp"
#include "actors/type_ids.hpp"
#include "runtime/apiserver/server.hpp"
#include "runtime/apiserver/store.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/k8s/client.hpp"

namespace tidesync::actors {
namespace {

using namespace std::chrono_literals;
using tp = lock_table::time_point;

const k8s::resource leases = k8s::resources::leases();
const std::string ns = "tidesync-system";
const tp t0 = tp{} + 1700000000s;

// Polls `pred` until it holds or `timeout` passes: a condition wait on state that lives in
// another process' view (the API server), not a sleep that hopes for the best.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// The Lease records of `holder`'s set, as the lock manager would make them.
std::vector<lease_record> records(const std::string& holder, std::vector<std::string> set,
                                  tp acquired, tp renewed) {
  std::sort(set.begin(), set.end());
  std::vector<lease_record> out;
  for (const auto& p : set) {
    lease_record r;
    r.name = lease_name(p);
    r.lease_namespace = ns;
    r.holder = holder;
    r.path = p;
    r.set = set;
    r.acquire_time = acquired;
    r.renew_time = renewed;
    r.duration = 600s;
    out.push_back(r);
  }
  return out;
}

class LeaseWriter : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<apiserver::store>();
    server_ = std::make_unique<apiserver::server>(*store_);
    auto port = server_->start();
    ASSERT_TRUE(port.has_value()) << port.error().to_string();
    port_ = *port;
    loop_ = std::make_unique<http::loop>();
    client_ = client_for(*loop_, port_);
    json::value nsobj;
    nsobj["apiVersion"] = "v1";
    nsobj["kind"] = "Namespace";
    nsobj["metadata"]["name"] = ns;
    auto created = client_->create_sync(k8s::resources::namespaces(), "", nsobj);
    ASSERT_TRUE(created.has_value()) << created.error().to_string();
  }

  void TearDown() override {
    if (loop_) loop_->stop();
    client_.reset();
    loop_.reset();  // closes the kept-alive connections, so the server stops at once
    if (server_) server_->stop();
  }

  static std::unique_ptr<k8s::client> client_for(http::loop& loop, int port) {
    k8s::connection_config cfg;
    cfg.server = "http://127.0.0.1:" + std::to_string(port);
    k8s::client_options co;
    co.qps = 0;  // unlimited: renewals of the full-loop test come every 100 ms
    co.timeout = 2s;
    return std::make_unique<k8s::client>(loop, cfg, co);
  }

  // A port nothing listens on: bound and closed again, so connections are refused. (Not an
  // apiserver::server started and stopped at once: stop() right after start() can miss the
  // listener thread and hang.)
  static int dead_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
              ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
    ::close(fd);
    EXPECT_TRUE(ok);
    return ntohs(addr.sin_port);
  }

  static lease_writer_options fast() {
    lease_writer_options o;
    o.retry.initial = 20ms;
    o.retry.max = 100ms;
    return o;
  }

  std::unique_ptr<lease_writer> make_writer(lease_writer_options o = fast()) {
    return make_writer(*client_, o);
  }
  std::unique_ptr<lease_writer> make_writer(k8s::client& c, lease_writer_options o = fast()) {
    return std::make_unique<lease_writer>(
        c,
        [this](std::string_view h) {
          std::lock_guard lock(mu_);
          return alive_.count(std::string(h)) > 0;
        },
        o);
  }

  expected<json::value> get(const std::string& name) { return client_->get_sync(leases, ns, name); }
  bool gone(const std::string& name) {
    auto r = get(name);
    return !r && r.error().code == errc::not_found;
  }
  lease_record read(const std::string& name) {
    auto r = get(name);
    EXPECT_TRUE(r.has_value()) << name << ": " << r.error().to_string();
    if (!r) return {};
    auto rec = parse_lease(*r);
    EXPECT_TRUE(rec.has_value()) << rec.error().message;
    return rec ? *rec : lease_record{};
  }

  std::unique_ptr<apiserver::store> store_;
  std::unique_ptr<apiserver::server> server_;
  int port_ = 0;
  std::unique_ptr<http::loop> loop_;
  std::unique_ptr<k8s::client> client_;
  std::mutex mu_;
  std::set<std::string> alive_;
};

TEST_F(LeaseWriter, GrantedRenewedReleased) {
  auto w = make_writer();
  auto recs = records("default/a/u1", {"s3:bucket/a", "gcs:dst"}, t0, t0);
  w->granted(recs);
  ASSERT_TRUE(w->flush(5s));
  for (const auto& want : recs) {
    auto obj = get(want.name);
    ASSERT_TRUE(obj.has_value()) << obj.error().to_string();
    EXPECT_EQ(obj->at_path({"metadata", "labels"})->get_string(lease_lock_label), "true");
    EXPECT_EQ(obj->at_path({"metadata", "labels"})->get_string("app.kubernetes.io/managed-by"),
              "tidesync");
    EXPECT_EQ(obj->at_path({"metadata", "annotations"})->get_string(lease_path_annotation),
              want.path);
    EXPECT_EQ(obj->at_path({"metadata", "annotations"})->get_string(lease_set_annotation),
              R"(["gcs:dst","s3:bucket/a"])");
    EXPECT_EQ(obj->at("spec")->get_string("holderIdentity"), "default/a/u1");
    EXPECT_EQ(obj->at("spec")->get_string("renewTime"), format_micro_time(t0));
    EXPECT_EQ(obj->at("spec")->get_int("leaseDurationSeconds"), 600);
    auto got = read(want.name);
    got.resource_version.clear();
    EXPECT_EQ(got, want);
  }
  auto s = w->get_stats();
  EXPECT_EQ(s.creates, 2u);
  EXPECT_EQ(s.pending, 0u);

  auto renewed = records("default/a/u1", {"s3:bucket/a", "gcs:dst"}, t0, t0 + 200s);
  w->renewed(renewed);
  ASSERT_TRUE(w->flush(5s));
  for (const auto& want : renewed) {
    auto got = read(want.name);
    EXPECT_EQ(got.renew_time, t0 + 200s);
    EXPECT_EQ(got.acquire_time, t0);
  }
  EXPECT_EQ(w->get_stats().updates, 2u);
  EXPECT_EQ(w->get_stats().conflicts, 0u);

  std::vector<lease_record> reversed(renewed.rbegin(), renewed.rend());
  w->released(reversed);
  ASSERT_TRUE(w->flush(5s));
  for (const auto& r : renewed)
    EXPECT_TRUE(gone(r.name)) << r.name;
  s = w->get_stats();
  EXPECT_EQ(s.deletes, 2u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_EQ(s.pending, 0u);

  // Deleting what is already gone (a reclaim after someone removed it) is a success.
  w->released(reversed);
  ASSERT_TRUE(w->flush(5s));
  s = w->get_stats();
  EXPECT_EQ(s.deletes, 2u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_EQ(s.pending, 0u);
}

TEST_F(LeaseWriter, LatestWishWinsWhileAWriteIsInFlight) {
  auto w = make_writer();
  auto recs = records("default/a/u1", {"s3:b/x"}, t0, t0);
  w->granted(recs);
  w->released(recs);  // the create is still in flight: ends deleted
  ASSERT_TRUE(w->flush(5s));
  EXPECT_TRUE(gone(recs[0].name));

  // Flapping: every wish lands on one serialised stream of requests per name; the last wins.
  for (int i = 0; i < 20; ++i) {
    auto r = records(i % 2 ? "default/b/u2" : "default/c/u3", {"s3:b/x"}, t0,
                     t0 + std::chrono::seconds(i));
    w->granted(r);
    w->released(r);
  }
  auto last = records("default/d/u4", {"s3:b/x"}, t0, t0 + 99s);
  w->granted(last);
  ASSERT_TRUE(w->flush(5s));
  auto got = read(last[0].name);
  EXPECT_EQ(got.holder, "default/d/u4");
  EXPECT_EQ(got.renew_time, t0 + 99s);
  auto s = w->get_stats();
  // Coalescing: far fewer requests than the 42 wishes, none failed.
  EXPECT_LT(s.creates + s.deletes + s.updates, 42u);
  EXPECT_EQ(s.failures, 0u);
}

TEST_F(LeaseWriter, RenewSurvivesSomeoneElsesEditAndDeletion) {
  auto w = make_writer();
  auto recs = records("default/a/u1", {"s3:b/x"}, t0, t0);
  const auto& name = recs[0].name;
  w->granted(recs);
  ASSERT_TRUE(w->flush(5s));

  // A person labels the Lease: its resourceVersion moves, the writer's copy is stale.
  json::value patch;
  patch["metadata"]["labels"]["team"] = "storage";
  ASSERT_TRUE(client_->patch_sync(leases, ns, name, k8s::patch_type::merge, patch).has_value());
  w->renewed(records("default/a/u1", {"s3:b/x"}, t0, t0 + 60s));
  ASSERT_TRUE(w->flush(5s));
  EXPECT_EQ(read(name).renew_time, t0 + 60s);
  auto obj = get(name);
  ASSERT_TRUE(obj.has_value());
  EXPECT_EQ(obj->at_path({"metadata", "labels"})->get_string("team"), "storage");  // kept
  EXPECT_GE(w->get_stats().conflicts, 1u);

  // Deleted behind our back: the next renewal re-creates it.
  ASSERT_TRUE(client_->remove_sync(leases, ns, name).has_value());
  w->renewed(records("default/a/u1", {"s3:b/x"}, t0, t0 + 120s));
  ASSERT_TRUE(w->flush(5s));
  EXPECT_EQ(read(name).renew_time, t0 + 120s);
  EXPECT_EQ(w->get_stats().failures, 0u);
}

TEST_F(LeaseWriter, GrantedOverALeaseLeftBehindTakesItOver) {
  // A Lease a previous run left (its delete never happened): create answers AlreadyExists.
  auto old = records("default/old/u0", {"s3:b/x"}, t0 - 1000s, t0 - 900s);
  ASSERT_TRUE(client_->create_sync(leases, ns, build_lease(old[0])).has_value());
  auto w = make_writer();
  auto recs = records("default/a/u1", {"s3:b/x"}, t0, t0);
  w->granted(recs);
  ASSERT_TRUE(w->flush(5s));
  auto got = read(recs[0].name);
  EXPECT_EQ(got.holder, "default/a/u1");
  EXPECT_EQ(got.acquire_time, t0);
  auto s = w->get_stats();
  EXPECT_EQ(s.creates, 0u);
  EXPECT_EQ(s.updates, 1u);
  EXPECT_EQ(s.conflicts, 1u);
}

TEST_F(LeaseWriter, RetriesWhileTheServerIsDownAndGivesUpOnAStuckDelete) {
  // Ports where nothing listens (a server bound them and stopped): connections are refused.
  int down = dead_port();
  int never = dead_port();
  auto recs = records("default/a/u1", {"s3:b/x"}, t0, t0);
  apiserver::server_options so;
  so.port = down;
  apiserver::server late(*store_, so);  // declared first: stopped after the loop below is gone
  http::loop loop;
  auto c = client_for(loop, down);
  {
    auto w = make_writer(*c);
    w->granted(recs);
    ASSERT_TRUE(eventually([&] { return w->get_stats().failures >= 2; }));
    EXPECT_EQ(w->get_stats().pending, 1u);
    EXPECT_FALSE(w->flush(50ms));
    // The same store behind a server on that port: the next retry gets through.
    ASSERT_TRUE(late.start().has_value());
    ASSERT_TRUE(w->flush(5s));
    EXPECT_EQ(read(recs[0].name).holder, "default/a/u1");
  }

  // A delete that cannot get through is abandoned after give_up_after, not retried forever.
  auto o = fast();
  o.give_up_after = 300ms;
  auto c2 = client_for(loop, never);
  {
    auto w = make_writer(*c2, o);
    auto start = std::chrono::steady_clock::now();
    w->released(recs);
    ASSERT_TRUE(w->flush(5s));
    EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
    EXPECT_GE(w->get_stats().failures, 1u);
    EXPECT_EQ(w->get_stats().deletes, 0u);
    EXPECT_EQ(w->get_stats().pending, 0u);
  }
  EXPECT_EQ(read(recs[0].name).holder, "default/a/u1");  // left for the TTL to reclaim
  loop.stop();                                           // before the clients go
}

TEST_F(LeaseWriter, DestroyedWithRequestsInFlight) {
  auto recs = records("default/a/u1", {"s3:b/x", "s3:c/y", "gcs:z"}, t0, t0);
  {
    auto w = make_writer();
    w->granted(recs);
  }  // answers arrive after the writer is gone: ignored
  // A new writer over the same state converges.
  auto w = make_writer();
  w->renewed(records("default/a/u1", {"s3:b/x", "s3:c/y", "gcs:z"}, t0, t0 + 5s));
  ASSERT_TRUE(w->flush(5s));
  for (const auto& r : recs)
    EXPECT_EQ(read(r.name).renew_time, t0 + 5s);
}

TEST_F(LeaseWriter, ListLockLeasesSkipsOthers) {
  auto w = make_writer();
  auto a = records("default/a/u1", {"s3:b/x", "gcs:d"}, t0, t0 + 1s);
  auto b = records("other/b/u2", {"local:data"}, t0, t0);
  w->granted(a);
  w->granted(b);
  ASSERT_TRUE(w->flush(5s));

  // Not a lock Lease (leader election's, say): no label, never listed.
  json::value leader;
  leader["apiVersion"] = "coordination.k8s.io/v1";
  leader["kind"] = "Lease";
  leader["metadata"]["name"] = "tidesync-leader";
  leader["spec"]["holderIdentity"] = "pod-1";
  ASSERT_TRUE(client_->create_sync(leases, ns, leader).has_value());
  // Labelled as a lock but malformed: skipped with a warning, left alone.
  auto bad = build_lease(records("default/c/u3", {"s3:q"}, t0, t0)[0]);
  bad["spec"]["renewTime"] = "yesterday";
  ASSERT_TRUE(client_->create_sync(leases, ns, bad).has_value());
  // A lock Lease in another namespace is not ours.
  json::value other_ns;
  other_ns["apiVersion"] = "v1";
  other_ns["kind"] = "Namespace";
  other_ns["metadata"]["name"] = "elsewhere";
  ASSERT_TRUE(client_->create_sync(k8s::resources::namespaces(), "", other_ns).has_value());
  auto far = records("default/e/u5", {"s3:far"}, t0, t0)[0];
  far.lease_namespace = "elsewhere";
  ASSERT_TRUE(client_->create_sync(leases, "elsewhere", build_lease(far)).has_value());

  auto listed = list_lock_leases(*client_, ns);
  ASSERT_TRUE(listed.has_value()) << listed.error().to_string();
  std::vector<lease_record> want = a;
  want.insert(want.end(), b.begin(), b.end());
  auto by_name = [](const lease_record& x, const lease_record& y) { return x.name < y.name; };
  std::sort(want.begin(), want.end(), by_name);
  std::sort(listed->begin(), listed->end(), by_name);
  ASSERT_EQ(listed->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_FALSE((*listed)[i].resource_version.empty());
    (*listed)[i].resource_version.clear();
    EXPECT_EQ((*listed)[i], want[i]);
  }
  EXPECT_TRUE(get("tidesync-leader").has_value());  // left alone
  EXPECT_TRUE(get(std::string(bad.at("metadata")->get_string("name"))).has_value());
}

// --- the full loop: a real lock manager actor, the writer as its sink -------------------------

class LockManagerWithWriter : public LeaseWriter {
 protected:
  void SetUp() override {
    LeaseWriter::SetUp();
    cfg_.add_message_types<caf::id_block::tidesync>();
    cfg_.set("scheduler.max-threads", 2);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
  }
  void TearDown() override {
    sys_.reset();  // joins the actors: the sinks go with them
    LeaseWriter::TearDown();
  }

  lock_manager_actor spawn(std::shared_ptr<lease_writer> sink, std::vector<lease_record> existing) {
    lock_options o;
    o.ttl = 600s;
    o.renew_interval = 100ms;
    o.lease_namespace = ns;
    return sys_->spawn(lock_manager, o, std::move(existing),
                       std::static_pointer_cast<lease_sink>(sink));
  }

  lock_reply acquire(lock_manager_actor m, const std::string& holder,
                     std::vector<std::string> paths) {
    caf::scoped_actor self{*sys_};
    lock_reply out;
    out.what = lock_reply::kind::rejected;
    out.message = "no reply";
    self->request(m, 5s, atom::acquire_v, holder, std::move(paths))
        .receive([&](lock_reply r) { out = std::move(r); },
                 [&](caf::error& e) { out.message = caf::to_string(e); });
    return out;
  }
  std::string holder_of(lock_manager_actor m, const std::string& path) {
    caf::scoped_actor self{*sys_};
    std::string out = "<no reply>";
    self->request(m, 5s, atom::holder_of_v, path)
        .receive([&](std::string h) { out = std::move(h); }, [&](caf::error&) {});
    return out;
  }
  void stop(lock_manager_actor m) {
    caf::scoped_actor self{*sys_};
    self->send_exit(m, caf::exit_reason::user_shutdown);
    self->wait_for(m);
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
};

TEST_F(LockManagerWithWriter, AcquireReleaseRestart) {
  const std::string holder = "default/nightly/6c1f";
  const std::vector<std::string> paths{"S3:Bucket/a//b/", "gcs:dst"};
  const std::string a = lease_name("s3:bucket/a/b"), d = lease_name("gcs:dst");
  {
    std::lock_guard lock(mu_);
    alive_.insert(holder);
  }
  auto w1 = std::shared_ptr<lease_writer>(make_writer());
  auto m1 = spawn(w1, {});
  ASSERT_EQ(acquire(m1, holder, paths).what, lock_reply::kind::granted);
  ASSERT_TRUE(w1->flush(5s));  // the reply comes after the manager called granted()
  auto first = read(a);
  EXPECT_EQ(first.holder, holder);
  EXPECT_EQ(first.set, (std::vector<std::string>{"gcs:dst", "s3:bucket/a/b"}));
  EXPECT_EQ(read(d).holder, holder);
  // The manager renews on its timer: renewTime moves.
  ASSERT_TRUE(eventually([&] {
    auto r = get(a);
    return r && parse_lease(*r) && parse_lease(*r)->renew_time > first.renew_time;
  }));

  caf::anon_send(m1, atom::release_v, holder);
  EXPECT_EQ(holder_of(m1, "s3:bucket/a/b"), "");  // processed after the release
  ASSERT_TRUE(w1->flush(5s));
  EXPECT_TRUE(gone(a));
  EXPECT_TRUE(gone(d));

  // Held again, then the controller stops (a crash or a restart: the Leases stay).
  ASSERT_EQ(acquire(m1, holder, paths).what, lock_reply::kind::granted);
  stop(m1);
  ASSERT_TRUE(w1->flush(5s));
  auto found = list_lock_leases(*client_, ns);
  ASSERT_TRUE(found.has_value()) << found.error().to_string();
  ASSERT_EQ(found->size(), 2u);

  // The next controller adopts the set from the Leases: still held by the same holder.
  auto w2 = std::shared_ptr<lease_writer>(make_writer());
  auto m2 = spawn(w2, *found);
  EXPECT_EQ(holder_of(m2, "s3:bucket/a"), holder);
  auto other = acquire(m2, "default/other/99", {"s3:bucket/a/b/c"});
  EXPECT_EQ(other.what, lock_reply::kind::waiting);
  EXPECT_EQ(other.blocker, holder);
  EXPECT_EQ(acquire(m2, holder, paths).what, lock_reply::kind::granted);
  ASSERT_TRUE(w2->flush(5s));
  EXPECT_EQ(read(a).holder, holder);
  EXPECT_EQ(read(d).holder, holder);
  EXPECT_EQ(w2->get_stats().creates, 0u);  // adopted Leases are updated, not re-created

  // Release on the new manager: Leases gone, the waiter gets them.
  caf::anon_send(m2, atom::release_v, holder);
  EXPECT_EQ(holder_of(m2, "s3:bucket/a/b/c"), "default/other/99");
  ASSERT_TRUE(w2->flush(5s));
  EXPECT_TRUE(gone(a));
  EXPECT_TRUE(gone(d));
  EXPECT_EQ(read(lease_name("s3:bucket/a/b/c")).holder, "default/other/99");
  stop(m2);
}

}  // namespace
}  // namespace tidesync::actors
