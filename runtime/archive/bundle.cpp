#include "runtime/archive/bundle.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <istream>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/archive/sha256.hpp"

namespace tidesync::archive {
namespace fs = std::filesystem;
namespace {

constexpr size_t k_buffer_size = 64 * 1024;

std::string errno_text(int err) {
  return std::generic_category().message(err);
}

error io_error(std::string what, int err) {
  return make_error(errc::io_error, std::move(what) + ": " + errno_text(err));
}

// A file descriptor closed on scope exit.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }
  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Closes and reports the close error (a deferred write error on some file systems).
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }

 private:
  int fd_ = -1;
};

bool write_all(int fd, const char* data, size_t n, int& err) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      err = errno;
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

ssize_t read_some(int fd, char* buf, size_t n) {
  for (;;) {
    ssize_t r = ::read(fd, buf, n);
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}

expected<void> fsync_path(const fs::path& dir) {
  unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return io_error("cannot open directory " + dir.string() + " to fsync it", errno);
  if (::fsync(fd.get()) != 0) return io_error("cannot fsync directory " + dir.string(), errno);
  return {};
}

// ---------------------------------------------------------------------------------------------
// pack

struct pack_entry {
  std::string rel;  // '/'-separated, relative to the packed directory
  fs::file_type type = fs::file_type::none;
  bool owner_exec = false;
};

expected<void> collect(const fs::path& dir, const std::string& rel_prefix,
                       std::vector<pack_entry>& out) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return make_error(errc::io_error, "cannot list " + dir.string() + ": " + ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return make_error(errc::io_error, "cannot list " + dir.string() + ": " + ec.message());
    const fs::path& p = it->path();
    std::string rel = rel_prefix + p.filename().string();
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return io_error("cannot stat " + p.string(), errno);
    pack_entry e;
    e.rel = rel;
    e.owner_exec = (st.st_mode & S_IXUSR) != 0;
    if (S_ISREG(st.st_mode)) {
      e.type = fs::file_type::regular;
    } else if (S_ISDIR(st.st_mode)) {
      e.type = fs::file_type::directory;
    } else if (S_ISLNK(st.st_mode)) {
      e.type = fs::file_type::symlink;
    } else {
      const char* what = S_ISFIFO(st.st_mode)   ? "a fifo"
                         : S_ISSOCK(st.st_mode) ? "a socket"
                         : S_ISCHR(st.st_mode)  ? "a character device"
                         : S_ISBLK(st.st_mode)  ? "a block device"
                                                : "not a regular file, directory or symlink";
      return make_error(errc::invalid_argument,
                        "cannot pack " + p.string() + ": it is " + what +
                            "; a bundle holds only regular files, directories and symlinks, "
                            "so remove it from the directory");
    }
    out.push_back(e);
    if (e.type == fs::file_type::directory) {
      auto r = collect(p, rel + "/", out);
      if (!r) return r;
    }
  }
  return {};
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// True when `inner` is `outer` or below it (both absolute and normalised).
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto [o, i] = std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end());
  return o == outer.end();
}

struct writer_ctx {
  int fd = -1;
  sha256_hasher hasher;
  uint64_t bytes = 0;
  int err = 0;
};

la_ssize_t write_cb(struct archive* a, void* client, const void* buf, size_t n) {
  auto* ctx = static_cast<writer_ctx*>(client);
  if (!write_all(ctx->fd, static_cast<const char*>(buf), n, ctx->err)) {
    archive_set_error(a, ctx->err, "write failed");
    return -1;
  }
  ctx->hasher.update(buf, n);
  ctx->bytes += n;
  return static_cast<la_ssize_t>(n);
}

struct archive_write_deleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct archive_read_deleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
struct entry_deleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
using write_handle = std::unique_ptr<struct archive, archive_write_deleter>;
using read_handle = std::unique_ptr<struct archive, archive_read_deleter>;
using entry_handle = std::unique_ptr<archive_entry, entry_deleter>;

error archive_failure(struct archive* a, const std::string& what) {
  const char* msg = archive_error_string(a);
  return make_error(errc::io_error,
                    what + ": " + (msg != nullptr ? msg : "unknown libarchive error"));
}

