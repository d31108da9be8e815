// A read-only backend over the rclone binary (backend.hpp, make_rclone_backend): any remote
// rclone knows, for stores the native backends do not reach (`tidesync agent config
// --engine=rclone`). Listing is `rclone lsjson`, a file's size `rclone lsjson --stat`, its bytes
// `rclone cat` streamed through a pipe. rclone runs with this process's environment plus
// RCLONE_CONFIG_REMOTE_<KEY> for every REMOTE_<KEY> (the seed's convention), and an empty signal
// mask. $TIDESYNC_RCLONE names another binary.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

#include "runtime/json/value.hpp"
#include "runtime/rfc3339.hpp"
#include "runtime/transfer/backend.hpp"

extern char** environ;

namespace tidesync::transfer {
namespace {

std::string rclone_path() {
  const char* p = std::getenv("TIDESYNC_RCLONE");
  return p != nullptr && *p != '\0' ? p : "rclone";
}

// A running rclone with its stdout and stderr on pipes.
struct process {
  pid_t pid = -1;
  int out = -1;
  int err = -1;
  std::string stderr_text;

  ~process() {
    if (out >= 0) ::close(out);
    if (err >= 0) ::close(err);
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int st = 0;
      while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
    }
  }

  // Drains stderr without blocking (called while reading stdout, and at the end).
  void drain_stderr(bool until_eof) {
    char buf[4096];
    while (err >= 0) {
      pollfd p{err, POLLIN, 0};
      if (!until_eof && ::poll(&p, 1, 0) <= 0) return;
      auto n = ::read(err, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(err);
        err = -1;
        return;
      }
      if (stderr_text.size() < 16384) stderr_text.append(buf, static_cast<size_t>(n));
    }
  }

  // Waits for the exit; the exit code, or 128 + signal.
  int wait() {
    drain_stderr(true);
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0) {
      if (errno != EINTR) {
        pid = -1;
        return 127;
      }
    }
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

  // rclone's last error line, for messages.
  [[nodiscard]] std::string last_error() const {
    std::string_view t = stderr_text;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' '))
      t.remove_suffix(1);
    auto nl = t.rfind('\n');
    return std::string(nl == std::string_view::npos ? t : t.substr(nl + 1));
  }
};

expected<std::unique_ptr<process>> start(std::vector<std::string> args) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv = *e;
    env.emplace_back(kv);
    if (kv.rfind("REMOTE_", 0) == 0) env.push_back("RCLONE_CONFIG_" + std::string(kv));
  }
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return make_error(errc::io_error, "pipe failed");
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return make_error(errc::io_error, "pipe failed");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> argv, envp;
  const std::string path = rclone_path();
  args.insert(args.begin(), path);
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  auto p = std::make_unique<process>();
  int rc = ::posix_spawnp(&p->pid, path.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  ::close(err[1]);
  p->out = out[0];
  p->err = err[0];
  if (rc != 0) {
    p->pid = -1;
    return make_error(errc::config_error, "cannot start " + path + ": " + std::strerror(rc) +
                                              "; install rclone or set TIDESYNC_RCLONE");
  }
  return p;
}

// Runs rclone to the end; its stdout.
expected<std::string> run(std::vector<std::string> args, int* exit_code, std::string* err_line) {
  auto p = start(std::move(args));
  if (!p) return p.error();
  std::string text;
  char buf[16384];
  for (;;) {
    auto n = ::read((*p)->out, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    (*p)->drain_stderr(false);
  }
  *exit_code = (*p)->wait();
  *err_line = (*p)->last_error();
  return text;
}

// rclone's exit codes 3 (directory not found) and 4 (file not found).
bool not_found(int code) {
  return code == 3 || code == 4;
}

entry entry_of(const json::value& item) {
  entry e;
  e.path = std::string(item.get_string("Path"));
  e.size = static_cast<uint64_t>(std::max<int64_t>(0, item.get_int("Size")));
  e.dir = item.get_bool("IsDir");
  if (auto t = rfc3339::parse(item.get_string("ModTime")))
    e.mtime = std::chrono::system_clock::time_point(t->time_since_epoch());
  return e;
}

// `rclone cat` of one file, read as it streams; its exit code is checked at the end.
class cat_reader : public reader {
 public:
  cat_reader(std::unique_ptr<process> p, std::string what, uint64_t size)
      : p_(std::move(p)), what_(std::move(what)), size_(size) {}
  expected<size_t> read(char* buf, size_t n) override {
    if (done_) return size_t{0};
    for (;;) {
      auto got = ::read(p_->out, buf, n);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0)
        return make_error(errc::io_error,
                          "reading from rclone: " + std::string(std::strerror(errno)));
      p_->drain_stderr(false);
      if (got > 0) {
        read_ += static_cast<uint64_t>(got);
        if (read_ > size_)
          return make_error(errc::unavailable, what_ + " grew while it was read; try again");
        return static_cast<size_t>(got);
      }
      done_ = true;
      int code = p_->wait();
      if (code != 0)
        return make_error(not_found(code) ? errc::not_found : errc::unavailable,
                          "rclone cat " + what_ + " failed (exit code " + std::to_string(code) +
                              "): " + p_->last_error());
      if (read_ != size_)
        return make_error(errc::unavailable,
                          what_ + " has " + std::to_string(read_) + " bytes, not the " +
                              std::to_string(size_) +
                              " listed: it changed while it was read; try again");
      return size_t{0};
    }
  }

 private:
  std::unique_ptr<process> p_;
  std::string what_;
  uint64_t size_;
  uint64_t read_ = 0;
  bool done_ = false;
};

