// `tidesync agent populate`: stream one image into a volume, resumable, verified, recorded.
// See populate.hpp for the contract and docs/agent-populate.md for the user's view.
#include "runtime/transfer/populate.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/backoff.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/transfer/local_fs.hpp"
#include "runtime/transfer/s3_xml.hpp"

namespace tidesync::transfer {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr size_t k_chunk = size_t{1} << 20;
constexpr int k_max_redirects = 5;

// A failure with the outcome it maps to.
struct failure {
  populate_outcome outcome = populate_outcome::transient;
  std::string message;
};

template <class T>
struct result_or {
  std::optional<T> value;
  std::optional<failure> fail;
};

failure from_error(const error& e, const std::string& what) {
  failure f;
  // The loop's and the S3 client's messages already name the request.
  f.message = e.message.find(what) != std::string::npos ? e.message : what + ": " + e.message;
  switch (e.code) {
    case errc::not_found:
      f.outcome = populate_outcome::missing_source;
      break;
    case errc::unauthorized:
    case errc::forbidden:
      f.outcome = populate_outcome::unauthorized;
      break;
    default:
      f.outcome = populate_outcome::transient;
  }
  return f;
}

failure from_errno(int err, const std::string& what) {
  return failure{populate_outcome::transient, what + ": " + std::strerror(err)};
}

std::string hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  s.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    s.push_back(digits[p[i] >> 4]);
    s.push_back(digits[p[i] & 15]);
  }
  return s;
}

// What the source says about the object before the download.
struct source_info {
  std::optional<uint64_t> size;
  std::string etag;           // quotes removed
  std::string last_modified;  // as the source reports it (opaque: compared, never parsed)
  bool ranges = false;        // resuming by offset works
};

// The partial file: appends, hashes incrementally, reports progress.
class partial_sink {
 public:
  partial_sink(std::string path, std::chrono::milliseconds interval, std::FILE* out)
      : path_(std::move(path)), interval_(interval), out_(out), ctx_(EVP_MD_CTX_new()) {}
  ~partial_sink() {
    if (fd_ >= 0) ::close(fd_);
    EVP_MD_CTX_free(ctx_);
  }
  partial_sink(const partial_sink&) = delete;
  partial_sink& operator=(const partial_sink&) = delete;

  // Opens (or creates) the partial and hashes what it already holds.
  std::optional<failure> open() {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return from_errno(errno, "cannot open " + path_);
    EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr);
    size_ = 0;
    std::vector<char> buf(k_chunk);
    for (;;) {
      const ssize_t n = ::pread(fd_, buf.data(), buf.size(), static_cast<off_t>(size_));
      if (n < 0) {
        if (errno == EINTR) continue;
        return from_errno(errno, "cannot read " + path_);
      }
      if (n == 0) break;
      EVP_DigestUpdate(ctx_, buf.data(), static_cast<size_t>(n));
      size_ += static_cast<uint64_t>(n);
    }
    return std::nullopt;
  }

  // Empties the partial (the source changed, or ignored the range).
  std::optional<failure> restart() {
    if (::ftruncate(fd_, 0) != 0) return from_errno(errno, "cannot truncate " + path_);
    EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr);
    size_ = 0;
    return std::nullopt;
  }

  std::optional<failure> write(std::string_view data) {
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      const ssize_t n = ::pwrite(fd_, p, left, static_cast<off_t>(size_));
      if (n < 0) {
        if (errno == EINTR) continue;
        return from_errno(errno, "cannot write " + path_);
      }
      EVP_DigestUpdate(ctx_, p, static_cast<size_t>(n));
      p += n;
      left -= static_cast<size_t>(n);
      size_ += static_cast<uint64_t>(n);
      fetched_ += static_cast<uint64_t>(n);
    }
    report(false);
    return std::nullopt;
  }

  // The sha256 of everything written ("sha256:<hex>"); call once, at the end.
  std::string digest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    return "sha256:" + hex(md, len);
  }

  std::optional<failure> sync_and_close() {
    if (::fsync(fd_) != 0) return from_errno(errno, "cannot fsync " + path_);
    ::close(fd_);
    fd_ = -1;
    return std::nullopt;
  }

  void set_total(std::optional<uint64_t> total) { total_ = total; }
  [[nodiscard]] uint64_t size() const { return size_; }
  [[nodiscard]] uint64_t fetched() const { return fetched_; }

  // One JSON progress line per interval (always when `force`).
  void report(bool force) {
    if (out_ == nullptr || interval_.count() <= 0) return;
    const auto now = steady::now();
    if (!force && now - last_report_ < interval_) return;
    last_report_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    json::value line;
    line["bytes"] = static_cast<int64_t>(size_);
    line["total"] = total_ ? json::value(static_cast<int64_t>(*total_)) : json::value(nullptr);
    line["rate"] = secs > 0 ? static_cast<double>(fetched_) / secs : 0.0;
    std::fprintf(out_, "%s\n", json::dump(line).c_str());
    std::fflush(out_);
  }

 private:
  std::string path_;
  std::chrono::milliseconds interval_;
  std::FILE* out_;
  EVP_MD_CTX* ctx_;
  int fd_ = -1;
  uint64_t size_ = 0;
  uint64_t fetched_ = 0;
  std::optional<uint64_t> total_;
  steady::time_point start_ = steady::now();
  steady::time_point last_report_ = steady::now();
};

