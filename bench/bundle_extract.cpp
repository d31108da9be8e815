// Shared config bundles (issue 7, docs/benchmarks.md "Config bundle extraction"): a 1 GiB,
// 20,000-file bundle extracted three ways in the same run, each as its own process so wall time
// and peak RSS (wait4's ru_maxrss) are its own:
//   tar      `tar --zstd -xf BUNDLE -C DIR` (GNU tar piping through zstd), the reference;
//   unpack   archive::unpack_bundle in a forked child, fsync off: the extraction alone, the
//            same work tar does;
//   agent    `tidesync agent config init --store STORE --root DIR`: the agent's whole round
//            (copy the bundle out of a local-folder store, sha256, safe extraction with every
//            file and directory fsynced, promote), what a pod pays at start.
// The tree is generated (deterministic, text-like, zstd compresses it about 3x) and packed once
// with pack_bundle. Runs alternate the order of the three; `sync` runs before each.
//
// --out DIR puts the extracted trees elsewhere (e.g. /dev/shm: the extraction's CPU path without
// the disk's noise).
//
//   bundle_extract [--files N] [--bytes B] [--runs R] [--dir DIR] [--out DIR] [--tidesync PATH]
//                  [--keep]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/archive/bundle.hpp"
#include "runtime/archive/revision.hpp"
#include "scale_support.hpp"

namespace {

using namespace tidesync;
using namespace tidesync::bench;

struct options {
  int files = 20000;
  uint64_t bytes = 1ULL << 30;
  int runs = 3;
  std::string dir;
  std::string out;
  std::string tidesync;
  bool keep = false;
};

struct measured {
  double seconds = 0;
  double maxrss_mib = 0;
  int status = -1;
};

// Runs `fn` in a forked child (exit code: its return value) and measures it.
template <class Fn>
measured run_child(Fn fn) {
  measured m;
  auto t0 = clock_type::now();
  pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int st = 0;
  rusage ru{};
  if (wait4(pid, &st, 0, &ru) != pid) return m;
  m.seconds = seconds_since(t0);
  m.maxrss_mib = static_cast<double>(ru.ru_maxrss) / 1024.0;
  m.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return m;
}

measured run_command(const std::vector<std::string>& argv, const fs::path& log) {
  return run_child([&] {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    return 127;
  });
}

// Text-like content: words from a small vocabulary, chosen by a 64-bit LCG.
void write_tree(const options& o, const fs::path& root) {
  static const char* words[] = {"config",   "value",  "enabled", "timeout", "retry",   "owner",
                                "revision", "bucket", "region",  "memory",  "replica", "endpoint",
                                "true",     "false",  "0",       "1",       "42",      "3600",
                                "=",        ":",      "\n",      " ",       "#",       "-"};
  constexpr size_t n_words = sizeof(words) / sizeof(words[0]);
  uint64_t state = 0x9E3779B97F4A7C15ULL;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
  };
  const uint64_t avg = o.bytes / static_cast<uint64_t>(o.files);
  std::string buf;
  for (int i = 0; i < o.files; ++i) {
    fs::path d = root / ("dir-" + std::to_string(i / 100));
    if (i % 100 == 0) fs::create_directories(d);
    uint64_t size = avg / 2 + next() % avg;  // avg/2 .. 3avg/2
    buf.clear();
    while (buf.size() < size) {
      buf += words[next() % n_words];
      if (next() % 16 == 0) buf += std::to_string(next());  // some entropy
    }
    buf.resize(size);
    std::ofstream(d / ("file-" + std::to_string(i) + ".conf"), std::ios::binary) << buf;
  }
}

