// One thread that runs every HTTP transfer of the process over libcurl multi.
//
// Plain requests and long-lived streams (Kubernetes watches) share the thread and the
// connection cache: connections are reused, and HTTP/2 is negotiated over TLS when the server
// offers it, so many watches can share one connection. The thread sleeps in
// `curl_multi_poll` and other threads wake it with `curl_multi_wakeup`.
//
// Threading contract:
// - `submit`, `cancel`, `post`, `post_after`, `cancel_timer` and `stop` may be called from
//   any thread, including from callbacks running on the loop thread.
// - Every callback (`on_data`, `on_done`, posted functions, timers) runs on the loop thread.
//   Callbacks must not block: a blocked callback stalls every transfer.
// - `on_done` is called exactly once per submitted request: with the response (any HTTP
//   status), or with an error: errc::unavailable (connection failed; curl's message),
//   errc::timeout (total timeout or idle timeout), errc::cancelled (cancel() or stop()).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/error.hpp"

namespace tidesync::http {

// TLS settings of a request. PEM data takes precedence over the matching file.
struct tls_options {
  std::string ca_file;    // CA bundle to verify the server with (empty: system default)
  std::string ca_pem;     // same, as PEM text
  std::string cert_file;  // client certificate (PEM)
  std::string cert_pem;
  std::string key_file;  // client private key (PEM)
  std::string key_pem;
  bool insecure_skip_verify = false;  // do not verify the server (testing only)
};

using header_list = std::vector<std::pair<std::string, std::string>>;

struct response {
  long status = 0;
  header_list headers;  // names lower-cased, in arrival order
  std::string body;     // empty when the request streamed it to on_data

  // First header with this (lower-case) name, or nullptr.
  [[nodiscard]] const std::string* header(std::string_view name) const;
};

struct request {
  std::string method = "GET";
  std::string url;
  header_list headers;
  std::string body;
  // Whole-transfer deadline; zero means none (streams).
  std::chrono::milliseconds timeout{0};
  // Deadline for establishing the connection (TCP + TLS).
  std::chrono::milliseconds connect_timeout{10'000};
  // A transfer that receives no bytes for this long fails with errc::timeout; zero means
  // never. Meant for streams, whose total duration is unbounded. (Checked by the loop itself:
  // curl's low-speed limit averages over 5 s windows and fires seconds late.)
  std::chrono::milliseconds idle_timeout{0};
  // Shared so that many requests to one server do not copy PEM data.
  std::shared_ptr<const tls_options> tls;
  // When set, a 2xx body is delivered here in chunks as it arrives and is not buffered. Error
  // bodies (non-2xx) are always buffered into response.body so the caller can read the
  // server's message.
  std::function<void(std::string_view chunk)> on_data;
  std::function<void(expected<response>)> on_done;
};

using request_id = uint64_t;
using timer_id = uint64_t;

class loop {
 public:
  using clock = std::chrono::steady_clock;

  // Starts the loop thread.
  loop();
  // Calls stop().
  ~loop();
  loop(const loop&) = delete;
  loop& operator=(const loop&) = delete;

  // Starts a transfer, not before `not_before` when given (the client's rate limiter uses this
  // to queue requests without blocking a thread). Returns an id for cancel(). After stop(),
  // on_done is called at once, on the calling thread, with errc::cancelled.
  request_id submit(request r, clock::time_point not_before = {});

  // Stops a queued or running transfer; its on_done gets errc::cancelled (unless it already
  // completed). Once cancel() returns on the loop thread, no more on_data calls happen.
  void cancel(request_id id);

  // Runs `fn` on the loop thread, in posting order. Dropped after stop().
  void post(std::function<void()> fn);

  // Runs `fn` on the loop thread after `delay`. Timers with equal deadlines run in posting
  // order.
  timer_id post_after(std::chrono::milliseconds delay, std::function<void()> fn);
  timer_id post_at(clock::time_point when, std::function<void()> fn);

  // Cancels a timer. Called on the loop thread, it guarantees the timer does not run; from
  // another thread the timer may already be running.
  void cancel_timer(timer_id id);

  // Cancels every transfer (their on_done get errc::cancelled, on the loop thread), drops
  // pending timers and posted functions, and joins the thread. Idempotent. Must not be
  // called from the loop thread.
  void stop();

  // True on the loop thread: lets blocking helpers assert they would not deadlock.
  [[nodiscard]] bool on_loop_thread() const;

  // Transfers in flight (queued or running). For tests and metrics.
  [[nodiscard]] size_t active() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tidesync::http
