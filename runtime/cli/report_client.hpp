// The agents' reports to the controller: a JSON POST to TIDESYNC_REPORT_URL with
// "Authorization: Bearer $TIDESYNC_REPORT_TOKEN", trusting only TIDESYNC_REPORT_CA (PEM) for
// https when it is set. Used by the PodFilesystemSync agents (agent_pfs.cpp: progress reports to
// /report) and the SharedVolume syncer (agent_mirror.cpp: /volume-report); each builds its own
// body.
//
// A report never delays or fails the work it reports: send() returns at once; the POST runs on
// an HTTP loop of the client's own with a 5 s deadline and one retry (after 1 s) on a transport
// error, a 5xx or a 429; what is not delivered is one warning line on stderr that names the
// URL without user info or query, never the token. drain() (and the destructor, at most 12 s)
// waits for the reports in flight before the process exits.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "runtime/json/value.hpp"

namespace tidesync::http {
class loop;
struct tls_options;
}  // namespace tidesync::http

namespace tidesync::cli {

class report_client {
 public:
  // `who` starts each warning: "agent sidecar" -> "tidesync agent sidecar: warning: ...".
  // Reads the three variables; a malformed URL disables the reports (with a warning).
  explicit report_client(std::string who);
  ~report_client();
  report_client(const report_client&) = delete;
  report_client& operator=(const report_client&) = delete;

  // TIDESYNC_REPORT_URL is set (and starts with http:// or https://).
  [[nodiscard]] bool enabled() const { return !url_.empty(); }

  // Posts `body` (a JSON object) in the background; nothing when not enabled.
  void send(const json::value& body);

  // Waits until every report is delivered or given up, at most `limit`.
  void drain(std::chrono::milliseconds limit);

 private:
  void warn(const std::string& text) const;
  void done_one();
  void submit(const std::shared_ptr<const std::string>& body, int attempt);

  std::string who_, url_, token_;
  std::shared_ptr<const http::tls_options> tls_;
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;                 // under mu_
  std::unique_ptr<http::loop> loop_;  // made at the first report; destroyed first
};

// The URL as logs may show it: no user info, no query or fragment.
std::string url_for_logs(const std::string& url);

// At most `limit` bytes (limit > 3), not cutting a UTF-8 sequence; "..." marks a cut.
std::string shortened(std::string text, size_t limit);

// The variable's value, "" when unset.
std::string env_or_empty(const char* name);

}  // namespace tidesync::cli
