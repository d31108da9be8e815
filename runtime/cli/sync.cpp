// `tidesync sync SRC DST` and `tidesync copy SRC DST`: the native engine (runtime/transfer/
// engine.hpp) with rclone's flags and exit codes. docs/sync.md describes them.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/cli/commands.hpp"
#include "runtime/transfer/engine.hpp"
#include "runtime/transfer/remote.hpp"

namespace tidesync::cli {
namespace {

using namespace tidesync::transfer;

void usage(std::FILE* out, const char* name) {
  std::fprintf(
      out,
      "Usage: tidesync %s SRC DST [FLAGS]\n\n"
      "%s\n\n"
      "SRC and DST are local directories or NAME:bucket/prefix, where the remote NAME is\n"
      "configured by rclone's environment variables: RCLONE_CONFIG_NAME_TYPE=s3,\n"
      "_ACCESS_KEY_ID, _SECRET_ACCESS_KEY, _ENDPOINT, _REGION, _PROVIDER, _FORCE_PATH_STYLE.\n\n"
      "Flags:\n"
      "  --dry-run                  print the plan (one line per action), change nothing\n"
      "  --checksum                 compare by checksum (MD5/ETag) instead of mtime\n"
      "  --size-only                compare by size only\n"
      "  --max-delete N             refuse to delete more than N files\n"
      "  --include PATTERN          only transfer matching files (repeatable)\n"
      "  --exclude PATTERN          skip matching files (repeatable)\n"
      "  --transfers N              files in flight (default 4)\n"
      "  --error-on-no-transfer     exit 9 when no file was copied\n"
      "  --force-delete-local-dir   allow deleting in a local destination the safety valves\n"
      "                             protect (empty source, system directory, foreign owner)\n"
      "  --force-delete-remote-dir  allow an empty source to empty a remote destination\n"
      "  -v, --verbose              one line per file copied or deleted\n\n"
      "Exit codes: 0 done, 1 failed (nothing deleted when a copy failed), 2 bad usage,\n"
      "9 nothing transferred (with --error-on-no-transfer).\n",
      name,
      std::strcmp(name, "sync") == 0
          ? "Make DST equal to SRC: copy new and changed files, then delete files only in DST\n"
            "(only when every copy succeeded)."
          : "Copy new and changed files from SRC to DST; delete nothing.");
}

bool parse_number(const char* text, uint64_t& out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || text[0] == '-') return false;
  out = v;
  return true;
}

int run(mode m, int argc, char** argv) {
  const char* name = m == mode::sync ? "sync" : "copy";
  engine_options opts;
  opts.m = m;
  bool error_on_no_transfer = false;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    std::string value;
    bool has_value = false;
    // --flag=value form
    if (a.rfind("--", 0) == 0) {
      if (auto eq = a.find('='); eq != std::string_view::npos) {
        value = std::string(a.substr(eq + 1));
        a = a.substr(0, eq);
        has_value = true;
      }
    }
    auto take = [&](std::string& out) -> bool {
      if (has_value) {
        out = value;
        return true;
      }
      if (i + 1 >= argc) {
        std::fprintf(stderr, "tidesync %s: %s needs a value\n", name, std::string(a).c_str());
        return false;
      }
      out = argv[++i];
      return true;
    };
    if (a == "-h" || a == "--help") {
      usage(stdout, name);
      return 0;
    } else if (a == "--dry-run") {
      opts.dry_run = true;
    } else if (a == "--checksum" || a == "-c") {
      opts.checksum = true;
    } else if (a == "--size-only") {
      opts.size_only = true;
    } else if (a == "-v" || a == "--verbose") {
      opts.verbose = true;
    } else if (a == "--error-on-no-transfer") {
      error_on_no_transfer = true;
    } else if (a == "--force-delete-local-dir") {
      opts.force_delete_local_dir = true;
    } else if (a == "--force-delete-remote-dir") {
      opts.force_delete_remote_dir = true;
    } else if (a == "--include" || a == "--exclude") {
      std::string v;
      if (!take(v)) return 2;
      (a == "--include" ? opts.includes : opts.excludes).push_back(v);
    } else if (a == "--max-delete" || a == "--transfers") {
      std::string v;
      if (!take(v)) return 2;
      uint64_t n = 0;
      if (!parse_number(v.c_str(), n) || (a == "--transfers" && (n == 0 || n > 256))) {
        std::fprintf(
            stderr, "tidesync %s: %s wants a %s, not \"%s\"\n", name, std::string(a).c_str(),
            a == "--transfers" ? "number from 1 to 256" : "non-negative number", v.c_str());
        return 2;
      }
      if (a == "--max-delete") {
        opts.max_delete = n;
      } else {
        opts.transfers = static_cast<int>(n);
      }
    } else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "tidesync %s: unknown flag %s (see tidesync %s --help)\n", name,
                   std::string(a).c_str(), name);
      return 2;
    } else {
      positional.emplace_back(a);
    }
  }
  if (positional.size() != 2) {
    std::fprintf(stderr, "tidesync %s: want SRC and DST, got %zu argument(s)\n\n", name,
                 positional.size());
    usage(stderr, name);
    return 2;
  }
  if (opts.checksum && opts.size_only) {
    std::fprintf(stderr, "tidesync %s: --checksum and --size-only exclude each other\n", name);
    return 2;
  }
  const auto env = process_env();
  auto src = parse_location(positional[0], env);
  if (!src) {
    std::fprintf(stderr, "tidesync %s: source: %s\n", name, src.error().message.c_str());
    return 2;
  }
  auto dst = parse_location(positional[1], env);
  if (!dst) {
    std::fprintf(stderr, "tidesync %s: destination: %s\n", name, dst.error().message.c_str());
    return 2;
  }

  auto r = run_engine(*src, *dst, opts);
  if (!r) {
    std::fprintf(stderr, "tidesync %s: %s; nothing was changed\n", name, r.error().message.c_str());
    return 1;
  }
  for (const auto& e : r->errors)
    std::fprintf(stderr, "tidesync %s: error: %s\n", name, e.c_str());
  if (r->deletes_skipped) {
    std::fprintf(stderr,
                 "tidesync %s: %zu file(s) failed to copy: nothing was deleted (the next run "
                 "retries)\n",
                 name, r->failed);
  }
  std::printf("%s%s: copied %zu file(s), %" PRIu64
              " bytes; deleted %zu; unchanged %zu; "
              "failed %zu; %.3f s\n",
              name,
              opts.dry_run ? " (dry run, nothing changed; counts are what would be done)" : "",
              r->copied, r->bytes, r->deleted, r->unchanged, r->failed, r->seconds);
  std::fflush(stdout);
  if (r->failed > 0) return 1;
  if (error_on_no_transfer && r->copied == 0) return 9;
  return 0;
}

}  // namespace

int run_sync(int argc, char** argv) {
  return run(mode::sync, argc, argv);
}
int run_copy(int argc, char** argv) {
  return run(mode::copy, argc, argv);
}

}  // namespace tidesync::cli
