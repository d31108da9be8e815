#include "runtime/http/loop.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "runtime/log.hpp"

namespace tidesync::http {

const std::string* response::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

namespace {

std::once_flag curl_init_once;

// Runs a user callback; an exception must not take the loop thread (and every transfer) down.
template <class Fn>
void guarded(const char* what, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    log::get("http")->error("{} threw: {}", what, e.what());
  } catch (...) {
    log::get("http")->error("{} threw a non-standard exception", what);
  }
}

error cancelled_error() {
  return make_error(errc::cancelled, "request cancelled");
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

struct loop::impl {
  struct transfer {
    request_id id = 0;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    request req;
    response resp;
    char errbuf[CURL_ERROR_SIZE] = {};
    bool cancelled = false;
    bool idle_expired = false;  // cancelled by the idle timeout: report errc::timeout
    clock::time_point last_activity;
    bool decided = false;  // whether the body streams (known at the first body byte)
    bool stream = false;

    ~transfer() {
      if (headers != nullptr) curl_slist_free_all(headers);
      if (easy != nullptr) curl_easy_cleanup(easy);
    }
  };

  CURLM* multi = nullptr;
  std::thread thread;
  std::atomic<std::thread::id> thread_id{};

  // Shared with other threads, under `mu`.
  mutable std::mutex mu;
  bool stopping = false;
  std::vector<std::function<void()>> queue;
  std::map<std::pair<clock::time_point, timer_id>, std::function<void()>> timers;
  std::unordered_map<timer_id, clock::time_point> timer_deadlines;
  std::unordered_map<request_id, request> waiting;        // submitted, not started yet
  std::unordered_map<request_id, timer_id> start_timers;  // of delayed waiting requests
  std::vector<request> cancelled_waiting;                 // to be told errc::cancelled
  std::vector<request_id> cancel_ids;                     // running transfers to cancel
  std::atomic<uint64_t> next_id{1};

  // Loop thread only.
  std::unordered_map<request_id, std::unique_ptr<transfer>> transfers;
  std::vector<request_id> cancelled_running;
  std::atomic<size_t> running{0};

  void wake() {
    if (multi != nullptr) curl_multi_wakeup(multi);
  }

  [[nodiscard]] bool on_loop() const { return std::this_thread::get_id() == thread_id.load(); }

  // --- curl callbacks ------------------------------------------------------------------

  static size_t on_header(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<transfer*>(user);
    t->last_activity = clock::now();
    std::string_view line(data, size * n);
    if (line.rfind("HTTP/", 0) == 0) {
      t->resp.headers.clear();  // a new response (after 100 Continue, say)
      return line.size();
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return line.size();
    std::string name(trim(line.substr(0, colon)));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    t->resp.headers.emplace_back(std::move(name), std::string(trim(line.substr(colon + 1))));
    return line.size();
  }

  static size_t on_write(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<transfer*>(user);
    const size_t len = size * n;
    if (t->cancelled) return 0;  // aborts the transfer; finish() reports errc::cancelled
    t->last_activity = clock::now();
    if (!t->decided) {
      long status = 0;
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
      t->stream = t->req.on_data && status >= 200 && status < 300;
      t->decided = true;
    }
    if (t->stream) {
      guarded("on_data", [&] { t->req.on_data(std::string_view(data, len)); });
    } else {
      t->resp.body.append(data, len);
    }
    return len;
  }

  // --- transfers -----------------------------------------------------------------------

  void start(request_id id) {
    request req;
    {
      std::lock_guard<std::mutex> guard(mu);
      auto it = waiting.find(id);
      if (it == waiting.end()) return;  // cancelled meanwhile
      req = std::move(it->second);
      waiting.erase(it);
      start_timers.erase(id);
    }
    auto t = std::make_unique<transfer>();
    t->id = id;
    t->req = std::move(req);
    t->easy = curl_easy_init();
    if (t->easy == nullptr) {
      complete(std::move(t), make_error(errc::internal, "curl_easy_init failed"));
      return;
    }
    CURL* e = t->easy;
    const request& r = t->req;
    curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (r.url.rfind("https://", 0) == 0) {
      // Wait for an HTTP/2 connection being set up to the same host instead of opening a
      // second one: watches and requests then share one multiplexed connection.
      curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    }
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &impl::on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &impl::on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());

    if (r.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (r.method != "GET" || !r.body.empty()) {
      if (!r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH") {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
      }
      if (r.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    }

    for (const auto& [k, v] : r.headers) {
      std::string line = k + ": " + v;
      t->headers = curl_slist_append(t->headers, line.c_str());
    }
    // No "Expect: 100-continue" round trip before large bodies.
    t->headers = curl_slist_append(t->headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);

    if (r.timeout.count() > 0) {
      curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout.count()));
    }
    if (r.connect_timeout.count() > 0) {
      curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connect_timeout.count()));
    }

    if (r.tls) {
      const tls_options& tls = *r.tls;
      // Blobs are copied by curl (CURL_BLOB_COPY), so the strings need not outlive this call.
      auto set_blob = [e](CURLoption opt, const std::string& pem) {
        curl_blob blob{const_cast<char*>(pem.data()), pem.size(), CURL_BLOB_COPY};
        curl_easy_setopt(e, opt, &blob);
      };
      // A CA given here is the only one trusted: libcurl (Debian's is built with
      // --with-ca-path=/etc/ssl/certs) would otherwise also trust the system's CA directory.
      if (!tls.ca_pem.empty()) {
        set_blob(CURLOPT_CAINFO_BLOB, tls.ca_pem);
        curl_easy_setopt(e, CURLOPT_CAPATH, static_cast<char*>(nullptr));
      } else if (!tls.ca_file.empty()) {
        curl_easy_setopt(e, CURLOPT_CAINFO, tls.ca_file.c_str());
        curl_easy_setopt(e, CURLOPT_CAPATH, static_cast<char*>(nullptr));
      }
      if (!tls.cert_pem.empty()) {
        set_blob(CURLOPT_SSLCERT_BLOB, tls.cert_pem);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
      } else if (!tls.cert_file.empty()) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, tls.cert_file.c_str());
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
      }
      if (!tls.key_pem.empty()) {
        set_blob(CURLOPT_SSLKEY_BLOB, tls.key_pem);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
      } else if (!tls.key_file.empty()) {
        curl_easy_setopt(e, CURLOPT_SSLKEY, tls.key_file.c_str());
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
      }
      if (tls.insecure_skip_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
      }
    }

    CURLMcode mc = curl_multi_add_handle(multi, e);
    if (mc != CURLM_OK) {
      complete(std::move(t), make_error(errc::internal, std::string("curl_multi_add_handle: ") +
                                                            curl_multi_strerror(mc)));
      return;
    }
    t->last_activity = clock::now();
    transfers.emplace(id, std::move(t));
    running = transfers.size();
  }

  // Cancels transfers idle for longer than their idle_timeout; returns the time until the
  // next one could expire (capped at `cap`).
  std::chrono::milliseconds check_idle(std::chrono::milliseconds cap) {
    const auto now = clock::now();
    for (auto& [id, t] : transfers) {
      if (t->req.idle_timeout.count() <= 0 || t->cancelled) continue;
      const auto deadline = t->last_activity + t->req.idle_timeout;
      if (deadline <= now) {
        t->idle_expired = true;
        mark_cancelled(id);
      } else {
        cap = std::min(cap, std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
      }
    }
    return cap;
  }

  static error transport_error(const transfer& t, CURLcode rc) {
    std::string detail = t.errbuf[0] != '\0' ? std::string(t.errbuf) : curl_easy_strerror(rc);
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r'))
      detail.pop_back();
    errc code = errc::unavailable;
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
        code = errc::timeout;
        break;
      case CURLE_URL_MALFORMAT:
      case CURLE_UNSUPPORTED_PROTOCOL:
        code = errc::invalid_argument;
        break;
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CACERT_BADFILE:
        code = errc::config_error;
        break;
      default:
        break;
    }
    return make_error(code, t.req.method + " " + t.req.url + ": " + detail);
  }

  // Removes a running transfer and reports its outcome.
  void finish(request_id id, CURLcode rc) {
    auto it = transfers.find(id);
    if (it == transfers.end()) return;
    std::unique_ptr<transfer> t = std::move(it->second);
    transfers.erase(it);
    running = transfers.size();
    curl_multi_remove_handle(multi, t->easy);
    if (t->idle_expired) {
      error err = make_error(errc::timeout, t->req.method + " " + t->req.url + ": no data for " +
                                                std::to_string(t->req.idle_timeout.count()) +
                                                " ms (idle timeout)");
      complete(std::move(t), std::move(err));
    } else if (t->cancelled) {
      complete(std::move(t), cancelled_error());
    } else if (rc != CURLE_OK) {
      error err = transport_error(*t, rc);
      log::get("http")->debug("{}", err.to_string());
      complete(std::move(t), std::move(err));
    } else {
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->resp.status);
      // Method, URL and status only: headers carry credentials and are never logged.
      log::get("http")->debug("{} {} -> {}", t->req.method, t->req.url, t->resp.status);
      response resp = std::move(t->resp);
      complete(std::move(t), std::move(resp));
    }
  }

  void complete(std::unique_ptr<transfer> t, expected<response> result) {
    auto done = std::move(t->req.on_done);
    t.reset();  // free curl resources before user code runs
    if (done) guarded("on_done", [&] { done(std::move(result)); });
  }

  void mark_cancelled(request_id id) {
    auto it = transfers.find(id);
    if (it == transfers.end() || it->second->cancelled) return;
    it->second->cancelled = true;
    cancelled_running.push_back(id);
  }

  void finish_cancelled() {
    while (!cancelled_running.empty()) {
      std::vector<request_id> ids;
      ids.swap(cancelled_running);
      for (request_id id : ids)
        finish(id, CURLE_OK);
    }
  }

  void fail_cancelled_waiting() {
    std::vector<request> reqs;
    {
      std::lock_guard<std::mutex> guard(mu);
      reqs.swap(cancelled_waiting);
    }
    for (auto& r : reqs) {
      if (r.on_done) guarded("on_done", [&] { r.on_done(cancelled_error()); });
    }
  }

  void drain_messages() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      if (t != nullptr) finish(t->id, msg->data.result);
    }
  }

  // Runs due timers one at a time, so a timer can cancel a later one due in the same pass.
  void run_timers() {
    for (;;) {
      std::function<void()> fn;
      {
        std::lock_guard<std::mutex> guard(mu);
        if (stopping || timers.empty()) return;
        auto it = timers.begin();
        if (it->first.first > clock::now()) return;
        fn = std::move(it->second);
        timer_deadlines.erase(it->first.second);
        timers.erase(it);
      }
      guarded("timer", fn);
    }
  }

  void run() {
    thread_id = std::this_thread::get_id();
    for (;;) {
      std::vector<std::function<void()>> fns;
      std::vector<request_id> ids;
      {
        std::lock_guard<std::mutex> guard(mu);
        if (stopping) break;
        fns.swap(queue);
        ids.swap(cancel_ids);
      }
      for (auto& fn : fns)
        guarded("posted function", fn);
      for (request_id id : ids)
        mark_cancelled(id);
      fail_cancelled_waiting();
      run_timers();
      finish_cancelled();

      int still_running = 0;
      curl_multi_perform(multi, &still_running);
      drain_messages();
      finish_cancelled();

      const auto idle_wait = check_idle(std::chrono::milliseconds(1000));
      finish_cancelled();

      long wait_ms = -1;
      curl_multi_timeout(multi, &wait_ms);
      if (wait_ms < 0 || wait_ms > idle_wait.count()) wait_ms = idle_wait.count();
      {
        std::lock_guard<std::mutex> guard(mu);
        if (!queue.empty() || !cancel_ids.empty() || !cancelled_waiting.empty() || stopping) {
          wait_ms = 0;
        } else if (!timers.empty()) {
          // Rounded up: waking a little early would spin until the deadline.
          auto until = std::chrono::ceil<std::chrono::milliseconds>(timers.begin()->first.first -
                                                                    clock::now())
                           .count();
          wait_ms = std::clamp<long>(static_cast<long>(until), 0, wait_ms);
        }
      }
      if (wait_ms > 0) curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait_ms), nullptr);
    }
    shutdown();
    thread_id = std::thread::id{};  // ids of finished threads are reused
  }

  // On the loop thread, after `stopping` was set: everything still in flight is cancelled.
  void shutdown() {
    std::vector<request_id> ids;
    for (auto& [id, t] : transfers) {
      t->cancelled = true;
      ids.push_back(id);
    }
    for (request_id id : ids)
      finish(id, CURLE_OK);
    std::vector<request> reqs;
    {
      std::lock_guard<std::mutex> guard(mu);
      for (auto& [id, r] : waiting)
        reqs.push_back(std::move(r));
      waiting.clear();
      start_timers.clear();
      for (auto& r : cancelled_waiting)
        reqs.push_back(std::move(r));
      cancelled_waiting.clear();
      queue.clear();
      timers.clear();
      timer_deadlines.clear();
      cancel_ids.clear();
    }
    for (auto& r : reqs) {
      if (r.on_done) guarded("on_done", [&] { r.on_done(cancelled_error()); });
    }
  }
};

