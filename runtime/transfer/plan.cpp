#include "runtime/transfer/plan.hpp"

#include <algorithm>
#include <numeric>

#include "runtime/transfer/filter.hpp"

namespace tidesync::transfer {
namespace {

bool valid_path(std::string_view p) {
  if (p.empty() || p.front() == '/' || p.back() == '/') return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    std::string_view el = p.substr(start, end - start);
    if (el.empty() || el == "." || el == "..") return false;
    start = end + 1;
  }
  return true;
}

// Indices of the entries that take part (valid, not filtered out), sorted by path.
// Sorting indices keeps the caller's vectors untouched and avoids copying strings.
expected<std::vector<uint32_t>> sorted_view(const std::vector<entry>& v, const filter* rules,
                                            const char* side) {
  std::vector<uint32_t> idx;
  idx.reserve(v.size());
  for (uint32_t i = 0; i < v.size(); ++i) {
    if (!valid_path(v[i].path)) {
      return make_error(errc::invalid_argument,
                        std::string("invalid path in ") + side + " listing: \"" + v[i].path + "\"");
    }
    if (rules != nullptr && !rules->included(v[i].path, v[i].dir)) continue;
    idx.push_back(i);
  }
  std::sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) { return v[a].path < v[b].path; });
  for (size_t k = 1; k < idx.size(); ++k) {
    if (v[idx[k - 1]].path == v[idx[k]].path) {
      return make_error(errc::invalid_argument, std::string("duplicate path in ") + side +
                                                    " listing: \"" + v[idx[k]].path + "\"");
    }
  }
  return idx;
}

enum class hash_cmp { none, equal, differ };

hash_cmp compare_hashes(const entry& s, const entry& d) {
  if (s.sha256 && d.sha256) return *s.sha256 == *d.sha256 ? hash_cmp::equal : hash_cmp::differ;
  if (s.md5 && d.md5) return *s.md5 == *d.md5 ? hash_cmp::equal : hash_cmp::differ;
  return hash_cmp::none;
}

size_t depth(const std::string& p) {
  return static_cast<size_t>(std::count(p.begin(), p.end(), '/'));
}

}  // namespace

expected<plan> make_plan(const std::vector<entry>& src, const std::vector<entry>& dst,
                         const plan_options& opts) {
  if (opts.checksum && opts.size_only) {
    return make_error(errc::invalid_argument, "--checksum and --size-only cannot be combined");
  }
  auto si = sorted_view(src, opts.rules, "source");
  if (!si) return si.error();
  auto di = sorted_view(dst, opts.rules, "destination");
  if (!di) return di.error();

  plan out;
  size_t no_common_hash = 0;
  const auto window = opts.modify_window < std::chrono::nanoseconds::zero() ? -opts.modify_window
                                                                            : opts.modify_window;
  const bool sync = opts.m == mode::sync;

  auto add_copy = [&](const entry& s, const char* reason) {
    out.copies.push_back({s.path, s.size, reason});
    out.bytes_to_copy += s.size;
  };
  auto extra_on_dst = [&](const entry& d) {
    if (!sync) return;
    if (d.dir) {
      out.rmdirs.push_back(d.path);
    } else {
      out.deletes.push_back(d.path);
    }
  };

  // merge the two sorted views
  size_t a = 0;
  size_t b = 0;
  const auto& sv = *si;
  const auto& dv = *di;
  while (a < sv.size() || b < dv.size()) {
    int c;
    if (a == sv.size()) {
      c = 1;
    } else if (b == dv.size()) {
      c = -1;
    } else {
      c = src[sv[a]].path.compare(dst[dv[b]].path);
    }
    if (c < 0) {  // only on the source
      const entry& s = src[sv[a++]];
      if (s.dir) {
        out.mkdirs.push_back(s.path);
      } else {
        add_copy(s, "new");
      }
      continue;
    }
    if (c > 0) {  // only on the destination
      extra_on_dst(dst[dv[b++]]);
      continue;
    }
    const entry& s = src[sv[a++]];
    const entry& d = dst[dv[b++]];
    if (s.dir != d.dir) {
      // A file on one side and a directory on the other: replacing either needs a delete
      // before a copy, which breaks "deletes only after copies". Left for a person to resolve.
      out.warnings.push_back("\"" + s.path + "\" is a " + (s.dir ? "directory" : "file") +
                             " on the source but a " + (d.dir ? "directory" : "file") +
                             " on the destination; skipped");
      continue;
    }
    if (s.dir) {
      ++out.unchanged;
      continue;
    }
    if (s.size != d.size) {
      add_copy(s, "size differs");
      continue;
    }
    if (opts.size_only) {
      ++out.unchanged;
      continue;
    }
    const hash_cmp h = compare_hashes(s, d);
    if (opts.checksum) {
      if (h == hash_cmp::differ) {
        add_copy(s, "checksum differs");
      } else {
        if (h == hash_cmp::none) ++no_common_hash;
        ++out.unchanged;
      }
      continue;
    }
    const auto delta = s.mtime > d.mtime ? s.mtime - d.mtime : d.mtime - s.mtime;
    if (delta <= window) {
      ++out.unchanged;
      continue;
    }
    if (h == hash_cmp::equal) {
      out.set_modtimes.push_back({s.path, s.size, "modtime differs"});
    } else if (h == hash_cmp::differ) {
      add_copy(s, "checksum differs");
    } else {
      add_copy(s, "modtime differs");
    }
  }

  // children before parents, so each rmdir meets an empty directory
  std::stable_sort(out.rmdirs.begin(), out.rmdirs.end(),
                   [](const std::string& x, const std::string& y) { return depth(x) > depth(y); });

  if (no_common_hash > 0) {
    out.warnings.push_back(std::to_string(no_common_hash) +
                           " file(s) have no hash in common on both sides; --checksum compared "
                           "them by size only");
  }
  const uint64_t n_deletes = out.deletes.size();
  if (n_deletes > opts.max_delete) {
    std::string msg = "sync would delete " + std::to_string(n_deletes) +
                      " file(s), more than --max-delete " + std::to_string(opts.max_delete) +
                      "; check the source, or raise --max-delete if this is intended";
    if (!opts.dry_run) return make_error(errc::invalid_argument, std::move(msg));
    out.warnings.push_back(std::move(msg));
  }
  return out;
}

}  // namespace tidesync::transfer
