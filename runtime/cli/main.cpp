// tidesync: one binary, one subcommand per job.
#include <cstdio>
#include <cstring>
#include <string_view>

#include "runtime/cli/commands.hpp"

namespace {

struct command {
  const char* name;
  const char* summary;
  int (*run)(int, char**);
};

constexpr command commands[] = {
    {"controller", "run the Kubernetes controller (BucketSyncPolicy, BucketSync)",
     tidesync::cli::run_controller},
    {"simulate", "run an embedded Kubernetes API server (and the controller) on 127.0.0.1",
     tidesync::cli::run_simulate},
    {"sync", "make DST equal to SRC (local or S3)", tidesync::cli::run_sync},
    {"copy", "copy new and changed files from SRC to DST", tidesync::cli::run_copy},
    {"sync-to-remote", "make the REMOTE_* remote's BUCKET/PATH equal to a local directory",
     tidesync::cli::run_sync_to_remote},
    {"remote-to-local-sync", "make a local directory equal to the REMOTE_* remote's BUCKET/PATH",
     tidesync::cli::run_remote_to_local_sync},
    {"agent", "commands that run inside DataSync Jobs and workspace pods",
     tidesync::cli::run_agent},
    {"config", "publish and read SharedConfig bundles through the config API",
     tidesync::cli::run_config},
    {"version", "print the version", tidesync::cli::run_version},
};

void usage(std::FILE* out) {
  std::fprintf(out,
               "tidesync moves data between object storage, volumes and pods on schedule and "
               "under policy.\n\nUsage: tidesync COMMAND [FLAGS...]\n\nCommands:\n");
  for (const auto& c : commands)
    std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(out, "\nRun 'tidesync COMMAND --help' for a command's flags.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  std::string_view name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    usage(stdout);
    return 0;
  }
  if (name == "--version") name = "version";
  for (const auto& c : commands) {
    if (name == c.name) return c.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "tidesync: unknown command \"%s\"\n\n", argv[1]);
  usage(stderr);
  return 2;
}
