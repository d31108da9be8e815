#include "runtime/mirror/detail/libgit2.hpp"

#include <dlfcn.h>

#include <mutex>
#include <string>

#ifndef TIDESYNC_LIBGIT2_SONAME
#error "TIDESYNC_LIBGIT2_SONAME is set by runtime/CMakeLists.txt from libgit2's pkg-config version"
#endif

namespace tidesync::mirror::detail {

expected<const libgit2_api*> libgit2() {
  static std::once_flag once;
  static libgit2_api api;
  static std::string problem;
  std::call_once(once, [] {
    void* h = ::dlopen(TIDESYNC_LIBGIT2_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* why = ::dlerror();
      problem = std::string("cannot load libgit2 (") + TIDESYNC_LIBGIT2_SONAME +
                "): " + (why != nullptr ? why : "not found") +
                "; install it (Debian 12: apt-get install libgit2-1.5) — the git source needs it";
      return;
    }
#define TIDESYNC_LIBGIT2_LOAD(name)                                                         \
  api.name = reinterpret_cast<decltype(&::name)>(::dlsym(h, #name));                        \
  if (api.name == nullptr) {                                                                \
    problem = std::string(TIDESYNC_LIBGIT2_SONAME) +                                        \
              " has no " #name " (tidesync was built against libgit2 " LIBGIT2_VERSION ")"; \
    return;                                                                                 \
  }
    TIDESYNC_LIBGIT2_FUNCTIONS(TIDESYNC_LIBGIT2_LOAD)
#undef TIDESYNC_LIBGIT2_LOAD
    if (api.git_libgit2_init() < 0) {
      problem = "libgit2 failed to initialise";
      return;
    }
  });
  if (!problem.empty()) return make_error(errc::config_error, problem);
  return &api;
}

}  // namespace tidesync::mirror::detail
