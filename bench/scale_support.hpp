// What the scale benchmarks share (bench/controller_scale.cpp, bench/datasync_scale.cpp):
// child processes started and stopped by PID, /proc samples of CPU and memory, and starting
// `tidesync simulate` (API server only) in a fresh data directory. Header-only: each benchmark
// is one executable.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tidesync::bench {

using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

inline double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

// Polls `pred` until it is true or `timeout` passes: waiting on a condition owned by another
// process (a log line, a file), where no notification exists.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  while (!pred()) {
    if (clock_type::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// --- child processes ---------------------------------------------------------------------

struct child {
  pid_t pid = -1;
  int pidfd = -1;
};

// fork + exec with stdout and stderr redirected (-1: inherit). `env_set`/`env_unset` adjust
// the child's environment.
inline child spawn(const std::vector<std::string>& argv, int out_fd, int err_fd,
                   const std::vector<std::pair<std::string, std::string>>& env_set,
                   const std::vector<std::string>& env_unset) {
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    if (out_fd >= 0) dup2(out_fd, 1);
    if (err_fd >= 0) dup2(err_fd, 2);
    for (const auto& [k, v] : env_set)
      setenv(k.c_str(), v.c_str(), 1);
    for (const auto& k : env_unset)
      unsetenv(k.c_str());
    // The parent blocks nothing, but be explicit: the children handle SIGTERM themselves.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  child c;
  c.pid = pid;
  c.pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  return c;
}

// True when the child exited (reaped) within `timeout`.
inline bool wait_exit(child& c, std::chrono::milliseconds timeout, int* status = nullptr) {
  if (c.pid < 0) return true;
  pollfd p{c.pidfd, POLLIN, 0};
  if (c.pidfd >= 0 && poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  int st = 0;
  if (waitpid(c.pid, &st, 0) != c.pid) return false;
  if (status) *status = st;
  if (c.pidfd >= 0) close(c.pidfd);
  c.pid = -1;
  c.pidfd = -1;
  return true;
}

inline bool exited(child& c) {
  if (c.pid < 0) return true;
  pollfd p{c.pidfd, POLLIN, 0};
  return c.pidfd >= 0 && poll(&p, 1, 0) > 0;
}

// SIGTERM, then SIGKILL after `grace`. Only ever the PID this program started.
inline void stop_child(child& c, const char* what, std::chrono::milliseconds grace) {
  if (c.pid < 0) return;
  kill(c.pid, SIGTERM);
  if (!wait_exit(c, grace)) {
    std::fprintf(stderr, "  %s (pid %d) did not stop on SIGTERM within %lld ms: SIGKILL\n", what,
                 c.pid, static_cast<long long>(grace.count()));
    kill(c.pid, SIGKILL);
    wait_exit(c, std::chrono::seconds(10));
  }
}

// --- /proc ---------------------------------------------------------------------------------

struct proc_sample {
  double cpu_s = 0;  // utime + stime
  double rss_mib = 0;
  double hwm_mib = 0;
  int threads = 0;
};

inline proc_sample sample(pid_t pid) {
  proc_sample s;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  auto close_paren = line.rfind(')');
  if (close_paren != std::string::npos) {
    std::istringstream rest(line.substr(close_paren + 2));
    std::vector<std::string> f;
    std::string tok;
    while (rest >> tok)
      f.push_back(tok);
    // rest starts at field 3 (state): utime is field 14, stime 15.
    if (f.size() > 13) {
      double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
      s.cpu_s = (std::stod(f[11]) + std::stod(f[12])) / tick;
    }
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    auto kib = [&] { return std::stod(line.substr(line.find(':') + 1)) / 1024.0; };
    if (line.rfind("VmRSS:", 0) == 0) s.rss_mib = kib();
    if (line.rfind("VmHWM:", 0) == 0) s.hwm_mib = kib();
    if (line.rfind("Threads:", 0) == 0) s.threads = std::stoi(line.substr(8));
  }
  return s;
}

inline std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

inline std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline double rusage_cpu_self() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](timeval t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// `tidesync simulate --no-controller --no-kubelet` (only the API server) in `dir`, logging every
// request at debug level to `server_log`. Returns the child once it printed "API server on";
// pid -1 (and the child stopped) otherwise.
inline child start_api_server(const std::string& tidesync, const std::string& crds,
                              const fs::path& dir, const fs::path& server_log) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return {};
  int slog = open(server_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  child sim = spawn(
      {tidesync, "simulate", "--no-controller", "--no-kubelet", "--data-dir", dir.string(), crds},
      pipefd[1], slog, {{"TIDESYNC_LOG_LEVEL", "debug"}}, {});
  close(pipefd[1]);
  close(slog);
  std::string ready;
  auto deadline = clock_type::now() + std::chrono::seconds(60);
  char buf[512];
  while (ready.find('\n') == std::string::npos && clock_type::now() < deadline) {
    pollfd p{pipefd[0], POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0) continue;
    ssize_t n = read(pipefd[0], buf, sizeof buf);
    if (n <= 0) break;
    ready.append(buf, static_cast<size_t>(n));
  }
  close(pipefd[0]);
  if (ready.find("API server on") == std::string::npos) {
    std::fprintf(stderr, "  simulate did not become ready; see %s\n", server_log.c_str());
    stop_child(sim, "simulate", std::chrono::seconds(10));
    return {};
  }
  return sim;
}

// The tidesync binary of the build this benchmark belongs to (BUILD/bench/X -> BUILD/tidesync).
inline std::string default_tidesync() {
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  return (self.parent_path().parent_path() / "tidesync").string();
}

// `tidesync controller ARGS...` with its output in `log`, once it logged "informer caches
// synced"; pid -1 (and the child stopped) when it did not within a minute.
inline child start_controller(const std::vector<std::string>& argv, const fs::path& log) {
  int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  child ctl = spawn(argv, fd, fd, {}, {"TIDESYNC_LOG_LEVEL", "KUBECONFIG"});
  close(fd);
  bool started = wait_until(
      [&] {
        return exited(ctl) || read_file(log).find("informer caches synced") != std::string::npos;
      },
      std::chrono::seconds(60));
  if (started && !exited(ctl)) return ctl;
  std::fprintf(stderr, "  the controller did not start; see %s\n", log.c_str());
  stop_child(ctl, "controller", std::chrono::seconds(10));
  return {};
}

// The warnings and errors of a tidesync log, with the first few lines of them.
struct log_summary {
  int warnings = 0;
  int errors = 0;
  std::vector<std::string> samples;
};

inline log_summary scan_log(const fs::path& log) {
  log_summary s;
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);) {
    bool warn = line.find(" warning [") != std::string::npos;
    bool err =
        line.find(" error [") != std::string::npos || line.find(" critical [") != std::string::npos;
    if (warn) ++s.warnings;
    if (err) ++s.errors;
    if ((warn || err) && s.samples.size() < 5) s.samples.push_back(line);
  }
  return s;
}

}  // namespace tidesync::bench
