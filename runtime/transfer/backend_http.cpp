// The read-only HTTP(S) source backend (backend.hpp), like rclone's http backend.
//
// - A root URL ending in '/' is a directory: its HTML listing (http_listing.hpp) is fetched
//   and every subdirectory walked; each file gets a HEAD for its size (Content-Length) and
//   modification time (Last-Modified, exact to the second). Directory GETs and HEADs share a
//   budget of `checkers` requests in flight.
// - Any other root URL is HEADed (redirects not followed, as rclone does): a 2xx answer makes
//   it a single file; a redirect to a URL ending in '/' (how servers answer "dir" for "dir/")
//   makes it a directory.
// - Reads: files up to multipart_threshold, or on servers without "Accept-Ranges: bytes", are
//   one GET into memory (capped, since the loop cannot pause a transfer); larger files on
//   servers that take ranges are ranged GETs of part_size, part_concurrency in flight.
// - Connection failures, timeouts, 429 and 5xx answers are retried with jittered backoff.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <set>

#include "runtime/backoff.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/log.hpp"
#include "runtime/transfer/backend.hpp"
#include "runtime/transfer/http_listing.hpp"
#include "runtime/transfer/range_reader.hpp"
#include "runtime/transfer/s3_client.hpp"
#include "runtime/transfer/s3_xml.hpp"

namespace tidesync::transfer {

namespace {

using namespace std::chrono_literals;

constexpr int k_max_attempts = 5;
constexpr int k_max_depth = 64;
// Files read whole when the server takes no ranges: above this, refuse rather than risk memory.
constexpr uint64_t k_max_whole = 256ull << 20;

bool ok_status(long s) {
  return s >= 200 && s < 300;
}

std::string status_text(const http::response& r) {
  return "HTTP " + std::to_string(r.status);
}

error status_error(const std::string& method, const std::string& url, const http::response& r) {
  return make_error(errc_from_http_status(static_cast<int>(r.status)),
                    method + " " + url + ": " + status_text(r));
}

// One request with its retries. Captures only the loop (which outlives every backend) and
// the state, so a timer firing after the backend is gone is harmless.
struct fetch_state {
  http::request proto;  // method, url, headers, timeouts (no callbacks)
  std::function<void(expected<http::response>)> done;
  backoff retry{backoff_options{200ms, 5s, 2.0, 0.2, std::chrono::minutes(2), 0}};
  int attempt = 0;
};

void fetch_attempt(http::loop& loop, const std::shared_ptr<fetch_state>& st) {
  http::request r = st->proto;
  r.on_done = [&loop, st](expected<http::response> res) {
    const bool retry =
        !res ? (res.error().code == errc::unavailable || res.error().code == errc::timeout)
             : (res->status == 429 || res->status >= 500);
    if (retry && ++st->attempt < k_max_attempts) {
      const auto delay = st->retry.next();
      log::get("http")->debug("{} {}: attempt {} failed ({}); retrying in {} ms", st->proto.method,
                              st->proto.url, st->attempt,
                              res ? status_text(*res) : res.error().message, delay.count());
      loop.post_after(delay, [&loop, st] { fetch_attempt(loop, st); });
      return;
    }
    st->done(std::move(res));
  };
  loop.submit(std::move(r));
}

http::request make_request(std::string method, std::string url, http::header_list headers = {}) {
  http::request r;
  r.method = std::move(method);
  r.url = std::move(url);
  r.headers = std::move(headers);
  r.connect_timeout = 15s;
  if (r.method == "HEAD") {
    r.timeout = 60s;
  } else {
    // Bodies can be large: no total deadline, but a stalled server fails.
    r.idle_timeout = 60s;
  }
  return r;
}

void fetch(http::loop& loop, http::request proto,
           std::function<void(expected<http::response>)> done) {
  auto st = std::make_shared<fetch_state>();
  st->proto = std::move(proto);
  st->done = std::move(done);
  fetch_attempt(loop, st);
}

expected<http::response> fetch_sync(http::loop& loop, http::request proto) {
  if (loop.on_loop_thread()) {
    return make_error(errc::internal,
                      "http: a blocking call was made on the HTTP loop thread (it would deadlock)");
  }
  auto promise = std::make_shared<std::promise<expected<http::response>>>();
  auto future = promise->get_future();
  fetch(loop, std::move(proto),
        [promise](expected<http::response> r) { promise->set_value(std::move(r)); });
  return future.get();
}

error transport_error(const std::string& method, const std::string& url, const error& e) {
  if (e.message.find(url) != std::string::npos) return e;
  return make_error(e.code, method + " " + url + ": " + e.message);
}

error changed_error(const std::string& url, uint64_t listed, uint64_t read) {
  return make_error(errc::io_error, url + " changed size while being copied (" +
                                        std::to_string(listed) + " bytes listed, " +
                                        std::to_string(read) +
                                        " read); the next run copies it again");
}

// The total of "Content-Range: bytes 0-99/1234", or nullopt.
std::optional<uint64_t> content_range_total(const http::response& r) {
  const auto* h = r.header("content-range");
  if (!h) return std::nullopt;
  const auto slash = h->rfind('/');
  if (slash == std::string::npos || slash + 1 >= h->size() || (*h)[slash + 1] == '*')
    return std::nullopt;
  return std::strtoull(h->c_str() + slash + 1, nullptr, 10);
}

// The last path element of a URL, decoded ("" for ".../").
std::string last_element(const std::string& url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  const auto scheme = path.find("://");
  const auto start = path.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (start == std::string::npos) return {};
  path.erase(0, start);
  return url_decode(path.substr(path.rfind('/') + 1), false);
}

class http_backend final : public backend {
 public:
  http_backend(const location& loc, http::loop& loop, const backend_options& opts)
      : loc_(loc), loop_(loop), opts_(opts) {}

