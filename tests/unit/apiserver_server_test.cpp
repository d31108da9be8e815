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

// ---- server-side dry run (`dryRun=All`) ------------------------------------------------------
// Each test opens a watch first, does its dry runs, checks the global resourceVersion did not
// move, then makes one real write: the first event the watch delivers must be that one.

constexpr const char* kCms = "/api/v1/namespaces/default/configmaps";

std::string rv_in(const json::value& obj) {
  const auto* m = obj.at("metadata");
  return m != nullptr ? std::string(m->get_string("resourceVersion")) : std::string();
}

// The first event `w` received (null if none came within 3 s). Then ends the stream, so the
// reader's thread returns at once instead of at its read timeout.
json::value first_event(watch_reader& w, store& st) {
  bool got = w.wait_for(1);
  st.close_watches();
  if (!got) return {};
  std::lock_guard lock(w.mu);
  auto ev = json::parse(w.lines[0]);
  return ev ? *ev : json::value{};
}

TEST_F(server_test, dry_run_create_answers_like_a_create_and_stores_nothing) {
  ASSERT_EQ(post(kCms, R"({"metadata":{"name":"taken"}})")->status, 201);
  const uint64_t rv = st->current_resource_version();
  watch_reader w(port, std::string(kCms) + "?watch=true&resourceVersion=" + std::to_string(rv));
  ASSERT_TRUE(eventually([&] { return st->open_watch_count() == 1; }));

  auto dry =
      post(std::string(kCms) + "?dryRun=All",
           R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"}})");
  ASSERT_TRUE(dry);
  EXPECT_EQ(dry->status, 201) << dry->body;
  auto obj = body_of(dry);
  const auto* m = obj.at("metadata");
  ASSERT_NE(m, nullptr) << dry->body;
  EXPECT_EQ(m->get_string("name"), "a");
  EXPECT_EQ(m->get_string("namespace"), "default");
  EXPECT_FALSE(m->get_string("uid").empty()) << "the server fills in uid on a dry run too";
  EXPECT_FALSE(m->get_string("creationTimestamp").empty());
  EXPECT_EQ(m->at("resourceVersion"), nullptr) << "as kube-apiserver: set only when stored";
  EXPECT_EQ(obj.at_path({"data", "k"})->as_string(), "v");
  EXPECT_EQ(cli->Get(std::string(kCms) + "/a")->status, 404);

  // generateName is resolved; the name stays free.
  auto gen =
      body_of(post(std::string(kCms) + "?dryRun=All", R"({"metadata":{"generateName":"gen-"}})"));
  std::string generated(gen.at("metadata")->get_string("name"));
  EXPECT_EQ(generated.rfind("gen-", 0), 0u) << generated;
  EXPECT_EQ(generated.size(), 9u) << generated;
  EXPECT_EQ(cli->Get(std::string(kCms) + "/" + generated)->status, 404);

  // The errors of a real create.
  auto dup = post(std::string(kCms) + "?dryRun=All", R"({"metadata":{"name":"taken"}})");
  EXPECT_EQ(dup->status, 409);
  EXPECT_EQ(body_of(dup).get_string("reason"), "AlreadyExists");
  auto bad_name = post(std::string(kCms) + "?dryRun=All", R"({"metadata":{"name":"UPPER"}})");
  EXPECT_EQ(bad_name->status, 422);
  auto malformed = post(std::string(kCms) + "?dryRun=All", R"({"metadata":)");
  EXPECT_EQ(malformed->status, 400);

  // Defaulting: a Job gets its defaults and generated selector.
  auto job = post("/apis/batch/v1/namespaces/default/jobs?dryRun=All",
                  R"({"metadata":{"name":"j"},"spec":{"template":{"spec":{"restartPolicy":"Never",
                      "containers":[{"name":"c","image":"x"}]}}}})");
  ASSERT_EQ(job->status, 201) << job->body;
  auto job_obj = body_of(job);
  EXPECT_EQ(job_obj.at_path({"spec", "backoffLimit"})->as_int(), 6);
  EXPECT_EQ(job_obj.at_path({"spec", "selector", "matchLabels"})->get_string("controller-uid"),
            job_obj.at("metadata")->get_string("uid"));
  EXPECT_EQ(cli->Get("/apis/batch/v1/namespaces/default/jobs/j")->status, 404);

  // A CRD is answered established, and its type is not served.
  auto crd = post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions?dryRun=All", kCrd);
  ASSERT_EQ(crd->status, 201) << crd->body;
  EXPECT_NE(body_of(crd).at_path({"status", "conditions"}), nullptr);
  EXPECT_EQ(
      cli->Get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.test.tidesync.io")
          ->status,
      404);
  EXPECT_EQ(cli->Get("/apis/test.tidesync.io/v1")->status, 404);

  // A namespace: answered Active; nothing can be created in it (as on a real server, where
  // `kubectl apply --dry-run=server` of a new namespace and its contents fails the same way).
  auto ns = post("/api/v1/namespaces?dryRun=All", R"({"metadata":{"name":"fresh"}})");
  ASSERT_EQ(ns->status, 201) << ns->body;
  EXPECT_EQ(body_of(ns).at_path({"status", "phase"})->as_string(), "Active");
  auto inside =
      post("/api/v1/namespaces/fresh/configmaps?dryRun=All", R"({"metadata":{"name":"a"}})");
  EXPECT_EQ(inside->status, 404);
  EXPECT_EQ(body_of(inside).get_string("message"), "namespaces \"fresh\" not found");

  EXPECT_EQ(st->current_resource_version(), rv);
  ASSERT_EQ(post(kCms, R"({"metadata":{"name":"real"}})")->status, 201);
  auto ev = first_event(w, *st);
  EXPECT_EQ(ev.get_string("type"), "ADDED");
  EXPECT_EQ(ev.at_path({"object", "metadata"})->get_string("name"), "real")
      << "the watch saw a dry-run create";
}