expected<void> write_entries(struct archive* a, const fs::path& dir,
                             const std::vector<pack_entry>& entries, const pack_options& opts,
                             pack_result& result, std::vector<char>& buf) {
  for (const auto& pe : entries) {
    fs::path src = dir / pe.rel;
    entry_handle e(archive_entry_new());
    archive_entry_copy_pathname(e.get(), pe.rel.c_str());
    archive_entry_set_mtime(e.get(), opts.mtime, 0);
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    unique_fd fd;
    int64_t size = 0;
    switch (pe.type) {
      case fs::file_type::directory:
        archive_entry_set_filetype(e.get(), AE_IFDIR);
        archive_entry_set_perm(e.get(), 0755);
        archive_entry_set_size(e.get(), 0);
        break;
      case fs::file_type::symlink: {
        std::error_code ec;
        fs::path target = fs::read_symlink(src, ec);
        if (ec)
          return make_error(errc::io_error,
                            "cannot read symlink " + src.string() + ": " + ec.message());
        archive_entry_set_filetype(e.get(), AE_IFLNK);
        archive_entry_set_perm(e.get(), 0777);
        archive_entry_copy_symlink(e.get(), target.c_str());
        archive_entry_set_size(e.get(), 0);
        break;
      }
      default: {
        fd = unique_fd(::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd.valid()) return io_error("cannot open " + src.string() + " to pack it", errno);
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) return io_error("cannot stat " + src.string(), errno);
        if (!S_ISREG(st.st_mode))
          return make_error(errc::io_error, src.string() +
                                                " changed type while packing; pack a tree "
                                                "nobody is writing to");
        size = st.st_size;
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_perm(e.get(), pe.owner_exec ? 0755 : 0644);
        archive_entry_set_size(e.get(), size);
        break;
      }
    }
    if (archive_write_header(a, e.get()) != ARCHIVE_OK)
      return archive_failure(a, "cannot write the header of " + pe.rel);
    ++result.entries;
    if (!fd.valid()) continue;
    int64_t left = size;
    while (left > 0) {
      size_t want = static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(buf.size())));
      ssize_t r = read_some(fd.get(), buf.data(), want);
      if (r < 0) return io_error("cannot read " + src.string(), errno);
      if (r == 0)
        return make_error(errc::io_error, src.string() +
                                              " shrank while packing; pack a tree nobody is "
                                              "writing to");
      if (archive_write_data(a, buf.data(), static_cast<size_t>(r)) != r)
        return archive_failure(a, "cannot write the data of " + pe.rel);
      left -= r;
    }
    char extra = 0;
    ssize_t r = read_some(fd.get(), &extra, 1);
    if (r != 0)
      return make_error(errc::io_error, src.string() +
                                            " grew while packing; pack a tree nobody is "
                                            "writing to");
    result.content_bytes += static_cast<uint64_t>(size);
  }
  return {};
}

}  // namespace