  [[nodiscard]] std::string where() const override { return "\"" + loc_.text + "\""; }
  [[nodiscard]] bool writable() const override { return false; }
  [[nodiscard]] std::chrono::nanoseconds precision() const override { return 1s; }
  [[nodiscard]] bool listing_mtime_approximate() const override { return false; }

  expected<std::vector<entry>> list() override {
    std::string root = loc_.url;
    if (root.empty()) return make_error(errc::invalid_argument, "an HTTP source needs a URL");
    if (root.back() != '/') {
      auto h = fetch_sync(loop_, make_request("HEAD", root));
      if (!h) return transport_error("HEAD", root, h.error());
      if (ok_status(h->status)) return list_single_file(root, *h);
      if (h->status == 404) return not_found(root);
      const auto* location = h->header("location");
      if (h->status < 300 || h->status >= 400 || !location || location->empty() ||
          location->back() != '/') {
        return make_error(errc_from_http_status(static_cast<int>(h->status)),
                          "HEAD " + root + ": " + status_text(*h) +
                              (location ? " (redirected to " + *location + ")" : ""));
      }
      root += '/';  // "dir" redirected to "dir/"
    }
    {
      std::lock_guard lock(mu_);
      dir_url_ = root;
      single_file_url_.clear();
    }
    return list_tree(root);
  }

  expected<std::unique_ptr<reader>> open(const entry& e) override {
    std::string url;
    bool ranges;
    {
      std::lock_guard lock(mu_);
      url = single_file_url_.empty() ? dir_url_ + uri_encode(e.path, /*keep_slash=*/true)
                                     : single_file_url_;
      ranges = ranges_.count(e.path) > 0;
    }
    if (ranges && e.size > opts_.multipart_threshold) {
      auto fetch_range = [&loop = loop_, url, size = e.size](uint64_t first, uint64_t len,
                                                             range_reader::done_fn done) {
        const std::string range =
            "bytes=" + std::to_string(first) + "-" + std::to_string(first + len - 1);
        fetch(loop, make_request("GET", url, {{"Range", range}}),
              [url, size, done = std::move(done)](expected<http::response> r) {
                if (!r) return done(transport_error("GET", url, r.error()));
                if (r->status == 200) {
                  return done(
                      make_error(errc::io_error, "GET " + url +
                                                     ": the server ignored the Range header it "
                                                     "advertised (Accept-Ranges: bytes)"));
                }
                if (r->status != 206) return done(status_error("GET", url, *r));
                if (auto total = content_range_total(*r); total && *total != size)
                  return done(changed_error(url, size, *total));
                done(std::move(r->body));
              });
      };
      return std::unique_ptr<reader>(new range_reader(
          url, e.size, opts_.part_size, opts_.part_concurrency, std::move(fetch_range)));
    }
    const uint64_t limit = std::max(opts_.multipart_threshold, k_max_whole);
    if (e.size > limit) {
      return make_error(errc::io_error,
                        url + " is " + std::to_string(e.size) +
                            " bytes and the server does not take ranged requests (no "
                            "\"Accept-Ranges: bytes\"); tidesync reads such files whole, up to " +
                            std::to_string(limit) + " bytes");
    }
    auto r = fetch_sync(loop_, make_request("GET", url));
    if (!r) return transport_error("GET", url, r.error());
    if (!ok_status(r->status)) return status_error("GET", url, *r);
    if (r->body.size() != e.size) return changed_error(url, e.size, r->body.size());
    return std::unique_ptr<reader>(new memory_reader(std::move(r->body)));
  }

  expected<void> write(const entry& e, reader&) override { return read_only("write " + e.path); }
  expected<void> set_mtime(const std::string& rel, time_point) override {
    return read_only("set the modification time of " + rel);
  }
  expected<void> remove(const std::string& rel) override { return read_only("delete " + rel); }
  expected<void> make_dir(const std::string& rel) override {
    return read_only("create directory " + rel);
  }
  expected<void> remove_dir(const std::string& rel) override {
    return read_only("remove directory " + rel);
  }

 private:
  [[nodiscard]] error read_only(const std::string& what) const {
    return make_error(errc::invalid_argument,
                      "cannot " + what + " in " + where() + ": the HTTP backend is read-only");
  }

  [[nodiscard]] error not_found(const std::string& url) const {
    return make_error(errc::not_found, "not found (HTTP 404 for " + url + ")");
  }

