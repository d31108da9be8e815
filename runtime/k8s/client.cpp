#include "runtime/k8s/client.hpp"

#include <future>
#include <mutex>

#include "runtime/base64.hpp"
#include "runtime/k8s/rate_limiter.hpp"
#include "runtime/log.hpp"

#ifndef TIDESYNC_VERSION
#define TIDESYNC_VERSION "0.0.0"
#endif

namespace tidesync::k8s {

std::string_view content_type(patch_type type) {
  switch (type) {
    case patch_type::merge:
      return "application/merge-patch+json";
    case patch_type::json:
      return "application/json-patch+json";
    case patch_type::strategic_merge:
      return "application/strategic-merge-patch+json";
  }
  return "application/merge-patch+json";
}

std::string url_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

error error_from_response(long status, std::string_view body, std::string_view what) {
  error err;
  err.http_status = static_cast<int>(status);
  err.code = errc_from_http_status(static_cast<int>(status));
  if (auto doc = json::parse(body); doc && doc->is_object()) {
    err.message = std::string(doc->get_string("message"));
    err.reason = std::string(doc->get_string("reason"));
    // The object the error is about and, for 422, one cause per field: callers report
    // them (e.g. in a condition) without parsing the message.
    if (const json::value* details = doc->at("details"); details && details->is_object()) {
      error_subject subject{std::string(details->get_string("kind")),
                            std::string(details->get_string("group")),
                            std::string(details->get_string("name"))};
      if (!subject.kind.empty() || !subject.name.empty()) err.subject = std::move(subject);
      if (const json::value* causes = details->at("causes"); causes && causes->is_array()) {
        for (const auto& c : causes->as_array()) {
          err.causes.push_back({std::string(c.get_string("reason")),
                                std::string(c.get_string("field")),
                                std::string(c.get_string("message"))});
        }
      }
    }
  }
  if (status == 409 && err.reason == "AlreadyExists") err.code = errc::already_exists;
  if (err.message.empty()) {
    // Not a Status object (a proxy, a load balancer): keep the start of what it said.
    std::string_view excerpt = body.substr(0, 200);
    err.message = std::string(what) + ": HTTP " + std::to_string(status);
    if (!excerpt.empty()) err.message += ": " + std::string(excerpt);
  }
  return err;
}

namespace {

class query {
 public:
  explicit query(std::string path) : out_(std::move(path)) {}
  query& add(std::string_view key, std::string_view value) {
    if (value.empty()) return *this;
    out_ += first_ ? '?' : '&';
    first_ = false;
    out_ += key;
    out_ += '=';
    out_ += url_encode(value);
    return *this;
  }
  std::string str() && { return std::move(out_); }

 private:
  std::string out_;
  bool first_ = true;
};

std::string list_path(const resource& r, std::string_view ns, const list_options& o) {
  query q(r.collection_path(ns));
  q.add("labelSelector", o.label_selector).add("fieldSelector", o.field_selector);
  if (o.limit > 0) q.add("limit", std::to_string(o.limit));
  q.add("continue", o.continue_token).add("resourceVersion", o.resource_version);
  return std::move(q).str();
}

bool is_success(long status) {
  return status >= 200 && status < 300;
}

// Blocks until `start` delivers its result through the callback it is given.
template <class T, class Start>
expected<T> wait_for(http::loop& loop, Start&& start) {
  if (loop.on_loop_thread()) {
    log::get("client")->error("a blocking *_sync call was made on the HTTP loop thread");
    return make_error(errc::internal,
                      "blocking client call on the HTTP loop thread would deadlock; use the "
                      "asynchronous call");
  }
  auto promise = std::make_shared<std::promise<expected<T>>>();
  auto future = promise->get_future();
  start([promise](expected<T> result) { promise->set_value(std::move(result)); });
  return future.get();
}

}  // namespace

struct client::state {
  std::mutex mu;
  token_bucket bucket;
  token_source tokens;
  std::string user_agent;
  std::string basic_auth;  // "Basic ..." or empty

