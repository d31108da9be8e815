// The controller's HTTP endpoints: GET /metrics for Prometheus, GET /healthz (liveness) and
// GET /readyz (readiness) for the kubelet's probes, served by cpp-httplib on background
// threads.
//
// Health output follows kube-apiserver and controller-runtime: 200 "ok" when every check
// passes, else 500 with one line per check; `?verbose` always lists the checks:
//   [+]ping ok
//   [-]informers failed: 2 of 3 caches not synced
//   readyz check failed
// `?exclude=NAME` (repeatable) skips a check; `/healthz/NAME` and `/readyz/NAME` run one.
// Check messages are served to whoever can reach the port: they must not hold secrets.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/error.hpp"
#include "runtime/metrics/metrics.hpp"

namespace tidesync::metrics {

// A health check: ok, or a message saying what is not ready.
struct check_result {
  bool ok = true;
  std::string message;
};
using check = std::function<check_result()>;

// A parsed listen address. "HOST:PORT", ":PORT" (every IPv4 interface), "[IPV6]:PORT";
// port 0 lets the system pick one; "" or "0" means disabled.
struct listen_address {
  bool enabled = false;
  std::string host;  // without brackets: "127.0.0.1", "::1", "0.0.0.0", "localhost"
  uint16_t port = 0;
};
// errc::invalid_argument with a message saying what to write for a malformed address.
expected<listen_address> parse_listen_address(std::string_view text);

struct endpoints_options {
  std::string metrics_addr = "127.0.0.1:8080";  // HOST:PORT; port 0 picks one; "" or "0" disables
  std::string health_addr = "127.0.0.1:8081";   // same; may equal metrics_addr (one server then)
};

class endpoints {
 public:
  // Binds and starts serving. Errors: errc::invalid_argument for a bad address,
  // errc::unavailable when the address cannot be bound (port taken, address not local).
  static expected<std::unique_ptr<endpoints>> start(std::shared_ptr<registry> reg,
                                                    endpoints_options options);
  ~endpoints();  // stops
  endpoints(const endpoints&) = delete;
  endpoints& operator=(const endpoints&) = delete;

  // Adds (or replaces, by name) a check. Checks run on the HTTP threads at each request, in
  // the order added; they must be quick and thread-safe.
  void add_liveness(std::string name, check c);
  void add_readiness(std::string name, check c);

  // The bound ports (the real one when the address said port 0); 0 when disabled.
  [[nodiscard]] uint16_t metrics_port() const;
  [[nodiscard]] uint16_t health_port() const;

  // Stops serving and joins the threads; waits for requests in flight. Idempotent.
  void stop();

  struct impl;

 private:
  explicit endpoints(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace tidesync::metrics
