#include "runtime/transfer/local_fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <random>

namespace tidesync::transfer::local_fs {
namespace {

error io_error(const std::string& what, const std::string& path) {
  return make_error(errc::io_error, what + " \"" + path + "\": " + std::strerror(errno));
}

std::chrono::system_clock::time_point to_time(const struct timespec& ts) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

struct timespec to_timespec(std::chrono::system_clock::time_point t) {
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  struct timespec ts {};
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1'000'000'000;
    ts.tv_sec -= 1;
  }
  return ts;
}

// Depth-first walk with openat/fstatat: one syscall per entry, no path re-resolution.
expected<void> walk(int dir_fd, const std::string& abs, const std::string& rel,
                    std::vector<entry>& out) {
  DIR* d = ::fdopendir(dir_fd);
  if (d == nullptr) {
    ::close(dir_fd);
    return io_error("cannot read directory", abs);
  }
  std::vector<std::pair<std::string, int>> subdirs;
  while (auto* de = ::readdir(d)) {
    const std::string_view name = de->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (::fstatat(::dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // removed while listing
      ::closedir(d);
      return io_error("cannot stat", abs + "/" + std::string(name));
    }
    const std::string child = rel.empty() ? std::string(name) : rel + "/" + std::string(name);
    if (S_ISDIR(st.st_mode)) {
      entry e;
      e.path = child;
      e.dir = true;
      e.mtime = to_time(st.st_mtim);
      out.push_back(std::move(e));
      int fd = ::openat(::dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) {
        ::closedir(d);
        return io_error("cannot open directory", abs + "/" + std::string(name));
      }
      subdirs.emplace_back(child, fd);
    } else if (S_ISREG(st.st_mode)) {
      entry e;
      e.path = child;
      e.size = static_cast<uint64_t>(st.st_size);
      e.mtime = to_time(st.st_mtim);
      out.push_back(std::move(e));
    }
  }
  ::closedir(d);
  expected<void> result;
  for (auto& [child, fd] : subdirs) {
    if (!result) {
      ::close(fd);
      continue;
    }
    result = walk(fd, abs + "/" + child.substr(child.rfind('/') + 1), child, out);
  }
  return result;
}

}  // namespace

std::string join(const std::string& root, std::string_view rel) {
  if (rel.empty()) return root;
  if (!root.empty() && root.back() == '/') return root + std::string(rel);
  return root + "/" + std::string(rel);
}

expected<std::vector<entry>> list(const std::string& root) {
  std::vector<entry> out;
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return out;
    return io_error("cannot open directory", root);
  }
  auto r = walk(fd, root, "", out);
  if (!r) return r.error();
  return out;
}

expected<void> make_dirs(const std::string& path) {
  if (path.empty()) return {};
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return {};
    errno = ENOTDIR;
    return io_error("cannot create directory", path);
  }
  const auto slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    auto r = make_dirs(path.substr(0, slash));
    if (!r) return r;
  }
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    return io_error("cannot create directory", path);
  return {};
}

expected<std::string> read_range(const std::string& path, uint64_t offset, uint64_t len) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open", path);
  std::string buf(len, '\0');
  uint64_t got = 0;
  while (got < len) {
    ssize_t n = ::pread(fd, buf.data() + got, len - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      auto e = io_error("cannot read", path);
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    got += static_cast<uint64_t>(n);
  }
  ::close(fd);
  buf.resize(got);
  return buf;
}

writer::~writer() {
  abort();
}

expected<void> writer::open(const std::string& path) {
  abort();
  path_ = path;
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  auto r = make_dirs(dir);
  if (!r) return r;
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  for (int attempt = 0; attempt < 10; ++attempt) {
    char suffix[17];
    std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(rng()));
    tmp_ = dir + "/." + base + "." + std::string(suffix, 8) + ".partial";
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ >= 0) return {};
    if (errno != EEXIST) break;
  }
  auto e = io_error("cannot create a temporary file for", path);
  tmp_.clear();
  return e;
}

expected<void> writer::write(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot write", tmp_);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

expected<void> writer::commit(std::chrono::system_clock::time_point mtime) {
  struct timespec times[2] = {to_timespec(mtime), to_timespec(mtime)};
  if (::futimens(fd_, times) != 0) return io_error("cannot set the mtime of", tmp_);
  if (::close(fd_) != 0) {
    fd_ = -1;
    return io_error("cannot close", tmp_);
  }
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) return io_error("cannot rename into", path_);
  tmp_.clear();
  return {};
}

void writer::abort() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
  tmp_.clear();
}

expected<uint64_t> copy_file(const std::string& src, const std::string& dst,
                             std::chrono::system_clock::time_point mtime, uint64_t expected_size,
                             const std::function<expected<void>(uint64_t)>& gate) {
  int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return io_error("cannot open", src);
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_in{in};
  writer w;
  if (auto r = w.open(dst); !r) return r.error();
  constexpr uint64_t chunk = 8ull << 20;
  uint64_t total = 0;
  bool kernel_copy = true;
  std::string buf;
  for (;;) {
    ssize_t n = -1;
    if (kernel_copy) {
      n = ::copy_file_range(in, nullptr, w.fd(), nullptr, chunk, 0);
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
                    errno == EBADF)) {
        kernel_copy = false;  // another file system or an old kernel: plain read/write
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return io_error("cannot copy", src);
    } else {
      if (buf.empty())
        buf.resize(std::min<uint64_t>(std::max<uint64_t>(expected_size, 1), 1u << 20));
      n = ::read(in, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return io_error("cannot read", src);
      }
      if (n > 0) {
        if (auto r = w.write({buf.data(), static_cast<size_t>(n)}); !r) return r.error();
      }
    }
    if (n == 0) break;
    total += static_cast<uint64_t>(n);
    if (gate) {
      if (auto r = gate(static_cast<uint64_t>(n)); !r) return r.error();
    }
  }
  if (total != expected_size) {
    errno = 0;
    return make_error(errc::io_error, "\"" + src + "\" changed size while being copied (" +
                                          std::to_string(expected_size) + " bytes listed, " +
                                          std::to_string(total) +
                                          " read); the next run copies it again");
  }
  if (auto r = w.commit(mtime); !r) return r.error();
  return total;
}

expected<std::string> md5_hex(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open", path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr);
  std::string buf(1 << 20, '\0');
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      auto e = io_error("cannot read", path);
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
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

expected<void> sync_filesystem(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return {};
    return io_error("cannot open directory", path);
  }
  const int rc = ::syncfs(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) return io_error("cannot flush the file system of", path);
  return {};
}

expected<void> set_mtime(const std::string& path, std::chrono::system_clock::time_point mtime) {
  struct timespec times[2] = {to_timespec(mtime), to_timespec(mtime)};
  if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
    return io_error("cannot set the mtime of", path);
  return {};
}

expected<void> remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return io_error("cannot delete", path);
  return {};
}

expected<void> remove_dir(const std::string& path) {
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
    return io_error("cannot remove directory", path);
  return {};
}

}  // namespace tidesync::transfer::local_fs
