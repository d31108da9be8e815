// `tidesync agent restore`, `tidesync agent sidecar` and `tidesync agent health`: the
// PodFilesystemSync agents the webhook injects (config/pod_injection.cpp builds their args;
// docs/podfilesystemsync.md, "The agents"). They run the same engine and --schedule loop as
// the seed's `remote-to-local-sync` / `sync-to-remote` (sync_runner.hpp); the remote is the
// one named "remote", configured by REMOTE_* variables.
//
// The marker object `.tidesync-initialized` under the remote path records that a sidecar
// synced there once: `restore --skip-first-run` skips the restore while it is missing (the
// seed's restoreRemoteOnFirstRun: false). Both directions exclude it from the transfer.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/cli/commands.hpp"
#include "runtime/cli/flag_arg.hpp"
#include "runtime/cli/sync_runner.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/transfer/backend.hpp"
#include "runtime/transfer/remote.hpp"

namespace tidesync::cli {
namespace {

using namespace tidesync::transfer;

constexpr int k_exit_usage = 2;
constexpr const char* k_marker = ".tidesync-initialized";
constexpr const char* k_default_health_file = "/tmp/tidesync-sidecar-health";

void restore_usage(std::FILE* out) {
  std::fprintf(
      out,
      "Usage: tidesync agent restore --local DIR --remote BUCKET/PATH [FLAGS]\n\n"
      "The init container: makes DIR equal to BUCKET/PATH on the remote \"remote\" (configured\n"
      "by REMOTE_* variables, as for 'tidesync remote-to-local-sync'), once. An empty or\n"
      "missing remote path is a new volume: exit 0, nothing restored.\n\n"
      "Flags:\n"
      "  --local DIR                the volume's directory\n"
      "  --remote BUCKET/PATH       the remote path\n"
      "  --no-delete                copy instead of sync: never delete local files\n"
      "  --force-delete-local-dir   pass the local safety valves (empty source, system\n"
      "                             directory, foreign owner)\n"
      "  --skip-first-run           skip the restore while BUCKET/PATH/%s is missing (no\n"
      "                             sidecar has synced there yet)\n"
      "  --encrypt                  not built yet: exits 2\n"
      "  -v, --verbose              one line per file\n\n"
      "Exit codes: 0 done (or skipped), 1 failed, 2 bad usage, 6 partial.\n",
      k_marker);
}

void sidecar_usage(std::FILE* out) {
  std::fprintf(
      out,
      "Usage: tidesync agent sidecar --local DIR --remote BUCKET/PATH --method scheduler|fsnotify\n"
      "       [--schedule SPEC] [FLAGS]\n\n"
      "The sidecar: makes BUCKET/PATH on the remote \"remote\" (REMOTE_* variables) equal to\n"
      "DIR on a schedule, and once more on SIGTERM or SIGINT. After its first successful sync\n"
      "it writes the marker object BUCKET/PATH/%s.\n\n"
      "Flags:\n"
      "  --local DIR                   the volume's directory\n"
      "  --remote BUCKET/PATH          the remote path\n"
      "  --method scheduler|fsnotify   scheduler: run on --schedule ('@every 1m', cron specs).\n"
      "                                fsnotify: NOT BUILT YET; runs on '@every Nm' with N from\n"
      "                                --max-one-sync-per-minutes (file events do not trigger)\n"
      "  --schedule SPEC               the schedule (method scheduler)\n"
      "  --max-one-sync-per-minutes N  fsnotify's interval in minutes (default 1)\n"
      "  --no-delete                   copy instead of sync: never delete remote files\n"
      "  --force-delete-remote-dir     allow an empty DIR to empty the remote path\n"
      "  --unhealthy-after N           after N failed syncs in a row write \"unhealthy\" to the\n"
      "                                health file (a success writes \"healthy\"); see\n"
      "                                'tidesync agent health'\n"
      "  --health-file F               default %s\n"
      "  --encrypt                     not built yet: exits 2\n"
      "  -v, --verbose                 one line per file\n\n"
      "Exit codes: the last sync's: 0 done, 1 failed, 6 partial; 2 bad usage.\n",
      k_marker, k_default_health_file);
}

void health_usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: tidesync agent health [--health-file F]\n\n"
               "For an exec livenessProbe: exits 1 when the sidecar's health file (default %s)\n"
               "says \"unhealthy\", 0 otherwise (also when there is no file yet).\n",
               k_default_health_file);
}

// The flags both agents take; each ignores what it does not know by refusing it.
struct pfs_args {
  std::string local, remote, method, schedule, health_file = k_default_health_file;
  bool encrypt = false, no_delete = false, force_local = false, force_remote = false;
  bool skip_first_run = false, verbose = false;
  uint64_t max_per_minutes = 1;
  uint64_t unhealthy_after = 0;  // 0: never
};

bool parse_count(const std::string& text, uint64_t& out) {
  if (text.empty() || text[0] == '-') return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  out = v;
  return true;
}

