// S3 client over the HTTP loop: list (ListObjectsV2, every page), head, streamed and ranged
// get, put with user metadata, delete, and the multipart upload calls.
//
// Requests are signed with AWS Signature Version 4, computed here (OpenSSL HMAC/SHA-256)
// rather than by curl's CURLOPT_AWS_SIGV4: it works with any curl, the loop's request needs no
// per-request curl hook, and it is checked against AWS's documented example. Every request
// carries x-amz-content-sha256 (the payload's SHA-256; bodies are in memory).
//
// Retries: connection failures, timeouts, 429, 500, 502, 503, 504 and the SlowDown /
// InternalError codes are retried with jittered exponential backoff, up to
// `s3_config::max_attempts` attempts. A streamed get is retried only until its first byte has
// been handed to `on_data`.
//
// Threading: like k8s::client. Methods may be called from any thread; callbacks run on the loop
// thread and must not block. The `*_sync` helpers block: never call them on the loop thread
// (they return errc::internal there). The client must outlive its in-flight requests.
//
// Errors name the operation, the bucket and the key, the server's S3 code and what to do;
// they never contain the secret key or the Authorization header.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/backoff.hpp"
#include "runtime/error.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/transfer/s3_xml.hpp"

namespace tidesync::transfer {

struct s3_config {
  std::string endpoint;  // "http(s)://host[:port]"
  std::string region = "us-east-1";
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // sent as x-amz-security-token when set
  // true: http://host/bucket/key; false: http://bucket.host/key (virtual-hosted style).
  bool path_style = true;
  // Canned ACL for new objects (x-amz-acl: private, public-read, ...); empty: the bucket's.
  std::string acl;
  std::shared_ptr<const http::tls_options> tls;

  // Attempts per request, the first included (1: no retry).
  int max_attempts = 5;
  backoff_options retry_backoff{std::chrono::milliseconds(200),
                                std::chrono::milliseconds(10'000),
                                2.0,
                                0.2,
                                std::chrono::minutes(2),
                                0};
  // Deadline of one attempt of a request with a body in memory; a get fails instead after
  // `idle_timeout` without a byte.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
};

// User metadata: the part of x-amz-meta-<name> after the prefix → value. Names are lower case.
using s3_metadata = std::map<std::string, std::string>;

struct s3_head {
  s3_object object;
  std::string content_type;
  s3_metadata metadata;
};

// Bytes first..last inclusive; no `last`: to the end.
struct byte_range {
  uint64_t first = 0;
  std::optional<uint64_t> last;
};

struct s3_part {
  int number = 0;  // 1..10000
  std::string etag;
};

struct list_request {
  std::string prefix;
  std::string delimiter;  // "" : recursive
  int max_keys = 0;       // page size; 0: the server's default (1000)
};

class s3_client {
 public:
  template <class T>
  using callback = std::function<void(expected<T>)>;
  using chunk_callback = std::function<void(std::string_view)>;

  s3_client(http::loop& loop, s3_config config);
  ~s3_client();
  s3_client(const s3_client&) = delete;
  s3_client& operator=(const s3_client&) = delete;

  [[nodiscard]] const s3_config& config() const { return config_; }

  // --- asynchronous (callbacks on the loop thread) --------------------------------------
  // Every object under the prefix, following continuation tokens; keys as stored (requests
  // encoding-type=url and decodes).
  void list(std::string bucket, list_request req, callback<std::vector<s3_object>> cb);
  void head(std::string bucket, std::string key, callback<s3_head> cb);
  // Streams the object (or the range) to `on_data`; `on_done` once at the end.
  void get(std::string bucket, std::string key, std::optional<byte_range> range,
           chunk_callback on_data, callback<void> on_done);
  // Answers the object's ETag (quotes removed).
  void put(std::string bucket, std::string key, std::string body, s3_metadata metadata,
           callback<std::string> cb);
  // A missing object is not an error (S3 answers 204 either way; some servers 404).
  void remove(std::string bucket, std::string key, callback<void> cb);

  // Multipart: parts are numbered from 1, each at least 5 MiB except the last.
  void create_multipart(std::string bucket, std::string key, s3_metadata metadata,
                        callback<std::string> cb);  // → upload id
  void upload_part(std::string bucket, std::string key, std::string upload_id, int part_number,
                   std::string data, callback<std::string> cb);  // → part ETag
  void complete_multipart(std::string bucket, std::string key, std::string upload_id,
                          std::vector<s3_part> parts, callback<std::string> cb);  // → ETag
  void abort_multipart(std::string bucket, std::string key, std::string upload_id,
                       callback<void> cb);

  // --- blocking (never on the loop thread) ----------------------------------------------
  expected<std::vector<s3_object>> list_sync(const std::string& bucket, list_request req = {});
  expected<s3_head> head_sync(const std::string& bucket, const std::string& key);
  // The whole object (or range) in memory.
  expected<std::string> get_sync(const std::string& bucket, const std::string& key,
                                 std::optional<byte_range> range = std::nullopt);
  expected<std::string> put_sync(const std::string& bucket, const std::string& key,
                                 std::string body, s3_metadata metadata = {});
  expected<void> remove_sync(const std::string& bucket, const std::string& key);
  expected<std::string> create_multipart_sync(const std::string& bucket, const std::string& key,
                                              s3_metadata metadata = {});
  expected<std::string> upload_part_sync(const std::string& bucket, const std::string& key,
                                         const std::string& upload_id, int part_number,
                                         std::string data);
  expected<std::string> complete_multipart_sync(const std::string& bucket, const std::string& key,
                                                const std::string& upload_id,
                                                std::vector<s3_part> parts);
  expected<void> abort_multipart_sync(const std::string& bucket, const std::string& key,
                                      const std::string& upload_id);

  struct call;  // one logical request with its retries (s3_client.cpp)

 private:
  void execute(std::shared_ptr<call> c);

  http::loop& loop_;
  s3_config config_;
  std::string scheme_;  // "http" or "https"
  std::string host_;    // "host[:port]" of the endpoint
};

// --- Signature Version 4 (exposed for tests) --------------------------------------------

// AWS URI encoding: A-Za-z0-9 - . _ ~ kept, '/' kept when `keep_slash`, every other byte %XX
// (upper-case hex).
std::string uri_encode(std::string_view text, bool keep_slash);
std::string sha256_hex(std::string_view data);

struct sigv4_input {
  std::string method;
  std::string canonical_uri;    // already URI-encoded path
  std::string canonical_query;  // already encoded, sorted "a=1&b=2"
  http::header_list headers;    // every header to sign (host, x-amz-date, ...), any case
  std::string payload_hash;     // hex SHA-256 or "UNSIGNED-PAYLOAD"
  std::string amz_date;         // "20130524T000000Z"
  std::string region;
  std::string service = "s3";
  std::string access_key_id;
  std::string secret_access_key;
};

// The Authorization header value.
std::string sigv4_authorization(const sigv4_input& in);

}  // namespace tidesync::transfer
