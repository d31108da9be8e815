// `tidesync simulate` as a test peer: started in a directory of the test's, stopped by PID, with
// kubectl against it. The log is in <dir>/simulate.log.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "runtime/json/value.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"

namespace tidesync::test {

class simulation {
 public:
  // Starts `tidesync simulate --port 0 --data-dir DIR/sim --controller-rbac deploy/base/rbac.yaml
  // EXTRA... deploy/crds` and waits (up to 30 s) until kubectl can reach it. The controller runs
  // under the shipped RBAC: a request it denies fails the test when the simulation stops.
  simulation(std::filesystem::path dir, const std::vector<std::string>& extra_args = {})
      : dir_(std::move(dir)) {
    using namespace std::chrono_literals;
    std::string cmd = "exec '" + std::string(TIDESYNC_BINARY) + "' simulate --port 0 --data-dir '" +
                      data_dir().string() + "' --controller-rbac '" + rbac_manifest() + "'";
    for (const auto& a : extra_args)
      cmd += " '" + a + "'";
    cmd += " '" + std::string(TIDESYNC_SOURCE_DIR) + "/deploy/crds' > '" + log_path().string() +
           "' 2>&1";
    proc_ = std::make_unique<child>(std::vector<std::string>{"sh", "-c", cmd});
    ready_ = eventually(
        [&] {
          return std::filesystem::exists(kubeconfig()) &&
                 kubectl({"get", "crd", "podfilesystemsyncs.tidesync.io", "-o", "name"}).status ==
                     0;
        },
        30s);
  }
  ~simulation() {
    stop();
    expect_no_rbac_denial(log_path());
  }
  // The RBAC the controller runs under in every test.
  static std::string rbac_manifest() {
    return std::string(TIDESYNC_SOURCE_DIR) + "/deploy/base/rbac.yaml";
  }
  // Fails the running test for every request of the controller that RBAC denied (the API
  // server logs "RBAC denied: …"): deploy/base/rbac.yaml lacks a permission the controller uses.
  static void expect_no_rbac_denial(const std::filesystem::path& log) {
    const std::string text = read_file(log);
    for (size_t at = text.find("RBAC denied"); at != std::string::npos;
         at = text.find("RBAC denied", at + 1))
      ADD_FAILURE() << "deploy/base/rbac.yaml: " << text.substr(at, text.find('\n', at) - at);
  }
  simulation(const simulation&) = delete;
  simulation& operator=(const simulation&) = delete;

  [[nodiscard]] bool ready() const { return ready_; }
  void stop() { proc_.reset(); }  // SIGTERM by PID, then waits
  [[nodiscard]] std::filesystem::path data_dir() const { return dir_ / "sim"; }
  [[nodiscard]] std::filesystem::path log_path() const { return dir_ / "simulate.log"; }
  [[nodiscard]] std::string kubeconfig() const { return (data_dir() / "kubeconfig").string(); }
  [[nodiscard]] std::string log() const { return read_file(log_path()); }

  // kubectl ARGS [-f a file holding `stdin_text`].
  run_result kubectl(std::vector<std::string> args, const std::string& stdin_text = {}) {
    std::vector<std::string> argv{"kubectl", "--kubeconfig", kubeconfig(), "--cache-dir",
                                  (dir_ / "kube-cache").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!stdin_text.empty()) {
      const auto path = dir_ / ("manifest-" + std::to_string(++files_) + ".yaml");
      write_file(path, stdin_text);
      argv.push_back("-f");
      argv.push_back(path.string());
    }
    return run(argv);
  }
  // `kubectl apply`; the failed output when it fails.
  run_result apply(const std::string& yaml) { return kubectl({"apply"}, yaml); }
  // The object as JSON, or null when kubectl cannot get it.
  json::value get(const std::string& kind, const std::string& name, const std::string& ns) {
    auto r = kubectl({"get", kind, name, "-n", ns, "-o", "json"});
    if (r.status != 0) return json::value();
    auto v = json::parse(r.output);
    return v ? std::move(*v) : json::value();
  }
  // "STATUS REASON" of the condition `type` of an object, "" when it has none.
  std::string condition(const std::string& kind, const std::string& name, const std::string& ns,
                        const std::string& type) {
    auto o = get(kind, name, ns);
    if (const auto* cs = o.at_path({"status", "conditions"}); cs && cs->is_array())
      for (const auto& c : cs->as_array())
        if (c.get_string("type") == type)
          return std::string(c.get_string("status")) + " " + std::string(c.get_string("reason"));
    return {};
  }
  // Waits (up to 30 s) until the controller has registered its admission webhook: pods created
  // before that are not mutated.
  bool webhook_registered() {
    return eventually(
        [&] {
          return kubectl({"get", "mutatingwebhookconfiguration", "tidesync-pod-injection"})
                     .status == 0;
        },
        std::chrono::seconds(30));
  }
  // simulate's log and every container log of the simulated kubelet (for a failure message).
  [[nodiscard]] std::string all_logs() const {
    std::string out = "--- simulate log ---\n" + log();
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(data_dir() / "logs", ec))
      if (e.is_regular_file()) out += "--- " + e.path().string() + " ---\n" + read_file(e.path());
    return out;
  }
  // Whether an Event with `reason` about `object` exists in `ns`.
  bool has_event(const std::string& ns, const std::string& reason, const std::string& object) {
    auto r = kubectl({"get", "events", "-n", ns, "-o",
                      "jsonpath={range .items[*]}{.reason}/{.involvedObject.name}{\"\\n\"}{end}"});
    return r.output.find(reason + "/" + object + "\n") != std::string::npos;
  }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<child> proc_;
  bool ready_ = false;
  int files_ = 0;
};

}  // namespace tidesync::test
