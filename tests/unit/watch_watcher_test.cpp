// Watcher transcripts against a scripted transport and a fake clock: paging, watch,
// normal end → re-watch, 410 → relist and replace, errors → backoff, bookmarks.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "runtime/watch/informer.hpp"
#include "runtime/watch/transport.hpp"
#include "runtime/watch/watcher.hpp"

namespace tidesync::watch::testing {

class fake_transport : public transport {
 public:
  struct pending_list {
    list_request req;
    std::function<void(expected<std::string>)> done;
  };
  struct a_watch {
    watch_id id = 0;
    watch_request req;
    std::function<void(std::string_view)> on_chunk;
    std::function<void(expected<void>)> on_done;
    bool cancelled = false;
  };
  struct timer {
    clock::time_point due;
    std::function<void()> fn;
  };

  void list(const list_request& req, std::function<void(expected<std::string>)> done) override {
    lists.push_back({req, std::move(done)});
    ++list_calls;
  }
  watch_id watch(const watch_request& req, std::function<void(std::string_view)> on_chunk,
                 std::function<void(expected<void>)> on_done) override {
    watches.push_back({++next_id_, req, std::move(on_chunk), std::move(on_done), false});
    return next_id_;
  }
  void cancel(watch_id id) override {
    for (auto& w : watches) {
      if (w.id == id) w.cancelled = true;
    }
  }
  void post_after(std::chrono::milliseconds delay, std::function<void()> fn) override {
    delays.push_back(delay);
    timers.push_back({now_ + delay, std::move(fn)});
  }
  clock::time_point now() override { return now_; }

  // Moves the clock and fires due timers in due order.
  void advance(std::chrono::milliseconds d) {
    now_ += d;
    for (;;) {
      auto it = std::min_element(timers.begin(), timers.end(),
                                 [](const timer& a, const timer& b) { return a.due < b.due; });
      if (it == timers.end() || it->due > now_) break;
      auto fn = std::move(it->fn);
      timers.erase(it);
      fn();
    }
  }

  // Answers the oldest pending list request.
  void answer_list(expected<std::string> body) {
    if (lists.empty()) {
      ADD_FAILURE() << "answer_list: no list request is pending";
      return;
    }
    auto l = std::move(lists.front());
    lists.pop_front();
    l.done(std::move(body));
  }
  // The newest watch that was not cancelled (fails the test when there is none).
  a_watch& live() {
    for (auto it = watches.rbegin(); it != watches.rend(); ++it) {
      if (!it->cancelled) return *it;
    }
    ADD_FAILURE() << "no live watch";
    static a_watch none;
    return none;
  }
  [[nodiscard]] size_t live_count() const {
    return std::count_if(watches.begin(), watches.end(),
                         [](const a_watch& w) { return !w.cancelled; });
  }
  void send(const std::string& data) { live().on_chunk(data); }
  // The server ends the live watch; it is no longer live afterwards.
  void end_watch(expected<void> result) {
    a_watch& w = live();
    w.cancelled = true;
    auto done = w.on_done;
    done(std::move(result));
  }

  std::deque<pending_list> lists;
  std::vector<a_watch> watches;
  std::vector<timer> timers;
  std::vector<std::chrono::milliseconds> delays;
  int list_calls = 0;

 private:
  clock::time_point now_ = clock::time_point{} + std::chrono::hours(1000);
  watch_id next_id_ = 0;
};

}  // namespace tidesync::watch::testing

namespace tidesync::watch {

// GoogleTest prints a reconnect_reason by its name (found by ADL: same namespace).
void PrintTo(reconnect_reason r, std::ostream* os) {
  *os << to_string(r);
}

namespace {

using namespace std::chrono_literals;
using testing::fake_transport;

std::string pod(const std::string& ns, const std::string& name, int rv,
                const std::string& app = "web") {
  return R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":")" + name + R"(","namespace":")" +
         ns + R"(","uid":"u-)" + name + R"(","resourceVersion":")" + std::to_string(rv) +
         R"(","labels":{"app":")" + app + R"("}},"spec":{}})";
}
std::string list_body(const std::vector<std::string>& items, int rv, const std::string& cont = "") {
  std::string b = R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":")" +
                  std::to_string(rv) + R"(")";
  if (!cont.empty()) b += R"(,"continue":")" + cont + R"(")";
  b += R"(},"items":[)";
  for (size_t i = 0; i < items.size(); ++i)
    b += (i ? "," : "") + items[i];
  return b + "]}";
}
std::string ev(const std::string& type, const std::string& obj) {
  return R"({"type":")" + type + R"(","object":)" + obj + "}\n";
}
std::string bookmark(int rv) {
  return R"({"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":")" +
         std::to_string(rv) +
         R"("}}})"
         "\n";
}
std::string gone_event() {
  return R"({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version","reason":"Expired","code":410}})"
         "\n";
}
error err(errc c, const std::string& m) {
  return make_error(c, m);
}