// nullopt: go on; otherwise the exit code (help 0, usage 2).
std::optional<int> parse_pfs(int argc, char** argv, bool sidecar, pfs_args& a) {
  const char* name = sidecar ? "sidecar" : "restore";
  auto usage = sidecar ? sidecar_usage : restore_usage;
  auto bad = [&](const std::string& message) {
    std::fprintf(stderr, "tidesync agent %s: %s (see tidesync agent %s --help)\n", name,
                 message.c_str(), name);
    return k_exit_usage;
  };
  for (int i = 1; i < argc; ++i) {
    auto [flag, value, has_value] = split_flag(argv[i]);
    auto take = [&](std::string& out) -> bool {
      if (!has_value) {
        if (i + 1 >= argc) return false;
        value = argv[++i];
      }
      out = value;
      return true;
    };
    std::string v;
    if (flag == "-h" || flag == "--help") {
      usage(stdout);
      return 0;
    } else if (flag == "--local" || flag == "--remote" ||
               (sidecar && (flag == "--method" || flag == "--schedule" || flag == "--health-file" ||
                            flag == "--max-one-sync-per-minutes" || flag == "--unhealthy-after"))) {
      if (!take(v)) return bad(std::string(flag) + " needs a value");
      if (flag == "--local") {
        a.local = v;
      } else if (flag == "--remote") {
        a.remote = v;
      } else if (flag == "--method") {
        a.method = v;
      } else if (flag == "--schedule") {
        a.schedule = v;
      } else if (flag == "--health-file") {
        a.health_file = v;
      } else {
        uint64_t n = 0;
        if (!parse_count(v, n) || n == 0)
          return bad(std::string(flag) + " wants a positive number, not \"" + v + "\"");
        (flag == "--unhealthy-after" ? a.unhealthy_after : a.max_per_minutes) = n;
      }
    } else if (flag == "--encrypt") {
      a.encrypt = true;
    } else if (flag == "--no-delete") {
      a.no_delete = true;
    } else if (flag == "-v" || flag == "--verbose") {
      a.verbose = true;
    } else if (!sidecar && flag == "--force-delete-local-dir") {
      a.force_local = true;
    } else if (!sidecar && flag == "--skip-first-run") {
      a.skip_first_run = true;
    } else if (sidecar && flag == "--force-delete-remote-dir") {
      a.force_remote = true;
    } else {
      return bad("unknown argument " + std::string(flag));
    }
  }
  if (a.local.empty() || a.remote.empty()) return bad("--local and --remote are required");
  if (a.remote.find(':') != std::string::npos)
    return bad("--remote \"" + a.remote +
               "\": write BUCKET/PATH; the remote is configured by REMOTE_* variables");
  if (sidecar) {
    if (a.method != "scheduler" && a.method != "fsnotify")
      return bad("--method wants scheduler or fsnotify");
    if (a.method == "scheduler" && a.schedule.empty())
      return bad("--method scheduler needs --schedule");
  }
  if (a.encrypt) {
    std::fprintf(stderr,
                 "tidesync agent %s: --encrypt (automaticEncryption) is not built yet in this "
                 "version\n",
                 name);
    return k_exit_usage;
  }
  return std::nullopt;
}

// The remote and local locations; an exit code when they do not parse.
struct places {
  location local, remote;
};
std::optional<int> resolve(const char* name, const pfs_args& a, places& out) {
  const env_lookup env = with_seed_remote(process_env());
  auto remote = parse_location(std::string(k_seed_remote) + ":" + a.remote, env);
  if (!remote) {
    std::fprintf(stderr, "tidesync agent %s: --remote: %s\n", name, remote.error().message.c_str());
    return k_exit_usage;
  }
  std::string local_text = a.local;
  if (local_text.find(':') != std::string::npos && local_text.front() != '/' &&
      local_text.front() != '.')
    local_text = "./" + local_text;
  auto local = parse_location(local_text, env);
  if (!local || local->kind != location_kind::local) {
    std::fprintf(stderr, "tidesync agent %s: --local must be a local directory\n", name);
    return k_exit_usage;
  }
  out.local = *local;
  out.remote = *remote;
  return std::nullopt;
}

sync_job make_job(const char* name, const pfs_args& a, const location& src, const location& dst) {
  sync_job job;
  job.name = std::string("agent ") + name;
  job.opts.m = a.no_delete ? mode::copy : mode::sync;
  job.opts.force_delete_local_dir = a.force_local;
  job.opts.force_delete_remote_dir = a.force_remote;
  job.opts.verbose = a.verbose;
  job.opts.excludes.push_back(std::string("/") + k_marker);
  job.quiet = true;
  job.rclone_positional = {src.text, dst.text};
  return job;
}

