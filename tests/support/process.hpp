// Child processes for integration tests: run a command with a deadline, or keep a server
// running and read its output line by line; always stopped by PID (SIGTERM, then SIGKILL).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tidesync::test {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// A child process with stdout and stderr on one pipe, stopped by its PID.
class child {
 public:
  child(const std::vector<std::string>& argv,
        const std::vector<std::pair<std::string, std::string>>& env = {}) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      ::dup2(fds[1], 2);
      for (const auto& [k, v] : env)
        ::setenv(k.c_str(), v.c_str(), 1);
      std::vector<char*> args;
      for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    fd_ = fds[0];
  }
  ~child() {
    stop();
    if (fd_ >= 0) ::close(fd_);
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  // Reads until a line satisfies `pred`, EOF, or the deadline; returns that line or "".
  std::string read_until(const std::function<bool(const std::string&)>& pred,
                         std::chrono::milliseconds limit = 10s) {
    auto deadline = clock_type::now() + limit;
    for (;;) {
      size_t nl;
      while ((nl = buffer_.find('\n')) != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        output_ += line + "\n";
        if (pred(line)) return line;
      }
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
      if (left.count() <= 0 || fd_ < 0) return {};
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) {
        ::close(fd_);
        fd_ = -1;
        output_ += buffer_;  // a last line without a newline (kubectl -o jsonpath)
        buffer_.clear();
        continue;
      }
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }
  [[nodiscard]] const std::string& output() const { return output_; }

  [[nodiscard]] pid_t pid() const { return pid_; }
  // SIGKILL now (a crash: no cleanup runs) and reap it.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    finish(10s);
  }
  // Whether it still runs (reaps it when it has exited).
  bool running() {
    if (pid_ <= 0) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == 0) return true;
    pid_ = -1;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return false;
  }

  // SIGTERM, then SIGKILL after `grace`. Returns the exit status (-1: signalled/killed).
  int stop(std::chrono::milliseconds grace = 10s) {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    return finish(grace);
  }
  // Waits for the exit (SIGKILL after `limit`).
  int finish(std::chrono::milliseconds limit) {
    if (pid_ <= 0) return status_;
    auto deadline = clock_type::now() + limit;
    int st = 0;
    while (::waitpid(pid_, &st, WNOHANG) == 0) {
      if (clock_type::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
        return status_ = -1;
      }
      std::this_thread::sleep_for(10ms);  // polling the child's state, with a deadline
    }
    pid_ = -1;
    return status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  int status_ = -1;
  std::string buffer_, output_;
};

struct run_result {
  int status = -1;
  std::string output;
};

// Runs a command to completion (with a deadline), capturing stdout and stderr together.
inline run_result run(const std::vector<std::string>& argv,
                      const std::vector<std::pair<std::string, std::string>>& env = {},
                      std::chrono::milliseconds limit = 30s) {
  child c(argv, env);
  auto start = clock_type::now();
  c.read_until([](const std::string&) { return false; }, limit);  // until EOF
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(limit - (clock_type::now() - start));
  int status = c.finish(std::max(left, std::chrono::milliseconds(1000)));
  return {status, c.output()};
}

// Polls `probe` until it returns true or `limit` passes (a deadline, not a sleep).
inline bool eventually(const std::function<bool()>& probe, std::chrono::milliseconds limit,
                       std::chrono::milliseconds every = 100ms) {
  auto deadline = clock_type::now() + limit;
  for (;;) {
    if (probe()) return true;
    if (clock_type::now() >= deadline) return false;
    std::this_thread::sleep_for(every);
  }
}

}  // namespace tidesync::test
