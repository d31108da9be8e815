// `tidesync agent restore`, `tidesync agent sidecar` and `tidesync agent health`: the
// PodFilesystemSync agents the webhook injects (config/pod_injection.cpp builds their args;
// docs/podfilesystemsync.md, "The agents"). They run the same engine and loops as the seed's
// `remote-to-local-sync` / `sync-to-remote` (sync_runner.hpp); the remote is the one named
// "remote", configured by REMOTE_* variables.
//
// The marker object `.tidesync-initialized` under the remote path records that a sidecar
// synced there once: `restore --skip-first-run` skips the restore while it is missing (the
// seed's restoreRemoteOnFirstRun: false). Both directions exclude it from the transfer.
//
// --encrypt (automaticEncryption): the files go through the crypt remote "tidesync-crypt"
// wrapping remote:BUCKET/PATH, keyed by RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD/_PASSWORD2 from
// the PodFilesystemSync's Secret (rclone-obscured, so an rclone.conf with the same values
// reads the bucket). The marker stays in plain text at BUCKET/PATH, outside the crypt, so the
// first-run check needs no keys; the crypt side leaves it out of its listings
// (crypt_config::plain_top_level), so no sync deletes it or counts it as undecryptable.
//
// Progress reports: after each run, when TIDESYNC_REPORT_URL is set, a JSON POST to the
// controller (class reporter below, over report_client.hpp); a report never delays or fails a
// sync.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/cli/commands.hpp"
#include "runtime/cli/flag_arg.hpp"
#include "runtime/cli/report_client.hpp"
#include "runtime/cli/sync_runner.hpp"
#include "runtime/fswatch.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/rfc3339.hpp"
#include "runtime/transfer/backend.hpp"
#include "runtime/transfer/remote.hpp"

namespace tidesync::cli {
namespace {

using namespace tidesync::transfer;

constexpr int k_exit_usage = 2;
constexpr const char* k_marker = ".tidesync-initialized";
constexpr const char* k_default_health_file = "/tmp/tidesync-sidecar-health";
// --encrypt: the crypt remote and the Secret's keys (the contract with the controller).
constexpr const char* k_crypt_remote = "tidesync-crypt";
constexpr std::string_view k_crypt_env = "RCLONE_CONFIG_TIDESYNC_CRYPT_";
constexpr const char* k_password_env = "RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD";
constexpr const char* k_password2_env = "RCLONE_CONFIG_TIDESYNC_CRYPT_PASSWORD2";

void report_env_help(std::FILE* out) {
  std::fprintf(
      out,
      "Progress reports: when TIDESYNC_REPORT_URL is set, each run is POSTed there as JSON\n"
      "(namespace, pod, podFilesystemSync, container, kind, time, bytes, files, deleted,\n"
      "result, message, consecutiveFailures) with 'Authorization: Bearer\n"
      "$TIDESYNC_REPORT_TOKEN'; POD_NAMESPACE, POD_NAME and TIDESYNC_PFS_NAME fill the names.\n"
      "TIDESYNC_REPORT_CA (PEM) is then the only CA trusted for https. A report that fails\n"
      "(5 s timeout, one retry) is a warning; it never fails the sync.\n");
}

// The --encrypt lines, with the description starting at column `col`.
void encrypt_help(std::FILE* out, int col) {
  const std::string pad(static_cast<size_t>(col), ' ');
  const std::string lines[] = {
      "encrypt names and contents as rclone crypt does",
      "(filename_encryption standard, directory names",
      "encrypted): the crypt remote \"" + std::string(k_crypt_remote) + "\" wraps",
      "remote:BUCKET/PATH, keyed by the automaticEncryption",
      "Secret's " + std::string(k_password_env),
      "and " + std::string(k_password2_env),
      "(rclone-obscured).",
  };

  std::fprintf(out, "  %-*s%s\n", col - 2, "--encrypt", lines[0].c_str());
  for (size_t i = 1; i < std::size(lines); ++i)
    std::fprintf(out, "%s%s\n", pad.c_str(), lines[i].c_str());
}

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
      "  --skip-first-run           skip the restore while BUCKET/PATH/%s\n"
      "                             is missing (no sidecar has synced there yet)\n",
      k_marker);
  encrypt_help(out, 29);
  std::fprintf(out,
               "                             A remote whose files do not decrypt with these\n"
               "                             keys fails the restore; DIR is left alone.\n"
               "  -v, --verbose              one line per file\n\n");
  report_env_help(out);
  std::fprintf(out, "\nExit codes: 0 done (or skipped), 1 failed, 2 bad usage, 6 partial.\n");
}