expected<pack_result> pack_bundle(const fs::path& dir, const fs::path& out_file,
                                  pack_options opts) {
  std::error_code ec;
  fs::path dir_abs = fs::canonical(dir, ec);
  if (ec || !fs::is_directory(dir_abs))
    return make_error(errc::invalid_argument,
                      "cannot pack " + dir.string() + ": not an existing directory");
  fs::path out_parent = fs::weakly_canonical(fs::absolute(out_file).parent_path(), ec);
  if (ec)
    return make_error(errc::invalid_argument,
                      "cannot write " + out_file.string() + ": " + ec.message());
  if (is_within(out_parent, dir_abs))
    return make_error(errc::invalid_argument, "cannot write the bundle " + out_file.string() +
                                                  " inside the directory " + dir.string() +
                                                  " it packs; write it elsewhere");
  if (opts.compression_level < 1 || opts.compression_level > 19)
    return make_error(errc::invalid_argument, "zstd compression level " +
                                                  std::to_string(opts.compression_level) +
                                                  " is out of range; use 1..19");

  std::vector<pack_entry> entries;
  if (auto r = collect(dir_abs, "", entries); !r) return r.error();
  // Byte order of the whole path: a parent sorts before its children (it is their prefix).
  std::sort(entries.begin(), entries.end(),
            [](const pack_entry& a, const pack_entry& b) { return a.rel < b.rel; });

  std::string tmpl = (out_parent / (out_file.filename().string() + ".tmp-XXXXXX")).string();
  int raw_fd = ::mkstemp(tmpl.data());
  if (raw_fd < 0)
    return io_error("cannot create a temporary file next to " + out_file.string(), errno);
  unique_fd fd(raw_fd);
  fs::path tmp = tmpl;
  struct tmp_guard {
    fs::path path;
    bool armed = true;
    ~tmp_guard() {
      if (armed) ::unlink(path.c_str());
    }
  } guard{tmp};
  ::fchmod(fd.get(), 0644);

  pack_result result;
  writer_ctx ctx;
  ctx.fd = fd.get();
  {
    write_handle a(archive_write_new());
    if (!a) return make_error(errc::internal, "archive_write_new failed (out of memory)");
    std::string level = std::to_string(opts.compression_level);
    if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
        archive_write_add_filter_zstd(a.get()) != ARCHIVE_OK ||
        archive_write_set_filter_option(a.get(), "zstd", "compression-level", level.c_str()) !=
            ARCHIVE_OK ||
        // No zero padding after the zstd frame (zstd readers reject it).
        archive_write_set_bytes_in_last_block(a.get(), 1) != ARCHIVE_OK)
      return archive_failure(a.get(), "cannot set up the tar.zst writer");
    // libarchive converts names to UTF-8 through the process locale, which is "C" in a
    // library and cannot convert non-ASCII bytes. When any name or target is not ASCII, store
    // names as raw bytes (pax hdrcharset=BINARY, a pax header per entry). Still reproducible:
    // the choice depends only on the tree.
    if (std::any_of(entries.begin(), entries.end(), [&](const pack_entry& e) {
          return !is_ascii(e.rel) || (e.type == fs::file_type::symlink &&
                                      !is_ascii(fs::read_symlink(dir_abs / e.rel, ec).string()));
        })) {
      if (archive_write_set_format_option(a.get(), "pax", "hdrcharset", "BINARY") != ARCHIVE_OK)
        return archive_failure(a.get(), "cannot set up the tar.zst writer");
    }
    if (archive_write_open(a.get(), &ctx, nullptr, write_cb, nullptr) != ARCHIVE_OK)
      return archive_failure(a.get(), "cannot start writing " + out_file.string());
    std::vector<char> buf(k_buffer_size);
    if (auto r = write_entries(a.get(), dir_abs, entries, opts, result, buf); !r) return r.error();
    if (archive_write_close(a.get()) != ARCHIVE_OK)
      return archive_failure(a.get(), "cannot finish writing " + out_file.string());
  }
  if (opts.fsync && ::fsync(fd.get()) != 0) return io_error("cannot fsync " + tmp.string(), errno);
  if (int err = fd.close(); err != 0) return io_error("cannot close " + tmp.string(), err);
  if (::rename(tmp.c_str(), out_file.c_str()) != 0)
    return io_error("cannot rename " + tmp.string() + " to " + out_file.string(), errno);
  guard.armed = false;
  if (opts.fsync)
    if (auto r = fsync_path(out_parent); !r) return r.error();
  result.sha256 = ctx.hasher.finish();
  result.archive_bytes = ctx.bytes;
  return result;
}

// -----------------------------------------------------------------------------------------------
// unpack

namespace {

// The zstd side of unpacking, on its own thread: it reads the compressed stream (hashing every
// byte of it, up to its end), decompresses it and hands the tar bytes to libarchive through a
// small bounded queue. Decompression and the file writes then run side by side, as with
// `tar --zstd` and its zstd process (measured: docs/benchmarks.md, "Config bundle extraction").
class decompressor {
 public:
  explicit decompressor(const read_callback& read) : read_(read) {}
  ~decompressor() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  decompressor(const decompressor&) = delete;
  decompressor& operator=(const decompressor&) = delete;

  void start() {
    thread_ = std::thread([this] { run(); });
  }

