// The client side of the config API (server.hpp): what `tidesync config publish|get` and
// `tidesync agent config --api` send. Blocking calls over an http::loop, one at a time; the
// call in flight can be cancelled from any thread (a signal handler thread stopping a
// long-poll), so shutdown never waits for a long-poll's whole wait.
//
//   get_latest(known, wait)  GET .../latest[?wait=S] with If-None-Match: "<known>":
//                            changed (200 + latest.json), unchanged (304), not_published (404
//                            NotPublished); any other answer is an error naming what to do
//   put_latest(R, body)      PUT .../latest?expectedRevision=R: the raw answer (201, 409, ...)
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "runtime/archive/revision.hpp"
#include "runtime/configapi/server.hpp"
#include "runtime/error.hpp"
#include "runtime/http/loop.hpp"

namespace tidesync::configapi {

// The environment variable that holds the token when no token file is given.
inline constexpr const char* k_token_env = "TIDESYNC_CONFIG_TOKEN";

// The bearer token: the first line of `token_file` (trimmed), or $TIDESYNC_CONFIG_TOKEN when
// `token_file` is empty. errc::config_error when there is none or the file cannot be read;
// the message never contains the token.
expected<std::string> read_token(const std::string& token_file);

// Parses "NAMESPACE/NAME"; nullopt when it is not of that form.
std::optional<config_ref> parse_config_ref(std::string_view text);

struct client_options {
  std::string api;  // base URL, e.g. http://tidesync-config.tidesync-system:8085
  config_ref config;
  // Re-read before every request (a mounted Secret changes when the token is rotated); empty:
  // $TIDESYNC_CONFIG_TOKEN.
  std::string token_file;
};

// One HTTP answer of the API.
struct answer {
  long status = 0;
  std::string body;
  std::string etag;  // the revision in the ETag header, quotes removed ("" when absent)

  // The server's "message" ({"reason", "message"} error bodies), else the body.
  [[nodiscard]] std::string message() const;
  // The server's "reason" ("" when the body has none).
  [[nodiscard]] std::string reason() const;
};

enum class latest_state {
  changed,        // 200: `latest` is the current latest.json
  unchanged,      // 304: still the revision the caller named
  not_published,  // 404 NotPublished: the SharedConfig exists but has no config yet
};

struct latest_result {
  latest_state state = latest_state::unchanged;
  std::optional<archive::latest> latest;  // with changed
  std::string body;                       // the latest.json text with changed
};

class client {
 public:
  client(http::loop& loop, client_options options);
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // The current latest.json. With `known`, sends If-None-Match: "<known>" ("" : nothing yet)
  // and, when `wait` > 0, ?wait=S: the server answers when the revision is no longer `known`
  // or after `wait` (304 / 404). Errors: errc::unauthorized / forbidden (the token; the
  // message names the Secret), errc::not_found (no such SharedConfig), errc::unavailable
  // (network, 5xx), errc::timeout, errc::cancelled (cancel()), errc::parse_error.
  expected<latest_result> get_latest(const std::optional<std::string>& known,
                                     std::chrono::seconds wait = std::chrono::seconds(0));

  // PUT the bundle `body` against `expected_revision` ("" : nothing published yet). Any HTTP
  // status is an answer; errors are transport failures, a missing token, or cancel().
  expected<answer> put_latest(const std::string& expected_revision, std::string body);

  // Ends the request in flight with errc::cancelled, and every later one at once. Any thread.
  void cancel();

  // "<api>/v1/configs/<ns>/<name>/latest"
  [[nodiscard]] const std::string& latest_url() const { return url_; }
  // For messages: "the config API <api> (SharedConfig ns/name)".
  [[nodiscard]] std::string where() const;

 private:
  expected<answer> call(http::request r);

  http::loop& loop_;
  client_options opts_;
  std::string url_;
  std::mutex mu_;
  bool cancelled_ = false;
  std::optional<http::request_id> in_flight_;
};

// The error for an answer the caller did not expect: the code from the status, the server's
// reason and message, and for 401/403 what to check about the token.
error answer_error(const answer& a, const std::string& where);

}  // namespace tidesync::configapi
