// The admission webhook's HTTPS server (docs/podfilesystemsync.md, "The webhook"): POST
// `path` with an AdmissionReview; `handler` answers it (the controller passes
// config::answer_admission_review over its decisions). TLS from PEM (certs.hpp makes them).
// Mechanism only: what is decided is the handler's.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "runtime/error.hpp"
#include "runtime/json/value.hpp"
#include "runtime/webhook/certs.hpp"

namespace tidesync::webhook {

// Answers one AdmissionReview; errc::bad_request becomes 400 with the message.
using review_handler = std::function<expected<json::value>(const json::value& review)>;

// Answers another JSON POST on the same server (the agents' progress reports): the body and the
// Authorization header in, the HTTP status and a JSON body out.
struct post_answer {
  int status = 200;
  json::value body;
};
using post_handler =
    std::function<post_answer(const json::value& body, const std::string& authorization)>;

struct server_options {
  std::string address = "0.0.0.0:9443";  // HOST:PORT (port 0 picks one)
  std::string path = "/mutate-pods";
  key_pair_pem tls;  // the serving certificate and its key
  int threads = 8;
  // The API server sends small reviews: larger bodies are refused (413).
  size_t max_body = 4u << 20;
  // More AdmissionReview routes by path (another webhook of the configuration).
  std::map<std::string, review_handler> reviews;
  // More JSON POST routes by path (e.g. "/report").
  std::map<std::string, post_handler> posts;
};

class server {
 public:
  // errc::invalid_argument: bad address or a certificate/key that does not load or match;
  // errc::unavailable: the address cannot be bound.
  static expected<std::unique_ptr<server>> start(review_handler handler, server_options options);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  [[nodiscard]] uint16_t port() const;
  // Serves `tls` to every connection from now on (certificate rotation); connections already
  // open keep theirs. errc::invalid_argument when it does not parse or the key does not match.
  expected<void> set_tls(const key_pair_pem& tls);
  void stop();  // idempotent

 private:
  struct impl;
  explicit server(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace tidesync::webhook
