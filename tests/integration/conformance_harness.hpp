// The two API servers of the conformance suite behind one interface: the embedded one
// (`tidesync simulate`, a child process) and a real kube-apiserver v1.20.2 with etcd
// (scripts/kube-apiserver/start.sh). Scenarios talk to either through raw HTTP (our own
// http::loop, so TLS and bearer tokens work the same way our client does) and the real kubectl.
// Processes are stopped by PID: the embedded child with SIGTERM, the real pair by stop.sh,
// which signals only the PIDs start.sh wrote.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/k8s/config.hpp"
#include "tests/support/process.hpp"

namespace conformance {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;
namespace json = tidesync::json;

using tidesync::test::child;
using tidesync::test::eventually;
using tidesync::test::run;
using tidesync::test::run_result;

// An HTTP answer: status (0 on a transport error), body, and the body parsed when it is JSON.
struct reply {
  long status = 0;
  std::string body;
  json::value doc;
  std::string transport_error;
  [[nodiscard]] std::string_view reason() const { return doc.get_string("reason"); }
  [[nodiscard]] std::string_view message() const { return doc.get_string("message"); }
};

// One parsed watch event: its type and object.
struct watch_event {
  std::string type;
  json::value object;
  [[nodiscard]] std::string rv() const {
    const auto* m = object.at("metadata");
    return m != nullptr ? std::string(m->get_string("resourceVersion")) : std::string();
  }
};

struct watch_result {
  std::vector<watch_event> events;
  bool ended_by_server = false;  // the server closed the stream (vs. we stopped reading)
  long status = 0;               // HTTP status of the watch request
  std::string error_body;        // for a non-2xx answer
};

// One API server under test.
class api_server {
 public:
  virtual ~api_server() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  [[nodiscard]] virtual bool is_real() const = 0;
  // Stops the processes (by PID). Idempotent.
  virtual void stop() = 0;
  // Makes every resourceVersion older than now unusable (410), as etcd compaction does. The
  // embedded server compacts on request; the real one compacts on its own timer, so this is a
  // no-op there and callers poll for the 410.
  virtual void request_compaction() = 0;

  [[nodiscard]] const std::string& kubeconfig() const { return kubeconfig_; }
  [[nodiscard]] const std::string& restricted_kubeconfig() const { return restricted_; }
  [[nodiscard]] const std::string& dir() const { return dir_; }

  reply call(const std::string& method, const std::string& path, const std::string& body = {},
             const std::string& content_type = "application/json") {
    return call_as(admin_, method, path, body, content_type);
  }
  reply call_restricted(const std::string& method, const std::string& path) {
    return call_as(restricted_cfg_, method, path, {}, "application/json");
  }
  reply call(const std::string& method, const std::string& path, const json::value& body,
             const std::string& content_type = "application/json") {
    return call(method, path, json::dump(body), content_type);
  }

  // Opens a watch on `path` (a list path; `watch=1` is added) and collects events until
  // `done` says so, the server ends the stream, or `limit` passes.
  watch_result watch(const std::string& path, const std::function<bool(const watch_event&)>& done,
                     std::chrono::milliseconds limit = 10s) {
    struct shared {
      std::mutex mu;
      std::condition_variable cv;
      std::string buffer;
      watch_result result;
      bool finished = false;
      bool stop_reading = false;
      std::function<bool(const watch_event&)> done;
    };
    auto s = std::make_shared<shared>();
    s->done = done;
    tidesync::http::request r;
    r.method = "GET";
    r.url = admin_.server + path + (path.find('?') == std::string::npos ? "?" : "&") + "watch=1";
    r.headers = headers(admin_, "");
    r.tls = admin_.tls;
    r.connect_timeout = 5s;
    r.on_data = [s](std::string_view chunk) {
      std::lock_guard lock(s->mu);
      s->buffer.append(chunk);
      size_t nl;
      while ((nl = s->buffer.find('\n')) != std::string::npos) {
        std::string line = s->buffer.substr(0, nl);
        s->buffer.erase(0, nl + 1);
        if (line.empty() || s->stop_reading) continue;
        auto doc = json::parse(line);
        watch_event ev;
        if (doc) {
          ev.type = std::string(doc->get_string("type"));
          if (const auto* o = doc->at("object")) ev.object = *o;
        } else {
          ev.type = "UNPARSEABLE: " + line;
        }
        s->result.events.push_back(std::move(ev));
        if (s->done && s->done(s->result.events.back())) s->stop_reading = true;
      }
      s->cv.notify_all();
    };
    r.on_done = [s](tidesync::expected<tidesync::http::response> res) {
      std::lock_guard lock(s->mu);
      if (res) {
        s->result.status = res->status;
        s->result.ended_by_server = true;
        if (res->status / 100 != 2) s->result.error_body = res->body;
      }
      s->finished = true;
      s->cv.notify_all();
    };
    auto id = loop_->submit(std::move(r));
    std::unique_lock lock(s->mu);
    s->cv.wait_until(lock, clock_type::now() + limit,
                     [&] { return s->finished || s->stop_reading; });
    if (!s->finished) {
      lock.unlock();
      loop_->cancel(id);
      lock.lock();
      s->cv.wait_until(lock, clock_type::now() + 5s, [&] { return s->finished; });
      s->result.ended_by_server = false;
    }
    if (s->result.status == 0) s->result.status = 200;  // cancelled after the headers
    return s->result;
  }

