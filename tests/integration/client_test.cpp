// The HTTP loop and the Kubernetes client against a real HTTP server on 127.0.0.1
// (cpp-httplib in this process): status codes, paging, streaming, timeouts, cancel, rate limit.
#include "runtime/k8s/client.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "runtime/http/loop.hpp"

using namespace std::chrono_literals;
using namespace tidesync;
using k8s::client;

namespace {

// A latch-like flag to wait on with a deadline (tests never sleep to synchronise).
class flag {
 public:
  void set() {
    std::lock_guard<std::mutex> g(mu_);
    set_ = true;
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds d = 5s) {
    std::unique_lock<std::mutex> g(mu_);
    return cv_.wait_for(g, d, [&] { return set_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

std::string status_body(int code, const std::string& reason, const std::string& message) {
  return R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":")" + message +
         R"(","reason":")" + reason + R"(","code":)" + std::to_string(code) + "}";
}

// A port nothing listens on: bound (to reserve a number), then closed without listen().
int unused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

const std::string kCm = "/api/v1/namespaces/default/configmaps";

// A fake API server: enough routes to check what the client sends and how it reads answers.
class fake_server {
 public:
  fake_server() {
    svr_.Get(kCm + "/cm1", [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      res.set_content(R"({"kind":"ConfigMap","metadata":{"name":"cm1"},"data":{"a":"1"}})",
                      "application/json");
    });
    svr_.Get(kCm + "/missing", [](const httplib::Request&, httplib::Response& res) {
      res.status = 404;
      res.set_content(status_body(404, "NotFound", "configmaps \\\"missing\\\" not found"),
                      "application/json");
    });
    svr_.Get(kCm + "/gone", [](const httplib::Request&, httplib::Response& res) {
      res.status = 410;
      res.set_content(status_body(410, "Expired", "too old resource version: 1 (5)"),
                      "application/json");
    });
    svr_.Get(kCm + "/proxy-error", [](const httplib::Request&, httplib::Response& res) {
      res.status = 502;
      res.set_content("bad gateway", "text/plain");
    });
    svr_.Get(kCm + "/slow", [this](const httplib::Request&, httplib::Response& res) {
      slow_started_.set();
      release_.wait(5s);
      res.set_content("{}", "application/json");
    });
    svr_.Post(kCm, [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      if (req.body.find("\"exists\"") != std::string::npos) {
        res.status = 409;
        res.set_content(
            status_body(409, "AlreadyExists", "configmaps \\\"exists\\\" already exists"),
            "application/json");
        return;
      }
      if (req.body.find("\"bad\"") != std::string::npos) {
        res.status = 422;
        res.set_content(
            R"({"kind":"Status","apiVersion":"v1","status":"Failure",)"
            R"("message":"ConfigMap \"bad\" is invalid","reason":"Invalid","code":422,)"
            R"("details":{"name":"bad","kind":"ConfigMap","causes":[)"
            R"({"reason":"FieldValueInvalid","message":"Invalid value: \"x\"","field":"data.k"}]}})",
            "application/json");
        return;
      }
      res.status = 201;
      res.set_content(req.body, "application/json");
    });
    svr_.Put(kCm + "/cm1", [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      res.status = 409;
      res.set_content(status_body(409, "Conflict",
                                  "Operation cannot be fulfilled on configmaps \\\"cm1\\\": the "
                                  "object has been modified"),
                      "application/json");
    });
    // PATCH and status writes echo what they got, with the content type, so tests can check.
    auto echo = [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      std::string body = R"({"path":")" + req.path + R"(","method":")" + req.method +
                         R"(","contentType":")" + req.get_header_value("Content-Type") +
                         R"(","body":)" + (req.body.empty() ? "null" : req.body) + "}";
      res.set_content(body, "application/json");
    };
    svr_.Patch(kCm + "/cm1", echo);
    svr_.Patch(kCm + "/cm1/status", echo);
    svr_.Put(kCm + "/cm1/status", echo);
    svr_.Delete(kCm + "/cm1", echo);
    // Rate limit ordering: records the arrival order of /seq/<n>.
    svr_.Get(R"(/seq/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard<std::mutex> g(mu_);
        seq_.emplace_back(std::stoi(req.matches[1]), std::chrono::steady_clock::now());
      }
      res.set_content("{}", "application/json");
    });
    // Paged list of 5 items, 2 per page; continue tokens are the next index.
    svr_.Get(kCm, [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      if (req.get_param_value("watch") == "true") return watch(req, res);
      int start = req.has_param("continue") ? std::stoi(req.get_param_value("continue")) : 0;
      int limit = req.has_param("limit") ? std::stoi(req.get_param_value("limit")) : 5;
      std::string items;
      int end = std::min(5, start + limit);
      for (int i = start; i < end; ++i) {
        if (!items.empty()) items += ",";
        items += R"({"metadata":{"name":"cm)" + std::to_string(i) + R"("}})";
      }
      std::string meta = R"("resourceVersion":")" + std::to_string(100 + start) + "\"";
      if (end < 5) meta += R"(,"continue":")" + std::to_string(end) + "\"";
      res.set_content(
          R"({"kind":"ConfigMapList","metadata":{)" + meta + R"(},"items":[)" + items + "]}",
          "application/json");
    });
    // Like a real API server: without this, Nagle + delayed ACK add ~40 ms per response.
    svr_.set_tcp_nodelay(true);
    port_ = svr_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    // httplib's stop() is a no-op until the accept loop runs, so a server stopped too early
    // would never return from listen: wait until it is running.
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!svr_.is_running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
  }

  ~fake_server() {
    release_.set();
    next_chunk_.set();
    svr_.stop();
    thread_.join();
  }

  // Watch: first chunk at once (an event split in the middle), the rest only after the test
  // says the first arrived, which proves the client delivers chunks incrementally. With
  // resourceVersion=stall it sends one chunk and then nothing (idle timeout).
  void watch(const httplib::Request& req, httplib::Response& res) {
    if (req.get_param_value("resourceVersion") == "old") {
      res.status = 410;
      res.set_content(status_body(410, "Expired", "too old resource version"), "application/json");
      return;
    }
    const bool stall = req.get_param_value("resourceVersion") == "stall";
    res.set_chunked_content_provider(
        "application/json", [this, stall, step = 0](size_t, httplib::DataSink& sink) mutable {
          if (step == 0) {
            std::string first = R"({"type":"ADDED","object":{"metadata":{"name":"a"}}})"
                                "\n"
                                R"({"type":"MODI)";
            sink.write(first.data(), first.size());
            ++step;
            return true;
          }
          if (stall) {
            // Hold the connection open without sending until the test ends.
            release_.wait(10s);
            return false;
          }
          if (!next_chunk_.wait(5s)) return false;
          std::string rest = R"(FIED","object":{"metadata":{"name":"a"}}})"
                             "\n";
          sink.write(rest.data(), rest.size());
          sink.done();
          return true;
        });
  }

  void record(const httplib::Request& req) {
    std::lock_guard<std::mutex> g(mu_);
    last_ = req;
  }
  httplib::Request last() {
    std::lock_guard<std::mutex> g(mu_);
    return last_;
  }
  std::vector<std::pair<int, std::chrono::steady_clock::time_point>> seq() {
    std::lock_guard<std::mutex> g(mu_);
    return seq_;
  }
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] int port() const { return port_; }

  flag release_;       // lets /slow and stalled watches finish
  flag slow_started_;  // /slow has received a request
  flag next_chunk_;    // lets the watch send its second chunk

 private:
  httplib::Server svr_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  httplib::Request last_;
  std::vector<std::pair<int, std::chrono::steady_clock::time_point>> seq_;  // arrivals
};