  // Size and time from a HEAD answer; Accept-Ranges noted for open().
  expected<void> fill_from_head(entry& e, const std::string& url, const http::response& h) {
    const auto* len = h.header("content-length");
    if (!len || len->empty() ||
        !std::all_of(len->begin(), len->end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return make_error(errc::io_error, "HEAD " + url +
                                            ": the server sent no Content-Length, and a sync "
                                            "needs every file's size");
    }
    e.size = std::strtoull(len->c_str(), nullptr, 10);
    if (const auto* lm = h.header("last-modified")) e.mtime = parse_s3_time(*lm);
    if (const auto* ar = h.header("accept-ranges"); ar && ar->find("bytes") != std::string::npos) {
      std::lock_guard lock(mu_);
      ranges_.insert(e.path);
    }
    return {};
  }

  expected<std::vector<entry>> list_single_file(const std::string& url, const http::response& h) {
    entry e;
    e.path = last_element(url);
    if (e.path.empty() || e.path == "." || e.path == "..") {
      return make_error(errc::invalid_argument,
                        "the URL names no file (add a '/' to list a directory)");
    }
    {
      std::lock_guard lock(mu_);
      single_file_url_ = url;
      ranges_.clear();
    }
    if (auto r = fill_from_head(e, url, h); !r) return r.error();
    return std::vector<entry>{std::move(e)};
  }

  // Walks the tree breadth first. The calling thread parses and decides; loop callbacks only
  // hand answers back, so nothing heavy runs on the loop thread.
  expected<std::vector<entry>> list_tree(const std::string& root) {
    struct task {
      bool dir = false;
      std::string rel;  // "" for the root; no trailing '/'
      int depth = 0;
    };
    struct answer {
      task t;
      std::string url;
      expected<http::response> res;
    };
    struct shared {
      std::mutex mu;
      std::condition_variable cv;
      std::deque<answer> answers;
    };
    auto sh = std::make_shared<shared>();
    std::deque<task> todo{task{true, "", 0}};
    std::vector<entry> out;
    std::optional<error> failure;
    int in_flight = 0;
    const int limit = std::max(1, opts_.checkers);

    for (;;) {
      while (!failure && in_flight < limit && !todo.empty()) {
        task t = std::move(todo.front());
        todo.pop_front();
        std::string url = root + uri_encode(t.rel, /*keep_slash=*/true);
        if (t.dir && !t.rel.empty()) url += '/';
        ++in_flight;
        fetch(loop_, make_request(t.dir ? "GET" : "HEAD", url),
              [sh, t, url](expected<http::response> r) {
                {
                  std::lock_guard lock(sh->mu);
                  sh->answers.push_back(answer{t, url, std::move(r)});
                }
                sh->cv.notify_one();
              });
      }
      if (in_flight == 0) break;
      answer a = [&] {
        std::unique_lock lock(sh->mu);
        sh->cv.wait(lock, [&] { return !sh->answers.empty(); });
        answer x = std::move(sh->answers.front());
        sh->answers.pop_front();
        return x;
      }();
      --in_flight;
      if (failure) continue;  // draining
      const char* method = a.t.dir ? "GET" : "HEAD";
      if (!a.res) {
        failure = transport_error(method, a.url, a.res.error());
        continue;
      }
      if (a.res->status == 404 && a.t.rel.empty()) {
        failure = not_found(a.url);
        continue;
      }
      if (!ok_status(a.res->status)) {
        failure = status_error(method, a.url, *a.res);
        continue;
      }
      if (!a.t.dir) {
        entry e;
        e.path = a.t.rel;
        if (auto r = fill_from_head(e, a.url, *a.res); !r) {
          failure = r.error();
          continue;
        }
        out.push_back(std::move(e));
        continue;
      }
      if (a.t.depth >= k_max_depth) {
        failure = make_error(errc::invalid_argument,
                             "directories nested deeper than " + std::to_string(k_max_depth) +
                                 " levels at " + a.url + " (a link loop on the server?)");
        continue;
      }
      for (auto& link : parse_listing(a.res->body, a.url)) {
        task child{link.dir, a.t.rel.empty() ? link.name : a.t.rel + "/" + link.name,
                   a.t.depth + 1};
        if (link.dir) {
          entry d;
          d.path = child.rel;
          d.dir = true;
          out.push_back(std::move(d));
        }
        todo.push_back(std::move(child));
      }
    }
    if (failure) return *failure;
    std::sort(out.begin(), out.end(),
              [](const entry& x, const entry& y) { return x.path < y.path; });
    return out;
  }

  location loc_;
  http::loop& loop_;
  backend_options opts_;
  std::mutex mu_;
  std::string dir_url_;           // the listed directory, ending in '/'
  std::string single_file_url_;   // set when the root is one file
  std::set<std::string> ranges_;  // files whose server advertised byte ranges
};

}  // namespace

std::unique_ptr<backend> make_http_backend(const location& loc, http::loop& loop,
                                           const backend_options& opts) {
  return std::make_unique<http_backend>(loc, loop, opts);
}

}  // namespace tidesync::transfer
