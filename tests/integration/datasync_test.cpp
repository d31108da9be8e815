// DataSync end to end (issue 6): the real `tidesync controller` against `tidesync simulate`
// (embedded API server + simulated kubelet running the real `tidesync agent populate` Jobs),
// downloading from a Python HTTP server on 127.0.0.1 (started here, stopped by PID).
//
// An in-process informer watches the DataSyncs: its handler runs after every single watch
// event with the cache exactly as that event left it, so the invariants (never more than
// `concurrency` Syncing, start order = creation order) are checked on every state the API
// server went through, not on samples.
//
// Peers: python3 (setup.sh installs it). Without it the tests skip, unless
// TIDESYNC_REQUIRE_PEERS is set.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/k8s/client.hpp"
#include "runtime/k8s/config.hpp"
#include "runtime/watch/client_transport.hpp"
#include "runtime/watch/informer.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/simulation.hpp"

namespace fs = std::filesystem;
using namespace tidesync;
using namespace tidesync::test;

namespace {

// Serves a folder. GET waits DELAY seconds first (so a sync lasts a while); paths under
// /fail/ answer 500. Every request line goes to stderr (the request log).
constexpr const char* k_server = R"PY(
import http.server, os, sys, time
root, delay = sys.argv[1], float(sys.argv[2])
class H(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k): super().__init__(*a, directory=root, **k)
    def do_GET(self):
        if self.path.startswith('/fail/'):
            self.send_error(500, 'broken on purpose'); return
        time.sleep(delay)
        super().do_GET()
    def log_message(self, fmt, *args):
        sys.stderr.write('REQ ' + (fmt % args) + '\n'); sys.stderr.flush()
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
print('PORT %d' % s.server_address[1], flush=True)
s.serve_forever()
)PY";

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; ++i) {
    s.push_back(digits[md[i] >> 4]);
    s.push_back(digits[md[i] & 15]);
  }
  return s;
}

// What the test's informer saw, in order.
struct transcript {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::string> phase;  // by name, after the latest event
  std::vector<std::string> started;          // names, in the order they first became Syncing
  int max_syncing = 0;                       // since the last reset_max()
  size_t events = 0;
};

