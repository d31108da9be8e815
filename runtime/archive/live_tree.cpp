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

// The temporary links' names: ".live-tmp-*" beside <root>/live, ".current-tmp-*" beside
// <share>/current.
std::string tmp_link_prefix(const tree_layout& t) {
  return "." + t.link.filename().string() + "-tmp-";
}

}  // namespace

tree_layout tree_layout::under(const fs::path& root) {
  return {root / "live", root / "revisions", root, std::string(k_live_prefix)};
}

expected<fs::path> incoming_dir(const tree_layout& t, std::string_view rev) {
  if (!valid_revision(rev)) return bad_revision(rev);
  return t.staging / (std::string(k_incoming_prefix) + std::string(rev));
}

expected<fs::path> revision_dir(const tree_layout& t, std::string_view rev) {
  if (!valid_revision(rev)) return bad_revision(rev);
  return t.revisions / std::string(rev);
}

expected<fs::path> prepare_incoming(const tree_layout& t, std::string_view rev) {
  auto incoming = incoming_dir(t, rev);
  if (!incoming) return incoming;
  for (const fs::path& dir : {t.link.parent_path(), t.staging, t.revisions})
    if (auto r = ensure_dir(dir); !r) return r.error();
  if (exists_no_follow(*incoming))
    if (auto r = remove_tree(*incoming); !r) return r.error();
  return incoming;
}

expected<void> promote(const tree_layout& t, std::string_view rev) {
  if (!valid_revision(rev)) return bad_revision(rev);
  fs::path incoming = t.staging / (std::string(k_incoming_prefix) + std::string(rev));
  fs::path final_dir = t.revisions / std::string(rev);
  if (auto r = ensure_dir(t.revisions); !r) return r;

  if (is_real_dir(final_dir)) {
    // Already promoted once (revisions/<rev> only appears complete, by rename).
    if (exists_no_follow(incoming)) {
      if (auto r = remove_tree(incoming); !r) return r;
      if (auto r = fsync_dir(t.staging); !r) return r;
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
    if (auto r = fsync_dir(t.revisions); !r) return r;
    if (auto r = fsync_dir(t.staging); !r) return r;
  }

  // A new symlink renamed over the old one: readers see the old target or the new one.
  const fs::path link_dir = t.link.parent_path();
  const std::string tmp_prefix = tmp_link_prefix(t);
  std::string target = t.link_prefix + std::string(rev);
  fs::path tmp;
  for (int attempt = 0;; ++attempt) {
    tmp = link_dir / (tmp_prefix + random_suffix());
    if (::symlink(target.c_str(), tmp.c_str()) == 0) break;
    if (errno != EEXIST || attempt >= 16) return io_error("cannot create " + tmp.string(), errno);
  }
  if (::rename(tmp.c_str(), t.link.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    if (err == EISDIR || err == ENOTEMPTY || err == EEXIST)
      return make_error(errc::io_error, t.link.string() +
                                            " is a directory, not the live symlink; move it "
                                            "away and promote again");
    return io_error("cannot rename " + tmp.string() + " over " + t.link.string(), err);
  }
  return fsync_dir(link_dir);
}

std::optional<std::string> live_revision(const tree_layout& t) {
  char buf[512];
  ssize_t n = ::readlink(t.link.c_str(), buf, sizeof buf);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof buf) return std::nullopt;
  std::string_view target(buf, static_cast<size_t>(n));
  if (target.substr(0, t.link_prefix.size()) != t.link_prefix) return std::nullopt;
  std::string_view rev = target.substr(t.link_prefix.size());
  if (!valid_revision(rev)) return std::nullopt;
  return std::string(rev);
}

std::vector<std::string> revisions(const tree_layout& t) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(t.revisions, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (valid_revision(name) && is_real_dir(it->path())) out.push_back(std::move(name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

expected<std::vector<std::string>> prune_revisions(const tree_layout& t,
                                                   const std::set<std::string>& keep) {
  std::set<std::string> kept = keep;
  if (auto live = live_revision(t)) kept.insert(*live);

  std::vector<std::string> removed;
  for (const auto& rev : revisions(t)) {
    if (kept.count(rev) != 0) continue;
    // Rename away first so revisions/<rev> never exists half-deleted.
    fs::path doomed = t.staging / (std::string(k_removing_prefix) + rev);
    if (exists_no_follow(doomed))
      if (auto r = remove_tree(doomed); !r) return r.error();
    if (::rename((t.revisions / rev).c_str(), doomed.c_str()) != 0)
      return io_error("cannot move " + (t.revisions / rev).string() + " away to prune it", errno);
    if (auto r = remove_tree(doomed); !r) return r.error();
    removed.push_back(rev);
  }

  // Stale entries: interrupted extractions and prunes in the staging directory, temporary
  // links beside the link (the same directory for the config agent's layout).
  const fs::path link_dir = t.link.parent_path();
  const std::string tmp_prefix = tmp_link_prefix(t);
  std::vector<fs::path> stale;
  auto scan = [&](const fs::path& dir, bool staging, bool links) -> expected<void> {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if ((staging &&
           (name.rfind(k_incoming_prefix, 0) == 0 || name.rfind(k_removing_prefix, 0) == 0)) ||
          (links && name.rfind(tmp_prefix, 0) == 0))
        stale.push_back(it->path());
    }
    if (ec && ec != std::errc::no_such_file_or_directory)
      return make_error(errc::io_error, "cannot list " + dir.string() + ": " + ec.message());
    return {};
  };
  const bool same_dir = link_dir == t.staging;
  if (auto r = scan(t.staging, true, same_dir); !r) return r.error();
  if (!same_dir)
    if (auto r = scan(link_dir, false, true); !r) return r.error();
  std::sort(stale.begin(), stale.end());
  for (const auto& p : stale) {
    if (auto r = remove_tree(p); !r) return r.error();
    removed.push_back(p.filename().string());
  }
  if (!removed.empty()) {
    if (is_real_dir(t.revisions))
      if (auto r = fsync_dir(t.revisions); !r) return r.error();
    if (is_real_dir(t.staging))
      if (auto r = fsync_dir(t.staging); !r) return r.error();
    if (!same_dir && is_real_dir(link_dir))
      if (auto r = fsync_dir(link_dir); !r) return r.error();
  }
  return removed;
}

// ---- the config agent's layout ----

expected<fs::path> incoming_dir(const fs::path& root, std::string_view rev) {
  return incoming_dir(tree_layout::under(root), rev);
}

expected<fs::path> revision_dir(const fs::path& root, std::string_view rev) {
  return revision_dir(tree_layout::under(root), rev);
}

expected<fs::path> prepare_incoming(const fs::path& root, std::string_view rev) {
  return prepare_incoming(tree_layout::under(root), rev);
}

expected<void> promote(const fs::path& root, std::string_view rev) {
  return promote(tree_layout::under(root), rev);
}

std::optional<std::string> live_revision(const fs::path& root) {
  return live_revision(tree_layout::under(root));
}

std::vector<std::string> revisions(const fs::path& root) {
  return revisions(tree_layout::under(root));
}

expected<std::vector<std::string>> prune_revisions(const fs::path& root, size_t keep) {
  const tree_layout t = tree_layout::under(root);
  std::vector<std::string> all = revisions(t);
  std::set<std::string> kept;
  for (size_t i = all.size() > keep ? all.size() - keep : 0; i < all.size(); ++i)
    kept.insert(all[i]);
  return prune_revisions(t, kept);
}

}  // namespace tidesync::archive