TEST_F(server_test, dry_run_update_and_patch_answer_the_change_and_store_nothing) {
  auto a = body_of(post(kCms, R"({"metadata":{"name":"a"},"data":{"k":"v"}})"));
  const std::string rv0 = rv_in(a);
  ASSERT_EQ(post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", kCrd)->status, 201);
  const std::string gadget = "/apis/test.tidesync.io/v1/namespaces/default/gadgets/g";
  ASSERT_EQ(
      post(
          "/apis/test.tidesync.io/v1/namespaces/default/gadgets",
          R"({"apiVersion":"test.tidesync.io/v1","kind":"Gadget","metadata":{"name":"g"},"spec":{"size":3}})")
          ->status,
      201);
  const uint64_t rv = st->current_resource_version();
  watch_reader w(port, std::string(kCms) + "?watch=true&resourceVersion=" + std::to_string(rv));
  ASSERT_TRUE(eventually([&] { return st->open_watch_count() == 1; }));
  const std::string path = std::string(kCms) + "/a?dryRun=All";

  auto put = cli->Put(
      path, R"({"metadata":{"name":"a","resourceVersion":")" + rv0 + R"("},"data":{"k":"put"}})",
      "application/json");
  ASSERT_EQ(put->status, 200) << put->body;
  EXPECT_EQ(body_of(put).at_path({"data", "k"})->as_string(), "put");
  EXPECT_EQ(rv_in(body_of(put)), rv0) << "a dry-run update answers the current resourceVersion";
  auto stale = cli->Put(path, R"({"metadata":{"name":"a","resourceVersion":"1"},"data":{}})",
                        "application/json");
  EXPECT_EQ(stale->status, 409);
  EXPECT_EQ(body_of(stale).get_string("reason"), "Conflict");

  struct patch_case {
    const char* type;
    const char* body;
    const char* want;
  };
  for (const auto& p :
       {patch_case{"application/merge-patch+json", R"({"data":{"k":"merge"}})", "merge"},
        patch_case{"application/strategic-merge-patch+json", R"({"data":{"k":"strategic"}})",
                   "strategic"},
        patch_case{"application/json-patch+json",
                   R"([{"op":"replace","path":"/data/k","value":"json"}])", "json"}}) {
    auto r = cli->Patch(path, p.body, p.type);
    ASSERT_EQ(r->status, 200) << p.type << ": " << r->body;
    EXPECT_EQ(body_of(r).at_path({"data", "k"})->as_string(), p.want) << p.type;
    EXPECT_EQ(rv_in(body_of(r)), rv0) << p.type;
  }
  auto failed_test = cli->Patch(path, R"([{"op":"test","path":"/data/k","value":"nope"}])",
                                "application/json-patch+json");
  EXPECT_EQ(failed_test->status, 422);

  // A custom resource: the answer has the bumped generation, the store keeps the old one; the
  // /status subresource answers the new status, PUT and PATCH alike.
  auto spec = cli->Put(
      gadget + "?dryRun=All",
      R"({"apiVersion":"test.tidesync.io/v1","kind":"Gadget","metadata":{"name":"g"},"spec":{"size":4}})",
      "application/json");
  ASSERT_EQ(spec->status, 200) << spec->body;
  EXPECT_EQ(body_of(spec).at("metadata")->get_int("generation"), 2);
  auto status_patch = cli->Patch(gadget + "/status?dryRun=All", R"({"status":{"phase":"Ready"}})",
                                 "application/merge-patch+json");
  ASSERT_EQ(status_patch->status, 200) << status_patch->body;
  EXPECT_EQ(body_of(status_patch).at_path({"status", "phase"})->as_string(), "Ready");
  auto status_put = cli->Put(
      gadget + "/status?dryRun=All",
      R"({"apiVersion":"test.tidesync.io/v1","kind":"Gadget","metadata":{"name":"g"},"status":{"phase":"Put"}})",
      "application/json");
  ASSERT_EQ(status_put->status, 200) << status_put->body;
  EXPECT_EQ(body_of(status_put).at_path({"status", "phase"})->as_string(), "Put");

  auto g = body_of(cli->Get(gadget));
  EXPECT_EQ(g.at_path({"spec", "size"})->as_int(), 3);
  EXPECT_EQ(g.at("metadata")->get_int("generation"), 1);
  EXPECT_EQ(g.at("status"), nullptr);
  auto got = body_of(cli->Get(std::string(kCms) + "/a"));
  EXPECT_EQ(got.at_path({"data", "k"})->as_string(), "v");
  EXPECT_EQ(rv_in(got), rv0);
  EXPECT_EQ(st->current_resource_version(), rv);

  ASSERT_EQ(cli->Patch(std::string(kCms) + "/a", R"({"data":{"k":"real"}})",
                       "application/merge-patch+json")
                ->status,
            200);
  auto ev = first_event(w, *st);
  EXPECT_EQ(ev.get_string("type"), "MODIFIED");
  EXPECT_EQ(ev.at_path({"object", "data", "k"})->as_string(), "real")
      << "the watch saw a dry-run update";
}

TEST_F(server_test, dry_run_delete_answers_like_a_delete_and_keeps_everything) {
  auto plain = body_of(post(kCms, R"({"metadata":{"name":"plain"}})"));
  ASSERT_EQ(
      post(kCms, R"({"metadata":{"name":"held","finalizers":["test.tidesync.io/hold"]}})")->status,
      201);
  auto owner = body_of(post(kCms, R"({"metadata":{"name":"owner"}})"));
  ASSERT_EQ(post(kCms, R"({"metadata":{"name":"dependent","ownerReferences":[{"apiVersion":"v1",
                 "kind":"ConfigMap","name":"owner","uid":")" +
                           std::string(owner.at("metadata")->get_string("uid")) + R"("}]}})")
                ->status,
            201);
  ASSERT_EQ(post("/api/v1/namespaces", R"({"metadata":{"name":"doomed"}})")->status, 201);
  ASSERT_EQ(
      post("/api/v1/namespaces/doomed/configmaps", R"({"metadata":{"name":"inside"}})")->status,
      201);
  const uint64_t rv = st->current_resource_version();
  watch_reader w(port, "/api/v1/configmaps?watch=true&resourceVersion=" + std::to_string(rv));
  ASSERT_TRUE(eventually([&] { return st->open_watch_count() == 1; }));
  const std::string cm = std::string(kCms) + "/";

  // Gone: the Success Status a real delete answers, with the object's uid.
  auto d = cli->Delete(cm + "plain?dryRun=All");
  ASSERT_EQ(d->status, 200) << d->body;
  auto status = body_of(d);
  EXPECT_EQ(status.get_string("status"), "Success");
  EXPECT_EQ(status.at("details")->get_string("uid"), plain.at("metadata")->get_string("uid"));
  EXPECT_EQ(cli->Get(cm + "plain")->status, 200);
  // DeleteOptions in the body, as `kubectl delete --dry-run=server` sends them.
  auto body_form = cli->Delete(
      cm + "plain", R"({"propagationPolicy":"Background","dryRun":["All"]})", "application/json");
  ASSERT_EQ(body_form->status, 200) << body_form->body;
  EXPECT_EQ(cli->Get(cm + "plain")->status, 200);
  // Finalizers: answered with a deletionTimestamp, stored without.
  auto held = cli->Delete(cm + "held?dryRun=All");
  ASSERT_EQ(held->status, 200);
  EXPECT_NE(body_of(held).at_path({"metadata", "deletionTimestamp"}), nullptr) << held->body;
  EXPECT_EQ(body_of(cli->Get(cm + "held")).at_path({"metadata", "deletionTimestamp"}), nullptr);
  // An owner: its dependent stays, with its reference (cascade and orphaning alike).
  ASSERT_EQ(cli->Delete(cm + "owner?dryRun=All")->status, 200);
  ASSERT_EQ(cli->Delete(cm + "owner", R"({"propagationPolicy":"Orphan","dryRun":["All"]})",
                        "application/json")
                ->status,
            200);
  EXPECT_NE(body_of(cli->Get(cm + "dependent")).at_path({"metadata", "ownerReferences"}), nullptr);
  // The errors of a real delete.
  auto pre =
      cli->Delete(cm + "plain", R"({"preconditions":{"resourceVersion":"1"},"dryRun":["All"]})",
                  "application/json");
  EXPECT_EQ(pre->status, 409);
  EXPECT_EQ(cli->Delete(cm + "nope?dryRun=All")->status, 404);
  // A namespace: answered Terminating; it stays Active with its contents.
  auto ns = cli->Delete("/api/v1/namespaces/doomed?dryRun=All");
  ASSERT_EQ(ns->status, 200) << ns->body;
  EXPECT_EQ(body_of(ns).at_path({"status", "phase"})->as_string(), "Terminating");
  EXPECT_EQ(
      body_of(cli->Get("/api/v1/namespaces/doomed")).at_path({"status", "phase"})->as_string(),
      "Active");
  EXPECT_EQ(cli->Get("/api/v1/namespaces/doomed/configmaps/inside")->status, 200);
  // A collection: the list of what would go; all of it stays.
  auto coll = cli->Delete(std::string(kCms) + "?dryRun=All");
  ASSERT_EQ(coll->status, 200) << coll->body;
  EXPECT_EQ(body_of(coll).at("items")->as_array().size(), 4u);
  EXPECT_EQ(body_of(cli->Get(kCms)).at("items")->as_array().size(), 4u);
  EXPECT_EQ(st->current_resource_version(), rv);

  // As kube-apiserver: with a DeleteOptions body the query's dryRun is not read, so this
  // deletes for real (a client that means a dry run must say so in the body).
  ASSERT_EQ(cli->Delete(cm + "plain?dryRun=All", R"({"propagationPolicy":"Background"})",
                        "application/json")
                ->status,
            200);
  EXPECT_EQ(cli->Get(cm + "plain")->status, 404);
  auto ev = first_event(w, *st);
  EXPECT_EQ(ev.get_string("type"), "DELETED");
  EXPECT_EQ(ev.at_path({"object", "metadata"})->get_string("name"), "plain")
      << "the watch saw a dry-run delete";
}

