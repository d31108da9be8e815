// A directory tree watched with inotify, and the sync debounce (fswatch.hpp).
#include "runtime/fswatch.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tidesync::fswatch {
namespace {

constexpr uint32_t k_watch_mask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE |
                                  IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF |
                                  IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK;

constexpr uint32_t k_change_bits =
    IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB;

std::string join(const std::string& dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  return dir + "/" + std::string(name);
}

}  // namespace

bool is_agent_file(std::string_view name) {
  if (name == ".tidesync-initialized") return true;
  // ".NAME.XXXXXXXX.partial"
  constexpr std::string_view suffix = ".partial";
  if (name.size() < 1 + 1 + 1 + 8 + suffix.size() || name.front() != '.') return false;
  if (name.substr(name.size() - suffix.size()) != suffix) return false;
  const std::string_view rest = name.substr(0, name.size() - suffix.size());
  const std::string_view hex = rest.substr(rest.size() - 8);
  if (rest[rest.size() - 9] != '.') return false;
  for (char c : hex)
    if (std::isxdigit(static_cast<unsigned char>(c)) == 0) return false;
  return true;
}

action classify(const event& e, const ignore_fn& ignore) {
  if ((e.mask & IN_Q_OVERFLOW) != 0) return action::rescan;
  if ((e.mask & IN_IGNORED) != 0) return e.on_root ? action::root_gone : action::forget;
  if ((e.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) != 0)
    // Below the root, the parent's own watch reports the deletion or move by name.
    return e.on_root ? action::root_gone : action::ignore;
  if (!e.name.empty() && ignore && ignore(e.name)) return action::ignore;
  if ((e.mask & IN_ISDIR) != 0 && !e.name.empty()) {
    if ((e.mask & (IN_CREATE | IN_MOVED_TO)) != 0) return action::watch_dir;
    if ((e.mask & IN_MOVED_FROM) != 0) return action::unwatch_dir;
  }
  if ((e.mask & k_change_bits) != 0) return action::changed;
  return action::ignore;
}

// ---- tree_watcher ----

struct tree_watcher::state {
  watch_options o;
  change_fn on_change;
  int fd = -1;       // inotify
  int stop_fd = -1;  // eventfd: the destructor wakes the thread
  int root_wd = -1;
  std::unordered_map<int, std::string> path_of;  // wd → directory relative to the root
  std::unordered_map<std::string, int> wd_of;
  bool warned_limit = false;
};

tree_watcher::tree_watcher(watch_options o, change_fn on_change, int inotify_fd, int stop_fd)
    : s_(std::make_unique<state>()) {
  s_->o = std::move(o);
  s_->on_change = std::move(on_change);
  s_->fd = inotify_fd;
  s_->stop_fd = stop_fd;
}

expected<std::unique_ptr<tree_watcher>> tree_watcher::start(watch_options o, change_fn on_change) {
  if (o.root.empty()) return make_error(errc::invalid_argument, "no directory to watch");
  while (o.root.size() > 1 && o.root.back() == '/')
    o.root.pop_back();
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return make_error(errc::unavailable,
                      std::string("cannot start watching ") + o.root +
                          ": inotify_init1: " + std::strerror(err) +
                          (err == EMFILE ? " (raise fs.inotify.max_user_instances)" : ""));
  }
  const int stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) {
    const int err = errno;
    ::close(fd);
    return make_error(errc::unavailable, std::string("cannot start watching ") + o.root +
                                             ": eventfd: " + std::strerror(err));
  }
  std::unique_ptr<tree_watcher> w(
      new tree_watcher(std::move(o), std::move(on_change), fd, stop_fd));
  // The first scan before returning: what exists now is watched when start() returns.
  w->look_for_root();
  w->thread_ = std::thread([p = w.get()] { p->run(); });
  return w;
}

tree_watcher::~tree_watcher() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(s_->stop_fd, &one, sizeof one);
    thread_.join();
  }
  ::close(s_->fd);
  ::close(s_->stop_fd);
}