class string_reader : public reader {
 public:
  explicit string_reader(std::string data) : data_(std::move(data)) {}
  expected<size_t> read(char* buf, size_t n) override {
    const size_t k = std::min(n, data_.size() - pos_);
    std::memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  std::string data_;
  size_t pos_ = 0;
};

int run_restore(int argc, char** argv) {
  pfs_args a;
  if (auto code = parse_pfs(argc, argv, false, a)) return *code;
  places p;
  if (auto code = resolve("restore", a, p)) return *code;
  // The marker and the emptiness check, on a backend of our own.
  bool has_files = false, has_marker = false;
  {
    http::loop loop;
    auto b = make_backend(p.remote, loop, backend_options{});
    if (!b) {
      std::fprintf(stderr, "tidesync agent restore: %s\n", b.error().message.c_str());
      return 1;
    }
    auto listing = (*b)->list();
    if (!listing) {
      std::fprintf(stderr, "tidesync agent restore: cannot list %s: %s; nothing was changed\n",
                   a.remote.c_str(), listing.error().message.c_str());
      return 1;
    }
    for (const auto& e : *listing) {
      if (e.dir) continue;
      if (e.path == k_marker) {
        has_marker = true;
      } else {
        has_files = true;
      }
    }
  }
  if (!has_marker && a.skip_first_run) {
    std::printf(
        "agent restore: %s has no %s (no sidecar synced there yet) and --skip-first-run "
        "is set: skipping the first restore\n",
        a.remote.c_str(), k_marker);
    return 0;
  }
  if (!has_files) {
    std::printf("agent restore: %s is empty: nothing to restore (a new volume)\n",
                a.remote.c_str());
    return 0;
  }
  return run_sync_once(make_job("restore", a, p.remote, p.local), p.remote, p.local);
}

void write_health(const std::string& path, bool healthy) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << (healthy ? "healthy\n" : "unhealthy\n");
    if (!f) {
      std::fprintf(stderr, "tidesync agent sidecar: cannot write the health file %s\n",
                   path.c_str());
      return;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    std::fprintf(stderr, "tidesync agent sidecar: cannot write the health file %s: %s\n",
                 path.c_str(), std::strerror(errno));
}

expected<void> write_marker(const location& remote) {
  http::loop loop;
  auto b = make_backend(remote, loop, backend_options{});
  if (!b) return b.error();
  const std::string text = "synced by tidesync agent sidecar\n";
  entry e;
  e.path = k_marker;
  e.size = text.size();
  e.mtime = std::chrono::system_clock::now();
  string_reader in(text);
  return (*b)->write(e, in);
}

int run_sidecar(int argc, char** argv) {
  pfs_args a;
  if (auto code = parse_pfs(argc, argv, true, a)) return *code;
  places p;
  if (auto code = resolve("sidecar", a, p)) return *code;
  std::string schedule = a.schedule;
  if (a.method == "fsnotify") {
    schedule = "@every " + std::to_string(a.max_per_minutes) + "m";
    std::fprintf(stderr,
                 "tidesync agent sidecar: --method fsnotify is not built yet: syncing on the "
                 "schedule \"%s\" instead of on file events\n",
                 schedule.c_str());
  }
  write_health(a.health_file, true);
  uint64_t failures = 0;
  bool marked = false;
  auto after_run = [&](int code) {
    if (code == 0) {
      failures = 0;
      if (a.unhealthy_after > 0) write_health(a.health_file, true);
      if (!marked) {
        if (auto m = write_marker(p.remote); m) {
          marked = true;
        } else {
          std::fprintf(stderr, "tidesync agent sidecar: cannot write the marker %s: %s\n", k_marker,
                       m.error().message.c_str());
        }
      }
      return;
    }
    ++failures;
    if (a.unhealthy_after > 0 && failures >= a.unhealthy_after) {
      std::fprintf(stderr, "tidesync agent sidecar: %llu failed syncs in a row: unhealthy\n",
                   static_cast<unsigned long long>(failures));
      write_health(a.health_file, false);
    }
  };
  return run_sync_scheduled(make_job("sidecar", a, p.local, p.remote), schedule, p.local, p.remote,
                            after_run);
}

int run_health(int argc, char** argv) {
  std::string path = k_default_health_file;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      health_usage(stdout);
      return 0;
    }
    if (flag.rfind("--health-file=", 0) == 0) {
      path = std::string(flag.substr(14));
    } else if (flag == "--health-file" && i + 1 < argc) {
      path = argv[++i];
    } else {
      std::fprintf(stderr, "tidesync agent health: unknown argument %s\n\n", argv[i]);
      health_usage(stderr);
      return k_exit_usage;
    }
  }
  std::ifstream f(path);
  std::string state;
  if (f) std::getline(f, state);
  if (state == "unhealthy") {
    std::printf("unhealthy\n");
    return 1;
  }
  std::printf("%s\n", state.empty() ? "no health file yet" : state.c_str());
  return 0;
}

}  // namespace

int run_agent_pfs(int argc, char** argv) {
  const std::string_view sub = argv[0];
  if (sub == "restore") return run_restore(argc, argv);
  if (sub == "sidecar") return run_sidecar(argc, argv);
  return run_health(argc, argv);
}

}  // namespace tidesync::cli
