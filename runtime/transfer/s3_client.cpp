#include "runtime/transfer/s3_client.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <future>

#include "runtime/log.hpp"

namespace tidesync::transfer {
namespace {

constexpr char k_hex[] = "0123456789abcdef";

std::string to_hex(const unsigned char* data, size_t n) {
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = k_hex[data[i] >> 4];
    out[2 * i + 1] = k_hex[data[i] & 0xF];
  }
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Trims and collapses inner runs of spaces, as SigV4's canonical headers require.
std::string canonical_value(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string amz_date_now() {
  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  struct tm tm {};
  ::gmtime_r(&now, &tm);
  char buf[20];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

const std::string k_empty_sha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// What to tell a person, by S3 error code.
std::string_view hint(std::string_view code) {
  if (code == "NoSuchBucket") return "check the bucket name and the endpoint/region";
  if (code == "NoSuchKey") return "the object does not exist (check the key)";
  if (code == "NoSuchUpload") return "the multipart upload was completed or aborted; start over";
  if (code == "SignatureDoesNotMatch")
    return "check the secret access key (and the region the endpoint expects)";
  if (code == "InvalidAccessKeyId") return "check the access key id";
  if (code == "AccessDenied") return "check the credentials and the bucket policy";
  if (code == "SlowDown") return "the server throttles requests; lower --transfers";
  return {};
}

errc code_from_s3(std::string_view code, long status) {
  if (code == "NoSuchKey" || code == "NoSuchBucket" || code == "NoSuchUpload")
    return errc::not_found;
  if (code == "AccessDenied" || code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId" ||
      code == "ExpiredToken" || code == "InvalidToken")
    return errc::forbidden;
  if (code == "SlowDown") return errc::too_many_requests;
  if (code == "InternalError" || code == "ServiceUnavailable") return errc::unavailable;
  return errc_from_http_status(static_cast<int>(status));
}

bool retryable_status(long status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

}  // namespace

// --- SigV4 ---------------------------------------------------------------------------------

std::string uri_encode(std::string_view text, bool keep_slash) {
  std::string out;
  out.reserve(text.size() * 3);
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
      out += ch;
    } else {
      static constexpr char upper[] = "0123456789ABCDEF";
      out += '%';
      out += upper[c >> 4];
      out += upper[c & 0xF];
    }
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr);
  return to_hex(out, len);
}

std::string sigv4_authorization(const sigv4_input& in) {
  std::vector<std::pair<std::string, std::string>> headers;
  headers.reserve(in.headers.size());
  for (const auto& [k, v] : in.headers)
    headers.emplace_back(lower(k), canonical_value(v));
  std::sort(headers.begin(), headers.end());
  std::string canonical_headers, signed_headers;
  for (const auto& [k, v] : headers) {
    canonical_headers += k + ":" + v + "\n";
    if (!signed_headers.empty()) signed_headers += ';';
    signed_headers += k;
  }
  std::string canonical_request = in.method + "\n" + in.canonical_uri + "\n" + in.canonical_query +
                                  "\n" + canonical_headers + "\n" + signed_headers + "\n" +
                                  in.payload_hash;
  std::string date = in.amz_date.substr(0, 8);
  std::string scope = date + "/" + in.region + "/" + in.service + "/aws4_request";
  std::string string_to_sign =
      "AWS4-HMAC-SHA256\n" + in.amz_date + "\n" + scope + "\n" + sha256_hex(canonical_request);
  std::string key = hmac_sha256("AWS4" + in.secret_access_key, date);
  key = hmac_sha256(key, in.region);
  key = hmac_sha256(key, in.service);
  key = hmac_sha256(key, "aws4_request");
  std::string sig = hmac_sha256(key, string_to_sign);
  return "AWS4-HMAC-SHA256 Credential=" + in.access_key_id + "/" + scope +
         ",SignedHeaders=" + signed_headers +
         ",Signature=" + to_hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
}

// --- requests with retries ----------------------------------------------------------------

struct s3_client::call {
  std::string op;  // "GET", "PUT", "list", ... for messages
  std::string method;
  std::string bucket;
  std::string key;
  std::vector<std::pair<std::string, std::string>> query;  // unencoded
  http::header_list headers;                               // extra headers to send and sign
  std::string body;
  chunk_callback on_data;
  bool streamed_any = false;
  // Called once with the final answer: any status (the caller maps errors), or the transport
  // error after the last attempt.
  std::function<void(expected<http::response>)> on_done;
  backoff retry{};
  int attempt = 0;
};

s3_client::s3_client(http::loop& loop, s3_config config) : loop_(loop), config_(std::move(config)) {
  std::string_view ep = config_.endpoint;
  auto sep = ep.find("://");
  scheme_ = sep == std::string_view::npos ? "https" : std::string(ep.substr(0, sep));
  if (sep != std::string_view::npos) ep.remove_prefix(sep + 3);
  host_ = std::string(ep.substr(0, ep.find('/')));
  if (config_.max_attempts < 1) config_.max_attempts = 1;
}

s3_client::~s3_client() = default;

namespace {

// The error for a non-2xx answer: names the operation, the object and the S3 code.
error s3_error(std::string_view op, std::string_view bucket, std::string_view key,
               const http::response& resp) {
  s3_error_doc doc = parse_error_doc(resp.body);
  if (doc.code.empty()) {
    // HEAD answers carry no body: derive the code from the status.
    if (resp.status == 404) doc.code = key.empty() ? "NoSuchBucket" : "NoSuchKey";
    if (resp.status == 403) doc.code = "AccessDenied";
  }
  std::string what = "s3 " + std::string(op) + " " + std::string(bucket);
  if (!key.empty()) what += "/" + std::string(key);
  std::string msg = what + ": HTTP " + std::to_string(resp.status);
  if (!doc.code.empty()) msg += " " + doc.code;
  if (!doc.message.empty()) msg += ": " + doc.message;
  auto h = hint(doc.code);
  if (!h.empty()) msg += " (" + std::string(h) + ")";
  error e = make_error(code_from_s3(doc.code, resp.status), std::move(msg));
  e.http_status = static_cast<int>(resp.status);
  e.reason = doc.code;
  return e;
}

error transport_error(std::string_view op, std::string_view bucket, std::string_view key,
                      const error& cause, int attempts) {
  error e = cause;
  std::string what = "s3 " + std::string(op) + " " + std::string(bucket);
  if (!key.empty()) what += "/" + std::string(key);
  e.message = what + ": " + cause.message + " (after " + std::to_string(attempts) +
              (attempts == 1 ? " attempt" : " attempts") + "; check the endpoint)";
  return e;
}

}  // namespace

void s3_client::execute(std::shared_ptr<call> c) {
  ++c->attempt;
  std::string host = config_.path_style ? host_ : c->bucket + "." + host_;
  std::string path;
  if (config_.path_style) {
    path = "/" + uri_encode(c->bucket, false);
    if (!c->key.empty()) path += "/" + uri_encode(c->key, true);
  } else {
    path = "/" + uri_encode(c->key, true);
  }
  std::vector<std::pair<std::string, std::string>> q;
  for (const auto& [k, v] : c->query)
    q.emplace_back(uri_encode(k, false), uri_encode(v, false));
  std::sort(q.begin(), q.end());
  std::string query;
  for (const auto& [k, v] : q) {
    if (!query.empty()) query += '&';
    query += k + "=" + v;
  }

  sigv4_input sig;
  sig.method = c->method;
  sig.canonical_uri = path;
  sig.canonical_query = query;
  sig.payload_hash = c->body.empty() ? k_empty_sha256 : sha256_hex(c->body);
  sig.amz_date = amz_date_now();
  sig.region = config_.region;
  sig.access_key_id = config_.access_key_id;
  sig.secret_access_key = config_.secret_access_key;
  sig.headers = c->headers;
  sig.headers.emplace_back("host", host);
  sig.headers.emplace_back("x-amz-date", sig.amz_date);
  sig.headers.emplace_back("x-amz-content-sha256", sig.payload_hash);
  if (!config_.session_token.empty())
    sig.headers.emplace_back("x-amz-security-token", config_.session_token);

  http::request r;
  r.method = c->method;
  r.url = scheme_ + "://" + host + path + (query.empty() ? "" : "?" + query);
  r.headers = sig.headers;
  r.headers.emplace_back("Authorization", sigv4_authorization(sig));
  if (c->method == "PUT" || c->method == "POST") {
    bool has_type = std::any_of(c->headers.begin(), c->headers.end(),
                                [](const auto& h) { return lower(h.first) == "content-type"; });
    // Otherwise curl sends its form default for a POSTFIELDS body.
    if (!has_type) r.headers.emplace_back("Content-Type", "application/octet-stream");
  }
  r.body = c->body;
  r.tls = config_.tls;
  r.connect_timeout = config_.connect_timeout;
  if (c->on_data) {
    r.idle_timeout = config_.idle_timeout;
    r.on_data = [c](std::string_view chunk) {
      c->streamed_any = true;
      c->on_data(chunk);
    };
  } else {
    r.timeout = config_.timeout;
  }
  r.on_done = [this, c](expected<http::response> res) {
    bool retry = false;
    if (!res) {
      retry = res.error().code == errc::unavailable || res.error().code == errc::timeout;
    } else if (retryable_status(res->status)) {
      retry = true;
    } else if (res->status == 400 && parse_error_doc(res->body).code == "SlowDown") {
      retry = true;
    }
    if (retry && c->attempt < config_.max_attempts && !c->streamed_any) {
      auto delay = c->retry.next();
      log::get("s3")->debug("s3 {} {}/{}: attempt {} failed ({}); retrying in {} ms", c->op,
                            c->bucket, c->key, c->attempt,
                            res ? "HTTP " + std::to_string(res->status) : res.error().message,
                            delay.count());
      loop_.post_after(delay, [this, c] { execute(c); });
      return;
    }
    c->on_done(std::move(res));
  };
  loop_.submit(std::move(r));
}

namespace {

std::shared_ptr<s3_client::call> make_call(const s3_config& cfg, std::string op, std::string method,
                                           std::string bucket, std::string key) {
  auto c = std::make_shared<s3_client::call>();
  c->op = std::move(op);
  c->method = std::move(method);
  c->bucket = std::move(bucket);
  c->key = std::move(key);
  c->retry = backoff(cfg.retry_backoff);
  return c;
}

bool ok_status(long s) {
  return s >= 200 && s < 300;
}

std::string unquote_etag(const std::string* v) {
  if (v == nullptr) return {};
  std::string s = *v;
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

void add_metadata(http::header_list& h, const s3_metadata& md) {
  for (const auto& [k, v] : md)
    h.emplace_back("x-amz-meta-" + lower(k), v);
}

}  // namespace

// --- operations -----------------------------------------------------------------------------

namespace {
struct list_state {
  std::string bucket;
  list_request req;
  std::string token;
  std::vector<s3_object> objects;
  s3_client::callback<std::vector<s3_object>> cb;
  int pages = 0;
};
}  // namespace

void s3_client::list(std::string bucket, list_request req, callback<std::vector<s3_object>> cb) {
  auto st = std::make_shared<list_state>();
  st->bucket = std::move(bucket);
  st->req = std::move(req);
  st->cb = std::move(cb);
  // One page per call; the page's answer starts the next. The function holds itself only
  // through the pending call, so it is freed with the last page.
  auto next = std::make_shared<std::function<void()>>();
  *next = [this, st, weak = std::weak_ptr<std::function<void()>>(next)] {
    auto c = make_call(config_, "list", "GET", st->bucket, "");
    c->query = {{"list-type", "2"}, {"encoding-type", "url"}};
    if (!st->req.prefix.empty()) c->query.emplace_back("prefix", st->req.prefix);
    if (!st->req.delimiter.empty()) c->query.emplace_back("delimiter", st->req.delimiter);
    if (st->req.max_keys > 0) c->query.emplace_back("max-keys", std::to_string(st->req.max_keys));
    if (!st->token.empty()) c->query.emplace_back("continuation-token", st->token);
    auto self = weak.lock();
    c->on_done = [st, self, c_raw = c.get()](expected<http::response> res) {
      if (!res)
        return st->cb(
            transport_error("list", st->bucket, st->req.prefix, res.error(), c_raw->attempt));
      if (!ok_status(res->status)) return st->cb(s3_error("list", st->bucket, "", *res));
      auto page = parse_list_page(res->body);
      if (!page) {
        error e = page.error();
        e.message = "s3 list " + st->bucket + ": " + e.message;
        return st->cb(std::move(e));
      }
      ++st->pages;
      for (auto& o : page->objects)
        st->objects.push_back(std::move(o));
      if (!page->truncated) return st->cb(std::move(st->objects));
      if (page->next_continuation_token == st->token)
        return st->cb(make_error(errc::internal, "s3 list " + st->bucket +
                                                     ": the server repeated its continuation "
                                                     "token; stopping to avoid a loop"));
      st->token = page->next_continuation_token;
      (*self)();
    };
    execute(std::move(c));
  };
  (*next)();
}

void s3_client::head(std::string bucket, std::string key, callback<s3_head> cb) {
  auto c = make_call(config_, "HEAD", "HEAD", std::move(bucket), std::move(key));
  c->on_done = [c_raw = c.get(), cb = std::move(cb)](expected<http::response> res) {
    const auto& c = *c_raw;
    if (!res) return cb(transport_error(c.op, c.bucket, c.key, res.error(), c.attempt));
    if (!ok_status(res->status)) return cb(s3_error(c.op, c.bucket, c.key, *res));
    s3_head h;
    h.object.key = c.key;
    if (const auto* len = res->header("content-length"))
      h.object.size = std::strtoull(len->c_str(), nullptr, 10);
    h.object.etag = unquote_etag(res->header("etag"));
    if (const auto* lm = res->header("last-modified")) h.object.last_modified = parse_s3_time(*lm);
    if (const auto* ct = res->header("content-type")) h.content_type = *ct;
    for (const auto& [k, v] : res->headers)
      if (k.rfind("x-amz-meta-", 0) == 0) h.metadata[k.substr(11)] = v;
    cb(std::move(h));
  };
  execute(std::move(c));
}

void s3_client::get(std::string bucket, std::string key, std::optional<byte_range> range,
                    chunk_callback on_data, callback<void> on_done) {
  auto c = make_call(config_, "GET", "GET", std::move(bucket), std::move(key));
  if (range) {
    std::string v = "bytes=" + std::to_string(range->first) + "-";
    if (range->last) v += std::to_string(*range->last);
    c->headers.emplace_back("range", v);
  }
  c->on_data = std::move(on_data);
  c->on_done = [c_raw = c.get(), cb = std::move(on_done)](expected<http::response> res) {
    const auto& c = *c_raw;
    if (!res) return cb(transport_error(c.op, c.bucket, c.key, res.error(), c.attempt));
    if (!ok_status(res->status)) return cb(s3_error(c.op, c.bucket, c.key, *res));
    cb(expected<void>{});
  };
  execute(std::move(c));
}

void s3_client::put(std::string bucket, std::string key, std::string body, s3_metadata metadata,
                    callback<std::string> cb) {
  auto c = make_call(config_, "PUT", "PUT", std::move(bucket), std::move(key));
  c->body = std::move(body);
  add_metadata(c->headers, metadata);
  if (!config_.acl.empty()) c->headers.emplace_back("x-amz-acl", config_.acl);
  c->on_done = [c_raw = c.get(), cb = std::move(cb)](expected<http::response> res) {
    const auto& c = *c_raw;
    if (!res) return cb(transport_error(c.op, c.bucket, c.key, res.error(), c.attempt));
    if (!ok_status(res->status)) return cb(s3_error(c.op, c.bucket, c.key, *res));
    cb(unquote_etag(res->header("etag")));
  };
  execute(std::move(c));
}

void s3_client::remove(std::string bucket, std::string key, callback<void> cb) {
  auto c = make_call(config_, "DELETE", "DELETE", std::move(bucket), std::move(key));
  c->on_done = [c_raw = c.get(), cb = std::move(cb)](expected<http::response> res) {
    const auto& c = *c_raw;
    if (!res) return cb(transport_error(c.op, c.bucket, c.key, res.error(), c.attempt));
    if (ok_status(res->status)) return cb(expected<void>{});
    error e = s3_error(c.op, c.bucket, c.key, *res);
    // Already gone is what the caller wanted; a missing bucket is still an error.
    if (res->status == 404 && e.reason != "NoSuchBucket") return cb(expected<void>{});
    cb(std::move(e));
  };
  execute(std::move(c));
}

void s3_client::create_multipart(std::string bucket, std::string key, s3_metadata metadata,
                                 callback<std::string> cb) {
  auto c = make_call(config_, "CreateMultipartUpload", "POST", std::move(bucket), std::move(key));
  c->query = {{"uploads", ""}};
  add_metadata(c->headers, metadata);
  if (!config_.acl.empty()) c->headers.emplace_back("x-amz-acl", config_.acl);
  c->on_done = [c_raw = c.get(), cb = std::move(cb)](expected<http::response> res) {
    const auto& c = *c_raw;
    if (!res) return cb(transport_error(c.op, c.bucket, c.key, res.error(), c.attempt));
    if (!ok_status(res->status)) return cb(s3_error(c.op, c.bucket, c.key, *res));
    cb(parse_upload_id(res->body));
  };
  execute(std::move(c));
}

void s3_client::upload_part(std::string bucket, std::string key, std::string upload_id,
                            int part_number, std::string data, callback<std::string> cb) {
  auto c = make_call(config_, "UploadPart " + std::to_string(part_number), "PUT", std::move(bucket),
                     std::move(key));
  c->query = {{"partNumber", std::to_string(part_number)}, {"uploadId", std::move(upload_id)}};
  c->body = std::move(data);
  c->on_done = [c_raw = c.get(), cb = std::move(cb)](expected<http::response> res) {
    const auto& c = *c_raw;
    if (!res) return cb(transport_error(c.op, c.bucket, c.key, res.error(), c.attempt));
    if (!ok_status(res->status)) return cb(s3_error(c.op, c.bucket, c.key, *res));
    cb(unquote_etag(res->header("etag")));
  };
  execute(std::move(c));
}

void s3_client::complete_multipart(std::string bucket, std::string key, std::string upload_id,
                                   std::vector<s3_part> parts, callback<std::string> cb) {
  auto c = make_call(config_, "CompleteMultipartUpload", "POST", std::move(bucket), std::move(key));
  c->query = {{"uploadId", std::move(upload_id)}};
  std::sort(parts.begin(), parts.end(),
            [](const s3_part& a, const s3_part& b) { return a.number < b.number; });
  std::string body = "<CompleteMultipartUpload>";
  for (const auto& p : parts)
    body += "<Part><PartNumber>" + std::to_string(p.number) + "</PartNumber><ETag>\"" +
            xml::escape(p.etag) + "\"</ETag></Part>";
  body += "</CompleteMultipartUpload>";
  c->body = std::move(body);
  c->headers.emplace_back("content-type", "application/xml");
  c->on_done = [c_raw = c.get(), cb = std::move(cb)](expected<http::response> res) {
    const auto& c = *c_raw;
    if (!res) return cb(transport_error(c.op, c.bucket, c.key, res.error(), c.attempt));
    if (!ok_status(res->status)) return cb(s3_error(c.op, c.bucket, c.key, *res));
    auto etag = parse_complete_etag(res->body);
    if (!etag && !etag.error().reason.empty()) {
      // An <Error> inside a 200: S3 failed after sending the headers.
      error e = etag.error();
      e.code = code_from_s3(e.reason, 500);
      e.message = "s3 " + c.op + " " + c.bucket + "/" + c.key + ": " + e.message;
      return cb(std::move(e));
    }
    cb(std::move(etag));
  };
  execute(std::move(c));
}

void s3_client::abort_multipart(std::string bucket, std::string key, std::string upload_id,
                                callback<void> cb) {
  auto c = make_call(config_, "AbortMultipartUpload", "DELETE", std::move(bucket), std::move(key));
  c->query = {{"uploadId", std::move(upload_id)}};
  c->on_done = [c_raw = c.get(), cb = std::move(cb)](expected<http::response> res) {
    const auto& c = *c_raw;
    if (!res) return cb(transport_error(c.op, c.bucket, c.key, res.error(), c.attempt));
    if (!ok_status(res->status)) return cb(s3_error(c.op, c.bucket, c.key, *res));
    cb(expected<void>{});
  };
  execute(std::move(c));
}

// --- blocking helpers ---------------------------------------------------------------------

namespace {

template <class T, class Start>
expected<T> wait_for(http::loop& loop, Start start) {
  if (loop.on_loop_thread()) {
    log::get("s3")->error("a blocking s3 *_sync call was made on the HTTP loop thread");
    return make_error(errc::internal,
                      "s3: a blocking call was made on the HTTP loop thread (it would deadlock)");
  }
  auto promise = std::make_shared<std::promise<expected<T>>>();
  auto future = promise->get_future();
  start([promise](expected<T> result) { promise->set_value(std::move(result)); });
  return future.get();
}

}  // namespace

expected<std::vector<s3_object>> s3_client::list_sync(const std::string& bucket, list_request req) {
  return wait_for<std::vector<s3_object>>(loop_, [&](auto cb) { list(bucket, req, cb); });
}

expected<s3_head> s3_client::head_sync(const std::string& bucket, const std::string& key) {
  return wait_for<s3_head>(loop_, [&](auto cb) { head(bucket, key, cb); });
}

expected<std::string> s3_client::get_sync(const std::string& bucket, const std::string& key,
                                          std::optional<byte_range> range) {
  auto data = std::make_shared<std::string>();
  auto done = wait_for<void>(loop_, [&](auto cb) {
    get(
        bucket, key, range, [data](std::string_view chunk) { data->append(chunk); }, cb);
  });
  if (!done) return done.error();
  return std::move(*data);
}

expected<std::string> s3_client::put_sync(const std::string& bucket, const std::string& key,
                                          std::string body, s3_metadata metadata) {
  return wait_for<std::string>(
      loop_, [&](auto cb) { put(bucket, key, std::move(body), std::move(metadata), cb); });
}

expected<void> s3_client::remove_sync(const std::string& bucket, const std::string& key) {
  return wait_for<void>(loop_, [&](auto cb) { remove(bucket, key, cb); });
}

expected<std::string> s3_client::create_multipart_sync(const std::string& bucket,
                                                       const std::string& key,
                                                       s3_metadata metadata) {
  return wait_for<std::string>(
      loop_, [&](auto cb) { create_multipart(bucket, key, std::move(metadata), cb); });
}

expected<std::string> s3_client::upload_part_sync(const std::string& bucket, const std::string& key,
                                                  const std::string& upload_id, int part_number,
                                                  std::string data) {
  return wait_for<std::string>(loop_, [&](auto cb) {
    upload_part(bucket, key, upload_id, part_number, std::move(data), cb);
  });
}

expected<std::string> s3_client::complete_multipart_sync(const std::string& bucket,
                                                         const std::string& key,
                                                         const std::string& upload_id,
                                                         std::vector<s3_part> parts) {
  return wait_for<std::string>(
      loop_, [&](auto cb) { complete_multipart(bucket, key, upload_id, std::move(parts), cb); });
}

expected<void> s3_client::abort_multipart_sync(const std::string& bucket, const std::string& key,
                                               const std::string& upload_id) {
  return wait_for<void>(loop_, [&](auto cb) { abort_multipart(bucket, key, upload_id, cb); });
}

}  // namespace tidesync::transfer