class WatcherTest : public ::testing::Test {
 protected:
  WatcherTest() {
    opts.name = "test/pods";
    opts.page_size = 2;
    opts.label_selector = "app";
    opts.backoff.seed = 42;
    opts.on_reconnect = [this](reconnect_reason why) { reconnects.push_back(why); };
    opts.on_relist = [this] { ++relists_seen; };
    inf = std::make_unique<informer>(t, opts);
    inf->add_handler([this](const std::string& key) { notified.push_back(key); });
  }
  // Start, answer a one-page list with `items` at `rv`, and check the watch began there.
  void start_synced(const std::vector<std::string>& items, int rv) {
    inf->start();
    t.answer_list(list_body(items, rv));
    ASSERT_TRUE(inf->has_synced());
    ASSERT_EQ(t.live().req.resource_version, std::to_string(rv));
    notified.clear();
  }
  std::vector<std::string> cache_keys() const { return inf->store().keys(); }

  fake_transport t;
  watcher_options opts;
  std::unique_ptr<informer> inf;
  std::vector<std::string> notified;
  std::vector<reconnect_reason> reconnects;  // what opts.on_reconnect heard
  int relists_seen = 0;                      // opts.on_relist
};

TEST_F(WatcherTest, InitialListPagesThenWatchesFromListVersion) {
  inf->start();
  EXPECT_EQ(inf->source().state(), watcher_state::listing);
  ASSERT_EQ(t.lists.size(), 1u);
  EXPECT_EQ(t.lists[0].req.limit, 2);
  EXPECT_EQ(t.lists[0].req.label_selector, "app");
  EXPECT_EQ(t.lists[0].req.continue_token, "");
  t.answer_list(list_body({pod("a", "p1", 5), pod("a", "p2", 6)}, 9, "tok1"));
  EXPECT_FALSE(inf->has_synced());  // a partial listing is never exposed
  EXPECT_EQ(inf->store().size(), 0u);
  ASSERT_EQ(t.lists.size(), 1u);
  EXPECT_EQ(t.lists[0].req.continue_token, "tok1");
  EXPECT_TRUE(t.watches.empty());
  t.answer_list(list_body({pod("b", "p3", 7)}, 9));
  EXPECT_TRUE(inf->has_synced());
  EXPECT_EQ(cache_keys(), (std::vector<std::string>{"a/p1", "a/p2", "b/p3"}));
  EXPECT_EQ(notified, (std::vector<std::string>{"a/p1", "a/p2", "b/p3"}));
  ASSERT_EQ(t.watches.size(), 1u);
  EXPECT_EQ(t.watches[0].req.resource_version, "9");
  EXPECT_TRUE(t.watches[0].req.allow_bookmarks);
  EXPECT_EQ(t.watches[0].req.label_selector, "app");
  EXPECT_EQ(inf->source().state(), watcher_state::watching);
  EXPECT_EQ(inf->source().stats().list_pages, 2u);
}

TEST_F(WatcherTest, EventsUpdateCacheAndHandlersGetKeys) {
  start_synced({pod("a", "p1", 5)}, 9);
  std::string stream = ev("ADDED", pod("a", "p2", 10)) + ev("MODIFIED", pod("a", "p1", 11, "db")) +
                       ev("DELETED", pod("a", "p2", 12)) +
                       ev("MODIFIED", pod("a", "p1", 8, "stale"));  // older: ignored
  // Deliver in awkward pieces.
  for (size_t i = 0; i < stream.size(); i += 13)
    t.send(stream.substr(i, 13));
  EXPECT_EQ(cache_keys(), (std::vector<std::string>{"a/p1"}));
  EXPECT_EQ(*inf->store().get("a/p1")->meta.label("app"), "db");
  EXPECT_EQ(inf->store().get("a", "p1")->meta.resource_version, "11");
  EXPECT_EQ(notified, (std::vector<std::string>{"a/p2", "a/p1", "a/p2"}));
  EXPECT_EQ(inf->source().resource_version(), "8");  // last seen on the stream
  EXPECT_EQ(inf->source().stats().events, 4u);
}