// --- the digest record ----------------------------------------------------------------------

struct record {
  std::string digest, source, file, etag, last_modified;
  int64_t size = -1;
  int64_t mtime_ns = -1;  // of DIR/NAME when it was written: a changed file is not trusted
};

std::optional<record> read_record(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof buf)) > 0 && text.size() < 65536)
    text.append(buf, static_cast<size_t>(n));
  ::close(fd);
  auto doc = json::parse(text);
  if (!doc || !doc->is_object()) return std::nullopt;
  record r;
  r.digest = std::string(doc->get_string("digest"));
  r.source = std::string(doc->get_string("source"));
  r.file = std::string(doc->get_string("file"));
  r.etag = std::string(doc->get_string("etag"));
  r.last_modified = std::string(doc->get_string("lastModified"));
  r.size = doc->get_int("size", -1);
  r.mtime_ns = doc->get_int("mtime", -1);
  return r;
}

int64_t mtime_ns(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// DIR/NAME is the file the record describes: same size and mtime (no re-hash; see the docs).
bool file_matches(const record& r, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  return static_cast<int64_t>(st.st_size) == r.size && mtime_ns(st) == r.mtime_ns;
}

std::optional<failure> fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return from_errno(errno, "cannot open " + dir);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return from_errno(err, "cannot fsync " + dir);
  return std::nullopt;
}

// Written to a temporary name, fsynced and renamed: a reader sees the old text or the new.
std::optional<failure> write_atomically(const std::string& dir, const std::string& path,
                                        const std::string& text) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return from_errno(errno, "cannot write " + tmp);
  size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return from_errno(err, "cannot write " + tmp);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return from_errno(err, "cannot fsync " + tmp);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return from_errno(errno, "cannot rename " + tmp);
  return fsync_dir(dir);
}

std::optional<failure> write_record(const std::string& dir, const record& r) {
  json::value doc;
  doc["digest"] = r.digest;
  doc["size"] = r.size;
  doc["source"] = r.source;
  if (!r.etag.empty()) doc["etag"] = r.etag;
  if (!r.last_modified.empty()) doc["lastModified"] = r.last_modified;
  doc["file"] = r.file;
  doc["mtime"] = r.mtime_ns;
  return write_atomically(dir, digest_record_path(dir), json::dump(doc) + "\n");
}

// The partial's sidecar (.NAME.partial.source): the source version its bytes came from, so a
// resume never appends a new version of the image to the start of an old one.
record partial_source(const std::string& url, const source_info& info) {
  record r;
  r.source = url;
  r.size = info.size ? static_cast<int64_t>(*info.size) : -1;
  r.etag = info.etag;
  r.last_modified = info.last_modified;
  return r;
}

std::optional<failure> write_partial_source(const std::string& dir, const std::string& path,
                                            const record& r) {
  json::value doc;
  doc["source"] = r.source;
  doc["size"] = r.size;
  doc["etag"] = r.etag;
  doc["lastModified"] = r.last_modified;
  return write_atomically(dir, path, json::dump(doc) + "\n");
}