void tree_watcher::warn(const std::string& text) {
  if (s_->o.on_warning) s_->o.on_warning(text);
}

void tree_watcher::forget(int wd) {
  state& s = *s_;
  auto it = s.path_of.find(wd);
  if (it == s.path_of.end()) return;
  s.wd_of.erase(it->second);
  s.path_of.erase(it);
  if (wd == s.root_wd) s.root_wd = -1;
  watches_ = s.path_of.size();
}

bool tree_watcher::add_one(const std::string& rel) {
  state& s = *s_;
  const std::string full = rel.empty() ? s.o.root : s.o.root + "/" + rel;
  const int wd = ::inotify_add_watch(s.fd, full.c_str(), k_watch_mask);
  if (wd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) return false;
    complete_ = false;
    if (err == ENOSPC) {
      if (!s.warned_limit)
        warn("cannot watch " + full +
             ": the inotify watch limit is reached (raise fs.inotify.max_user_watches); "
             "changes below it are not seen");
      s.warned_limit = true;
    } else {
      warn("cannot watch " + full + ": " + std::strerror(err) + "; changes below it are not seen");
    }
    return false;
  }
  // The same directory seen under a new path (moved within the tree) keeps its watch.
  if (auto old = s.path_of.find(wd); old != s.path_of.end()) s.wd_of.erase(old->second);
  if (auto other = s.wd_of.find(rel); other != s.wd_of.end() && other->second != wd)
    s.path_of.erase(other->second);
  s.path_of[wd] = rel;
  s.wd_of[rel] = wd;
  if (rel.empty()) s.root_wd = wd;
  watches_ = s.path_of.size();
  return true;
}

