// `tidesync sync SRC DST`, `tidesync copy SRC DST`, and the seed's `tidesync sync-to-remote
// -s LOCAL -d REMOTE_PATH` / `tidesync remote-to-local-sync -s REMOTE_PATH -d LOCAL`: the
// native engine (runtime/transfer/engine.hpp) with rclone's flags and exit codes, a progress
// display, --schedule for periodic runs, and --engine=rclone (the runs themselves:
// sync_runner.cpp, shared with the pod agents). docs/sync.md describes them.

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/cli/commands.hpp"
#include "runtime/cli/flag_arg.hpp"
#include "runtime/cli/sync_runner.hpp"
#include "runtime/transfer/engine.hpp"
#include "runtime/transfer/remote.hpp"
#include "runtime/transfer/safety.hpp"
#include "runtime/transfer/token_bucket.hpp"

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
    auto [flag, value, has_value] = split_flag(argv[i]);
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
  sync_job job;
  job.name = name;
  job.opts = a.opts;
  job.error_on_no_transfer = a.error_on_no_transfer;
  job.force_progress = a.force_progress;
  job.quiet = a.quiet;
  job.stats_interval = a.stats_interval;
  job.use_rclone = a.use_rclone;
  job.rclone_positional = a.positional;
  job.rclone_flags = a.rclone_flags;
  job.rclone_seed_env = seed_command(cmd);
  if (!a.schedule.empty()) return run_sync_scheduled(job, a.schedule, *src, *dst);
  return run_sync_once(job, *src, *dst);
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
