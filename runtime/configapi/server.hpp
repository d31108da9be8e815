// The config API (docs/sharedconfig.md, "The writer"): the only way to write an owner's config
// bundles. HTTP over cpp-httplib, in the controller process:
//
//   GET /v1/configs/{ns}/{name}/latest[?wait=S]  If-None-Match: "<rev>"
//       200 latest.json with ETag "<rev>"; 304 when still <rev> after the wait (long-poll);
//       404 when nothing is published yet (or no such SharedConfig)
//   PUT /v1/configs/{ns}/{name}/latest?expectedRevision=R   body: the bundle (tar.zst)
//       201 the new latest.json; 409 {"currentRevision"} when R is not the current one ("" or
//       absent: nothing published yet); 413 above the SharedConfig's maxBundleBytes; 400 a
//       body that is not a bundle the agents could extract
//
// Every request needs "Authorization: Bearer <token>" (else 401, and nothing is read). This
// file is the mechanism: HTTP, authentication, size caps, spooling and checking the upload.
// What a config is and who writes it in which order is the `backend`'s (actors/config_api).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "runtime/archive/bundle.hpp"
#include "runtime/archive/revision.hpp"
#include "runtime/error.hpp"

namespace tidesync::configapi {

// One config: a SharedConfig's namespace and name.
struct config_ref {
  std::string ns;
  std::string name;
};

struct publish_outcome {
  bool conflict = false;  // the expected revision was not the current one
  // published: the new latest; conflict: the current one (revision "" when none yet).
  archive::latest latest;
};

// What the server asks of the controller. Called on the server's worker threads; may block.
// errc::not_found: no such SharedConfig; errc::invalid: its spec is invalid; errc::unavailable
// and other transient codes: the store failed (503).
class backend {
 public:
  virtual ~backend() = default;
  // spec.maxBundleBytes of `ref` (checked before the body is read).
  virtual expected<uint64_t> max_bundle_bytes(const config_ref& ref) = 0;
  // The current latest.json (nullopt: nothing published yet). With `known`, waits up to `wait`
  // for a revision other than `known`.
  virtual expected<std::optional<archive::latest>> latest(const config_ref& ref,
                                                          const std::optional<std::string>& known,
                                                          std::chrono::milliseconds wait) = 0;
  // Publishes `bundle` (a checked tar.zst whose sha256 is `checksum`) if `expected_revision`
  // ("" : nothing published yet) is the current revision.
  virtual expected<publish_outcome> publish(const config_ref& ref,
                                            const std::string& expected_revision,
                                            const std::filesystem::path& bundle,
                                            const std::string& checksum) = 0;
  // The server is stopping: end every wait in `latest` now (they answer the current state).
  virtual void cancel_waits() {}
};

struct server_options {
  std::string address = "127.0.0.1:8085";  // HOST:PORT (port 0 picks one)
  // The bearer token every request must carry; read per request (the controller keeps it in a
  // Secret and may rotate it). An empty token refuses every request.
  std::function<std::string()> token;
  // Where uploads are spooled and checked; "" : a new folder under $TMPDIR (removed at stop).
  std::filesystem::path scratch_dir;
  std::chrono::seconds max_wait{60};  // longest long-poll
  int threads = 32;                   // HTTP workers
  // Long-polls waiting at once, at most; beyond it a long-poll answers at once (the agent then
  // polls at its interval), so publishes always find a worker.
  int max_waiting = 24;
  // How an upload is checked (an agent must be able to extract it with the same limits).
  uint64_t max_entries = 100000;
  uint64_t max_unpacked_bytes = 1ULL << 30;
};

class server {
 public:
  // Binds and serves. errc::invalid_argument for a bad address, errc::unavailable when it
  // cannot be bound.
  static expected<std::unique_ptr<server>> start(backend& b, server_options options);
  ~server();  // stop()
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  [[nodiscard]] uint16_t port() const;
  // Stops accepting, lets running requests finish (long-polls end within max_wait). Idempotent.
  void stop();

 private:
  struct impl;
  explicit server(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

// The bearer token from an Authorization header value ("" when it is not "Bearer <token>").
std::string bearer_token(std::string_view authorization);
// Compares in time independent of where they differ (a token is a secret).
bool same_secret(std::string_view a, std::string_view b);

}  // namespace tidesync::configapi
