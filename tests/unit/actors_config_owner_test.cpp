// The config owner actor (actors/config_owner.hpp) under CAF's deterministic test coordinator
// with virtual time, over an in-memory store that records every call and can be told to fail:
// one writer per owner, expected-revision conflicts, the bundle before latest.json, long-polls
// answered by a publish or by their wait, old revisions pruned.
#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/config_owner.hpp"

namespace tidesync::actors {
namespace {

using namespace std::chrono_literals;
using caf::scheduler::test_coordinator;

struct memory_store : owner_store {
  std::optional<archive::latest> latest;
  std::map<std::string, std::string> bundles;  // revision -> the file it came from
  std::vector<std::string> calls;
  bool fail_upload = false, fail_latest = false, fail_read = false;

  expected<std::optional<archive::latest>> read_latest() override {
    calls.push_back("read");
    if (fail_read) return make_error(errc::unavailable, "store down");
    return latest;
  }
  expected<void> upload_bundle(const std::string& rev, const std::filesystem::path& f) override {
    calls.push_back("upload " + rev);
    if (fail_upload) return make_error(errc::unavailable, "503 from the store");
    bundles[rev] = f.string();
    return {};
  }
  expected<void> write_latest(const archive::latest& l) override {
    calls.push_back("latest " + l.revision);
    if (fail_latest) return make_error(errc::unavailable, "503 from the store");
    if (!bundles.count(l.revision)) ADD_FAILURE() << "latest.json before its bundle";
    latest = l;
    return {};
  }
  expected<std::vector<std::string>> list_revisions() override {
    std::vector<std::string> out;
    for (const auto& [k, v] : bundles)
      out.push_back(k);
    return out;
  }
  expected<void> remove_revision(const std::string& rev) override {
    calls.push_back("remove " + rev);
    bundles.erase(rev);
    return {};
  }
};

void ask_once(caf::event_based_actor* self, config_owner_actor h,
              std::shared_ptr<std::optional<config_reply>> out, caf::message msg) {
  self->request(caf::actor_cast<caf::actor>(h), caf::infinite, std::move(msg))
      .then([out](config_reply& r) { *out = std::move(r); });
}

class ConfigOwnerActor : public ::testing::Test {
 protected:
  ConfigOwnerActor() {
    cfg_.set("scheduler.policy", caf::atom("testing"));
    cfg_.add_message_types<caf::id_block::tidesync>();
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    sched_ = &dynamic_cast<test_coordinator&>(sys_->scheduler());
    auto store = std::make_shared<memory_store>();
    store_ = store.get();
    owner_binding b;
    b.store = store;
    b.retain = 2;
    b.published = [this](const archive::latest& l, uint64_t) { published_.push_back(l.revision); };
    bindings_ = std::make_shared<owner_bindings>(std::move(b));
    config_owner_settings s;
    s.key = "team/alice";
    s.bindings = bindings_;
    s.now = [this] { return now_; };
    owner_ = sys_->spawn(config_owner, std::move(s));
    sched_->run();
  }
  ~ConfigOwnerActor() override {
    caf::anon_send_exit(owner_, caf::exit_reason::user_shutdown);
    sched_->run();
  }

