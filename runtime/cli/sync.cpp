// `tidesync sync SRC DST`, `tidesync copy SRC DST`, and the seed's `tidesync sync-to-remote
// -s LOCAL -d REMOTE_PATH` / `tidesync remote-to-local-sync -s REMOTE_PATH -d LOCAL`: the
// native engine (runtime/transfer/engine.hpp) with rclone's flags and exit codes, a progress
// display, --schedule for periodic runs, and --engine=rclone. docs/sync.md describes them.
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
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "runtime/cli/commands.hpp"
#include "runtime/cli/sync_progress.hpp"
#include "runtime/cron.hpp"
#include "runtime/transfer/engine.hpp"
#include "runtime/transfer/remote.hpp"
#include "runtime/transfer/safety.hpp"
#include "runtime/transfer/token_bucket.hpp"

extern char** environ;

namespace tidesync::cli {
namespace {

using namespace tidesync::transfer;
using namespace std::chrono_literals;

enum class command { sync, copy, sync_to_remote, remote_to_local };

const char* command_name(command c) {
  switch (c) {
    case command::sync:
      return "sync";
    case command::copy:
      return "copy";
    case command::sync_to_remote:
      return "sync-to-remote";
    case command::remote_to_local:
      return "remote-to-local-sync";
  }
  return "sync";
}

bool seed_command(command c) {
  return c == command::sync_to_remote || c == command::remote_to_local;
}

void usage(std::FILE* out, command c) {
  const char* name = command_name(c);
  if (seed_command(c)) {
    std::fprintf(out,
                 "Usage: tidesync %s -s %s -d %s [FLAGS]\n\n%s\n\n"
                 "The remote is configured by REMOTE_* environment variables, as rclone's\n"
                 "[remote] section: REMOTE_TYPE=s3, REMOTE_PROVIDER, REMOTE_ACCESS_KEY_ID,\n"
                 "REMOTE_SECRET_ACCESS_KEY, REMOTE_ENDPOINT, REMOTE_REGION, REMOTE_ACL,\n"
                 "REMOTE_FORCE_PATH_STYLE (RCLONE_CONFIG_REMOTE_* works too).\n\n",
                 name, c == command::sync_to_remote ? "LOCAL_DIR" : "BUCKET/PATH",
                 c == command::sync_to_remote ? "BUCKET/PATH" : "LOCAL_DIR",
                 c == command::sync_to_remote
                     ? "Make the remote BUCKET/PATH equal to the local directory."
                     : "Make the local directory equal to the remote BUCKET/PATH.");
  } else {
    std::fprintf(
        out,
        "Usage: tidesync %s SRC DST [FLAGS]\n\n%s\n\n"
        "SRC and DST are local directories or NAME:bucket/prefix, where the remote NAME is\n"
        "configured by rclone's environment variables: RCLONE_CONFIG_NAME_TYPE=s3,\n"
        "_ACCESS_KEY_ID, _SECRET_ACCESS_KEY, _ENDPOINT, _REGION, _PROVIDER, _FORCE_PATH_STYLE,\n"
        "_ACL.\n\n",
        name,
        c == command::sync
            ? "Make DST equal to SRC: copy new and changed files, then delete files only in DST\n"
              "(only when every copy succeeded)."
            : "Copy new and changed files from SRC to DST; delete nothing.");
  }
  std::fprintf(
      out,
      "Flags:\n"
      "  --dry-run                  print the plan (one line per action), change nothing\n"
      "  --checksum                 compare by checksum (MD5/ETag) instead of mtime\n"
      "  --size-only                compare by size only\n"
      "  --max-delete N             refuse to delete more than N files\n"
      "  --include PATTERN          only transfer matching files (repeatable)\n"
      "  --exclude PATTERN          skip matching files (repeatable)\n"
      "  --transfers N              files in flight (default 4)\n"
      "  --checkers N               metadata reads and checksums in parallel (default 8)\n"
      "  --bwlimit RATE             bytes per second for all transfers together, e.g. 10M\n"
      "                             (a bare number is KiB/s, as in rclone)\n"
      "  --max-transfer SIZE        start no file that would take the bytes copied past\n"
      "                             SIZE, e.g. 1G; exit 8 when files were left\n"
      "  --error-on-no-transfer     exit 9 when no file was copied\n"
      "  --schedule SPEC            run periodically: '@every 1m', a 5-field cron spec or a\n"
      "                             6-field one with seconds first ('0 30 * * * *'); runs\n"
      "                             never overlap; SIGTERM or SIGINT ends the loop after one\n"
      "                             last sync when the destination is a remote\n"
      "  --engine native|rclone     rclone: run rclone itself with the same remotes and\n"
      "                             flags, after the native safety checks\n"
      "  --stats DURATION           progress line interval when stderr is not a terminal\n"
      "                             (JSON lines; default 10s, 0 turns them off)\n"
      "  -P, --progress             live progress on stderr even when it is not a terminal\n"
      "  -q, --quiet                no progress display\n"
      "  --force-delete-local-dir   allow deleting in a local destination the safety valves\n"
      "                             protect (empty source, system directory, foreign owner)\n"
      "  --force-delete-remote-dir  allow an empty source to empty a remote destination\n"
      "  -v, --verbose              one line per file copied or deleted\n\n"
      "Exit codes: 0 done, 1 failed (nothing changed, or no file could be copied), 2 bad\n"
      "usage, 6 partial (some files copied, some failed; nothing deleted), 8 --max-transfer\n"
      "reached (run again for the rest), 9 nothing transferred (with --error-on-no-transfer).\n");
}

bool parse_number(const std::string& text, uint64_t& out) {
  if (text.empty() || text[0] == '-') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  out = v;
  return true;
}

// "10s", "1m", "500ms", "1h", "0".
std::optional<std::chrono::milliseconds> parse_interval(const std::string& text) {
  if (text == "0") return 0ms;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || end == text.c_str() || v < 0) return std::nullopt;
  const std::string unit(end);
  double ms = 0;
  if (unit == "ms") {
    ms = v;
  } else if (unit == "s") {
    ms = v * 1000;
  } else if (unit == "m") {
    ms = v * 60'000;
  } else if (unit == "h") {
    ms = v * 3'600'000;
  } else {
    return std::nullopt;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

struct args {
  command cmd = command::sync;
  engine_options opts;
  bool error_on_no_transfer = false;
  std::string schedule;
  bool use_rclone = false;
  bool force_progress = false;
  bool quiet = false;
  std::chrono::milliseconds stats_interval = 10s;
  std::vector<std::string> positional;
  std::string seed_src, seed_dst;
  // The flags as given, for --engine=rclone (minus ours).
  std::vector<std::string> rclone_flags;
};

// Returns an exit code when parsing ends the command (help: 0, bad usage: 2).
std::optional<int> parse_args(int argc, char** argv, args& a) {
  const char* name = command_name(a.cmd);
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    std::string value;
    bool has_value = false;
    if (flag.rfind("--", 0) == 0) {
      if (auto eq = flag.find('='); eq != std::string_view::npos) {
        value = std::string(flag.substr(eq + 1));
        flag = flag.substr(0, eq);
        has_value = true;
      }
    }
    auto take = [&](std::string& out) -> bool {
      if (has_value) {
        out = value;
        return true;
      }
      if (i + 1 >= argc) {
        std::fprintf(stderr, "tidesync %s: %s needs a value\n", name, std::string(flag).c_str());
        return false;
      }
      out = argv[++i];
      return true;
    };
    auto bad_value = [&](const std::string& v, const char* want) {
      std::fprintf(stderr, "tidesync %s: %s wants %s, not \"%s\"\n", name,
                   std::string(flag).c_str(), want, v.c_str());
      return 2;
    };
    auto pass = [&](const std::string& v = {}) {
      a.rclone_flags.emplace_back(flag);
      if (!v.empty()) a.rclone_flags.push_back(v);
    };
    if (flag == "-h" || flag == "--help") {
      usage(stdout, a.cmd);
      return 0;
    } else if (flag == "--dry-run") {
      a.opts.dry_run = true;
      pass();
    } else if (flag == "--checksum" || flag == "-c") {
      a.opts.checksum = true;
      pass();
    } else if (flag == "--size-only") {
      a.opts.size_only = true;
      pass();
    } else if (flag == "-v" || flag == "--verbose") {
      a.opts.verbose = true;
      pass();
    } else if (flag == "--error-on-no-transfer") {
      a.error_on_no_transfer = true;
      pass();
    } else if (flag == "--force-delete-local-dir") {
      a.opts.force_delete_local_dir = true;
    } else if (flag == "--force-delete-remote-dir") {
      a.opts.force_delete_remote_dir = true;
    } else if (flag == "-P" || flag == "--progress") {
      a.force_progress = true;
    } else if (flag == "-q" || flag == "--quiet") {
      a.quiet = true;
    } else if (flag == "--include" || flag == "--exclude") {
      std::string v;
      if (!take(v)) return 2;
      (flag == "--include" ? a.opts.includes : a.opts.excludes).push_back(v);
      pass(v);
    } else if (flag == "--max-delete" || flag == "--transfers" || flag == "--checkers") {
      std::string v;
      if (!take(v)) return 2;
      uint64_t n = 0;
      const bool count = flag != "--max-delete";
      if (!parse_number(v, n) || (count && (n == 0 || n > 256)))
        return bad_value(v, count ? "a number from 1 to 256" : "a non-negative number");
      if (flag == "--max-delete") {
        a.opts.max_delete = n;
      } else if (flag == "--transfers") {
        a.opts.transfers = static_cast<int>(n);
      } else {
        a.opts.checkers = static_cast<int>(n);
      }
      pass(v);
    } else if (flag == "--bwlimit" || flag == "--max-transfer") {
      std::string v;
      if (!take(v)) return 2;
      auto n = parse_size(v);
      if (!n) {
        std::fprintf(stderr, "tidesync %s: %s: %s\n", name, std::string(flag).c_str(),
                     n.error().message.c_str());
        return 2;
      }
      (flag == "--bwlimit" ? a.opts.bwlimit : a.opts.max_transfer) = *n;
      pass(v);
    } else if (flag == "--schedule") {
      if (!take(a.schedule)) return 2;
    } else if (flag == "--engine") {
      std::string v;
      if (!take(v)) return 2;
      if (v != "native" && v != "rclone") return bad_value(v, "native or rclone");
      a.use_rclone = v == "rclone";
    } else if (flag == "--stats") {
      std::string v;
      if (!take(v)) return 2;
      auto d = parse_interval(v);
      if (!d) return bad_value(v, "a duration such as 10s, 1m or 0");
      a.stats_interval = *d;
    } else if (seed_command(a.cmd) &&
               (flag == "-s" || flag == "--source-path" || flag == "-d" || flag == "--dest-path")) {
      std::string v;
      if (!take(v)) return 2;
      (flag == "-s" || flag == "--source-path" ? a.seed_src : a.seed_dst) = v;
    } else if (flag.size() > 1 && flag[0] == '-') {
      std::fprintf(stderr, "tidesync %s: unknown flag %s (see tidesync %s --help)\n", name,
                   std::string(flag).c_str(), name);
      return 2;
    } else {
      a.positional.emplace_back(flag);
    }
  }
  if (a.opts.checksum && a.opts.size_only) {
    std::fprintf(stderr, "tidesync %s: --checksum and --size-only exclude each other\n", name);
    return 2;
  }
  if (seed_command(a.cmd)) {
    if (!a.positional.empty() || a.seed_src.empty() || a.seed_dst.empty()) {
      std::fprintf(stderr, "tidesync %s: want -s SOURCE and -d DESTINATION%s\n\n", name,
                   a.positional.empty() ? "" : " (and no other arguments)");
      usage(stderr, a.cmd);
      return 2;
    }
    // The seed's remote path is relative to the remote ("testbucket/dir"), its local path a
    // directory ("./"): a "name:" prefix would mean another remote.
    const std::string& remote_path = a.cmd == command::sync_to_remote ? a.seed_dst : a.seed_src;
    if (remote_path.find(':') != std::string::npos) {
      std::fprintf(stderr,
                   "tidesync %s: \"%s\": write the remote path as BUCKET/PATH; the remote is "
                   "configured by REMOTE_* variables\n",
                   name, remote_path.c_str());
      return 2;
    }
    const std::string remote = std::string(k_seed_remote) + ":" + remote_path;
    std::string local = a.cmd == command::sync_to_remote ? a.seed_src : a.seed_dst;
    // "./x:y" keeps a local path with ':' local.
    if (local.find(':') != std::string::npos && local.front() != '/' && local.front() != '.')
      local = "./" + local;
    a.positional = a.cmd == command::sync_to_remote ? std::vector<std::string>{local, remote}
                                                    : std::vector<std::string>{remote, local};
  } else if (a.positional.size() != 2) {
    std::fprintf(stderr, "tidesync %s: want SRC and DST, got %zu argument(s)\n\n", name,
                 a.positional.size());
    usage(stderr, a.cmd);
    return 2;
  }
  return std::nullopt;
}

// One run: the engine, the summary, the exit code.
int run_native(const args& a, const location& src, const location& dst) {
  const char* name = command_name(a.cmd);
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
int run_rclone(const args& a, const location& src, const location& dst) {
  const char* name = command_name(a.cmd);
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
  std::vector<std::string> argv_s = {"rclone", a.cmd == command::copy ? "copy" : "sync",
                                     a.positional[0], a.positional[1]};
  argv_s.insert(argv_s.end(), a.rclone_flags.begin(), a.rclone_flags.end());
  if (a.opts.max_transfer > 0) argv_s.emplace_back("--cutoff-mode=cautious");
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e)
    env_s.emplace_back(*e);
  if (seed_command(a.cmd)) {
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

int run_once(const args& a, const location& src, const location& dst) {
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
int run_scheduled(const args& a, const location& src, const location& dst) {
  const char* name = command_name(a.cmd);
  auto sched = cron::schedule::parse(a.schedule, cron::parse_options{true});
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
               a.schedule.c_str());
  int last = 0;
  for (;;) {
    const auto now = std::chrono::system_clock::now();
    auto next = cron::next_after(*sched, now, *zone);
    if (!next) {
      std::fprintf(stderr, "tidesync %s: the schedule \"%s\" never fires again\n", name,
                   a.schedule.c_str());
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
    if (last != 0)
      std::fprintf(stderr, "tidesync %s: the run failed (exit %d); the next fire retries\n", name,
                   last);
  }
  if (stopping) {
    std::fprintf(stderr, "tidesync %s: got %s\n", name, strsignal(signal_number));
    if (dst.kind != location_kind::local) {
      std::fprintf(stderr, "tidesync %s: one last sync before exit\n", name);
      last = run_once(a, src, dst);
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

int run(command cmd, int argc, char** argv) {
  args a;
  a.cmd = cmd;
  if (cmd == command::copy) a.opts.m = mode::copy;
  if (auto code = parse_args(argc, argv, a)) return *code;
  const char* name = command_name(cmd);
  env_lookup env = process_env();
  if (seed_command(cmd)) env = with_seed_remote(std::move(env));
  auto src = parse_location(a.positional[0], env);
  if (!src) {
    std::fprintf(stderr, "tidesync %s: source: %s\n", name, src.error().message.c_str());
    return 2;
  }
  auto dst = parse_location(a.positional[1], env);
  if (!dst) {
    std::fprintf(stderr, "tidesync %s: destination: %s\n", name, dst.error().message.c_str());
    return 2;
  }
  if (cmd == command::sync_to_remote && src->kind != location_kind::local) {
    std::fprintf(stderr, "tidesync %s: -s must be a local directory\n", name);
    return 2;
  }
  if (cmd == command::remote_to_local && dst->kind != location_kind::local) {
    std::fprintf(stderr, "tidesync %s: -d must be a local directory\n", name);
    return 2;
  }
  if (!a.schedule.empty()) return run_scheduled(a, *src, *dst);
  return run_once(a, *src, *dst);
}

}  // namespace

int run_sync(int argc, char** argv) {
  return run(command::sync, argc, argv);
}
int run_copy(int argc, char** argv) {
  return run(command::copy, argc, argv);
}
int run_sync_to_remote(int argc, char** argv) {
  return run(command::sync_to_remote, argc, argv);
}
int run_remote_to_local_sync(int argc, char** argv) {
  return run(command::remote_to_local, argc, argv);
}

}  // namespace tidesync::cli
