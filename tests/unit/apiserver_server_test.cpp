// The embedded API server over real HTTP on 127.0.0.1, with httplib's client.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "runtime/apiserver/server.hpp"
#include "runtime/apiserver/store.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::apiserver {
namespace {

using namespace std::chrono_literals;

json::value body_of(const httplib::Result& r) {
  EXPECT_TRUE(r) << "request failed: " << httplib::to_string(r.error());
  if (!r) return {};
  auto v = json::parse(r->body);
  EXPECT_TRUE(v.has_value()) << r->body;
  return v ? *v : json::value{};
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 3s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);  // polling a condition, not synchronising by time
  }
  return pred();
}

constexpr const char* kCrd = R"({
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "gadgets.test.tidesync.io"},
  "spec": {"group": "test.tidesync.io", "scope": "Namespaced",
    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
    "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
      "additionalPrinterColumns": [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}]}]}})";

class server_test : public ::testing::Test {
 protected:
  void SetUp() override {
    store_options so;
    so.bookmark_interval = 100ms;
    st = std::make_unique<store>(so);
    srv = std::make_unique<server>(*st);
    auto p = srv->start();
    ASSERT_TRUE(p.has_value()) << p.error().message;
    port = *p;
    cli = std::make_unique<httplib::Client>("127.0.0.1", port);
    cli->set_read_timeout(5, 0);
  }
  void TearDown() override {
    cli.reset();
    srv->stop();
  }
  httplib::Result post(const std::string& path, const std::string& body,
                       const std::string& ct = "application/json") {
    return cli->Post(path.c_str(), body, ct.c_str());
  }

  std::unique_ptr<store> st;
  std::unique_ptr<server> srv;
  std::unique_ptr<httplib::Client> cli;
  int port = 0;
};

