#include "runtime/transfer/engine.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "runtime/http/loop.hpp"
#include "runtime/transfer/backend.hpp"
#include "runtime/transfer/filter.hpp"
#include "runtime/transfer/local_fs.hpp"
#include "runtime/transfer/safety.hpp"
#include "runtime/transfer/token_bucket.hpp"

namespace tidesync::transfer {
namespace {

using clock_type = std::chrono::steady_clock;

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

// Runs fn(entries[which[i]]) on `workers` threads; the first error wins.
template <class Fn>
expected<void> for_each_entry(std::vector<entry>& entries, const std::vector<size_t>& which,
                              int workers, Fn fn) {
  std::mutex mu;
  std::optional<error> first;
  parallel_for(which.size(), workers, [&](size_t i) {
    {
      std::lock_guard lock(mu);
      if (first) return;
    }
    if (auto r = fn(entries[which[i]]); !r) {
      std::lock_guard lock(mu);
      if (!first) first = r.error();
    }
  });
  if (first) return *first;
  return {};
}

// The bandwidth limit and the progress counters, applied to every byte that moves.
struct meter {
  token_bucket* bw = nullptr;
  engine_stats* stats = nullptr;

  expected<void> operator()(uint64_t n) const {
    if (stats != nullptr) stats->bytes_done += n;
    if (bw != nullptr) bw->take(n);
    return {};
  }
};

class metered_reader final : public reader {
 public:
  metered_reader(reader& in, const meter& m) : in_(in), m_(m) {}
  expected<size_t> read(char* buf, size_t n) override {
    auto got = in_.read(buf, n);
    if (got && *got > 0) {
      if (auto r = m_(*got); !r) return r.error();
    }
    return got;
  }

