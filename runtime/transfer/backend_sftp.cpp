// The SFTP backend (backend.hpp) over libcurl's sftp:// (libssh2); docs/transfer-sftp.md.
//
// - Connections: a pool of curl easy handles, one per concurrent request and at most
//   max(2, checkers) of them; curl keeps each handle's SSH session open between requests.
// - list(): per directory a long listing (to tell directories from files: libssh2 hands us the
//   server's `ls -l` line) and a names-only listing (the exact names); then per file a
//   body-less request with CURLOPT_FILETIME, which is an SFTP stat: exact size and mtime
//   (SFTP v3 carries whole seconds). The stats run on `checkers` threads.
// - open(): ranged GETs of part_size, fetched when the reader needs them: memory stays at
//   one part per open file.
// - write(): uploads to ".NAME.XXXXXXXX.partial" beside the target (creating missing
//   directories), then post-quote commands stamp the mtime and rename it into place. SFTP v3's
//   rename does not replace (OpenSSH refuses an existing target), so the old version is first
//   renamed aside and removed after: a failure puts it back.
// - set_mtime / remove / make_dir / remove_dir: SFTP commands in CURLOPT_QUOTE.
// - No host key check unless known_hosts_file is set (as rclone without known_hosts_file).
#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "runtime/transfer/backend.hpp"
#include "runtime/transfer/s3_client.hpp"