k8s::connection_config config_for(const fake_server& s) {
  k8s::connection_config c;
  c.server = s.url();
  c.token = "test-token";
  return c;
}

const k8s::resource kConfigMaps = k8s::resources::configmaps();

}  // namespace

// --- the loop --------------------------------------------------------------------------

TEST(HttpLoop, PostAndTimersRunOnTheLoopThreadInOrder) {
  http::loop loop;
  std::mutex mu;
  std::vector<int> order;
  flag done;
  auto add = [&](int v) {
    EXPECT_TRUE(loop.on_loop_thread());
    std::lock_guard<std::mutex> g(mu);
    order.push_back(v);
  };
  loop.post([&] { add(1); });
  auto cancelled = loop.post_after(20ms, [&] { add(99); });
  loop.post_after(40ms, [&] { add(3); });
  loop.post_after(60ms, [&] {
    add(4);
    done.set();
  });
  loop.post_after(10ms, [&] { add(2); });
  loop.cancel_timer(cancelled);
  ASSERT_TRUE(done.wait());
  std::lock_guard<std::mutex> g(mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_FALSE(loop.on_loop_thread());
}

TEST(HttpLoop, ConnectionRefusedIsUnavailable) {
  const int port = unused_port();
  http::loop loop;
  std::promise<expected<http::response>> p;
  http::request r;
  r.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  r.on_done = [&](expected<http::response> res) { p.set_value(std::move(res)); };
  loop.submit(std::move(r));
  auto res = p.get_future().get();
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, errc::unavailable);
  EXPECT_NE(res.error().message.find("127.0.0.1"), std::string::npos) << res.error().message;
}

