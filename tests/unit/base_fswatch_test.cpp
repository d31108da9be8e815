// runtime/fswatch.hpp: the pure event classification, the debounce decision (the clock passed
// in), the interval parser, and the inotify tree watcher on a real temporary directory (waits
// are conditions with deadlines).
#include <gtest/gtest.h>
#include <sys/inotify.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/fswatch.hpp"
#include "tests/support/files.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace tidesync::fswatch;

namespace {

action classify_one(uint32_t mask, std::string_view name = {}, bool on_root = false) {
  return classify(event{mask, on_root, name}, is_agent_file);
}

}  // namespace

TEST(FswatchClassify, AgentFilesAreTheMarkerAndTheEnginesTemporaries) {
  EXPECT_TRUE(is_agent_file(".tidesync-initialized"));
  EXPECT_TRUE(is_agent_file(".a.txt.0123abcd.partial"));
  EXPECT_TRUE(is_agent_file(".x.ABCDEF01.partial"));
  EXPECT_FALSE(is_agent_file("a.txt"));
  EXPECT_FALSE(is_agent_file(".partial"));
  EXPECT_FALSE(is_agent_file("a.txt.0123abcd.partial")) << "no leading dot";
  EXPECT_FALSE(is_agent_file(".a.txt.0123abcz.partial")) << "not hex";
  EXPECT_FALSE(is_agent_file(".a.txt0123abcd.partial")) << "no dot before the digits";
  EXPECT_FALSE(is_agent_file(".tidesync-initialized.bak"));
}

TEST(FswatchClassify, FileEventsAreChanges) {
  for (uint32_t m :
       {IN_CREATE, IN_DELETE, IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO, IN_ATTRIB})
    EXPECT_EQ(classify_one(m, "a.txt"), action::changed) << m;
  EXPECT_EQ(classify_one(IN_OPEN, "a.txt"), action::ignore);
  EXPECT_EQ(classify_one(IN_ACCESS, "a.txt"), action::ignore);
  EXPECT_EQ(classify_one(IN_ATTRIB), action::changed) << "on the directory itself";
}

TEST(FswatchClassify, TheAgentsOwnFilesAreIgnored) {
  EXPECT_EQ(classify_one(IN_CLOSE_WRITE, ".tidesync-initialized"), action::ignore);
  EXPECT_EQ(classify_one(IN_CREATE, ".a.txt.0123abcd.partial"), action::ignore);
  EXPECT_EQ(classify_one(IN_MOVED_FROM, ".a.txt.0123abcd.partial"), action::ignore);
  // The rename of a temporary onto its name is a change of that name.
  EXPECT_EQ(classify_one(IN_MOVED_TO, "a.txt"), action::changed);
  // A caller's own rule.
  auto only_logs = [](std::string_view n) {
    return n.size() > 4 && n.substr(n.size() - 4) == ".log";
  };
  EXPECT_EQ(classify(event{IN_MODIFY, false, "app.log"}, only_logs), action::ignore);
  EXPECT_EQ(classify(event{IN_MODIFY, false, ".tidesync-initialized"}, only_logs), action::changed);
  EXPECT_EQ(classify(event{IN_MODIFY, false, "x"}, ignore_fn{}), action::changed) << "no rule";
}

TEST(FswatchClassify, DirectoriesAppearingAreWatchedAndLeavingOnesDropped) {
  EXPECT_EQ(classify_one(IN_CREATE | IN_ISDIR, "sub"), action::watch_dir);
  EXPECT_EQ(classify_one(IN_MOVED_TO | IN_ISDIR, "sub"), action::watch_dir);
  EXPECT_EQ(classify_one(IN_MOVED_FROM | IN_ISDIR, "sub"), action::unwatch_dir);
  EXPECT_EQ(classify_one(IN_DELETE | IN_ISDIR, "sub"), action::changed)
      << "the kernel drops the deleted directory's watch itself (IN_IGNORED follows)";
  EXPECT_EQ(classify_one(IN_ATTRIB | IN_ISDIR, "sub"), action::changed);
  EXPECT_EQ(classify_one(IN_CREATE | IN_ISDIR, ".tidesync-initialized"), action::ignore);
}

