// The informer over the real Kubernetes client and HTTP loop, against a small scripted HTTP
// server on 127.0.0.1: list, watch, a stream that ends, an HTTP 410 → relist that drops a
// vanished object, and a final watch from the new list's version.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/http/loop.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/watch/client_transport.hpp"
#include "runtime/watch/informer.hpp"

namespace tidesync::watch {
namespace {

using namespace std::chrono_literals;

// What the server answers to one request: raw pieces written in order (the first holds the
// status line and headers), then the connection closes, unless `hold` keeps it open until
// the server stops.
struct reply {
  std::vector<std::string> pieces;
  bool hold = false;
};

class scripted_server {
 public:
  using script = std::function<reply(const std::string& target, int nth)>;

  explicit scripted_server(script s) : script_(std::move(s)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~scripted_server() { stop(); }

  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    acceptor_.join();
    for (auto& t : handlers_)
      t.join();
  }

  [[nodiscard]] int port() const { return port_; }
  std::vector<std::string> targets() {
    std::lock_guard lock(mu_);
    return targets_;
  }
  // Waits until at least `n` requests arrived.
  bool wait_requests(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 5s, [&] { return targets_.size() >= n; });
  }

 private:
  void accept_loop() {
    for (;;) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::lock_guard lock(mu_);
      if (stopping_) {
        ::close(c);
        return;
      }
      handlers_.emplace_back([this, c] { serve(c); });
    }
  }

  void serve(int c) {
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) {
        ::close(c);
        return;
      }
      req.append(buf, static_cast<size_t>(n));
    }
    size_t sp1 = req.find(' ');
    std::string target = req.substr(sp1 + 1, req.find(' ', sp1 + 1) - sp1 - 1);
    int nth;
    {
      std::lock_guard lock(mu_);
      targets_.push_back(target);
      nth = static_cast<int>(targets_.size()) - 1;
    }
    cv_.notify_all();
    reply r = script_(target, nth);
    for (const auto& p : r.pieces) {
      if (::send(c, p.data(), p.size(), MSG_NOSIGNAL) < 0) break;
    }
    if (r.hold) {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_; });
    }
    ::shutdown(c, SHUT_RDWR);
    ::close(c);
  }

  script script_;
  int fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> handlers_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<std::string> targets_;
};

std::string pod(const std::string& name, int rv) {
  return R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":")" + name +
         R"(","namespace":"default","uid":"u-)" + name + R"(","resourceVersion":")" +
         std::to_string(rv) + R"("},"spec":{}})";
}
std::string ok_json(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}
// A streamed body: no length, ends when the connection closes.
const char* kStreamHead =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";

TEST(WatchClientTransport, ListWatchEndGoneRelistAgainstHttpServer) {
  scripted_server server([](const std::string& target, int nth) -> reply {
    bool watch = target.find("watch=true") != std::string::npos;
    if (!watch && target.find("resourceVersion=") == std::string::npos && nth == 0) {
      return {{ok_json(
          R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"10"},"items":[)" +
          pod("a", 5) + "," + pod("b", 6) + "]}")}};
    }
    if (watch && target.find("resourceVersion=10") != std::string::npos) {
      // One event split across writes, then a normal end of stream.
      std::string e = R"({"type":"ADDED","object":)" + pod("c", 11) + "}\n";
      return {{kStreamHead, e.substr(0, 20), e.substr(20)}};
    }
    if (watch && target.find("resourceVersion=11") != std::string::npos) {
      std::string status =
          R"J({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 11 (15)","reason":"Expired","code":410})J";
      return {{"HTTP/1.1 410 Gone\r\nContent-Type: application/json\r\nContent-Length: " +
               std::to_string(status.size()) + "\r\nConnection: close\r\n\r\n" + status}};
    }
    if (!watch) {  // the relist: "b" was deleted meanwhile
      return {{ok_json(
          R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"20"},"items":[)" +
          pod("a", 5) + "," + pod("c", 11) + "]}")}};
    }
    return {{kStreamHead,
             R"({"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"21"}}})"
             "\n"},
            true};
  });

  http::loop loop;
  k8s::connection_config cfg;
  cfg.server = "http://127.0.0.1:" + std::to_string(server.port());
  k8s::client_options copts;
  copts.qps = 0;
  k8s::client client(loop, cfg, copts);
  client_transport transport(client, k8s::resources::pods(), "default");
  watcher_options opts;
  opts.name = "v1/pods";
  opts.page_size = 100;
  opts.min_healthy_watch = 0ms;  // the 410 comes at once; relist without waiting
  informer inf(transport, opts);

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> notified;
  inf.add_handler([&](const std::string& key) {
    std::lock_guard lock(mu);
    notified.push_back(key);
    cv.notify_all();
  });
  loop.post([&] { inf.start(); });

  ASSERT_TRUE(server.wait_requests(5)) << "requests so far: " << server.targets().size();
  {
    // list(a,b), ADDED c, relist → b deleted: a, b, c, then b again.
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(
        lock, 5s, [&] { return std::count(notified.begin(), notified.end(), "default/b") == 2; }));
  }
  // Let the last watch's bookmark arrive: ask the loop thread for the watcher's version.
  std::string rv;
  for (auto deadline = std::chrono::steady_clock::now() + 5s;
       rv != "21" && std::chrono::steady_clock::now() < deadline;) {
    std::promise<std::string> p;
    loop.post([&] { p.set_value(inf.source().resource_version()); });
    rv = p.get_future().get();
    if (rv != "21") std::this_thread::yield();
  }
  EXPECT_EQ(rv, "21");
  EXPECT_EQ(inf.store().keys(), (std::vector<std::string>{"default/a", "default/c"}));
  EXPECT_TRUE(inf.has_synced());

  auto targets = server.targets();
  ASSERT_GE(targets.size(), 5u);
  EXPECT_EQ(targets[0].find("/api/v1/namespaces/default/pods?"), 0u) << targets[0];
  EXPECT_NE(targets[0].find("limit=100"), std::string::npos) << targets[0];
  EXPECT_NE(targets[1].find("resourceVersion=10"), std::string::npos) << targets[1];
  EXPECT_NE(targets[1].find("allowWatchBookmarks=true"), std::string::npos) << targets[1];
  EXPECT_NE(targets[2].find("resourceVersion=11"), std::string::npos) << targets[2];
  EXPECT_EQ(targets[3].find("watch=true"), std::string::npos) << targets[3];
  EXPECT_NE(targets[4].find("resourceVersion=20"), std::string::npos) << targets[4];

  std::promise<void> stopped;
  loop.post([&] {
    inf.stop();
    stopped.set_value();
  });
  stopped.get_future().wait();
  loop.stop();
  server.stop();
}

}  // namespace
}  // namespace tidesync::watch