void sidecar_usage(std::FILE* out) {
  std::fprintf(
      out,
      "Usage: tidesync agent sidecar --local DIR --remote BUCKET/PATH --method scheduler|fsnotify\n"
      "       [--schedule SPEC] [FLAGS]\n\n"
      "The sidecar: makes BUCKET/PATH on the remote \"remote\" (REMOTE_* variables) equal to\n"
      "DIR on a schedule or after file changes, and once more on SIGTERM or SIGINT. After its\n"
      "first successful sync it writes the marker object BUCKET/PATH/%s.\n\n"
      "Flags:\n"
      "  --local DIR                   the volume's directory\n"
      "  --remote BUCKET/PATH          the remote path\n"
      "  --method scheduler|fsnotify   scheduler: run on --schedule ('@every 1m', cron specs).\n"
      "                                fsnotify: sync at start, then after file changes under\n"
      "                                DIR (inotify, every directory of the tree), at most\n"
      "                                once per --max-one-sync-per-minutes: a change when the\n"
      "                                last sync started longer ago syncs at once, otherwise\n"
      "                                when that time is up; changes during a sync make one\n"
      "                                more sync after it; a failed sync is retried the same\n"
      "                                way; no change, no sync\n"
      "  --schedule SPEC               the schedule (method scheduler; fsnotify ignores it)\n"
      "  --max-one-sync-per-minutes N  fsnotify: at most one sync per N minutes (default 1)\n"
      "  --min-interval DURATION       fsnotify: at most one sync per DURATION ('500ms', '2s',\n"
      "                                '1m30s'); overrides --max-one-sync-per-minutes\n"
      "  --no-delete                   copy instead of sync: never delete remote files\n"
      "  --force-delete-remote-dir     allow an empty DIR to empty the remote path\n"
      "  --unhealthy-after N           after N failed syncs in a row write \"unhealthy\" to the\n"
      "                                health file (a success writes \"healthy\"); see\n"
      "                                'tidesync agent health'\n"
      "  --health-file F               default %s\n",
      k_marker, k_default_health_file);
  encrypt_help(out, 32);
  std::fprintf(out, "  -v, --verbose                 one line per file\n\n");
  report_env_help(out);
  std::fprintf(out, "\nExit codes: the last sync's: 0 done, 1 failed, 6 partial; 2 bad usage.\n");
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
  std::optional<std::chrono::milliseconds> min_interval;  // --min-interval
  uint64_t unhealthy_after = 0;                           // 0: never
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
                            flag == "--max-one-sync-per-minutes" || flag == "--unhealthy-after" ||
                            flag == "--min-interval"))) {
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
      } else if (flag == "--min-interval") {
        auto d = fswatch::parse_interval(v);
        if (!d) return bad("--min-interval " + d.error().message);
        a.min_interval = *d;
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
    if (a.method == "scheduler" && a.min_interval)
      return bad("--min-interval is for --method fsnotify");
  }
  return std::nullopt;
}

// ---- progress reports ----

// One report's fields (the rest comes from the environment).
struct report {
  const char* kind = "sync";         // restore | sync | final
  const char* result = "Succeeded";  // Succeeded | Failed | Skipped
  uint64_t bytes = 0;
  size_t files = 0;
  size_t deleted = 0;
  std::string message;
  uint64_t consecutive_failures = 0;
};

report report_of(const char* kind, const run_summary& r, uint64_t consecutive_failures) {
  report out;
  out.kind = kind;
  out.result = r.code == 0 ? "Succeeded" : "Failed";
  out.bytes = r.bytes;
  out.files = r.files;
  out.deleted = r.deleted;
  out.message = r.message;
  if (r.code != 0 && out.message.empty()) out.message = "exit " + std::to_string(r.code);
  out.consecutive_failures = consecutive_failures;
  return out;
}

// The PodFilesystemSync fields of a report around the shared client (report_client.hpp).
class reporter {
 public:
  explicit reporter(const char* container)
      : container_(container), client_(std::string("agent ") + container) {
    ns_ = env_or_empty("POD_NAMESPACE");
    pod_ = env_or_empty("POD_NAME");
    pfs_ = env_or_empty("TIDESYNC_PFS_NAME");
  }

  void send(const report& r) {
    if (!client_.enabled()) return;
    json::object o;
    o.set("namespace", ns_);
    o.set("pod", pod_);
    o.set("podFilesystemSync", pfs_);
    o.set("container", container_);
    o.set("kind", r.kind);
    o.set("time", rfc3339::now());
    o.set("bytes", static_cast<int64_t>(r.bytes));
    o.set("files", static_cast<int64_t>(r.files));
    o.set("deleted", static_cast<int64_t>(r.deleted));
    o.set("result", r.result);
    o.set("message", shortened(r.message, 512));
    o.set("consecutiveFailures", static_cast<int64_t>(r.consecutive_failures));
    client_.send(json::value(std::move(o)));
  }