TEST(FswatchClassify, OverflowRemovalAndTheRootsFate) {
  EXPECT_EQ(classify_one(IN_Q_OVERFLOW), action::rescan);
  EXPECT_EQ(classify_one(IN_Q_OVERFLOW, "", true), action::rescan);
  EXPECT_EQ(classify_one(IN_IGNORED), action::forget);
  EXPECT_EQ(classify_one(IN_IGNORED, "", true), action::root_gone);
  EXPECT_EQ(classify_one(IN_DELETE_SELF, "", true), action::root_gone);
  EXPECT_EQ(classify_one(IN_MOVE_SELF, "", true), action::root_gone);
  EXPECT_EQ(classify_one(IN_UNMOUNT, "", true), action::root_gone);
  EXPECT_EQ(classify_one(IN_DELETE_SELF), action::ignore)
      << "below the root the parent reports the deletion by name";
  EXPECT_EQ(classify_one(IN_MOVE_SELF), action::ignore);
}

// ---- decide_sync ----

namespace {

const steady_clock::time_point t0 = steady_clock::time_point() + 1000h;

}  // namespace

TEST(FswatchDebounce, TheFirstSyncStartsAtOnce) {
  auto d = decide_sync({std::nullopt, true, false}, t0, 15min);
  EXPECT_TRUE(d.start_now);
  EXPECT_FALSE(d.wake_at);
}

TEST(FswatchDebounce, NoChangeNoSync) {
  auto d = decide_sync({t0, false, false}, t0 + 2h, 15min);
  EXPECT_FALSE(d.start_now);
  EXPECT_FALSE(d.wake_at) << "waits for a change, with no timer";
  d = decide_sync({std::nullopt, false, false}, t0, 15min);
  EXPECT_FALSE(d.start_now);
  EXPECT_FALSE(d.wake_at);
}

TEST(FswatchDebounce, AChangeLongAfterTheLastSyncSyncsAtOnce) {
  auto d = decide_sync({t0, true, false}, t0 + 20min, 15min);
  EXPECT_TRUE(d.start_now);
  d = decide_sync({t0, true, false}, t0 + 15min, 15min);
  EXPECT_TRUE(d.start_now) << "exactly the interval is enough";
}

TEST(FswatchDebounce, AChangeSoonAfterTheLastSyncWaitsForTheInterval) {
  auto d = decide_sync({t0, true, false}, t0 + 1min, 15min);
  EXPECT_FALSE(d.start_now);
  ASSERT_TRUE(d.wake_at);
  EXPECT_EQ(*d.wake_at, t0 + 15min);
  // One millisecond short is still too early.
  d = decide_sync({t0, true, false}, t0 + 15min - 1ms, 15min);
  EXPECT_FALSE(d.start_now);
  EXPECT_EQ(*d.wake_at, t0 + 15min);
}

TEST(FswatchDebounce, NothingStartsWhileASyncRuns) {
  auto d = decide_sync({t0, true, true}, t0 + 1h, 15min);
  EXPECT_FALSE(d.start_now);
  EXPECT_FALSE(d.wake_at);
}

// The loop a caller runs (sync_runner's fsnotify loop), driven by a fake clock: a burst of
// changes gives one sync now and one at the interval; a change during a sync gives exactly one
// more after it; quiet gives none.
TEST(FswatchDebounce, ADrivenLoopStartsAtMostOneSyncPerInterval) {
  const auto interval = 2s;
  debounce_state s;
  s.changed = true;  // the first sync at start
  std::vector<steady_clock::duration> starts;
  auto step = [&](steady_clock::time_point now) {
    auto d = decide_sync(s, now, interval);
    if (d.start_now) {
      starts.push_back(now - t0);
      s.last_start = now;
      s.changed = false;
      s.running = true;
    }
    return d;
  };
  auto end_run = [&] { s.running = false; };

  step(t0);  // start
  ASSERT_EQ(starts.size(), 1u);
  end_run();
  // Quiet: nothing, however long.
  EXPECT_FALSE(step(t0 + 1h).start_now);
  EXPECT_EQ(starts.size(), 1u);

  // A burst of changes 1 h later: the first starts at once (the last start is old) ...
  const auto t1 = t0 + 1h;
  s.changed = true;
  step(t1);
  ASSERT_EQ(starts.size(), 2u);
  // ... during that sync more changes come: nothing starts while it runs ...
  s.changed = true;
  EXPECT_FALSE(step(t1 + 100ms).start_now);
  end_run();
  // ... after it, one more at last start + interval, not before.
  auto d = step(t1 + 500ms);
  EXPECT_FALSE(d.start_now);
  ASSERT_TRUE(d.wake_at);
  EXPECT_EQ(*d.wake_at, t1 + interval);
  s.changed = true;  // still more changes while waiting: they join the same sync
  step(t1 + interval);
  ASSERT_EQ(starts.size(), 3u);
  EXPECT_EQ(starts.back(), 1h + interval);
  end_run();
  // That sync covered everything: no further sync.
  EXPECT_FALSE(step(t1 + 10 * interval).start_now);
  EXPECT_EQ(starts.size(), 3u);
  for (size_t i = 1; i < starts.size(); ++i)
    EXPECT_GE(starts[i] - starts[i - 1], interval);
}