TEST_F(WatcherTest, NormalEndRewatchesFromLastVersionWithoutRelisting) {
  start_synced({pod("a", "p1", 5)}, 9);
  t.send(ev("ADDED", pod("a", "p2", 12)) + bookmark(15));
  EXPECT_EQ(inf->source().resource_version(), "15");
  t.advance(60s);
  t.end_watch({});
  EXPECT_EQ(t.list_calls, 1);
  ASSERT_EQ(t.watches.size(), 2u);
  EXPECT_EQ(t.live().req.resource_version, "15");
  EXPECT_TRUE(t.timers.empty());  // no backoff for a normal end
  EXPECT_EQ(inf->source().stats().bookmarks, 1u);
  EXPECT_EQ(inf->store().size(), 2u);
}

TEST_F(WatcherTest, Gone410EventRelistsReplacesCacheAndDeletesVanished) {
  start_synced({pod("a", "p1", 5), pod("a", "p2", 6)}, 9);
  t.send(ev("ADDED", pod("a", "p3", 10)));
  t.advance(30s);
  notified.clear();
  // ERROR 410, then an event in the same chunk that must not be applied.
  t.send(gone_event() + ev("ADDED", pod("a", "late", 11)));
  EXPECT_EQ(t.live_count(), 0u);
  EXPECT_EQ(inf->source().state(), watcher_state::listing);
  EXPECT_EQ(inf->store().get("a/late"), nullptr);
  ASSERT_EQ(t.lists.size(), 1u);
  EXPECT_EQ(t.lists[0].req.continue_token, "");
  // While relisting, readers still see the old cache.
  EXPECT_EQ(inf->store().size(), 3u);
  t.answer_list(list_body({pod("a", "p1", 20, "db"), pod("a", "p4", 21)}, 30));
  EXPECT_EQ(cache_keys(), (std::vector<std::string>{"a/p1", "a/p4"}));
  std::set<std::string> got(notified.begin(), notified.end());
  EXPECT_EQ(got, (std::set<std::string>{"a/p1", "a/p2", "a/p3", "a/p4"}));
  EXPECT_EQ(inf->store().select({{"app", "web"}}).size(), 1u);  // index rebuilt
  EXPECT_EQ(t.live().req.resource_version, "30");
  EXPECT_EQ(inf->source().stats().relists, 1u);
}

TEST_F(WatcherTest, Gone410HttpStatusRelists) {
  start_synced({pod("a", "p1", 5)}, 9);
  t.advance(10s);
  t.end_watch(err(errc::gone, "410 Gone"));
  ASSERT_EQ(t.lists.size(), 1u);
  t.answer_list(list_body({}, 40));
  EXPECT_EQ(inf->store().size(), 0u);
  EXPECT_EQ(notified, (std::vector<std::string>{"a/p1"}));
  EXPECT_EQ(t.live().req.resource_version, "40");
}

TEST_F(WatcherTest, ExpiredContinueTokenRestartsTheListing) {
  inf->start();
  t.answer_list(list_body({pod("a", "p1", 5), pod("a", "p2", 6)}, 9, "tok1"));
  t.answer_list(err(errc::gone, "continue token expired"));
  ASSERT_EQ(t.lists.size(), 1u);
  EXPECT_EQ(t.lists[0].req.continue_token, "");
  t.answer_list(list_body({pod("a", "p2", 6)}, 12));
  EXPECT_EQ(cache_keys(), (std::vector<std::string>{"a/p2"}));  // no leftovers of page 1
  EXPECT_EQ(t.live().req.resource_version, "12");
}

