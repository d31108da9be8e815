#include "runtime/metrics/http_server.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace tidesync::metrics {
namespace {

bool resolves(const std::string& host) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* result = nullptr;
  if (getaddrinfo(host.c_str(), "0", &hints, &result) != 0) return false;
  freeaddrinfo(result);
  return true;
}

// SO_REUSEADDR only. httplib's default also sets SO_REUSEPORT, which lets a second process
// bind a port that is already served (and silently share its connections) instead of failing.
void socket_options(int sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

}  // namespace

std::string host_port(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

http_server::http_server() : http_server(std::make_unique<httplib::Server>()) {}

http_server::http_server(std::unique_ptr<httplib::Server> server)
    : owned_(std::move(server)), http(*owned_) {
  http.set_socket_options(socket_options);
}

http_server::~http_server() {
  stop();
}

expected<uint16_t> http_server::start(const listen_address& a, const std::string& text) {
  errno = 0;
  int port = a.port == 0 ? http.bind_to_any_port(a.host)
                         : (http.bind_to_port(a.host, a.port) ? a.port : -1);
  int err = errno;
  if (port <= 0) {
    std::string why = err == EADDRINUSE      ? "the port is already in use"
                      : err == EADDRNOTAVAIL ? "the host is not an address of this machine"
                      : err == EACCES     ? "permission denied (ports below 1024 need privileges)"
                      : !resolves(a.host) ? "the host name did not resolve"
                      : err != 0          ? std::string(std::strerror(err))
                                          : "bind failed";
    return make_error(errc::unavailable, "cannot listen on " + text + ": " + why);
  }
  port_ = static_cast<uint16_t>(port);
  thread_ = std::thread([this] {
    http.listen_after_bind();
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  });
  return port_;
}

// httplib's stop() does nothing until its loop has marked itself running: repeat it until the
// loop has returned, so a stop right after start cannot be lost.
void http_server::stop() {
  if (!thread_.joinable()) return;
  std::unique_lock<std::mutex> lock(mu_);
  while (!done_) {
    http.stop();
    cv_.wait_for(lock, std::chrono::milliseconds(5));
  }
  lock.unlock();
  thread_.join();
}

}  // namespace tidesync::metrics