TEST(FswatchInterval, ParsesGoStyleDurations) {
  EXPECT_EQ(*parse_interval("500ms"), 500ms);
  EXPECT_EQ(*parse_interval("2s"), 2s);
  EXPECT_EQ(*parse_interval("15m"), 15min);
  EXPECT_EQ(*parse_interval("1h30m"), 90min);
  EXPECT_EQ(*parse_interval("1m500ms"), 60500ms);
  for (const char* bad : {"", "0s", "0", "5", "s", "2x", "-1s", "1.5s", "2 s", "1000000000s"}) {
    auto r = parse_interval(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("500ms"), std::string::npos) << r.error().message;
  }
}

// ---- the watcher on a real directory ----

namespace {

class recorder {
 public:
  void operator()(const change& c) {
    {
      std::lock_guard lock(mu_);
      seen_.push_back(c);
    }
    cv_.notify_all();
  }
  // Waits until some change satisfies `pred`.
  bool wait_for(const std::function<bool(const change&)>& pred,
                std::chrono::milliseconds limit = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] {
      for (const auto& c : seen_)
        if (pred(c)) return true;
      return false;
    });
  }
  bool wait_file(const std::string& path) {
    return wait_for(
        [&](const change& c) { return c.what == change::kind::file && c.path == path; });
  }
  bool wait_kind(change::kind k) {
    return wait_for([&](const change& c) { return c.what == k; });
  }
  // Waits until `path` was reported more than `before` times.
  bool wait_file_count(const std::string& path, size_t before) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] {
      size_t n = 0;
      for (const auto& c : seen_)
        n += c.what == change::kind::file && c.path == path ? 1 : 0;
      return n > before;
    });
  }
  size_t count_file(const std::string& path) {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& c : seen_)
      n += c.what == change::kind::file && c.path == path ? 1 : 0;
    return n;
  }
  std::vector<change> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<change> seen_;
};

// Polls a watcher's state (it changes on the watcher's thread) until `pred` or the deadline.
bool until(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock lock(mu);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    cv.wait_for(lock, 10ms);  // a poll with a deadline
  }
  return true;
}

std::unique_ptr<tree_watcher> watch(const fs::path& root, recorder& rec,
                                    std::vector<std::string>* warnings = nullptr) {
  watch_options o;
  o.root = root.string();
  o.root_poll = 20ms;
  if (warnings != nullptr)
    o.on_warning = [warnings](const std::string& w) { warnings->push_back(w); };
  auto w = tree_watcher::start(o, [&rec](const change& c) { rec(c); });
  EXPECT_TRUE(w) << w.error().message;
  return w ? std::move(*w) : nullptr;
}

}  // namespace