class datasync_e2e : public ::testing::Test {
 protected:
  void SetUp() override {
    static const bool python = run({"python3", "-c", "import http.server"}, {}, 20s).status == 0;
    if (!python) {
      if (std::getenv("TIDESYNC_REQUIRE_PEERS") != nullptr) FAIL() << "python3 is required";
      GTEST_SKIP() << "python3 not available";
    }
    char tmpl[] = "/var/tmp/tidesync-datasync-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    fs::create_directories(dir + "/www/fail");
    std::string data = dir + "/sim";
    sim = std::make_unique<child>(std::vector<std::string>{
        "sh", "-c",
        "exec '" + std::string(TIDESYNC_BINARY) + "' simulate --no-controller --data-dir '" + data +
            "' --controller-rbac '" + simulation::rbac_manifest() + "' '" +
            std::string(TIDESYNC_SOURCE_DIR) + "/deploy/crds' > '" + dir + "/simulate.log' 2>&1"});
    kubeconfig = data + "/kubeconfig";
    ASSERT_TRUE(eventually(
        [&] {
          return fs::exists(kubeconfig) &&
                 kubectl({"get", "crd", "datasyncs.tidesync.io", "-o", "name"}).status == 0;
        },
        20s))
        << read_file(dir + "/simulate.log");
    apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: tidesync-system}\n");
  }

  void TearDown() override {
    if (informer_) {
      std::promise<void> stopped;
      loop_.post([&] {
        informer_->stop();
        stopped.set_value();
      });
      stopped.get_future().wait();
    }
    loop_.stop();
    informer_.reset();
    transport_.reset();
    client_.reset();
    controllers.clear();
    sim.reset();
    simulation::expect_no_rbac_denial(dir + "/simulate.log");
    if (HasFailure()) {
      std::cerr << "--- simulate log ---\n" << read_file(dir + "/simulate.log");
      for (int i = 0; i < controller_count; ++i)
        std::cerr << "--- controller " << i << " log ---\n"
                  << read_file(dir + "/controller-" + std::to_string(i) + ".log");
      if (server) std::cerr << "--- http server ---\n" << server->output();
    }
    server.reset();
    std::error_code ec;
    const char* keep = std::getenv("TIDESYNC_KEEP_TEST_DIRS");  // "1": on failure; "always"
    if (keep != nullptr && (HasFailure() || std::string_view(keep) == "always"))
      std::cerr << "kept " << dir << "\n";
    else if (!dir.empty())
      fs::remove_all(dir, ec);
  }

  // Starts the HTTP server over dir/www with a GET delay of `delay` seconds.
  void start_server(double delay) {
    write_file(dir + "/server.py", k_server);
    server = std::make_unique<child>(std::vector<std::string>{"python3", "-u", dir + "/server.py",
                                                              dir + "/www", std::to_string(delay)});
    auto line = server->read_until([](const std::string& l) { return l.rfind("PORT ", 0) == 0; });
    ASSERT_FALSE(line.empty()) << server->output();
    base_url = "http://127.0.0.1:" + line.substr(5);
  }
  // `method` requests the server has answered for `path` so far.
  int requests(const std::string& method, const std::string& path) {
    server->read_until([](const std::string&) { return false; }, 200ms);
    int n = 0;
    std::istringstream in(server->output());
    for (std::string l; std::getline(in, l);)
      if (l.find("\"" + method + " " + path + " ") != std::string::npos) ++n;
    return n;
  }
  int gets(const std::string& path) { return requests("GET", path); }

  child& start_controller() {
    // The controller's own identity (deploy/base/rbac.yaml), not kubectl's administrator.
    std::string cmd = "exec '" + std::string(TIDESYNC_BINARY) + "' controller --kubeconfig '" +
                      dir + "/sim/controller-kubeconfig" +
                      "' --health-addr 0 --metrics-addr 0 > '" + dir + "/controller-" +
                      std::to_string(controller_count++) + ".log' 2>&1";
    controllers.push_back(std::make_unique<child>(std::vector<std::string>{"sh", "-c", cmd}));
    return *controllers.back();
  }

  // The in-process informer over DataSyncs in namespace default (see the file comment).
  void start_watching() {
    auto cfg = k8s::load_kubeconfig(kubeconfig, "");
    ASSERT_TRUE(cfg.has_value()) << cfg.error().to_string();
    client_ = std::make_unique<k8s::client>(loop_, *cfg);
    k8s::resource ds{"tidesync.io", "v1alpha1", "datasyncs", "DataSync", true};
    transport_ = std::make_unique<watch::client_transport>(*client_, ds, "default", 10s);
    watch::watcher_options wo;
    wo.name = "datasyncs";
    informer_ = std::make_unique<watch::informer>(*transport_, wo);
    informer_->add_handler([this](const std::string&) {
      // On the loop thread, just after the cache applied the event.
      std::lock_guard<std::mutex> g(seen.mu);
      ++seen.events;
      int syncing = 0;
      for (const auto& h : informer_->store().list()) {
        auto doc = h->parse();
        std::string phase;
        if (doc)
          if (const auto* p = doc->at_path({"status", "phase"}); p && p->is_string())
            phase = p->as_string();
        if (phase == "Syncing") {
          ++syncing;
          if (std::find(seen.started.begin(), seen.started.end(), h->meta.name) ==
              seen.started.end())
            seen.started.push_back(h->meta.name);
        }
        seen.phase[h->meta.name] = phase;
      }
      seen.max_syncing = std::max(seen.max_syncing, syncing);
      seen.cv.notify_all();
    });
    loop_.post([this] { informer_->start(); });
  }

  // Waits (on the informer's notifications) until `pred` holds for the transcript.
  bool wait_for(const std::function<bool(const transcript&)>& pred,
                std::chrono::seconds limit = 60s) {
    std::unique_lock<std::mutex> lock(seen.mu);
    return seen.cv.wait_for(lock, limit, [&] { return pred(seen); });
  }
  static int syncing_in(const transcript& t) {
    return static_cast<int>(std::count_if(t.phase.begin(), t.phase.end(),
                                          [](const auto& kv) { return kv.second == "Syncing"; }));
  }
  int syncing_now() {
    std::lock_guard<std::mutex> g(seen.mu);
    return syncing_in(seen);
  }
  void reset_max(int to) {
    std::lock_guard<std::mutex> g(seen.mu);
    seen.max_syncing = to;
  }
  int max_syncing() {
    std::lock_guard<std::mutex> g(seen.mu);
    return seen.max_syncing;
  }

  run_result kubectl(std::vector<std::string> args, const std::string& stdin_text = {}) {
    std::vector<std::string> argv{"kubectl", "--kubeconfig", kubeconfig, "--cache-dir",
                                  dir + "/kube-cache"};
    for (auto& a : args)
      argv.push_back(a);
    if (!stdin_text.empty()) {
      std::string path = dir + "/stdin-" + std::to_string(++files) + ".yaml";
      write_file(path, stdin_text);
      argv.push_back("-f");
      argv.push_back(path);
    }
    return run(argv);
  }
  void apply(const std::string& yaml) {
    auto r = kubectl({"apply"}, yaml);
    ASSERT_EQ(r.status, 0) << r.output;
  }
  std::string get(const std::string& what, const std::string& path) {
    std::vector<std::string> args{"get"};
    std::istringstream words(what);
    for (std::string w; words >> w;)
      args.push_back(w);
    args.push_back("-o");
    args.push_back("jsonpath=" + path);
    auto r = kubectl(args);
    return r.status == 0 ? r.output : std::string{};
  }
  void policy(const std::string& data) {
    apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tidesync-policy, namespace: "
        "tidesync-system}\ndata:\n" +
        data);
  }
  // A file of `size` bytes in www; returns its sha256.
  std::string serve_file(const std::string& name, size_t size, char fill = 'x') {
    std::string data(size, fill);
    for (size_t i = 0; i < size; i += 97)
      data[i] = static_cast<char>('a' + (i / 97) % 26);
    write_file(dir + "/www/" + name, data);
    return sha256_hex(data);
  }
  static std::string datasync(const std::string& name, const std::string& vms) {
    return "apiVersion: tidesync.io/v1alpha1\nkind: DataSync\nmetadata:\n  name: " + name +
           "\n  namespace: default\nspec:\n  workspaceId: ws\n  vms:\n" + vms;
  }
  std::string http_vm(const std::string& vm, const std::string& file,
                      const std::string& checksum = "") const {
    return "  - {name: " + vm + ", sourceType: http, url: \"" + base_url + "/" + file + "\"" +
           (checksum.empty() ? "" : ", checksum: \"sha256:" + checksum + "\"") + "}\n";
  }
  std::vector<std::string> event_reasons(const std::string& name) {
    auto out = get("events --field-selector involvedObject.name=" + name,
                   "{range .items[*]}{.reason}{\"\\n\"}{end}");
    std::vector<std::string> reasons;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);)
      if (!l.empty()) reasons.push_back(l);
    return reasons;
  }
  // Pods the simulated kubelet ran for Job `job` (it writes one log per pod).
  int pods_run(const std::string& job) {
    int n = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir + "/sim/logs/default", ec)) {
      auto f = e.path().filename().string();
      if (f.rfind(job + "-", 0) == 0 && f.size() == job.size() + 1 + 5 + 4) ++n;  // -xxxxx.log
    }
    return n;
  }
  std::string volume_file(const std::string& claim, const std::string& file) {
    return dir + "/sim/volumes/default/" + claim + "/" + file;
  }

  std::string dir, kubeconfig, base_url;
  int files = 0;
  int controller_count = 0;
  std::unique_ptr<child> sim, server;
  std::vector<std::unique_ptr<child>> controllers;
  transcript seen;
  http::loop loop_;
  std::unique_ptr<k8s::client> client_;
  std::unique_ptr<watch::client_transport> transport_;
  std::unique_ptr<watch::informer> informer_;
};

}  // namespace

