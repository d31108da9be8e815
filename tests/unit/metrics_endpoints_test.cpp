// /metrics, /healthz and /readyz over real HTTP on 127.0.0.1; listen address parsing.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>

#include "runtime/metrics/endpoints.hpp"

namespace tidesync::metrics {
namespace {

struct reply {
  int status = 0;  // 0: no answer (connection failed)
  std::string body;
  std::string content_type;
};

reply get(uint16_t port, const std::string& path, bool keep_alive = false) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(2);
  cli.set_read_timeout(2);
  cli.set_keep_alive(keep_alive);
  auto res = cli.Get(path.c_str());
  if (!res) return {};
  return {res->status, res->body, res->get_header_value("Content-Type")};
}

std::unique_ptr<endpoints> start_ok(std::shared_ptr<registry> reg, endpoints_options o) {
  auto e = endpoints::start(std::move(reg), std::move(o));
  EXPECT_TRUE(e.has_value()) << (e ? "" : e.error().to_string());
  return e ? std::move(*e) : nullptr;
}

// A port nothing listens on right now (the system picks it; it could be taken again before
// use, which no test here does).
uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  uint16_t port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  if (fd >= 0) ::close(fd);
  EXPECT_NE(port, 0);
  return port;
}

// Two servers: equal addresses (even with port 0) mean one server.
endpoints_options separate() {
  endpoints_options o;
  o.metrics_addr = "127.0.0.1:0";
  o.health_addr = "127.0.0.1:" + std::to_string(free_port());
  return o;
}

TEST(MetricsEndpoints, ServesMetricsInTextFormat) {
  auto reg = std::make_shared<registry>();
  auto e = start_ok(reg, separate());
  ASSERT_TRUE(e);
  ASSERT_NE(e->metrics_port(), 0);
  reg->reconcile("bucketsync", "success", 0.3);
  reg->queue_depth("bucketsync", 12);
  auto r = get(e->metrics_port(), "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r.body.find("controller_runtime_reconcile_total{controller=\"bucketsync\","
                        "result=\"success\"} 1\n"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("workqueue_depth{name=\"bucketsync\"} 12\n"), std::string::npos);
  // A later scrape sees later values.
  reg->queue_depth("bucketsync", 3);
  EXPECT_NE(
      get(e->metrics_port(), "/metrics").body.find("workqueue_depth{name=\"bucketsync\"} 3\n"),
      std::string::npos);
}

TEST(MetricsEndpoints, SeparatePortsServeSeparatePaths) {
  auto e = start_ok(std::make_shared<registry>(), separate());
  ASSERT_TRUE(e);
  ASSERT_NE(e->metrics_port(), e->health_port());
  EXPECT_EQ(get(e->health_port(), "/healthz").status, 200);
  EXPECT_EQ(get(e->health_port(), "/metrics").status, 404);
  auto r = get(e->metrics_port(), "/healthz");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "404 page not found\n");
}

TEST(MetricsEndpoints, SameAddressIsOneServer) {
  endpoints_options o;
  o.metrics_addr = "127.0.0.1:0";
  o.health_addr = "127.0.0.1:0";
  auto e = start_ok(std::make_shared<registry>(), o);
  ASSERT_TRUE(e);
  const uint16_t port = e->metrics_port();
  ASSERT_NE(port, 0);
  EXPECT_EQ(e->health_port(), port);
  EXPECT_EQ(get(port, "/metrics").status, 200);
  EXPECT_EQ(get(port, "/healthz").body, "ok");
  EXPECT_EQ(get(port, "/readyz").body, "ok");
}

TEST(MetricsEndpoints, DisabledEndpoint) {
  endpoints_options o;
  o.metrics_addr = "0";
  o.health_addr = "127.0.0.1:0";
  auto e = start_ok(std::make_shared<registry>(), o);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->metrics_port(), 0);
  EXPECT_EQ(get(e->health_port(), "/healthz").status, 200);

  o.metrics_addr = "";
  o.health_addr = "";
  auto none = start_ok(std::make_shared<registry>(), o);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->metrics_port(), 0);
  EXPECT_EQ(none->health_port(), 0);
}