// --- HTTP -----------------------------------------------------------------------------------

// One request, waited for. `on_data` (2xx bodies) may return a failure, which cancels it.
struct http_outcome {
  expected<http::response> response = make_error(errc::internal, "no answer");
  std::optional<failure> sink_failure;
};

http_outcome http_call(http::loop& loop, const std::string& method, const std::string& url,
                       http::header_list headers,
                       std::function<std::optional<failure>(std::string_view)> on_data) {
  struct shared {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    bool sink_failed = false;
    http_outcome out;
  };
  auto s = std::make_shared<shared>();
  http::request r;
  r.method = method;
  r.url = url;
  r.headers = std::move(headers);
  r.connect_timeout = 10s;
  r.idle_timeout = 60s;
  if (method == "HEAD") r.timeout = 60s;
  if (on_data) {
    r.on_data = [s, on_data = std::move(on_data)](std::string_view chunk) {
      if (s->sink_failed) return;  // dropped: the request is being cancelled
      if (auto f = on_data(chunk)) {
        std::lock_guard lock(s->mu);
        s->out.sink_failure = std::move(f);
        s->sink_failed = true;
        s->cv.notify_all();
      }
    };
  }
  r.on_done = [s](expected<http::response> resp) {
    std::lock_guard lock(s->mu);
    s->out.response = std::move(resp);
    s->done = true;
    s->cv.notify_all();
  };
  const auto id = loop.submit(std::move(r));
  std::unique_lock lock(s->mu);
  s->cv.wait(lock, [&] { return s->done || s->sink_failed; });
  if (!s->done) {
    lock.unlock();
    loop.cancel(id);  // a disk that is full stops the download instead of draining it
    lock.lock();
    s->cv.wait(lock, [&] { return s->done; });
  }
  return std::move(s->out);
}

