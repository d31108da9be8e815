// The informer (watcher + cache) over the real client, against the embedded API server over
// HTTP on 127.0.0.1, through a forced disconnect and a forced 410: after each, the cache must
// equal the server's state exactly (same keys, same resourceVersions), and every object that
// vanished while the watch was down must have been reported as a change of its key.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "runtime/apiserver/server.hpp"
#include "runtime/apiserver/store.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/watch/client_transport.hpp"
#include "runtime/watch/informer.hpp"

namespace tidesync {
namespace {

using namespace std::chrono_literals;

const k8s::resource configmaps = k8s::resources::configmaps();

json::value configmap(const std::string& name, const std::string& value) {
  json::value cm;
  cm["apiVersion"] = "v1";
  cm["kind"] = "ConfigMap";
  cm["metadata"]["name"] = name;
  cm["metadata"]["labels"]["app"] = "watch-test";
  cm["data"]["v"] = value;
  return cm;
}

class WatchAgainstEmbeddedServer : public ::testing::Test {
 protected:
  void SetUp() override {
    apiserver::store_options so;
    so.bookmark_interval = 200ms;
    store_ = std::make_unique<apiserver::store>(so);
    server_ = std::make_unique<apiserver::server>(*store_);
    auto port = server_->start();
    ASSERT_TRUE(port.has_value()) << port.error().to_string();
    k8s::connection_config cfg;
    cfg.server = "http://127.0.0.1:" + std::to_string(*port);
    client_ = std::make_unique<k8s::client>(loop_, cfg);
    transport_ = std::make_unique<watch::client_transport>(*client_, configmaps, "watch-test", 10s);
    watch::watcher_options wo;
    wo.name = "v1/configmaps";
    wo.page_size = 7;  // several pages for the initial list and every relist
    wo.backoff.initial = 50ms;
    wo.backoff.max = 200ms;
    informer_ = std::make_unique<watch::informer>(*transport_, wo);
    informer_->add_handler([this](const std::string& key) {
      std::lock_guard<std::mutex> guard(mu_);
      ++notified_[key];
      cv_.notify_all();
    });
    json::value ns;
    ns["apiVersion"] = "v1";
    ns["kind"] = "Namespace";
    ns["metadata"]["name"] = "watch-test";
    ASSERT_TRUE(client_->create_sync(k8s::resources::namespaces(), "", ns).has_value());
  }

  void TearDown() override {
    if (informer_) {
      std::promise<void> stopped;
      loop_.post([&] {
        informer_->stop();
        stopped.set_value();
      });
      stopped.get_future().wait();
    }
    loop_.stop();
    informer_.reset();
    transport_.reset();
    client_.reset();
    server_->stop();
  }

  void start_informer() {
    loop_.post([this] { informer_->start(); });
  }

  void create(const std::string& name, const std::string& value) {
    auto r = client_->create_sync(configmaps, "watch-test", configmap(name, value));
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
  }
  void update(const std::string& name, const std::string& value) {
    json::value patch;
    patch["data"]["v"] = value;
    auto r = client_->patch_sync(configmaps, "watch-test", name, k8s::patch_type::merge, patch);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
  }
  void remove(const std::string& name) {
    auto r = client_->remove_sync(configmaps, "watch-test", name);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
  }

  // The server's state: key → resourceVersion, straight from the store.
  std::map<std::string, std::string> server_state() {
    auto type = store_->find_type("", "v1", "configmaps");
    EXPECT_TRUE(type.has_value());
    auto listed = client_->list_all_sync(configmaps, "watch-test");
    EXPECT_TRUE(listed.has_value());
    std::map<std::string, std::string> out;
    for (const auto& item : listed->at("items")->as_array()) {
      const json::value& md = *item.at("metadata");
      out[std::string(md.get_string("namespace")) + "/" + std::string(md.get_string("name"))] =
          std::string(md.get_string("resourceVersion"));
    }
    return out;
  }

  std::map<std::string, std::string> cache_state() {
    std::map<std::string, std::string> out;
    for (const auto& h : informer_->store().list())
      out[h->key()] = h->meta.resource_version;
    return out;
  }

  // Waits until the cache equals the server's state (polling, with a deadline).
  ::testing::AssertionResult converges(std::chrono::milliseconds deadline = 15s) {
    auto want = server_state();
    auto until = std::chrono::steady_clock::now() + deadline;
    std::map<std::string, std::string> got;
    while (std::chrono::steady_clock::now() < until) {
      got = cache_state();
      if (informer_->has_synced() && got == want) return ::testing::AssertionSuccess();
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, 20ms);
    }
    auto result = ::testing::AssertionFailure() << "cache did not converge: server has "
                                                << want.size() << " objects, cache " << got.size();
    for (const auto& [k, rv] : want) {
      auto it = got.find(k);
      if (it == got.end()) {
        result << "\n  missing in cache: " << k;
      } else if (it->second != rv) {
        result << "\n  stale in cache: " << k << " rv " << it->second << " != " << rv;
      }
    }
    for (const auto& [k, rv] : got)
      if (!want.count(k)) result << "\n  extra in cache: " << k;
    return result;
  }