namespace tidesync::transfer {
namespace {

using curl_ptr = std::unique_ptr<CURL, decltype(&curl_easy_cleanup)>;

struct slist {
  curl_slist* head = nullptr;
  slist() = default;
  slist(const slist&) = delete;
  slist& operator=(const slist&) = delete;
  ~slist() { curl_slist_free_all(head); }
  void add(const std::string& s) { head = curl_slist_append(head, s.c_str()); }
};

// A name for curl's quote commands: double-quoted, with '\' and '"' escaped.
std::string quote_arg(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// The date form curl's quote "mtime" parses (RFC 1123, GMT; whole seconds, rounded down).
std::string quote_date(time_point t) {
  static const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  auto secs = std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
  if (secs < 0) secs = 0;
  const std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
                tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string parent_of(const std::string& rel) {
  const auto slash = rel.rfind('/');
  return slash == std::string::npos ? std::string{} : rel.substr(0, slash);
}

std::string name_of(const std::string& rel) {
  const auto slash = rel.rfind('/');
  return slash == std::string::npos ? rel : rel.substr(slash + 1);
}

std::string join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

std::string random_suffix() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s(8, '0');
  uint64_t x = rng();
  for (auto& c : s) {
    c = hex[x & 15];
    x >>= 4;
  }
  return s;
}

size_t append_body(char* p, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(p, size * n);
  return size * n;
}

class sftp_backend;

// Ranged GETs of part_size, one part in memory at a time.
class sftp_reader final : public reader {
 public:
  sftp_reader(sftp_backend& b, std::string rel, uint64_t size, uint64_t part)
      : b_(b), rel_(std::move(rel)), size_(size), part_(std::max<uint64_t>(part, 1)) {}
  expected<size_t> read(char* buf, size_t n) override;

 private:
  sftp_backend& b_;
  std::string rel_;
  uint64_t size_, part_;
  uint64_t next_ = 0;  // the first byte not yet fetched
  bool fetched_any_ = false;
  std::string data_;
  size_t pos_ = 0;
};

class sftp_backend final : public backend {
 public:
  sftp_backend(const location& loc, const backend_options& opts)
      : loc_(loc), opts_(opts), max_handles_(std::max(2, opts.checkers)) {
    const auto& s = loc.sftp;
    const std::string host = s.host.find(':') != std::string::npos && s.host.front() != '['
                                 ? "[" + s.host + "]"
                                 : s.host;
    base_url_ = "sftp://" + host + ":" + std::to_string(s.port);
    who_ = s.user + "@" + s.host + ":" + std::to_string(s.port);
    root_ = loc.path;
    while (root_.size() > 1 && root_.back() == '/')
      root_.pop_back();
  }
  ~sftp_backend() override = default;

  [[nodiscard]] std::string where() const override { return "\"" + loc_.text + "\""; }
  [[nodiscard]] bool can_set_mtime() const override { return true; }

  expected<std::vector<entry>> list() override {
    std::vector<entry> out;
    std::vector<size_t> files;
    std::vector<std::string> todo{""};
    while (!todo.empty()) {
      const std::string dir = todo.back();
      todo.pop_back();
      auto children = list_dir(dir);
      if (!children) {
        // A missing root lists as empty, as a missing local directory does.
        if (dir.empty() && children.error().code == errc::not_found) return out;
        return children.error();
      }
      for (auto& [name, is_dir] : *children) {
        entry e;
        e.path = join(dir, name);
        e.dir = is_dir;
        if (is_dir)
          todo.push_back(e.path);
        else
          files.push_back(out.size());
        out.push_back(std::move(e));
      }
    }
    // Exact sizes and mtimes: one stat per file, on `checkers` threads.
    std::atomic<size_t> next{0};
    std::mutex mu;
    std::optional<error> failed;
    auto work = [&] {
      for (;;) {
        const size_t i = next.fetch_add(1);
        if (i >= files.size()) return;
        {
          std::lock_guard lock(mu);
          if (failed) return;
        }
        if (auto r = stat(out[files[i]]); !r) {
          std::lock_guard lock(mu);
          if (!failed) failed = r.error();
          return;
        }
      }
    };
    const size_t n_threads =
        std::min<size_t>(files.size(), static_cast<size_t>(std::max(1, opts_.checkers)));
    std::vector<std::thread> threads;
    for (size_t t = 1; t < n_threads; ++t)
      threads.emplace_back(work);
    work();
    for (auto& t : threads)
      t.join();
    if (failed) return *failed;
    return out;
  }

  expected<std::unique_ptr<reader>> open(const entry& e) override {
    return std::unique_ptr<reader>(new sftp_reader(*this, e.path, e.size, opts_.part_size));
  }

  // Bytes [first, first + count) of `rel` (the whole file when count is 0).
  expected<std::string> fetch(const std::string& rel, uint64_t first, uint64_t count) {
    auto h = acquire();
    std::string body;
    CURL* c = h.get();
    char err[CURL_ERROR_SIZE];
    setup(c, file_url(rel), err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    // libssh2 reads as much as curl's buffer takes per round: a larger one keeps more SFTP
    // read requests in flight.
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
    std::string range;
    if (count > 0) {
      range = std::to_string(first) + "-" + std::to_string(first + count - 1);
      curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
      body.reserve(count);
    }
    const CURLcode rc = curl_easy_perform(c);
    release(std::move(h));
    if (rc != CURLE_OK) return fail("read", rel, rc, err);
    return body;
  }

  expected<void> write(const entry& e, reader& in) override {
    const std::string dir = parent_of(e.path);
    const std::string tmp_rel =
        join(dir, "." + name_of(e.path) + "." + random_suffix() + ".partial");
    const std::string bak_rel = join(dir, "." + name_of(e.path) + "." + random_suffix() + ".old");
    const std::string tmp = remote_path(tmp_rel), bak = remote_path(bak_rel),
                      target = remote_path(e.path);

    struct feed {
      reader* in;
      uint64_t want, got = 0;
      std::optional<error> err;
    } f{&in, e.size, 0, std::nullopt};
    auto read_cb = +[](char* buf, size_t size, size_t n, void* user) -> size_t {
      auto* f = static_cast<feed*>(user);
      auto got = f->in->read(buf, size * n);
      if (!got) {
        f->err = got.error();
        return CURL_READFUNC_ABORT;
      }
      f->got += *got;
      // A source that grew or shrank aborts the upload: the listing's size is what we promised.
      if (f->got > f->want || (*got == 0 && f->got != f->want)) return CURL_READFUNC_ABORT;
      return *got;
    };

    slist post;
    post.add("mtime " + quote_arg(quote_date(e.mtime)) + " " + quote_arg(tmp));
    post.add("*rename " + quote_arg(target) + " " + quote_arg(bak));
    post.add("rename " + quote_arg(tmp) + " " + quote_arg(target));
    post.add("*rm " + quote_arg(bak));

    auto h = acquire();
    CURL* c = h.get();
    char err[CURL_ERROR_SIZE];
    setup(c, file_url(tmp_rel), err);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, &f);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(e.size));
    curl_easy_setopt(c, CURLOPT_FTP_CREATE_MISSING_DIRS, static_cast<long>(CURLFTP_CREATE_DIR));
    curl_easy_setopt(c, CURLOPT_POSTQUOTE, post.head);
    const CURLcode rc = curl_easy_perform(c);
    curl_off_t sent = 0;
    curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &sent);
    release(std::move(h));
    if (rc == CURLE_OK && static_cast<uint64_t>(sent) == e.size) return {};

    // Clean up: the temporary goes; a previous version renamed aside comes back.
    slist undo;
    undo.add("*rename " + quote_arg(bak) + " " + quote_arg(target));
    undo.add("*rm " + quote_arg(tmp));
    (void)run_quote(undo, "clean up after", e.path);
    if (f.err) return *f.err;
    if (f.got != e.size || (rc == CURLE_OK && static_cast<uint64_t>(sent) != e.size)) {
      return make_error(errc::io_error, "\"" + e.path + "\" changed size while being copied (" +
                                            std::to_string(e.size) + " bytes listed, " +
                                            std::to_string(f.got) +
                                            " read); the next run copies it again");
    }
    return fail("write", e.path, rc, err);
  }