  // The real kubectl with this server's admin kubeconfig.
  run_result kubectl(const std::vector<std::string>& args) { return kubectl_as(kubeconfig_, args); }
  run_result kubectl_as(const std::string& kubeconfig, const std::vector<std::string>& args) {
    std::vector<std::string> argv{"kubectl", "--kubeconfig", kubeconfig, "--cache-dir",
                                  dir_ + "/kube-cache"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

 protected:
  // Loads the kubeconfig(s) and starts the HTTP loop; "" on success, else why not.
  std::string connect() {
    auto admin = tidesync::k8s::load_kubeconfig(kubeconfig_, "");
    if (!admin) return "cannot load " + kubeconfig_ + ": " + admin.error().message;
    admin_ = *admin;
    if (!restricted_.empty()) {
      auto restricted = tidesync::k8s::load_kubeconfig(restricted_, "");
      if (!restricted) return "cannot load " + restricted_ + ": " + restricted.error().message;
      restricted_cfg_ = *restricted;
    }
    loop_ = std::make_unique<tidesync::http::loop>();
    return {};
  }
  void disconnect() {
    if (loop_) loop_->stop();
  }

  std::string dir_, kubeconfig_, restricted_;

 private:
  static tidesync::http::header_list headers(const tidesync::k8s::connection_config& c,
                                             const std::string& content_type) {
    tidesync::http::header_list h{{"Accept", "application/json"}};
    std::string token = c.token;
    if (!c.token_file.empty()) {
      std::ifstream in(c.token_file);
      std::getline(in, token);
    }
    if (!token.empty()) h.emplace_back("Authorization", "Bearer " + token);
    if (!content_type.empty()) h.emplace_back("Content-Type", content_type);
    return h;
  }

  reply call_as(const tidesync::k8s::connection_config& c, const std::string& method,
                const std::string& path, const std::string& body, const std::string& content_type) {
    struct shared {
      std::mutex mu;
      std::condition_variable cv;
      bool done = false;
      reply out;
    };
    auto s = std::make_shared<shared>();
    tidesync::http::request r;
    r.method = method;
    r.url = c.server + path;
    r.headers = headers(c, body.empty() ? "" : content_type);
    r.body = body;
    r.tls = c.tls;
    r.timeout = 15s;
    r.on_done = [s](tidesync::expected<tidesync::http::response> res) {
      std::lock_guard lock(s->mu);
      if (res) {
        s->out.status = res->status;
        s->out.body = std::move(res->body);
        auto doc = json::parse(s->out.body);
        if (doc) s->out.doc = std::move(*doc);
      } else {
        s->out.transport_error = res.error().to_string();
      }
      s->done = true;
      s->cv.notify_all();
    };
    loop_->submit(std::move(r));
    std::unique_lock lock(s->mu);
    s->cv.wait(lock, [&] { return s->done; });  // the request's own 15 s timeout bounds this
    return s->out;
  }

  tidesync::k8s::connection_config admin_, restricted_cfg_;
  std::unique_ptr<tidesync::http::loop> loop_;
};

inline std::string make_temp_dir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) return {};
  return buf.data();
}

// `tidesync simulate --no-controller` on a free port, with its state in a temp dir.
class embedded_server : public api_server {
 public:
  ~embedded_server() override { stop(); }
  [[nodiscard]] std::string name() const override { return "embedded"; }
  [[nodiscard]] bool is_real() const override { return false; }