class rclone_backend : public backend {
 public:
  explicit rclone_backend(std::string remote) : remote_(std::move(remote)) {
    while (remote_.size() > 1 && remote_.back() == '/' && remote_[remote_.size() - 2] != ':')
      remote_.pop_back();
  }

  [[nodiscard]] std::string where() const override { return "\"" + remote_ + "\" (rclone)"; }
  [[nodiscard]] bool writable() const override { return false; }

  expected<std::vector<entry>> list() override {
    int code = 0;
    std::string err;
    auto out =
        run({"lsjson", "--recursive", "--files-only", "--no-mimetype", remote_}, &code, &err);
    if (!out) return out.error();
    if (not_found(code)) return std::vector<entry>{};  // nothing there yet
    if (code != 0) return failure("lsjson " + remote_, code, err);
    auto doc = json::parse(*out);
    if (!doc || !doc->is_array())
      return make_error(errc::parse_error, "rclone lsjson " + remote_ + " printed no JSON list");
    std::vector<entry> v;
    for (const auto& item : doc->as_array())
      if (item.is_object()) v.push_back(entry_of(item));
    return v;
  }

  expected<std::optional<entry>> stat(const std::string& rel) override {
    int code = 0;
    std::string err;
    auto out = run({"lsjson", "--stat", "--no-mimetype", path_of(rel)}, &code, &err);
    if (!out) return out.error();
    if (not_found(code)) return std::optional<entry>{};
    if (code != 0) return failure("lsjson --stat " + path_of(rel), code, err);
    auto doc = json::parse(*out);
    if (!doc || !doc->is_object())
      return make_error(errc::parse_error, "rclone lsjson --stat printed no JSON object");
    auto e = entry_of(*doc);
    if (e.dir) return std::optional<entry>{};
    e.path = rel;
    return std::optional<entry>(std::move(e));
  }

  expected<std::unique_ptr<reader>> open(const entry& e) override {
    auto p = start({"cat", path_of(e.path)});
    if (!p) return p.error();
    return std::unique_ptr<reader>(new cat_reader(std::move(*p), path_of(e.path), e.size));
  }

  expected<void> write(const entry& e, reader&) override { return read_only(e.path); }
  expected<void> remove(const std::string& rel) override { return read_only(rel); }

 private:
  [[nodiscard]] std::string path_of(const std::string& rel) const {
    if (rel.empty()) return remote_;
    char last = remote_.empty() ? ':' : remote_.back();
    return remote_ + (last == ':' || last == '/' ? "" : "/") + rel;
  }
  static error failure(const std::string& what, int code, const std::string& err) {
    return make_error(errc::unavailable, "rclone " + what + " failed (exit code " +
                                             std::to_string(code) + "): " + err);
  }
  [[nodiscard]] error read_only(const std::string& rel) const {
    return make_error(errc::invalid_argument,
                      "the rclone engine reads only; cannot change " + path_of(rel));
  }

  std::string remote_;
};

}  // namespace

std::unique_ptr<backend> make_rclone_backend(std::string remote) {
  return std::make_unique<rclone_backend>(std::move(remote));
}

}  // namespace tidesync::transfer
