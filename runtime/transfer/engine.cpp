#include "runtime/transfer/engine.hpp"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "runtime/http/loop.hpp"
#include "runtime/transfer/filter.hpp"
#include "runtime/transfer/local_fs.hpp"
#include "runtime/transfer/s3_client.hpp"
#include "runtime/transfer/safety.hpp"

namespace tidesync::transfer {
namespace {

using clock_type = std::chrono::steady_clock;
using time_point = std::chrono::system_clock::time_point;

// rclone's X-Amz-Meta-Mtime: seconds since the epoch with 9 fraction digits.
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

bool is_md5_hex(const std::string& etag) {
  return etag.size() == 32 && std::all_of(etag.begin(), etag.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

expected<std::string> md5_of_file(const std::string& path, uint64_t size) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr);
  const uint64_t chunk = 4ull << 20;
  for (uint64_t off = 0; off < size || off == 0; off += chunk) {
    auto data = local_fs::read_range(path, off, chunk);
    if (!data) return data.error();
    EVP_DigestUpdate(ctx.get(), data->data(), data->size());
    if (data->size() < chunk) break;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

// Runs fn(i) for i in [0, n) on up to `workers` threads.
template <class Fn>
void parallel_for(size_t n, int workers, Fn fn) {
  if (n == 0) return;
  const size_t k = std::min<size_t>(n, static_cast<size_t>(std::max(1, workers)));
  if (k == 1) {
    for (size_t i = 0; i < n; ++i)
      fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  threads.reserve(k);
  for (size_t t = 0; t < k; ++t) {
    threads.emplace_back([&] {
      for (size_t i = next++; i < n; i = next++)
        fn(i);
    });
  }
  for (auto& th : threads)
    th.join();
}

// One side of the transfer.
struct side {
  const location* loc = nullptr;
  std::unique_ptr<s3_client> s3;
  std::unordered_map<std::string, entry> by_path;  // files only, after listing

  [[nodiscard]] bool local() const { return loc->kind == location_kind::local; }
  [[nodiscard]] std::string local_path(const std::string& rel) const {
    return local_fs::join(loc->path, rel);
  }
  [[nodiscard]] std::string key(const std::string& rel) const { return loc->prefix + rel; }
  [[nodiscard]] std::string where() const {
    return local() ? "\"" + loc->path + "\"" : "\"" + loc->text + "\"";
  }
};

expected<std::vector<entry>> list_side(side& s) {
  if (s.local()) return local_fs::list(s.loc->path);
  auto objects = s.s3->list_sync(s.loc->bucket, list_request{s.loc->prefix, "", 0});
  if (!objects) return objects.error();
  std::vector<entry> out;
  std::set<std::string> dirs;
  for (auto& o : *objects) {
    if (o.key.size() < s.loc->prefix.size()) continue;
    std::string rel = o.key.substr(s.loc->prefix.size());
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

// Replaces LastModified by x-amz-meta-mtime for the given S3 entries.
expected<void> read_s3_mtimes(side& s, std::vector<entry>& entries,
                              const std::vector<size_t>& which, int workers) {
  std::mutex mu;
  std::optional<error> first_error;
  parallel_for(which.size(), workers, [&](size_t i) {
    entry& e = entries[which[i]];
    auto h = s.s3->head_sync(s.loc->bucket, s.key(e.path));
    if (!h) {
      std::lock_guard lock(mu);
      if (!first_error) first_error = h.error();
      return;
    }
    auto it = h->metadata.find("mtime");
    if (it != h->metadata.end()) {
      if (auto t = parse_mtime(it->second)) e.mtime = *t;
    }
  });
  if (first_error) return *first_error;
  return {};
}

class runner {
 public:
  runner(side& src, side& dst, const engine_options& opts) : src_(src), dst_(dst), opts_(opts) {}

  // Copies one file; returns bytes moved.
  expected<uint64_t> copy(const action& a) {
    const entry& se = src_.by_path.at(a.path);
    if (src_.local() && dst_.local())
      return local_fs::copy_file(src_.local_path(a.path), dst_.local_path(a.path), se.mtime);
    if (dst_.local()) {
      local_fs::writer w;
      if (auto r = w.open(dst_.local_path(a.path)); !r) return r.error();
      for (uint64_t off = 0; off < se.size || off == 0; off += opts_.part_size) {
        auto data = read_source(a.path, se.size, off, opts_.part_size);
        if (!data) return data.error();
        if (auto r = w.write(*data); !r) return r.error();
        if (off + opts_.part_size >= se.size) break;
      }
      if (auto r = w.commit(se.mtime); !r) return r.error();
      return se.size;
    }
    // To S3.
    const std::string key = dst_.key(a.path);
    s3_metadata meta{{"mtime", format_mtime(se.mtime)}};
    if (se.size <= opts_.multipart_threshold) {
      auto data = read_source(a.path, se.size, 0, se.size);
      if (!data) return data.error();
      if (data->size() != se.size) return changed_error(a.path);
      auto etag = dst_.s3->put_sync(dst_.loc->bucket, key, std::move(*data), meta);
      if (!etag) return etag.error();
      return se.size;
    }
    auto upload = dst_.s3->create_multipart_sync(dst_.loc->bucket, key, meta);
    if (!upload) return upload.error();
    std::vector<s3_part> parts;
    auto fail = [&](error e) -> expected<uint64_t> {
      (void)dst_.s3->abort_multipart_sync(dst_.loc->bucket, key, *upload);
      return e;
    };
    int number = 1;
    for (uint64_t off = 0; off < se.size; off += opts_.part_size, ++number) {
      const uint64_t len = std::min(opts_.part_size, se.size - off);
      auto data = read_source(a.path, se.size, off, len);
      if (!data) return fail(data.error());
      if (data->size() != len) return fail(changed_error(a.path));
      auto etag =
          dst_.s3->upload_part_sync(dst_.loc->bucket, key, *upload, number, std::move(*data));
      if (!etag) return fail(etag.error());
      parts.push_back({number, *etag});
    }
    auto done = dst_.s3->complete_multipart_sync(dst_.loc->bucket, key, *upload, std::move(parts));
    if (!done) return fail(done.error());
    return se.size;
  }

  expected<void> remove(const std::string& rel) {
    if (dst_.local()) return local_fs::remove_file(dst_.local_path(rel));
    return dst_.s3->remove_sync(dst_.loc->bucket, dst_.key(rel));
  }

 private:
  static error changed_error(const std::string& rel) {
    return make_error(errc::io_error,
                      "\"" + rel +
                          "\" changed size while being copied; it will be copied again "
                          "by the next run");
  }

  expected<std::string> read_source(const std::string& rel, uint64_t size, uint64_t off,
                                    uint64_t len) {
    if (src_.local()) return local_fs::read_range(src_.local_path(rel), off, len);
    std::optional<byte_range> range;
    if (off != 0 || len < size) range = byte_range{off, off + len - 1};
    if (size == 0) range.reset();
    return src_.s3->get_sync(src_.loc->bucket, src_.key(rel), range);
  }

  side& src_;
  side& dst_;
  const engine_options& opts_;
};

}  // namespace

expected<engine_result> run_engine(const location& src_loc, const location& dst_loc,
                                   const engine_options& opts) {
  const auto started = clock_type::now();
  engine_result result;
  const bool dst_local = dst_loc.kind == location_kind::local;
  const direction dir = dst_local ? direction::to_local : direction::to_remote;
  const bool forced = dst_local ? opts.force_delete_local_dir : opts.force_delete_remote_dir;

  if (opts.m == mode::sync && dst_local && !forced) {
    if (auto r = check_sync_root(dst_loc.path); !r) return r.error();
  }
  if (src_loc.kind == location_kind::local) {
    struct stat st {};
    if (::stat(src_loc.path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return make_error(errc::not_found, "the source directory \"" + src_loc.path +
                                             "\" does not exist or is not a directory");
    }
  }

  auto filt = filter::from_flags(opts.includes, opts.excludes);
  if (!filt) return filt.error();

  std::unique_ptr<http::loop> loop;
  side src, dst;
  src.loc = &src_loc;
  dst.loc = &dst_loc;
  if (src_loc.kind == location_kind::s3 || dst_loc.kind == location_kind::s3)
    loop = std::make_unique<http::loop>();
  if (src_loc.kind == location_kind::s3) src.s3 = std::make_unique<s3_client>(*loop, src_loc.s3);
  if (dst_loc.kind == location_kind::s3) dst.s3 = std::make_unique<s3_client>(*loop, dst_loc.s3);

  // List both sides at once.
  expected<std::vector<entry>> src_list = std::vector<entry>{};
  expected<std::vector<entry>> dst_list = std::vector<entry>{};
  {
    std::thread t([&] { dst_list = list_side(dst); });
    src_list = list_side(src);
    t.join();
  }
  if (!src_list) {
    auto e = src_list.error();
    e.message = "listing the source " + src.where() + ": " + e.message;
    return e;
  }
  if (!dst_list) {
    auto e = dst_list.error();
    e.message = "listing the destination " + dst.where() + ": " + e.message;
    return e;
  }
  // Keep only what the filters let through for the metadata work below (make_plan filters
  // again, cheaply).
  std::unordered_map<std::string, size_t> dst_index;
  for (size_t i = 0; i < dst_list->size(); ++i)
    if (!(*dst_list)[i].dir) dst_index.emplace((*dst_list)[i].path, i);

  // The metadata the comparison needs: S3 mtimes (x-amz-meta-mtime) and, with --checksum,
  // local MD5s for files present on both sides with the same size.
  std::vector<size_t> src_heads, dst_heads;
  std::vector<std::pair<size_t, size_t>> same_size;  // (src index, dst index)
  for (size_t i = 0; i < src_list->size(); ++i) {
    const auto& s = (*src_list)[i];
    if (s.dir || !filt->included(s.path, false)) continue;
    // An S3 source's mtime is needed to compare and to stamp the copy.
    if (!src.local() && !opts.size_only) src_heads.push_back(i);
    auto it = dst_index.find(s.path);
    if (it == dst_index.end() || (*dst_list)[it->second].size != s.size) continue;
    same_size.emplace_back(i, it->second);
    if (!dst.local() && !opts.size_only && !opts.checksum) dst_heads.push_back(it->second);
  }
  if (!src_heads.empty()) {
    if (auto r = read_s3_mtimes(src, *src_list, src_heads, opts.transfers * 2); !r) {
      auto e = r.error();
      e.message = "reading object metadata of the source: " + e.message;
      return e;
    }
  }
  if (!dst_heads.empty()) {
    if (auto r = read_s3_mtimes(dst, *dst_list, dst_heads, opts.transfers * 2); !r) {
      auto e = r.error();
      e.message = "reading object metadata of the destination: " + e.message;
      return e;
    }
  }
  if (opts.checksum) {
    std::mutex mu;
    std::optional<error> first;
    parallel_for(same_size.size(), opts.transfers, [&](size_t k) {
      auto [si, di] = same_size[k];
      for (auto [list, s, idx] :
           {std::tuple{&*src_list, &src, si}, std::tuple{&*dst_list, &dst, di}}) {
        entry& e = (*list)[idx];
        if (!s->local() || e.md5) continue;
        auto md5 = md5_of_file(s->local_path(e.path), e.size);
        if (!md5) {
          std::lock_guard lock(mu);
          if (!first) first = md5.error();
          return;
        }
        e.md5 = *md5;
      }
    });
    if (first) return *first;
  }

  plan_options po;
  po.m = opts.m;
  po.checksum = opts.checksum;
  po.size_only = opts.size_only;
  po.max_delete = opts.max_delete;
  po.dry_run = opts.dry_run;
  po.rules = &*filt;
  po.modify_window = src.local() && dst.local() ? std::chrono::nanoseconds(1)
                                                : std::chrono::nanoseconds(std::chrono::seconds(1));
  auto p = make_plan(*src_list, *dst_list, po);
  if (!p) return p.error();

  for (const auto& e : *src_list)
    if (!e.dir) src.by_path.emplace(e.path, e);

  // Safety valves before anything is deleted.
  if (opts.m == mode::sync && (!p->deletes.empty() || !p->rmdirs.empty()) && !forced) {
    size_t src_files = 0, dst_files = 0;
    for (const auto& e : *src_list)
      if (!e.dir && filt->included(e.path, false)) ++src_files;
    for (const auto& e : *dst_list)
      if (!e.dir && filt->included(e.path, false)) ++dst_files;
    if (auto r = check_not_emptying(src_files, dst_files, dir); !r) {
      if (!src.local() || !dst_local) return r.error();
      // Local to local: safety.hpp's wording speaks of a remote; say "source" instead.
      return make_error(errc::invalid_argument,
                        "the source directory is empty: syncing would delete all " +
                            std::to_string(dst_files) +
                            " file(s) in the destination directory; check the source path, "
                            "or pass " +
                            std::string(override_flag(dir)) + " to allow it");
    }
    if (dst_local) {
      if (auto r = check_owner(normalize_local_path(dst_loc.path), ::geteuid()); !r)
        return r.error();
    }
  }

  result.unchanged = p->unchanged;
  // S3 cannot change an object's mtime in place: such files are uploaded again.
  std::vector<action> copies = p->copies;
  std::vector<action> set_mtimes;
  if (dst_local) {
    set_mtimes = p->set_modtimes;
  } else {
    copies.insert(copies.end(), p->set_modtimes.begin(), p->set_modtimes.end());
  }

  if (opts.dry_run) {
    for (const auto& w : p->warnings)
      std::fprintf(opts.out, "warning: %s\n", w.c_str());
    for (const auto& d : p->mkdirs)
      std::fprintf(opts.out, "mkdir %s\n", d.c_str());
    for (const auto& a : copies)
      std::fprintf(opts.out, "copy %s (%s, %" PRIu64 " bytes)\n", a.path.c_str(), a.reason.c_str(),
                   a.size);
    for (const auto& a : set_mtimes)
      std::fprintf(opts.out, "set-mtime %s\n", a.path.c_str());
    if (opts.m == mode::sync) {
      for (const auto& d : p->deletes)
        std::fprintf(opts.out, "delete %s\n", d.c_str());
      for (const auto& d : p->rmdirs)
        std::fprintf(opts.out, "rmdir %s\n", d.c_str());
    }
    result.copied = copies.size();
    for (const auto& a : copies)
      result.bytes += a.size;
    result.deleted = opts.m == mode::sync ? p->deletes.size() : 0;
    result.nothing_to_do = p->nothing_to_do();
    result.seconds = std::chrono::duration<double>(clock_type::now() - started).count();
    std::fflush(opts.out);
    return result;
  }
  for (const auto& w : p->warnings)
    std::fprintf(stderr, "tidesync: warning: %s\n", w.c_str());

  std::mutex mu;
  auto fail = [&](const std::string& what, const error& e) {
    std::lock_guard lock(mu);
    ++result.failed;
    result.errors.push_back(what + ": " + e.to_string());
  };
  if (dst_local) {
    for (const auto& d : p->mkdirs) {
      if (auto r = local_fs::make_dirs(dst.local_path(d)); !r) fail("mkdir " + d, r.error());
    }
  }
  runner run(src, dst, opts);
  std::atomic<uint64_t> bytes{0};
  std::atomic<size_t> copied{0};
  parallel_for(copies.size(), opts.transfers, [&](size_t i) {
    auto r = run.copy(copies[i]);
    if (!r) {
      fail("copy " + copies[i].path, r.error());
      return;
    }
    bytes += *r;
    ++copied;
    if (opts.verbose) {
      std::lock_guard lock(mu);
      std::fprintf(opts.out, "copied %s (%s)\n", copies[i].path.c_str(), copies[i].reason.c_str());
    }
  });
  for (const auto& a : set_mtimes) {
    if (auto r = local_fs::set_mtime(dst.local_path(a.path), src.by_path.at(a.path).mtime); !r)
      fail("set mtime " + a.path, r.error());
  }
  result.copied = copied;
  result.bytes = bytes;

  if (opts.m == mode::sync && (!p->deletes.empty() || !p->rmdirs.empty())) {
    if (result.failed > 0) {
      result.deletes_skipped = true;
    } else {
      std::atomic<size_t> deleted{0};
      parallel_for(p->deletes.size(), opts.transfers, [&](size_t i) {
        if (auto r = run.remove(p->deletes[i]); !r) {
          fail("delete " + p->deletes[i], r.error());
          return;
        }
        ++deleted;
        if (opts.verbose) {
          std::lock_guard lock(mu);
          std::fprintf(opts.out, "deleted %s\n", p->deletes[i].c_str());
        }
      });
      result.deleted = deleted;
      if (dst_local) {
        for (const auto& d : p->rmdirs) {
          if (auto r = local_fs::remove_dir(dst.local_path(d)); !r) fail("rmdir " + d, r.error());
        }
      }
    }
  }
  result.nothing_to_do = p->nothing_to_do();
  result.seconds = std::chrono::duration<double>(clock_type::now() - started).count();
  std::fflush(opts.out);
  return result;
}

}  // namespace tidesync::transfer