bool is_redirect(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// A Location header resolved against the URL it came from.
std::string resolve_location(const std::string& base, const std::string& loc) {
  if (loc.rfind("http://", 0) == 0 || loc.rfind("https://", 0) == 0) return loc;
  const auto scheme_end = base.find("://");
  const auto path_start = base.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
  const std::string origin = base.substr(0, path_start);
  if (!loc.empty() && loc[0] == '/') return origin + loc;
  std::string dir = path_start == std::string::npos ? "/" : base.substr(path_start);
  dir = dir.substr(0, dir.find('?'));
  dir = dir.substr(0, dir.rfind('/') + 1);
  return origin + dir + loc;
}

failure http_status_failure(long status, const std::string& url) {
  const std::string what = "GET " + url + ": HTTP " + std::to_string(status);
  if (status == 404 || status == 410)
    return {populate_outcome::missing_source, what + " (the source does not exist)"};
  if (status == 401 || status == 403)
    return {populate_outcome::unauthorized,
            what + " (access denied: check the credentials or the URL)"};
  return {populate_outcome::transient, what};
}

std::string strip_quotes(std::string s) {
  if (s.rfind("W/", 0) == 0) s.erase(0, 2);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

// "bytes 100-199/1234" → {100, 1234}; "bytes */1234" → {nullopt, 1234}.
struct content_range {
  std::optional<uint64_t> first;
  std::optional<uint64_t> total;
};
content_range parse_content_range(const std::string* h) {
  content_range cr;
  if (h == nullptr || h->rfind("bytes ", 0) != 0) return cr;
  const std::string v = h->substr(6);
  const auto slash = v.find('/');
  if (slash == std::string::npos) return cr;
  if (v[0] != '*') cr.first = std::strtoull(v.c_str(), nullptr, 10);
  if (v.compare(slash + 1, 1, "*") != 0)
    cr.total = std::strtoull(v.c_str() + slash + 1, nullptr, 10);
  return cr;
}

class http_source {
 public:
  http_source(http::loop& loop, std::string url) : loop_(loop), url_(std::move(url)) {}

  // HEAD (following redirects): size, validators, range support. A server that refuses HEAD
  // (405, 501) or answers oddly gives an empty info: the download starts from zero.
  result_or<source_info> head() {
    std::string url = url_;
    for (int hop = 0; hop <= k_max_redirects; ++hop) {
      auto out = http_call(loop_, "HEAD", url, {}, {});
      if (!out.response) return {std::nullopt, from_error(out.response.error(), "HEAD " + url)};
      const auto& resp = *out.response;
      if (is_redirect(resp.status)) {
        const auto* loc = resp.header("location");
        if (loc == nullptr) return {source_info{}, std::nullopt};
        url = resolve_location(url, *loc);
        continue;
      }
      if (resp.status == 404 || resp.status == 410 || resp.status == 401 || resp.status == 403)
        return {std::nullopt, http_status_failure(resp.status, url)};
      if (resp.status >= 500 || resp.status == 429 || resp.status == 408) {
        auto f = http_status_failure(resp.status, url);
        return {std::nullopt, f};
      }
      source_info info;
      if (resp.status < 200 || resp.status >= 300) return {info, std::nullopt};
      url_ = url;  // later GETs skip the redirects
      if (const auto* cl = resp.header("content-length"))
        info.size = std::strtoull(cl->c_str(), nullptr, 10);
      if (const auto* ar = resp.header("accept-ranges"))
        info.ranges = ar->find("bytes") != std::string::npos;
      if (const auto* et = resp.header("etag")) info.etag = strip_quotes(*et);
      if (const auto* lm = resp.header("last-modified")) info.last_modified = *lm;
      return {info, std::nullopt};
    }
    return {std::nullopt,
            failure{populate_outcome::transient, "HEAD " + url_ + ": too many redirects"}};
  }

  // GETs from sink.size() (a Range request when `info.ranges`), writing into the sink. Returns
  // nothing on success (the partial holds the whole object).
  std::optional<failure> fetch(partial_sink& sink, const source_info& info) {
    std::string url = url_;
    for (int hop = 0; hop <= k_max_redirects; ++hop) {
      const uint64_t from = sink.size();
      http::header_list headers;
      if (from > 0) headers.emplace_back("Range", "bytes=" + std::to_string(from) + "-");
      auto out = http_call(loop_, "GET", url, headers,
                           [&sink](std::string_view chunk) { return sink.write(chunk); });
      if (out.sink_failure) return out.sink_failure;
      if (!out.response) return from_error(out.response.error(), "GET " + url);
      const auto& resp = *out.response;
      if (is_redirect(resp.status)) {
        const auto* loc = resp.header("location");
        if (loc == nullptr) return http_status_failure(resp.status, url);
        url = resolve_location(url, *loc);
        continue;
      }
      if (resp.status == 206) {
        const auto cr = parse_content_range(resp.header("content-range"));
        if (from == 0 || (cr.first && *cr.first != from)) {
          // Not the range asked for: what was appended is misplaced. Start over.
          if (auto f = sink.restart()) return f;
          return failure{populate_outcome::transient,
                         "GET " + url + ": the server answered another range than asked for"};
        }
        return std::nullopt;
      }
      if (resp.status == 416 && from > 0) {
        const auto cr = parse_content_range(resp.header("content-range"));
        if (cr.total && *cr.total == from) return std::nullopt;  // the partial is complete
        if (auto f = sink.restart()) return f;
        return failure{populate_outcome::transient,
                       "GET " + url + ": the partial is longer than the source; starting over"};
      }
      if (resp.status >= 200 && resp.status < 300) {
        if (from > 0) {
          // The server ignored the range and sent the whole object after the partial's bytes:
          // start over without one.
          ranges_work_ = false;
          if (auto f = sink.restart()) return f;
          return failure{populate_outcome::transient,
                         "GET " + url + ": the server ignored the Range request; starting over"};
        }
        return std::nullopt;
      }
      return http_status_failure(resp.status, url);
    }
    (void)info;
    return failure{populate_outcome::transient, "GET " + url_ + ": too many redirects"};
  }

  [[nodiscard]] bool ranges_work() const { return ranges_work_; }

 private:
  http::loop& loop_;
  std::string url_;
  bool ranges_work_ = true;
};

// --- S3 -------------------------------------------------------------------------------------

failure s3_failure(const error& e, const std::string& what) {
  auto f = from_error(e, what);
  if (e.reason == "NoSuchKey" || e.reason == "NoSuchBucket")
    f.outcome = populate_outcome::missing_source;
  if (e.reason == "AccessDenied" || e.reason == "InvalidAccessKeyId" ||
      e.reason == "SignatureDoesNotMatch")
    f.outcome = populate_outcome::unauthorized;
  return f;
}

result_or<source_info> s3_stat(s3_client& client, const populate_options& o) {
  auto h = client.head_sync(o.bucket, o.key);
  if (!h) return {std::nullopt, s3_failure(h.error(), "s3://" + o.bucket + "/" + o.key)};
  source_info info;
  info.size = h->object.size;
  info.etag = h->object.etag;
  info.last_modified = std::to_string(
      std::chrono::duration_cast<std::chrono::seconds>(h->object.last_modified.time_since_epoch())
          .count());
  info.ranges = true;
  return {info, std::nullopt};
}

std::optional<failure> s3_fetch(s3_client& client, const populate_options& o, partial_sink& sink) {
  struct shared {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::optional<failure> fail;
  };
  auto s = std::make_shared<shared>();
  const uint64_t from = sink.size();
  std::optional<byte_range> range;
  if (from > 0) range = byte_range{from, std::nullopt};
  const std::string what = "GET s3://" + o.bucket + "/" + o.key;
  client.get(
      o.bucket, o.key, range,
      [s, &sink](std::string_view chunk) {
        // No cancel for an S3 get: after a write failure the rest is dropped.
        if (s->fail) return;
        if (auto f = sink.write(chunk)) s->fail = std::move(f);
      },
      [s, what](expected<void> r) {
        std::lock_guard lock(s->mu);
        if (!r && !s->fail) s->fail = s3_failure(r.error(), what);
        s->done = true;
        s->cv.notify_all();
      });
  std::unique_lock lock(s->mu);
  s->cv.wait(lock, [&] { return s->done; });
  return s->fail;
}

// --- PVC (a file in another mounted volume) -------------------------------------------------

failure file_failure(int err, const std::string& path) {
  if (err == ENOENT || err == ENOTDIR || err == EISDIR)
    return {populate_outcome::missing_source,
            path + ": " + std::strerror(err) + " (no such file in the source volume)"};
  if (err == EACCES || err == EPERM)
    return {populate_outcome::unauthorized, path + ": " + std::strerror(err)};
  return from_errno(err, path);
}

result_or<source_info> pvc_head(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {std::nullopt, file_failure(errno, path)};
  if (!S_ISREG(st.st_mode)) return {std::nullopt, file_failure(EISDIR, path)};
  source_info info;
  info.size = static_cast<uint64_t>(st.st_size);
  info.last_modified = std::to_string(mtime_ns(st));
  info.ranges = true;
  return {info, std::nullopt};
}

std::optional<failure> pvc_fetch(const std::string& path, partial_sink& sink) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return file_failure(errno, path);
  std::vector<char> buf(k_chunk);
  std::optional<failure> fail;
  for (;;) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(sink.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail = from_errno(errno, "cannot read " + path);
      break;
    }
    if (n == 0) break;
    if ((fail = sink.write(std::string_view(buf.data(), static_cast<size_t>(n))))) break;
  }
  ::close(fd);
  return fail;
}