  // Waits until `key` was reported at least `n` times (handlers run just after the cache
  // is updated, so a converged cache does not mean the handlers have run yet).
  ::testing::AssertionResult notified(const std::string& key, int n,
                                      std::chrono::milliseconds deadline = 5s) {
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, deadline, [&] { return notified_[key] >= n; }))
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << key << " was reported " << notified_[key] << " times, expected at least " << n;
  }

  http::loop loop_;
  std::unique_ptr<apiserver::store> store_;
  std::unique_ptr<apiserver::server> server_;
  std::unique_ptr<k8s::client> client_;
  std::unique_ptr<watch::client_transport> transport_;
  std::unique_ptr<watch::informer> informer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, int> notified_;
};

TEST_F(WatchAgainstEmbeddedServer, InitialListInPagesThenLiveEvents) {
  for (int i = 0; i < 20; ++i)
    create("cm-" + std::to_string(i), "a");
  start_informer();
  ASSERT_TRUE(converges());
  EXPECT_GE(informer_->source().stats().list_pages, 3u);

  update("cm-3", "b");
  remove("cm-4");
  create("cm-new", "c");
  ASSERT_TRUE(converges());
  EXPECT_EQ(informer_->store().get("watch-test/cm-4"), nullptr);
  auto cm3 = informer_->store().get("watch-test", "cm-3");
  ASSERT_NE(cm3, nullptr);
  auto parsed = cm3->parse();
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->at("data")->get_string("v"), "b");
}

TEST_F(WatchAgainstEmbeddedServer, ForcedDisconnectLosesNothing) {
  for (int i = 0; i < 10; ++i)
    create("cm-" + std::to_string(i), "a");
  start_informer();
  ASSERT_TRUE(converges());
  uint64_t watches_before = informer_->source().stats().watches;

  // Drop every watch stream while changes keep coming; the watcher re-watches from its last
  // resourceVersion and the server replays what it missed.
  for (int round = 0; round < 5; ++round) {
    store_->close_watches();
    update("cm-" + std::to_string(round), "round-" + std::to_string(round));
    remove("cm-" + std::to_string(5 + round));
    create("late-" + std::to_string(round), "x");
  }
  ASSERT_TRUE(converges());
  EXPECT_GT(informer_->source().stats().watches, watches_before);
  EXPECT_EQ(informer_->source().stats().relists, 0u) << "a disconnect must not force a relist";
  for (int round = 0; round < 5; ++round) {
    EXPECT_TRUE(notified("watch-test/cm-" + std::to_string(5 + round), 2))
        << "the delete was not reported";
  }
}

TEST_F(WatchAgainstEmbeddedServer, Forced410RelistsAndReportsWhatVanished) {
  for (int i = 0; i < 15; ++i)
    create("cm-" + std::to_string(i), "a");
  start_informer();
  ASSERT_TRUE(converges());

  // An API server restart with compaction: while the server is down (the watch breaks and
  // re-watch attempts are refused), objects change and the history is dropped. The
  // watcher's resourceVersion is then too old, the server answers 410, and only a relist
  // can catch up.
  int port = server_->port();
  server_->stop();
  auto type = store_->find_type("", "v1", "configmaps");
  ASSERT_TRUE(type.has_value());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store_->remove(*type, "watch-test", "cm-" + std::to_string(i)).has_value());
  }
  json::value patch;
  patch["data"]["v"] = "after-compaction";
  ASSERT_TRUE(
      store_->patch(*type, "watch-test", "cm-10", apiserver::store::patch_type::merge, patch)
          .has_value());
  json::value born = configmap("born-during-outage", "z");
  born["metadata"]["namespace"] = "watch-test";
  ASSERT_TRUE(store_->create(*type, "watch-test", born).has_value());
  store_->compact();
  apiserver::server_options so;
  so.port = port;
  server_ = std::make_unique<apiserver::server>(*store_, so);
  auto restarted = server_->start();
  ASSERT_TRUE(restarted.has_value()) << restarted.error().to_string();

  ASSERT_TRUE(converges());
  EXPECT_GE(informer_->source().stats().relists, 1u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(informer_->store().get("watch-test/cm-" + std::to_string(i)), nullptr);
    EXPECT_TRUE(notified("watch-test/cm-" + std::to_string(i), 2))
        << "vanished without a notification";
  }
  EXPECT_TRUE(notified("watch-test/born-during-outage", 1));

  // And the watch is live again afterwards.
  create("after-relist", "ok");
  ASSERT_TRUE(converges());
}

}  // namespace
}  // namespace tidesync
