// An httplib::Server on its own accept thread, bound with errors a person can act on and stopped
// reliably: the /metrics and health endpoints (endpoints.hpp) and the config API
// (runtime/configapi) are each one of these.
#pragma once

#include <httplib.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/error.hpp"
#include "runtime/metrics/endpoints.hpp"

namespace tidesync::metrics {

class http_server {
  std::unique_ptr<httplib::Server> owned_;  // first: `http` refers to it

 public:
  http_server();  // plain HTTP; SO_REUSEADDR only (never SO_REUSEPORT: a taken port must fail)
  // Over `server`, e.g. an httplib::SSLServer (the admission webhook serves HTTPS).
  explicit http_server(std::unique_ptr<httplib::Server> server);
  ~http_server();  // stop()
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  // Route and configure it before start().
  httplib::Server& http;

  // Binds `a` (`text` is the address as the user wrote it, for messages) and starts the accept
  // thread. errc::unavailable says why the address cannot be bound (taken, not local, ...).
  expected<uint16_t> start(const listen_address& a, const std::string& text);
  [[nodiscard]] uint16_t port() const { return port_; }
  // Stops accepting and waits for the accept loop. Idempotent.
  void stop();

 private:
  std::thread thread_;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // the accept loop has returned
};

// "127.0.0.1:8080", "[::1]:8080".
std::string host_port(const std::string& host, uint16_t port);

}  // namespace tidesync::metrics
