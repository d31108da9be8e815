// Subcommands of the `tidesync` binary. Each takes its own argv (argv[0] is the subcommand
// name) and returns the process exit code: 0 success, 1 failure, 2 bad usage.
#pragma once

namespace tidesync::cli {

int run_version(int argc, char** argv);
int run_simulate(int argc, char** argv);
int run_controller(int argc, char** argv);
int run_sync(int argc, char** argv);
int run_copy(int argc, char** argv);
int run_sync_to_remote(int argc, char** argv);
int run_remote_to_local_sync(int argc, char** argv);
int run_agent(int argc, char** argv);
int run_agent_wait(int argc, char** argv);    // `tidesync agent wait`
int run_agent_config(int argc, char** argv);  // `tidesync agent config init|watch`
int run_agent_pfs(int argc, char** argv);     // `tidesync agent restore|sidecar|health`
int run_agent_mirror(int argc, char** argv);  // `tidesync agent mirror`
int run_config(int argc, char** argv);        // `tidesync config publish|get`

}  // namespace tidesync::cli