  expected<void> set_mtime(const std::string& rel, time_point t) override {
    slist q;
    q.add("mtime " + quote_arg(quote_date(t)) + " " + quote_arg(remote_path(rel)));
    return run_quote(q, "set the modification time of", rel);
  }

  expected<void> remove(const std::string& rel) override {
    slist q;
    q.add("rm " + quote_arg(remote_path(rel)));
    auto r = run_quote(q, "remove", rel);
    if (!r && r.error().message.find("No such file") != std::string::npos) return {};
    return r;
  }

  expected<void> make_dir(const std::string& rel) override {
    // mkdir of every element (existing ones fail, ignored: '*'), then the request's own
    // listing of the directory proves it exists.
    slist q;
    const std::string full = remote_path(rel);
    for (size_t slash = full.find('/', 1); slash != std::string::npos;
         slash = full.find('/', slash + 1))
      q.add("*mkdir " + quote_arg(full.substr(0, slash)));
    q.add("*mkdir " + quote_arg(full));
    return run_quote(q, "create directory", rel, dir_url(rel));
  }

  expected<void> remove_dir(const std::string& rel) override {
    // A non-empty or missing directory stays as it is: SFTP says only "Failure" for both.
    slist q;
    q.add("*rmdir " + quote_arg(remote_path(rel)));
    return run_quote(q, "remove directory", rel);
  }

 private:
  struct lease {
    curl_ptr handle{nullptr, &curl_easy_cleanup};
    CURL* get() const { return handle.get(); }
  };