TEST(MetricsEndpoints, NoChecksMeansPing) {
  auto e = start_ok(std::make_shared<registry>(), separate());
  ASSERT_TRUE(e);
  auto r = get(e->health_port(), "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok");
  EXPECT_EQ(r.content_type, "text/plain; charset=utf-8");
  r = get(e->health_port(), "/readyz?verbose");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "[+]ping ok\nreadyz check passed\n");
}

TEST(MetricsEndpoints, ReadinessFlipsFromFailingToOk) {
  auto e = start_ok(std::make_shared<registry>(), separate());
  ASSERT_TRUE(e);
  std::atomic<bool> synced{false};
  e->add_readiness("ping", [] { return check_result{}; });
  e->add_readiness("informers", [&synced]() -> check_result {
    if (synced) return {};
    return {false, "2 of 3 caches not synced"};
  });
  const uint16_t port = e->health_port();

  auto r = get(port, "/readyz");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body,
            "[+]ping ok\n[-]informers failed: 2 of 3 caches not synced\nreadyz check failed\n");
  // Liveness is a separate list: not affected.
  EXPECT_EQ(get(port, "/healthz").status, 200);
  // One check on its own, and an excluded check.
  r = get(port, "/readyz/informers");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, "internal server error: 2 of 3 caches not synced");
  EXPECT_EQ(get(port, "/readyz/ping").status, 200);
  EXPECT_EQ(get(port, "/readyz/nope").status, 404);
  r = get(port, "/readyz?exclude=informers&verbose");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "[+]ping ok\n[+]informers excluded: ok\nreadyz check passed\n");
  r = get(port, "/readyz?exclude=informers&exclude=bogus");
  EXPECT_EQ(r.status, 200);

  synced = true;
  r = get(port, "/readyz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok");
  r = get(port, "/readyz?verbose");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "[+]ping ok\n[+]informers ok\nreadyz check passed\n");
  r = get(port, "/readyz?verbose=1&exclude=bogus");
  EXPECT_NE(r.body.find("warn: some health checks cannot be excluded: no matches for \"bogus\"\n"),
            std::string::npos)
      << r.body;
}

TEST(MetricsEndpoints, LivenessChecksAndReplacement) {
  auto e = start_ok(std::make_shared<registry>(), separate());
  ASSERT_TRUE(e);
  e->add_liveness("actors", [] { return check_result{false, "scheduler\nstuck"}; });
  auto r = get(e->health_port(), "/healthz?verbose");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, "[-]actors failed: scheduler stuck\nhealthz check failed\n");
  // Same name replaces; a throwing check fails instead of breaking the server.
  e->add_liveness("actors", [] { return check_result{}; });
  e->add_liveness("thrower", []() -> check_result { throw std::runtime_error("boom"); });
  r = get(e->health_port(), "/healthz");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, "[+]actors ok\n[-]thrower failed: check threw: boom\nhealthz check failed\n");
  EXPECT_EQ(get(e->health_port(), "/readyz").status, 200);
}

TEST(MetricsEndpoints, ParsesListenAddresses) {
  struct good {
    const char* text;
    const char* host;
    uint16_t port;
  };
  for (const auto& g :
       {good{"127.0.0.1:8080", "127.0.0.1", 8080}, good{":9090", "0.0.0.0", 9090},
        good{"[::1]:0", "::1", 0}, good{"[::]:8443", "::", 8443},
        good{"localhost:65535", "localhost", 65535},
        good{"metrics.tidesync-system.svc:80", "metrics.tidesync-system.svc", 80}}) {
    auto a = parse_listen_address(g.text);
    ASSERT_TRUE(a.has_value()) << g.text << ": " << a.error().message;
    EXPECT_TRUE(a->enabled);
    EXPECT_EQ(a->host, g.host);
    EXPECT_EQ(a->port, g.port);
  }
  for (const char* off : {"", "0"}) {
    auto a = parse_listen_address(off);
    ASSERT_TRUE(a.has_value());
    EXPECT_FALSE(a->enabled);
  }
  struct bad {
    const char* text;
    const char* says;
  };
  for (const auto& b :
       {bad{"127.0.0.1", "missing \":PORT\""}, bad{"8080", "missing \":PORT\""},
        bad{"::1:8080", "needs brackets"}, bad{"http://127.0.0.1:8080", "no scheme"},
        bad{"127.0.0.1:65536", "0 to 65535"}, bad{"127.0.0.1:http", "0 to 65535"},
        bad{"127.0.0.1:", "0 to 65535"}, bad{"[::1]8080", "missing \":PORT\" after"},
        bad{"[::1:8080", "missing ']'"}, bad{"[127.0.0.1]:80", "not an IPv6 address"},
        bad{"999.1.1.1:80", "not an IPv4 address"},
        bad{"bad host:80", "not a host name or address"},
        bad{"-x.example:80", "not a host name or address"}}) {
    auto a = parse_listen_address(b.text);
    ASSERT_FALSE(a.has_value()) << b.text;
    EXPECT_EQ(a.error().code, errc::invalid_argument);
    EXPECT_NE(a.error().message.find(b.says), std::string::npos) << a.error().message;
    EXPECT_NE(a.error().message.find("write HOST:PORT, e.g. 127.0.0.1:8080"), std::string::npos)
        << a.error().message;
  }
}