TEST_F(server_test, discovery_and_health) {
  auto health = cli->Get("/readyz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok");
  auto api = body_of(cli->Get("/api"));
  EXPECT_EQ(api.get_string("kind"), "APIVersions");
  auto v1 = body_of(cli->Get("/api/v1"));
  EXPECT_EQ(v1.get_string("kind"), "APIResourceList");
  bool has_cm = false, has_ns_status = false;
  for (const auto& r : v1.at("resources")->as_array()) {
    has_cm |= r.get_string("name") == "configmaps" && r.get_bool("namespaced") &&
              r.get_string("kind") == "ConfigMap";
    has_ns_status |= r.get_string("name") == "namespaces/status";
  }
  EXPECT_TRUE(has_cm);
  EXPECT_TRUE(has_ns_status);
  auto groups = body_of(cli->Get("/apis"));
  EXPECT_EQ(groups.get_string("kind"), "APIGroupList");
  ASSERT_EQ(post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", kCrd)->status, 201);
  auto gv = body_of(cli->Get("/apis/test.tidesync.io/v1"));
  ASSERT_EQ(gv.at("resources")->as_array().size(), 2u);  // gadgets, gadgets/status
  EXPECT_EQ(gv.at("resources")->as_array()[0].at("shortNames")->as_array()[0].as_string(), "gd");
  auto version = body_of(cli->Get("/version"));
  EXPECT_EQ(version.get_string("major"), "1");
  auto openapi = body_of(cli->Get("/openapi/v3"));
  EXPECT_NE(openapi.at_path({"paths", "apis/test.tidesync.io/v1"}), nullptr);
}

TEST_F(server_test, crud_with_status_errors) {
  auto created =
      post("/api/v1/namespaces/default/configmaps",
           R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"}})");
  ASSERT_TRUE(created);
  EXPECT_EQ(created->status, 201);
  auto obj = body_of(created);
  std::string rv(obj.at("metadata")->get_string("resourceVersion"));
  auto dup = post("/api/v1/namespaces/default/configmaps", R"({"metadata":{"name":"a"}})");
  EXPECT_EQ(dup->status, 409);
  EXPECT_EQ(body_of(dup).get_string("reason"), "AlreadyExists");

  auto got = body_of(cli->Get("/api/v1/namespaces/default/configmaps/a"));
  EXPECT_EQ(got.at_path({"data", "k"})->as_string(), "v");
  auto list = body_of(cli->Get("/api/v1/configmaps"));
  EXPECT_EQ(list.get_string("kind"), "ConfigMapList");
  EXPECT_FALSE(list.at("metadata")->get_string("resourceVersion").empty());
  EXPECT_EQ(list.at("items")->as_array().size(), 1u);

  auto patched = cli->Patch("/api/v1/namespaces/default/configmaps/a", R"({"data":{"k":"w"}})",
                            "application/merge-patch+json");
  ASSERT_EQ(patched->status, 200);
  std::string stale =
      R"({"metadata":{"name":"a","resourceVersion":")" + rv + R"("},"data":{"k":"x"}})";
  auto conflict = cli->Put("/api/v1/namespaces/default/configmaps/a", stale, "application/json");
  EXPECT_EQ(conflict->status, 409);
  auto status = body_of(conflict);
  EXPECT_EQ(status.get_string("kind"), "Status");
  EXPECT_EQ(status.get_string("reason"), "Conflict");
  EXPECT_EQ(status.get_int("code"), 409);

  auto missing = cli->Get("/api/v1/namespaces/default/configmaps/nope");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(body_of(missing).get_string("message"), "configmaps \"nope\" not found");

  auto del = cli->Delete("/api/v1/namespaces/default/configmaps/a",
                         R"({"propagationPolicy":"Background"})", "application/json");
  EXPECT_EQ(del->status, 200);
  EXPECT_EQ(cli->Get("/api/v1/namespaces/default/configmaps/a")->status, 404);
}

TEST_F(server_test, bad_input_gets_clear_4xx_and_server_stays_up) {
  auto malformed = post("/api/v1/namespaces/default/configmaps", R"({"metadata": {"name": )");
  ASSERT_TRUE(malformed);
  EXPECT_EQ(malformed->status, 400);
  EXPECT_EQ(body_of(malformed).get_string("reason"), "BadRequest");

  auto unknown = cli->Get("/apis/nothing.example.com/v1/namespaces/default/things");
  EXPECT_EQ(unknown->status, 404);
  EXPECT_NE(body_of(unknown).get_string("message").find("things"), std::string::npos);

  auto wrong_type = post("/api/v1/namespaces/default/configmaps", "name: a", "application/yaml");
  EXPECT_EQ(wrong_type->status, 415);
  EXPECT_EQ(body_of(wrong_type).get_string("reason"), "UnsupportedMediaType");
  auto apply_patch =
      cli->Patch("/api/v1/namespaces/default/configmaps/a", "{}", "application/apply-patch+yaml");
  EXPECT_EQ(apply_patch->status, 415);

  auto not_object = post("/api/v1/namespaces/default/configmaps", "[1,2]");
  EXPECT_EQ(not_object->status, 400);
  auto bad_name = post("/api/v1/namespaces/default/configmaps", R"({"metadata":{"name":"UPPER"}})");
  EXPECT_EQ(bad_name->status, 422);
  auto method = cli->Put("/api/v1/namespaces/default/configmaps", "{}", "application/json");
  EXPECT_EQ(method->status, 405);
  auto bad_selector = cli->Get("/api/v1/configmaps?labelSelector=a%20in%20(");
  EXPECT_EQ(bad_selector->status, 400);

  auto health = cli->Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(server_test, table_output_uses_printer_columns) {
  ASSERT_EQ(post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", kCrd)->status, 201);
  ASSERT_EQ(
      post(
          "/apis/test.tidesync.io/v1/namespaces/default/gadgets",
          R"({"apiVersion":"test.tidesync.io/v1","kind":"Gadget","metadata":{"name":"g"},"spec":{"size":3}})")
          ->status,
      201);
  auto st_patch = cli->Patch(
      "/apis/test.tidesync.io/v1/namespaces/default/gadgets/g/status",
      R"({"status":{"conditions":[{"type":"Other","status":"False"},{"type":"Ready","status":"True"}]}})",
      "application/merge-patch+json");
  ASSERT_EQ(st_patch->status, 200);
  httplib::Headers h{{"Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}};
  auto table = body_of(cli->Get("/apis/test.tidesync.io/v1/namespaces/default/gadgets", h));
  EXPECT_EQ(table.get_string("kind"), "Table");
  const auto& cols = table.at("columnDefinitions")->as_array();
  ASSERT_EQ(cols.size(), 3u);
  EXPECT_EQ(cols[1].get_string("name"), "Size");
  const auto& cells = table.at("rows")->as_array().at(0).at("cells")->as_array();
  EXPECT_EQ(cells[0].as_string(), "g");
  EXPECT_EQ(cells[1].as_int(), 3);
  EXPECT_EQ(cells[2].as_string(), "True");
  auto builtin = body_of(cli->Get("/api/v1/namespaces", h));
  EXPECT_EQ(builtin.at("columnDefinitions")->as_array()[1].get_string("name"), "Age");
}

// Streams a watch on a background thread and hands the lines over.
struct watch_reader {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> lines;
  std::string partial;
  std::atomic<bool> stop{false};
  std::atomic<bool> done{false};
  std::thread thread;

  watch_reader(int port, std::string path) {
    thread = std::thread([this, port, path] {
      httplib::Client c("127.0.0.1", port);
      c.set_read_timeout(10, 0);
      c.Get(path.c_str(), [this](const char* data, size_t n) {
        std::lock_guard lock(mu);
        partial.append(data, n);
        size_t nl;
        while ((nl = partial.find('\n')) != std::string::npos) {
          lines.push_back(partial.substr(0, nl));
          partial.erase(0, nl + 1);
        }
        cv.notify_all();
        return !stop.load();
      });
      done = true;
      cv.notify_all();
    });
  }
  ~watch_reader() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
  bool wait_for(size_t n, std::chrono::milliseconds limit = 3s) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, limit, [&] { return lines.size() >= n || done; }) && lines.size() >= n;
  }
};

TEST_F(server_test, watch_streams_events_and_frees_the_thread_when_the_client_leaves) {
  auto created =
      body_of(post("/api/v1/namespaces/default/configmaps", R"({"metadata":{"name":"a"}})"));
  std::string rv(created.at("metadata")->get_string("resourceVersion"));
  {
    watch_reader w(port, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=" + rv);
    ASSERT_TRUE(eventually([&] { return st->open_watch_count() == 1; }));
    ASSERT_EQ(post("/api/v1/namespaces/default/configmaps", R"({"metadata":{"name":"b"}})")->status,
              201);
    ASSERT_TRUE(w.wait_for(1));
    auto ev = json::parse(w.lines[0]);
    ASSERT_TRUE(ev.has_value());
    EXPECT_EQ(ev->get_string("type"), "ADDED");
    EXPECT_EQ(ev->at_path({"object", "metadata"})->get_string("name"), "b");
    w.stop = true;
    ASSERT_EQ(post("/api/v1/namespaces/default/configmaps", R"({"metadata":{"name":"c"}})")->status,
              201);
  }
  EXPECT_TRUE(eventually([&] { return st->open_watch_count() == 0; }));
}

TEST_F(server_test, idle_watch_notices_a_closed_connection) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string req =
      "GET /api/v1/namespaces/default/configmaps?watch=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  ASSERT_TRUE(eventually([&] { return st->open_watch_count() == 1; }));
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return st->open_watch_count() == 0; }))
      << "a watch whose client left must not hold its thread";
}

