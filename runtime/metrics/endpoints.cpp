// /metrics, /healthz and /readyz over cpp-httplib (see endpoints.hpp).
#include "runtime/metrics/endpoints.hpp"

#include <arpa/inet.h>
#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/log.hpp"
#include "runtime/metrics/http_server.hpp"

namespace tidesync::metrics {
namespace {

constexpr const char* kAddressHelp =
    "write HOST:PORT, e.g. 127.0.0.1:8080, :8080 (every IPv4 interface) or [::1]:8080; port 0 "
    "picks a free port; \"0\" or \"\" disables the endpoint";

error bad_address(std::string_view text, const std::string& what) {
  return make_error(errc::invalid_argument, "invalid listen address \"" + std::string(text) +
                                                "\": " + what + "; " + kAddressHelp);
}

bool valid_hostname(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i <= h.size(); ++i) {
    if (i == h.size() || h[i] == '.') {
      if (label == 0 || label > 63 || h[i - 1] == '-' || h[i - label] == '-') return false;
      label = 0;
      continue;
    }
    char c = h[i];
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
    ++label;
  }
  return true;
}

bool all_digits_and_dots(std::string_view h) {
  return h.find_first_not_of("0123456789.") == std::string_view::npos;
}

// One kind of check (liveness or readiness): named checks in the order added.
struct checklist {
  std::mutex mu;
  std::vector<std::pair<std::string, check>> checks;

  void add(std::string name, check c) {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [n, existing] : checks) {
      if (n == name) {
        existing = std::move(c);
        return;
      }
    }
    checks.emplace_back(std::move(name), std::move(c));
  }
  std::vector<std::pair<std::string, check>> snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return checks;
  }
};

// Runs a check; an exception is a failure (it must not take the HTTP thread down).
check_result run(const check& c) {
  try {
    check_result r = c ? c() : check_result{false, "no check function"};
    // One line per check in the listing.
    for (char& ch : r.message)
      if (ch == '\n' || ch == '\r') ch = ' ';
    return r;
  } catch (const std::exception& e) {
    return {false, std::string("check threw: ") + e.what()};
  } catch (...) {
    return {false, "check threw an unknown exception"};
  }
}

void send_text(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_content(body, "text/plain; charset=utf-8");
}

// kube-apiserver's /healthz behaviour: "ok" on success unless verbose, else a line per check
// and a verdict; 500 when any check fails. `endpoint` is "healthz" or "readyz".
void serve_checks(const char* endpoint, checklist& list, const httplib::Request& req,
                  httplib::Response& res) {
  auto checks = list.snapshot();
  std::set<std::string> excluded;
  for (size_t i = 0, n = req.get_param_value_count("exclude"); i < n; ++i)
    excluded.insert(req.get_param_value("exclude", i));
  const bool verbose = req.has_param("verbose");

  std::string lines;
  bool failed = false;
  if (checks.empty()) lines += "[+]ping ok\n";
  for (const auto& [name, c] : checks) {
    if (excluded.erase(name) > 0) {
      lines += "[+]" + name + " excluded: ok\n";
      continue;
    }
    check_result r = run(c);
    if (r.ok) {
      lines += "[+]" + name + " ok\n";
    } else {
      failed = true;
      lines += "[-]" + name + " failed: " + (r.message.empty() ? "not ok" : r.message) + "\n";
    }
  }
  if (!excluded.empty()) {
    lines += "warn: some health checks cannot be excluded: no matches for";
    for (const auto& e : excluded)
      lines += " \"" + e + "\"";
    lines += "\n";
  }
  if (failed) {
    tidesync::log::get("metrics")->debug("{} check failed: {}", endpoint, lines);
    send_text(res, 500, lines + endpoint + " check failed\n");
  } else if (verbose) {
    send_text(res, 200, lines + endpoint + " check passed\n");
  } else {
    send_text(res, 200, "ok");
  }
}