// "Concurrency never exceeded and start order equals creation order, with 20 DataSyncs and
// concurrency 3; a policy change from 3 to 1 and to 5 applies live."
TEST_F(datasync_e2e, twenty_in_fifo_order_within_concurrency_and_live_policy_changes) {
  start_server(0.7);
  policy("  concurrency: \"3\"\n");
  start_watching();
  start_controller();
  std::string docs;
  std::vector<std::string> names;
  for (int i = 0; i < 20; ++i) {
    char name[8];
    std::snprintf(name, sizeof name, "ds-%02d", i);
    names.emplace_back(name);
    auto sum = serve_file(std::string(name) + ".img", 4096 + static_cast<size_t>(i));
    docs += (docs.empty() ? "" : "---\n") +
            datasync(name, http_vm("disk", std::string(name) + ".img", sum));
  }
  apply(docs);

  // Concurrency 3: at most 3 at once, and it is used (3 are seen together).
  ASSERT_TRUE(wait_for([](const transcript& t) { return t.started.size() >= 6; }));
  EXPECT_EQ(max_syncing(), 3);

  // 3 → 1: running syncs finish; once at most one runs, never more than one.
  policy("  concurrency: \"1\"\n");
  ASSERT_TRUE(wait_for([](const transcript& t) { return syncing_in(t) <= 1; }));
  reset_max(syncing_now());
  size_t before = 0;
  {
    std::lock_guard<std::mutex> g(seen.mu);
    before = seen.started.size();
  }
  ASSERT_TRUE(wait_for([&](const transcript& t) { return t.started.size() >= before + 3; }));
  EXPECT_LE(max_syncing(), 1);

  // 1 → 5: five run at once, never more.
  policy("  concurrency: \"5\"\n");
  reset_max(0);
  ASSERT_TRUE(wait_for([](const transcript& t) { return t.max_syncing >= 5; }));
  ASSERT_TRUE(wait_for(
      [&](const transcript& t) {
        return t.phase.size() == names.size() &&
               std::all_of(t.phase.begin(), t.phase.end(),
                           [](const auto& kv) { return kv.second == "Succeeded"; });
      },
      120s));
  EXPECT_EQ(max_syncing(), 5);

  // FIFO: creation order (creationTimestamp, then name) is the start order.
  {
    std::lock_guard<std::mutex> g(seen.mu);
    EXPECT_EQ(seen.started, names);
  }
  for (const auto& n : names) {
    EXPECT_EQ(read_file(volume_file(n + "-disk", n + ".img")),
              read_file(dir + "/www/" + n + ".img"))
        << n;
    EXPECT_EQ(gets("/" + n + ".img"), 1) << n << " was downloaded more than once";
    EXPECT_EQ(pods_run(n + "-disk-1-0"), 1) << n << ": its populate Job ran more than once";
  }
  EXPECT_EQ(get("datasync ds-07", "{.status.conditions[?(@.type==\"Ready\")].status}"), "True");
  EXPECT_EQ(get("datasync ds-07", "{.metadata.labels.tidesync\\.io/workspace}"), "ws");
}