TEST(HttpLoop, TotalTimeoutIsTimeout) {
  fake_server s;
  http::loop loop;
  std::promise<expected<http::response>> p;
  http::request r;
  r.url = s.url() + kCm + "/slow";
  r.timeout = 200ms;
  r.on_done = [&](expected<http::response> res) { p.set_value(std::move(res)); };
  loop.submit(std::move(r));
  auto res = p.get_future().get();
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, errc::timeout) << res.error().to_string();
}

TEST(HttpLoop, StopCancelsInFlightTransfers) {
  fake_server s;
  auto loop = std::make_unique<http::loop>();
  std::promise<expected<http::response>> p;
  http::request r;
  r.url = s.url() + kCm + "/slow";
  r.on_done = [&](expected<http::response> res) { p.set_value(std::move(res)); };
  loop->submit(std::move(r));
  // A delayed request that never started is cancelled too.
  std::promise<expected<http::response>> p2;
  http::request r2;
  r2.url = s.url() + kCm + "/cm1";
  r2.on_done = [&](expected<http::response> res) { p2.set_value(std::move(res)); };
  loop->submit(std::move(r2), http::loop::clock::now() + 1h);
  // And one cancelled before it started: told at once, not after its hour.
  std::promise<expected<http::response>> p4;
  http::request r4;
  r4.url = s.url() + kCm + "/cm1";
  r4.on_done = [&](expected<http::response> res) { p4.set_value(std::move(res)); };
  loop->cancel(loop->submit(std::move(r4), http::loop::clock::now() + 1h));
  auto res4 = p4.get_future().get();
  ASSERT_FALSE(res4);
  EXPECT_EQ(res4.error().code, errc::cancelled);
  // Wait until the first transfer is really running (the server holds it).
  ASSERT_TRUE(s.slow_started_.wait());
  EXPECT_EQ(loop->active(), 2u);
  loop->stop();
  auto res = p.get_future().get();
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, errc::cancelled);
  auto res2 = p2.get_future().get();
  ASSERT_FALSE(res2);
  EXPECT_EQ(res2.error().code, errc::cancelled);
  // After stop, submit answers at once with cancelled.
  bool called = false;
  http::request r3;
  r3.url = s.url();
  r3.on_done = [&](expected<http::response> res) {
    called = true;
    EXPECT_EQ(res.error().code, errc::cancelled);
  };
  loop->submit(std::move(r3));
  EXPECT_TRUE(called);
}

TEST(HttpLoop, ResponseHeadersAreLowerCased) {
  fake_server s;
  http::loop loop;
  std::promise<expected<http::response>> p;
  http::request r;
  r.url = s.url() + kCm + "/cm1";
  r.on_done = [&](expected<http::response> res) { p.set_value(std::move(res)); };
  loop.submit(std::move(r));
  auto res = p.get_future().get();
  ASSERT_TRUE(res) << res.error().to_string();
  EXPECT_EQ(res->status, 200);
  ASSERT_NE(res->header("content-type"), nullptr);
  EXPECT_EQ(*res->header("content-type"), "application/json");
}

// --- the client ------------------------------------------------------------------------

TEST(Client, GetSendsAuthUserAgentAndAccept) {
  fake_server s;
  http::loop loop;
  client c(loop, config_for(s));
  auto obj = c.get_sync(kConfigMaps, "default", "cm1");
  ASSERT_TRUE(obj) << obj.error().to_string();
  EXPECT_EQ(obj->get_string("kind"), "ConfigMap");
  EXPECT_EQ(obj->at_path({"data", "a"})->as_string(), "1");
  auto req = s.last();
  EXPECT_EQ(req.get_header_value("Authorization"), "Bearer test-token");
  EXPECT_EQ(req.get_header_value("Accept"), "application/json");
  EXPECT_EQ(req.get_header_value("User-Agent").rfind("tidesync/", 0), 0u);
  // The next request reuses the connection (same client port).
  ASSERT_TRUE(c.get_sync(kConfigMaps, "default", "cm1"));
  EXPECT_EQ(s.last().remote_port, req.remote_port);
}