// kube-apiserver v1.20 (and later) answers 422 Invalid on the request's options kind, not 400:
// checked against the real server; see docs/conformance.md.
TEST_F(server_test, a_dry_run_value_other_than_All_is_refused_naming_the_only_accepted_one) {
  ASSERT_EQ(post(kCms, R"({"metadata":{"name":"a"}})")->status, 201);
  const uint64_t rv = st->current_resource_version();
  const std::string cm = std::string(kCms) + "/a";
  struct bad_case {
    std::string what;
    httplib::Result r;
    const char* options_kind;
    const char* values;
  };
  std::vector<bad_case> cases;
  cases.push_back({"create",
                   post(std::string(kCms) + "?dryRun=foo", R"({"metadata":{"name":"b"}})"),
                   "CreateOptions", R"("foo")"});
  cases.push_back({"create, empty value",
                   post(std::string(kCms) + "?dryRun=", R"({"metadata":{"name":"b"}})"),
                   "CreateOptions", R"("")"});
  cases.push_back(
      {"create, All and another",
       post(std::string(kCms) + "?dryRun=All&dryRun=foo", R"({"metadata":{"name":"b"}})"),
       "CreateOptions", R"("All", "foo")"});
  cases.push_back({"update",
                   cli->Put(cm + "?dryRun=all", R"({"metadata":{"name":"a"},"data":{"k":"x"}})",
                            "application/json"),
                   "UpdateOptions", R"("all")"});
  cases.push_back(
      {"patch",
       cli->Patch(cm + "?dryRun=true", R"({"data":{"k":"x"}})", "application/merge-patch+json"),
       "PatchOptions", R"("true")"});
  cases.push_back({"delete", cli->Delete(cm + "?dryRun=foo"), "DeleteOptions", R"("foo")"});
  cases.push_back({"delete, body", cli->Delete(cm, R"({"dryRun":["foo"]})", "application/json"),
                   "DeleteOptions", R"("foo")"});
  cases.push_back({"deletecollection", cli->Delete(std::string(kCms) + "?dryRun=foo"),
                   "DeleteOptions", R"("foo")"});
  for (auto& c : cases) {
    ASSERT_TRUE(c.r) << c.what;
    EXPECT_EQ(c.r->status, 422) << c.what << ": " << c.r->body;
    auto s = body_of(c.r);
    const std::string detail =
        std::string("Unsupported value: []string{") + c.values + "}: supported values: \"All\"";
    EXPECT_EQ(s.get_string("message"),
              std::string(c.options_kind) + ".meta.k8s.io \"\" is invalid: dryRun: " + detail)
        << c.what;
    EXPECT_EQ(s.get_string("reason"), "Invalid") << c.what;
    EXPECT_EQ(s.at("details")->get_string("kind"), c.options_kind) << c.what;
    EXPECT_EQ(s.at("details")->get_string("group"), "meta.k8s.io") << c.what;
    ASSERT_NE(s.at_path({"details", "causes"}), nullptr) << c.what;
    const auto& cause = s.at_path({"details", "causes"})->as_array().at(0);
    EXPECT_EQ(cause.get_string("field"), "dryRun") << c.what;
    EXPECT_EQ(cause.get_string("reason"), "FieldValueNotSupported") << c.what;
    EXPECT_EQ(cause.get_string("message"), detail) << c.what;
  }
  EXPECT_EQ(st->current_resource_version(), rv) << "a refused request writes nothing";
  EXPECT_EQ(cli->Get(cm)->status, 200);
}