  // "" on success, else what went wrong.
  std::string start() {
    dir_ = make_temp_dir("tidesync-conformance-embedded");
    if (dir_.empty()) return "mkdtemp failed";
    proc_ = std::make_unique<child>(std::vector<std::string>{
        TIDESYNC_BINARY, "simulate", "--no-controller", "--data-dir", dir_ + "/data"});
    std::string line = proc_->read_until(
        [](const std::string& l) { return l.rfind("tidesync simulate: API server on ", 0) == 0; },
        15s);
    if (line.empty()) return "simulate did not report its address:\n" + proc_->output();
    auto at = line.find("kubeconfig at ");
    if (at == std::string::npos) return "unexpected start line: " + line;
    kubeconfig_ = line.substr(at + 14);
    if (auto err = connect(); !err.empty()) return err;
    if (!eventually([&] { return call("GET", "/readyz").status == 200; }, 10s, 20ms))
      return "simulate never answered /readyz";
    return {};
  }
  void stop() override {
    disconnect();
    if (proc_) proc_->stop();
    proc_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
      dir_.clear();
    }
  }
  void request_compaction() override { call("POST", "/debug/tidesync/compact"); }

 private:
  std::unique_ptr<child> proc_;
};

// Where start.sh/stop.sh live, and the cached binary (empty when not built).
inline std::string kas_script(const std::string& name) {
  return std::string(TIDESYNC_SOURCE_DIR) + "/scripts/kube-apiserver/" + name;
}
inline std::string cached_kube_apiserver() {
  auto r = run({kas_script("build.sh"), "--cached"}, {}, 30s);
  if (r.status != 0) return {};
  std::string path = r.output;
  while (!path.empty() && (path.back() == '\n' || path.back() == ' '))
    path.pop_back();
  if (auto nl = path.rfind('\n'); nl != std::string::npos) path = path.substr(nl + 1);
  return path;
}

// The compaction interval the suite runs the real server with: short, so that 410 Gone comes
// within a few seconds. A continue token or watch younger than one interval is never
// compacted under a scenario's feet (the compactor compacts to the revision it saw one tick
// before).
constexpr const char* kRealCompactionInterval = "1s";
// Leases are served straight from etcd (no watch cache), so a watch from a compacted
// resourceVersion meets etcd's compaction, as a watch on any resource does once the watch
// cache's window has moved past it.
constexpr const char* kRealExtraArgs = "--watch-cache-sizes=leases.coordination.k8s.io#0";

// etcd + kube-apiserver v1.20.2 via scripts/kube-apiserver/start.sh in a temp dir.
class real_server : public api_server {
 public:
  ~real_server() override { stop(); }
  [[nodiscard]] std::string name() const override { return "real"; }
  [[nodiscard]] bool is_real() const override { return true; }

  std::string start(const std::string& binary) {
    dir_ = make_temp_dir("tidesync-conformance-real");
    if (dir_.empty()) return "mkdtemp failed";
    started_ = true;  // start.sh may have left processes behind even when it fails
    auto r = run({kas_script("start.sh"), dir_},
                 {{"KUBE_APISERVER_BIN", binary},
                  {"KAS_ETCD_COMPACTION_INTERVAL", kRealCompactionInterval},
                  {"KAS_EXTRA_ARGS", kRealExtraArgs},
                  {"KAS_START_TIMEOUT", "90"}},
                 120s);
    if (r.status != 0) return "start.sh failed (" + std::to_string(r.status) + "):\n" + r.output;
    kubeconfig_ = dir_ + "/kubeconfig";
    restricted_ = dir_ + "/kubeconfig-restricted";
    return connect();
  }
  void stop() override {
    disconnect();
    if (!started_) return;
    started_ = false;
    run({kas_script("stop.sh"), dir_}, {}, 60s);  // signals only the PIDs in DIR/pids
    if (std::getenv("TIDESYNC_CONFORMANCE_KEEP") == nullptr) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }
  void request_compaction() override {}

 private:
  bool started_ = false;
};

}  // namespace conformance