 private:
  const char* container_;
  std::string ns_, pod_, pfs_;
  report_client client_;
};

// ---- the remote ----

// The environment the locations are parsed with: REMOTE_* for the remote "remote", and with
// --encrypt the crypt remote "tidesync-crypt" over remote:BUCKET/PATH, whose keys come from
// the Secret's two variables only (the process environment is not changed).
env_lookup agent_env(const pfs_args& a) {
  env_lookup base = with_seed_remote(process_env());
  if (!a.encrypt) return base;
  const std::string inner = std::string(k_seed_remote) + ":" + a.remote;
  return [base, inner](const std::string& name) -> std::optional<std::string> {
    if (name.rfind(k_crypt_env, 0) != 0) return base(name);
    const std::string_view key = std::string_view(name).substr(k_crypt_env.size());
    if (key == "TYPE") return "crypt";
    if (key == "REMOTE") return inner;
    if (key == "FILENAME_ENCRYPTION") return "standard";
    if (key == "DIRECTORY_NAME_ENCRYPTION") return "true";
    if (key == "PASSWORD" || key == "PASSWORD2") return base(name);
    return std::nullopt;  // no _PASSWORD_FILE and the like: the Secret is the contract
  };
}

// The places a run uses. `remote` is what is synced (the crypt remote with --encrypt);
// `plain` is remote:BUCKET/PATH itself, where the marker lives.
struct places {
  location local, remote, plain;
};