TEST(Client, RotatedTokenFileIsPickedUpAndBasicAuthWorks) {
  fake_server s;
  http::loop loop;
  char tmpl[] = "/tmp/tidesync-token-XXXXXX";
  const int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const std::string token_file = tmpl;
  auto write_token = [&](const std::string& t) {
    FILE* f = std::fopen(token_file.c_str(), "w");
    std::fputs(t.c_str(), f);
    std::fclose(f);
  };
  write_token("first-token\n");
  auto cfg = config_for(s);
  cfg.token_file = token_file;
  k8s::client_options opts;
  opts.token_recheck = 0ms;  // check the file on every request
  client c(loop, cfg, opts);
  ASSERT_TRUE(c.get_sync(kConfigMaps, "default", "cm1"));
  EXPECT_EQ(s.last().get_header_value("Authorization"), "Bearer first-token");
  write_token("second-token-after-rotation\n");
  ASSERT_TRUE(c.get_sync(kConfigMaps, "default", "cm1"));
  EXPECT_EQ(s.last().get_header_value("Authorization"), "Bearer second-token-after-rotation");
  std::remove(token_file.c_str());

  k8s::connection_config basic;
  basic.server = s.url();
  basic.username = "admin";
  basic.password = "pw";
  client b(loop, basic);
  ASSERT_TRUE(b.get_sync(kConfigMaps, "default", "cm1"));
  EXPECT_EQ(s.last().get_header_value("Authorization"), "Basic YWRtaW46cHc=");
}

TEST(Client, StatusCodesBecomeDistinctErrorsWithTheServerMessage) {
  fake_server s;
  http::loop loop;
  client c(loop, config_for(s));

  auto nf = c.get_sync(kConfigMaps, "default", "missing");
  ASSERT_FALSE(nf);
  EXPECT_EQ(nf.error().code, errc::not_found);
  EXPECT_EQ(nf.error().http_status, 404);
  EXPECT_EQ(nf.error().reason, "NotFound");
  EXPECT_EQ(nf.error().message, "configmaps \"missing\" not found");

  auto gone = c.get_sync(kConfigMaps, "default", "gone");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, errc::gone);
  EXPECT_EQ(gone.error().message, "too old resource version: 1 (5)");

  json::value exists = json::object{{"metadata", json::object{{"name", "exists"}}}};
  auto ae = c.create_sync(kConfigMaps, "default", exists);
  ASSERT_FALSE(ae);
  EXPECT_EQ(ae.error().code, errc::already_exists);
  EXPECT_EQ(ae.error().http_status, 409);

  auto conflict = c.update_sync(kConfigMaps, "default", "cm1", exists);
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().code, errc::conflict);
  EXPECT_EQ(conflict.error().reason, "Conflict");
  EXPECT_NE(conflict.error().message.find("has been modified"), std::string::npos);

  json::value bad = json::object{{"metadata", json::object{{"name", "bad"}}}};
  auto invalid = c.create_sync(kConfigMaps, "default", bad);
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().code, errc::invalid);
  EXPECT_EQ(invalid.error().message, "ConfigMap \"bad\" is invalid");
  ASSERT_TRUE(invalid.error().subject.has_value());
  EXPECT_EQ(invalid.error().subject->kind, "ConfigMap");
  EXPECT_EQ(invalid.error().subject->name, "bad");
  ASSERT_EQ(invalid.error().causes.size(), 1u);
  EXPECT_EQ(invalid.error().causes[0].field, "data.k");
  EXPECT_EQ(invalid.error().causes[0].reason, "FieldValueInvalid");
  EXPECT_FALSE(conflict.error().subject.has_value()) << "a Status without details has none";

  auto proxy = c.get_sync(kConfigMaps, "default", "proxy-error");
  ASSERT_FALSE(proxy);
  EXPECT_EQ(proxy.error().code, errc::unavailable);
  EXPECT_NE(proxy.error().message.find("HTTP 502: bad gateway"), std::string::npos);

  json::value good = json::object{{"metadata", json::object{{"name", "new"}}}};
  auto created = c.create_sync(kConfigMaps, "default", good);
  ASSERT_TRUE(created) << created.error().to_string();
  EXPECT_EQ(*created, good);
  EXPECT_EQ(s.last().get_header_value("Content-Type"), "application/json");
}