// "Failure → retries with growing waits → Failed after retryLimit, message says why."
TEST_F(datasync_e2e, checksum_mismatch_is_retried_with_growing_waits_then_fails) {
  start_server(0);
  policy("  retryLimit: \"2\"\n  retryBackoffDuration: 1s\n");
  auto real = serve_file("bad.img", 5000);
  std::string wrong(64, 'a');
  start_controller();
  apply(datasync("bad", http_vm("disk", "bad.img", wrong)));
  ASSERT_TRUE(eventually([&] { return get("datasync bad", "{.status.phase}") == "Failed"; }, 60s));
  EXPECT_EQ(get("datasync bad", "{.status.retryCount}"), "2");
  EXPECT_EQ(get("datasync bad", "{.status.conditions[?(@.type==\"Ready\")].reason}"),
            "RetryLimitExceeded");
  auto message = get("datasync bad", "{.status.message}");
  EXPECT_NE(message.find("checksum mismatch"), std::string::npos) << message;
  EXPECT_NE(message.find(wrong), std::string::npos) << "names the expected digest: " << message;
  EXPECT_NE(message.find(real), std::string::npos) << "names the actual digest: " << message;
  // Three attempts, with waits of 1 s and then 2 s announced in the Retrying events.
  EXPECT_EQ(gets("/bad.img"), 3);
  auto waits = get("events --field-selector involvedObject.name=bad,reason=Retrying",
                   "{range .items[*]}{.message}{\"\\n\"}{end}");
  EXPECT_NE(waits.find("retry 1 of 2"), std::string::npos) << waits;
  EXPECT_NE(waits.find("(in 1s)"), std::string::npos) << waits;
  EXPECT_NE(waits.find("retry 2 of 2"), std::string::npos) << waits;
  EXPECT_NE(waits.find("(in 2s)"), std::string::npos) << waits;
  EXPECT_FALSE(fs::exists(volume_file("bad-disk", "bad.img"))) << "bad data never counts";
}