TEST_F(server_test, compact_hook_makes_old_watches_expire_and_close_hook_ends_streams) {
  auto created =
      body_of(post("/api/v1/namespaces/default/configmaps", R"({"metadata":{"name":"a"}})"));
  std::string rv(created.at("metadata")->get_string("resourceVersion"));
  ASSERT_EQ(post("/api/v1/namespaces/default/configmaps", R"({"metadata":{"name":"b"}})")->status,
            201);
  ASSERT_EQ(post("/debug/tidesync/compact", "")->status, 200);
  {
    watch_reader w(port, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=" + rv);
    ASSERT_TRUE(w.wait_for(1));
    auto ev = json::parse(w.lines[0]);
    ASSERT_TRUE(ev.has_value());
    EXPECT_EQ(ev->get_string("type"), "ERROR");
    EXPECT_EQ(ev->at("object")->get_int("code"), 410);
    EXPECT_TRUE(eventually([&] { return w.done.load(); }))
        << "the server ends the stream after the error";
  }
  {
    watch_reader w(port, "/api/v1/watch/namespaces/default/configmaps?allowWatchBookmarks=true");
    ASSERT_TRUE(w.wait_for(3));  // two ADDED, then a bookmark
    EXPECT_NE(w.lines[2].find("BOOKMARK"), std::string::npos) << w.lines[2];
    ASSERT_EQ(post("/debug/tidesync/close-watches", "")->status, 200);
    EXPECT_TRUE(eventually([&] { return w.done.load(); }));
  }
  EXPECT_TRUE(eventually([&] { return st->open_watch_count() == 0; }));
}

TEST_F(server_test, paged_list_over_http) {
  for (int i = 0; i < 7; ++i)
    ASSERT_EQ(post("/api/v1/namespaces/default/configmaps",
                   R"({"metadata":{"name":"p)" + std::to_string(i) + R"("}})")
                  ->status,
              201);
  std::string path = "/api/v1/namespaces/default/configmaps?limit=3";
  size_t total = 0;
  for (int page = 0; page < 5; ++page) {
    auto l = body_of(cli->Get(path.c_str()));
    total += l.at("items")->as_array().size();
    std::string cont(l.at("metadata")->get_string("continue"));
    if (cont.empty()) break;
    path = "/api/v1/namespaces/default/configmaps?limit=3&continue=" + cont;
  }
  EXPECT_EQ(total, 7u);
}

}  // namespace
}  // namespace tidesync::apiserver
