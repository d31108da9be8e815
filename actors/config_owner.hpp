// The writer of one SharedConfig's bundles (docs/sharedconfig.md, "The writer"): the owner
// actor (interface in actors/interfaces.hpp) over what it needs of the store.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "actors/interfaces.hpp"
#include "runtime/archive/revision.hpp"
#include "runtime/error.hpp"

namespace tidesync::actors {

// What an owner actor needs of the store: archive::config_store in the controller, fakes in
// tests. Calls block.
class owner_store {
 public:
  virtual ~owner_store() = default;
  // nullopt: nothing published yet.
  virtual expected<std::optional<archive::latest>> read_latest() = 0;
  virtual expected<void> upload_bundle(const std::string& rev,
                                       const std::filesystem::path& file) = 0;
  virtual expected<void> write_latest(const archive::latest& l) = 0;
  // Every stored revision, sorted.
  virtual expected<std::vector<std::string>> list_revisions() = 0;
  virtual expected<void> remove_revision(const std::string& rev) = 0;
};

// What an owner writes with: the store and the SharedConfig's settings. The config API swaps
// them when the SharedConfig's spec or Secret changes; the owner takes the new ones at its next
// message. One owner per SharedConfig for its whole life is what keeps it the single writer (a
// second actor for the same owner, even briefly, could lose a publish).
struct owner_binding {
  std::shared_ptr<owner_store> store;
  // Bundles kept besides the current one (spec.retainRevisions); older ones are deleted after a
  // publish. A reader that is downloading one of them retries with the newer latest.
  size_t retain = 10;
  // After each publish: the new latest and the bundle's size (the SharedConfig's status).
  std::function<void(const archive::latest&, uint64_t size)> published;
};

// A binding that can be replaced while the owner runs (thread-safe).
class owner_bindings {
 public:
  explicit owner_bindings(owner_binding b) : current_(std::move(b)) {}
  void replace(owner_binding b) {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = std::move(b);
    ++version_;
  }
  // The binding in force and its version (changes on every replace).
  std::pair<owner_binding, uint64_t> get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {current_, version_};
  }

 private:
  mutable std::mutex mu_;
  owner_binding current_;
  uint64_t version_ = 0;
};

struct config_owner_settings {
  std::string key;  // "namespace/name" of the SharedConfig (for logs)
  std::shared_ptr<owner_bindings> bindings;
  // Wall clock (revision names, updated_at); tests fix it.
  std::function<std::chrono::system_clock::time_point()> now;
};

struct config_owner_state {
  static constexpr const char* name = "config_owner";

  config_owner_settings settings;
  owner_binding binding;  // taken from settings.bindings at each message
  uint64_t binding_version = ~0ULL;
  bool loaded = false;  // `current` holds what the store of `binding` said
  std::optional<archive::latest> current;
  struct waiter {
    uint64_t id;
    std::string known;
    caf::typed_response_promise<config_reply> promise;
  };
  std::vector<waiter> waiters;
  uint64_t next_id = 0;
};

// Spawn detached: `sys.spawn<caf::detached>(config_owner, std::move(settings))`.
config_owner_actor::behavior_type config_owner(
    config_owner_actor::stateful_pointer<config_owner_state> self, config_owner_settings settings);

// The revisions to delete after a publish: all but the newest `retain` and never `current`.
// Pure.
std::vector<std::string> revisions_to_prune(std::vector<std::string> stored,
                                            const std::string& current, size_t retain);

}  // namespace tidesync::actors
