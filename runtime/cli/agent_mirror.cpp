// `tidesync agent mirror`: the SharedVolume syncer (docs/sharedvolume.md, "The syncer"). Keeps
// <share>/current on the source's latest revision: git (libgit2), S3, SFTP or HTTP(S).
//
// One sync: a child process (this binary again, with the hidden --child-result-fd) finds the
// source's revision and builds its tree in <share>/.tidesync/.incoming-<rev>/
// (runtime/mirror/build.hpp), then answers one JSON line on that descriptor. The parent
// waits for it at most --timeout: a child that overruns is killed (its process group), which is
// the one way to stop a stalled libgit2 fetch or engine transfer. Then the parent alone changes
// what readers see: it promotes the new tree (rename into revisions/, a new symlink renamed over
// `current`), records state.json, prunes (the previous revision stays one interval longer), and
// reports to the controller. A failed or killed sync leaves `current` as it was and its partial
// tree is removed.
//
// Signals: SIGTERM or SIGINT stop the agent (a sync in progress is aborted: its child killed,
// its partial tree removed) with exit 0; SIGHUP syncs at once (after the current sync, when one
// runs).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/archive/live_tree.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/flag_arg.hpp"
#include "runtime/cli/report_client.hpp"
#include "runtime/fswatch.hpp"
#include "runtime/json/value.hpp"
#include "runtime/mirror/build.hpp"
#include "runtime/mirror/git_url.hpp"
#include "runtime/mirror/share.hpp"
#include "runtime/mirror/source.hpp"
#include "runtime/rfc3339.hpp"
#include "runtime/transfer/remote.hpp"

