// A config API backend for tests of runtime/configapi (server and client): one SharedConfig,
// "team/alice", held in memory; publishes follow the expected-revision rule and long-polls
// wait on a condition variable, as the owner actors do.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

#include "runtime/archive/revision.hpp"
#include "runtime/configapi/server.hpp"

namespace tidesync::test {

// One config "team/alice" held in memory; long-polls wait on a condition variable.
class fake_backend : public configapi::backend {
 public:
  expected<uint64_t> max_bundle_bytes(const configapi::config_ref& ref) override {
    if (ref.ns != "team" || ref.name != "alice")
      return make_error(errc::not_found, "no SharedConfig " + ref.ns + "/" + ref.name);
    return max_bytes;
  }
  expected<std::optional<archive::latest>> latest(const configapi::config_ref& ref,
                                                  const std::optional<std::string>& known,
                                                  std::chrono::milliseconds wait) override {
    if (ref.ns != "team" || ref.name != "alice") return make_error(errc::not_found, "no such");
    if (store_error) return *store_error;
    std::unique_lock<std::mutex> lock(mu);
    ++waits_started;
    cv.notify_all();
    if (known)
      cv.wait_for(lock, wait, [&] {
        return cancelled || (current ? current->revision : std::string{}) != *known;
      });
    return current;
  }
  expected<configapi::publish_outcome> publish(const configapi::config_ref&,
                                               const std::string& expected,
                                               const std::filesystem::path& bundle,
                                               const std::string& checksum) override {
    if (store_error) return *store_error;
    std::lock_guard<std::mutex> lock(mu);
    configapi::publish_outcome out;
    std::string cur = current ? current->revision : "";
    if (expected != cur) {
      out.conflict = true;
      if (current) out.latest = *current;
      return out;
    }
    EXPECT_TRUE(std::filesystem::exists(bundle));
    archive::latest l;
    l.revision = archive::make_revision(std::chrono::system_clock::now(), cur);
    l.checksum = checksum;
    l.updated_at = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    current = l;
    out.latest = l;
    cv.notify_all();
    return out;
  }
  void cancel_waits() override {
    std::lock_guard<std::mutex> lock(mu);
    cancelled = true;
    cv.notify_all();
  }

  std::mutex mu;
  std::condition_variable cv;
  std::optional<archive::latest> current;
  uint64_t max_bytes = 1 << 20;
  int waits_started = 0;
  bool cancelled = false;
  // When set, reading and publishing fail with it (a store that cannot be read).
  std::optional<error> store_error;
};

}  // namespace tidesync::test
