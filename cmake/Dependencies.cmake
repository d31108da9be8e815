# Every third-party package, found once. See ../shared/TOOLCHAIN.md for the names.
find_package(Threads REQUIRED)
find_package(CURL REQUIRED)
find_package(simdjson CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(LibArchive REQUIRED)
find_package(zstd CONFIG REQUIRED)

# cpp-httplib: Debian ships it split (declarations in the header, code in libcpp-httplib.so);
# its pkg-config file carries the defines that must match the library's build.
find_package(PkgConfig REQUIRED)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
# libgit2 (the SharedVolume syncer's git source): only its headers at build time; the library
# is loaded on first use (runtime/mirror/detail/libgit2.hpp), by the soname of this version.
pkg_check_modules(LIBGIT2 REQUIRED libgit2)
string(REGEX MATCH "^[0-9]+\\.[0-9]+" TIDESYNC_LIBGIT2_ABI "${LIBGIT2_VERSION}")
set(TIDESYNC_LIBGIT2_SONAME "libgit2.so.${TIDESYNC_LIBGIT2_ABI}")

# CAF 0.17.6 has no CMake config and no .pc file on Debian: make imported targets.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
if(NOT TARGET CAF::core)
  add_library(CAF::core SHARED IMPORTED)
  set_target_properties(CAF::core PROPERTIES IMPORTED_LOCATION ${CAF_CORE_LIBRARY}
                        INTERFACE_INCLUDE_DIRECTORIES ${CAF_INCLUDE_DIR})
  add_library(CAF::io SHARED IMPORTED)
  set_target_properties(CAF::io PROPERTIES IMPORTED_LOCATION ${CAF_IO_LIBRARY}
                        INTERFACE_LINK_LIBRARIES CAF::core)
endif()

if(TIDESYNC_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()
if(TIDESYNC_BUILD_BENCH)
  find_package(benchmark CONFIG REQUIRED)
endif()
