// A small XML reader for the documents S3 answers with: ListObjectsV2 pages, error bodies and
// the multipart answers (InitiateMultipartUpload, CompleteMultipartUpload).
//
// No XML library is available on the build machine, and S3's documents are simple: elements,
// text, a prolog, maybe comments, CDATA and attributes (the xmlns). The reader builds a small
// tree; namespace prefixes are dropped from element names, attributes are skipped, text is
// entity-decoded (&amp; &lt; &gt; &quot; &apos; and &#N; / &#xH;). DTDs are refused (S3 never
// sends one, and refusing them rules out entity-expansion tricks).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"

namespace tidesync::transfer::xml {

struct node {
  std::string name;  // local name, without a namespace prefix
  std::string text;  // decoded character data directly inside this element (concatenated)
  std::vector<node> children;

  // First child with this name, or nullptr.
  [[nodiscard]] const node* child(std::string_view child_name) const;
  // Text of the first child with this name, or "" when there is none.
  [[nodiscard]] std::string child_text(std::string_view child_name) const;
};

// Parses a whole document; the result is its root element. errc::parse_error on malformed
// input (unbalanced tags, a bad entity, a DTD, text after the root, ...).
expected<node> parse(std::string_view document);

// Decodes the five predefined entities and numeric character references (as UTF-8).
expected<std::string> decode_entities(std::string_view text);
// Escapes & < > " ' for element text and attribute values.
std::string escape(std::string_view text);

}  // namespace tidesync::transfer::xml

namespace tidesync::transfer {

struct s3_object {
  std::string key;
  uint64_t size = 0;
  std::string etag;  // as the server sent it, quotes removed
  std::chrono::system_clock::time_point last_modified;
};

// One ListObjectsV2 answer.
struct s3_list_page {
  std::vector<s3_object> objects;
  std::vector<std::string> common_prefixes;
  bool truncated = false;
  std::string next_continuation_token;
};

// Parses a ListBucketResult. When the document says <EncodingType>url</EncodingType>, keys and
// prefixes are URL-decoded (S3 encodes them on request so that any byte survives XML 1.0).
expected<s3_list_page> parse_list_page(std::string_view document);

// An S3 <Error> body.
struct s3_error_doc {
  std::string code;  // "NoSuchKey", "SlowDown", ...
  std::string message;
  std::string resource;
  std::string request_id;
};
// std::nullopt-like: an empty `code` when the body is not an <Error> document.
s3_error_doc parse_error_doc(std::string_view document);

// <InitiateMultipartUploadResult><UploadId>.
expected<std::string> parse_upload_id(std::string_view document);
// <CompleteMultipartUploadResult><ETag> (quotes removed). A 200 answer may carry an <Error>
// instead (S3 sends it when the completion failed after the headers went out): then the
// error doc's code is returned as errc::unavailable or the matching code by the caller, so
// this returns parse_error with the error's code in `reason`.
expected<std::string> parse_complete_etag(std::string_view document);

// "%2F" → "/", "+" kept (S3's url encoding-type encodes spaces as %20 or +: both decode to a
// space when `plus_is_space`).
std::string url_decode(std::string_view text, bool plus_is_space);

// "2009-10-12T17:50:30.000Z" (ListObjectsV2) or "Wed, 21 Oct 2015 07:28:00 GMT" (HTTP
// Last-Modified). Epoch on failure.
std::chrono::system_clock::time_point parse_s3_time(std::string_view text);

}  // namespace tidesync::transfer
