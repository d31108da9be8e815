#include "runtime/archive/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>

#include "runtime/archive/sha256.hpp"
#include "runtime/transfer/range_reader.hpp"

namespace tidesync::archive {
namespace fs = std::filesystem;
namespace {

constexpr const char* k_latest = "latest.json";
constexpr std::string_view k_revisions = "revisions/";
constexpr std::string_view k_suffix = ".tar.zst";
// latest.json is a few hundred bytes; anything much larger is not ours.
constexpr uint64_t k_max_latest_bytes = 64 << 10;
constexpr size_t k_chunk = 1 << 20;
// stat() then open() is two requests: latest.json may be replaced in between (its size
// changes and the read fails or comes up short). Reading it again is enough.
constexpr int k_latest_attempts = 3;

error io_error(std::string what, int err) {
  return make_error(errc::io_error, std::move(what) + ": " + std::generic_category().message(err));
}

// A descriptor closed on scope exit.
class fd_guard {
 public:
  explicit fd_guard(int fd) : fd_(fd) {}
  ~fd_guard() {
    if (fd_ >= 0) ::close(fd_);
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  [[nodiscard]] int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

class file_reader final : public transfer::reader {
 public:
  file_reader(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  expected<size_t> read(char* buf, size_t n) override {
    for (;;) {
      ssize_t got = ::read(fd_.get(), buf, n);
      if (got >= 0) return static_cast<size_t>(got);
      if (errno != EINTR) return io_error("cannot read " + path_, errno);
    }
  }

 private:
  fd_guard fd_;
  std::string path_;
};

expected<void> write_all(int fd, const char* data, size_t n, const fs::path& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot write " + path.string(), errno);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return {};
}

expected<void> fsync_dir(const fs::path& dir) {
  fd_guard fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0)
    return io_error("cannot open directory " + dir.string() + " to fsync it", errno);
  if (::fsync(fd.get()) != 0) return io_error("cannot fsync directory " + dir.string(), errno);
  return {};
}

// Reads all of `in` (at most `limit` bytes; more is an error).
expected<std::string> read_small(transfer::reader& in, uint64_t limit) {
  std::string out;
  char buf[8192];
  for (;;) {
    auto n = in.read(buf, sizeof buf);
    if (!n) return n.error();
    if (*n == 0) return out;
    out.append(buf, *n);
    if (out.size() > limit)
      return make_error(errc::parse_error, "latest.json is larger than " + std::to_string(limit) +
                                               " bytes: not a latest.json");
  }
}

}  // namespace

transfer::backend_options store_backend_options() {
  transfer::backend_options o;
  o.multipart_threshold = 8ull << 20;
  o.part_size = 4ull << 20;
  o.part_concurrency = 2;
  o.checkers = 2;
  return o;
}

expected<std::string> bundle_key(const std::string& rev) {
  if (!valid_revision(rev))
    return make_error(errc::invalid_argument,
                      "\"" + rev +
                          "\" is not a valid revision name: use 1..128 characters of "
                          "[0-9A-Za-z._-], not \".\" or \"..\"");
  return std::string(k_revisions) + rev + std::string(k_suffix);
}

config_store::config_store(std::unique_ptr<transfer::backend> root) : root_(std::move(root)) {}

expected<std::optional<latest>> config_store::read_latest() {
  error last = make_error(errc::internal, "latest.json was not read");
  for (int attempt = 0; attempt < k_latest_attempts; ++attempt) {
    auto st = root_->stat(k_latest);
    if (!st) return st.error();
    if (!*st) return std::optional<latest>();
    if ((*st)->size > k_max_latest_bytes)
      return make_error(errc::parse_error, "latest.json in " + where() + " is " +
                                               std::to_string((*st)->size) +
                                               " bytes: not a latest.json");
    auto in = root_->open(**st);
    if (!in) {
      if (in.error().code == errc::not_found) return std::optional<latest>();
      last = in.error();
      continue;  // replaced (or removed) between the stat and the read
    }
    auto text = read_small(**in, k_max_latest_bytes);
    if (!text) {
      last = text.error();
      if (last.code == errc::parse_error) break;
      continue;
    }
    if (text->size() != (*st)->size) {
      last = make_error(errc::unavailable,
                        "latest.json in " + where() + " changed while it was read; read it again");
      continue;
    }
    auto parsed = parse_latest(*text);
    if (!parsed) {
      error e = parsed.error();
      e.message = "latest.json in " + where() + ": " + e.message +
                  " (not a pointer tidesync can read, e.g. written by another tool: readers keep "
                  "their live revision, and publishing is refused until it is fixed; rewrite it "
                  "with a valid one, or delete it to start the history anew)";
      return e;
    }
    return std::optional<latest>(std::move(*parsed));
  }
  return last;
}

expected<std::string> config_store::download_bundle(const std::string& rev, const fs::path& file,
                                                    uint64_t max_bytes) {
  auto key = bundle_key(rev);
  if (!key) return key.error();
  auto st = root_->stat(*key);
  if (!st) return st.error();
  if (!*st)
    return make_error(errc::not_found, "no bundle " + *key + " in " + where() +
                                           ": latest.json names a revision whose bundle is "
                                           "missing; publish again");
  const uint64_t size = (*st)->size;
  if (size > max_bytes)
    return make_error(errc::invalid_argument,
                      "the bundle of revision " + rev + " is " + std::to_string(size) +
                          " bytes, more than the limit of " + std::to_string(max_bytes) +
                          " (--max-bytes); publish a smaller config or raise the limit");
  auto in = root_->open(**st);
  if (!in) return in.error();

  fs::path part = file;
  part += ".part";
  fd_guard fd(::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return io_error("cannot create " + part.string(), errno);
  auto fail = [&](error e) -> expected<std::string> {
    ::close(fd.release());
    ::unlink(part.c_str());
    return e;
  };

  sha256_hasher hasher;
  std::string buf(static_cast<size_t>(std::min<uint64_t>(std::max<uint64_t>(size, 1), k_chunk)),
                  '\0');
  uint64_t total = 0;
  for (;;) {
    auto n = (*in)->read(buf.data(), buf.size());
    if (!n) return fail(n.error());
    if (*n == 0) break;
    total += *n;
    if (total > size)
      return fail(make_error(errc::unavailable, "the bundle " + *key + " in " + where() +
                                                    " grew while it was downloaded (" +
                                                    std::to_string(size) + " bytes listed)"));
    hasher.update(buf.data(), *n);
    if (auto w = write_all(fd.get(), buf.data(), *n, part); !w) return fail(w.error());
  }
  if (total != size)
    return fail(make_error(errc::unavailable, "the bundle " + *key + " in " + where() +
                                                  " ended after " + std::to_string(total) + " of " +
                                                  std::to_string(size) + " bytes"));
  if (::fsync(fd.get()) != 0) return fail(io_error("cannot fsync " + part.string(), errno));
  if (::close(fd.release()) != 0) {
    ::unlink(part.c_str());
    return io_error("cannot close " + part.string(), errno);
  }
  if (::rename(part.c_str(), file.c_str()) != 0) {
    int err = errno;
    ::unlink(part.c_str());
    return io_error("cannot rename " + part.string() + " to " + file.string(), err);
  }
  fs::path dir = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  if (auto r = fsync_dir(dir); !r) return r.error();
  return hasher.finish();
}

expected<void> config_store::upload_bundle(const std::string& rev, const fs::path& file) {
  auto key = bundle_key(rev);
  if (!key) return key.error();
  fd_guard fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return io_error("cannot open " + file.string(), errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return io_error("cannot stat " + file.string(), errno);
  if (!S_ISREG(st.st_mode))
    return make_error(errc::invalid_argument, file.string() + " is not a regular file");
  transfer::entry e;
  e.path = *key;
  e.size = static_cast<uint64_t>(st.st_size);
  e.mtime = std::chrono::system_clock::now();
  file_reader in(fd.release(), file.string());
  if (auto w = root_->write(e, in); !w) return w;
  if (auto f = root_->flush(); !f) return f;
  auto stored = root_->stat(*key);
  if (!stored) return stored.error();
  if (!*stored || (*stored)->size != e.size)
    return make_error(errc::unavailable, "the bundle " + *key + " in " + where() +
                                             " is not there with its " + std::to_string(e.size) +
                                             " bytes after the upload; upload it again");
  return {};
}

expected<void> config_store::write_latest(const latest& l) {
  if (!valid_revision(l.revision)) return bundle_key(l.revision).error();
  if (!valid_checksum(l.checksum))
    return make_error(errc::invalid_argument,
                      "\"" + l.checksum + "\" is not a checksum: want sha256:<64 hex digits>");
  std::string text = render_latest(l);
  transfer::entry e;
  e.path = k_latest;
  e.size = text.size();
  e.mtime = std::chrono::system_clock::now();
  transfer::memory_reader in(std::move(text));
  if (auto w = root_->write(e, in); !w) return w;
  return root_->flush();
}

expected<std::vector<std::string>> config_store::list_revisions() {
  auto all = root_->list();
  if (!all) return all.error();
  std::vector<std::string> out;
  for (const auto& e : *all) {
    if (e.dir) continue;
    std::string_view p = e.path;
    if (p.size() <= k_revisions.size() + k_suffix.size() ||
        p.substr(0, k_revisions.size()) != k_revisions ||
        p.substr(p.size() - k_suffix.size()) != k_suffix)
      continue;
    std::string rev(p.substr(k_revisions.size(), p.size() - k_revisions.size() - k_suffix.size()));
    if (valid_revision(rev)) out.push_back(std::move(rev));
  }
  std::sort(out.begin(), out.end());
  return out;
}

expected<void> config_store::remove_revision(const std::string& rev) {
  auto key = bundle_key(rev);
  if (!key) return key.error();
  return root_->remove(*key);
}

}  // namespace tidesync::archive