loop::loop() : impl_(std::make_unique<impl>()) {
  std::call_once(curl_init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  impl_->multi = curl_multi_init();
  // Multiplex HTTP/2 streams over one connection (the default since curl 7.62; explicit
  // here because watches depend on it).
  curl_multi_setopt(impl_->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  impl_->thread = std::thread([this] { impl_->run(); });
}

loop::~loop() {
  stop();
  if (impl_->multi != nullptr) curl_multi_cleanup(impl_->multi);
}

request_id loop::submit(request r, clock::time_point not_before) {
  const request_id id = impl_->next_id++;
  {
    std::unique_lock<std::mutex> guard(impl_->mu);
    if (impl_->stopping) {
      guard.unlock();
      if (r.on_done) guarded("on_done", [&] { r.on_done(cancelled_error()); });
      return id;
    }
    impl_->waiting.emplace(id, std::move(r));
    auto start = [p = impl_.get(), id] { p->start(id); };
    if (not_before <= clock::now()) {
      impl_->queue.emplace_back(std::move(start));
    } else {
      const timer_id tid = impl_->next_id++;
      impl_->timers.emplace(std::make_pair(not_before, tid), std::move(start));
      impl_->timer_deadlines.emplace(tid, not_before);
      impl_->start_timers.emplace(id, tid);
    }
  }
  impl_->wake();
  return id;
}

void loop::cancel(request_id id) {
  {
    std::lock_guard<std::mutex> guard(impl_->mu);
    if (impl_->stopping) return;  // shutdown cancels everything anyway
    auto it = impl_->waiting.find(id);
    if (it != impl_->waiting.end()) {
      impl_->cancelled_waiting.push_back(std::move(it->second));
      impl_->waiting.erase(it);
      if (auto t = impl_->start_timers.find(id); t != impl_->start_timers.end()) {
        // Drop the start timer now rather than let it sit until its deadline.
        auto d = impl_->timer_deadlines.find(t->second);
        if (d != impl_->timer_deadlines.end()) {
          impl_->timers.erase(std::make_pair(d->second, t->second));
          impl_->timer_deadlines.erase(d);
        }
        impl_->start_timers.erase(t);
      }
    } else if (!impl_->on_loop()) {
      impl_->cancel_ids.push_back(id);
    }
  }
  if (impl_->on_loop()) impl_->mark_cancelled(id);
  impl_->wake();
}

void loop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> guard(impl_->mu);
    if (impl_->stopping) return;
    impl_->queue.push_back(std::move(fn));
  }
  impl_->wake();
}