TEST(Client, PatchesAndStatusUseTheRightPathAndContentType) {
  fake_server s;
  http::loop loop;
  client c(loop, config_for(s));
  json::value p = json::object{{"data", json::object{{"b", "2"}}}};

  auto merge = c.patch_sync(kConfigMaps, "default", "cm1", k8s::patch_type::merge, p);
  ASSERT_TRUE(merge) << merge.error().to_string();
  EXPECT_EQ(merge->get_string("contentType"), "application/merge-patch+json");
  EXPECT_EQ(merge->get_string("path"), kCm + "/cm1");
  EXPECT_EQ(*merge->at("body"), p);

  json::value ops = json::array{json::object{{"op", "add"}, {"path", "/data/c"}, {"value", "3"}}};
  auto jp = c.patch_sync(kConfigMaps, "default", "cm1", k8s::patch_type::json, ops);
  ASSERT_TRUE(jp);
  EXPECT_EQ(jp->get_string("contentType"), "application/json-patch+json");
  EXPECT_EQ(*jp->at("body"), ops);

  auto smp = c.patch_sync(kConfigMaps, "default", "cm1", k8s::patch_type::strategic_merge, p);
  ASSERT_TRUE(smp);
  EXPECT_EQ(smp->get_string("contentType"), "application/strategic-merge-patch+json");

  auto ps = c.patch_status_sync(kConfigMaps, "default", "cm1", k8s::patch_type::merge, p);
  ASSERT_TRUE(ps);
  EXPECT_EQ(ps->get_string("path"), kCm + "/cm1/status");
  EXPECT_EQ(ps->get_string("method"), "PATCH");

  auto us = c.update_status_sync(kConfigMaps, "default", "cm1", p);
  ASSERT_TRUE(us);
  EXPECT_EQ(us->get_string("path"), kCm + "/cm1/status");
  EXPECT_EQ(us->get_string("method"), "PUT");

  k8s::delete_options d;
  d.propagation_policy = "Foreground";
  d.precondition_resource_version = "42";
  auto del = c.remove_sync(kConfigMaps, "default", "cm1", d);
  ASSERT_TRUE(del) << del.error().to_string();
  EXPECT_EQ(del->get_string("method"), "DELETE");
  EXPECT_EQ(del->at("body")->get_string("propagationPolicy"), "Foreground");
  EXPECT_EQ(del->at_path({"body", "preconditions", "resourceVersion"})->as_string(), "42");

  auto raw = c.raw_sync("GET", kCm + "/cm1");
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->status, 200);
  EXPECT_NE(raw->body.find("\"cm1\""), std::string::npos);
}

TEST(Client, ListPagesWithContinueAndListAllFollowsThem) {
  fake_server s;
  http::loop loop;
  client c(loop, config_for(s));
  k8s::list_options o;
  o.limit = 2;
  o.label_selector = "app=web,tier in (a,b)";
  auto first = c.list_sync(kConfigMaps, "default", o);
  ASSERT_TRUE(first) << first.error().to_string();
  EXPECT_EQ(first->at("items")->as_array().size(), 2u);
  EXPECT_EQ(first->at_path({"metadata", "continue"})->as_string(), "2");
  auto req = s.last();
  EXPECT_EQ(req.get_param_value("labelSelector"), "app=web,tier in (a,b)");
  EXPECT_EQ(req.get_param_value("limit"), "2");

  o.continue_token = "2";
  auto raw = c.list_raw_sync(kConfigMaps, "default", o);
  ASSERT_TRUE(raw);
  EXPECT_NE(raw->find("\"cm2\""), std::string::npos);
  EXPECT_NE(raw->find("\"cm3\""), std::string::npos);

  o.continue_token.clear();
  auto all = c.list_all_sync(kConfigMaps, "default", o);
  ASSERT_TRUE(all) << all.error().to_string();
  const auto& items = all->at("items")->as_array();
  ASSERT_EQ(items.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(items[i].at_path({"metadata", "name"})->as_string(), "cm" + std::to_string(i));
  }
  EXPECT_EQ(all->at_path({"metadata", "resourceVersion"})->as_string(), "104");
  EXPECT_EQ(all->at_path({"metadata", "continue"}), nullptr);
}

