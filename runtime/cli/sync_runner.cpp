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
int run_native(const sync_job& a, const location& src, const location& dst) {
  const char* name = a.name.c_str();
  engine_stats stats;
  engine_options opts = a.opts;
  opts.stats = &stats;
  progress_display progress(stats, progress_display::choose(a.quiet, a.force_progress),
                            a.stats_interval);
  auto r = run_engine(src, dst, opts);
  progress.stop();
  if (!r) {
    std::fprintf(stderr, "tidesync %s: %s; nothing was changed\n", name, r.error().message.c_str());
    return 1;
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
  // Partial: some files moved and some failed (nothing was deleted): the next run finishes.
  if (r->failed > 0) return r->copied > 0 ? 6 : 1;
  if (r->max_transfer_reached) return 8;
  if (a.error_on_no_transfer && r->copied == 0) return 9;
  return 0;
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

int run_once(const sync_job& a, const location& src, const location& dst) {
  return a.use_rclone ? run_rclone(a, src, dst) : run_native(a, src, dst);
}

std::string utc_text(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// --schedule: runs at every fire time until SIGTERM/SIGINT; then one last sync when the
// destination is a remote (the sidecar's termination hook), and the exit code of that run.
int run_scheduled(const sync_job& a, const std::string& schedule, const location& src,
                  const location& dst, const std::function<void(int)>& after_run) {
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
  // Signals go to one waiting thread, not to whichever thread the kernel picks.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  int signal_number = 0;
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&set, &sig);
    {
      std::lock_guard lock(mu);
      stopping = true;
      signal_number = sig;
    }
    cv.notify_all();
  });
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
      std::unique_lock lock(mu);
      // The wait is the schedule itself; a signal ends it early.
      cv.wait_until(lock, *next, [&] { return stopping; });
      if (stopping) break;
    }
    // A run never overlaps the previous one: this loop runs one at a time, and a run that
    // outlasts fire times skips them (next_after starts from the end of the run).
    last = run_once(a, src, dst);
    if (after_run) after_run(last);
    if (last != 0)
      std::fprintf(stderr, "tidesync %s: the run failed (exit %d); the next fire retries\n", name,
                   last);
  }
  if (stopping) {
    std::fprintf(stderr, "tidesync %s: got %s\n", name, strsignal(signal_number));
    if (dst.kind != location_kind::local) {
      std::fprintf(stderr, "tidesync %s: one last sync before exit\n", name);
      last = run_once(a, src, dst);
      if (after_run) after_run(last);
    } else {
      last = 0;
    }
  } else {
    // Leave the signal thread: send ourselves the signal it waits for.
    ::kill(::getpid(), SIGTERM);
  }
  waiter.join();
  return last;
}

}  // namespace

int run_sync_once(const sync_job& job, const location& src, const location& dst) {
  return run_once(job, src, dst);
}

int run_sync_scheduled(const sync_job& job, const std::string& schedule, const location& src,
                       const location& dst, const std::function<void(int)>& after_run) {
  return run_scheduled(job, schedule, src, dst, after_run);
}

}  // namespace tidesync::cli