populate_result fail_result(failure f, uint64_t bytes = 0, uint64_t fetched = 0) {
  populate_result r;
  r.outcome = f.outcome;
  r.message = std::move(f.message);
  r.bytes = bytes;
  r.fetched = fetched;
  return r;
}

}  // namespace

std::string_view reason_name(populate_outcome o) {
  switch (o) {
    case populate_outcome::succeeded:
    case populate_outcome::already_present:
      return "Succeeded";
    case populate_outcome::missing_source:
      return "MissingSource";
    case populate_outcome::checksum_mismatch:
      return "ChecksumMismatch";
    case populate_outcome::unauthorized:
      return "Unauthorized";
    case populate_outcome::transient:
      return "Transient";
  }
  return "Transient";
}

std::string default_file_name(populate_source type, std::string_view url) {
  const auto scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  if (type == populate_source::http) rest = rest.substr(0, rest.find_first_of("?#"));
  const auto slash = rest.rfind('/');
  if (slash == std::string_view::npos) return {};  // only an authority: no path element
  std::string name(rest.substr(slash + 1));
  if (type == populate_source::http) name = url_decode(name, false);
  if (name == "." || name == ".." || name.find('/') != std::string::npos) return {};
  return name;
}

std::string partial_path(const std::string& dest_dir, const std::string& file_name) {
  return local_fs::join(dest_dir, "." + file_name + ".partial");
}