// An exit code and a message for the report when the locations do not parse.
std::optional<int> resolve(const char* name, const pfs_args& a, places& out, std::string& why) {
  const env_lookup env = agent_env(a);
  auto fail = [&](std::string message) {
    std::fprintf(stderr, "tidesync agent %s: %s\n", name, message.c_str());
    why = std::move(message);
    return k_exit_usage;
  };
  if (a.encrypt) {
    std::vector<std::string> missing;
    for (const char* key : {k_password_env, k_password2_env}) {
      auto v = env(key);
      if (!v || v->empty()) missing.emplace_back(key);
    }
    if (!missing.empty()) {
      std::string list;
      for (const auto& m : missing)
        list += (list.empty() ? "" : " and ") + m;
      return fail("--encrypt: " + list +
                  " not set: they come from the Secret named by the PodFilesystemSync's "
                  "automaticEncryption.secretName (keys " +
                  k_password_env + " and " + k_password2_env +
                  ", rclone-obscured values), added to the container with envFrom");
    }
  }
  auto plain = parse_location(std::string(k_seed_remote) + ":" + a.remote, env);
  if (!plain) return fail("--remote: " + plain.error().message);
  if (a.encrypt) {
    auto crypt = parse_location(std::string(k_crypt_remote) + ":", env);
    if (!crypt) return fail("--encrypt: " + crypt.error().message);
    out.remote = *crypt;
    // The marker lives in plain text beside the encrypted tree: not a foreign file.
    out.remote.crypt.plain_top_level.emplace_back(k_marker);
  } else {
    out.remote = *plain;
  }
  out.plain = *plain;
  std::string local_text = a.local;
  if (local_text.find(':') != std::string::npos && local_text.front() != '/' &&
      local_text.front() != '.')
    local_text = "./" + local_text;
  auto local = parse_location(local_text, env);
  if (!local || local->kind != location_kind::local)
    return fail("--local must be a local directory");
  out.local = *local;
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

// What a listing holds: the marker, and how many other files.
struct remote_contents {
  bool marker = false;
  size_t files = 0;
};

expected<remote_contents> list_remote(const location& where) {
  http::loop loop;
  auto b = make_backend(where, loop, backend_options{});
  if (!b) return b.error();
  auto listing = (*b)->list();
  if (!listing) return listing.error();
  remote_contents out;
  for (const auto& e : *listing) {
    if (e.dir) continue;
    if (e.path == k_marker) {
      out.marker = true;
    } else {
      ++out.files;
    }
  }
  return out;
}

int run_restore(int argc, char** argv) {
  pfs_args a;
  if (auto code = parse_pfs(argc, argv, false, a)) return *code;
  reporter rep("restore");
  auto finish = [&](int code, const char* result, std::string message,
                    const run_summary* r = nullptr) {
    report out;
    if (r != nullptr) out = report_of("restore", *r, 0);
    out.kind = "restore";
    out.result = result;
    if (!message.empty()) out.message = std::move(message);
    out.consecutive_failures = code == 0 ? 0 : 1;
    rep.send(out);
    return code;
  };
  places p;
  std::string why;
  if (auto code = resolve("restore", a, p, why)) return finish(*code, "Failed", why);
  // The marker and the emptiness check, on the plain remote path (the marker is outside the
  // crypt).
  auto contents = list_remote(p.plain);
  if (!contents) {
    const std::string message =
        "cannot list " + a.remote + ": " + contents.error().message + "; nothing was changed";
    std::fprintf(stderr, "tidesync agent restore: %s\n", message.c_str());
    return finish(1, "Failed", message);
  }
  if (!contents->marker && a.skip_first_run) {
    std::printf(
        "agent restore: %s has no %s (no sidecar synced there yet) and --skip-first-run "
        "is set: skipping the first restore\n",
        a.remote.c_str(), k_marker);
    return finish(0, "Skipped", "no sidecar synced there yet (--skip-first-run)");
  }
  if (contents->files == 0) {
    std::printf("agent restore: %s is empty: nothing to restore (a new volume)\n",
                a.remote.c_str());
    return finish(0, "Skipped", "the remote path is empty: a new volume");
  }
  if (a.encrypt) {
    // Files there but none that decrypt: the wrong keys (an undecryptable remote would look
    // empty, and a sync from it would empty DIR).
    auto decrypted = list_remote(p.remote);
    if (!decrypted || decrypted->files == 0) {
      const std::string message =
          !decrypted
              ? "cannot list " + a.remote +
                    " through the crypt remote: " + decrypted.error().message +
                    "; nothing was changed"
              : "none of the " + std::to_string(contents->files) + " file(s) under " + a.remote +
                    " decrypt with " + k_password_env + " and " + k_password2_env +
                    " (a wrong password, or files not written with --encrypt); nothing "
                    "was changed";
      std::fprintf(stderr, "tidesync agent restore: %s\n", message.c_str());
      return finish(1, "Failed", message);
    }
  }
  const run_summary r = run_sync(make_job("restore", a, p.remote, p.local), p.remote, p.local);
  return finish(r.code, r.code == 0 ? "Succeeded" : "Failed", "", &r);
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

// What the fsnotify watcher ignores: the agents' own files, and the health file when it is
// inside the watched tree.
fswatch::ignore_fn sidecar_ignore(const pfs_args& a) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path health = fs::absolute(a.health_file, ec).lexically_normal();
  const fs::path local = fs::absolute(a.local, ec).lexically_normal();
  const auto rel = health.lexically_relative(local);
  if (ec || rel.empty() || *rel.begin() == "..") return fswatch::is_agent_file;
  const std::string name = health.filename().string();
  return [name](std::string_view n) {
    return fswatch::is_agent_file(n) || n == name || n == name + ".tmp";
  };
}

int run_sidecar(int argc, char** argv) {
  pfs_args a;
  if (auto code = parse_pfs(argc, argv, true, a)) return *code;
  // Before any thread starts (the reports' HTTP loop, the watcher): SIGTERM must reach the
  // loop's signal thread, which runs the last sync.
  block_stop_signals();
  reporter rep("sidecar");
  places p;
  std::string why;
  if (auto code = resolve("sidecar", a, p, why)) {
    report r;
    r.result = "Failed";
    r.message = why;
    r.consecutive_failures = 1;
    rep.send(r);
    return *code;
  }
  write_health(a.health_file, true);
  uint64_t failures = 0;
  bool marked = false;
  auto after_run = [&](const run_summary& r, run_kind kind) {
    if (r.code == 0) {
      failures = 0;
      if (a.unhealthy_after > 0) write_health(a.health_file, true);
      if (!marked) {
        if (auto m = write_marker(p.plain); m) {
          marked = true;
        } else {
          std::fprintf(stderr, "tidesync agent sidecar: cannot write the marker %s: %s\n", k_marker,
                       m.error().message.c_str());
        }
      }
    } else {
      ++failures;
      if (a.unhealthy_after > 0 && failures >= a.unhealthy_after) {
        std::fprintf(stderr, "tidesync agent sidecar: %llu failed syncs in a row: unhealthy\n",
                     static_cast<unsigned long long>(failures));
        write_health(a.health_file, false);
      }
    }
    rep.send(report_of(kind == run_kind::final ? "final" : "sync", r, failures));
  };
  const sync_job job = make_job("sidecar", a, p.local, p.remote);
  if (a.method == "fsnotify") {
    change_trigger t;
    t.root = a.local;
    t.min_interval = a.min_interval.value_or(std::chrono::minutes(a.max_per_minutes));
    t.ignore = sidecar_ignore(a);
    return run_sync_on_changes(job, t, p.local, p.remote, after_run);
  }
  return run_sync_scheduled(job, a.schedule, p.local, p.remote, after_run);
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