TEST_F(server_test, a_schema_invalid_custom_resource_gets_the_same_422_on_a_dry_run) {
  constexpr const char* kSchemaCrd = R"({
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "knobs.test.tidesync.io"},
    "spec": {"group": "test.tidesync.io", "scope": "Namespaced",
      "names": {"plural": "knobs", "singular": "knob", "kind": "Knob"},
      "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
        "type": "object", "properties": {"spec": {"type": "object", "required": ["size"],
          "properties": {"size": {"type": "integer", "minimum": 1},
                         "mode": {"type": "string", "default": "fast"}}}}}}}]}})";
  ASSERT_EQ(post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", kSchemaCrd)->status,
            201);
  const std::string knobs = "/apis/test.tidesync.io/v1/namespaces/default/knobs";
  const std::string invalid =
      R"({"apiVersion":"test.tidesync.io/v1","kind":"Knob","metadata":{"name":"k"},"spec":{"size":0}})";
  auto real = post(knobs, invalid);
  auto dry = post(knobs + "?dryRun=All", invalid);
  ASSERT_EQ(real->status, 422) << real->body;
  EXPECT_EQ(dry->status, 422) << dry->body;
  EXPECT_EQ(body_of(dry), body_of(real));

  // Pruning and defaulting happen on a dry run too.
  auto ok = post(
      knobs + "?dryRun=All",
      R"({"apiVersion":"test.tidesync.io/v1","kind":"Knob","metadata":{"name":"k"},"spec":{"size":2,"extra":1}})");
  ASSERT_EQ(ok->status, 201) << ok->body;
  EXPECT_EQ(body_of(ok).at_path({"spec", "extra"}), nullptr);
  EXPECT_EQ(body_of(ok).at_path({"spec", "mode"})->as_string(), "fast");

  // Updates: the same 422 for a PUT and a patch.
  ASSERT_EQ(
      post(
          knobs,
          R"({"apiVersion":"test.tidesync.io/v1","kind":"Knob","metadata":{"name":"k"},"spec":{"size":2}})")
          ->status,
      201);
  auto real_put = cli->Put(knobs + "/k", invalid, "application/json");
  auto dry_put = cli->Put(knobs + "/k?dryRun=All", invalid, "application/json");
  ASSERT_EQ(real_put->status, 422) << real_put->body;
  EXPECT_EQ(body_of(dry_put), body_of(real_put));
  auto dry_patch = cli->Patch(knobs + "/k?dryRun=All", R"({"spec":{"size":-1}})",
                              "application/merge-patch+json");
  EXPECT_EQ(dry_patch->status, 422) << dry_patch->body;
}