// /healthz/NAME: one check; 404 for an unknown name.
void serve_one_check(checklist& list, const std::string& name, httplib::Response& res) {
  auto checks = list.snapshot();
  if (checks.empty() && name == "ping") return send_text(res, 200, "ok");
  for (const auto& [n, c] : checks) {
    if (n != name) continue;
    check_result r = run(c);
    if (r.ok) return send_text(res, 200, "ok");
    return send_text(res, 500,
                     "internal server error: " + (r.message.empty() ? "not ok" : r.message));
  }
  send_text(res, 404, "no health check named \"" + name + "\"\n");
}

}  // namespace

expected<listen_address> parse_listen_address(std::string_view text) {
  listen_address a;
  if (text.empty() || text == "0") return a;  // disabled
  if (text.find("://") != std::string_view::npos)
    return bad_address(text, "a listen address has no scheme");
  std::string_view host;
  std::string_view port;
  if (text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return bad_address(text, "missing ']'");
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':')
      return bad_address(text, "missing \":PORT\" after the bracketed IPv6 address");
    port = text.substr(close + 2);
    in6_addr v6{};
    if (inet_pton(AF_INET6, std::string(host).c_str(), &v6) != 1)
      return bad_address(text, "\"" + std::string(host) + "\" is not an IPv6 address");
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad_address(text, "missing \":PORT\"");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return bad_address(text, "an IPv6 address needs brackets, as in [::1]:8080");
    if (!host.empty()) {
      in_addr v4{};
      bool is_v4 = inet_pton(AF_INET, std::string(host).c_str(), &v4) == 1;
      if (!is_v4 && all_digits_and_dots(host))
        return bad_address(text, "\"" + std::string(host) + "\" is not an IPv4 address");
      if (!is_v4 && !valid_hostname(host))
        return bad_address(text, "\"" + std::string(host) + "\" is not a host name or address");
    }
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != port.npos)
    return bad_address(text, "the port must be a number from 0 to 65535");
  unsigned long p = std::stoul(std::string(port));
  if (p > 65535) return bad_address(text, "the port must be a number from 0 to 65535");
  a.enabled = true;
  a.host = host.empty() ? "0.0.0.0" : std::string(host);
  a.port = static_cast<uint16_t>(p);
  return a;
}

struct endpoints::impl {
  std::shared_ptr<registry> reg;
  checklist liveness;
  checklist readiness;
  std::unique_ptr<http_server> metrics_server;  // also serves health when the addresses are equal
  std::unique_ptr<http_server> health_server;
  uint16_t metrics_port = 0;
  uint16_t health_port = 0;
  std::mutex stop_mu;

  void route(httplib::Server& http, bool metrics, bool health) {
    if (metrics) {
      http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
        res.status = 200;
        res.set_content(reg ? reg->text() : std::string(),
                        "text/plain; version=0.0.4; charset=utf-8");
      });
    }
    if (health) {
      http.Get("/healthz", [this](const httplib::Request& req, httplib::Response& res) {
        serve_checks("healthz", liveness, req, res);
      });
      http.Get("/readyz", [this](const httplib::Request& req, httplib::Response& res) {
        serve_checks("readyz", readiness, req, res);
      });
      http.Get("/healthz/([^/]+)", [this](const httplib::Request& req, httplib::Response& res) {
        serve_one_check(liveness, req.matches[1].str(), res);
      });
      http.Get("/readyz/([^/]+)", [this](const httplib::Request& req, httplib::Response& res) {
        serve_one_check(readiness, req.matches[1].str(), res);
      });
    }
  }

  expected<std::unique_ptr<http_server>> listen(const listen_address& a, const std::string& text,
                                                bool metrics, bool health) {
    auto s = std::make_unique<http_server>();
    auto& http = s->http;
    // Few, short requests (a scrape every few seconds, two probes): a small pool.
    http.new_task_queue = [] { return new httplib::ThreadPool(4); };
    // httplib 0.11 waits out keep_alive_timeout on an idle kept-alive connection before a
    // worker (and so stop()) can finish: answer one request per connection and wait at most a
    // second for it. A scrape every 15 s gains nothing from keep-alive anyway.
    http.set_keep_alive_max_count(1);
    http.set_keep_alive_timeout(1);
    http.set_read_timeout(5);
    http.set_write_timeout(10);
    http.set_payload_max_length(64 << 10);
    http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      // Called for every status >= 400, ours included: only fill an empty 404 (no route).
      if (res.status == 404 && res.body.empty()) send_text(res, 404, "404 page not found\n");
    });
    http.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, const std::exception_ptr& ep) {
          std::string what = "unknown error";
          try {
            if (ep) std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          send_text(res, 500, "internal error: " + what + "\n");
        });
    route(http, metrics, health);

    if (auto port = s->start(a, text); !port) return port.error();
    return s;
  }
};

