// The informer cache: label index consistency, stale-event safety, relist diffs, and
// readers on other threads while the writer works.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "runtime/watch/cache.hpp"

namespace tidesync::watch {
namespace {

object make(const std::string& ns, const std::string& name, int rv, label_list labels = {},
            const std::string& uid = "") {
  object o;
  o.meta.ns = ns;
  o.meta.name = name;
  o.meta.uid = uid.empty() ? "u-" + name : uid;
  o.meta.resource_version = std::to_string(rv);
  std::sort(labels.begin(), labels.end());
  o.meta.labels = std::move(labels);
  o.raw = std::make_shared<const std::string>(R"({"metadata":{"name":")" + name + R"("}})");
  return o;
}

std::vector<std::string> keys_of(const std::vector<cache::handle>& hs) {
  std::vector<std::string> out;
  for (const auto& h : hs)
    out.push_back(h->key());
  return out;
}

using keys = std::vector<std::string>;

TEST(WatchCache, LabelIndexFollowsUpdatesAndDeletes) {
  cache c;
  EXPECT_EQ(c.apply(event_type::added, make("a", "p1", 1, {{"app", "web"}, {"tier", "fe"}})),
            cache::change::added);
  EXPECT_EQ(c.apply(event_type::added, make("a", "p2", 2, {{"app", "web"}})), cache::change::added);
  EXPECT_EQ(c.apply(event_type::added, make("b", "p3", 3, {{"app", "db"}})), cache::change::added);
  EXPECT_EQ(keys_of(c.select({{"app", "web"}})), (keys{"a/p1", "a/p2"}));
  EXPECT_EQ(keys_of(c.select({{"app", "web"}, {"tier", "fe"}})), (keys{"a/p1"}));
  EXPECT_TRUE(c.select({{"app", "nope"}}).empty());
  EXPECT_EQ(c.select({}).size(), 3u);

  // Relabel p1: it leaves app=web and tier=fe.
  EXPECT_EQ(c.apply(event_type::modified, make("a", "p1", 4, {{"app", "db"}})),
            cache::change::modified);
  EXPECT_EQ(keys_of(c.select({{"app", "web"}})), (keys{"a/p2"}));
  EXPECT_EQ(keys_of(c.select({{"app", "db"}})), (keys{"a/p1", "b/p3"}));
  EXPECT_TRUE(c.select({{"tier", "fe"}}).empty());

  EXPECT_EQ(c.apply(event_type::deleted, make("b", "p3", 5, {{"app", "db"}})),
            cache::change::deleted);
  EXPECT_EQ(keys_of(c.select({{"app", "db"}})), (keys{"a/p1"}));
  EXPECT_EQ(c.get("b/p3"), nullptr);
  EXPECT_EQ(c.keys(), (keys{"a/p1", "a/p2"}));
  EXPECT_EQ(keys_of(c.list_namespace("a")), (keys{"a/p1", "a/p2"}));
  EXPECT_EQ(keys_of(c.select_if([](const object& o) { return o.meta.name == "p2"; })),
            (keys{"a/p2"}));
  // Deleting something unknown changes nothing.
  EXPECT_EQ(c.apply(event_type::deleted, make("z", "none", 9)), cache::change::none);
  EXPECT_EQ(c.apply(event_type::bookmark, make("z", "bm", 9)), cache::change::none);
}

TEST(WatchCache, EventsNotNewerThanCachedAreIgnored) {
  cache c;
  c.apply(event_type::added, make("a", "p", 10, {{"v", "new"}}));
  EXPECT_EQ(c.apply(event_type::modified, make("a", "p", 9, {{"v", "old"}})), cache::change::none);
  EXPECT_EQ(c.apply(event_type::modified, make("a", "p", 10, {{"v", "same"}})),
            cache::change::none);
  EXPECT_EQ(c.apply(event_type::deleted, make("a", "p", 7)), cache::change::none);
  EXPECT_EQ(*c.get("a/p")->meta.label("v"), "new");
  EXPECT_EQ(keys_of(c.select({{"v", "new"}})), (keys{"a/p"}));
  EXPECT_EQ(c.apply(event_type::modified, make("a", "p", 100, {{"v", "newer"}})),
            cache::change::modified);
  EXPECT_EQ(*c.get("a", "p")->meta.label("v"), "newer");
}

TEST(WatchCache, HandlesStayValidAfterUpdates) {
  cache c;
  c.apply(event_type::added, make("a", "p", 1, {{"k", "1"}}));
  cache::handle h = c.get("a/p");
  c.apply(event_type::modified, make("a", "p", 2, {{"k", "2"}}));
  c.apply(event_type::deleted, make("a", "p", 3));
  EXPECT_EQ(*h->meta.label("k"), "1");  // the reader's copy is immutable and alive
}

TEST(WatchCache, ReplaceReportsAddedModifiedDeletedAndSyncs) {
  cache c;
  EXPECT_FALSE(c.has_synced());
  auto first = c.replace({make("a", "p1", 1, {{"app", "x"}}), make("a", "p2", 2, {{"app", "x"}})});
  EXPECT_TRUE(c.has_synced());
  EXPECT_EQ(first.size(), 2u);
  auto changes = c.replace(
      {make("a", "p1", 1, {{"app", "x"}}), make("a", "p2", 5, {{"app", "y"}}), make("a", "p3", 6)});
  std::vector<std::pair<std::string, cache::change>> want = {{"a/p2", cache::change::modified},
                                                             {"a/p3", cache::change::added}};
  EXPECT_EQ(changes, want);
  changes = c.replace({make("a", "p3", 6)});
  want = {{"a/p1", cache::change::deleted}, {"a/p2", cache::change::deleted}};
  EXPECT_EQ(changes, want);
  EXPECT_TRUE(c.select({{"app", "x"}}).empty());
  EXPECT_TRUE(c.select({{"app", "y"}}).empty());
  // Same name, new uid (deleted and recreated while we were away): reported as modified.
  changes = c.replace({make("a", "p3", 6, {}, "other-uid")});
  want = {{"a/p3", cache::change::modified}};
  EXPECT_EQ(changes, want);
}

// One writer applying random events while readers query; each reader checks invariants
// that must hold in every state it can observe. Run under TSan to check the locking.
TEST(WatchCache, ConcurrentReadersSeeConsistentObjects) {
  cache c;
  std::atomic<bool> done{false};
  std::atomic<long> reads{0};
  std::atomic<int> violations{0};
  auto reader = [&] {
    while (!done.load()) {
      for (const auto& h : c.select({{"parity", "even"}})) {
        // An object found through the index must carry the label it was found by.
        const std::string* p = h->meta.label("parity");
        if (!p || *p != "even") violations++;
        if (std::stoi(h->meta.resource_version) % 2 != 0) violations++;
      }
      if (auto h = c.get("ns/p7")) {
        if (h->meta.name != "p7") violations++;
      }
      reads++;
    }
  };
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i)
    readers.emplace_back(reader);
  std::mt19937 rng(7);
  int rv = 1;
  for (int i = 0; i < 4000; ++i) {
    std::string name = "p" + std::to_string(rng() % 50);
    ++rv;
    std::string parity = rv % 2 == 0 ? "even" : "odd";
    switch (rng() % 4) {
      case 0:
        c.apply(event_type::deleted, make("ns", name, rv));
        break;
      case 1:
        if (i % 1000 == 0) {
          c.replace({make("ns", name, rv, {{"parity", parity}})});
          break;
        }
        [[fallthrough]];
      default:
        c.apply(event_type::modified, make("ns", name, rv, {{"parity", parity}}));
        break;
    }
  }
  // Keep the writer busy until every reader has had a fair number of looks.
  while (reads.load() < 300) {
    ++rv;
    c.apply(event_type::modified, make("ns", "p7", rv, {{"parity", rv % 2 ? "odd" : "even"}}));
  }
  done = true;
  for (auto& t : readers)
    t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_GE(reads.load(), 300);
}

}  // namespace
}  // namespace tidesync::watch