// "404 source → Failed at once with reason MissingSource."
TEST_F(datasync_e2e, missing_source_fails_at_once_without_retries) {
  start_server(0);
  start_controller();
  apply(datasync("gone", http_vm("disk", "no-such.img")));
  ASSERT_TRUE(eventually([&] { return get("datasync gone", "{.status.phase}") == "Failed"; }, 60s));
  EXPECT_EQ(get("datasync gone", "{.status.conditions[?(@.type==\"Ready\")].reason}"),
            "MissingSource");
  EXPECT_EQ(get("datasync gone", "{.status.retryCount}"), "0");
  auto reasons = event_reasons("gone");
  EXPECT_EQ(std::count(reasons.begin(), reasons.end(), "Started"), 1);
  // Without a checksum the agent asks with HEAD first: one request in all, no retry.
  EXPECT_EQ(requests("HEAD", "/no-such.img") + gets("/no-such.img"), 1);
}

// "Bad input: empty vms, duplicate VM names, bad URL, unknown sourceType → Ready=False with a
// clear message." What the CRD schema can express is refused by the API server itself (kubectl
// says why); the rest reaches the controller, which reports it; a good DataSync beside them
// still syncs.
TEST_F(datasync_e2e, bad_input_is_refused_or_reported_and_others_still_sync) {
  start_server(0);
  auto sum = serve_file("ok.img", 3000);
  start_controller();
  auto empty = kubectl({"apply"},
                       "apiVersion: tidesync.io/v1alpha1\nkind: DataSync\nmetadata: "
                       "{name: empty, namespace: default}\nspec: {workspaceId: ws, "
                       "vms: []}\n");
  EXPECT_NE(empty.status, 0);
  EXPECT_NE(empty.output.find("spec.vms"), std::string::npos) << empty.output;
  auto unknown = kubectl({"apply"}, datasync("unknown",
                                             "  - {name: a, sourceType: ftp, url: "
                                             "\"ftp://x/y\"}\n"));
  EXPECT_NE(unknown.status, 0);
  EXPECT_NE(unknown.output.find("sourceType"), std::string::npos) << unknown.output;

  apply(datasync("dup", http_vm("a", "ok.img") + http_vm("a", "ok.img")));
  apply(datasync("badurl", "  - {name: a, sourceType: s3, url: \"http://127.0.0.1/x\"}\n"));
  apply(datasync("good", http_vm("a", "ok.img", sum)));
  // A claim of the user's that happens to have the name tidesync would give a VM's volume.
  apply(
      "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: taken-a, namespace: "
      "default}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: "
      "1Mi}}\n");
  apply(datasync("taken", http_vm("a", "ok.img", sum)));
  ASSERT_TRUE(
      eventually([&] { return get("datasync taken", "{.status.phase}") == "Failed"; }, 30s));
  EXPECT_EQ(get("datasync taken", "{.status.conditions[?(@.type==\"Ready\")].reason}"),
            "ClaimConflict");
  auto taken = get("datasync taken", "{.status.message}");
  EXPECT_NE(taken.find("PersistentVolumeClaim taken-a"), std::string::npos) << taken;
  EXPECT_EQ(get("pvc taken-a", "{.metadata.ownerReferences}"), "") << "the claim is untouched";
  for (const char* name : {"dup", "badurl"}) {
    ASSERT_TRUE(eventually(
        [&] { return get(std::string("datasync ") + name, "{.status.phase}") == "Failed"; }, 30s))
        << name;
    EXPECT_EQ(
        get(std::string("datasync ") + name, "{.status.conditions[?(@.type==\"Ready\")].reason}"),
        "InvalidSpec");
    auto reasons = event_reasons(name);
    EXPECT_NE(std::find(reasons.begin(), reasons.end(), "InvalidSpec"), reasons.end()) << name;
  }
  auto dup = get("datasync dup", "{.status.message}");
  EXPECT_NE(dup.find("spec.vms[1].name"), std::string::npos) << dup;
  auto badurl = get("datasync badurl", "{.status.message}");
  EXPECT_NE(badurl.find("spec.vms[0].url"), std::string::npos) << badurl;
  ASSERT_TRUE(
      eventually([&] { return get("datasync good", "{.status.phase}") == "Succeeded"; }, 60s));
  for (const char* name : {"dup", "badurl", "taken"})
    EXPECT_EQ(get(std::string("jobs -l tidesync.io/datasync=") + name, "{.items[*].metadata.name}"),
              "")
        << "no Job for a bad spec";
}