TEST(Client, WatchStreamsChunksIncrementally) {
  fake_server s;
  http::loop loop;
  client c(loop, config_for(s));
  std::mutex mu;
  std::string received;
  flag first, finished;
  expected<void> outcome;
  k8s::watch_options o;
  o.resource_version = "100";
  o.timeout_seconds = 30;
  c.watch(
      kConfigMaps, "default", o,
      [&](std::string_view chunk) {
        std::lock_guard<std::mutex> g(mu);
        received += chunk;
        if (received.find("MODI") != std::string::npos) first.set();
      },
      [&](expected<void> r) {
        outcome = r;
        finished.set();
      });
  // The server sends the rest only once we have seen the first part: the client must have
  // delivered it before the response ended.
  ASSERT_TRUE(first.wait());
  {
    std::lock_guard<std::mutex> g(mu);
    EXPECT_EQ(received.find("MODIFIED"), std::string::npos);
  }
  s.next_chunk_.set();
  ASSERT_TRUE(finished.wait());
  EXPECT_TRUE(outcome.has_value()) << outcome.error().to_string();
  EXPECT_NE(received.find("{\"type\":\"MODIFIED\""), std::string::npos);
  auto req = s.last();
  EXPECT_EQ(req.get_param_value("watch"), "true");
  EXPECT_EQ(req.get_param_value("resourceVersion"), "100");
  EXPECT_EQ(req.get_param_value("allowWatchBookmarks"), "true");
  EXPECT_EQ(req.get_param_value("timeoutSeconds"), "30");
}

TEST(Client, WatchGoneIsAnError) {
  fake_server s;
  http::loop loop;
  client c(loop, config_for(s));
  // 410 before the stream starts: an error with the server's message, not a chunk.
  {
    std::promise<expected<void>> p;
    bool chunk = false;
    k8s::watch_options o;
    o.resource_version = "old";
    c.watch(
        kConfigMaps, "default", o, [&](std::string_view) { chunk = true; },
        [&](expected<void> r) { p.set_value(r); });
    auto r = p.get_future().get();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::gone);
    EXPECT_EQ(r.error().message, "too old resource version");
    EXPECT_FALSE(chunk);
  }
}

TEST(Client, WatchCancel) {
  fake_server s;
  http::loop loop;
  client c(loop, config_for(s));
  {
    std::promise<expected<void>> p;
    flag got_data;
    k8s::watch_options o;
    o.resource_version = "stall";
    auto id = c.watch(
        kConfigMaps, "default", o, [&](std::string_view) { got_data.set(); },
        [&](expected<void> r) { p.set_value(r); });
    ASSERT_TRUE(got_data.wait());
    c.cancel(id);
    auto r = p.get_future().get();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::cancelled);
  }
}

TEST(Client, WatchIdleTimeout) {
  fake_server s;
  http::loop loop;
  client c(loop, config_for(s));
  // No bytes for idle_timeout: the watch ends with a timeout.
  {
    std::promise<expected<void>> p;
    k8s::watch_options o;
    o.resource_version = "stall";
    o.idle_timeout = 300ms;
    const auto start = std::chrono::steady_clock::now();
    c.watch(
        kConfigMaps, "default", o, [](std::string_view) {},
        [&](expected<void> r) { p.set_value(r); });
    auto r = p.get_future().get();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::timeout) << r.error().to_string();
    EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  }
}

TEST(Client, RequestTimeout) {
  fake_server s;
  http::loop loop;
  k8s::client_options opts;
  opts.timeout = 200ms;
  client c(loop, config_for(s), opts);
  auto r = c.get_sync(kConfigMaps, "default", "slow");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::timeout);
}

TEST(Client, RateLimitKeepsOrderAndPace) {
  fake_server s;
  http::loop loop;
  k8s::client_options opts;
  opts.qps = 20;  // one request per 50 ms once the burst is spent
  opts.burst = 1;
  client c(loop, config_for(s), opts);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::future<expected<k8s::raw_response>>> futures;
  for (int i = 0; i < 6; ++i) {
    auto p = std::make_shared<std::promise<expected<k8s::raw_response>>>();
    futures.push_back(p->get_future());
    c.raw("GET", "/seq/" + std::to_string(i), {},
          [p](expected<k8s::raw_response> r) { p->set_value(std::move(r)); });
  }
  for (auto& f : futures)
    ASSERT_TRUE(f.get());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 240ms);  // 5 waits of 50 ms
  // Request i is released at start + i * 50 ms, never earlier. (Arrival order at the server
  // is not asserted: two connections may race; the limiter's FIFO order is unit-tested.)
  auto arrivals = s.seq();
  ASSERT_EQ(arrivals.size(), 6u);
  for (const auto& [i, at] : arrivals) {
    EXPECT_GE(at - start, i * 50ms - 2ms) << "request " << i << " went early";
  }
}