timer_id loop::post_after(std::chrono::milliseconds delay, std::function<void()> fn) {
  return post_at(clock::now() + delay, std::move(fn));
}

timer_id loop::post_at(clock::time_point when, std::function<void()> fn) {
  const timer_id id = impl_->next_id++;
  {
    std::lock_guard<std::mutex> guard(impl_->mu);
    if (impl_->stopping) return id;
    impl_->timers.emplace(std::make_pair(when, id), std::move(fn));
    impl_->timer_deadlines.emplace(id, when);
  }
  impl_->wake();
  return id;
}

void loop::cancel_timer(timer_id id) {
  std::lock_guard<std::mutex> guard(impl_->mu);
  auto it = impl_->timer_deadlines.find(id);
  if (it == impl_->timer_deadlines.end()) return;
  impl_->timers.erase(std::make_pair(it->second, id));
  impl_->timer_deadlines.erase(it);
}

void loop::stop() {
  {
    std::lock_guard<std::mutex> guard(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake();
  if (impl_->on_loop()) return;  // cannot join ourselves; the destructor joins
  if (impl_->thread.joinable()) impl_->thread.join();
}

bool loop::on_loop_thread() const {
  return impl_->on_loop();
}

size_t loop::active() const {
  std::lock_guard<std::mutex> guard(impl_->mu);
  return impl_->waiting.size() + impl_->running.load();
}

}  // namespace tidesync::http
