// A Git repository made with the git CLI for tests, isolated from the machine's configuration
// (HOME is the test's, no system config, a fixed author).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/files.hpp"
#include "tests/support/process.hpp"

namespace tidesync::test {

class git_repo {
 public:
  git_repo(std::filesystem::path dir, const std::filesystem::path& home) : dir_(std::move(dir)) {
    env_ = {{"HOME", home.string()},        {"GIT_CONFIG_NOSYSTEM", "1"},
            {"GIT_AUTHOR_NAME", "Test"},    {"GIT_AUTHOR_EMAIL", "test@example.com"},
            {"GIT_COMMITTER_NAME", "Test"}, {"GIT_COMMITTER_EMAIL", "test@example.com"}};
    std::filesystem::create_directories(dir_);
    git({"init", "-q", "-b", "main"});
  }
  // Runs git in the repository; its output (the test fails on a non-zero exit).
  std::string git(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"git", "-C", dir_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv, env_, std::chrono::seconds(30));
    EXPECT_EQ(r.status, 0) << "git " << args.front() << ": " << r.output;
    return r.output;
  }
  // Writes the files ("" content deletes one), commits them all; returns the commit id.
  std::string commit(const std::map<std::string, std::string>& files, const std::string& msg) {
    for (const auto& [path, content] : files) {
      if (content.empty())
        std::filesystem::remove(dir_ / path);
      else
        write_file(dir_ / path, content);
    }
    git({"add", "-A"});
    git({"commit", "-q", "-m", msg});
    return head();
  }
  std::string head() { return git({"rev-parse", "HEAD"}).substr(0, 40); }
  // The working tree's files (no .git).
  std::map<std::string, std::string> tree_files() {
    auto t = files(dir_);
    for (auto it = t.begin(); it != t.end();)
      it = it->first.rfind(".git", 0) == 0 ? t.erase(it) : std::next(it);
    return t;
  }
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::vector<std::pair<std::string, std::string>> env_;
};

}  // namespace tidesync::test