uint64_t tree_bytes(const fs::path& root) {
  uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) total += e.file_size();
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  o.tidesync = default_tidesync();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--keep") {
      o.keep = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr,
                   "usage: bundle_extract [--files N] [--bytes B] [--runs R] [--dir DIR] "
                   "[--tidesync PATH] [--keep]\n");
      return 2;
    }
    const char* v = argv[++i];
    if (a == "--files")
      o.files = std::atoi(v);
    else if (a == "--bytes")
      o.bytes = std::strtoull(v, nullptr, 10);
    else if (a == "--runs")
      o.runs = std::atoi(v);
    else if (a == "--dir")
      o.dir = v;
    else if (a == "--out")
      o.out = v;
    else if (a == "--tidesync")
      o.tidesync = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (o.files <= 0 || o.runs <= 0 || o.bytes < static_cast<uint64_t>(o.files)) return 2;
  fs::path dir = o.dir;
  if (dir.empty()) {
    char tmpl[] = "/var/tmp/tidesync-bundle-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return 1;
    dir = tmpl;
  }
  std::fprintf(stderr, "working in %s\n", dir.c_str());

  // 1. The tree and its bundle, once; the store holds latest.json and the bundle.
  fs::path tree = dir / "tree", store = dir / "store";
  fs::path bundle = store / "revisions" / "2026-01-01T00-00-00Z.tar.zst";
  if (!fs::exists(bundle)) {
    auto t0 = clock_type::now();
    write_tree(o, tree);
    std::fprintf(stderr, "generated %d files, %.1f MiB in %.1f s\n", o.files,
                 static_cast<double>(tree_bytes(tree)) / (1 << 20), seconds_since(t0));
    fs::create_directories(bundle.parent_path());
    t0 = clock_type::now();
    auto packed = archive::pack_bundle(tree, bundle);
    if (!packed) {
      std::fprintf(stderr, "pack: %s\n", packed.error().message.c_str());
      return 1;
    }
    std::printf("# packed %" PRIu64 " entries, %.1f MiB of files into %.1f MiB in %.1f s\n",
                packed->entries, static_cast<double>(packed->content_bytes) / (1 << 20),
                static_cast<double>(packed->archive_bytes) / (1 << 20), seconds_since(t0));
    archive::latest l{"2026-01-01T00-00-00Z", packed->sha256,
                      std::chrono::sys_seconds{std::chrono::seconds{1767225600}}};
    std::ofstream(store / "latest.json") << archive::render_latest(l);
    fs::remove_all(tree);  // only the bundle is needed from here on
  }
  std::printf("# bundle %.1f MiB, %d files; %d runs; extracting into %s; %s\n",
              static_cast<double>(fs::file_size(bundle)) / (1 << 20), o.files, o.runs,
              o.out.empty() ? dir.c_str() : o.out.c_str(), loadavg().c_str());

  std::vector<double> t_tar, t_unpack, t_agent, r_tar, r_unpack, r_agent;
  bool ok = true;
  for (int run = 1; run <= o.runs; ++run) {
    for (int k = 0; k < 3; ++k) {
      int which = (k + run) % 3;  // rotate the order
      fs::path out = (o.out.empty() ? dir : fs::path(o.out)) / ("out-" + std::to_string(which));
      fs::remove_all(out);
      sync();
      measured m;
      if (which == 0) {
        fs::create_directories(out);
        m = run_command({"tar", "--zstd", "-xf", bundle.string(), "-C", out.string()},
                        dir / "tar.log");
        t_tar.push_back(m.seconds);
        r_tar.push_back(m.maxrss_mib);
      } else if (which == 1) {
        m = run_child([&] {
          archive::unpack_limits lim;
          lim.max_bytes = 4ULL << 30;
          lim.fsync = false;
          auto r = archive::unpack_bundle(bundle, out, lim);
          if (!r) std::fprintf(stderr, "unpack: %s\n", r.error().message.c_str());
          return r ? 0 : 1;
        });
        t_unpack.push_back(m.seconds);
        r_unpack.push_back(m.maxrss_mib);
      } else {
        m = run_command({o.tidesync, "agent", "config", "init", "--store", store.string(), "--root",
                         out.string(), "--max-bytes", "4G"},
                        dir / "agent.log");
        t_agent.push_back(m.seconds);
        r_agent.push_back(m.maxrss_mib);
      }
      const char* names[] = {"tar", "unpack", "agent"};
      std::printf("run %d %-6s %7.2f s  peak RSS %6.1f MiB  exit %d\n", run, names[which],
                  m.seconds, m.maxrss_mib, m.status);
      std::fflush(stdout);
      if (m.status != 0) ok = false;
      fs::remove_all(out);
    }
  }
  std::printf(
      "median of %d: tar --zstd -xf %.2f s (%.1f MiB) | unpack_bundle %.2f s (%.1f MiB) | agent "
      "init %.2f s (%.1f MiB)\n",
      o.runs, median(t_tar), median(r_tar), median(t_unpack), median(r_unpack), median(t_agent),
      median(r_agent));
  if (!o.keep && o.dir.empty()) fs::remove_all(dir);
  return ok ? 0 : 1;
}