  // The next chunk of tar bytes into `out`: true with data, false at the end or on an error
  // (then source_error() or decode_error() says which).
  bool next(std::vector<char>& out) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !queue_.empty() || done_; });
    if (queue_.empty()) return false;
    out = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
    return true;
  }

  // Valid once next() returned false.
  [[nodiscard]] const std::optional<error>& source_error() const { return source_error_; }
  [[nodiscard]] const std::string& decode_error() const { return decode_error_; }
  std::string sha256() { return hasher_.finish(); }
  [[nodiscard]] uint64_t bytes() const { return bytes_; }

 private:
  static constexpr size_t k_chunk = 1 << 20;
  static constexpr size_t k_queue = 4;
  // Frames needing a larger window are refused (memory stays bounded whatever the input);
  // pack_bundle's levels 1..19 need at most 2^23.
  static constexpr int k_window_log_max = 24;

  bool push(std::vector<char> chunk) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return queue_.size() < k_queue || stop_; });
    if (stop_) return false;
    queue_.push_back(std::move(chunk));
    cv_.notify_all();
    return true;
  }

  void finish() {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }

  void run() {
    std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
    if (!dctx) {
      decode_error_ = "out of memory";
      return finish();
    }
    ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, k_window_log_max);
    std::vector<char> in(k_buffer_size);
    std::vector<char> out(k_chunk);
    size_t filled = 0;
    size_t hint = 1;  // ZSTD_decompressStream's last answer: 0 at a frame's end
    bool any = false;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) break;
      }
      auto r = read_(in.data(), in.size());
      if (!r) {
        source_error_ = r.error();
        break;
      }
      size_t n = std::min(*r, in.size());
      if (n == 0) {
        if (!any)
          decode_error_ = "the stream is empty";
        else if (hint != 0)
          decode_error_ = "the zstd stream ends inside a frame";
        break;
      }
      any = true;
      hasher_.update(in.data(), n);
      bytes_ += n;
      ZSTD_inBuffer ib{in.data(), n, 0};
      while (ib.pos < ib.size && decode_error_.empty()) {
        ZSTD_outBuffer ob{out.data() + filled, out.size() - filled, 0};
        hint = ZSTD_decompressStream(dctx.get(), &ob, &ib);
        if (ZSTD_isError(hint)) {
          decode_error_ = std::string("zstd: ") + ZSTD_getErrorName(hint);
          break;
        }
        filled += ob.pos;
        if (filled == out.size()) {
          if (!push(std::move(out))) return finish();
          out = std::vector<char>(k_chunk);
          filled = 0;
        }
      }
      if (!decode_error_.empty()) break;
    }
    // Flush what the decoder still holds once the input is consumed.
    while (decode_error_.empty() && !source_error_ && hint != 0 && any) {
      ZSTD_inBuffer ib{nullptr, 0, 0};
      ZSTD_outBuffer ob{out.data() + filled, out.size() - filled, 0};
      hint = ZSTD_decompressStream(dctx.get(), &ob, &ib);
      if (ZSTD_isError(hint) || ob.pos == 0) break;
      filled += ob.pos;
      if (filled == out.size()) {
        if (!push(std::move(out))) return finish();
        out = std::vector<char>(k_chunk);
        filled = 0;
      }
    }
    if (filled > 0 && decode_error_.empty() && !source_error_) {
      out.resize(filled);
      push(std::move(out));
    }
    finish();
  }

  const read_callback& read_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<char>> queue_;
  bool stop_ = false;
  bool done_ = false;
  sha256_hasher hasher_;
  uint64_t bytes_ = 0;
  std::optional<error> source_error_;
  std::string decode_error_;
};

struct reader_ctx {
  decompressor* source = nullptr;
  std::vector<char> current;  // what libarchive reads now (valid until the next callback)
};

la_ssize_t read_cb(struct archive* a, void* client, const void** out) {
  auto* ctx = static_cast<reader_ctx*>(client);
  if (!ctx->source->next(ctx->current)) {
    *out = nullptr;
    if (ctx->source->source_error()) {
      archive_set_error(a, EIO, "reading the bundle failed: %s",
                        ctx->source->source_error()->message.c_str());
      return -1;
    }
    if (!ctx->source->decode_error().empty()) {
      archive_set_error(a, EINVAL, "%s", ctx->source->decode_error().c_str());
      return -1;
    }
    return 0;
  }
  *out = ctx->current.data();
  return static_cast<la_ssize_t>(ctx->current.size());
}

std::string join(const std::vector<std::string>& parts, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) out.push_back('/');
    out += parts[i];
  }
  return out;
}

std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t slash = s.find('/', pos);
    if (slash == std::string_view::npos) slash = s.size();
    out.emplace_back(s.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return out;
}