  lease acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty() || created_ < max_handles_; });
    lease l;
    if (!free_.empty()) {
      l.handle = std::move(free_.back());
      free_.pop_back();
    } else {
      ++created_;
      l.handle.reset(curl_easy_init());
    }
    return l;
  }

  void release(lease l) {
    {
      std::lock_guard lock(mu_);
      free_.push_back(std::move(l.handle));
    }
    cv_.notify_one();
  }

  // The server's path of `rel`: absolute under an absolute root, else relative to the login
  // directory (where OpenSSH's sftp-server runs, so relative names in commands resolve there).
  [[nodiscard]] std::string remote_path(const std::string& rel) const {
    if (root_ == "/") return "/" + rel;
    return join(root_, rel);
  }
  [[nodiscard]] std::string url_of(const std::string& path) const {
    if (!path.empty() && path.front() == '/')
      return base_url_ + uri_encode(path, /*keep_slash=*/true);
    return base_url_ + "/~/" + uri_encode(path, /*keep_slash=*/true);
  }
  [[nodiscard]] std::string file_url(const std::string& rel) const {
    return url_of(remote_path(rel));
  }
  [[nodiscard]] std::string dir_url(const std::string& rel) const {
    std::string u = url_of(remote_path(rel));
    if (u.back() != '/') u += '/';
    return u;
  }

  void setup(CURL* c, const std::string& url, char* err) const {
    const auto& s = loc_.sftp;
    curl_easy_reset(c);
    err[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "sftp");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
    // A stalled session (no byte for a minute) fails instead of hanging the sync.
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_USERNAME, s.user.c_str());
    long auth = 0;
    if (!s.password.empty()) {
      curl_easy_setopt(c, CURLOPT_PASSWORD, s.password.c_str());
      auth |= CURLSSH_AUTH_PASSWORD | CURLSSH_AUTH_KEYBOARD;
    }
    if (!s.key_file.empty()) {
      // libssh2 derives the public key from the private one: no .pub needed.
      curl_easy_setopt(c, CURLOPT_SSH_PRIVATE_KEYFILE, s.key_file.c_str());
      auth |= CURLSSH_AUTH_PUBLICKEY;
    }
    if (auth == 0) auth = CURLSSH_AUTH_AGENT | CURLSSH_AUTH_PUBLICKEY;
    curl_easy_setopt(c, CURLOPT_SSH_AUTH_TYPES, auth);
    if (!s.known_hosts_file.empty())
      curl_easy_setopt(c, CURLOPT_SSH_KNOWNHOSTS, s.known_hosts_file.c_str());
  }

  // Runs quote commands on a body-less request. `url` defaults to the server's "/" (which
  // always opens), since curl opens the URL after the commands.
  expected<void> run_quote(const slist& q, const std::string& what, const std::string& rel,
                           const std::string& url = {}) {
    auto h = acquire();
    CURL* c = h.get();
    char err[CURL_ERROR_SIZE];
    setup(c, url.empty() ? base_url_ + "/" : url, err);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_QUOTE, q.head);
    const CURLcode rc = curl_easy_perform(c);
    release(std::move(h));
    if (rc != CURLE_OK) return fail(what, rel, rc, err);
    return {};
  }

  // One directory's children: name -> is a directory. Symbolic links and special files are
  // left out, as the local backend does.
  expected<std::vector<std::pair<std::string, bool>>> list_dir(const std::string& rel) {
    auto h = acquire();
    CURL* c = h.get();
    char err[CURL_ERROR_SIZE];
    std::string names, longs;
    setup(c, dir_url(rel), err);
    curl_easy_setopt(c, CURLOPT_DIRLISTONLY, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &names);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
      setup(c, dir_url(rel), err);
      curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
      curl_easy_setopt(c, CURLOPT_WRITEDATA, &longs);
      rc = curl_easy_perform(c);
    }
    release(std::move(h));
    if (rc != CURLE_OK) return fail("list", rel.empty() ? "." : rel, rc, err);

    std::set<std::string> all;
    for (size_t start = 0; start < names.size();) {
      size_t nl = names.find('\n', start);
      if (nl == std::string::npos) nl = names.size();
      std::string n = names.substr(start, nl - start);
      if (!n.empty() && n != "." && n != "..") all.insert(std::move(n));
      start = nl + 1;
    }
    std::vector<std::pair<std::string, bool>> out;
    for (size_t start = 0; start < longs.size();) {
      size_t nl = longs.find('\n', start);
      if (nl == std::string::npos) nl = longs.size();
      const std::string line = longs.substr(start, nl - start);
      start = nl + 1;
      if (line.empty() || (line[0] != 'd' && line[0] != '-')) continue;  // links, devices
      // The name ends the line. The longest listed name it ends with (after a space) is its
      // name: "a b.txt" also ends with " b.txt".
      const std::string* best = nullptr;
      for (const auto& n : all) {
        if (line.size() > n.size() && line.compare(line.size() - n.size(), n.size(), n) == 0 &&
            line[line.size() - n.size() - 1] == ' ' && (best == nullptr || n.size() > best->size()))
          best = &n;
      }
      if (best == nullptr) continue;
      out.emplace_back(*best, line[0] == 'd');
    }
    return out;
  }

  // Exact size and mtime of a file (an SFTP stat).
  expected<void> stat(entry& e) {
    auto h = acquire();
    CURL* c = h.get();
    char err[CURL_ERROR_SIZE];
    setup(c, file_url(e.path), err);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_FILETIME, 1L);
    const CURLcode rc = curl_easy_perform(c);
    curl_off_t filetime = -1, length = -1;
    curl_easy_getinfo(c, CURLINFO_FILETIME_T, &filetime);
    curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    release(std::move(h));
    if (rc != CURLE_OK) return fail("stat", e.path, rc, err);
    // curl reports an empty file's size as unknown (-1).
    e.size = length > 0 ? static_cast<uint64_t>(length) : 0;
    if (filetime >= 0) e.mtime = time_point(std::chrono::seconds(filetime));
    return {};
  }

  // A curl failure as an error naming the operation, the path and the server.
  error fail(const std::string& what, const std::string& rel, CURLcode rc, const char* err) const {
    std::string detail = err[0] != '\0' ? std::string(err) : curl_easy_strerror(rc);
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' '))
      detail.pop_back();
    errc code = errc::io_error;
    switch (rc) {
      case CURLE_LOGIN_DENIED:
        return make_error(errc::unauthorized, "sftp: authentication failed for " + who_ + " (" +
                                                  detail + "); check the key file or password");
      case CURLE_PEER_FAILED_VERIFICATION:
        return make_error(errc::config_error, "sftp: the host key of " + who_ + " does not match " +
                                                  loc_.sftp.known_hosts_file + " (" + detail + ")");
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_CONNECT:
      case CURLE_FAILED_INIT:
      case CURLE_SSH:
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
        code = errc::unavailable;
        break;
      case CURLE_OPERATION_TIMEDOUT:
        code = errc::timeout;
        break;
      case CURLE_REMOTE_FILE_NOT_FOUND:
        code = errc::not_found;
        break;
      case CURLE_REMOTE_ACCESS_DENIED:
        code = errc::forbidden;
        break;
      default:
        break;
    }
    return make_error(code, "sftp: cannot " + what + " \"" + rel + "\" on " + who_ + " (" +
                                remote_path(rel) + "): " + detail);
  }

  friend class sftp_reader;

  location loc_;
  backend_options opts_;
  std::string base_url_, who_, root_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<curl_ptr> free_;
  int created_ = 0;
  const int max_handles_;
};