TEST_F(WatcherTest, ErrorsBackOffWithGrowingDelaysThenReset) {
  start_synced({pod("a", "p1", 5)}, 9);
  t.send(ev("ADDED", pod("a", "p2", 10)));
  std::vector<std::chrono::milliseconds> seen;
  for (int i = 0; i < 8; ++i) {
    t.end_watch(err(errc::unavailable, "connection reset"));
    EXPECT_EQ(inf->source().state(), watcher_state::backing_off);
    EXPECT_EQ(t.live_count(), 0u);
    seen.push_back(inf->source().last_delay());
    t.advance(inf->source().last_delay());  // the timer fires: re-watch
    ASSERT_EQ(inf->source().state(), watcher_state::watching);
    EXPECT_EQ(t.live().req.resource_version, "10");  // re-watch, not relist
  }
  EXPECT_EQ(t.list_calls, 1);
  // 0.8 s ± 20 %, then doubling, capped near 30 s.
  EXPECT_GE(seen[0], 640ms);
  EXPECT_LE(seen[0], 960ms);
  for (int i = 1; i < 5; ++i)
    EXPECT_GT(seen[i], seen[i - 1]) << i;
  for (auto d : seen)
    EXPECT_LE(d, 36s);
  EXPECT_GE(seen[7], 24s);
  // A healthy stretch of more than two minutes, then a failure: back to the start.
  t.send(ev("MODIFIED", pod("a", "p2", 11)));
  t.advance(150s);
  t.end_watch(err(errc::unavailable, "connection reset"));
  EXPECT_LE(inf->source().last_delay(), 960ms);
  EXPECT_EQ(inf->source().last_error()->code, errc::unavailable);
}

TEST_F(WatcherTest, ListFailureBeforeFirstSyncRetriesTheList) {
  inf->start();
  t.answer_list(err(errc::unavailable, "connection refused"));
  EXPECT_EQ(inf->source().state(), watcher_state::backing_off);
  EXPECT_TRUE(t.lists.empty());
  t.advance(inf->source().last_delay());
  ASSERT_EQ(t.lists.size(), 1u);
  t.answer_list(std::string("{not json"));
  EXPECT_EQ(inf->source().state(), watcher_state::backing_off);
  EXPECT_GT(inf->source().last_delay(), t.delays[0]);
  t.advance(inf->source().last_delay());
  t.answer_list(list_body({pod("a", "p1", 5)}, 9));
  EXPECT_TRUE(inf->has_synced());
  ASSERT_EQ(t.watches.size(), 1u);
  EXPECT_EQ(t.live().req.resource_version, "9");
  EXPECT_EQ(inf->store().size(), 1u);
}

TEST_F(WatcherTest, UndecodableLineRewatchesFromLastGoodVersion) {
  start_synced({}, 9);
  t.send(ev("ADDED", pod("a", "p1", 10)) + "garbage}\n" + ev("ADDED", pod("a", "p2", 11)));
  EXPECT_NE(inf->store().get("a/p1"), nullptr);
  EXPECT_EQ(inf->store().get("a/p2"), nullptr);  // after the bad line: not applied
  EXPECT_EQ(inf->source().stats().decode_errors, 1u);
  EXPECT_EQ(inf->source().last_error()->code, errc::parse_error);
  EXPECT_EQ(t.live_count(), 0u);
  t.advance(inf->source().last_delay());
  EXPECT_EQ(t.live().req.resource_version, "10");
  t.send(ev("ADDED", pod("a", "p2", 11)));
  EXPECT_NE(inf->store().get("a/p2"), nullptr);
}

TEST_F(WatcherTest, NonGoneErrorEventBacksOff) {
  start_synced({}, 9);
  t.send(
      R"({"type":"ERROR","object":{"kind":"Status","code":500,"reason":"InternalError","message":"etcd down"}})"
      "\n");
  EXPECT_EQ(inf->source().state(), watcher_state::backing_off);
  EXPECT_EQ(inf->source().last_error()->http_status, 500);
  EXPECT_EQ(t.list_calls, 1);
}

TEST_F(WatcherTest, StreamEndingAtOnceWithNothingBacksOff) {
  start_synced({}, 9);
  t.end_watch({});  // no time passed, no events
  EXPECT_EQ(inf->source().state(), watcher_state::backing_off);
  EXPECT_EQ(t.watches.size(), 1u);
  t.advance(inf->source().last_delay());
  EXPECT_EQ(t.watches.size(), 2u);
  // An immediate 410 right after a relist also waits instead of hammering the list.
  t.end_watch(err(errc::gone, "gone"));
  EXPECT_EQ(inf->source().state(), watcher_state::backing_off);
  EXPECT_TRUE(t.lists.empty());
  t.advance(inf->source().last_delay());
  EXPECT_EQ(t.lists.size(), 1u);
}