// "Controller restart in the middle: finished VMs are not downloaded again; nothing runs twice."
TEST_F(datasync_e2e, controller_restart_in_the_middle_downloads_nothing_twice) {
  start_server(0);
  auto fast = serve_file("fast.img", 2000);
  // The slow VM's server is a second one with a long GET delay.
  auto slow_sum = serve_file("slow.img", 3000);
  auto first_base = base_url;
  auto fast_server = std::move(server);
  start_server(4);
  auto slow_base = base_url;
  start_watching();
  auto& first = start_controller();
  apply(datasync("mid", "  - {name: fast, sourceType: http, url: \"" + first_base +
                            "/fast.img\", checksum: \"sha256:" + fast +
                            "\"}\n  - {name: slow, sourceType: http, url: \"" + slow_base +
                            "/slow.img\", checksum: \"sha256:" + slow_sum + "\"}\n"));
  ASSERT_TRUE(eventually(
      [&] {
        return get("datasync mid", "{.status.vms[?(@.name==\"fast\")].phase}") == "Succeeded";
      },
      30s));
  ASSERT_EQ(get("datasync mid", "{.status.vms[?(@.name==\"slow\")].phase}"), "Syncing");
  first.kill();  // a crash in the middle of the slow download
  start_controller();
  ASSERT_TRUE(
      eventually([&] { return get("datasync mid", "{.status.phase}") == "Succeeded"; }, 60s));
  EXPECT_EQ(gets("/slow.img"), 1) << "the running Job was adopted, not started again";
  server.swap(fast_server);
  EXPECT_EQ(gets("/fast.img"), 1) << "the finished VM was not downloaded again";
  server.swap(fast_server);
  auto reasons = event_reasons("mid");
  EXPECT_EQ(std::count(reasons.begin(), reasons.end(), "Started"), 1);
  EXPECT_EQ(std::count(reasons.begin(), reasons.end(), "Succeeded"), 1);
  EXPECT_EQ(read_file(volume_file("mid-slow", "slow.img")), read_file(dir + "/www/slow.img"));
  EXPECT_EQ(pods_run("mid-fast-1-0"), 1);
  EXPECT_EQ(pods_run("mid-slow-1-0"), 1);
}

// "Readiness: `tidesync agent wait datasync/<name>` blocks until Ready; a workspace that starts
// before its data is ready waits instead of failing." The wait starts before the DataSync
// exists, keeps waiting while it is Queued and Syncing, and exits 0 only once it is Ready.
TEST_F(datasync_e2e, agent_wait_blocks_until_ready_fails_on_failed_and_times_out) {
  start_server(1.5);
  auto sum = serve_file("late.img", 4000);
  auto wait_cmd = [&](const std::string& target, const std::string& timeout) {
    return std::vector<std::string>{
        TIDESYNC_BINARY, "agent",     "wait",  target,         "-n",
        "default",       "--timeout", timeout, "--kubeconfig", kubeconfig};
  };
  child waiter(wait_cmd("datasync/late", "90s"));
  ASSERT_FALSE(waiter
                   .read_until([](const std::string& l) {
                     return l.find("not created yet") != std::string::npos;
                   })
                   .empty())
      << waiter.output();
  start_controller();
  apply(datasync("late", http_vm("disk", "late.img", sum)));
  ASSERT_FALSE(
      waiter
          .read_until([](const std::string& l) { return l.find("Syncing") != std::string::npos; },
                      30s)
          .empty())
      << waiter.output();
  EXPECT_TRUE(waiter.running()) << "still waiting while it syncs: " << waiter.output();
  EXPECT_EQ(waiter.finish(60s), 0) << waiter.output();
  waiter.read_until([](const std::string&) { return false; }, 500ms);
  EXPECT_NE(waiter.output().find("datasync/late is Ready"), std::string::npos) << waiter.output();
  EXPECT_EQ(get("datasync late", "{.status.phase}"), "Succeeded");

  apply(datasync("lost", http_vm("disk", "no-such.img")));
  auto failed = run(wait_cmd("datasync/lost", "60s"), {}, 90s);
  EXPECT_EQ(failed.status, 1) << failed.output;
  EXPECT_NE(failed.output.find("MissingSource"), std::string::npos) << failed.output;

  auto timed_out = run(wait_cmd("datasync/never", "2s"), {}, 30s);
  EXPECT_EQ(timed_out.status, 3) << timed_out.output;
  EXPECT_NE(timed_out.output.find("not Ready after 2s"), std::string::npos) << timed_out.output;

  auto bad = run({TIDESYNC_BINARY, "agent", "wait", "pod/x"}, {}, 30s);
  EXPECT_EQ(bad.status, 2) << bad.output;
  EXPECT_NE(bad.output.find("datasync/NAME"), std::string::npos) << bad.output;
}

