// The local directory backend (backend.hpp) over local_fs.hpp.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/transfer/backend.hpp"
#include "runtime/transfer/local_fs.hpp"

namespace tidesync::transfer {
namespace {

class fd_reader final : public reader {
 public:
  fd_reader(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~fd_reader() override { ::close(fd_); }
  fd_reader(const fd_reader&) = delete;
  fd_reader& operator=(const fd_reader&) = delete;

  expected<size_t> read(char* buf, size_t n) override {
    for (;;) {
      ssize_t got = ::read(fd_, buf, n);
      if (got >= 0) return static_cast<size_t>(got);
      if (errno != EINTR)
        return make_error(errc::io_error, "cannot read \"" + path_ + "\": " + std::strerror(errno));
    }
  }

 private:
  int fd_;
  std::string path_;
};

class local_backend final : public backend {
 public:
  explicit local_backend(const location& loc) : root_(loc.path) {}

  [[nodiscard]] std::string where() const override { return "\"" + root_ + "\""; }
  [[nodiscard]] bool is_local() const override { return true; }
  [[nodiscard]] std::string local_path(const std::string& rel) const override {
    return local_fs::join(root_, rel);
  }
  [[nodiscard]] std::chrono::nanoseconds precision() const override {
    return std::chrono::nanoseconds(1);
  }
  [[nodiscard]] bool can_set_mtime() const override { return true; }

  expected<std::vector<entry>> list() override { return local_fs::list(root_); }

  expected<void> compute_hashes(entry& e) override {
    auto h = local_fs::hash_file(local_path(e.path));
    if (!h) return h.error();
    e.md5 = std::move(h->md5);
    e.sha256 = std::move(h->sha256);
    return {};
  }

  expected<std::optional<entry>> stat(const std::string& rel) override {
    const std::string path = local_path(rel);
    struct ::stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::optional<entry>();
      return make_error(errc::io_error, "cannot stat \"" + path + "\": " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) return std::optional<entry>();
    entry e;
    e.path = rel;
    e.size = static_cast<uint64_t>(st.st_size);
    e.mtime = time_point(std::chrono::duration_cast<time_point::duration>(
        std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
    return std::optional<entry>(std::move(e));
  }

  expected<std::unique_ptr<reader>> open(const entry& e) override {
    const std::string path = local_path(e.path);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return make_error(errc::io_error, "cannot open \"" + path + "\": " + std::strerror(errno));
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return std::unique_ptr<reader>(new fd_reader(fd, path));
  }

  expected<void> write(const entry& e, reader& in) override {
    local_fs::writer w;
    if (auto r = w.open(local_path(e.path)); !r) return r;
    std::string buf(std::min<uint64_t>(std::max<uint64_t>(e.size, 1), 1u << 20), '\0');
    uint64_t total = 0;
    for (;;) {
      auto n = in.read(buf.data(), buf.size());
      if (!n) return n.error();
      if (*n == 0) break;
      total += *n;
      if (auto r = w.write({buf.data(), *n}); !r) return r;
    }
    if (total != e.size) {
      return make_error(errc::io_error, "\"" + e.path + "\" changed size while being copied (" +
                                            std::to_string(e.size) + " bytes listed, " +
                                            std::to_string(total) +
                                            " read); the next run copies it again");
    }
    return w.commit(e.mtime);
  }

  expected<void> set_mtime(const std::string& rel, time_point t) override {
    return local_fs::set_mtime(local_path(rel), t);
  }
  expected<void> remove(const std::string& rel) override {
    return local_fs::remove_file(local_path(rel));
  }
  expected<void> make_dir(const std::string& rel) override {
    return local_fs::make_dirs(local_path(rel));
  }
  expected<void> remove_dir(const std::string& rel) override {
    return local_fs::remove_dir(local_path(rel));
  }
  expected<void> flush() override { return local_fs::sync_filesystem(root_); }

 private:
  std::string root_;
};

}  // namespace

expected<void> backend::set_mtime(const std::string& rel, time_point /*t*/) {
  return make_error(errc::invalid_argument,
                    "cannot set the modification time of \"" + rel + "\" on " + where());
}

std::unique_ptr<backend> make_local_backend(const location& loc) {
  return std::make_unique<local_backend>(loc);
}

}  // namespace tidesync::transfer