bool tree_watcher::add_tree(const std::string& top) {
  state& s = *s_;
  if (!add_one(top)) return false;
  std::vector<std::string> todo{top};
  while (!todo.empty()) {
    const std::string rel = std::move(todo.back());
    todo.pop_back();
    const std::string full = rel.empty() ? s.o.root : s.o.root + "/" + rel;
    DIR* d = ::opendir(full.c_str());
    if (d == nullptr) continue;
    while (const dirent* de = ::readdir(d)) {
      const std::string_view name = de->d_name;
      if (name == "." || name == ".." || (s.o.ignore && s.o.ignore(name))) continue;
      bool is_dir = de->d_type == DT_DIR;
      if (de->d_type == DT_UNKNOWN) {
        struct stat st {};
        is_dir =
            ::fstatat(::dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
      }
      if (!is_dir) continue;
      const std::string child = join(rel, name);
      if (add_one(child)) todo.push_back(child);
    }
    ::closedir(d);
  }
  return true;
}

void tree_watcher::remove_tree(const std::string& rel) {
  state& s = *s_;
  std::vector<int> gone;
  for (const auto& [wd, path] : s.path_of) {
    if (path == rel || rel.empty() || path.rfind(rel + "/", 0) == 0) gone.push_back(wd);
  }
  for (int wd : gone) {
    ::inotify_rm_watch(s.fd, wd);
    forget(wd);
  }
}

bool tree_watcher::look_for_root() {
  const bool found = add_tree("");
  root_present_ = found;
  return found;
}

void tree_watcher::run() {
  state& s = *s_;
  alignas(inotify_event) char buf[64 * 1024];
  for (;;) {
    pollfd fds[2] = {{s.fd, POLLIN, 0}, {s.stop_fd, POLLIN, 0}};
    const int timeout = root_present_ ? -1 : static_cast<int>(s.o.root_poll.count());
    const int n = ::poll(fds, 2, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      warn(std::string("watching ") + s.o.root + " stopped: poll: " + std::strerror(errno));
      complete_ = false;
      return;
    }
    if ((fds[1].revents & POLLIN) != 0) return;
    if (n == 0) {
      // The root is missing: is it back?
      if (look_for_root() && s.on_change) s.on_change(change{change::kind::root_back, {}});
      continue;
    }
    auto note = [&](change c) {
      if (s.on_change) s.on_change(c);
    };
    for (;;) {
      const ssize_t got = ::read(s.fd, buf, sizeof buf);
      if (got <= 0) break;  // EAGAIN: the batch is read
      for (char* p = buf; p < buf + got;) {
        const auto* ie = reinterpret_cast<const inotify_event*>(p);
        p += sizeof(inotify_event) + ie->len;
        const std::string_view name = ie->len > 0 ? std::string_view(ie->name) : std::string_view();
        const bool on_root = ie->wd == s.root_wd && s.root_wd >= 0;
        const auto dir = s.path_of.find(ie->wd);
        // Events of a watch already dropped (a moved-away or deleted directory) are stale.
        if (dir == s.path_of.end() && (ie->mask & IN_Q_OVERFLOW) == 0) continue;
        const std::string dir_rel = dir != s.path_of.end() ? dir->second : std::string();
        switch (classify(event{ie->mask, on_root, name}, s.o.ignore)) {
          case action::ignore:
            break;
          case action::changed:
            note(change{change::kind::file, join(dir_rel, name)});
            break;
          case action::watch_dir:
            add_tree(join(dir_rel, name));
            note(change{change::kind::file, join(dir_rel, name)});
            break;
          case action::unwatch_dir:
            remove_tree(join(dir_rel, name));
            note(change{change::kind::file, join(dir_rel, name)});
            break;
          case action::forget:
            forget(ie->wd);
            break;
          case action::rescan:
            // Lost events may hide new directories: watch the tree anew (directories still
            // there keep their watch descriptors).
            s.path_of.clear();
            s.wd_of.clear();
            s.root_wd = -1;
            watches_ = 0;
            look_for_root();
            note(change{change::kind::overflow, {}});
            break;
          case action::root_gone:
            if (!root_present_) break;  // the IN_IGNORED after IN_DELETE_SELF
            remove_tree("");
            root_present_ = false;
            note(change{change::kind::root_gone, {}});
            break;
        }
      }
    }
  }
}

// ---- debounce ----

sync_decision decide_sync(const debounce_state& s, steady_clock::time_point now,
                          std::chrono::milliseconds min_interval) {
  sync_decision d;
  if (s.running || !s.changed) return d;
  if (!s.last_start || now - *s.last_start >= min_interval) {
    d.start_now = true;
    return d;
  }
  d.wake_at = *s.last_start + min_interval;
  return d;
}

expected<std::chrono::milliseconds> parse_interval(std::string_view text) {
  auto bad = [&](const std::string& what) {
    return make_error(errc::invalid_argument, "\"" + std::string(text) + "\": " + what +
                                                  "; write a duration such as 500ms, 2s, 5m "
                                                  "or 1h30m");
  };
  if (text.empty()) return bad("empty");
  std::chrono::milliseconds total{0};
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t digits = 0;
    while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits])) != 0)
      ++digits;
    if (digits == 0) return bad("a number must come before each unit");
    if (digits > 9) return bad("the number is too large");
    const int64_t n = std::stoll(std::string(rest.substr(0, digits)));
    rest.remove_prefix(digits);
    size_t unit_len = 0;
    while (unit_len < rest.size() && std::isalpha(static_cast<unsigned char>(rest[unit_len])) != 0)
      ++unit_len;
    const std::string_view unit = rest.substr(0, unit_len);
    rest.remove_prefix(unit_len);
    int64_t per = 0;
    if (unit == "ms") {
      per = 1;
    } else if (unit == "s") {
      per = 1000;
    } else if (unit == "m") {
      per = 60'000;
    } else if (unit == "h") {
      per = 3'600'000;
    } else if (unit.empty()) {
      return bad("a unit is missing");
    } else {
      return bad("unknown unit \"" + std::string(unit) + "\"");
    }
    total += std::chrono::milliseconds(n * per);
    if (total > std::chrono::hours(24 * 366)) return bad("longer than a year");
  }
  if (total.count() <= 0) return bad("must be longer than zero");
  return total;
}

}  // namespace tidesync::fswatch