// "Pruning: a retention setting keeps the newest N versions, and an older version's volumes
// are deleted only when no Pod mounts them." With versionRetention 1 and three versions of one
// workspace, v2 (unused) loses its volume as soon as v3 succeeds; v1's volume, mounted by a
// workspace Pod, stays (Pruned=False, InUse, naming the Pod) until the Pod is gone.
TEST_F(datasync_e2e, pruning_keeps_the_newest_versions_and_never_a_mounted_volume) {
  start_server(0);
  auto sum = serve_file("ws.img", 3000);
  policy("  versionRetention: \"1\"\n");
  start_controller();
  auto succeeded = [&](const std::string& name) {
    return eventually([&] { return get("datasync " + name, "{.status.phase}") == "Succeeded"; },
                      60s);
  };
  auto pruned = [&](const std::string& name) {
    return get("datasync " + name, "{.status.conditions[?(@.type==\"Pruned\")].status}");
  };
  auto claim_exists = [&](const std::string& claim) {
    return get("pvc " + claim, "{.metadata.name}") == claim;
  };
  apply(datasync("v1", http_vm("disk", "ws.img", sum)));
  ASSERT_TRUE(succeeded("v1"));
  // A workspace Pod that mounts v1's volume (the simulated kubelet runs it with busybox as a
  // placeholder app, docs/kubelet.md: Running, so the Pod holds the claim).
  apply(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: workspace, namespace: default}\nspec:\n"
      "  containers: [{name: app, image: busybox}]\n"
      "  volumes: [{name: data, persistentVolumeClaim: {claimName: v1-disk}}]\n");
  apply(datasync("v2", http_vm("disk", "ws.img", sum)));
  ASSERT_TRUE(succeeded("v2"));
  ASSERT_TRUE(eventually([&] { return pruned("v1") == "False"; }, 30s));
  EXPECT_EQ(get("datasync v1", "{.status.conditions[?(@.type==\"Pruned\")].reason}"), "InUse");
  auto msg = get("datasync v1", "{.status.conditions[?(@.type==\"Pruned\")].message}");
  EXPECT_NE(msg.find("v1-disk is mounted by Pod workspace"), std::string::npos) << msg;
  EXPECT_TRUE(claim_exists("v1-disk"));

  apply(datasync("v3", http_vm("disk", "ws.img", sum)));
  ASSERT_TRUE(succeeded("v3"));
  ASSERT_TRUE(eventually([&] { return pruned("v2") == "True"; }, 30s));
  EXPECT_FALSE(claim_exists("v2-disk"));
  EXPECT_EQ(get("datasync v2", "{.status.phase}"), "Succeeded") << "kept as a record";
  auto reasons = event_reasons("v2");
  EXPECT_EQ(std::count(reasons.begin(), reasons.end(), "Pruned"), 1);
  // The mounted volume is still there, with its data.
  EXPECT_TRUE(claim_exists("v1-disk"));
  EXPECT_EQ(read_file(volume_file("v1-disk", "ws.img")), read_file(dir + "/www/ws.img"));
  EXPECT_EQ(pruned("v1"), "False");
  EXPECT_TRUE(claim_exists("v3-disk"));
  EXPECT_EQ(pruned("v3"), "");

  // The Pod goes; the next look at v1 (here: any change to it) deletes its volume.
  ASSERT_EQ(kubectl({"delete", "pod", "workspace", "-n", "default", "--wait=false"}).status, 0);
  ASSERT_TRUE(
      eventually([&] { return get("pod workspace -n default", "{.metadata.name}").empty(); }, 30s));
  ASSERT_EQ(kubectl({"annotate", "datasync", "v1", "-n", "default", "look=again"}).status, 0);
  ASSERT_TRUE(eventually([&] { return pruned("v1") == "True"; }, 30s));
  EXPECT_FALSE(claim_exists("v1-disk"));
  EXPECT_TRUE(claim_exists("v3-disk"));
  EXPECT_EQ(pruned("v3"), "");
}