TEST(MetricsEndpoints, BadAddressIsInvalidArgument) {
  endpoints_options o;
  o.metrics_addr = "127.0.0.1:0";
  o.health_addr = "localhost";
  auto e = endpoints::start(std::make_shared<registry>(), o);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, errc::invalid_argument);
  EXPECT_NE(e.error().message.find("invalid listen address \"localhost\": missing \":PORT\""),
            std::string::npos)
      << e.error().message;
}

// A port held by a plain listening socket (another process, say).
TEST(MetricsEndpoints, PortInUseIsUnavailable) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string taken = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  endpoints_options o;
  o.metrics_addr = taken;
  o.health_addr = "127.0.0.1:0";
  auto e = endpoints::start(std::make_shared<registry>(), o);
  ::close(fd);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, errc::unavailable);
  EXPECT_EQ(e.error().message, "cannot listen on " + taken + ": the port is already in use");
}

// A second controller on the same port must fail, not share it (httplib's default
// SO_REUSEPORT would let both bind and split the connections).
TEST(MetricsEndpoints, PortTakenByAnotherEndpointsIsUnavailable) {
  auto first = start_ok(std::make_shared<registry>(), separate());
  ASSERT_TRUE(first);
  endpoints_options o;
  o.metrics_addr = "0";
  o.health_addr = "127.0.0.1:" + std::to_string(first->health_port());
  auto second = endpoints::start(std::make_shared<registry>(), o);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, errc::unavailable);
  // The failed start left the first one serving.
  EXPECT_EQ(get(first->health_port(), "/healthz").status, 200);
}

// When the health address cannot be bound, the metrics server already started is stopped.
TEST(MetricsEndpoints, FailedStartReleasesWhatItBound) {
  auto first = start_ok(std::make_shared<registry>(), separate());
  ASSERT_TRUE(first);
  const uint16_t unused = free_port();
  endpoints_options o;
  o.metrics_addr = "127.0.0.1:" + std::to_string(unused);
  o.health_addr = "127.0.0.1:" + std::to_string(first->health_port());
  auto e = endpoints::start(std::make_shared<registry>(), o);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, errc::unavailable);
  EXPECT_EQ(get(unused, "/metrics").status, 0);  // nothing listens there now
}

TEST(MetricsEndpoints, StopIsPromptAndFinal) {
  auto e = start_ok(std::make_shared<registry>(), separate());
  ASSERT_TRUE(e);
  const uint16_t mport = e->metrics_port();
  const uint16_t hport = e->health_port();
  // A client that asks for keep-alive: the server must not hold the connection open.
  httplib::Client cli("127.0.0.1", mport);
  cli.set_keep_alive(true);
  cli.set_connection_timeout(2);
  cli.set_read_timeout(2);
  auto res = cli.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(get(hport, "/healthz").status, 200);

  auto t0 = std::chrono::steady_clock::now();
  e->stop();
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, std::chrono::milliseconds(500));
  EXPECT_EQ(get(mport, "/metrics").status, 0);
  EXPECT_EQ(get(hport, "/healthz").status, 0);
  e->stop();  // idempotent
}

TEST(MetricsEndpoints, StopRightAfterStart) {
  for (int i = 0; i < 20; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto e = start_ok(std::make_shared<registry>(), separate());
    ASSERT_TRUE(e);
    e.reset();  // the destructor stops
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  }
}

}  // namespace
}  // namespace tidesync::metrics