error entry_error(std::string_view name, const std::string& what) {
  return make_error(errc::invalid_argument,
                    "bundle entry \"" + std::string(name) + "\": " + what +
                        "; the bundle is unsafe or corrupt, so it was not installed (re-pack it "
                        "with pack_bundle)");
}

// Extracts entries under one directory descriptor, never following a symlink.
class extractor {
 public:
  extractor(int root_fd, const unpack_limits& limits) : root_fd_(root_fd), limits_(limits) {}

  expected<void> add(struct archive* a, archive_entry* e) {
    const char* raw = archive_entry_pathname(e);
    if (raw == nullptr) raw = archive_entry_pathname_utf8(e);
    if (raw == nullptr) return entry_error("?", "the entry name cannot be decoded");
    std::string name = raw;
    if (++entries_ > limits_.max_entries)
      return entry_error(name, "the archive has more than " + std::to_string(limits_.max_entries) +
                                   " entries (the max_entries limit)");
    auto parts = normalise(name);
    if (!parts) return parts.error();
    if (const char* hl = archive_entry_hardlink(e); hl != nullptr)
      return entry_error(name, "is a hard link to \"" + std::string(hl) +
                                   "\"; bundles may not contain hard links");
    auto type = archive_entry_filetype(e);
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
      const char* what = type == AE_IFIFO    ? "a fifo"
                         : type == AE_IFCHR  ? "a character device"
                         : type == AE_IFBLK  ? "a block device"
                         : type == AE_IFSOCK ? "a socket"
                                             : "of an unknown type";
      return entry_error(name, std::string("is ") + what +
                                   "; bundles hold only regular files, directories and symlinks");
    }
    if (parts->empty()) {
      if (type == AE_IFDIR) return {};  // "./": the destination itself
      return entry_error(name, "names the bundle root but is not a directory");
    }
    // No entry may be at or below a symlink of this archive (symlinks are created last, so
    // this is the only place such a path can be caught).
    for (size_t i = 1; i <= parts->size(); ++i) {
      std::string prefix = join(*parts, i);
      if (symlinks_.count(prefix) != 0) {
        if (i == parts->size()) return entry_error(name, "is a duplicate of a symlink entry");
        return entry_error(name, "goes through the symlink \"" + prefix +
                                     "\"; entries may not be "
                                     "written through symlinks");
      }
    }
    auto parent = open_parent(name, *parts);
    if (!parent) return parent.error();
    const std::string& leaf = parts->back();
    switch (type) {
      case AE_IFDIR:
        return make_dir(name, parent->get(), leaf, join(*parts, parts->size()));
      case AE_IFLNK:
        return add_symlink(name, *parts, e);
      default:
        return write_file(a, e, name, parent->get(), leaf);
    }
  }

  // Checks every symlink's target against all the others, then creates them.
  expected<void> finish_symlinks() {
    for (const auto& [path, target] : symlinks_) {
      if (auto r = check_resolution(path); !r) return r;
    }
    for (const auto& [path, target] : symlinks_) {
      auto parts = split(path);
      auto parent = open_parent(path, parts);
      if (!parent) return parent.error();
      if (::symlinkat(target.c_str(), parent->get(), parts.back().c_str()) != 0) {
        if (errno == EEXIST)
          return entry_error(path, "is a symlink but another entry already has that path");
        return io_error("cannot create the symlink " + path, errno);
      }
    }
    return {};
  }

  // fsyncs every directory created (files are fsynced as they are closed).
  expected<void> sync_dirs() {
    for (const auto& d : dirs_) {
      auto parts = split(d);
      auto parent = open_parent(d, parts);
      if (!parent) return parent.error();
      unique_fd fd(::openat(parent->get(), parts.back().c_str(),
                            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd.valid() || ::fsync(fd.get()) != 0)
        return io_error("cannot fsync directory " + d, errno);
    }
    if (::fsync(root_fd_) != 0) return io_error("cannot fsync the destination directory", errno);
    return {};
  }

  [[nodiscard]] uint64_t entries() const { return entries_; }
  [[nodiscard]] uint64_t content_bytes() const { return content_bytes_; }

 private:
  // Splits an entry name into components: no absolute path, no "..", "." and empty parts
  // dropped.
  static expected<std::vector<std::string>> normalise(const std::string& name) {
    if (name.empty()) return entry_error(name, "has an empty name");
    if (name.front() == '/')
      return entry_error(name, "is an absolute path; bundle entries must be relative");
    std::vector<std::string> out;
    for (auto& part : split(name)) {
      if (part.empty() || part == ".") continue;
      if (part == "..")
        return entry_error(name, "has a \"..\" component; entries may not leave the bundle");
      out.push_back(std::move(part));
    }
    return out;
  }

  // Opens (creating when missing) the parent directory of `parts`, one component at a time
  // with O_NOFOLLOW, so a symlink or file on the way is an error rather than followed.
  expected<unique_fd> open_parent(std::string_view name, const std::vector<std::string>& parts) {
    unique_fd cur(::fcntl(root_fd_, F_DUPFD_CLOEXEC, 0));
    if (!cur.valid()) return io_error("cannot duplicate a descriptor", errno);
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      const char* comp = parts[i].c_str();
      int fd = ::openat(cur.get(), comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT) {
        if (::mkdirat(cur.get(), comp, 0755) != 0 && errno != EEXIST)
          return io_error("bundle entry \"" + std::string(name) + "\": cannot create directory \"" +
                              join(parts, i + 1) + "\"",
                          errno);
        dirs_.insert(join(parts, i + 1));
        fd = ::openat(cur.get(), comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      }
      if (fd < 0) {
        if (errno == ELOOP || errno == ENOTDIR)
          return entry_error(name, "its parent \"" + join(parts, i + 1) +
                                       "\" is not a directory (a file or a symlink)");
        return io_error("bundle entry \"" + std::string(name) + "\": cannot open \"" +
                            join(parts, i + 1) + "\"",
                        errno);
      }
      cur = unique_fd(fd);
    }
    return cur;
  }

  expected<void> make_dir(std::string_view name, int parent, const std::string& leaf,
                          const std::string& rel) {
    if (::mkdirat(parent, leaf.c_str(), 0755) != 0) {
      if (errno != EEXIST) return io_error("cannot create directory " + rel, errno);
      struct stat st {};
      if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
        return entry_error(name, "is a directory but another entry already has that path");
    }
    dirs_.insert(rel);
    return {};
  }

  expected<void> add_symlink(std::string_view name, const std::vector<std::string>& parts,
                             archive_entry* e) {
    const char* t = archive_entry_symlink(e);
    if (t == nullptr) t = archive_entry_symlink_utf8(e);
    std::string target = t != nullptr ? t : "";
    if (target.empty()) return entry_error(name, "is a symlink with an empty target");
    if (target.front() == '/')
      return entry_error(name, "is a symlink to the absolute path \"" + target +
                                   "\"; symlinks must stay inside the bundle");
    // Lexical check now (fail fast); check_resolution() follows chains once all are known.
    size_t depth = parts.size() - 1;
    for (const auto& comp : split(target)) {
      if (comp.empty() || comp == ".") continue;
      if (comp == "..") {
        if (depth == 0)
          return entry_error(name,
                             "is a symlink to \"" + target + "\", which points outside the bundle");
        --depth;
      } else {
        ++depth;
      }
    }
    std::string path = join(parts, parts.size());
    if (dirs_.count(path) != 0)
      return entry_error(name, "is a symlink but a directory entry already has that path");
    symlinks_[path] = std::move(target);
    return {};
  }

  // Follows `path` through every symlink of the archive: it must stay inside the bundle.
  expected<void> check_resolution(const std::string& path) {
    std::vector<std::string> cur = split(path);
    cur.pop_back();
    std::deque<std::string> todo;
    for (auto& c : split(symlinks_.at(path)))
      todo.push_back(std::move(c));
    int hops = 0;
    while (!todo.empty()) {
      std::string comp = std::move(todo.front());
      todo.pop_front();
      if (comp.empty() || comp == ".") continue;
      if (comp == "..") {
        if (cur.empty())
          return entry_error(path, "is a symlink to \"" + symlinks_.at(path) +
                                       "\", which leads outside the bundle through other "
                                       "symlinks");
        cur.pop_back();
        continue;
      }
      cur.push_back(std::move(comp));
      auto it = symlinks_.find(join(cur, cur.size()));
      if (it == symlinks_.end()) continue;
      if (++hops > 40) return entry_error(path, "is part of a symlink loop");
      cur.pop_back();
      auto next = split(it->second);
      todo.insert(todo.begin(), next.begin(), next.end());
    }
    return {};
  }

  expected<void> write_file(struct archive* a, archive_entry* e, std::string_view name, int parent,
                            const std::string& leaf) {
    if (archive_entry_size_is_set(e)) {
      auto size = static_cast<uint64_t>(std::max<int64_t>(archive_entry_size(e), 0));
      if (size > limits_.max_bytes)
        return entry_error(name, "is " + std::to_string(size) + " bytes, larger than the " +
                                     std::to_string(limits_.max_bytes) + "-byte max_bytes limit");
      if (content_bytes_ + size > limits_.max_bytes)
        return entry_error(name, "would bring the uncompressed total to " +
                                     std::to_string(content_bytes_ + size) + " bytes, over the " +
                                     std::to_string(limits_.max_bytes) + "-byte max_bytes limit");
    }
    unique_fd fd(
        ::openat(parent, leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) {
      if (errno == EEXIST)
        return entry_error(name, "is a file but another entry already has that path");
      return io_error("bundle entry \"" + std::string(name) + "\": cannot create the file", errno);
    }
    std::vector<char>& buf = buf_;
    for (;;) {
      la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
      if (n < 0) {
        const char* msg = archive_error_string(a);
        return make_error(errc::parse_error, "bundle entry \"" + std::string(name) +
                                                 "\": the archive is corrupt or truncated (" +
                                                 (msg != nullptr ? msg : "read error") +
                                                 "); download it again");
      }
      if (n == 0) break;
      content_bytes_ += static_cast<uint64_t>(n);
      if (content_bytes_ > limits_.max_bytes)
        return entry_error(name, "brings the uncompressed total over the " +
                                     std::to_string(limits_.max_bytes) +
                                     "-byte max_bytes limit while extracting");
      int err = 0;
      if (!write_all(fd.get(), buf.data(), static_cast<size_t>(n), err))
        return io_error("bundle entry \"" + std::string(name) + "\": cannot write", err);
    }
    mode_t mode = (archive_entry_perm(e) & S_IXUSR) != 0 ? 0755 : 0644;
    if (::fchmod(fd.get(), mode) != 0)
      return io_error("bundle entry \"" + std::string(name) + "\": cannot chmod", errno);
    if (limits_.fsync && ::fsync(fd.get()) != 0)
      return io_error("bundle entry \"" + std::string(name) + "\": cannot fsync", errno);
    if (int err = fd.close(); err != 0)
      return io_error("bundle entry \"" + std::string(name) + "\": cannot close", err);
    return {};
  }

  int root_fd_;
  const unpack_limits& limits_;
  uint64_t entries_ = 0;
  uint64_t content_bytes_ = 0;
  std::set<std::string> dirs_;
  std::map<std::string, std::string> symlinks_;
  std::vector<char> buf_ = std::vector<char>(k_buffer_size);
};

// Removes everything under `dest` (it was empty when unpacking started).
void clear_dir(const fs::path& dest) {
  std::error_code ec;
  for (fs::directory_iterator it(dest, ec), end; !ec && it != end; it.increment(ec))
    fs::remove_all(it->path(), ec);
}

expected<unpack_result> extract(const read_callback& read, int root_fd,
                                const unpack_limits& limits) {
  decompressor source(read);
  reader_ctx ctx;
  ctx.source = &source;
  read_handle a(archive_read_new());
  if (!a) return make_error(errc::internal, "archive_read_new failed (out of memory)");
  archive_read_support_format_tar(a.get());  // the zstd layer is `source`
  auto stream_error = [&](const std::string& where) -> error {
    if (source.source_error()) {
      error e = *source.source_error();
      e.message = "reading the bundle " + where + " failed: " + e.message;
      return e;
    }
    const char* msg = archive_error_string(a.get());
    return make_error(errc::parse_error, "the bundle is not a readable tar.zst archive " + where +
                                             " (" + (msg != nullptr ? msg : "unknown error") +
                                             "); it is corrupt or truncated: download it again");
  };
  source.start();
  if (archive_read_open(a.get(), &ctx, nullptr, read_cb, nullptr) != ARCHIVE_OK)
    return stream_error("at its start");
  extractor x(root_fd, limits);
  std::string last = "";
  for (;;) {
    archive_entry* e = nullptr;
    int rc = archive_read_next_header(a.get(), &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
      return stream_error(last.empty() ? "at its first entry" : "after entry \"" + last + "\"");
    const char* name = archive_entry_pathname(e);
    last = name != nullptr ? name : "?";
    if (auto r = x.add(a.get(), e); !r) return r.error();
  }
  if (auto r = x.finish_symlinks(); !r) return r.error();
  // Read and hash what libarchive did not need (the end of the stream after the end-of-archive
  // blocks); a stream that does not end cleanly is refused like a truncated one.
  std::vector<char> rest;
  while (source.next(rest)) {
  }
  if (source.source_error()) return stream_error("at its end");
  if (!source.decode_error().empty())
    return make_error(errc::parse_error,
                      "the bundle is not a readable tar.zst archive at its end (" +
                          source.decode_error() +
                          "); it is corrupt or truncated: download it again");
  unpack_result out;
  out.sha256 = source.sha256();
  out.archive_bytes = source.bytes();
  out.entries = x.entries();
  out.content_bytes = x.content_bytes();
  if (limits.expected_sha256 && *limits.expected_sha256 != out.sha256)
    return make_error(errc::invalid_argument,
                      "the bundle's checksum is " + out.sha256 + " but " + *limits.expected_sha256 +
                          " was expected: it is corrupt or does not match latest.json; download "
                          "it again");
  if (limits.fsync)
    if (auto r = x.sync_dirs(); !r) return r.error();
  return out;
}

}  // namespace

expected<unpack_result> unpack_bundle(const read_callback& read, const fs::path& dest,
                                      unpack_limits limits) {
  bool created = false;
  struct stat st {};
  if (::lstat(dest.c_str(), &st) != 0) {
    if (errno != ENOENT) return io_error("cannot inspect " + dest.string(), errno);
    if (::mkdir(dest.c_str(), 0755) != 0) return io_error("cannot create " + dest.string(), errno);
    created = true;
  } else if (!S_ISDIR(st.st_mode)) {
    return make_error(errc::invalid_argument,
                      "cannot unpack into " + dest.string() +
                          ": it is not a directory; pass a new empty directory");
  } else {
    std::error_code ec;
    if (!fs::is_empty(dest, ec) || ec)
      return make_error(
          errc::invalid_argument,
          "cannot unpack into " + dest.string() + ": it is not empty; pass a new empty directory");
  }
  unique_fd root(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.valid()) return io_error("cannot open " + dest.string(), errno);
  auto r = extract(read, root.get(), limits);
  if (!r) {
    clear_dir(dest);
    return r.error();
  }
  if (created && limits.fsync) {
    fs::path parent = fs::absolute(dest).parent_path();
    if (auto s = fsync_path(parent); !s) return s.error();
  }
  return r;
}

expected<unpack_result> unpack_bundle(std::istream& in, const fs::path& dest,
                                      unpack_limits limits) {
  read_callback read = [&in](char* buf, size_t cap) -> expected<size_t> {
    in.read(buf, static_cast<std::streamsize>(cap));
    if (in.bad()) return make_error(errc::io_error, "the input stream failed");
    return static_cast<size_t>(in.gcount());
  };
  return unpack_bundle(read, dest, std::move(limits));
}

expected<unpack_result> unpack_bundle(const fs::path& archive_file, const fs::path& dest,
                                      unpack_limits limits) {
  unique_fd fd(::open(archive_file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return io_error("cannot open the bundle " + archive_file.string(), errno);
  int raw = fd.get();
  read_callback read = [raw, &archive_file](char* buf, size_t cap) -> expected<size_t> {
    ssize_t r = read_some(raw, buf, cap);
    if (r < 0) return io_error("cannot read " + archive_file.string(), errno);
    return static_cast<size_t>(r);
  };
  return unpack_bundle(read, dest, std::move(limits));
}

expected<std::string> sha256_file(const fs::path& file) {
  unique_fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return io_error("cannot open " + file.string() + " to hash it", errno);
  sha256_hasher h;
  std::vector<char> buf(k_buffer_size);
  for (;;) {
    ssize_t r = read_some(fd.get(), buf.data(), buf.size());
    if (r < 0) return io_error("cannot read " + file.string(), errno);
    if (r == 0) break;
    h.update(buf.data(), static_cast<size_t>(r));
  }
  return h.finish();
}

}  // namespace tidesync::archive
