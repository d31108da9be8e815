// The S3 backend (backend.hpp) over s3_client.hpp.
//
// - Small objects (up to multipart_threshold) are read and written whole in memory.
// - Larger downloads are ranged GETs of part_size, up to part_concurrency in flight per file,
//   consumed in order: the reader overlaps the network with the writer.
// - Larger uploads are multipart, up to part_concurrency parts in flight per file. Part
//   buffers are also bounded per backend (2 × part_concurrency), so memory stays at about
//   part_size × 2 × part_concurrency whatever --transfers is.
// - Modification times are rclone's: `x-amz-meta-mtime` on upload, read back with HEAD.
#include <algorithm>
#include <cinttypes>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>

#include "runtime/base64.hpp"
#include "runtime/transfer/backend.hpp"
#include "runtime/transfer/range_reader.hpp"
#include "runtime/transfer/s3_client.hpp"

namespace tidesync::transfer {

std::string format_mtime(time_point t) {
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  int64_t sec = ns / 1'000'000'000, frac = ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    sec -= 1;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, "%" PRId64 ".%09" PRId64, sec, frac);
  return buf;
}

std::optional<time_point> parse_mtime(const std::string& text) {
  if (text.empty()) return std::nullopt;
  const auto dot = text.find('.');
  char* end = nullptr;
  const std::string whole = text.substr(0, dot);
  errno = 0;
  long long sec = std::strtoll(whole.c_str(), &end, 10);
  if (errno != 0 || end == whole.c_str() || *end != '\0') return std::nullopt;
  int64_t ns = 0;
  if (dot != std::string::npos) {
    std::string frac = text.substr(dot + 1);
    if (frac.size() > 9) frac.resize(9);
    if (!std::all_of(frac.begin(), frac.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return std::nullopt;
    while (frac.size() < 9)
      frac += '0';
    ns = std::strtoll(frac.c_str(), nullptr, 10);
  }
  return time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::seconds(sec) + std::chrono::nanoseconds(ns)));
}

namespace {

bool is_md5_hex(const std::string& etag) {
  return etag.size() == 32 && std::all_of(etag.begin(), etag.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string to_hex(std::string_view raw) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

// A counting semaphore for part buffers.
class slots {
 public:
  explicit slots(int n) : free_(n) {}
  void acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return free_ > 0; });
    --free_;
  }
  void release() {
    {
      std::lock_guard lock(mu_);
      ++free_;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int free_;
};

// Reads up to `want` bytes (less only at the end).
expected<std::string> read_full(reader& in, uint64_t want) {
  std::string buf(want, '\0');
  uint64_t got = 0;
  while (got < want) {
    auto n = in.read(buf.data() + got, want - got);
    if (!n) return n.error();
    if (*n == 0) break;
    got += *n;
  }
  buf.resize(got);
  return buf;
}

error changed_error(const std::string& rel, uint64_t listed, uint64_t read) {
  return make_error(errc::io_error, "\"" + rel + "\" changed size while being copied (" +
                                        std::to_string(listed) + " bytes listed, " +
                                        std::to_string(read) +
                                        " read); the next run copies it again");
}

class s3_backend final : public backend {
 public:
  s3_backend(const location& loc, http::loop& loop, const backend_options& opts)
      : loc_(loc),
        s3_(loop, loc.s3),
        opts_(opts),
        part_slots_(std::max(2, 2 * opts.part_concurrency)) {}

  [[nodiscard]] std::string where() const override { return "\"" + loc_.text + "\""; }
  [[nodiscard]] bool listing_mtime_approximate() const override { return true; }
  [[nodiscard]] bool stores_hashes(uint64_t size) const override {
    return size > opts_.multipart_threshold;
  }

  expected<std::vector<entry>> list() override {
    auto objects = s3_.list_sync(loc_.bucket, list_request{loc_.prefix, "", 0});
    if (!objects) return objects.error();
    std::vector<entry> out;
    std::set<std::string> dirs;
    for (auto& o : *objects) {
      if (o.key.size() < loc_.prefix.size()) continue;
      std::string rel = o.key.substr(loc_.prefix.size());
      // Directory markers ("a/b/") and keys no file system can hold are skipped.
      if (rel.empty() || rel.back() == '/' || rel.front() == '/' ||
          rel.find("//") != std::string::npos)
        continue;
      for (auto slash = rel.find('/'); slash != std::string::npos; slash = rel.find('/', slash + 1))
        dirs.insert(rel.substr(0, slash));
      entry e;
      e.path = std::move(rel);
      e.size = o.size;
      e.mtime = o.last_modified;
      if (is_md5_hex(o.etag)) e.md5 = o.etag;
      out.push_back(std::move(e));
    }
    for (const auto& d : dirs) {
      entry e;
      e.path = d;
      e.dir = true;
      out.push_back(std::move(e));
    }
    return out;
  }

  expected<std::optional<entry>> stat(const std::string& rel) override {
    auto h = s3_.head_sync(loc_.bucket, key(rel));
    if (!h) {
      if (h.error().code == errc::not_found) return std::optional<entry>();
      return h.error();
    }
    entry e;
    e.path = rel;
    e.size = h->object.size;
    e.mtime = h->object.last_modified;
    if (is_md5_hex(h->object.etag)) e.md5 = h->object.etag;
    return std::optional<entry>(std::move(e));
  }

  expected<void> read_mtime(entry& e) override {
    auto h = s3_.head_sync(loc_.bucket, key(e.path));
    if (!h) return h.error();
    if (auto it = h->metadata.find("mtime"); it != h->metadata.end()) {
      if (auto t = parse_mtime(it->second)) e.mtime = *t;
    }
    return {};
  }

  expected<void> compute_hashes(entry& e) override {
    auto h = s3_.head_sync(loc_.bucket, key(e.path));
    if (!h) return h.error();
    if (is_md5_hex(h->object.etag)) e.md5 = h->object.etag;
    if (auto it = h->metadata.find("md5chksum"); it != h->metadata.end()) {
      if (auto raw = base64::decode(it->second); raw && raw->size() == 16) e.md5 = to_hex(*raw);
    }
    if (auto it = h->metadata.find("sha256"); it != h->metadata.end() && it->second.size() == 64)
      e.sha256 = it->second;
    return {};
  }

  expected<std::unique_ptr<reader>> open(const entry& e) override {
    if (e.size > opts_.multipart_threshold) {
      auto fetch = [this, k = key(e.path)](uint64_t first, uint64_t len,
                                           range_reader::done_fn done) {
        auto data = std::make_shared<std::string>();
        data->reserve(len);
        s3_.get(
            loc_.bucket, k, byte_range{first, first + len - 1},
            [data](std::string_view d) { data->append(d); },
            [data, done = std::move(done)](expected<void> r) {
              if (!r) return done(r.error());
              done(std::move(*data));
            });
      };
      return std::unique_ptr<reader>(new range_reader(e.path, e.size, opts_.part_size,
                                                      opts_.part_concurrency, std::move(fetch)));
    }
    auto data = s3_.get_sync(loc_.bucket, key(e.path));
    if (!data) return data.error();
    if (data->size() != e.size) return changed_error(e.path, e.size, data->size());
    return std::unique_ptr<reader>(new memory_reader(std::move(*data)));
  }

  expected<void> write(const entry& e, reader& in) override {
    const std::string k = key(e.path);
    s3_metadata meta{{"mtime", format_mtime(e.mtime)}};
    if (e.size <= opts_.multipart_threshold) {
      auto data = read_full(in, e.size);
      if (!data) return data.error();
      if (data->size() != e.size) return changed_error(e.path, e.size, data->size());
      char extra;
      if (auto more = in.read(&extra, 1); !more || *more != 0)
        return more ? changed_error(e.path, e.size, e.size + 1) : more.error();
      auto etag = s3_.put_sync(loc_.bucket, k, std::move(*data), meta);
      if (!etag) return etag.error();
      return {};
    }
    // rclone's md5chksum (base64 of the raw MD5) and our sha256, when the engine knows them.
    if (e.md5) {
      if (auto raw = from_hex(*e.md5)) meta["md5chksum"] = base64::encode(*raw);
    }
    if (e.sha256) meta["sha256"] = *e.sha256;
    return write_multipart(e, k, meta, in);
  }

  expected<void> remove(const std::string& rel) override {
    return s3_.remove_sync(loc_.bucket, key(rel));
  }

 private:
  [[nodiscard]] std::string key(const std::string& rel) const { return loc_.prefix + rel; }

  expected<void> write_multipart(const entry& e, const std::string& k, const s3_metadata& meta,
                                 reader& in) {
    auto upload = s3_.create_multipart_sync(loc_.bucket, k, meta);
    if (!upload) return upload.error();
    struct shared_state {
      std::mutex mu;
      std::condition_variable cv;
      int in_flight = 0;
      std::optional<error> err;
      std::vector<s3_part> parts;
    };
    auto st = std::make_shared<shared_state>();
    auto wait_all = [&] {
      std::unique_lock lock(st->mu);
      st->cv.wait(lock, [&] { return st->in_flight == 0; });
    };
    auto fail = [&](error err) -> expected<void> {
      wait_all();
      (void)s3_.abort_multipart_sync(loc_.bucket, k, *upload);
      return err;
    };
    uint64_t total = 0;
    for (int number = 1;; ++number) {
      {
        std::unique_lock lock(st->mu);
        st->cv.wait(lock, [&] { return st->in_flight < opts_.part_concurrency || st->err; });
        if (st->err) {
          lock.unlock();
          return fail(*st->err);
        }
      }
      part_slots_.acquire();
      auto data = read_full(in, opts_.part_size);
      if (!data) {
        part_slots_.release();
        return fail(data.error());
      }
      if (data->empty() && number > 1) {
        part_slots_.release();
        break;
      }
      total += data->size();
      if (total > e.size) {
        part_slots_.release();
        return fail(changed_error(e.path, e.size, total));
      }
      const bool last = data->size() < opts_.part_size;
      {
        std::lock_guard lock(st->mu);
        ++st->in_flight;
      }
      s3_.upload_part(loc_.bucket, k, *upload, number, std::move(*data),
                      [st, number, this](expected<std::string> etag) {
                        part_slots_.release();
                        {
                          std::lock_guard lock(st->mu);
                          --st->in_flight;
                          if (!etag) {
                            if (!st->err) st->err = etag.error();
                          } else {
                            st->parts.push_back({number, *etag});
                          }
                        }
                        st->cv.notify_all();
                      });
      if (last) break;
    }
    wait_all();
    if (st->err) return fail(*st->err);
    if (total != e.size) return fail(changed_error(e.path, e.size, total));
    auto done = s3_.complete_multipart_sync(loc_.bucket, k, *upload, std::move(st->parts));
    if (!done) return fail(done.error());
    return {};
  }

  location loc_;
  s3_client s3_;
  backend_options opts_;
  slots part_slots_;
};

}  // namespace

std::unique_ptr<backend> make_s3_backend(const location& loc, http::loop& loop,
                                         const backend_options& opts) {
  return std::make_unique<s3_backend>(loc, loop, opts);
}

}  // namespace tidesync::transfer
