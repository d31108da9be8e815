#include "runtime/transfer/local_fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <thread>

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

// One directory: its files and subdirectories go to `out`, and the subdirectories, opened,
// to `subdirs` (the caller walks them). openat/fstatat: one syscall per entry, no path
// re-resolution.
expected<void> read_dir(int dir_fd, const std::string& abs, const std::string& rel,
                        std::vector<entry>& out,
                        std::vector<std::pair<std::string, int>>& subdirs) {
  DIR* d = ::fdopendir(dir_fd);
  if (d == nullptr) {
    ::close(dir_fd);
    return io_error("cannot read directory", abs);
  }
  while (auto* de = ::readdir(d)) {
    const std::string_view name = de->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (::fstatat(::dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // removed while listing
      ::closedir(d);
      return io_error("cannot stat", abs + "/" + std::string(name));
    }
    std::string child;
    child.reserve(rel.size() + 1 + name.size());
    if (!rel.empty()) {
      child += rel;
      child += '/';
    }
    child += name;
    if (S_ISDIR(st.st_mode)) {
      int fd = ::openat(::dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) {
        ::closedir(d);
        return io_error("cannot open directory", abs + "/" + std::string(name));
      }
      entry& e = out.emplace_back();
      e.path = child;
      e.dir = true;
      e.mtime = to_time(st.st_mtim);
      subdirs.emplace_back(std::move(child), fd);
    } else if (S_ISREG(st.st_mode)) {
      entry& e = out.emplace_back();
      e.path = std::move(child);
      e.size = static_cast<uint64_t>(st.st_size);
      e.mtime = to_time(st.st_mtim);
    }
  }
  ::closedir(d);
  return {};
}

void close_all(std::vector<std::pair<std::string, int>>& subdirs, size_t from) {
  for (size_t i = from; i < subdirs.size(); ++i)
    ::close(subdirs[i].second);
}

// Depth-first walk below an open directory.
expected<void> walk(int dir_fd, const std::string& abs, const std::string& rel,
                    std::vector<entry>& out) {
  std::vector<std::pair<std::string, int>> subdirs;
  if (auto r = read_dir(dir_fd, abs, rel, out, subdirs); !r) {
    close_all(subdirs, 0);
    return r;
  }
  for (size_t i = 0; i < subdirs.size(); ++i) {
    auto& [child, fd] = subdirs[i];
    if (auto r = walk(fd, abs + "/" + child.substr(child.rfind('/') + 1), child, out); !r) {
      close_all(subdirs, i + 1);
      return r;
    }
  }
  return {};
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
  if (auto r = walk(fd, root, "", out); !r) return r.error();
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

namespace {

// A named temporary next to `path`: ".NAME.XXXXXXXX.partial".
int open_named_temp(const std::string& dir, const std::string& base, std::string& tmp) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  for (int attempt = 0; attempt < 10; ++attempt) {
    char suffix[17];
    std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(rng()));
    tmp = dir + "/." + base + "." + std::string(suffix, 8) + ".partial";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  return -1;
}

}  // namespace

expected<void> writer::open(const std::string& path) {
  abort();
  path_ = path;
  const auto slash = path.find_last_of('/');
  dir_ = slash == std::string::npos ? "." : path.substr(0, slash);
  base_ = slash == std::string::npos ? path : path.substr(slash + 1);
  // The directory usually exists (the engine makes the plan's directories first): try, and
  // create it only when the open says it is missing.
  for (int round = 0; round < 2; ++round) {
    // An unnamed file (O_TMPFILE) is invisible until commit links it in: no name to clean up
    // after a crash, and one directory operation per new file instead of two.
    fd_ = ::open(dir_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd_ >= 0) {
      unnamed_ = true;
      return {};
    }
    if (errno != ENOENT) {
      // No O_TMPFILE on this file system (EOPNOTSUPP, EISDIR, EINVAL): a named temporary.
      fd_ = open_named_temp(dir_, base_, tmp_);
      if (fd_ >= 0) {
        unnamed_ = false;
        return {};
      }
      if (errno != ENOENT) break;
    }
    if (round == 0) {
      if (auto r = make_dirs(dir_); !r) return r;
    }
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
      return io_error("cannot write", unnamed_ ? path_ : tmp_);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

expected<void> writer::commit(std::chrono::system_clock::time_point mtime) {
  const std::string& shown = unnamed_ ? path_ : tmp_;
  struct timespec times[2] = {to_timespec(mtime), to_timespec(mtime)};
  if (::futimens(fd_, times) != 0) return io_error("cannot set the mtime of", shown);
  if (unnamed_) {
    // Link the unnamed file in. A new file: done in one step. An existing one: link under a
    // temporary name, then rename over it (atomic replacement).
    char proc[64];
    std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd_);
    if (::linkat(AT_FDCWD, proc, AT_FDCWD, path_.c_str(), AT_SYMLINK_FOLLOW) == 0) {
      ::close(fd_);
      fd_ = -1;
      return {};
    }
    if (errno != EEXIST) return io_error("cannot create", path_);
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    for (int attempt = 0; attempt < 10; ++attempt) {
      char suffix[17];
      std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(rng()));
      tmp_ = dir_ + "/." + base_ + "." + std::string(suffix, 8) + ".partial";
      if (::linkat(AT_FDCWD, proc, AT_FDCWD, tmp_.c_str(), AT_SYMLINK_FOLLOW) == 0) break;
      const int err = errno;
      tmp_.clear();
      if (err != EEXIST) {
        errno = err;
        return io_error("cannot create a temporary file for", path_);
      }
    }
    if (tmp_.empty()) return io_error("cannot create a temporary file for", path_);
  }
  if (::close(fd_) != 0) {
    fd_ = -1;
    return io_error("cannot close", shown);
  }
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) return io_error("cannot rename into", path_);
  tmp_.clear();
  return {};
}

void writer::abort() {
  if (fd_ >= 0) ::close(fd_);  // an unnamed file vanishes with its last descriptor
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
  uint64_t want = 0;
  std::string buf;
  for (;;) {
    ssize_t n = -1;
    if (kernel_copy) {
      // Ask for one byte more than the listed size: a short answer then means the end of
      // the file, without the extra call that would only return 0.
      want = std::min<uint64_t>(chunk, expected_size - std::min(total, expected_size) + 1);
      n = ::copy_file_range(in, nullptr, w.fd(), nullptr, want, 0);
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
    if (kernel_copy && total == expected_size && static_cast<uint64_t>(n) < want)
      break;  // asked for more than was there: the end
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

expected<file_hash> hash_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open", path);
  using ctx_ptr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;
  ctx_ptr md5(EVP_MD_CTX_new(), EVP_MD_CTX_free), sha(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(md5.get(), EVP_md5(), nullptr);
  EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr);
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
    EVP_DigestUpdate(md5.get(), buf.data(), static_cast<size_t>(n));
    EVP_DigestUpdate(sha.get(), buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  auto hex = [](EVP_MD_CTX* ctx) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
      out += digits[md[i] >> 4];
      out += digits[md[i] & 15];
    }
    return out;
  };
  return file_hash{hex(md5.get()), hex(sha.get())};
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