  state(const connection_config& c, const client_options& o)
      : bucket(o.qps, o.burst), tokens(c.token, c.token_file, o.token_recheck) {}
};

client::client(http::loop& loop, connection_config config, client_options options)
    : loop_(loop),
      config_(std::move(config)),
      options_(std::move(options)),
      state_(std::make_unique<state>(config_, options_)) {
  state_->user_agent = options_.user_agent.empty() ? std::string("tidesync/") + TIDESYNC_VERSION
                                                   : options_.user_agent;
  if (!config_.username.empty() || !config_.password.empty()) {
    state_->basic_auth = "Basic " + base64::encode(config_.username + ":" + config_.password);
  }
  if (!config_.tls) config_.tls = std::make_shared<http::tls_options>();
}

client::~client() = default;

client::request_id client::send(std::string method, std::string path, std::string body,
                                std::string_view ctype, std::chrono::milliseconds timeout,
                                std::chrono::milliseconds idle_timeout,
                                std::function<void(std::string_view)> on_data,
                                std::function<void(expected<http::response>)> on_done) {
  http::request req;
  req.method = std::move(method);
  req.url = config_.server + path;
  req.headers.emplace_back("Accept", "application/json");
  req.headers.emplace_back("User-Agent", state_->user_agent);
  if (std::string token = state_->tokens.get(); !token.empty()) {
    req.headers.emplace_back("Authorization", "Bearer " + token);
  } else if (!state_->basic_auth.empty()) {
    req.headers.emplace_back("Authorization", state_->basic_auth);
  }
  if (!body.empty() || !ctype.empty()) {
    req.headers.emplace_back("Content-Type",
                             ctype.empty() ? std::string("application/json") : std::string(ctype));
  }
  req.body = std::move(body);
  req.timeout = timeout;
  req.idle_timeout = idle_timeout;
  req.tls = config_.tls;
  req.on_data = std::move(on_data);
  req.on_done = std::move(on_done);
  http::loop::clock::time_point not_before;
  {
    std::lock_guard<std::mutex> guard(state_->mu);
    not_before = state_->bucket.reserve(http::loop::clock::now());
  }
  return loop_.submit(std::move(req), not_before);
}

client::request_id client::send_json(std::string method, std::string path, std::string body,
                                     std::string_view ctype, json_callback cb) {
  std::string what = method + " " + path;
  return send(
      std::move(method), std::move(path), std::move(body), ctype, options_.timeout,
      std::chrono::milliseconds(0), nullptr,
      [cb = std::move(cb), what = std::move(what)](expected<http::response> res) {
        if (!res) return cb(res.error());
        if (!is_success(res->status)) {
          return cb(error_from_response(res->status, res->body, what));
        }
        if (res->body.empty()) return cb(json::value());
        auto doc = json::parse(res->body);
        if (!doc) {
          return cb(make_error(errc::parse_error,
                               what + ": the server's answer is not JSON: " + doc.error().message));
        }
        cb(std::move(*doc));
      });
}

client::request_id client::get(const resource& r, std::string_view ns, std::string_view name,
                               json_callback cb) {
  return send_json("GET", r.object_path(ns, name), {}, {}, std::move(cb));
}

client::request_id client::list(const resource& r, std::string_view ns, const list_options& opts,
                                json_callback cb) {
  return send_json("GET", list_path(r, ns, opts), {}, {}, std::move(cb));
}

client::request_id client::list_raw(const resource& r, std::string_view ns,
                                    const list_options& opts, raw_callback cb) {
  std::string path = list_path(r, ns, opts);
  std::string what = "GET " + path;
  return send("GET", std::move(path), {}, {}, options_.timeout, std::chrono::milliseconds(0),
              nullptr, [cb = std::move(cb), what = std::move(what)](expected<http::response> res) {
                if (!res) return cb(res.error());
                if (!is_success(res->status)) {
                  return cb(error_from_response(res->status, res->body, what));
                }
                cb(std::move(res->body));
              });
}

void client::list_all(const resource& r, std::string_view ns, const list_options& opts,
                      json_callback cb) {
  list_all_page(r, std::string(ns), opts, nullptr, std::move(cb));
}

void client::list_all_page(const resource& r, std::string ns, list_options opts,
                           std::shared_ptr<json::value> acc, json_callback cb) {
  list(r, ns, opts,
       [this, r, ns, opts, acc, cb = std::move(cb)](expected<json::value> page) mutable {
         if (!page) return cb(page.error());
         json::value& v = *page;
         std::string next;
         if (const json::value* c = v.at_path({"metadata", "continue"}); c && c->is_string()) {
           next = c->as_string();
         }
         if (!acc) {
           acc = std::make_shared<json::value>(std::move(v));
           if (!acc->at("items") || !acc->at("items")->is_array()) {
             (*acc)["items"] = json::array{};
           }
         } else {
           json::array& items = (*acc)["items"].as_array();
           if (json::value* more = v.at("items"); more && more->is_array()) {
             for (auto& item : more->as_array())
               items.push_back(std::move(item));
           }
           if (json::value* meta = v.at("metadata")) (*acc)["metadata"] = std::move(*meta);
         }
         if (next.empty()) {
           if (json::value* meta = acc->at("metadata"); meta && meta->is_object()) {
             meta->as_object().erase("continue");
           }
           return cb(std::move(*acc));
         }
         opts.continue_token = std::move(next);
         list_all_page(r, std::move(ns), std::move(opts), std::move(acc), std::move(cb));
       });
}

client::request_id client::create(const resource& r, std::string_view ns, const json::value& obj,
                                  json_callback cb) {
  return send_json("POST", r.collection_path(ns), json::dump(obj), {}, std::move(cb));
}

client::request_id client::update(const resource& r, std::string_view ns, std::string_view name,
                                  const json::value& obj, json_callback cb) {
  return send_json("PUT", r.object_path(ns, name), json::dump(obj), {}, std::move(cb));
}

client::request_id client::patch(const resource& r, std::string_view ns, std::string_view name,
                                 patch_type type, const json::value& p, json_callback cb) {
  return send_json("PATCH", r.object_path(ns, name), json::dump(p), content_type(type),
                   std::move(cb));
}

client::request_id client::update_status(const resource& r, std::string_view ns,
                                         std::string_view name, const json::value& obj,
                                         json_callback cb) {
  return send_json("PUT", r.object_path(ns, name) + "/status", json::dump(obj), {}, std::move(cb));
}

client::request_id client::patch_status(const resource& r, std::string_view ns,
                                        std::string_view name, patch_type type,
                                        const json::value& p, json_callback cb) {
  return send_json("PATCH", r.object_path(ns, name) + "/status", json::dump(p), content_type(type),
                   std::move(cb));
}

client::request_id client::remove(const resource& r, std::string_view ns, std::string_view name,
                                  const delete_options& opts, json_callback cb) {
  std::string body;
  if (!opts.propagation_policy.empty() || !opts.precondition_uid.empty() ||
      !opts.precondition_resource_version.empty()) {
    json::value v = json::object{{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
    if (!opts.propagation_policy.empty()) v["propagationPolicy"] = opts.propagation_policy;
    if (!opts.precondition_uid.empty()) v["preconditions"]["uid"] = opts.precondition_uid;
    if (!opts.precondition_resource_version.empty()) {
      v["preconditions"]["resourceVersion"] = opts.precondition_resource_version;
    }
    body = json::dump(v);
  }
  return send_json("DELETE", r.object_path(ns, name), std::move(body), {}, std::move(cb));
}

client::request_id client::raw(std::string_view method, std::string_view path, std::string body,
                               response_callback cb, std::string_view ctype) {
  std::string what = std::string(method) + " " + std::string(path);
  return send(std::string(method), std::string(path), std::move(body), ctype, options_.timeout,
              std::chrono::milliseconds(0), nullptr,
              [cb = std::move(cb), what = std::move(what)](expected<http::response> res) {
                if (!res) return cb(res.error());
                if (!is_success(res->status)) {
                  return cb(error_from_response(res->status, res->body, what));
                }
                cb(raw_response{res->status, std::move(res->body)});
              });
}

client::request_id client::watch(const resource& r, std::string_view ns, const watch_options& opts,
                                 chunk_callback on_chunk, done_callback on_done) {
  query q(r.collection_path(ns));
  q.add("watch", "true");
  q.add("resourceVersion", opts.resource_version);
  if (opts.allow_bookmarks) q.add("allowWatchBookmarks", "true");
  q.add("labelSelector", opts.label_selector).add("fieldSelector", opts.field_selector);
  if (opts.timeout_seconds > 0) q.add("timeoutSeconds", std::to_string(opts.timeout_seconds));
  std::string path = std::move(q).str();
  std::string what = "watch " + path;
  // No total deadline: a watch lasts as long as the server keeps it; the idle timeout catches
  // dead connections.
  return send("GET", std::move(path), {}, {}, std::chrono::milliseconds(0), opts.idle_timeout,
              std::move(on_chunk),
              [on_done = std::move(on_done), what = std::move(what)](expected<http::response> res) {
                if (!res) return on_done(res.error());
                if (!is_success(res->status)) {
                  return on_done(error_from_response(res->status, res->body, what));
                }
                on_done(expected<void>());
              });
}

void client::cancel(request_id id) {
  loop_.cancel(id);
}

// --- blocking helpers ----------------------------------------------------------------------

expected<json::value> client::get_sync(const resource& r, std::string_view ns,
                                       std::string_view name) {
  return wait_for<json::value>(loop_, [&](json_callback cb) { get(r, ns, name, std::move(cb)); });
}

expected<json::value> client::list_sync(const resource& r, std::string_view ns,
                                        const list_options& opts) {
  return wait_for<json::value>(loop_, [&](json_callback cb) { list(r, ns, opts, std::move(cb)); });
}

expected<std::string> client::list_raw_sync(const resource& r, std::string_view ns,
                                            const list_options& opts) {
  return wait_for<std::string>(loop_,
                               [&](raw_callback cb) { list_raw(r, ns, opts, std::move(cb)); });
}

expected<json::value> client::list_all_sync(const resource& r, std::string_view ns,
                                            const list_options& opts) {
  return wait_for<json::value>(loop_,
                               [&](json_callback cb) { list_all(r, ns, opts, std::move(cb)); });
}

expected<json::value> client::create_sync(const resource& r, std::string_view ns,
                                          const json::value& obj) {
  return wait_for<json::value>(loop_, [&](json_callback cb) { create(r, ns, obj, std::move(cb)); });
}

expected<json::value> client::update_sync(const resource& r, std::string_view ns,
                                          std::string_view name, const json::value& obj) {
  return wait_for<json::value>(loop_,
                               [&](json_callback cb) { update(r, ns, name, obj, std::move(cb)); });
}

expected<json::value> client::patch_sync(const resource& r, std::string_view ns,
                                         std::string_view name, patch_type type,
                                         const json::value& p) {
  return wait_for<json::value>(
      loop_, [&](json_callback cb) { patch(r, ns, name, type, p, std::move(cb)); });
}

expected<json::value> client::update_status_sync(const resource& r, std::string_view ns,
                                                 std::string_view name, const json::value& obj) {
  return wait_for<json::value>(
      loop_, [&](json_callback cb) { update_status(r, ns, name, obj, std::move(cb)); });
}

expected<json::value> client::patch_status_sync(const resource& r, std::string_view ns,
                                                std::string_view name, patch_type type,
                                                const json::value& p) {
  return wait_for<json::value>(
      loop_, [&](json_callback cb) { patch_status(r, ns, name, type, p, std::move(cb)); });
}

expected<json::value> client::remove_sync(const resource& r, std::string_view ns,
                                          std::string_view name, const delete_options& opts) {
  return wait_for<json::value>(loop_,
                               [&](json_callback cb) { remove(r, ns, name, opts, std::move(cb)); });
}

expected<raw_response> client::raw_sync(std::string_view method, std::string_view path,
                                        std::string body, std::string_view ctype) {
  return wait_for<raw_response>(loop_, [&](response_callback cb) {
    raw(method, path, std::move(body), std::move(cb), ctype);
  });
}

}  // namespace tidesync::k8s