TEST(Client, SyncCallOnTheLoopThreadIsRefused) {
  fake_server s;
  http::loop loop;
  client c(loop, config_for(s));
  std::promise<expected<json::value>> p;
  loop.post([&] { p.set_value(c.get_sync(kConfigMaps, "default", "cm1")); });
  auto r = p.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::internal);
}

TEST(Client, ConnectionRefusedIsUnavailable) {
  const int port = unused_port();
  http::loop loop;
  k8s::connection_config cfg;
  cfg.server = "http://127.0.0.1:" + std::to_string(port);
  client c(loop, cfg);
  auto r = c.get_sync(kConfigMaps, "default", "x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::unavailable);
  EXPECT_TRUE(r.error().transient());
}

// --- TLS ---------------------------------------------------------------------------------

namespace {

std::string slurp(const std::string& path) {
  std::string out;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
      out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

// A server certificate for 127.0.0.1 and a client certificate, made by the openssl CLI
// (self-signed EC keys: fast), and an HTTPS server that requires the client certificate.
class tls_fixture {
 public:
  tls_fixture() {
    char tmpl[] = "/tmp/tidesync-tls-XXXXXX";
    dir_ = mkdtemp(tmpl);
    const std::string base =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 ";
    const std::string server_cmd = base + "-keyout " + dir_ + "/server.key -out " + dir_ +
                                   "/server.crt -subj /CN=127.0.0.1 "
                                   "-addext subjectAltName=IP:127.0.0.1 2>/dev/null";
    const std::string client_cmd = base + "-keyout " + dir_ + "/client.key -out " + dir_ +
                                   "/client.crt -subj /CN=tester 2>/dev/null";
    ok_ = std::system(server_cmd.c_str()) == 0 && std::system(client_cmd.c_str()) == 0;
    if (!ok_) return;
    svr_ = std::make_unique<httplib::SSLServer>(
        path("server.crt").c_str(), path("server.key").c_str(), path("client.crt").c_str());
    svr_->set_tcp_nodelay(true);
    svr_->Get(kCm + "/cm1", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"kind":"ConfigMap","metadata":{"name":"cm1"}})", "application/json");
    });
    port_ = svr_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { svr_->listen_after_bind(); });
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!svr_->is_running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
  }
  ~tls_fixture() {
    if (svr_) {
      svr_->stop();
      thread_.join();
    }
    std::string cmd = "rm -rf " + dir_;
    (void)std::system(cmd.c_str());
  }
  [[nodiscard]] bool ok() const { return ok_ && svr_ && svr_->is_valid(); }
  [[nodiscard]] std::string path(const std::string& name) const { return dir_ + "/" + name; }
  [[nodiscard]] std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }

 private:
  std::string dir_;
  bool ok_ = false;
  std::unique_ptr<httplib::SSLServer> svr_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace

TEST(ClientTls, VerifiesTheServerAndPresentsAClientCertificate) {
  if (std::system("openssl version >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "the openssl CLI is not installed";
  }
  tls_fixture f;
  ASSERT_TRUE(f.ok()) << "could not create certificates with the openssl CLI";
  http::loop loop;
  auto with_tls = [&](http::tls_options tls) {
    k8s::connection_config cfg;
    cfg.server = f.url();
    cfg.tls = std::make_shared<http::tls_options>(std::move(tls));
    return cfg;
  };

  // CA and client certificate as PEM data (certificate-authority-data, client-*-data).
  http::tls_options pem;
  pem.ca_pem = slurp(f.path("server.crt"));
  pem.cert_pem = slurp(f.path("client.crt"));
  pem.key_pem = slurp(f.path("client.key"));
  {
    client c(loop, with_tls(pem));
    auto r = c.get_sync(kConfigMaps, "default", "cm1");
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->get_string("kind"), "ConfigMap");
  }
  // The same as files.
  http::tls_options files;
  files.ca_file = f.path("server.crt");
  files.cert_file = f.path("client.crt");
  files.key_file = f.path("client.key");
  {
    client c(loop, with_tls(files));
    auto r = c.get_sync(kConfigMaps, "default", "cm1");
    ASSERT_TRUE(r) << r.error().to_string();
  }
  // Unknown server CA: refused by the client.
  http::tls_options no_ca = pem;
  no_ca.ca_pem.clear();
  {
    client c(loop, with_tls(no_ca));
    auto r = c.get_sync(kConfigMaps, "default", "cm1");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::unavailable) << r.error().to_string();
    EXPECT_NE(r.error().message.find("certificate"), std::string::npos) << r.error().message;
  }
  // insecure-skip-tls-verify accepts it.
  no_ca.insecure_skip_verify = true;
  {
    client c(loop, with_tls(no_ca));
    auto r = c.get_sync(kConfigMaps, "default", "cm1");
    ASSERT_TRUE(r) << r.error().to_string();
  }
  // No client certificate: the server refuses the handshake.
  http::tls_options no_cert = pem;
  no_cert.cert_pem.clear();
  no_cert.key_pem.clear();
  {
    client c(loop, with_tls(no_cert));
    auto r = c.get_sync(kConfigMaps, "default", "cm1");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::unavailable) << r.error().to_string();
  }
}

