#include <cstdio>
#include <cstring>

#include "runtime/cli/commands.hpp"

namespace tidesync::cli {

int run_version(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::printf(
          "Usage: tidesync version\n\nPrints the version and the git commit it was built "
          "from.\n");
      return 0;
    }
    std::fprintf(stderr, "tidesync version: unexpected argument \"%s\" (it takes none)\n", argv[i]);
    return 2;
  }
  std::printf("tidesync %s (%s)\n", TIDESYNC_VERSION, TIDESYNC_GIT_VERSION);
  return 0;
}

}  // namespace tidesync::cli