namespace tidesync::cli {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using mirror::sys_clock;

constexpr int k_exit_ok = 0;
constexpr int k_exit_failed = 1;
constexpr int k_exit_usage = 2;

void mirror_usage(std::FILE* out) {
  std::fprintf(
      out,
      "Usage: tidesync agent mirror --share DIR --source-type git|s3|sftp|http --source SRC\n"
      "       [--ref-branch B | --ref-tag T | --ref-commit C] [--interval D] [--timeout D]\n"
      "       [--cache DIR] [--once]\n\n"
      "The SharedVolume syncer: fills DIR (the NFS share) from a source, at start and then every\n"
      "--interval, atomically. Each sync builds the new tree in DIR/.tidesync/revisions/<rev>/\n"
      "beside the current one, then renames a new symlink over DIR/current: readers of\n"
      "DIR/current/ see the old tree or the new one, never a mix. The previous revision stays one\n"
      "interval longer (readers mid-read), older ones are removed. A sync that fails or takes\n"
      "longer than --timeout leaves DIR/current as it was. An unchanged source (the same commit,\n"
      "the same listing) is not copied again.\n\n"
      "Sources:\n"
      "  git    SRC is https://host/org/repo.git, ssh://git@host/org/repo.git,\n"
      "         git@host:org/repo.git, git://host/repo, file:///path or a local path. The ref:\n"
      "         --ref-branch, --ref-tag or --ref-commit (default: the remote's HEAD). The\n"
      "         revision is the commit id. The objects are kept in --cache and fetched\n"
      "         incrementally (libgit2 1.5 cannot fetch shallow: the first fetch takes the\n"
      "         whole history).\n"
      "  s3     SRC is BUCKET/PREFIX on the remote \"remote\", configured by REMOTE_* variables\n"
      "         (REMOTE_TYPE=s3, REMOTE_ACCESS_KEY_ID, REMOTE_SECRET_ACCESS_KEY,\n"
      "         REMOTE_ENDPOINT, ...; docs/sync.md)\n"
      "  sftp   SRC is PATH on the remote \"remote\" (REMOTE_TYPE=sftp, REMOTE_HOST, REMOTE_USER,\n"
      "         REMOTE_KEY_FILE, REMOTE_KNOWN_HOSTS_FILE, ...)\n"
      "  http   SRC is an http:// or https:// URL: a directory listing (ending in '/') or a file\n"
      "  For s3, sftp and http the revision is sha256-<16 hex> of the listing (names, sizes,\n"
      "  ETags or modification times); files unchanged since the current revision are\n"
      "  hard-linked from it instead of downloaded. An empty source is refused once the share\n"
      "  has content.\n\n"
      "Flags:\n"
      "  --share DIR          the directory to fill (required)\n"
      "  --source-type TYPE   git, s3, sftp or http (required)\n"
      "  --source SRC         the source (required; above)\n"
      "  --ref-branch B       git: the branch\n"
      "  --ref-tag T          git: the tag\n"
      "  --ref-commit C       git: the commit (4 to 40 hex digits)\n"
      "  --interval D         time between syncs (default 5m; '30s', '1h30m', '500ms')\n"
      "  --timeout D          one sync may take this long (default 10m)\n"
      "  --cache DIR          git: the object store (default DIR/.tidesync/cache)\n"
      "  --once               one sync, then exit: 0 when it succeeded, 1 when it failed\n\n"
      "Git credentials (the syncer's Secret, as environment variables): GIT_USERNAME and\n"
      "GIT_PASSWORD (a token works as the password) for HTTPS; GIT_SSH_KEY_FILE (a private key\n"
      "file), GIT_SSH_KEY_PASSPHRASE and GIT_KNOWN_HOSTS_FILE for SSH: with a known_hosts file\n"
      "the server's host key must be listed for its host, or the sync fails; without one (or\n"
      "when the file does not exist) host keys are not checked (a warning prints the key's\n"
      "fingerprint). GIT_SSL_CAINFO: a PEM bundle trusted for HTTPS instead of the system's.\n"
      "Passwords, tokens and user info in URLs are never printed or reported.\n\n"
      "Reports: when TIDESYNC_REPORT_URL is set (the controller's /volume-report), each sync is\n"
      "POSTed there as JSON {kind, namespace, name, revision, result, message, time, files,\n"
      "bytes} with 'Authorization: Bearer $TIDESYNC_REPORT_TOKEN'; TIDESYNC_VOLUME_KIND\n"
      "(SharedVolume or ClusterSharedVolume), TIDESYNC_VOLUME_NAMESPACE and TIDESYNC_VOLUME_NAME\n"
      "fill the names; revision, files and bytes describe what DIR/current serves after the\n"
      "sync. TIDESYNC_REPORT_CA (PEM) is then the only CA trusted for https. A report that\n"
      "fails is a warning; it never fails or delays a sync.\n\n"
      "Signals: SIGTERM or SIGINT stop the syncer (a sync in progress is aborted and its\n"
      "partial tree removed; DIR/current is untouched) with exit 0; SIGHUP syncs at once.\n\n"
      "Exit codes: 0 stopped by a signal, or --once succeeded; 1 --once failed; 2 bad usage.\n");
}

struct settings {
  fs::path share;
  mirror::source_type type = mirror::source_type::git;
  std::string source;
  mirror::git_ref ref;
  std::chrono::milliseconds interval = 5min;
  std::chrono::milliseconds timeout = 10min;
  fs::path cache;
  bool once = false;
  int child_fd = -1;  // the hidden child mode: build, answer on this descriptor
  // The arguments a child gets: these flags as given, without --once.
  std::vector<std::string> child_args;
};

std::optional<int> parse_args(int argc, char** argv, settings& s) {
  auto bad = [](const std::string& message) {
    std::fprintf(stderr, "tidesync agent mirror: %s (see tidesync agent mirror --help)\n",
                 message.c_str());
    return std::optional<int>(k_exit_usage);
  };
  std::string type_text, cache_text;
  int refs = 0;
  for (int i = 1; i < argc; ++i) {
    auto [flag, value, has_value] = split_flag(argv[i]);
    if (flag == "-h" || flag == "--help") {
      mirror_usage(stdout);
      return k_exit_ok;
    }
    if (flag == "--once") {
      s.once = true;
      continue;
    }
    const bool known = flag == "--share" || flag == "--source-type" || flag == "--source" ||
                       flag == "--ref-branch" || flag == "--ref-tag" || flag == "--ref-commit" ||
                       flag == "--interval" || flag == "--timeout" || flag == "--cache" ||
                       flag == "--child-result-fd";
    if (!known) return bad("unknown argument " + std::string(flag));
    if (!has_value) {
      if (i + 1 >= argc) return bad(std::string(flag) + " needs a value");
      value = argv[++i];
    }
    if (flag != "--child-result-fd") {
      s.child_args.emplace_back(flag);
      s.child_args.push_back(value);
    }
    if (flag == "--share") {
      if (value.empty()) return bad("--share must not be empty");
      s.share = value;
    } else if (flag == "--source-type") {
      type_text = value;
    } else if (flag == "--source") {
      s.source = value;
    } else if (flag == "--ref-branch" || flag == "--ref-tag" || flag == "--ref-commit") {
      ++refs;
      const auto kind = flag == "--ref-branch" ? mirror::ref_kind::branch
                        : flag == "--ref-tag"  ? mirror::ref_kind::tag
                                               : mirror::ref_kind::commit;
      auto r = mirror::make_ref(kind, value);
      if (!r) return bad(std::string(flag) + ": " + r.error().message);
      s.ref = *r;
    } else if (flag == "--interval" || flag == "--timeout") {
      auto d = fswatch::parse_interval(value);
      if (!d) return bad(std::string(flag) + " " + d.error().message);
      (flag == "--interval" ? s.interval : s.timeout) = *d;
    } else if (flag == "--cache") {
      if (value.empty()) return bad("--cache must not be empty");
      cache_text = value;
    } else if (flag == "--child-result-fd") {
      char* end = nullptr;
      const long fd = std::strtol(value.c_str(), &end, 10);
      if (*end != '\0' || fd < 3) return bad("--child-result-fd is internal");
      s.child_fd = static_cast<int>(fd);
    }
  }
  if (s.share.empty() || type_text.empty() || s.source.empty())
    return bad("--share, --source-type and --source are required");
  auto type = mirror::parse_source_type(type_text);
  if (!type) return bad(type.error().message);
  s.type = *type;
  if (refs > 1) return bad("give at most one of --ref-branch, --ref-tag and --ref-commit");
  if (s.type != mirror::source_type::git && (refs > 0 || !cache_text.empty()))
    return bad("--ref-branch, --ref-tag, --ref-commit and --cache are for --source-type git");
  if (s.type == mirror::source_type::git) {
    if (auto u = mirror::parse_git_url(s.source); !u) return bad(u.error().message);
  } else if (auto loc = mirror::source_location(s.type, s.source, transfer::process_env());
             !loc && loc.error().code == errc::invalid_argument) {
    // Configuration problems (REMOTE_*) are the sync's to report; a malformed --source is usage.
    return bad(loc.error().message);
  }
  s.cache = cache_text.empty() ? mirror::default_cache(s.share) : fs::path(cache_text);
  return std::nullopt;
}

// ---- the child: one build ----

int run_child(const settings& s) {
  mirror::build_request req;
  req.share = s.share;
  req.type = s.type;
  req.source = s.source;
  req.ref = s.ref;
  req.cache = s.cache;
  const auto r = mirror::build_revision(req, transfer::process_env());
  const std::string line = mirror::render_result(r);
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(s.child_fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(s.child_fd);
  return r ? k_exit_ok : k_exit_failed;
}

// ---- the parent ----

void say(const std::string& line) {
  std::fprintf(stdout, "tidesync agent mirror: %s\n", line.c_str());
  std::fflush(stdout);
}

void complain(const std::string& line) {
  std::fprintf(stderr, "tidesync agent mirror: %s\n", line.c_str());
  std::fflush(stderr);
}

std::string duration_text(std::chrono::milliseconds d) {
  using namespace std::chrono;
  if (d % 1s != 0ms) return std::to_string(d.count()) + "ms";
  auto secs = duration_cast<seconds>(d).count();
  std::string out;
  if (secs >= 3600) {
    out += std::to_string(secs / 3600) + "h";
    secs %= 3600;
  }
  if (secs >= 60) {
    out += std::to_string(secs / 60) + "m";
    secs %= 60;
  }
  if (secs > 0 || out.empty()) out += std::to_string(secs) + "s";
  return out;
}

// What one sync ended with, for the log and the report.
struct sync_outcome {
  bool ok = false;
  bool aborted = false;  // SIGTERM/SIGINT: not reported, the agent stops
  std::string message;
};

class agent {
 public:
  explicit agent(settings s, std::vector<std::string> child_argv, int sigfd)
      : s_(std::move(s)),
        child_argv_(std::move(child_argv)),
        sigfd_(sigfd),
        layout_(mirror::share_layout(s_.share)),
        reports_("agent mirror") {
    kind_ = env_or_empty("TIDESYNC_VOLUME_KIND");
    if (kind_.empty()) kind_ = "SharedVolume";
    if (kind_ != "SharedVolume" && kind_ != "ClusterSharedVolume")
      complain("warning: TIDESYNC_VOLUME_KIND is \"" + kind_ +
               "\", not SharedVolume or ClusterSharedVolume; reported as it is");
    namespace_ = env_or_empty("TIDESYNC_VOLUME_NAMESPACE");
    name_ = env_or_empty("TIDESYNC_VOLUME_NAME");
  }

  int run() {
    std::error_code ec;
    if (!fs::is_directory(s_.share, ec)) {
      complain("--share " + s_.share.string() + " is not a directory (the share's mount point)");
      return s_.once ? k_exit_failed : k_exit_usage;
    }
    say("syncing " + source_text() + " into " + s_.share.string() + "/current every " +
        duration_text(s_.interval) + " (timeout " + duration_text(s_.timeout) + ")");
    startup();
    for (;;) {
      const sync_outcome out = sync_once();
      if (out.aborted) {
        say("stopped by a signal during a sync; current stays at " + current_text());
        return k_exit_ok;
      }
      report(out);
      if (s_.once) {
        prune();
        return out.ok ? k_exit_ok : k_exit_failed;
      }
      if (sync_again_) {
        sync_again_ = false;
        say("SIGHUP during the sync: syncing again");
        continue;
      }
      if (!wait_for_next()) {
        say("stopped by a signal; current stays at " + current_text());
        return k_exit_ok;
      }
    }
  }

 private:
  [[nodiscard]] std::string source_text() const {
    std::string out = std::string(mirror::to_string(s_.type)) + " " + mirror::redact_url(s_.source);
    if (s_.type == mirror::source_type::git) out += " (" + mirror::describe(s_.ref) + ")";
    return out;
  }

  [[nodiscard]] std::string current_text() const {
    return archive::live_revision(layout_).value_or("(nothing yet)");
  }

  // A state.json that disagrees with `current` (a crash between the switch and its write) is
  // corrected, and what an earlier run left half-done is removed.
  void startup() {
    const auto current = archive::live_revision(layout_);
    const auto state = mirror::read_state(s_.share);
    if (current && (!state || state->revision != *current)) {
      auto fixed = mirror::reconcile_state(current, state, sys_clock::now());
      const auto c = mirror::count_tree(layout_.revisions / *current);
      fixed.files = c.files;
      fixed.bytes = c.bytes;
      if (auto w = mirror::write_state(s_.share, fixed); !w)
        complain("warning: " + w.error().message);
    }
    prune();
  }

  // Removes what the revision policy no longer keeps, and stale partial trees; returns when to
  // prune again (the previous revision's grace end), if that matters.
  std::optional<sys_clock::time_point> prune() {
    if (!fs::exists(layout_.staging)) return std::nullopt;
    const auto current = archive::live_revision(layout_);
    const auto plan =
        mirror::plan_prune(archive::revisions(layout_), current, mirror::read_state(s_.share),
                           sys_clock::now(), s_.interval);
    auto removed = archive::prune_revisions(layout_, plan.keep);
    if (!removed) {
      complain("warning: cannot prune old revisions: " + removed.error().message);
    } else {
      for (const auto& name : *removed)
        if (name.rfind(".", 0) != 0) say("removed revision " + name);
    }
    return plan.recheck_at;
  }

  // Waits until the next sync is due, pruning when the previous revision's grace ends. False
  // when a stop signal came.
  bool wait_for_next() {
    const auto next = std::chrono::steady_clock::now() + s_.interval;
    std::optional<sys_clock::time_point> recheck = prune();
    for (;;) {
      auto until = next;
      if (recheck) {
        const auto in = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            *recheck - sys_clock::now());
        until = std::min(until, std::chrono::steady_clock::now() + in + 10ms);
      }
      const int sig = wait_signal(until);
      if (sig == SIGTERM || sig == SIGINT) return false;
      if (sig == SIGHUP) {
        say("SIGHUP: syncing now");
        return true;
      }
      if (std::chrono::steady_clock::now() >= next) return true;
      if (recheck && sys_clock::now() >= *recheck) recheck = prune();
    }
  }

  // The next stop/sync signal before `until` (0: none came). SIGCHLD is consumed.
  int wait_signal(std::chrono::steady_clock::time_point until) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left <= 0ms) return 0;
      pollfd p{sigfd_, POLLIN, 0};
      const int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 60'000)));
      if (n <= 0) continue;
      const int sig = read_signal();
      if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) return sig;
    }
  }

  int read_signal() {
    signalfd_siginfo info{};
    const ssize_t n = ::read(sigfd_, &info, sizeof info);
    if (n != static_cast<ssize_t>(sizeof info)) return 0;
    return static_cast<int>(info.ssi_signo);
  }

  sync_outcome sync_once() {
    const auto started = std::chrono::steady_clock::now();
    const std::optional<std::string> before = archive::live_revision(layout_);
    sync_outcome out;
    std::string answer;
    int status = -1;
    const auto ran = run_build_child(answer, status);
    if (ran == child_end::aborted) {
      clean_partial();
      out.aborted = true;
      return out;
    }
    if (ran == child_end::timed_out) {
      clean_partial();
      out.message = "the sync took longer than --timeout " + duration_text(s_.timeout) +
                    " and was stopped; current stays at " + current_text();
      complain(out.message);
      return out;
    }
    auto result = mirror::parse_result(answer);
    if (!result) {
      clean_partial();
      // The child's own error, or what happened to it when it gave none.
      out.message =
          result.error().code == errc::internal ? child_failure(status) : result.error().message;
      out.message += "; current stays at " + current_text();
      complain("sync failed: " + out.message);
      return out;
    }
    if (result->outcome != mirror::build_outcome::unchanged) {
      if (auto p = archive::promote(layout_, result->revision); !p) {
        clean_partial();
        out.message = "cannot switch current to " + result->revision + ": " + p.error().message +
                      "; current stays at " + current_text();
        complain("sync failed: " + out.message);
        return out;
      }
      mirror::share_state st;
      st.revision = result->revision;
      st.previous = before.value_or("");
      st.switched_at = sys_clock::now();
      st.files = result->files;
      st.bytes = result->bytes;
      if (auto w = mirror::write_state(s_.share, st); !w) complain("warning: " + w.error().message);
    }
    out.ok = true;
    out.message = result->message;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    char took[32];
    std::snprintf(took, sizeof took, "%.1f s", secs);
    if (result->outcome == mirror::build_outcome::unchanged) {
      say(result->message + " [" + took + "]");
    } else {
      say("current -> " + result->revision + ": " + result->message + " [" + took + "]");
    }
    return out;
  }

  static std::string child_failure(int status) {
    if (status < 0) return "the sync process could not run";
    if (WIFSIGNALED(status))
      return "the sync process was killed by signal " + std::to_string(WTERMSIG(status));
    return "the sync process exited with status " + std::to_string(WEXITSTATUS(status)) +
           " without a result";
  }

  // The stale partial trees (.incoming-*) of a sync that did not finish.
  void clean_partial() {
    if (!fs::exists(layout_.staging)) return;
    std::set<std::string> keep;
    for (const auto& rev : archive::revisions(layout_))
      keep.insert(rev);
    if (auto r = archive::prune_revisions(layout_, keep); !r)
      complain("warning: cannot remove the partial tree: " + r.error().message);
  }

  enum class child_end { exited, timed_out, aborted };

  // Runs the build child and collects its answer; kills it at --timeout or on a stop signal.
  child_end run_build_child(std::string& answer, int& status) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      status = -1;
      return child_end::exited;
    }
    std::vector<char*> argv;
    for (auto& a : child_argv_)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      status = -1;
      return child_end::exited;
    }
    if (pid == 0) {
      // Only async-signal-safe calls until exec.
      ::setpgid(0, 0);
      if (fds[1] == 3) {
        ::fcntl(3, F_SETFD, 0);
      } else {
        ::dup2(fds[1], 3);
      }
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execv("/proc/self/exe", argv.data());
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // also here: no window where a kill of the group misses it
    ::close(fds[1]);
    const int rd = fds[0];
    ::fcntl(rd, F_SETFL, O_NONBLOCK);
    const auto deadline = std::chrono::steady_clock::now() + s_.timeout;
    bool exited = false, eof = false;
    auto drain = [&] {
      char buf[4096];
      for (;;) {
        const ssize_t n = ::read(rd, buf, sizeof buf);
        if (n > 0) {
          if (answer.size() < (1u << 20)) answer.append(buf, static_cast<size_t>(n));
          continue;
        }
        if (n == 0) eof = true;
        return;
      }
    };
    auto kill_child = [&] {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ::close(rd);
    };
    while (!exited) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) {
        kill_child();
        return child_end::timed_out;
      }
      pollfd p[2] = {{sigfd_, POLLIN, 0}, {eof ? -1 : rd, POLLIN, 0}};
      const int n = ::poll(p, 2, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
      if (n > 0 && (p[1].revents & (POLLIN | POLLHUP)) != 0) drain();
      if (n > 0 && (p[0].revents & POLLIN) != 0) {
        const int sig = read_signal();
        if (sig == SIGTERM || sig == SIGINT) {
          kill_child();
          return child_end::aborted;
        }
        if (sig == SIGHUP) sync_again_ = true;
      }
      // SIGCHLD may be merged with others: ask directly.
      if (::waitpid(pid, &status, WNOHANG) == pid) exited = true;
    }
    drain();
    ::close(rd);
    return child_end::exited;
  }

  void report(const sync_outcome& out) {
    if (!reports_.enabled()) return;
    const auto current = archive::live_revision(layout_);
    const auto state = mirror::read_state(s_.share);
    json::object o;
    o.set("kind", kind_);
    o.set("namespace", kind_ == "ClusterSharedVolume" ? std::string() : namespace_);
    o.set("name", name_);
    o.set("revision", current.value_or(""));
    o.set("result", out.ok ? "Succeeded" : "Failed");
    o.set("message", shortened(out.message, 1024));
    o.set("time", rfc3339::now());
    const bool counted = current && state && state->revision == *current;
    o.set("files", static_cast<int64_t>(counted ? state->files : 0));
    o.set("bytes", static_cast<int64_t>(counted ? state->bytes : 0));
    reports_.send(json::value(std::move(o)));
  }

  settings s_;
  std::vector<std::string> child_argv_;
  int sigfd_;
  archive::tree_layout layout_;
  report_client reports_;
  std::string kind_, namespace_, name_;
  bool sync_again_ = false;
};

}  // namespace

int run_agent_mirror(int argc, char** argv) {
  settings s;
  if (auto code = parse_args(argc, argv, s)) return *code;
  if (s.child_fd >= 0) return run_child(s);

  // Before any thread starts (the reports' HTTP loop): the signals come through a signalfd.
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD})
    sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  const int sigfd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) {
    std::fprintf(stderr, "tidesync agent mirror: signalfd: %s\n", std::strerror(errno));
    return k_exit_failed;
  }
  std::vector<std::string> child_argv{"tidesync", "agent", "mirror"};
  child_argv.insert(child_argv.end(), s.child_args.begin(), s.child_args.end());
  child_argv.emplace_back("--child-result-fd=3");
  int code = 0;
  {
    agent a(s, std::move(child_argv), sigfd);
    code = a.run();
  }
  ::close(sigfd);
  return code;
}

}  // namespace tidesync::cli