TEST(FswatchWatcher, SeesFilesInNewAndExistingDirectoriesButNotTheAgentsFiles) {
  tidesync::test::temp_dir dir("tidesync-fswatch");
  const fs::path root = dir.path() / "vol";
  tidesync::test::write_file(root / "old" / "deep" / "x.txt", "x");
  recorder rec;
  auto w = watch(root, rec);
  ASSERT_TRUE(w);
  ASSERT_TRUE(until([&] { return w->watch_count() == 3; })) << w->watch_count();
  EXPECT_TRUE(w->root_present());
  EXPECT_TRUE(w->complete());

  // The agent's files first, then a real one: once the real one is reported, the ignored
  // ones were handled before it (events arrive in order) and reported nothing.
  tidesync::test::write_file(root / ".tidesync-initialized", "m");
  tidesync::test::write_file(root / "old" / ".y.txt.0123abcd.partial", "tmp");
  tidesync::test::write_file(root / "old" / "deep" / "y.txt", "y");
  ASSERT_TRUE(rec.wait_file("old/deep/y.txt"));
  for (const auto& c : rec.seen())
    EXPECT_EQ(c.path.find("partial"), std::string::npos) << c.path;
  for (const auto& c : rec.seen())
    EXPECT_NE(c.path, ".tidesync-initialized");

  // A new directory is watched, and so is a tree made at once.
  fs::create_directories(root / "new");
  ASSERT_TRUE(until([&] { return w->watch_count() == 4; })) << w->watch_count();
  tidesync::test::write_file(root / "new" / "a.txt", "a");
  EXPECT_TRUE(rec.wait_file("new/a.txt"));
  fs::create_directories(root / "t1" / "t2" / "t3");
  ASSERT_TRUE(until([&] { return w->watch_count() == 7; })) << w->watch_count();
  tidesync::test::write_file(root / "t1" / "t2" / "t3" / "b.txt", "b");
  EXPECT_TRUE(rec.wait_file("t1/t2/t3/b.txt"));

  // A deletion is a change; a deleted directory's watch is forgotten.
  const size_t before = rec.count_file("new/a.txt");
  fs::remove(root / "new" / "a.txt");
  EXPECT_TRUE(rec.wait_file_count("new/a.txt", before));
  fs::remove_all(root / "t1");
  ASSERT_TRUE(until([&] { return w->watch_count() == 4; })) << w->watch_count();
}

TEST(FswatchWatcher, FollowsADirectoryMovedWithinTheTree) {
  tidesync::test::temp_dir dir("tidesync-fswatch");
  const fs::path root = dir.path() / "vol";
  fs::create_directories(root / "a" / "inner");
  recorder rec;
  auto w = watch(root, rec);
  ASSERT_TRUE(w);
  ASSERT_TRUE(until([&] { return w->watch_count() == 3; }));
  fs::rename(root / "a", root / "b");
  ASSERT_TRUE(rec.wait_for([](const change& c) { return c.path == "a" || c.path == "b"; }));
  ASSERT_TRUE(until([&] { return w->watch_count() == 3; }));
  tidesync::test::write_file(root / "b" / "inner" / "c.txt", "c");
  EXPECT_TRUE(rec.wait_file("b/inner/c.txt")) << "the new path, not the old one";

  // Moved out of the tree: no longer watched.
  fs::rename(root / "b", dir.path() / "outside");
  ASSERT_TRUE(until([&] { return w->watch_count() == 1; })) << w->watch_count();
}

TEST(FswatchWatcher, SurvivesTheRootBeingDeletedAndRecreated) {
  tidesync::test::temp_dir dir("tidesync-fswatch");
  const fs::path root = dir.path() / "vol";
  fs::create_directories(root / "sub");
  recorder rec;
  auto w = watch(root, rec);
  ASSERT_TRUE(w);
  ASSERT_TRUE(until([&] { return w->watch_count() == 2; }));

  fs::remove_all(root);
  ASSERT_TRUE(rec.wait_kind(change::kind::root_gone));
  EXPECT_TRUE(until([&] { return !w->root_present(); }));
  EXPECT_EQ(w->watch_count(), 0u);

  fs::create_directories(root / "again");
  ASSERT_TRUE(rec.wait_kind(change::kind::root_back));
  ASSERT_TRUE(until([&] { return w->root_present() && w->watch_count() == 2; }))
      << w->watch_count();
  tidesync::test::write_file(root / "again" / "z.txt", "z");
  EXPECT_TRUE(rec.wait_file("again/z.txt"));
}

TEST(FswatchWatcher, ARootMissingAtStartIsWatchedOnceItExists) {
  tidesync::test::temp_dir dir("tidesync-fswatch");
  const fs::path root = dir.path() / "later";
  recorder rec;
  auto w = watch(root, rec);
  ASSERT_TRUE(w);
  EXPECT_FALSE(w->root_present());
  fs::create_directories(root);
  ASSERT_TRUE(rec.wait_kind(change::kind::root_back));
  ASSERT_TRUE(until([&] { return w->root_present(); }));
  tidesync::test::write_file(root / "f.txt", "f");
  EXPECT_TRUE(rec.wait_file("f.txt"));
}

TEST(FswatchWatcher, StopsPromptlyWhenDestroyed) {
  tidesync::test::temp_dir dir("tidesync-fswatch");
  recorder rec;
  auto w = watch(dir.path(), rec);
  ASSERT_TRUE(w);
  const auto start = std::chrono::steady_clock::now();
  w.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}