 private:
  reader& in_;
  const meter& m_;
};

error with_context(error e, const std::string& what) {
  e.message = what + ": " + e.message;
  return e;
}

}  // namespace

expected<engine_result> run_engine(const location& src_loc, const location& dst_loc,
                                   const engine_options& opts) {
  const auto started = clock_type::now();
  engine_result result;
  engine_stats local_stats;
  engine_stats& stats = opts.stats != nullptr ? *opts.stats : local_stats;
  stats.phase = 0;
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
  if (src_loc.kind != location_kind::local || dst_loc.kind != location_kind::local)
    loop = std::make_unique<http::loop>();
  backend_options bo;
  bo.multipart_threshold = opts.multipart_threshold;
  bo.part_size = opts.part_size;
  bo.part_concurrency = opts.part_concurrency;
  bo.checkers = opts.checkers;
  http::loop* lp = loop.get();
  auto make = [&](const location& loc) -> expected<std::unique_ptr<backend>> {
    if (loc.kind == location_kind::local) return make_local_backend(loc);
    return make_backend(loc, *lp, bo);
  };
  auto src_b = make(src_loc);
  if (!src_b) return src_b.error();
  auto dst_b = make(dst_loc);
  if (!dst_b) return dst_b.error();
  backend& src = **src_b;
  backend& dst = **dst_b;
  if (!dst.writable())
    return make_error(errc::invalid_argument,
                      "the destination " + dst.where() + " is read-only; it can only be a source");

  // List both sides at once.
  expected<std::vector<entry>> src_list = std::vector<entry>{};
  expected<std::vector<entry>> dst_list = std::vector<entry>{};
  {
    std::thread t([&] { dst_list = dst.list(); });
    src_list = src.list();
    t.join();
  }
  if (!src_list) return with_context(src_list.error(), "listing the source " + src.where());
  if (!dst_list) return with_context(dst_list.error(), "listing the destination " + dst.where());
  stats.phase = 1;

  std::unordered_map<std::string, size_t> dst_index;
  dst_index.reserve(dst_list->size());
  for (size_t i = 0; i < dst_list->size(); ++i)
    if (!(*dst_list)[i].dir) dst_index.emplace((*dst_list)[i].path, i);

  // The metadata the comparison needs, only for files the filters let through: exact mtimes
  // where the listing's are approximate (S3), and with --checksum the MD5s a listing lacks
  // for files present on both sides with the same size.
  std::vector<size_t> src_mtimes, dst_mtimes, src_md5s, dst_md5s;
  for (size_t i = 0; i < src_list->size(); ++i) {
    const auto& e = (*src_list)[i];
    if (e.dir || !filt->included(e.path, false)) continue;
    // A source's mtime is needed to compare and to stamp the copy.
    if (src.listing_mtime_approximate() && !opts.size_only) src_mtimes.push_back(i);
    auto it = dst_index.find(e.path);
    if (it == dst_index.end() || (*dst_list)[it->second].size != e.size) continue;
    if (dst.listing_mtime_approximate() && !opts.size_only && !opts.checksum)
      dst_mtimes.push_back(it->second);
    if (opts.checksum) {
      if (!e.md5) src_md5s.push_back(i);
      if (!(*dst_list)[it->second].md5) dst_md5s.push_back(it->second);
    }
  }
  const int checkers = std::max(1, opts.checkers);
  if (auto r = for_each_entry(*src_list, src_mtimes, checkers,
                              [&](entry& e) { return src.read_mtime(e); });
      !r)
    return with_context(r.error(), "reading object metadata of the source");
  if (auto r = for_each_entry(*dst_list, dst_mtimes, checkers,
                              [&](entry& e) { return dst.read_mtime(e); });
      !r)
    return with_context(r.error(), "reading object metadata of the destination");
  if (auto r = for_each_entry(*src_list, src_md5s, checkers,
                              [&](entry& e) { return src.compute_hashes(e); });
      !r)
    return with_context(r.error(), "checksumming the source");
  if (auto r = for_each_entry(*dst_list, dst_md5s, checkers,
                              [&](entry& e) { return dst.compute_hashes(e); });
      !r)
    return with_context(r.error(), "checksumming the destination");

  plan_options po;
  po.m = opts.m;
  po.checksum = opts.checksum;
  po.size_only = opts.size_only;
  po.max_delete = opts.max_delete;
  po.dry_run = opts.dry_run;
  po.rules = &*filt;
  po.modify_window = std::max(src.precision(), dst.precision());
  auto p = make_plan(*src_list, *dst_list, po);
  if (!p) return p.error();

  // Safety valves before anything is deleted.
  if (opts.m == mode::sync && (!p->deletes.empty() || !p->rmdirs.empty()) && !forced) {
    size_t src_files = 0, dst_files = 0;
    for (const auto& e : *src_list)
      if (!e.dir && filt->included(e.path, false)) ++src_files;
    for (const auto& e : *dst_list)
      if (!e.dir && filt->included(e.path, false)) ++dst_files;
    if (auto r = check_not_emptying(src_files, dst_files, dir); !r) {
      if (!src.is_local() || !dst_local) return r.error();
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

  // Source entries by path, for the copies (pointers into src_list, which stays put).
  std::unordered_map<std::string_view, const entry*> src_by_path;
  src_by_path.reserve(p->copies.size() + p->set_modtimes.size());
  {
    std::unordered_map<std::string_view, bool> wanted;
    for (const auto& a : p->copies)
      wanted.emplace(a.path, true);
    for (const auto& a : p->set_modtimes)
      wanted.emplace(a.path, true);
    for (const auto& e : *src_list)
      if (!e.dir && wanted.count(e.path) != 0) src_by_path.emplace(e.path, &e);
  }

  result.unchanged = p->unchanged;
  // A backend that cannot change an mtime in place (S3) gets such files uploaded again.
  std::vector<action> copies = p->copies;
  std::vector<action> set_mtimes;
  if (dst.can_set_mtime()) {
    set_mtimes = p->set_modtimes;
  } else {
    copies.insert(copies.end(), p->set_modtimes.begin(), p->set_modtimes.end());
  }
  stats.files_total = copies.size();
  for (const auto& a : copies)
    stats.bytes_total += a.size;

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
    stats.phase = 4;
    std::fflush(opts.out);
    return result;
  }
  for (const auto& w : p->warnings)
    std::fprintf(stderr, "tidesync: warning: %s\n", w.c_str());

  std::mutex mu;
  auto fail = [&](const std::string& what, const error& e) {
    std::lock_guard lock(mu);
    ++result.failed;
    ++stats.errors;
    result.errors.push_back(what + ": " + e.to_string());
  };
  for (const auto& d : p->mkdirs) {
    if (auto r = dst.make_dir(d); !r) fail("mkdir " + d, r.error());
  }

  std::unique_ptr<token_bucket> bw;
  if (opts.bwlimit > 0) bw = std::make_unique<token_bucket>(static_cast<double>(opts.bwlimit));
  const meter m{bw.get(), &stats};
  const bool local_to_local = src.is_local() && dst.is_local();

  // --max-transfer (cautious): a file starts only when its whole size fits in the budget;
  // once one does not, no further file starts.
  std::atomic<uint64_t> budget_used{0};
  std::atomic<bool> budget_hit{false};
  auto admit = [&](uint64_t size) {
    if (opts.max_transfer == 0) return true;
    if (budget_hit) return false;
    uint64_t used = budget_used.load();
    do {
      if (used + size > opts.max_transfer) {
        budget_hit = true;
        return false;
      }
    } while (!budget_used.compare_exchange_weak(used, used + size));
    return true;
  };

  stats.phase = 2;
  std::atomic<uint64_t> bytes{0};
  std::atomic<size_t> copied{0}, skipped{0};
  // Work items: into a local directory, runs of files with the same parent directory (at most
  // 64, at most 64 MiB), so that workers mostly create entries in different directories and do
  // not queue on one directory's lock; elsewhere one file per item.
  std::vector<std::pair<size_t, size_t>> items;
  {
    auto parent = [](const std::string& p) {
      const auto slash = p.rfind('/');
      return std::string_view(p).substr(0, slash == std::string::npos ? 0 : slash);
    };
    for (size_t i = 0; i < copies.size();) {
      size_t j = i + 1;
      if (dst.is_local()) {
        uint64_t bytes_in_item = copies[i].size;
        while (j < copies.size() && j - i < 64 && bytes_in_item < (64ull << 20) &&
               parent(copies[j].path) == parent(copies[i].path)) {
          bytes_in_item += copies[j].size;
          ++j;
        }
      }
      items.emplace_back(i, j);
      i = j;
    }
  }
  auto copy_one = [&](size_t i) {
    const action& a = copies[i];
    const entry& se = *src_by_path.at(a.path);
    if (!admit(se.size)) {
      ++skipped;
      return;
    }
    expected<void> r;
    if (local_to_local) {
      auto n =
          local_fs::copy_file(src.local_path(a.path), dst.local_path(a.path), se.mtime, se.size, m);
      if (!n) r = n.error();
    } else {
      // A multipart object's ETag is no MD5: the hashes go into its metadata (md5chksum, as
      // rclone writes it, and sha256), so --checksum and `rclone check` work on it later.
      std::optional<entry> hashed;
      if (dst.stores_hashes(se.size) && !se.md5 && !se.sha256) {
        hashed = se;
        if (auto h = src.compute_hashes(*hashed); !h) r = h.error();
      }
      const entry& what = hashed ? *hashed : se;
      auto in = r ? src.open(what) : expected<std::unique_ptr<reader>>(r.error());
      if (!in) {
        r = in.error();
      } else {
        metered_reader mr(**in, m);
        r = dst.write(what, mr);
      }
    }
    if (!r) {
      fail("copy " + a.path, r.error());
      return;
    }
    bytes += se.size;
    ++copied;
    ++stats.files_done;
    if (opts.verbose) {
      std::lock_guard lock(mu);
      std::fprintf(opts.out, "copied %s (%s)\n", a.path.c_str(), a.reason.c_str());
    }
  };
  parallel_for(items.size(), opts.transfers, [&](size_t k) {
    for (size_t i = items[k].first; i < items[k].second; ++i)
      copy_one(i);
  });
  for (const auto& a : set_mtimes) {
    if (auto r = dst.set_mtime(a.path, src_by_path.at(a.path)->mtime); !r)
      fail("set mtime " + a.path, r.error());
  }
  result.copied = copied;
  result.bytes = bytes;
  result.skipped = skipped;
  result.max_transfer_reached = skipped > 0;

  // Durable before anything is deleted.
  if (result.copied > 0 || !set_mtimes.empty()) {
    if (auto r = dst.flush(); !r) fail("flush " + dst.where(), r.error());
  }

  if (opts.m == mode::sync && (!p->deletes.empty() || !p->rmdirs.empty())) {
    if (result.failed > 0 || result.max_transfer_reached) {
      result.deletes_skipped = true;
    } else {
      stats.phase = 3;
      std::atomic<size_t> deleted{0};
      parallel_for(p->deletes.size(), opts.transfers, [&](size_t i) {
        if (auto r = dst.remove(p->deletes[i]); !r) {
          fail("delete " + p->deletes[i], r.error());
          return;
        }
        ++deleted;
        ++stats.deletes_done;
        if (opts.verbose) {
          std::lock_guard lock(mu);
          std::fprintf(opts.out, "deleted %s\n", p->deletes[i].c_str());
        }
      });
      result.deleted = deleted;
      for (const auto& d : p->rmdirs) {
        if (auto r = dst.remove_dir(d); !r) fail("rmdir " + d, r.error());
      }
    }
  }
  result.nothing_to_do = p->nothing_to_do();
  result.seconds = std::chrono::duration<double>(clock_type::now() - started).count();
  stats.phase = 4;
  std::fflush(opts.out);
  return result;
}

}  // namespace tidesync::transfer
