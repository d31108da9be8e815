// The Dockerfile, checked where no Docker engine runs (CI has none): its runtime stage installs
// the Debian package of every shared library the built binary links (ELF NEEDED) or loads
// (libcurl, libgit2), and rclone; it runs as the non-root user the Deployment expects; and the
// build context (.dockerignore) holds what CMake needs to configure the release build.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/apiserver/manifest.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tidesync;
using namespace tidesync::test;

const fs::path k_source = TIDESYNC_SOURCE_DIR;

// The Dockerfile's logical lines (continuations joined), by stage: stage 0 is the first FROM.
std::vector<std::vector<std::string>> stages() {
  std::istringstream in(read_file(k_source / "Dockerfile"));
  std::vector<std::vector<std::string>> out;
  std::string line, joined;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const bool more = !line.empty() && line.back() == '\\';
    joined += more ? line.substr(0, line.size() - 1) + " " : line;
    if (more) continue;
    if (joined.rfind("FROM ", 0) == 0) out.emplace_back();
    if (!out.empty()) out.back().push_back(joined);
    joined.clear();
  }
  return out;
}

// The packages of the `apt-get install` in a stage.
std::set<std::string> installed(const std::vector<std::string>& stage) {
  std::set<std::string> out;
  for (const auto& l : stage) {
    const auto at = l.find("apt-get install");
    if (at == std::string::npos) continue;
    std::istringstream words(l.substr(at + 15));
    std::string w;
    while (words >> w && w != "&&")
      if (w[0] != '-') out.insert(w);
  }
  return out;
}

// The Debian package that ships a shared library of this machine.
std::string package_of(const std::string& soname) {
  for (const char* dir : {"/usr/lib/x86_64-linux-gnu/", "/lib/x86_64-linux-gnu/"}) {
    const fs::path p = std::string(dir) + soname;
    if (!fs::exists(p)) continue;
    for (const auto& candidate : {p, fs::canonical(p)}) {
      for (const std::string& alt :
           {candidate.string(),
            std::regex_replace(candidate.string(), std::regex("^/usr/lib/"), "/lib/")}) {
        auto r = run({"dpkg", "-S", alt});
        if (r.status == 0) return r.output.substr(0, r.output.find(':'));
      }
    }
  }
  return {};
}

TEST(dockerfile, has_a_build_and_a_slim_runtime_stage) {
  auto s = stages();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0][0], "FROM debian:12 AS build");
  EXPECT_EQ(s[1][0], "FROM debian:12-slim");
  bool builds = false;
  for (const auto& l : s[0])
    builds |= l.find("cmake --build --preset release --target tidesync") != std::string::npos;
  EXPECT_TRUE(builds);
}

TEST(dockerfile, the_runtime_stage_installs_every_library_the_binary_needs) {
  if (run({"which", "readelf", "dpkg"}).status != 0) GTEST_SKIP() << "needs readelf and dpkg";
  auto s = stages();
  ASSERT_EQ(s.size(), 2u);
  const auto runtime = installed(s[1]);
  auto elf = run({"readelf", "-d", TIDESYNC_BINARY});
  ASSERT_EQ(elf.status, 0) << elf.output;
  std::vector<std::string> sonames;
  static const std::regex needed(R"(\(NEEDED\)\s+Shared library: \[([^\]]+)\])");
  for (std::sregex_iterator it(elf.output.begin(), elf.output.end(), needed), end; it != end; ++it)
    sonames.push_back((*it)[1].str());
  ASSERT_GE(sonames.size(), 5u) << elf.output;
  // Loaded with dlopen when first used (runtime/http/curl_lazy.cpp, runtime/mirror).
  sonames.push_back("libcurl.so.4");
  sonames.push_back("libgit2.so.1.5");
  // Every Debian image has these (Essential: yes).
  const std::set<std::string> essential{"libc6", "libgcc-s1"};
  for (const auto& so : sonames) {
    const std::string pkg = package_of(so);
    ASSERT_FALSE(pkg.empty()) << "no Debian package ships " << so;
    if (essential.count(pkg)) continue;
    EXPECT_TRUE(runtime.count(pkg)) << "the Dockerfile's runtime stage does not install " << pkg
                                    << " (" << so << ", which tidesync needs)";
  }
  for (const char* p : {"rclone", "ca-certificates"})
    EXPECT_TRUE(runtime.count(p)) << p;
  // Nothing the runtime does not need: no compilers, no -dev packages.
  for (const auto& p : runtime)
    EXPECT_EQ(p.find("-dev"), std::string::npos) << p;
}

TEST(dockerfile, runs_as_the_deployments_non_root_user) {
  auto s = stages();
  ASSERT_EQ(s.size(), 2u);
  std::string user, entrypoint;
  for (const auto& l : s[1]) {
    if (l.rfind("USER ", 0) == 0) user = l.substr(5);
    if (l.rfind("ENTRYPOINT ", 0) == 0) entrypoint = l.substr(11);
  }
  EXPECT_EQ(entrypoint, "[\"/usr/local/bin/tidesync\"]");
  auto docs = apiserver::load_manifests((k_source / "deploy/base/deployment.yaml").string());
  ASSERT_TRUE(docs.has_value()) << docs.error().message;
  const auto* sc = docs->at(0).object.at_path({"spec", "template", "spec", "securityContext"});
  ASSERT_NE(sc, nullptr);
  EXPECT_TRUE(sc->get_bool("runAsNonRoot"));
  EXPECT_EQ(user, std::to_string(sc->get_int("runAsUser")) + ":" +
                      std::to_string(sc->get_int("runAsGroup")));
  EXPECT_NE(sc->get_int("runAsUser"), 0);
}

// The context .dockerignore lets through is enough for the build stage's CMake configure.
TEST(dockerfile, the_build_context_configures) {
  char tmpl[] = "/var/tmp/tidesync-dockerfile-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path ctx = tmpl;
  // .dockerignore: "*" then "!path" lines; copy exactly the allowed paths.
  std::istringstream in(read_file(k_source / ".dockerignore"));
  std::string line;
  std::vector<std::string> allowed;
  while (std::getline(in, line))
    if (!line.empty() && line[0] == '!') allowed.push_back(line.substr(1));
  ASSERT_FALSE(allowed.empty());
  for (auto a : allowed) {
    if (a.back() == '/') a.pop_back();
    fs::copy(k_source / a, ctx / a, fs::copy_options::recursive);
  }
  // Every COPY of the build stage names something in the context.
  const auto s = stages();
  ASSERT_FALSE(s.empty());
  for (const auto& l : s[0]) {
    if (l.rfind("COPY ", 0) != 0) continue;
    std::istringstream words(l.substr(5));
    std::vector<std::string> w{std::istream_iterator<std::string>(words), {}};
    for (size_t i = 0; i + 1 < w.size(); ++i)
      EXPECT_TRUE(fs::exists(ctx / w[i])) << l << ": " << w[i] << " is not in the build context";
  }
  auto r = run({"sh", "-c",
                "cd '" + ctx.string() +
                    "' && cmake --preset release -DTIDESYNC_BUILD_TESTS=OFF "
                    "-DTIDESYNC_BUILD_BENCH=OFF"});
  EXPECT_EQ(r.status, 0) << r.output;
  std::error_code ec;
  fs::remove_all(ctx, ec);
}

}  // namespace