expected<size_t> sftp_reader::read(char* buf, size_t n) {
  if (pos_ == data_.size()) {
    if (next_ >= size_ && fetched_any_) return size_t{0};
    const uint64_t want = std::min(part_, size_ - next_);
    // A small file is one plain GET (which also notices a file that grew); a large one is
    // fetched in ranges.
    auto got = size_ <= part_ ? b_.fetch(rel_, 0, 0) : b_.fetch(rel_, next_, want);
    if (!got) return got.error();
    fetched_any_ = true;
    if (got->size() != want) {
      return make_error(errc::io_error, "\"" + rel_ + "\" changed size while being copied (" +
                                            std::to_string(size_) + " bytes listed; bytes " +
                                            std::to_string(next_) + "+" + std::to_string(want) +
                                            " gave " + std::to_string(got->size()) +
                                            "); the next run copies it again");
    }
    next_ += want;
    data_ = std::move(*got);
    pos_ = 0;
    if (data_.empty()) return size_t{0};
  }
  const size_t k = std::min(n, data_.size() - pos_);
  std::memcpy(buf, data_.data() + pos_, k);
  pos_ += k;
  return k;
}

}  // namespace

expected<std::unique_ptr<backend>> make_sftp_backend(const location& loc,
                                                     const backend_options& opts) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  curl_version_info_data* v = curl_version_info(CURLVERSION_NOW);
  bool has_sftp = false;
  for (auto p = v->protocols; p != nullptr && *p != nullptr; ++p)
    has_sftp = has_sftp || std::strcmp(*p, "sftp") == 0;
  if (!has_sftp) {
    return make_error(errc::config_error, "this libcurl (" + std::string(v->version) +
                                              ") is built without SFTP; " + loc.text +
                                              " needs a libcurl with libssh2");
  }
  if (!loc.sftp.key_file.empty() && ::access(loc.sftp.key_file.c_str(), R_OK) != 0) {
    return make_error(errc::config_error, "sftp remote " + loc.text +
                                              ": cannot read the key file \"" + loc.sftp.key_file +
                                              "\": " + std::strerror(errno));
  }
  return std::unique_ptr<backend>(new sftp_backend(loc, opts));
}

}  // namespace tidesync::transfer
