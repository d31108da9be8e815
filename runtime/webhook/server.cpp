#include "runtime/webhook/server.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <mutex>
#include <utility>

#include "runtime/log.hpp"
#include "runtime/metrics/http_server.hpp"

namespace tidesync::webhook {
namespace {

void send_json(httplib::Response& res, int status, const json::value& body) {
  res.status = status;
  res.set_content(json::dump(body) + "\n", "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, json::value(json::object{{"message", message}}));
}

struct bio_deleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct x509_deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct pkey_deleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, bio_deleter> bio_of(const std::string& pem) {
  return std::unique_ptr<BIO, bio_deleter>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

using x509_ptr = std::unique_ptr<X509, x509_deleter>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;

// The certificate and key as OpenSSL objects, checked to belong together.
expected<std::pair<x509_ptr, pkey_ptr>> load_pair(const key_pair_pem& tls) {
  x509_ptr cert(PEM_read_bio_X509(bio_of(tls.cert).get(), nullptr, nullptr, nullptr));
  pkey_ptr key(PEM_read_bio_PrivateKey(bio_of(tls.key).get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!cert || !key)
    return make_error(errc::invalid_argument,
                      std::string("the webhook's serving ") + (!cert ? "certificate" : "key") +
                          " does not parse as PEM: recreate Secret tidesync-webhook-tls");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return make_error(errc::invalid_argument,
                      "the webhook's serving key does not match its certificate: recreate Secret "
                      "tidesync-webhook-tls");
  }
  return std::make_pair(std::move(cert), std::move(key));
}

}  // namespace

struct server::impl {
  review_handler handler;
  server_options opts;
  std::unique_ptr<metrics::http_server> http;
  // The pair served to new connections (set_tls replaces it), applied per handshake by the
  // certificate callback, so a rotation never touches the shared SSL_CTX.
  std::mutex tls_mu;
  x509_ptr cert;
  pkey_ptr key;

  static int apply_cert(SSL* ssl, void* arg) {
    auto* self = static_cast<impl*>(arg);
    std::lock_guard lock(self->tls_mu);
    if (SSL_use_certificate(ssl, self->cert.get()) != 1 ||
        SSL_use_PrivateKey(ssl, self->key.get()) != 1) {
      ERR_clear_error();
      return 0;
    }
    return 1;
  }
};

server::server(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

server::~server() {
  stop();
}

expected<std::unique_ptr<server>> server::start(review_handler handler, server_options options) {
  auto addr = metrics::parse_listen_address(options.address);
  if (!addr) return addr.error();
  if (!addr->enabled)
    return make_error(errc::invalid_argument, "the webhook needs an address (HOST:PORT)");
  auto pair = load_pair(options.tls);
  if (!pair) return pair.error();
  // SSLServer takes its own references to the certificate and the key.
  auto ssl = std::make_unique<httplib::SSLServer>(pair->first.get(), pair->second.get());
  if (!ssl->is_valid())
    return make_error(errc::invalid_argument, "the webhook's TLS context could not be set up");
  auto i = std::make_unique<impl>();
  i->handler = std::move(handler);
  i->opts = std::move(options);
  i->cert = std::move(pair->first);
  i->key = std::move(pair->second);
  SSL_CTX_set_cert_cb(ssl->ssl_context(), &impl::apply_cert, i.get());
  i->http = std::make_unique<metrics::http_server>(std::move(ssl));
  auto& http = i->http->http;
  const int threads = std::max(2, i->opts.threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_read_timeout(10);
  http.set_write_timeout(10);
  http.set_payload_max_length(i->opts.max_body);
  i->opts.reviews[i->opts.path] = i->handler;
  for (const auto& [path, handle] : i->opts.reviews) {
    http.Post(path, [handle](const httplib::Request& req, httplib::Response& res) {
      auto body = json::parse(req.body);
      if (!body || !body->is_object())
        return send_error(res, 400, "the body is not a JSON AdmissionReview");
      auto answer = handle(*body);
      if (!answer) {
        int status = answer.error().code == errc::bad_request ? 400 : 500;
        return send_error(res, status, answer.error().message);
      }
      send_json(res, 200, *answer);
    });
  }
  for (const auto& [path, handle] : i->opts.posts) {
    http.Post(path, [handle](const httplib::Request& req, httplib::Response& res) {
      auto body = json::parse(req.body);
      if (!body || !body->is_object()) return send_error(res, 400, "the body is not a JSON object");
      auto answer = handle(*body, req.get_header_value("Authorization"));
      send_json(res, answer.status, answer.body);
    });
  }
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404 && res.body.empty())
      send_error(res, 404, "no such route: the webhook serves POST /mutate-pods");
    if (res.status == 413 && res.body.empty())
      send_error(res, 413, "the AdmissionReview is larger than the webhook accepts");
  });
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, const std::exception_ptr&) {
        send_error(res, 500, "internal error");
      });
  auto port = i->http->start(*addr, i->opts.address);
  if (!port) return port.error();
  log::get("webhook")->info("serving the admission webhook on https://{}{}",
                            metrics::host_port(addr->host, *port), i->opts.path);
  return std::unique_ptr<server>(new server(std::move(i)));
}

uint16_t server::port() const {
  return impl_->http->port();
}

expected<void> server::set_tls(const key_pair_pem& tls) {
  auto pair = load_pair(tls);
  if (!pair) return pair.error();
  std::lock_guard lock(impl_->tls_mu);
  impl_->cert = std::move(pair->first);
  impl_->key = std::move(pair->second);
  return {};
}

void server::stop() {
  if (impl_ && impl_->http) impl_->http->stop();
}

}  // namespace tidesync::webhook
