// The engine run and the --schedule loop shared by the sync commands and the pod agents
// (sync_runner.hpp).
#include "runtime/cli/sync_runner.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "runtime/cli/sync_progress.hpp"
#include "runtime/cron.hpp"

extern char** environ;

namespace tidesync::cli {
namespace {

using namespace tidesync::transfer;
using namespace std::chrono_literals;

// One run: the engine, the summary, the exit code.
run_summary run_native(const sync_job& a, const location& src, const location& dst) {
  const char* name = a.name.c_str();
  engine_stats stats;
  engine_options opts = a.opts;
  opts.stats = &stats;
  progress_display progress(stats, progress_display::choose(a.quiet, a.force_progress),
                            a.stats_interval);
  auto r = run_engine(src, dst, opts);
  progress.stop();
  run_summary out;
  if (!r) {
    std::fprintf(stderr, "tidesync %s: %s; nothing was changed\n", name, r.error().message.c_str());
    out.code = 1;
    out.message = r.error().message + "; nothing was changed";
    return out;
  }
  for (const auto& e : r->errors)
    std::fprintf(stderr, "tidesync %s: error: %s\n", name, e.c_str());
  if (r->deletes_skipped && r->failed > 0) {
    std::fprintf(stderr,
                 "tidesync %s: %zu file(s) failed to copy: nothing was deleted (the next run "
                 "retries)\n",
                 name, r->failed);
  }
  if (r->max_transfer_reached) {
    std::fprintf(stderr,
                 "tidesync %s: --max-transfer reached: %zu file(s) left for the next run%s\n", name,
                 r->skipped, r->deletes_skipped ? "; nothing was deleted" : "");
  }
  const double mib = static_cast<double>(r->bytes) / (1024.0 * 1024.0);
  std::printf("%s%s: copied %zu file(s), %" PRIu64
              " bytes; deleted %zu; unchanged %zu; "
              "failed %zu; %.3f s (%.1f MiB/s)\n",
              name,
              opts.dry_run ? " (dry run, nothing changed; counts are what would be done)" : "",
              r->copied, r->bytes, r->deleted, r->unchanged, r->failed, r->seconds,
              r->seconds > 0 ? mib / r->seconds : 0.0);
  std::fflush(stdout);
  out.bytes = r->bytes;
  out.files = r->copied;
  out.deleted = r->deleted;
  char counts[160];
  std::snprintf(counts, sizeof counts,
                "copied %zu file(s), %" PRIu64 " bytes; deleted %zu; unchanged %zu; failed %zu",
                r->copied, r->bytes, r->deleted, r->unchanged, r->failed);
  out.message = counts;
  // Partial: some files moved and some failed (nothing was deleted): the next run finishes.
  if (r->failed > 0) {
    out.code = r->copied > 0 ? 6 : 1;
    if (!r->errors.empty()) out.message = r->errors.front() + " (" + out.message + ")";
  } else if (r->max_transfer_reached) {
    out.code = 8;
    out.message += "; --max-transfer reached";
  } else if (a.error_on_no_transfer && r->copied == 0) {
    out.code = 9;
  }
  return out;
}

// --engine=rclone: the native planner runs first as a dry run, so the safety valves hold
// for rclone too; then rclone runs with the same environment (REMOTE_* translated).
int run_rclone(const sync_job& a, const location& src, const location& dst) {
  const char* name = a.name.c_str();
  if (!a.opts.dry_run) {
    engine_options check = a.opts;
    check.dry_run = true;
    check.out = std::fopen("/dev/null", "w");
    auto r = run_engine(src, dst, check);
    if (check.out != nullptr) std::fclose(check.out);
    if (!r) {
      std::fprintf(stderr, "tidesync %s: %s; rclone was not started\n", name,
                   r.error().message.c_str());
      return 1;
    }
  }
  std::vector<std::string> argv_s = {"rclone", a.opts.m == mode::copy ? "copy" : "sync",
                                     a.rclone_positional.at(0), a.rclone_positional.at(1)};
  argv_s.insert(argv_s.end(), a.rclone_flags.begin(), a.rclone_flags.end());
  if (a.opts.max_transfer > 0) argv_s.emplace_back("--cutoff-mode=cautious");
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e)
    env_s.emplace_back(*e);
  if (a.rclone_seed_env) {
    for (char** e = environ; *e != nullptr; ++e) {
      std::string_view kv = *e;
      if (kv.rfind("REMOTE_", 0) == 0) env_s.push_back("RCLONE_CONFIG_" + std::string(kv));
    }
  }
  std::vector<char*> argv_p, env_p;
  for (auto& s : argv_s)
    argv_p.push_back(s.data());
  argv_p.push_back(nullptr);
  for (auto& s : env_s)
    env_p.push_back(s.data());
  env_p.push_back(nullptr);
  const char* rclone = std::getenv("TIDESYNC_RCLONE");
  const std::string path = rclone != nullptr && *rclone != '\0' ? rclone : "rclone";
  // rclone gets an empty signal mask: --schedule blocks SIGTERM/SIGINT in this process (they
  // go to its signal thread), and a child must not inherit that.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, path.c_str(), nullptr, &attr, argv_p.data(), env_p.data());
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    std::fprintf(stderr,
                 "tidesync %s: cannot start %s: %s; install rclone or set TIDESYNC_RCLONE, or "
                 "use --engine=native\n",
                 name, path.c_str(), std::strerror(rc));
    return 1;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  std::fprintf(stderr, "tidesync %s: rclone died of signal %d\n", name, WTERMSIG(status));
  return 1;
}

run_summary run_once(const sync_job& a, const location& src, const location& dst) {
  if (!a.use_rclone) return run_native(a, src, dst);
  run_summary out;
  out.code = run_rclone(a, src, dst);
  out.message = "rclone exited " + std::to_string(out.code);
  return out;
}

std::string utc_text(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

sigset_t stop_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

// SIGTERM/SIGINT go to one waiting thread, not to whichever thread the kernel picks; the loops
// wait on `cv` for `stopping` (and their own conditions) under `mu`.
class stop_signals {
 public:
  stop_signals() {
    block_stop_signals();
    waiter_ = std::thread([this] {
      const sigset_t set = stop_set();
      int sig = 0;
      sigwait(&set, &sig);
      {
        std::lock_guard lock(mu);
        stopping = true;
        signal_number = sig;
      }
      cv.notify_all();
    });
  }
  // Leaves the signal thread: when no signal came, sends ourselves the one it waits for.
  ~stop_signals() {
    bool signalled = false;
    {
      std::lock_guard lock(mu);
      signalled = stopping;
    }
    if (!signalled) ::kill(::getpid(), SIGTERM);
    waiter_.join();
  }
  stop_signals(const stop_signals&) = delete;
  stop_signals& operator=(const stop_signals&) = delete;

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;  // under mu
  int signal_number = 0;

 private:
  std::thread waiter_;
};

// After SIGTERM/SIGINT: one last sync when the destination is a remote (the sidecar's
// termination hook); its exit code, or 0.
int last_sync(const sync_job& a, const location& src, const location& dst, int signal_number,
              const run_observer& after_run) {
  const char* name = a.name.c_str();
  std::fprintf(stderr, "tidesync %s: got %s\n", name, strsignal(signal_number));
  if (dst.kind == location_kind::local) return 0;
  std::fprintf(stderr, "tidesync %s: one last sync before exit\n", name);
  const run_summary r = run_once(a, src, dst);
  if (after_run) after_run(r, run_kind::final);
  return r.code;
}

// --schedule: runs at every fire time until SIGTERM/SIGINT; then one last sync when the
// destination is a remote (the sidecar's termination hook), and the exit code of that run.
int run_scheduled(const sync_job& a, const std::string& schedule, const location& src,
                  const location& dst, const run_observer& after_run) {
  const char* name = a.name.c_str();
  auto sched = cron::schedule::parse(schedule, cron::parse_options{true});
  if (!sched) {
    std::fprintf(stderr, "tidesync %s: --schedule: %s\n", name, sched.error().message.c_str());
    return 2;
  }
  auto zone = cron::zone_for(*sched, "");
  if (!zone) {
    std::fprintf(stderr, "tidesync %s: --schedule: %s\n", name, zone.error().message.c_str());
    return 2;
  }
  stop_signals sig;
  std::fprintf(stderr, "tidesync %s: scheduled \"%s\"; SIGTERM or SIGINT stops\n", name,
               schedule.c_str());
  int last = 0;
  for (;;) {
    const auto now = std::chrono::system_clock::now();
    auto next = cron::next_after(*sched, now, *zone);
    if (!next) {
      std::fprintf(stderr, "tidesync %s: the schedule \"%s\" never fires again\n", name,
                   schedule.c_str());
      last = 2;
      break;
    }
    std::fprintf(stderr, "tidesync %s: next run at %s\n", name, utc_text(*next).c_str());
    {
      std::unique_lock lock(sig.mu);
      // The wait is the schedule itself; a signal ends it early.
      sig.cv.wait_until(lock, *next, [&] { return sig.stopping; });
      if (sig.stopping) break;
    }
    // A run never overlaps the previous one: this loop runs one at a time, and a run that
    // outlasts fire times skips them (next_after starts from the end of the run).
    const run_summary r = run_once(a, src, dst);
    last = r.code;
    if (after_run) after_run(r, run_kind::regular);
    if (last != 0)
      std::fprintf(stderr, "tidesync %s: the run failed (exit %d); the next fire retries\n", name,
                   last);
  }
  bool stopping = false;
  int signal_number = 0;
  {
    std::lock_guard lock(sig.mu);
    stopping = sig.stopping;
    signal_number = sig.signal_number;
  }
  if (stopping) last = last_sync(a, src, dst, signal_number, after_run);
  return last;
}

std::string interval_text(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// --method fsnotify: a sync at start, then after changes, at most one start per
// min_interval (fswatch::decide_sync); a last sync on SIGTERM/SIGINT.
int run_on_changes(const sync_job& a, const change_trigger& t, const location& src,
                   const location& dst, const run_observer& after_run) {
  using steady = std::chrono::steady_clock;
  const char* name = a.name.c_str();
  stop_signals sig;
  // Under sig.mu: a change not yet covered by a sync that started after it, and what it was.
  bool changed = true;
  std::string why = "the first sync at start";
  bool periodic = false;  // no complete watch: every interval counts as a change

  fswatch::watch_options wo;
  wo.root = t.root;
  wo.ignore = t.ignore;
  wo.on_warning = [name](const std::string& text) {
    std::fprintf(stderr, "tidesync %s: warning: %s\n", name, text.c_str());
  };
  auto watcher = fswatch::tree_watcher::start(wo, [&](const fswatch::change& c) {
    std::string text;
    switch (c.what) {
      case fswatch::change::kind::file:
        text = "files changed";
        break;
      case fswatch::change::kind::overflow:
        text = "file events were lost (the kernel's queue overflowed)";
        break;
      case fswatch::change::kind::root_gone:
        text = t.root + " was deleted or moved away";
        break;
      case fswatch::change::kind::root_back:
        text = t.root + " appeared";
        break;
    }
    {
      std::lock_guard lock(sig.mu);
      if (!changed) why = std::move(text);
      changed = true;
    }
    sig.cv.notify_all();
  });
  if (!watcher) {
    periodic = true;
    std::fprintf(stderr, "tidesync %s: warning: %s; syncing every %s instead\n", name,
                 watcher.error().message.c_str(), interval_text(t.min_interval).c_str());
  }
  std::fprintf(stderr,
               "tidesync %s: watching %s for changes; at most one sync per %s; SIGTERM or SIGINT "
               "stops\n",
               name, t.root.c_str(), interval_text(t.min_interval).c_str());
  std::optional<steady::time_point> last_start, announced;
  bool warned_incomplete = false;
  int last = 0;
  for (;;) {
    std::unique_lock lock(sig.mu);
    if (sig.stopping) break;
    const auto now = steady::now();
    const auto d = fswatch::decide_sync({last_start, changed, false}, now, t.min_interval);
    if (d.start_now) {
      const std::string reason = why;
      changed = false;
      last_start = now;
      lock.unlock();
      std::fprintf(stderr, "tidesync %s: syncing: %s\n", name, reason.c_str());
      const run_summary r = run_once(a, src, dst);
      last = r.code;
      if (after_run) after_run(r, run_kind::regular);
      if (last != 0)
        std::fprintf(stderr, "tidesync %s: the run failed (exit %d); the next change retries\n",
                     name, last);
      const bool incomplete = periodic || !(*watcher)->complete();
      if (incomplete && !periodic && !warned_incomplete) {
        warned_incomplete = true;
        std::fprintf(stderr,
                     "tidesync %s: warning: not every directory is watched: syncing every %s "
                     "as well\n",
                     name, interval_text(t.min_interval).c_str());
      }
      lock.lock();
      // A failed run is retried like a change; so is every interval when watching is not
      // complete.
      if (last != 0 || incomplete) {
        if (!changed) why = last != 0 ? "retrying the failed sync" : "periodic sync";
        changed = true;
      }
      continue;
    }
    if (d.wake_at) {
      if (announced != d.wake_at) {
        announced = d.wake_at;
        const auto at = std::chrono::system_clock::now() + (*d.wake_at - now);
        std::fprintf(stderr, "tidesync %s: %s; next sync at %s (at most one per %s)\n", name,
                     why.c_str(), utc_text(at).c_str(), interval_text(t.min_interval).c_str());
      }
      sig.cv.wait_until(lock, *d.wake_at, [&] { return sig.stopping; });
    } else {
      sig.cv.wait(lock, [&] { return sig.stopping || changed; });
    }
  }
  // Stop watching before the last sync: its changes need no reaction.
  int signal_number = 0;
  {
    std::lock_guard lock(sig.mu);
    signal_number = sig.signal_number;
  }
  if (watcher) watcher->reset();
  return last_sync(a, src, dst, signal_number, after_run);
}

}  // namespace

void block_stop_signals() {
  const sigset_t set = stop_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

run_summary run_sync(const sync_job& job, const location& src, const location& dst) {
  return run_once(job, src, dst);
}

int run_sync_once(const sync_job& job, const location& src, const location& dst) {
  return run_once(job, src, dst).code;
}

int run_sync_scheduled(const sync_job& job, const std::string& schedule, const location& src,
                       const location& dst, const run_observer& after_run) {
  return run_scheduled(job, schedule, src, dst, after_run);
}

int run_sync_on_changes(const sync_job& job, const change_trigger& trigger, const location& src,
                        const location& dst, const run_observer& after_run) {
  return run_on_changes(job, trigger, src, dst, after_run);
}

}  // namespace tidesync::cli