// The real apiserver's rule: on a dry run a matching webhook is called only when its sideEffects
// is None or NoneOnDryRun; any other (or none) fails the request with 400, whatever the
// failurePolicy. No webhook answers here (the URLs lead nowhere): which error comes back shows
// whether a call was attempted.
TEST_F(server_test, a_dry_run_create_reaches_only_webhooks_without_side_effects) {
  auto hook = [](const std::string& name, const std::string& side_effects,
                 const std::string& policy) {
    std::string h = R"({"name":")" + name + R"(","admissionReviewVersions":["v1"],
      "clientConfig":{"url":"https://127.0.0.1:1/mutate"},
      "rules":[{"operations":["CREATE"],"apiGroups":[""],"apiVersions":["v1"],"resources":["configmaps"]}],
      "objectSelector":{"matchLabels":{"hook":")" +
                    name + R"("}},"failurePolicy":")" + policy + R"(")";
    if (!side_effects.empty()) h += R"(,"sideEffects":")" + side_effects + R"(")";
    return h + "}";
  };
  std::string mwc =
      R"({"apiVersion":"admissionregistration.k8s.io/v1","kind":"MutatingWebhookConfiguration",
          "metadata":{"name":"hooks"},"webhooks":[)" +
      hook("some", "Some", "Ignore") + "," + hook("unknown", "Unknown", "Ignore") + "," +
      hook("unset", "", "Ignore") + "," + hook("none", "None", "Fail") + "," +
      hook("none-on-dry-run", "NoneOnDryRun", "Fail") + "]}";
  ASSERT_EQ(
      post("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", mwc)->status,
      201);
  auto create = [&](const std::string& label, bool dry_run) {
    return post(
        std::string(kCms) + (dry_run ? "?dryRun=All" : ""),
        R"({"metadata":{"name":"c-)" + label + R"(","labels":{"hook":")" + label + R"("}}})");
  };
  for (const char* name : {"some", "unknown", "unset"}) {
    auto r = create(name, true);
    EXPECT_EQ(r->status, 400) << name << ": " << r->body;
    EXPECT_EQ(body_of(r).get_string("reason"), "BadRequest") << name;
    EXPECT_EQ(body_of(r).get_string("message"),
              "admission webhook \"" + std::string(name) + "\" does not support dry run")
        << name;
  }
  for (const char* name : {"none", "none-on-dry-run"}) {
    auto r = create(name, true);
    EXPECT_EQ(r->status, 500) << name << ": " << r->body;
    EXPECT_NE(body_of(r).get_string("message").find("failed calling webhook \"" +
                                                    std::string(name) + "\""),
              std::string::npos)
        << "called on a dry run, and its failure counted (failurePolicy Fail): " << r->body;
  }
  auto unmatched = create("nobody", true);
  EXPECT_EQ(unmatched->status, 201) << "webhooks that do not match are not consulted";
  auto real = create("some", false);
  EXPECT_EQ(real->status, 201) << "a real create calls it; the failed call is ignored: "
                               << real->body;
}

TEST_F(server_test, openapi_lists_the_dry_run_parameter) {
  auto doc = body_of(cli->Get("/openapi/v3/api/v1"));
  const auto* patch =
      doc.at_path({"paths", "/api/v1/namespaces/{namespace}/configmaps/{name}", "patch"});
  ASSERT_NE(patch, nullptr) << json::dump(doc);
  bool dry_run = false;
  for (const auto& p : patch->at("parameters")->as_array())
    dry_run |= p.get_string("name") == "dryRun" && p.get_string("in") == "query";
  EXPECT_TRUE(dry_run) << json::dump(*patch);
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
