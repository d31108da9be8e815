// One scenario suite, run against the embedded API server (`tidesync simulate`) and a real
// kube-apiserver v1.20.2 (scripts/kube-apiserver/), to hold the embedded server to the real
// one. Expectations are what the real server does; where the embedded server differs on
// purpose the check is skipped there with a pointer to the table in docs/conformance.md.
//
// Each server starts once for the whole suite (SetUpTestSuite) and is stopped by PID in
// TearDownTestSuite; each scenario works in its own namespace. The real server is used when
// `scripts/kube-apiserver/build.sh --cached` finds the binary; otherwise its scenarios skip,
// or fail when TIDESYNC_REQUIRE_REAL_APISERVER=1 (CI).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "conformance_harness.hpp"

namespace conformance {
namespace {

const std::string kGroup = "conformance.tidesync.io";
const std::string kCrdName = "bucketsyncs." + kGroup;

std::string data_file(const std::string& name) {
  return std::string(TIDESYNC_SOURCE_DIR) + "/tests/data/conformance/" + name;
}

bool require_real() {
  const char* v = std::getenv("TIDESYNC_REQUIRE_REAL_APISERVER");
  return v != nullptr && std::string(v) == "1";
}

bool contains(std::string_view hay, std::string_view needle) {
  return hay.find(needle) != std::string_view::npos;
}

std::vector<std::string> types_of(const std::vector<watch_event>& events, bool with_bookmarks) {
  std::vector<std::string> out;
  for (const auto& e : events)
    if (with_bookmarks || e.type != "BOOKMARK") out.push_back(e.type);
  return out;
}

std::vector<std::string> names_of(const json::value& list) {
  std::vector<std::string> out;
  if (const auto* items = list.at("items"); items != nullptr && items->is_array())
    for (const auto& i : items->as_array())
      out.emplace_back(i.at("metadata")->get_string("name"));
  return out;
}

json::value must_json(std::string_view text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? *v : json::value{};
}

std::string rv_of(const json::value& obj) {
  const auto* m = obj.at("metadata");
  return m != nullptr ? std::string(m->get_string("resourceVersion")) : std::string();
}

int64_t generation_of(const json::value& obj) {
  const auto* m = obj.at("metadata");
  return m != nullptr ? m->get_int("generation") : -1;
}

std::string url_escape(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// What the suite knows about each server: started, or why not.
struct server_slot {
  std::unique_ptr<api_server> server;
  std::string unavailable;  // why there is no server (skip or failure message)
  bool failure = false;     // true: a failure, not a skip
};

std::map<std::string, server_slot>& slots() {
  static std::map<std::string, server_slot> s;
  return s;
}

// True when the gtest filter selects at least one test with this parameter.
bool selected(const std::string& param) {
  const auto* unit = ::testing::UnitTest::GetInstance();
  for (int i = 0; i < unit->total_test_suite_count(); ++i) {
    const auto* suite = unit->GetTestSuite(i);
    for (int j = 0; j < suite->total_test_count(); ++j) {
      const auto* info = suite->GetTestInfo(j);
      if (info->should_run() && info->value_param() != nullptr &&
          contains(info->value_param(), param))
        return true;
    }
  }
  return false;
}

// Applies the suite's CRD and waits until it is Established and served.
std::string install_crd(api_server& s) {
  auto applied = s.kubectl({"apply", "-f", data_file("bucketsync-crd.yaml")});
  if (applied.status != 0) return "kubectl apply of the CRD failed:\n" + applied.output;
  auto est = s.kubectl({"wait", "--for=condition=Established", "--timeout=30s", "crd/" + kCrdName});
  if (est.status != 0) return "the CRD was not Established:\n" + est.output;
  bool served = eventually(
      [&] {
        return s.call("GET", "/apis/" + kGroup + "/v1alpha1/bucketsyncs?limit=1").status == 200;
      },
      20s);
  return served ? "" : "the CRD's resource is not served";
}

class conformance : public ::testing::TestWithParam<std::string> {
 public:
  static void SetUpTestSuite() {
    if (selected("embedded")) {
      auto s = std::make_unique<embedded_server>();
      auto& slot = slots()["embedded"];
      if (auto err = s->start(); !err.empty()) {
        slot.unavailable = "the embedded server did not start: " + err;
        slot.failure = true;
        s->stop();
      } else {
        slot.server = std::move(s);
      }
    }
    if (selected("real")) {
      auto& slot = slots()["real"];
      std::string bin = cached_kube_apiserver();
      if (bin.empty()) {
        slot.unavailable =
            "no real kube-apiserver: `scripts/kube-apiserver/build.sh --cached` found no "
            "binary. Build it once with scripts/kube-apiserver/build.sh (about 10 minutes; "
            "cached under ~/.cache/tidesync/) to run these scenarios against Kubernetes "
            "v1.20.2.";
        slot.failure = require_real();
        if (slot.failure) slot.unavailable += " (TIDESYNC_REQUIRE_REAL_APISERVER=1: required)";
      } else {
        auto s = std::make_unique<real_server>();
        if (auto err = s->start(bin); !err.empty()) {
          slot.unavailable = "the real kube-apiserver did not start: " + err;
          slot.failure = true;
          s->stop();
        } else {
          slot.server = std::move(s);
        }
      }
    }
    for (auto& [name, slot] : slots()) {
      if (!slot.server) continue;
      if (auto err = install_crd(*slot.server); !err.empty()) {
        slot.unavailable = name + ": " + err;
        slot.failure = true;
        slot.server->stop();
        slot.server.reset();
      }
    }
  }

  static void TearDownTestSuite() {
    for (auto& [name, slot] : slots())
      if (slot.server) slot.server->stop();
    slots().clear();
  }

 protected:
  void SetUp() override {
    auto it = slots().find(GetParam());
    if (it == slots().end() || !it->second.server) {
      std::string why = it == slots().end() ? "not started" : it->second.unavailable;
      if (it != slots().end() && it->second.failure) FAIL() << why;
      GTEST_SKIP() << why;
    }
    server_ = it->second.server.get();
    // One namespace per scenario: "c-" + the test's name, DNS-1123 label style.
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    test = test.substr(0, test.find('/'));
    ns_ = "c-";
    for (char c : test)
      ns_ += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ns_ = ns_.substr(0, 63);
    auto created = s().call("POST", "/api/v1/namespaces",
                            json::object{{"apiVersion", "v1"},
                                         {"kind", "Namespace"},
                                         {"metadata", json::object{{"name", ns_}}}});
    ASSERT_EQ(created.status, 201) << created.body;
  }

  api_server& s() { return *server_; }
  bool real() { return server_->is_real(); }

  std::string cms(const std::string& name = {}) {
    return "/api/v1/namespaces/" + ns_ + "/configmaps" + (name.empty() ? "" : "/" + name);
  }
  std::string bss(const std::string& name = {}) {
    return "/apis/" + kGroup + "/v1alpha1/namespaces/" + ns_ + "/bucketsyncs" +
           (name.empty() ? "" : "/" + name);
  }
  std::string leases(const std::string& name = {}) {
    return "/apis/coordination.k8s.io/v1/namespaces/" + ns_ + "/leases" +
           (name.empty() ? "" : "/" + name);
  }
  std::string jobs(const std::string& name = {}) {
    return "/apis/batch/v1/namespaces/" + ns_ + "/jobs" + (name.empty() ? "" : "/" + name);
  }

  static json::value configmap(const std::string& name, json::object labels = {}) {
    json::object meta{{"name", name}};
    if (!labels.empty()) meta.set("labels", std::move(labels));
    return json::object{{"apiVersion", "v1"},
                        {"kind", "ConfigMap"},
                        {"metadata", std::move(meta)},
                        {"data", json::object{{"k", "v"}}}};
  }
  static json::value bucketsync(const std::string& name, json::array finalizers = {}) {
    json::object meta{{"name", name}};
    if (!finalizers.empty()) meta.set("finalizers", std::move(finalizers));
    return json::object{{"apiVersion", kGroup + "/v1alpha1"},
                        {"kind", "BucketSync"},
                        {"metadata", std::move(meta)},
                        {"spec", json::object{{"source", "src:a"}, {"destination", "dst:b"}}}};
  }
  static json::value job(const std::string& name) {
    json::value container = json::object{
        {"name", "rclone"}, {"image", "rclone/rclone:1.60"}, {"args", json::array{"version"}}};
    return json::object{
        {"apiVersion", "batch/v1"},
        {"kind", "Job"},
        {"metadata", json::object{{"name", name}}},
        {"spec",
         json::object{
             {"parallelism", 1},
             {"template",
              json::object{{"spec", json::object{{"restartPolicy", "Never"},
                                                 {"containers", json::array{container}}}}}}}}};
  }

  // Creates and returns the object (asserting 201).
  json::value create(const std::string& path, const json::value& obj) {
    auto r = s().call("POST", path, obj);
    EXPECT_EQ(r.status, 201) << "POST " << path << ": " << r.body;
    return r.doc;
  }
  reply merge_patch(const std::string& path, const std::string& patch) {
    return s().call("PATCH", path, patch, "application/merge-patch+json");
  }

  run_result kubectl(std::vector<std::string> args) {
    args.insert(args.begin(), {"-n", ns_});
    return s().kubectl(args);
  }

  // The Status object's common shape: kind, apiVersion, status, code, reason.
  void expect_status(const reply& r, int code, const std::string& reason) {
    EXPECT_EQ(r.status, code) << r.body;
    EXPECT_EQ(r.doc.get_string("kind"), "Status") << r.body;
    EXPECT_EQ(r.doc.get_string("apiVersion"), "v1") << r.body;
    EXPECT_EQ(r.doc.get_string("status"), "Failure") << r.body;
    EXPECT_EQ(r.doc.get_int("code"), code) << r.body;
    EXPECT_EQ(r.reason(), reason) << r.body;
  }
  // details{name, group, kind}: kind is the plural resource for most errors, the Kind for 422.
  void expect_details(const reply& r, const std::string& name, const std::string& group,
                      const std::string& kind) {
    const auto* d = r.doc.at("details");
    ASSERT_NE(d, nullptr) << "no details in " << r.body;
    EXPECT_EQ(d->get_string("name"), name) << r.body;
    EXPECT_EQ(d->get_string("group"), group) << r.body;
    EXPECT_EQ(d->get_string("kind"), kind) << r.body;
  }

  api_server* server_ = nullptr;
  std::string ns_;
};

// ---- kubectl on built-in kinds ---------------------------------------------------------------

TEST_P(conformance, kubectl_builtin_kinds) {
  auto applied = kubectl({"apply", "-f", data_file("builtins.yaml")});
  ASSERT_EQ(applied.status, 0) << applied.output;
  for (const char* line :
       {"configmap/settings created", "secret/remote-creds created", "job.batch/copy-once created",
        "lease.coordination.k8s.io/bucket-lock created"})
    EXPECT_TRUE(contains(applied.output, line)) << line << " in:\n" << applied.output;

  EXPECT_EQ(kubectl({"get", "cm", "settings", "-o", "jsonpath={.data.concurrency}"}).output, "2");
  EXPECT_EQ(kubectl({"get", "secret", "remote-creds", "-o", "jsonpath={.data.access-key}"}).output,
            "QUtJQUVYQU1QTEU=")
      << "stringData is folded into data, base64";

  // What the server fills in on a Job: the defaults and the generated selector a controller
  // reads to find the Job's pods.
  auto job_get = s().call("GET", jobs("copy-once"));
  ASSERT_EQ(job_get.status, 200) << job_get.body;
  const auto& jd = job_get.doc;
  EXPECT_EQ(jd.at_path({"spec", "backoffLimit"})->as_int(), 2);
  ASSERT_NE(jd.at_path({"spec", "completions"}), nullptr) << job_get.body;
  EXPECT_EQ(jd.at_path({"spec", "completions"})->as_int(), 1);
  ASSERT_NE(jd.at_path({"spec", "parallelism"}), nullptr) << job_get.body;
  EXPECT_EQ(jd.at_path({"spec", "parallelism"})->as_int(), 1);
  std::string uid(jd.at("metadata")->get_string("uid"));
  const auto* sel = jd.at_path({"spec", "selector", "matchLabels"});
  ASSERT_NE(sel, nullptr) << job_get.body;
  EXPECT_EQ(sel->get_string("controller-uid"), uid);
  const auto* tl = jd.at_path({"spec", "template", "metadata", "labels"});
  ASSERT_NE(tl, nullptr) << job_get.body;
  EXPECT_EQ(tl->get_string("controller-uid"), uid);
  EXPECT_EQ(tl->get_string("job-name"), "copy-once");

  auto p1 = kubectl(
      {"patch", "configmap", "settings", "--type=merge", "-p", R"({"data":{"concurrency":"4"}})"});
  EXPECT_EQ(p1.status, 0) << p1.output;
  EXPECT_TRUE(contains(p1.output, "configmap/settings patched")) << p1.output;
  EXPECT_EQ(kubectl({"get", "cm", "settings", "-o", "jsonpath={.data.concurrency}"}).output, "4");

  auto p2 = kubectl({"patch", "lease", "bucket-lock", "--type=json", "-p",
                     R"([{"op":"replace","path":"/spec/holderIdentity","value":"controller-b"}])"});
  EXPECT_EQ(p2.status, 0) << p2.output;
  EXPECT_EQ(
      kubectl({"get", "lease", "bucket-lock", "-o", "jsonpath={.spec.holderIdentity}"}).output,
      "controller-b");

  auto an = kubectl({"annotate", "configmap", "settings", "tidesync.io/owner=team-a"});
  EXPECT_EQ(an.status, 0) << an.output;
  EXPECT_TRUE(contains(an.output, "configmap/settings annotated")) << an.output;
  EXPECT_EQ(kubectl({"get", "cm", "settings", "-o",
                     R"(jsonpath={.metadata.annotations.tidesync\.io/owner})"})
                .output,
            "team-a");
  auto lb = kubectl({"label", "lease", "bucket-lock", "tidesync.io/bucket=a"});
  EXPECT_EQ(lb.status, 0) << lb.output;
  EXPECT_TRUE(contains(lb.output, "lease.coordination.k8s.io/bucket-lock labeled")) << lb.output;
  auto sel_out = kubectl({"get", "leases", "-l", "tidesync.io/bucket=a", "-o", "name"});
  EXPECT_EQ(sel_out.output, "lease.coordination.k8s.io/bucket-lock\n");

  // No Job controller runs on the real server: drive the Job by its status, as the suite's
  // end-to-end scenarios will.
  auto st =
      kubectl({"patch", "job", "copy-once", "--subresource=status", "--type=merge", "-p",
               R"({"status":{"succeeded":1,"conditions":[{"type":"Complete","status":"True"}]}})"});
  EXPECT_EQ(st.status, 0) << st.output;
  auto waited = kubectl({"wait", "--for=condition=Complete", "--timeout=10s", "job/copy-once"});
  EXPECT_EQ(waited.status, 0) << waited.output;
  EXPECT_TRUE(contains(waited.output, "job.batch/copy-once condition met")) << waited.output;

  auto reapplied = kubectl({"apply", "-f", data_file("builtins.yaml")});
  EXPECT_EQ(reapplied.status, 0) << reapplied.output;
  EXPECT_TRUE(contains(reapplied.output, "configmap/settings configured")) << reapplied.output;
  EXPECT_EQ(kubectl({"get", "cm", "settings", "-o", "jsonpath={.data.concurrency}"}).output, "2");

  auto del = kubectl({"delete", "job", "copy-once", "--timeout=10s"});
  EXPECT_EQ(del.status, 0) << del.output;
  EXPECT_TRUE(contains(del.output, "job.batch \"copy-once\" deleted")) << del.output;
  auto del2 = kubectl(
      {"delete", "lease/bucket-lock", "cm/settings", "secret/remote-creds", "--wait=false"});
  EXPECT_EQ(del2.status, 0) << del2.output;
  auto gone =
      kubectl({"wait", "--for=delete", "--timeout=10s", "lease/bucket-lock", "cm/settings"});
  EXPECT_EQ(gone.status, 0) << gone.output;
  auto missing = kubectl({"get", "secret", "remote-creds"});
  EXPECT_NE(missing.status, 0);
  EXPECT_TRUE(contains(missing.output, "NotFound")) << missing.output;
}

// ---- kubectl on our CRD ------------------------------------------------------------------------

TEST_P(conformance, kubectl_custom_resource) {
  auto applied = kubectl({"apply", "-f", data_file("bucketsync.yaml")});
  ASSERT_EQ(applied.status, 0) << applied.output;
  EXPECT_TRUE(contains(applied.output, "bucketsync.conformance.tidesync.io/nightly created"))
      << applied.output;

  auto table = kubectl({"get", "cbs"});
  ASSERT_EQ(table.status, 0) << table.output;
  auto header = table.output.substr(0, table.output.find('\n'));
  for (const char* col : {"NAME", "SOURCE", "PHASE", "AGE"})
    EXPECT_TRUE(contains(header, col)) << col << " in:\n" << table.output;
  EXPECT_TRUE(contains(table.output, "nightly")) << table.output;
  EXPECT_TRUE(contains(table.output, "src:bucket-a")) << table.output;

  auto pm = kubectl({"patch", "bucketsync", "nightly", "--type=merge", "-p",
                     R"({"spec":{"destination":"dst:bucket-c"}})"});
  EXPECT_EQ(pm.status, 0) << pm.output;
  EXPECT_TRUE(contains(pm.output, "bucketsync.conformance.tidesync.io/nightly patched"))
      << pm.output;
  auto pj = kubectl({"patch", "bucketsync", "nightly", "--type=json", "-p",
                     R"([{"op":"replace","path":"/spec/source","value":"src:bucket-z"}])"});
  EXPECT_EQ(pj.status, 0) << pj.output;
  EXPECT_EQ(kubectl({"get", "cbs", "nightly", "-o",
                     "jsonpath={.spec.source} {.spec.destination} {.metadata.generation}"})
                .output,
            "src:bucket-z dst:bucket-c 3");

  auto ps = kubectl(
      {"patch", "bucketsync", "nightly", "--subresource=status", "--type=merge", "-p",
       R"({"status":{"phase":"Sync","conditions":[{"type":"Ready","status":"False","reason":"Syncing"}]}})"});
  EXPECT_EQ(ps.status, 0) << ps.output;
  auto w1 = kubectl(
      {"wait", "--for=jsonpath={.status.phase}=Sync", "--timeout=10s", "bucketsync/nightly"});
  EXPECT_EQ(w1.status, 0) << w1.output;
  auto phase_col = kubectl({"get", "cbs", "nightly", "--no-headers"});
  EXPECT_TRUE(contains(phase_col.output, "Sync")) << phase_col.output;

  auto ps2 = kubectl(
      {"patch", "bucketsync", "nightly", "--subresource=status", "--type=merge", "-p",
       R"({"status":{"phase":"Finished","conditions":[{"type":"Ready","status":"True","reason":"Synced"}]}})"});
  EXPECT_EQ(ps2.status, 0) << ps2.output;
  auto w2 = kubectl({"wait", "--for=condition=Ready", "--timeout=10s", "bucketsync/nightly"});
  EXPECT_EQ(w2.status, 0) << w2.output;
  EXPECT_TRUE(contains(w2.output, "bucketsync.conformance.tidesync.io/nightly condition met"))
      << w2.output;
  EXPECT_EQ(kubectl({"get", "cbs", "nightly", "-o", "jsonpath={.metadata.generation}"}).output, "3")
      << "status writes do not bump generation";

  EXPECT_EQ(kubectl({"annotate", "cbs", "nightly", "tidesync.io/trigger=now"}).status, 0);
  EXPECT_EQ(kubectl({"label", "cbs", "nightly", "tier=gold"}).status, 0);
  EXPECT_EQ(kubectl({"get", "cbs", "-l", "tier=gold", "-o", "name"}).output,
            "bucketsync.conformance.tidesync.io/nightly\n");

  auto del = kubectl({"delete", "cbs", "nightly", "--wait=false"});
  EXPECT_EQ(del.status, 0) << del.output;
  EXPECT_TRUE(contains(del.output, "bucketsync.conformance.tidesync.io \"nightly\" deleted"))
      << del.output;
  auto gone = kubectl({"wait", "--for=delete", "--timeout=10s", "bucketsync/nightly"});
  EXPECT_EQ(gone.status, 0) << gone.output;
}

TEST_P(conformance, kubectl_explain_on_the_crd) {
  // The real server publishes a CRD's schema to its OpenAPI document a few seconds after the
  // CRD is Established: poll.
  run_result out;
  bool ok = eventually(
      [&] {
        out = s().kubectl({"explain", "bucketsyncs.spec"});
        return out.status == 0 && contains(out.output, "What to copy and where.");
      },
      30s, 300ms);
  ASSERT_TRUE(ok) << out.output;
  EXPECT_TRUE(contains(out.output, "source")) << out.output;
  EXPECT_TRUE(contains(out.output, "The bucket to copy from, as remote:path.")) << out.output;
  EXPECT_TRUE(contains(out.output, "dryRun")) << out.output;
  auto top = s().kubectl({"explain", "bucketsync"});
  EXPECT_EQ(top.status, 0) << top.output;
  EXPECT_TRUE(contains(top.output, "BucketSync copies one bucket to another once, in a Job."))
      << top.output;
  auto field = s().kubectl({"explain", "bucketsyncs.status.observedGeneration"});
  EXPECT_EQ(field.status, 0) << field.output;
  EXPECT_TRUE(contains(field.output, "The generation the controller last acted on."))
      << field.output;
}

// ---- lists and watches -----------------------------------------------------------------------

TEST_P(conformance, list_paging_with_limit_and_continue) {
  for (int i = 0; i < 5; ++i)
    create(cms(), configmap("p-" + std::to_string(i)));
  auto p1 = s().call("GET", cms() + "?limit=2");
  ASSERT_EQ(p1.status, 200) << p1.body;
  EXPECT_EQ(p1.doc.get_string("kind"), "ConfigMapList");
  EXPECT_EQ(names_of(p1.doc), (std::vector<std::string>{"p-0", "p-1"}));
  const auto* m1 = p1.doc.at("metadata");
  std::string rv(m1->get_string("resourceVersion"));
  std::string cont(m1->get_string("continue"));
  ASSERT_FALSE(cont.empty()) << p1.body;
  EXPECT_EQ(m1->get_int("remainingItemCount", -1), 3) << p1.body;

  auto p2 = s().call("GET", cms() + "?limit=2&continue=" + url_escape(cont));
  ASSERT_EQ(p2.status, 200) << p2.body;
  EXPECT_EQ(names_of(p2.doc), (std::vector<std::string>{"p-2", "p-3"}));
  EXPECT_EQ(p2.doc.at("metadata")->get_string("resourceVersion"), rv)
      << "every page reports the first page's resourceVersion";
  cont = std::string(p2.doc.at("metadata")->get_string("continue"));
  ASSERT_FALSE(cont.empty());

  auto p3 = s().call("GET", cms() + "?limit=2&continue=" + url_escape(cont));
  ASSERT_EQ(p3.status, 200) << p3.body;
  EXPECT_EQ(names_of(p3.doc), (std::vector<std::string>{"p-4"}));
  EXPECT_EQ(p3.doc.at("metadata")->at("continue"), nullptr) << p3.body;
  EXPECT_EQ(p3.doc.at("metadata")->at("remainingItemCount"), nullptr) << p3.body;

  // With a selector: pages still work, and no remainingItemCount is promised.
  auto l1 = s().call("GET", cms() + "?limit=1&labelSelector=" + url_escape("!absent"));
  ASSERT_EQ(l1.status, 200) << l1.body;
  EXPECT_EQ(names_of(l1.doc).size(), 1u);
  EXPECT_FALSE(l1.doc.at("metadata")->get_string("continue").empty());
  EXPECT_EQ(l1.doc.at("metadata")->at("remainingItemCount"), nullptr) << l1.body;

  auto bad = s().call("GET", cms() + "?limit=2&continue=not-a-token");
  expect_status(bad, 400, "BadRequest");
}

TEST_P(conformance, watch_from_resource_version_with_bookmarks) {
  auto list = s().call("GET", cms());
  ASSERT_EQ(list.status, 200);
  std::string rv0 = rv_of(list.doc);
  create(cms(), configmap("w1"));
  EXPECT_EQ(merge_patch(cms("w1"), R"({"data":{"k":"changed"}})").status, 200);
  EXPECT_EQ(s().call("DELETE", cms("w1")).status, 200);

  // A short server-side timeout: the stream ends by itself, with a bookmark before the end.
  // v1.20 sends that bookmark (2 s before the end) only when an event of the type passed
  // through its watch cache meanwhile: so once the history is replayed, w3 is created.
  std::atomic<int> delivered{0};
  std::thread writer([&] {
    eventually([&] { return delivered.load() >= 3; }, 5s, 10ms);
    create(cms(), configmap("w3"));
  });
  auto w = s().watch(
      cms() + "?resourceVersion=" + rv0 + "&allowWatchBookmarks=true&timeoutSeconds=3",
      [&](const watch_event&) {
        ++delivered;
        return false;
      },
      10s);
  writer.join();
  EXPECT_TRUE(w.ended_by_server) << "timeoutSeconds ends the watch";
  EXPECT_EQ(types_of(w.events, false),
            (std::vector<std::string>{"ADDED", "MODIFIED", "DELETED", "ADDED"}));
  uint64_t last = 0;
  std::string deleted_rv;
  int bookmarks = 0;
  for (const auto& e : w.events) {
    uint64_t rv = std::stoull(e.rv().empty() ? "0" : e.rv());
    EXPECT_GE(rv, last) << "resourceVersions never go back";
    last = rv;
    if (e.type == "DELETED") deleted_rv = e.rv();
    if (e.type == "BOOKMARK") {
      ++bookmarks;
      EXPECT_EQ(e.object.get_string("kind"), "ConfigMap");
      EXPECT_EQ(e.object.get_string("apiVersion"), "v1");
    } else {
      // w1's history, then w3 (created after the DELETED).
      EXPECT_EQ(e.object.at("metadata")->get_string("name"),
                deleted_rv.empty() || e.type == "DELETED" ? "w1" : "w3");
    }
  }
  ASSERT_FALSE(w.events.empty());
  EXPECT_EQ(w.events.back().type, "BOOKMARK") << "the last event before the end is a bookmark";
  EXPECT_GE(bookmarks, 1) << "a bookmark before the server ends the watch";
  EXPECT_GT(std::stoull(deleted_rv.empty() ? "0" : deleted_rv), std::stoull(rv0));

  // A watch without a resourceVersion starts with a synthetic ADDED for what exists.
  create(cms(), configmap("w2"));
  EXPECT_EQ(s().call("DELETE", cms("w3")).status, 200);
  auto now = s().watch(
      cms() + "?fieldSelector=" + url_escape("metadata.name=w2"),
      [](const watch_event&) { return true; }, 5s);
  ASSERT_EQ(types_of(now.events, false), (std::vector<std::string>{"ADDED"}));
  EXPECT_EQ(now.events[0].object.at("metadata")->get_string("name"), "w2");
}

TEST_P(conformance, gone_after_compaction) {
  // A continue token from before a compaction: 410 Expired.
  for (int i = 0; i < 3; ++i)
    create(cms(), configmap("g-" + std::to_string(i)));
  auto page = s().call("GET", cms() + "?limit=1");
  std::string cont(page.doc.at("metadata")->get_string("continue"));
  ASSERT_FALSE(cont.empty()) << page.body;
  create(cms(), configmap("g-later"));  // the revision moves past the token's
  s().request_compaction();
  reply r;
  bool expired = eventually(
      [&] {
        r = s().call("GET", cms() + "?limit=1&continue=" + url_escape(cont));
        return r.status == 410;
      },
      15s, 200ms);
  ASSERT_TRUE(expired) << "no 410 for a compacted continue token: " << r.body;
  expect_status(r, 410, "Expired");
  EXPECT_TRUE(contains(r.message(), "continue")) << r.body;

  // A watch from a compacted resourceVersion: one ERROR event (Status 410 Expired) in a 200
  // stream, then the server ends the stream.
  auto lease = create(leases(), json::object{{"apiVersion", "coordination.k8s.io/v1"},
                                             {"kind", "Lease"},
                                             {"metadata", json::object{{"name", "l1"}}},
                                             {"spec", json::object{{"holderIdentity", "a"}}}});
  std::string rv1 = rv_of(lease);
  EXPECT_EQ(merge_patch(leases("l1"), R"({"spec":{"holderIdentity":"b"}})").status, 200);
  s().request_compaction();
  watch_result w;
  bool watch_expired = eventually(
      [&] {
        // Not yet compacted: the MODIFIED arrives; stop reading and try again.
        w = s().watch(
            leases() + "?resourceVersion=" + rv1,
            [](const watch_event& e) { return e.type != "ERROR"; }, 5s);
        return !w.events.empty() && w.events[0].type == "ERROR";
      },
      15s, 200ms);
  ASSERT_TRUE(watch_expired) << "no ERROR event for a compacted resourceVersion";
  EXPECT_EQ(w.status, 200);
  ASSERT_EQ(w.events.size(), 1u);
  EXPECT_TRUE(w.ended_by_server) << "the stream ends after the ERROR";
  const auto& st = w.events[0].object;
  EXPECT_EQ(st.get_string("kind"), "Status");
  EXPECT_EQ(st.get_int("code"), 410);
  EXPECT_EQ(st.get_string("reason"), "Expired");
}

TEST_P(conformance, label_and_field_selectors) {
  create(cms(), configmap("a", json::object{{"app", "web"}, {"tier", "front"}}));
  create(cms(), configmap("b", json::object{{"app", "web"}}));
  create(cms(), configmap("c", json::object{{"app", "db"}}));
  auto names = [&](const std::string& query) {
    auto r = s().call("GET", cms() + "?" + query);
    EXPECT_EQ(r.status, 200) << query << ": " << r.body;
    return names_of(r.doc);
  };
  using v = std::vector<std::string>;
  EXPECT_EQ(names("labelSelector=" + url_escape("app=web")), (v{"a", "b"}));
  EXPECT_EQ(names("labelSelector=" + url_escape("app in (web,db),!tier")), (v{"b", "c"}));
  EXPECT_EQ(names("labelSelector=" + url_escape("app!=web")), (v{"c"}));
  EXPECT_EQ(names("labelSelector=tier"), (v{"a"}));
  EXPECT_EQ(names("fieldSelector=" + url_escape("metadata.name=b")), (v{"b"}));
  EXPECT_EQ(names("fieldSelector=" + url_escape("metadata.name!=b")), (v{"a", "c"}));
  EXPECT_EQ(names("fieldSelector=" + url_escape("metadata.namespace=" + ns_) +
                  "&labelSelector=" + url_escape("app=db")),
            (v{"c"}));

  // Secrets can be selected by type.
  create("/api/v1/namespaces/" + ns_ + "/secrets",
         json::object{{"apiVersion", "v1"},
                      {"kind", "Secret"},
                      {"metadata", json::object{{"name", "s-custom"}}},
                      {"type", "tidesync.io/remote"},
                      {"stringData", json::object{{"k", "v"}}}});
  create("/api/v1/namespaces/" + ns_ + "/secrets",
         json::object{{"apiVersion", "v1"},
                      {"kind", "Secret"},
                      {"metadata", json::object{{"name", "s-opaque"}}},
                      {"stringData", json::object{{"k", "v"}}}});
  auto typed = s().call("GET", "/api/v1/namespaces/" + ns_ + "/secrets?fieldSelector=" +
                                   url_escape("type=tidesync.io/remote"));
  EXPECT_EQ(names_of(typed.doc), (v{"s-custom"})) << typed.body;

  // Fields a type does not index: 400, as the real server (a controller must not rely on them).
  expect_status(s().call("GET", cms() + "?fieldSelector=" + url_escape("data.k=v")), 400,
                "BadRequest");
  expect_status(s().call("GET", bss() + "?fieldSelector=" + url_escape("status.phase=Sync")), 400,
                "BadRequest");
  expect_status(s().call("GET", cms() + "?labelSelector=" + url_escape("app===")), 400,
                "BadRequest");

  // A label-selected watch sees objects move in (ADDED) and out (DELETED) of the selection.
  std::string rv0 = rv_of(s().call("GET", cms()).doc);
  EXPECT_EQ(merge_patch(cms("c"), R"({"metadata":{"labels":{"app":"web"}}})").status, 200);
  EXPECT_EQ(merge_patch(cms("a"), R"({"metadata":{"labels":{"app":"other"}}})").status, 200);
  EXPECT_EQ(merge_patch(cms("b"), R"({"data":{"k":"b2"}})").status, 200);
  size_t seen = 0;
  auto w = s().watch(
      cms() + "?resourceVersion=" + rv0 + "&labelSelector=" + url_escape("app=web"),
      [&](const watch_event&) { return ++seen == 3; }, 10s);
  ASSERT_EQ(types_of(w.events, false), (v{"ADDED", "DELETED", "MODIFIED"}));
  EXPECT_EQ(w.events[0].object.at("metadata")->get_string("name"), "c");
  EXPECT_EQ(w.events[1].object.at("metadata")->get_string("name"), "a");
  EXPECT_EQ(w.events[2].object.at("metadata")->get_string("name"), "b");
}

// ---- writes ------------------------------------------------------------------------------------

TEST_P(conformance, stale_resource_version_is_409_conflict) {
  auto cm = create(cms(), configmap("c1"));
  json::value v1 = cm;
  v1["data"]["k"] = "second";
  auto ok = s().call("PUT", cms("c1"), v1);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_NE(rv_of(ok.doc), rv_of(cm));
  v1["data"]["k"] = "third";  // still carries the first resourceVersion
  auto stale = s().call("PUT", cms("c1"), v1);
  expect_status(stale, 409, "Conflict");
  EXPECT_EQ(stale.message(),
            "Operation cannot be fulfilled on configmaps \"c1\": the object has been modified; "
            "please apply your changes to the latest version and try again");
  expect_details(stale, "c1", "", "configmaps");

  // A patch that names a resourceVersion is a precondition too.
  auto stale_patch =
      merge_patch(cms("c1"), R"({"metadata":{"resourceVersion":")" + rv_of(cm) + R"("}})");
  expect_status(stale_patch, 409, "Conflict");

  auto bs = create(bss(), bucketsync("b1"));
  json::value b1 = bs;
  b1["spec"]["source"] = "src:new";
  ASSERT_EQ(s().call("PUT", bss("b1"), b1).status, 200);
  auto stale_cr = s().call("PUT", bss("b1"), b1);
  expect_status(stale_cr, 409, "Conflict");
  EXPECT_EQ(stale_cr.message(),
            "Operation cannot be fulfilled on bucketsyncs.conformance.tidesync.io \"b1\": the "
            "object has been modified; please apply your changes to the latest version and try "
            "again");
  expect_details(stale_cr, "b1", kGroup, "bucketsyncs");

  // An update through /status checks the resourceVersion as well.
  json::value st = bs;
  st["status"] = json::object{{"phase", "Sync"}};
  expect_status(s().call("PUT", bss("b1") + "/status", st), 409, "Conflict");
}

TEST_P(conformance, generation_follows_spec_changes_only) {
  auto b = create(bss(), bucketsync("g1"));
  EXPECT_EQ(generation_of(b), 1);
  auto labelled = merge_patch(bss("g1"), R"({"metadata":{"labels":{"x":"y"}}})");
  EXPECT_EQ(generation_of(labelled.doc), 1) << "metadata changes keep the generation";
  EXPECT_NE(rv_of(labelled.doc), rv_of(b));
  auto fin = merge_patch(bss("g1"), R"({"metadata":{"finalizers":["tidesync.io/x"]}})");
  EXPECT_EQ(generation_of(fin.doc), 1);
  auto status = merge_patch(bss("g1") + "/status", R"({"status":{"phase":"Sync"}})");
  EXPECT_EQ(generation_of(status.doc), 1) << "status changes keep the generation";
  auto spec = merge_patch(bss("g1"), R"({"spec":{"dryRun":true}})");
  EXPECT_EQ(generation_of(spec.doc), 2) << "a spec change bumps the generation";
  auto noop = merge_patch(bss("g1"), R"({"spec":{"dryRun":true}})");
  EXPECT_EQ(noop.status, 200);
  EXPECT_EQ(generation_of(noop.doc), 2);
  EXPECT_EQ(rv_of(noop.doc), rv_of(spec.doc)) << "a no-op patch writes nothing";
  EXPECT_EQ(merge_patch(bss("g1"), R"({"metadata":{"finalizers":null}})").status, 200);

  // Built-in kinds: v1.20 keeps a generation only where the kind's strategy does. Not on Jobs,
  // ConfigMaps, Secrets, Leases or Namespaces; an update cannot set one there.
  auto j = create(jobs(), job("j1"));
  EXPECT_EQ(j.at_path({"metadata", "generation"}), nullptr) << json::dump(j);
  auto cm = create(cms(), configmap("c1"));
  EXPECT_EQ(cm.at_path({"metadata", "generation"}), nullptr) << json::dump(cm);
  auto cm2 = merge_patch(cms("c1"), R"({"metadata":{"generation":5},"data":{"k":"w"}})");
  EXPECT_EQ(cm2.status, 200) << cm2.body;
  EXPECT_EQ(cm2.doc.at_path({"metadata", "generation"}), nullptr) << cm2.body;
  auto lease = create(leases(), json::object{{"apiVersion", "coordination.k8s.io/v1"},
                                             {"kind", "Lease"},
                                             {"metadata", json::object{{"name", "l1"}}},
                                             {"spec", json::object{{"holderIdentity", "x"}}}});
  EXPECT_EQ(lease.at_path({"metadata", "generation"}), nullptr) << json::dump(lease);
  auto ns = s().call("GET", "/api/v1/namespaces/" + ns_);
  EXPECT_EQ(ns.doc.at_path({"metadata", "generation"}), nullptr) << ns.body;

  // Deployments keep one, bumped by spec and by annotation changes (not labels).
  std::string deps = "/apis/apps/v1/namespaces/" + ns_ + "/deployments";
  auto dep = create(deps, must_json(R"({"apiVersion":"apps/v1","kind":"Deployment",
      "metadata":{"name":"d1"},"spec":{"replicas":0,"selector":{"matchLabels":{"app":"d1"}},
      "template":{"metadata":{"labels":{"app":"d1"}},
      "spec":{"containers":[{"name":"c","image":"busybox"}]}}}})"));
  EXPECT_EQ(generation_of(dep), 1) << json::dump(dep);
  EXPECT_EQ(generation_of(merge_patch(deps + "/d1", R"({"metadata":{"labels":{"a":"b"}}})").doc),
            1);
  EXPECT_EQ(
      generation_of(merge_patch(deps + "/d1", R"({"metadata":{"annotations":{"a":"b"}}})").doc), 2);
  EXPECT_EQ(generation_of(merge_patch(deps + "/d1", R"({"spec":{"replicas":1}})").doc), 3);
}

TEST_P(conformance, finalizers_and_deletion_timestamp) {
  auto b = create(bss(), bucketsync("f1", json::array{"conformance.tidesync.io/hold"}));
  std::string rv0 = rv_of(b);
  auto del = s().call("DELETE", bss("f1"));
  ASSERT_EQ(del.status, 200) << del.body;
  EXPECT_EQ(del.doc.get_string("kind"), "BucketSync") << "the object, still there: " << del.body;
  const auto* m = del.doc.at("metadata");
  ASSERT_NE(m, nullptr);
  EXPECT_NE(m->at("deletionTimestamp"), nullptr) << del.body;
  EXPECT_EQ(m->get_int("deletionGracePeriodSeconds", -1), 0) << del.body;
  EXPECT_EQ(m->get_int("generation"), 2) << "setting deletionTimestamp bumps the generation";
  std::string ts(m->get_string("deletionTimestamp"));

  auto again = s().call("DELETE", bss("f1"));
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.doc.at("metadata")->get_string("deletionTimestamp"), ts);
  auto got = s().call("GET", bss("f1"));
  EXPECT_EQ(got.status, 200) << "held by its finalizer";

  auto add = merge_patch(
      bss("f1"), R"({"metadata":{"finalizers":["conformance.tidesync.io/hold","other.io/x"]}})");
  expect_status(add, 422, "Invalid");
  EXPECT_TRUE(contains(add.message(),
                       "BucketSync.conformance.tidesync.io \"f1\" is invalid: metadata.finalizers: "
                       "Forbidden: no new finalizers can be added if the object is being deleted"))
      << add.body;
  expect_details(add, "f1", kGroup, "BucketSync");

  auto release = merge_patch(bss("f1"), R"({"metadata":{"finalizers":null}})");
  EXPECT_EQ(release.status, 200) << release.body;
  expect_status(s().call("GET", bss("f1")), 404, "NotFound");

  size_t n = 0;
  auto w = s().watch(
      bss() + "?resourceVersion=" + rv0,
      [&](const watch_event& e) { return ++n == 2 || e.type == "DELETED"; }, 10s);
  EXPECT_EQ(types_of(w.events, false), (std::vector<std::string>{"MODIFIED", "DELETED"}))
      << "deletionTimestamp set, then gone when the last finalizer goes";
}

TEST_P(conformance, delete_answers) {
  auto cm = create(cms(), configmap("d1"));
  std::string uid(cm.at("metadata")->get_string("uid"));
  auto wrong =
      s().call("DELETE", cms("d1"),
               std::string(R"({"preconditions":{"uid":"00000000-0000-0000-0000-000000000000"}})"));
  expect_status(wrong, 409, "Conflict");
  EXPECT_EQ(wrong.message(),
            "Operation cannot be fulfilled on ConfigMap \"d1\": the UID in the precondition "
            "(00000000-0000-0000-0000-000000000000) does not match the UID in record (" +
                uid + "). The object might have been deleted and then recreated");
  expect_details(wrong, "d1", "", "ConfigMap");

  auto del = s().call("DELETE", cms("d1"));
  EXPECT_EQ(del.status, 200) << del.body;
  EXPECT_EQ(del.doc.get_string("kind"), "Status") << del.body;
  EXPECT_EQ(del.doc.get_string("status"), "Success") << del.body;
  expect_details(del, "d1", "", "configmaps");
  EXPECT_EQ(del.doc.at("details")->get_string("uid"), uid);

  create(bss(), bucketsync("d2"));
  auto del_cr = s().call("DELETE", bss("d2"));
  EXPECT_EQ(del_cr.status, 200) << del_cr.body;
  EXPECT_EQ(del_cr.doc.get_string("status"), "Success") << del_cr.body;
  expect_details(del_cr, "d2", kGroup, "bucketsyncs");

  expect_status(s().call("DELETE", cms("d1")), 404, "NotFound");
}

// Server-side dry run (`dryRun=All`): every write answers as it would, nothing is stored, and
// a watch from before sees only the real change that follows.
TEST_P(conformance, server_side_dry_run) {
  auto plain = create(cms(), configmap("plain"));
  create(cms(), json::object{{"apiVersion", "v1"},
                             {"kind", "ConfigMap"},
                             {"metadata", json::object{{"name", "held"},
                                                       {"finalizers", json::array{"x.io/hold"}}}}});
  create(bss(), bucketsync("b1"));
  auto list = s().call("GET", cms());
  ASSERT_EQ(list.status, 200);
  const std::string rv0 = rv_of(list.doc);
  const std::string plain_rv = rv_of(plain);

  // Create: the server's fields, no resourceVersion; the errors of a real create.
  auto created = s().call("POST", cms() + "?dryRun=All", configmap("new"));
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_FALSE(created.doc.at("metadata")->get_string("uid").empty()) << created.body;
  EXPECT_FALSE(created.doc.at("metadata")->get_string("creationTimestamp").empty());
  EXPECT_EQ(created.doc.at_path({"metadata", "resourceVersion"}), nullptr) << created.body;
  expect_status(s().call("GET", cms("new")), 404, "NotFound");
  expect_status(s().call("POST", cms() + "?dryRun=All", configmap("plain")), 409, "AlreadyExists");
  json::value wrong = bucketsync("b2");
  wrong["spec"].as_object().set("source", 5);
  auto invalid = s().call("POST", bss() + "?dryRun=All", wrong);
  expect_status(invalid, 422, "Invalid");
  EXPECT_EQ(invalid.message(),
            "BucketSync.conformance.tidesync.io \"b2\" is invalid: spec.source: Invalid value: "
            "\"integer\": spec.source in body must be of type string: \"integer\"");

  // Update and patch: the changed object, the current resourceVersion.
  auto patched =
      s().call("PATCH", cms("plain") + "?dryRun=All", std::string(R"({"data":{"k":"p"}})"),
               "application/strategic-merge-patch+json");
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(patched.doc.at_path({"data", "k"})->as_string(), "p");
  EXPECT_EQ(rv_of(patched.doc), plain_rv);
  json::value put = plain;
  put["data"]["k"] = "u";
  auto updated = s().call("PUT", cms("plain") + "?dryRun=All", put);
  ASSERT_EQ(updated.status, 200) << updated.body;
  EXPECT_EQ(updated.doc.at_path({"data", "k"})->as_string(), "u");
  EXPECT_EQ(rv_of(updated.doc), plain_rv);
  auto status = merge_patch(bss("b1") + "/status?dryRun=All", R"({"status":{"phase":"Sync"}})");
  ASSERT_EQ(status.status, 200) << status.body;
  EXPECT_EQ(status.doc.at_path({"status", "phase"})->as_string(), "Sync");
  auto spec = merge_patch(bss("b1") + "?dryRun=All", R"({"spec":{"source":"src:z"}})");
  ASSERT_EQ(spec.status, 200) << spec.body;
  EXPECT_EQ(spec.doc.at("metadata")->get_int("generation"), 2);

  // Delete: a Success Status, or the object with a deletionTimestamp when finalizers hold it.
  auto gone = s().call("DELETE", cms("plain") + "?dryRun=All");
  ASSERT_EQ(gone.status, 200) << gone.body;
  EXPECT_EQ(gone.doc.get_string("status"), "Success") << gone.body;
  EXPECT_EQ(gone.doc.at("details")->get_string("uid"), plain.at("metadata")->get_string("uid"));
  auto body_form = s().call("DELETE", cms("plain"), std::string(R"({"dryRun":["All"]})"));
  EXPECT_EQ(body_form.status, 200) << body_form.body;
  auto held = s().call("DELETE", cms("held") + "?dryRun=All");
  ASSERT_EQ(held.status, 200) << held.body;
  EXPECT_NE(held.doc.at_path({"metadata", "deletionTimestamp"}), nullptr) << held.body;
  auto coll = s().call("DELETE", cms() + "?dryRun=All");
  ASSERT_EQ(coll.status, 200) << coll.body;
  EXPECT_EQ(coll.doc.at("items")->as_array().size(), 2u) << coll.body;

  // Any other value: 422 on the options kind (not 400).
  struct bad_case {
    reply r;
    const char* kind;
  };
  for (auto& [r, kind] : std::vector<bad_case>{
           {s().call("POST", cms() + "?dryRun=foo", configmap("x")), "CreateOptions"},
           {s().call("PUT", cms("plain") + "?dryRun=foo", plain), "UpdateOptions"},
           {s().call("PATCH", cms("plain") + "?dryRun=foo", std::string("{}"),
                     "application/merge-patch+json"),
            "PatchOptions"},
           {s().call("DELETE", cms("plain") + "?dryRun=foo"), "DeleteOptions"},
           {s().call("DELETE", cms("plain"), std::string(R"({"dryRun":["foo"]})")),
            "DeleteOptions"}}) {
    expect_status(r, 422, "Invalid");
    EXPECT_EQ(r.message(), std::string(kind) +
                               ".meta.k8s.io \"\" is invalid: dryRun: Unsupported value: "
                               "[]string{\"foo\"}: supported values: \"All\"")
        << r.body;
    expect_details(r, "", "meta.k8s.io", kind);
  }

  // Nothing changed.
  auto now = s().call("GET", cms("plain"));
  EXPECT_EQ(now.doc.at_path({"data", "k"})->as_string(), "v");
  EXPECT_EQ(rv_of(now.doc), plain_rv);
  EXPECT_EQ(s().call("GET", cms("held")).doc.at_path({"metadata", "deletionTimestamp"}), nullptr);
  auto b1 = s().call("GET", bss("b1"));
  EXPECT_EQ(b1.doc.at("metadata")->get_int("generation"), 1) << b1.body;
  EXPECT_EQ(b1.doc.at("status"), nullptr) << b1.body;

  // With a DeleteOptions body the query's dryRun is not read: this deletes for real. It is
  // the first event after rv0.
  auto real = s().call("DELETE", cms("plain") + "?dryRun=All",
                       std::string(R"({"propagationPolicy":"Background"})"));
  EXPECT_EQ(real.status, 200) << real.body;
  expect_status(s().call("GET", cms("plain")), 404, "NotFound");
  auto w = s().watch(cms() + "?resourceVersion=" + rv0, [](const watch_event&) { return true; });
  ASSERT_FALSE(w.events.empty()) << w.error_body;
  EXPECT_EQ(w.events[0].type, "DELETED");
  EXPECT_EQ(w.events[0].object.at("metadata")->get_string("name"), "plain");

  // kubectl: apply (a new object and an existing one) and create, each "(server dry run)".
  const std::string manifest = s().dir() + "/dry-run-" + ns_ + ".yaml";
  std::ofstream(manifest) << "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held}\n"
                             "data: {k: applied}\n---\n"
                             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fresh}\n";
  auto applied = kubectl({"apply", "--dry-run=server", "-f", manifest});
  ASSERT_EQ(applied.status, 0) << applied.output;
  EXPECT_TRUE(contains(applied.output, "configmap/held configured (server dry run)"))
      << applied.output;
  EXPECT_TRUE(contains(applied.output, "configmap/fresh created (server dry run)"))
      << applied.output;
  auto made = kubectl({"create", "configmap", "made", "--dry-run=server"});
  EXPECT_TRUE(contains(made.output, "configmap/made created (server dry run)")) << made.output;
  expect_status(s().call("GET", cms("fresh")), 404, "NotFound");
  expect_status(s().call("GET", cms("made")), 404, "NotFound");
  EXPECT_EQ(s().call("GET", cms("held")).doc.at_path({"data"}), nullptr);
}

TEST_P(conformance, status_subresource_isolation) {
  // On create, status is dropped (it belongs to /status).
  json::value with_status = bucketsync("s1");
  with_status["status"] = json::object{{"phase", "Forged"}};
  auto created = create(bss(), with_status);
  EXPECT_EQ(created.at("status"), nullptr) << json::dump(created);

  // /status: only status changes; spec and metadata in the body are ignored.
  auto ps = merge_patch(bss("s1") + "/status",
                        R"({"spec":{"source":"src:ignored"},"metadata":{"labels":{"x":"y"}},)"
                        R"("status":{"phase":"Sync"}})");
  ASSERT_EQ(ps.status, 200) << ps.body;
  EXPECT_EQ(ps.doc.at_path({"status", "phase"})->as_string(), "Sync");
  EXPECT_EQ(ps.doc.at_path({"spec", "source"})->as_string(), "src:a");
  EXPECT_EQ(ps.doc.at_path({"metadata", "labels"}), nullptr) << ps.body;

  json::value put = ps.doc;
  put["spec"]["source"] = "src:ignored-too";
  put["status"]["phase"] = "Finalize";
  auto us = s().call("PUT", bss("s1") + "/status", put);
  ASSERT_EQ(us.status, 200) << us.body;
  EXPECT_EQ(us.doc.at_path({"status", "phase"})->as_string(), "Finalize");
  EXPECT_EQ(us.doc.at_path({"spec", "source"})->as_string(), "src:a");

  // The main resource: status in the body is ignored.
  auto pm = merge_patch(bss("s1"), R"({"spec":{"dryRun":true},"status":{"phase":"Hacked"}})");
  ASSERT_EQ(pm.status, 200) << pm.body;
  EXPECT_TRUE(pm.doc.at_path({"spec", "dryRun"})->as_bool());
  EXPECT_EQ(pm.doc.at_path({"status", "phase"})->as_string(), "Finalize");
  json::value main = pm.doc;
  main["status"]["phase"] = "Hacked";
  auto um = s().call("PUT", bss("s1"), main);
  ASSERT_EQ(um.status, 200) << um.body;
  EXPECT_EQ(um.doc.at_path({"status", "phase"})->as_string(), "Finalize");

  // GET on /status answers the whole object.
  auto gs = s().call("GET", bss("s1") + "/status");
  EXPECT_EQ(gs.status, 200);
  EXPECT_EQ(gs.doc.at_path({"spec", "source"})->as_string(), "src:a");

  // The same rules on a built-in kind (Job).
  create(jobs(), job("j1"));
  auto js =
      merge_patch(jobs("j1") + "/status", R"({"spec":{"parallelism":3},"status":{"active":1}})");
  ASSERT_EQ(js.status, 200) << js.body;
  EXPECT_EQ(js.doc.at_path({"spec", "parallelism"})->as_int(), 1);
  EXPECT_EQ(js.doc.at_path({"status", "active"})->as_int(), 1);
  auto jm = merge_patch(jobs("j1"), R"({"status":{"active":5}})");
  ASSERT_EQ(jm.status, 200) << jm.body;
  EXPECT_EQ(jm.doc.at_path({"status", "active"})->as_int(), 1);
}

// ---- errors ------------------------------------------------------------------------------------

// The CRD's structural schema: wrong types are 422 Invalid with the same causes on both
// servers; unknown fields are pruned silently (spec, status through /status, the root), never
// metadata. (Empty strings are avoided on purpose: see docs/conformance.md on the real
// server's Go 1.19 build.)
// Schema defaults, on our own CRD (deploy/crds): both servers fill absent fields on create and
// keep the ones that were sent.
TEST_P(conformance, custom_resource_schema_defaults) {
  auto applied = kubectl(
      {"apply", "-f",
       std::string(TIDESYNC_SOURCE_DIR) + "/deploy/crds/tidesync.io_bucketsyncpolicies.yaml"});
  ASSERT_EQ(applied.status, 0) << applied.output;
  auto est = kubectl({"wait", "--for=condition=Established", "--timeout=30s",
                      "crd/bucketsyncpolicies.tidesync.io"});
  ASSERT_EQ(est.status, 0) << est.output;
  std::string path = "/apis/tidesync.io/v1alpha1/namespaces/" + ns_ + "/bucketsyncpolicies";
  auto policy = [](const std::string& name) {
    return json::value(json::object{
        {"apiVersion", "tidesync.io/v1alpha1"},
        {"kind", "BucketSyncPolicy"},
        {"metadata", json::object{{"name", name}}},
        {"spec",
         json::object{{"source", "src:a"}, {"destination", "dst:b"}, {"schedule", "0 2 * * *"}}}});
  };
  // The CRD may take a moment to be served after Established: poll the first create.
  reply created;
  ASSERT_TRUE(eventually(
      [&] {
        created = s().call("POST", path, policy("defaults"));
        return created.status == 201;
      },
      15s))
      << created.status << " " << created.body;
  const json::value* suspend = created.doc.at_path({"spec", "suspend"});
  ASSERT_NE(suspend, nullptr) << created.body;
  EXPECT_EQ(*suspend, json::value(false)) << created.body;
  EXPECT_EQ(created.doc.at("spec")->get_string("concurrencyPolicy"), "Forbid") << created.body;

  json::value chosen = policy("chosen");
  chosen["spec"].as_object().set("suspend", true);
  chosen["spec"].as_object().set("concurrencyPolicy", "Allow");
  auto kept = s().call("POST", path, chosen);
  ASSERT_EQ(kept.status, 201) << kept.body;
  EXPECT_EQ(*kept.doc.at_path({"spec", "suspend"}), json::value(true)) << kept.body;
  EXPECT_EQ(kept.doc.at("spec")->get_string("concurrencyPolicy"), "Allow") << kept.body;
}

TEST_P(conformance, custom_resource_schema_validation_and_pruning) {
  json::value wrong = bucketsync("v1");
  wrong["spec"].as_object().set("source", 5);
  auto bad = s().call("POST", bss(), wrong);
  expect_status(bad, 422, "Invalid");
  EXPECT_EQ(bad.message(),
            "BucketSync.conformance.tidesync.io \"v1\" is invalid: spec.source: Invalid value: "
            "\"integer\": spec.source in body must be of type string: \"integer\"")
      << bad.body;
  expect_details(bad, "v1", kGroup, "BucketSync");
  const auto* causes = bad.doc.at_path({"details", "causes"});
  ASSERT_NE(causes, nullptr) << bad.body;
  ASSERT_EQ(causes->as_array().size(), 1u) << bad.body;
  const auto& cause = causes->as_array()[0];
  EXPECT_EQ(cause.get_string("reason"), "FieldValueInvalid");
  EXPECT_EQ(cause.get_string("field"), "spec.source");
  EXPECT_EQ(cause.get_string("message"),
            "Invalid value: \"integer\": spec.source in body must be of type string: "
            "\"integer\"");

  // Several errors: one cause each (the real server's order varies: compare as a set).
  json::value two = bucketsync("v2");
  two["spec"].as_object().set("source", json::array{"a"});
  two["spec"].as_object().set("dryRun", "yes");
  auto both = s().call("POST", bss(), two);
  expect_status(both, 422, "Invalid");
  std::set<std::string> fields;
  if (const auto* cs = both.doc.at_path({"details", "causes"}); cs != nullptr && cs->is_array())
    for (const auto& c : cs->as_array())
      fields.insert(std::string(c.get_string("reason")) + " " + std::string(c.get_string("field")));
  EXPECT_EQ(fields, (std::set<std::string>{"FieldValueInvalid spec.dryRun",
                                           "FieldValueInvalid spec.source"}))
      << both.body;
  EXPECT_TRUE(contains(both.message(), "BucketSync.conformance.tidesync.io \"v2\" is invalid: ["))
      << both.body;

  // Unknown fields: pruned silently, metadata kept.
  json::value extra = bucketsync("p1");
  extra["spec"].as_object().set("unknownField", "x");
  extra.as_object().set("topLevel", json::object{{"a", 1}});
  extra["metadata"].as_object().set("annotations", json::object{{"keep", "me"}});
  auto created = create(bss(), extra);
  EXPECT_EQ(created.at_path({"spec", "unknownField"}), nullptr) << json::dump(created);
  EXPECT_EQ(created.at("topLevel"), nullptr) << json::dump(created);
  EXPECT_EQ(created.at_path({"spec", "source"})->as_string(), "src:a");
  EXPECT_EQ(created.at_path({"metadata", "annotations"})->get_string("keep"), "me");
  auto got = s().call("GET", bss("p1"));
  EXPECT_EQ(got.doc.at_path({"spec", "unknownField"}), nullptr) << got.body;

  // A patch of nothing but unknown fields writes nothing.
  auto noop = merge_patch(bss("p1"), R"({"spec":{"alsoUnknown":1}})");
  EXPECT_EQ(noop.status, 200) << noop.body;
  EXPECT_EQ(rv_of(noop.doc), rv_of(created)) << noop.body;
  EXPECT_EQ(generation_of(noop.doc), 1);

  // /status: validated and pruned as well.
  auto st = merge_patch(bss("p1") + "/status",
                        R"({"status":{"phase":"Sync","notInSchema":true,"observedGeneration":1}})");
  ASSERT_EQ(st.status, 200) << st.body;
  EXPECT_EQ(st.doc.at_path({"status", "notInSchema"}), nullptr) << st.body;
  EXPECT_EQ(st.doc.at_path({"status", "phase"})->as_string(), "Sync");
  auto st_bad = merge_patch(bss("p1") + "/status", R"({"status":{"observedGeneration":"one"}})");
  expect_status(st_bad, 422, "Invalid");
  const auto* st_causes = st_bad.doc.at_path({"details", "causes"});
  ASSERT_NE(st_causes, nullptr) << st_bad.body;
  EXPECT_EQ(st_causes->as_array().at(0).get_string("field"), "status.observedGeneration");
  EXPECT_EQ(st_causes->as_array().at(0).get_string("message"),
            "Invalid value: \"string\": status.observedGeneration in body must be of type "
            "integer: \"string\"");

  // Array items are checked against `items` (v1.20 reports the array's path).
  auto cond = merge_patch(bss("p1") + "/status", R"({"status":{"conditions":[{"type":"Ready"}]}})");
  expect_status(cond, 422, "Invalid");
  EXPECT_TRUE(contains(cond.message(), "Required value")) << cond.body;
}

TEST_P(conformance, status_error_bodies) {
  auto nf = s().call("GET", cms("nope"));
  expect_status(nf, 404, "NotFound");
  EXPECT_EQ(nf.message(), "configmaps \"nope\" not found");
  expect_details(nf, "nope", "", "configmaps");

  auto nf_cr = s().call("GET", bss("nope"));
  expect_status(nf_cr, 404, "NotFound");
  EXPECT_EQ(nf_cr.message(), "bucketsyncs.conformance.tidesync.io \"nope\" not found");
  expect_details(nf_cr, "nope", kGroup, "bucketsyncs");

  auto nf_ns = s().call("POST", "/api/v1/namespaces/no-such-ns/configmaps", configmap("x"));
  expect_status(nf_ns, 404, "NotFound");
  EXPECT_EQ(nf_ns.message(), "namespaces \"no-such-ns\" not found");
  expect_details(nf_ns, "no-such-ns", "", "namespaces");

  create(cms(), configmap("dup"));
  auto exists = s().call("POST", cms(), configmap("dup"));
  expect_status(exists, 409, "AlreadyExists");
  EXPECT_EQ(exists.message(), "configmaps \"dup\" already exists");
  expect_details(exists, "dup", "", "configmaps");

  auto invalid = s().call("POST", cms(), configmap("Bad_Name"));
  expect_status(invalid, 422, "Invalid");
  EXPECT_TRUE(contains(
      invalid.message(),
      "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase"))
      << invalid.body;
  expect_details(invalid, "Bad_Name", "", "ConfigMap");
  const auto* causes = invalid.doc.at_path({"details", "causes"});
  ASSERT_NE(causes, nullptr) << invalid.body;
  ASSERT_EQ(causes->as_array().size(), 1u);
  EXPECT_EQ(causes->as_array()[0].get_string("reason"), "FieldValueInvalid");
  EXPECT_EQ(causes->as_array()[0].get_string("field"), "metadata.name");
  EXPECT_TRUE(contains(causes->as_array()[0].get_string("message"), "Invalid value: \"Bad_Name\""));

  auto invalid_cr = s().call("POST", bss(), bucketsync("Bad"));
  expect_status(invalid_cr, 422, "Invalid");
  EXPECT_TRUE(contains(invalid_cr.message(),
                       "BucketSync.conformance.tidesync.io \"Bad\" is invalid: metadata.name"))
      << invalid_cr.body;
  expect_details(invalid_cr, "Bad", kGroup, "BucketSync");

  auto malformed = s().call("POST", cms(), std::string(R"({"metadata":)"));
  expect_status(malformed, 400, "BadRequest");
  EXPECT_TRUE(contains(malformed.message(),
                       "the object provided is unrecognized (must be of type "
                       "ConfigMap)"))
      << malformed.body;

  json::value renamed = configmap("other");
  auto mismatch = s().call("PUT", cms("dup"), renamed);
  expect_status(mismatch, 400, "BadRequest");
  EXPECT_EQ(mismatch.message(),
            "the name of the object (other) does not match the name on the URL (dup)");

  auto unknown = s().call("GET", "/api/v1/nosuchthings");
  expect_status(unknown, 404, "NotFound");
  EXPECT_TRUE(contains(unknown.message(), "the server could not find the requested resource"));
  EXPECT_EQ(s().call("GET", "/apis/nope.example.com/v1/widgets").status, 404);
}

TEST_P(conformance, rbac_forbidden_for_a_restricted_token) {
  if (!real())
    GTEST_SKIP() << "the embedded server has no authentication or RBAC (deliberate: it serves "
                    "loopback only); see docs/conformance.md";
  auto list = s().call_restricted("GET", cms());
  expect_status(list, 403, "Forbidden");
  EXPECT_EQ(list.message(),
            "configmaps is forbidden: User \"restricted\" cannot list resource "
            "\"configmaps\" in API group \"\" in the namespace \"" +
                ns_ + "\"");
  EXPECT_EQ(list.doc.at("details")->get_string("kind"), "configmaps");
  auto get_cr = s().call_restricted("GET", bss("x"));
  expect_status(get_cr, 403, "Forbidden");
  EXPECT_EQ(get_cr.message(),
            "bucketsyncs.conformance.tidesync.io \"x\" is forbidden: User \"restricted\" cannot "
            "get resource \"bucketsyncs\" in API group \"conformance.tidesync.io\" in the "
            "namespace \"" +
                ns_ + "\"");
  auto k = s().kubectl_as(s().restricted_kubeconfig(), {"-n", ns_, "get", "configmaps"});
  EXPECT_NE(k.status, 0);
  EXPECT_TRUE(contains(k.output, "Forbidden")) << k.output;
}

// What we ship for a cluster (the kustomize base: CRDs, RBAC, the leader-elected Deployment,
// its Services, the policy ConfigMap) is accepted by a real API server: a server-side dry run
// validates every object (structural CRD schemas, RBAC rules, the pod spec) without creating
// anything but the namespace. The embedded server takes the same dry run. (The overlays, with a
// policy/v1 PodDisruptionBudget the v1.20 server here does not serve, and the Prometheus
// Operator's kinds, are dry-run against `tidesync simulate` in deploy_test.)
TEST_P(conformance, deploy_manifests_pass_a_server_side_dry_run) {
  const std::string rendered = s().dir() + "/deploy-base.yaml";
  auto k = run(
      {"kubectl", "kustomize", std::string(TIDESYNC_SOURCE_DIR) + "/deploy/base", "-o", rendered});
  ASSERT_EQ(k.status, 0) << k.output;
  auto ns = kubectl({"create", "namespace", "tidesync-system"});
  EXPECT_TRUE(ns.status == 0 || contains(ns.output, "AlreadyExists")) << ns.output;
  auto applied =
      kubectl({"apply", "--dry-run=server", "--namespace=tidesync-system", "-f", rendered});
  EXPECT_EQ(applied.status, 0) << applied.output;
  for (const char* line : {"customresourcedefinition.apiextensions.k8s.io/bucketsyncs.tidesync.io "
                           "created (server dry run)",
                           "customresourcedefinition.apiextensions.k8s.io/"
                           "sharedvolumes.tidesync.io created (server dry run)",
                           "deployment.apps/tidesync-controller created (server dry run)",
                           "clusterrole.rbac.authorization.k8s.io/tidesync-controller created "
                           "(server dry run)",
                           "role.rbac.authorization.k8s.io/tidesync-controller-leases created "
                           "(server dry run)",
                           "service/tidesync-webhook created (server dry run)",
                           "configmap/tidesync-policy created (server dry run)"})
    EXPECT_TRUE(contains(applied.output, line)) << line << "\n" << applied.output;
}

TEST_P(conformance, discovery_lists_the_crd) {
  auto rl = s().call("GET", "/apis/" + kGroup + "/v1alpha1");
  ASSERT_EQ(rl.status, 200) << rl.body;
  EXPECT_EQ(rl.doc.get_string("kind"), "APIResourceList");
  std::map<std::string, const json::value*> by_name;
  for (const auto& r : rl.doc.at("resources")->as_array())
    by_name[std::string(r.get_string("name"))] = &r;
  ASSERT_TRUE(by_name.count("bucketsyncs")) << rl.body;
  ASSERT_TRUE(by_name.count("bucketsyncs/status")) << rl.body;
  const auto& main = *by_name["bucketsyncs"];
  EXPECT_EQ(main.get_string("kind"), "BucketSync");
  EXPECT_EQ(main.get_string("singularName"), "bucketsync");
  EXPECT_TRUE(main.get_bool("namespaced"));
  std::set<std::string> verbs;
  for (const auto& vb : main.at("verbs")->as_array())
    verbs.insert(vb.as_string());
  EXPECT_EQ(verbs, (std::set<std::string>{"create", "delete", "deletecollection", "get", "list",
                                          "patch", "update", "watch"}));
  std::set<std::string> status_verbs;
  for (const auto& vb : by_name["bucketsyncs/status"]->at("verbs")->as_array())
    status_verbs.insert(vb.as_string());
  EXPECT_EQ(status_verbs, (std::set<std::string>{"get", "patch", "update"}));
  ASSERT_NE(main.at("shortNames"), nullptr);
  EXPECT_EQ(main.at("shortNames")->as_array()[0].as_string(), "cbs");

  auto ar = s().kubectl({"api-resources", "--api-group=" + kGroup});
  EXPECT_EQ(ar.status, 0) << ar.output;
  EXPECT_TRUE(contains(ar.output, "bucketsyncs")) << ar.output;
  EXPECT_TRUE(contains(ar.output, "cbs")) << ar.output;

  auto version = s().call("GET", "/version");
  EXPECT_EQ(version.status, 200);
  EXPECT_EQ(version.doc.get_string("major"), "1");
  EXPECT_FALSE(version.doc.get_string("minor").empty());
  EXPECT_EQ(version.doc.get_string("gitVersion").substr(0, 3), "v1.");
}

INSTANTIATE_TEST_SUITE_P(servers, conformance, ::testing::Values("embedded", "real"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace conformance