std::string digest_record_path(const std::string& dest_dir) {
  return local_fs::join(dest_dir, ".tidesync-digest");
}

populate_result populate(const populate_options& o) {
  const std::string final_path = local_fs::join(o.dest_dir, o.file_name);
  const std::string partial = partial_path(o.dest_dir, o.file_name);
  const std::string record_path = digest_record_path(o.dest_dir);

  if (auto made = local_fs::make_dirs(o.dest_dir); !made)
    return fail_result(from_error(made.error(), "cannot create " + o.dest_dir));

  // Preload with a checksum needs no network: the record names the digest.
  const auto rec = read_record(record_path);
  auto present = [&](const record& r) {
    populate_result res;
    res.outcome = populate_outcome::already_present;
    res.digest = r.digest;
    res.bytes = static_cast<uint64_t>(r.size);
    res.message =
        final_path + " already present (" + r.digest + ", " + std::to_string(r.size) + " bytes)";
    return res;
  };
  if (o.checksum && rec && rec->file == o.file_name && rec->digest == *o.checksum &&
      (!o.size || static_cast<int64_t>(*o.size) == rec->size) && file_matches(*rec, final_path))
    return present(*rec);

  // The source, once per process.
  std::unique_ptr<http::loop> loop;
  std::unique_ptr<s3_client> s3;
  std::unique_ptr<http_source> web;
  if (o.type != populate_source::pvc) loop = std::make_unique<http::loop>();
  if (o.type == populate_source::s3) s3 = std::make_unique<s3_client>(*loop, o.s3);
  if (o.type == populate_source::http) web = std::make_unique<http_source>(*loop, o.http_url);
  auto head = [&]() -> result_or<source_info> {
    switch (o.type) {
      case populate_source::http:
        return web->head();
      case populate_source::s3:
        return s3_stat(*s3, o);
      case populate_source::pvc:
        return pvc_head(o.source_path);
    }
    return {};
  };

  backoff wait{backoff_options{o.retry_initial, std::chrono::milliseconds(30'000), 2.0, 0.2,
                               std::chrono::minutes(10), 0}};
  int attempt = 0;
  // A transient failure is retried until max_attempts; anything else ends the run.
  auto retry = [&](const failure& f) {
    if (f.outcome != populate_outcome::transient || ++attempt >= o.max_attempts) return false;
    const auto delay = wait.next();
    std::fprintf(stderr, "tidesync agent populate: %s; retrying in %lld ms\n", f.message.c_str(),
                 static_cast<long long>(delay.count()));
    std::this_thread::sleep_for(delay);  // a retry wait, not a synchronisation
    return true;
  };

  source_info info;
  for (;;) {
    auto h = head();
    if (h.value) {
      info = *h.value;
      break;
    }
    if (!retry(*h.fail)) return fail_result(*h.fail);
  }

  // Preload without a checksum: the same source, size and validator as recorded.
  if (!o.checksum && rec && rec->file == o.file_name && rec->source == o.url && info.size &&
      static_cast<int64_t>(*info.size) == rec->size &&
      ((!info.etag.empty() && info.etag == rec->etag) ||
       (!info.last_modified.empty() && info.last_modified == rec->last_modified)) &&
      file_matches(*rec, final_path))
    return present(*rec);

  if (o.size && info.size && *o.size != *info.size) {
    return fail_result({populate_outcome::checksum_mismatch,
                        "size mismatch: expected " + std::to_string(*o.size) +
                            " bytes, the source has " + std::to_string(*info.size) + " bytes"});
  }

  partial_sink sink(partial, o.progress_interval, o.progress_out);
  sink.set_total(info.size);
  if (auto f = sink.open()) return fail_result(*f);
  // A partial of another source version starts over. Without a sidecar (a partial from
  // elsewhere) it is resumed: the checksum, when given, still guards the result.
  const std::string sidecar = partial + ".source";
  const record now = partial_source(o.url, info);
  if (sink.size() > 0) {
    if (auto then = read_record(sidecar);
        then && (then->source != now.source || then->size != now.size || then->etag != now.etag ||
                 then->last_modified != now.last_modified)) {
      std::fprintf(stderr,
                   "tidesync agent populate: the source changed since %s was written; starting "
                   "over\n",
                   partial.c_str());
      if (auto f = sink.restart()) return fail_result(*f);
    }
  }
  if (auto f = write_partial_source(o.dest_dir, sidecar, now)) return fail_result(*f);
  populate_result res;
  bool first = true;
  for (;;) {
    if (info.size && sink.size() > *info.size) {
      if (auto f = sink.restart()) return fail_result(*f);
    }
    // Complete already (a run that died before the rename): only the verification is left.
    if (info.size && sink.size() == *info.size && sink.size() > 0) {
      if (first) res.resumed_from = sink.size();
      break;
    }
    if (!info.ranges || (web && !web->ranges_work())) {
      if (sink.size() > 0) {
        if (auto f = sink.restart()) return fail_result(*f);
      }
    }
    if (first) res.resumed_from = sink.size();
    first = false;
    std::optional<failure> f;
    switch (o.type) {
      case populate_source::http:
        f = web->fetch(sink, info);
        break;
      case populate_source::s3:
        f = s3_fetch(*s3, o, sink);
        break;
      case populate_source::pvc:
        f = pvc_fetch(o.source_path, sink);
        break;
    }
    if (!f) break;
    if (!retry(*f)) return fail_result(*f, sink.size(), sink.fetched());
  }
  sink.report(true);
  res.digest = sink.digest();
  res.bytes = sink.size();
  res.fetched = sink.fetched();

  auto mismatch = [&](std::string message) {
    ::unlink(partial.c_str());  // bad data is not resumed from
    ::unlink(sidecar.c_str());
    res.outcome = populate_outcome::checksum_mismatch;
    res.message = std::move(message);
    return res;
  };
  if (o.size && res.bytes != *o.size)
    return mismatch("size mismatch: expected " + std::to_string(*o.size) + " bytes, got " +
                    std::to_string(res.bytes) + " bytes from " + o.url);
  if (info.size && res.bytes != *info.size)
    return mismatch("size mismatch: the source announced " + std::to_string(*info.size) +
                    " bytes, got " + std::to_string(res.bytes));
  if (o.checksum && res.digest != *o.checksum)
    return mismatch("checksum mismatch: expected " + *o.checksum + ", got " + res.digest +
                    " from " + o.url);

  if (auto f = sink.sync_and_close()) return fail_result(*f, res.bytes, res.fetched);
  // The old record goes first: a crash between the rename and the new record leaves no record
  // (a download next time), never a record that describes other data.
  ::unlink(record_path.c_str());
  if (::rename(partial.c_str(), final_path.c_str()) != 0)
    return fail_result(from_errno(errno, "cannot rename " + partial), res.bytes, res.fetched);
  ::unlink(sidecar.c_str());
  if (auto f = fsync_dir(o.dest_dir)) return fail_result(*f, res.bytes, res.fetched);
  struct stat st {};
  if (::stat(final_path.c_str(), &st) != 0)
    return fail_result(from_errno(errno, "cannot stat " + final_path), res.bytes, res.fetched);
  record r;
  r.digest = res.digest;
  r.size = static_cast<int64_t>(res.bytes);
  r.source = o.url;
  r.etag = info.etag;
  r.last_modified = info.last_modified;
  r.file = o.file_name;
  r.mtime_ns = mtime_ns(st);
  if (auto f = write_record(o.dest_dir, r)) return fail_result(*f, res.bytes, res.fetched);
  res.outcome = populate_outcome::succeeded;
  res.message =
      "populated " + final_path + ": " + std::to_string(res.bytes) + " bytes, " + res.digest +
      (res.resumed_from > 0 ? " (resumed from " + std::to_string(res.resumed_from) + ")" : "");
  return res;
}

}  // namespace tidesync::transfer