// --- HTTP/2 ------------------------------------------------------------------------------

namespace {

// Node's http2 module as the peer: an HTTPS server offering h2 (and HTTP/1.1), counting its
// sessions (connections). Started by PID, stopped by that PID.
class node_h2_server {
 public:
  explicit node_h2_server(const std::string& dir) {
    const std::string script = dir + "/h2.js";
    if (FILE* f = std::fopen(script.c_str(), "w")) {
      std::fputs(R"JS(
const http2 = require('http2');
const fs = require('fs');
const dir = process.argv[2];
let sessions = 0;
const server = http2.createSecureServer({
  key: fs.readFileSync(dir + '/server.key'), cert: fs.readFileSync(dir + '/server.crt'),
  allowHTTP1: true});
server.on('session', () => { sessions++; });
server.on('request', (req, res) => {
  res.writeHead(200, {'content-type': 'application/json'});
  if (req.url.startsWith('/watch')) { res.write('{"type":"ADDED"}\n'); return; }
  res.end(JSON.stringify({httpVersion: req.httpVersion, sessions: sessions}));
});
server.listen(0, '127.0.0.1', () => { console.log(server.address().port); });
)JS",
                 f);
      std::fclose(f);
    }
    int out[2];
    if (::pipe(out) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      ::execlp("node", "node", script.c_str(), dir.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    // Read the port line, waiting at most 10 s.
    std::string line;
    pollfd pfd{out[0], POLLIN, 0};
    while (line.find('\n') == std::string::npos && ::poll(&pfd, 1, 10'000) > 0) {
      char buf[64];
      ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    ::close(out[0]);
    if (line.find('\n') != std::string::npos) port_ = std::atoi(line.c_str());
  }
  ~node_h2_server() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  [[nodiscard]] int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace

TEST(ClientHttp2, NegotiatesH2AndMultiplexesStreamsOverOneConnection) {
  if (std::system("node --version >/dev/null 2>&1") != 0 ||
      std::system("openssl version >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "node or the openssl CLI is not installed";
  }
  tls_fixture certs;  // reuses its certificates; its own HTTPS server is not used here
  ASSERT_TRUE(certs.ok());
  const std::string dir = certs.path("");
  node_h2_server node(dir);
  ASSERT_GT(node.port(), 0) << "node http2 server did not start";

  http::loop loop;
  k8s::connection_config cfg;
  cfg.server = "https://127.0.0.1:" + std::to_string(node.port());
  auto tls = std::make_shared<http::tls_options>();
  tls->ca_pem = slurp(certs.path("server.crt"));
  cfg.tls = tls;
  client c(loop, cfg);

  // Two long-lived streams, like two watches.
  flag first, second;
  std::promise<expected<http::response>> done1, done2;
  auto open = [&](flag& got, std::promise<expected<http::response>>& done) {
    http::request r;
    r.url = cfg.server + "/watch";
    r.tls = tls;
    r.on_data = [&got](std::string_view) { got.set(); };
    r.on_done = [&done](expected<http::response> res) { done.set_value(std::move(res)); };
    return loop.submit(std::move(r));
  };
  auto w1 = open(first, done1);
  ASSERT_TRUE(first.wait());
  auto w2 = open(second, done2);
  ASSERT_TRUE(second.wait());

  // While both streams are open, a plain request: HTTP/2, and still one session.
  auto info = c.raw_sync("GET", "/info");
  ASSERT_TRUE(info) << info.error().to_string();
  auto doc = json::parse(info->body);
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->get_string("httpVersion"), "2.0");
  EXPECT_EQ(doc->get_int("sessions"), 1);

  loop.cancel(w1);
  loop.cancel(w2);
  auto r1 = done1.get_future().get();
  auto r2 = done2.get_future().get();
  ASSERT_FALSE(r1);
  EXPECT_EQ(r1.error().code, errc::cancelled);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, errc::cancelled);
}
