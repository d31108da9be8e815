#include "runtime/cli/report_client.hpp"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "runtime/http/loop.hpp"

namespace tidesync::cli {

std::string shortened(std::string text, size_t limit) {
  if (text.size() <= limit) return text;
  size_t n = limit - 3;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80)
    --n;
  text.resize(n);
  return text + "...";
}

std::string url_for_logs(const std::string& url) {
  std::string u = url.substr(0, url.find_first_of("?#"));
  const auto scheme = u.find("://");
  if (scheme == std::string::npos) return u;
  const auto host_start = scheme + 3;
  const auto at = u.find('@', host_start);
  const auto slash = u.find('/', host_start);
  if (at != std::string::npos && (slash == std::string::npos || at < slash))
    u.erase(host_start, at + 1 - host_start);
  return u;
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

report_client::report_client(std::string who) : who_(std::move(who)) {
  url_ = env_or_empty("TIDESYNC_REPORT_URL");
  if (url_.empty()) return;
  if (url_.rfind("http://", 0) != 0 && url_.rfind("https://", 0) != 0) {
    warn("TIDESYNC_REPORT_URL must start with http:// or https://: no progress reports");
    url_.clear();
    return;
  }
  token_ = env_or_empty("TIDESYNC_REPORT_TOKEN");
  if (token_.empty()) warn("TIDESYNC_REPORT_TOKEN is not set: progress reports go without a token");
  if (auto ca = env_or_empty("TIDESYNC_REPORT_CA"); !ca.empty()) {
    if (ca.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
      warn("TIDESYNC_REPORT_CA holds no PEM certificate: https reports will fail");
    auto tls = std::make_shared<http::tls_options>();
    tls->ca_pem = std::move(ca);
    tls_ = std::move(tls);
  }
}

report_client::~report_client() {
  drain(std::chrono::seconds(12));
}

void report_client::send(const json::value& body) {
  if (!enabled()) return;
  auto text = std::make_shared<const std::string>(json::dump(body));
  {
    std::lock_guard lock(mu_);
    if (!loop_) loop_ = std::make_unique<http::loop>();
    ++in_flight_;
  }
  submit(text, 1);
}

void report_client::drain(std::chrono::milliseconds limit) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, limit, [&] { return in_flight_ == 0; }))
    warn("progress reports still in flight at exit were dropped");
}

void report_client::warn(const std::string& text) const {
  std::fprintf(stderr, "tidesync %s: warning: %s\n", who_.c_str(), text.c_str());
}

void report_client::done_one() {
  {
    std::lock_guard lock(mu_);
    --in_flight_;
  }
  cv_.notify_all();
}

// Called from the caller's thread (attempt 1) and from the loop thread (the retry).
void report_client::submit(const std::shared_ptr<const std::string>& body, int attempt) {
  http::request req;
  req.method = "POST";
  req.url = url_;
  req.headers.emplace_back("Content-Type", "application/json");
  if (!token_.empty()) req.headers.emplace_back("Authorization", "Bearer " + token_);
  req.body = *body;
  req.timeout = std::chrono::seconds(5);
  req.connect_timeout = std::chrono::seconds(5);
  req.tls = tls_;
  req.on_done = [this, body, attempt](expected<http::response> res) {
    std::string problem;
    bool retry = false;
    if (!res) {
      problem = res.error().message;
      retry = res.error().code != errc::cancelled;
    } else if (res->status < 200 || res->status >= 300) {
      problem = "HTTP " + std::to_string(res->status);
      retry = res->status >= 500 || res->status == 429;
    }
    if (problem.empty()) {
      done_one();
      return;
    }
    if (retry && attempt == 1) {
      loop_->post_after(std::chrono::seconds(1), [this, body] { submit(body, 2); });
      return;
    }
    warn("progress report to " + url_for_logs(url_) + " not delivered (" + std::to_string(attempt) +
         " attempt(s)): " + shortened(problem, 300));
    done_one();
  };
  loop_->submit(std::move(req));
}

}  // namespace tidesync::cli