  std::shared_ptr<std::optional<config_reply>> ask(caf::message msg) {
    auto out = std::make_shared<std::optional<config_reply>>();
    sys_->spawn(ask_once, owner_, out, std::move(msg));
    sched_->run();
    return out;
  }
  config_reply publish(const std::string& expected, const std::string& file = "/spool/b") {
    auto r =
        ask(caf::make_message(atom::publish_v, expected, file, "sha256:" + std::string(64, 'a')));
    EXPECT_TRUE(r->has_value());
    return r->value_or(config_reply{});
  }
  std::shared_ptr<std::optional<config_reply>> poll(std::optional<std::string> known,
                                                    uint32_t wait_ms) {
    return ask(caf::make_message(atom::poll_v, known.has_value(), known.value_or(""), wait_ms));
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  test_coordinator* sched_ = nullptr;
  memory_store* store_ = nullptr;
  std::shared_ptr<owner_bindings> bindings_;
  config_owner_actor owner_;
  std::vector<std::string> published_;
  std::chrono::system_clock::time_point now_ =
      std::chrono::system_clock::time_point{} + 1770287400s;  // 2026-02-05T10:30:00Z
};

TEST_F(ConfigOwnerActor, FirstPublishThenConflictThenNext) {
  auto none = poll(std::nullopt, 0);
  ASSERT_TRUE(none->has_value());
  EXPECT_TRUE((*none)->ok);
  EXPECT_FALSE((*none)->has_latest);

  auto a = publish("");
  ASSERT_TRUE(a.ok) << a.message;
  EXPECT_FALSE(a.conflict);
  EXPECT_EQ(a.revision, "2026-02-05T10-30-00Z");
  EXPECT_EQ(store_->calls, (std::vector<std::string>{"read", "read", "upload " + a.revision,
                                                     "latest " + a.revision}))
      << "the bundle is stored before latest.json names it";
  EXPECT_EQ(published_, std::vector<std::string>{a.revision});

  // A second writer that also expected "nothing yet" loses, and learns what won.
  auto b = publish("");
  EXPECT_TRUE(b.ok);
  EXPECT_TRUE(b.conflict);
  EXPECT_EQ(b.revision, a.revision);
  EXPECT_EQ(store_->bundles.size(), 1U) << "the loser's bundle is not stored";

  // The same second: still a strictly greater revision.
  auto c = publish(a.revision);
  ASSERT_TRUE(c.ok && !c.conflict) << c.message;
  EXPECT_EQ(c.revision, "2026-02-05T10-30-00Z-0001");
}

TEST_F(ConfigOwnerActor, AWriteBehindItsBackIsSeenBeforeDeciding) {
  ASSERT_FALSE(publish("").conflict);
  // Someone else moved latest.json (another writer, a restore): the cache must not decide.
  store_->latest->revision = "2026-03-01T00-00-00Z";
  auto r = publish(published_.back());
  EXPECT_TRUE(r.conflict);
  EXPECT_EQ(r.revision, "2026-03-01T00-00-00Z");
  // Reads see it too, and a store that stops answering leaves them the last known state.
  store_->latest->revision = "2026-04-01T00-00-00Z";
  auto seen = poll(std::nullopt, 0);
  ASSERT_TRUE(seen->has_value());
  EXPECT_EQ((*seen)->revision, "2026-04-01T00-00-00Z");
  store_->fail_read = true;
  auto cached = poll(std::nullopt, 0);
  ASSERT_TRUE(cached->has_value());
  EXPECT_TRUE((*cached)->ok);
  EXPECT_EQ((*cached)->revision, "2026-04-01T00-00-00Z");
}

TEST_F(ConfigOwnerActor, AFailedUploadOrLatestWriteKeepsTheCurrentRevision) {
  auto a = publish("");
  store_->fail_upload = true;
  auto r = publish(a.revision);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.code, static_cast<int32_t>(errc::unavailable));
  EXPECT_NE(r.message.find("uploading revision"), std::string::npos) << r.message;
  EXPECT_EQ(store_->latest->revision, a.revision);
  store_->fail_upload = false;
  store_->fail_latest = true;
  r = publish(a.revision);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("the previous revision stays current"), std::string::npos) << r.message;
  EXPECT_EQ(store_->latest->revision, a.revision);
  store_->fail_latest = false;
  store_->fail_read = true;
  r = publish(a.revision);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("store down"), std::string::npos) << r.message;
  store_->fail_read = false;
  r = publish(a.revision);
  EXPECT_TRUE(r.ok && !r.conflict) << r.message;
}

TEST_F(ConfigOwnerActor, LongPollIsAnsweredByAPublishOrByItsWait) {
  auto a = publish("");
  auto waiting = poll(a.revision, 30000);
  EXPECT_FALSE(waiting->has_value()) << "deferred while nothing changed";
  auto other = poll(std::string("an-older-one"), 30000);
  ASSERT_TRUE(other->has_value()) << "a client behind gets the current one at once";
  EXPECT_EQ((*other)->revision, a.revision);

  auto b = publish(a.revision);
  ASSERT_TRUE(waiting->has_value());
  EXPECT_EQ((*waiting)->revision, b.revision);

  auto timed = poll(b.revision, 5000);
  EXPECT_FALSE(timed->has_value());
  sched_->advance_time(std::chrono::milliseconds(5000));
  sched_->run();
  ASSERT_TRUE(timed->has_value());
  EXPECT_EQ((*timed)->revision, b.revision) << "unchanged: the API answers 304";

  auto flushed = poll(b.revision, 30000);
  EXPECT_FALSE(flushed->has_value());
  caf::anon_send(owner_, atom::flush_v);
  sched_->run();
  EXPECT_TRUE(flushed->has_value());
}

TEST_F(ConfigOwnerActor, OldRevisionsArePrunedAfterAPublish) {
  std::string cur;
  for (int i = 0; i < 4; ++i) {
    now_ += 1s;
    auto r = publish(cur);
    ASSERT_TRUE(r.ok && !r.conflict);
    cur = r.revision;
  }
  EXPECT_EQ(store_->bundles.size(), 2U);
  EXPECT_EQ(store_->bundles.rbegin()->first, cur);
}

TEST_F(ConfigOwnerActor, ANewStoreIsTakenAtTheNextMessageByTheSameWriter) {
  auto a = publish("");
  auto moved = std::make_shared<memory_store>();  // the spec now names another bucket
  owner_binding b;
  b.store = moved;
  bindings_->replace(std::move(b));
  auto none = poll(a.revision, 30000);
  ASSERT_TRUE(none->has_value()) << "the new store has nothing: answered at once";
  EXPECT_FALSE((*none)->has_latest);
  auto r = publish("");
  ASSERT_TRUE(r.ok && !r.conflict) << r.message;
  EXPECT_EQ(moved->latest->revision, r.revision);
  EXPECT_EQ(store_->latest->revision, a.revision) << "the old store is left alone";
}

TEST(RevisionsToPrune, KeepsTheNewestAndTheCurrent) {
  EXPECT_EQ(revisions_to_prune({"c", "a", "b", "d"}, "d", 2), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(revisions_to_prune({"a", "b", "c"}, "a", 1), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(revisions_to_prune({"a"}, "a", 10).empty());
}

}  // namespace
}  // namespace tidesync::actors
