#include "runtime/archive/live_tree.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <random>
#include <set>
#include <system_error>

namespace tidesync::archive {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view k_incoming_prefix = ".incoming-";
constexpr std::string_view k_removing_prefix = ".removing-";
constexpr std::string_view k_live_tmp_prefix = ".live-tmp-";
constexpr std::string_view k_live_prefix = "revisions/";

error io_error(std::string what, int err) {
  return make_error(errc::io_error, std::move(what) + ": " + std::generic_category().message(err));
}

error bad_revision(std::string_view rev) {
  return make_error(errc::invalid_argument,
                    "\"" + std::string(rev) +
                        "\" is not a valid revision name: use 1..128 characters of "
                        "[0-9A-Za-z._-], not \".\" or \"..\"");
}

expected<void> fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open directory " + dir.string() + " to fsync it", errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return io_error("cannot fsync directory " + dir.string(), err);
  return {};
}

bool is_real_dir(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists_no_follow(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

expected<void> remove_tree(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec) return make_error(errc::io_error, "cannot remove " + p.string() + ": " + ec.message());
  return {};
}

expected<void> ensure_dir(const fs::path& p) {
  if (::mkdir(p.c_str(), 0755) == 0 || (errno == EEXIST && is_real_dir(p))) return {};
  if (errno == EEXIST)
    return make_error(errc::io_error, p.string() + " exists and is not a directory; move it away");
  return io_error("cannot create " + p.string(), errno);
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  uint64_t v = rng();
  for (int i = 0; i < 12; ++i, v >>= 4)
    out.push_back(hex[v & 0xf]);
  return out;
}

}  // namespace

expected<fs::path> incoming_dir(const fs::path& root, std::string_view rev) {
  if (!valid_revision(rev)) return bad_revision(rev);
  return root / (std::string(k_incoming_prefix) + std::string(rev));
}

expected<fs::path> revision_dir(const fs::path& root, std::string_view rev) {
  if (!valid_revision(rev)) return bad_revision(rev);
  return root / "revisions" / std::string(rev);
}

expected<fs::path> prepare_incoming(const fs::path& root, std::string_view rev) {
  auto incoming = incoming_dir(root, rev);
  if (!incoming) return incoming;
  if (auto r = ensure_dir(root); !r) return r.error();
  if (auto r = ensure_dir(root / "revisions"); !r) return r.error();
  if (exists_no_follow(*incoming))
    if (auto r = remove_tree(*incoming); !r) return r.error();
  return incoming;
}

expected<void> promote(const fs::path& root, std::string_view rev) {
  if (!valid_revision(rev)) return bad_revision(rev);
  fs::path incoming = root / (std::string(k_incoming_prefix) + std::string(rev));
  fs::path revs = root / "revisions";
  fs::path final_dir = revs / std::string(rev);
  if (auto r = ensure_dir(revs); !r) return r;

  if (is_real_dir(final_dir)) {
    // Already promoted once (revisions/<rev> only appears complete, by rename).
    if (exists_no_follow(incoming)) {
      if (auto r = remove_tree(incoming); !r) return r;
      if (auto r = fsync_dir(root); !r) return r;
    }
  } else {
    if (exists_no_follow(final_dir))
      return make_error(errc::io_error, final_dir.string() +
                                            " exists and is not a directory; remove it and "
                                            "promote again");
    if (!is_real_dir(incoming))
      return make_error(errc::not_found, "cannot promote revision " + std::string(rev) + ": " +
                                             incoming.string() +
                                             " is not a directory; extract the bundle there first");
    if (::rename(incoming.c_str(), final_dir.c_str()) != 0)
      return io_error("cannot rename " + incoming.string() + " to " + final_dir.string(), errno);
    if (auto r = fsync_dir(revs); !r) return r;
    if (auto r = fsync_dir(root); !r) return r;
  }

  // A new symlink renamed over the old one: readers see the old target or the new one.
  std::string target = std::string(k_live_prefix) + std::string(rev);
  fs::path tmp;
  for (int attempt = 0;; ++attempt) {
    tmp = root / (std::string(k_live_tmp_prefix) + random_suffix());
    if (::symlink(target.c_str(), tmp.c_str()) == 0) break;
    if (errno != EEXIST || attempt >= 16) return io_error("cannot create " + tmp.string(), errno);
  }
  fs::path live = root / "live";
  if (::rename(tmp.c_str(), live.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    if (err == EISDIR || err == ENOTEMPTY || err == EEXIST)
      return make_error(errc::io_error, live.string() +
                                            " is a directory, not the live symlink; move it "
                                            "away and promote again");
    return io_error("cannot rename " + tmp.string() + " over " + live.string(), err);
  }
  return fsync_dir(root);
}

std::optional<std::string> live_revision(const fs::path& root) {
  char buf[512];
  fs::path live = root / "live";
  ssize_t n = ::readlink(live.c_str(), buf, sizeof buf);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof buf) return std::nullopt;
  std::string_view target(buf, static_cast<size_t>(n));
  if (target.substr(0, k_live_prefix.size()) != k_live_prefix) return std::nullopt;
  std::string_view rev = target.substr(k_live_prefix.size());
  if (!valid_revision(rev)) return std::nullopt;
  return std::string(rev);
}

std::vector<std::string> revisions(const fs::path& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(root / "revisions", ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (valid_revision(name) && is_real_dir(it->path())) out.push_back(std::move(name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

expected<std::vector<std::string>> prune_revisions(const fs::path& root, size_t keep) {
  std::vector<std::string> all = revisions(root);
  std::set<std::string> kept;
  for (size_t i = all.size() > keep ? all.size() - keep : 0; i < all.size(); ++i)
    kept.insert(all[i]);
  if (auto live = live_revision(root)) kept.insert(*live);

  std::vector<std::string> removed;
  fs::path revs = root / "revisions";
  for (const auto& rev : all) {
    if (kept.count(rev) != 0) continue;
    // Rename away first so revisions/<rev> never exists half-deleted.
    fs::path doomed = root / (std::string(k_removing_prefix) + rev);
    if (exists_no_follow(doomed))
      if (auto r = remove_tree(doomed); !r) return r.error();
    if (::rename((revs / rev).c_str(), doomed.c_str()) != 0)
      return io_error("cannot move " + (revs / rev).string() + " away to prune it", errno);
    if (auto r = remove_tree(doomed); !r) return r.error();
    removed.push_back(rev);
  }

  std::vector<std::string> stale;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.rfind(k_incoming_prefix, 0) == 0 || name.rfind(k_removing_prefix, 0) == 0 ||
        name.rfind(k_live_tmp_prefix, 0) == 0)
      stale.push_back(std::move(name));
  }
  if (ec) return make_error(errc::io_error, "cannot list " + root.string() + ": " + ec.message());
  std::sort(stale.begin(), stale.end());
  for (const auto& name : stale) {
    if (auto r = remove_tree(root / name); !r) return r.error();
    removed.push_back(name);
  }
  if (!removed.empty()) {
    if (is_real_dir(revs))
      if (auto r = fsync_dir(revs); !r) return r.error();
    if (auto r = fsync_dir(root); !r) return r.error();
  }
  return removed;
}

}  // namespace tidesync::archive