// Every way a watch ends reaches on_reconnect once, with the reason the metrics label it by.
TEST_F(WatcherTest, EveryEndedWatchIsReportedAsAReconnectWithItsReason) {
  using r = reconnect_reason;
  start_synced({}, 9);
  EXPECT_TRUE(reconnects.empty()) << "the first watch is not a reconnect";
  // The server ends the stream (its timeout): re-watch at once.
  t.advance(10s);
  t.end_watch({});
  // Ended at once with nothing: still the server closing it, only re-watched after a backoff.
  t.end_watch({});
  t.advance(inf->source().last_delay());
  EXPECT_EQ(reconnects, (std::vector<r>{r::closed, r::closed}));
  // A failed call, a non-410 ERROR event and an undecodable line: errors.
  t.advance(10s);
  t.end_watch(err(errc::unavailable, "connection reset"));
  t.advance(inf->source().last_delay());
  t.send(R"({"type":"ERROR","object":{"kind":"Status","code":500,"message":"etcd down"}})"
         "\n");
  t.advance(inf->source().last_delay());
  t.send("garbage}\n");
  t.advance(inf->source().last_delay());
  ASSERT_EQ(inf->source().state(), watcher_state::watching);
  EXPECT_EQ(reconnects, (std::vector<r>{r::closed, r::closed, r::error, r::error, r::error}));
  EXPECT_EQ(relists_seen, 0);
  // 410 as an ERROR event and as the HTTP status: expired, and each is a relist.
  t.advance(10s);
  t.send(gone_event());
  t.answer_list(list_body({}, 20));
  t.advance(10s);
  t.end_watch(err(errc::gone, "410 Gone"));
  // The relist's continue token expires too: one more relist, but no watch ended.
  t.answer_list(list_body({pod("a", "p1", 5), pod("a", "p2", 6)}, 30, "tok"));
  t.answer_list(err(errc::gone, "continue token expired"));
  t.answer_list(list_body({}, 31));
  ASSERT_EQ(inf->source().state(), watcher_state::watching);
  EXPECT_EQ(reconnects, (std::vector<r>{r::closed, r::closed, r::error, r::error, r::error,
                                        r::expired, r::expired}));
  EXPECT_EQ(relists_seen, 3);
  EXPECT_EQ(inf->source().stats().relists, 3u);
  // The labels.
  EXPECT_EQ(to_string(r::closed), "closed");
  EXPECT_EQ(to_string(r::error), "error");
  EXPECT_EQ(to_string(r::expired), "expired");
}

TEST_F(WatcherTest, ListFailuresAndStopAreNotReconnects) {
  inf->start();
  t.answer_list(err(errc::unavailable, "connection refused"));  // no watch was open yet
  t.advance(inf->source().last_delay());
  t.answer_list(list_body({}, 9));
  ASSERT_EQ(inf->source().state(), watcher_state::watching);
  inf->stop();  // cancels the watch: our doing, not the server's
  inf->start();
  t.answer_list(list_body({}, 9));
  EXPECT_TRUE(reconnects.empty());
  EXPECT_EQ(relists_seen, 0);
}

TEST_F(WatcherTest, FinalLineWithoutNewlineIsApplied) {
  start_synced({}, 9);
  std::string e = ev("ADDED", pod("a", "p1", 10));
  e.pop_back();
  t.send(e);
  t.advance(5s);
  t.end_watch({});
  EXPECT_NE(inf->store().get("a/p1"), nullptr);
  EXPECT_EQ(t.live().req.resource_version, "10");
}

TEST_F(WatcherTest, StopIgnoresLateCallbacks) {
  inf->start();
  auto pending = std::move(t.lists.front());
  t.lists.pop_front();
  inf->stop();
  pending.done(list_body({pod("a", "p1", 5)}, 9));
  EXPECT_FALSE(inf->has_synced());
  EXPECT_TRUE(t.watches.empty());
  // Restart, watch, stop: the cancelled watch's late chunks do nothing.
  inf->start();
  t.answer_list(list_body({}, 9));
  auto& w = t.live();
  inf->stop();
  EXPECT_TRUE(w.cancelled);
  w.on_chunk(ev("ADDED", pod("a", "p9", 10)));
  w.on_done({});
  EXPECT_EQ(inf->store().size(), 0u);
  EXPECT_EQ(inf->source().state(), watcher_state::stopped);
}

TEST_F(WatcherTest, DestroyedWatcherIgnoresCallbacks) {
  inf->start();
  t.answer_list(list_body({}, 9));
  auto on_chunk = t.live().on_chunk;
  inf.reset();
  on_chunk(ev("ADDED", pod("a", "p9", 10)));  // must not touch freed memory (ASan checks)
  SUCCEED();
}

}  // namespace
}  // namespace tidesync::watch