endpoints::endpoints(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

endpoints::~endpoints() {
  stop();
}

expected<std::unique_ptr<endpoints>> endpoints::start(std::shared_ptr<registry> reg,
                                                      endpoints_options options) {
  const std::string metrics_text = std::move(options.metrics_addr);
  const std::string health_text = std::move(options.health_addr);
  auto metrics_addr = parse_listen_address(metrics_text);
  if (!metrics_addr) return metrics_addr.error();
  auto health_addr = parse_listen_address(health_text);
  if (!health_addr) return health_addr.error();

  auto i = std::make_unique<impl>();
  i->reg = std::move(reg);
  const bool shared = metrics_addr->enabled && health_addr->enabled &&
                      metrics_addr->host == health_addr->host &&
                      metrics_addr->port == health_addr->port;
  if (metrics_addr->enabled && metrics_addr->port != 0 && health_addr->enabled && !shared &&
      metrics_addr->port == health_addr->port &&
      (metrics_addr->host == "0.0.0.0" || health_addr->host == "0.0.0.0"))
    return make_error(errc::invalid_argument,
                      "the metrics address " + metrics_text + " and the health address " +
                          health_text +
                          " overlap: use the same address for both, or different ports");

  if (metrics_addr->enabled) {
    auto s = i->listen(*metrics_addr, metrics_text, true, shared);
    if (!s) return s.error();
    i->metrics_server = std::move(*s);
    i->metrics_port = i->metrics_server->port();
    if (shared) i->health_port = i->metrics_port;
  }
  if (health_addr->enabled && !shared) {
    auto s = i->listen(*health_addr, health_text, false, true);
    if (!s) return s.error();  // ~impl stops the metrics server
    i->health_server = std::move(*s);
    i->health_port = i->health_server->port();
  }
  auto log = tidesync::log::get("metrics");
  if (i->metrics_port != 0)
    log->info("serving /metrics on {}", host_port(metrics_addr->host, i->metrics_port));
  if (i->health_port != 0)
    log->info("serving /healthz and /readyz on {}", host_port(health_addr->host, i->health_port));
  return std::unique_ptr<endpoints>(new endpoints(std::move(i)));
}

void endpoints::add_liveness(std::string name, check c) {
  impl_->liveness.add(std::move(name), std::move(c));
}

void endpoints::add_readiness(std::string name, check c) {
  impl_->readiness.add(std::move(name), std::move(c));
}

uint16_t endpoints::metrics_port() const {
  return impl_->metrics_port;
}

uint16_t endpoints::health_port() const {
  return impl_->health_port;
}

void endpoints::stop() {
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  // Stop both listeners first, then wait: the two shut down in parallel.
  for (auto* s : {impl_->metrics_server.get(), impl_->health_server.get()})
    if (s) s->http.stop();
  if (impl_->metrics_server) impl_->metrics_server->stop();
  if (impl_->health_server) impl_->health_server->stop();
}

}  // namespace tidesync::metrics
