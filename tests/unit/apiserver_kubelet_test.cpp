// The simulated kubelet: real store, real rclone processes, real files.
#include <gtest/gtest.h>
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "runtime/apiserver/kubelet.hpp"
#include "runtime/apiserver/store.hpp"

namespace tidesync::apiserver {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

json::value must_parse(std::string_view text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? *v : json::value{};
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, std::string_view text) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << text;
}

// Polls `pred` until it holds or `limit` passes (waiting on the store's state, not a sleep
// standing in for synchronisation).
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 4000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

bool pid_alive(pid_t pid) {
  return ::kill(pid, 0) == 0 || errno != ESRCH;
}

class kubelet_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    root = fs::temp_directory_path() / ("tidesync-kubelet-" + std::to_string(rd()));
    fs::create_directories(root / "src" / "sub");
    fs::create_directories(root / "dst");
    write_file(root / "src" / "a.txt", "hello");
    write_file(root / "src" / "sub" / "b.txt", std::string(100000, 'x'));
    jobs = *st.find_type("batch", "v1", "jobs");
    pods = *st.find_type("", "v1", "pods");
    secrets = *st.find_type("", "v1", "secrets");
    nss = *st.find_type("", "v1", "namespaces");
    ASSERT_TRUE(st.create(nss, "", must_parse(R"({"metadata":{"name":"demo"}})")));
    kubelet_options o;
    o.data_dir = (root / "data").string();
    o.kill_grace = 1000ms;
    o.tick = 10ms;
    o.restart_backoff = 50ms;
    o.max_restart_backoff = 200ms;
    k = std::make_unique<kubelet>(st, o);
    auto started = k->start();
    ASSERT_TRUE(started.has_value()) << started.error().message;
  }
  void TearDown() override {
    k.reset();  // stops: kills what still runs, joins
    std::error_code ec;
    fs::remove_all(root, ec);
  }

  // A Job with one rclone container; `extra` is merged into the container.
  json::value job(std::string_view name, json::array args, json::value container_extra = {},
                  json::value spec_extra = {}, json::value pod_spec_extra = {}) {
    json::value c = json::object{
        {"name", "rclone"}, {"image", "rclone/rclone:1.68.2"}, {"args", std::move(args)}};
    if (container_extra.is_object()) c = json::merge_patch(c, container_extra);
    json::value pod_spec =
        json::object{{"restartPolicy", "Never"}, {"containers", json::array{std::move(c)}}};
    if (pod_spec_extra.is_object()) pod_spec = json::merge_patch(pod_spec, pod_spec_extra);
    json::value spec = json::object{{"backoffLimit", 0},
                                    {"template", json::object{{"spec", std::move(pod_spec)}}}};
    if (spec_extra.is_object()) spec = json::merge_patch(spec, spec_extra);
    return json::object{{"apiVersion", "batch/v1"},
                        {"kind", "Job"},
                        {"metadata", json::object{{"name", name}, {"namespace", "demo"}}},
                        {"spec", std::move(spec)}};
  }

  object_ptr get_job(std::string_view name) {
    auto j = st.get(jobs, "demo", name);
    return j ? *j : nullptr;
  }
  bool has_condition(std::string_view job, std::string_view type, std::string_view reason = {}) {
    auto j = get_job(job);
    if (!j) return false;
    const auto* conds = j->obj.at_path({"status", "conditions"});
    if (conds == nullptr || !conds->is_array()) return false;
    for (const auto& c : conds->as_array())
      if (c.get_string("type") == type && c.get_string("status") == "True" &&
          (reason.empty() || c.get_string("reason") == reason))
        return true;
    return false;
  }
  std::vector<object_ptr> pods_of(std::string_view job) {
    list_options lo;
    lo.label_selector = "job-name=" + std::string(job);
    auto l = st.list(pods, "demo", lo);
    return l ? l->items : std::vector<object_ptr>{};
  }
  std::string pod_phase(const object_ptr& p) {
    const auto* s = p->obj.at("status");
    return s != nullptr ? std::string(s->get_string("phase")) : "";
  }
  const json::value* container_status(const object_ptr& p) {
    const auto* cs = p->obj.at_path({"status", "containerStatuses"});
    if (cs == nullptr || !cs->is_array() || cs->as_array().empty()) return nullptr;
    return &cs->as_array().front();
  }
  std::string dump_state(std::string_view job) {
    std::string out = get_job(job) ? json::dump(get_job(job)->obj) : "no job";
    for (const auto& p : pods_of(job))
      out += "\n" + json::dump(p->obj);
    return out;
  }
  // Waits for the job's pod to run and returns its pid (from containerID simulate://PID).
  pid_t running_pid(std::string_view job) {
    pid_t pid = -1;
    eventually([&] {
      for (const auto& p : pods_of(job)) {
        const auto* cs = container_status(p);
        if (pod_phase(p) == "Running" && cs != nullptr) {
          std::string id(cs->get_string("containerID"));
          if (id.rfind("simulate://", 0) == 0) pid = std::stoi(id.substr(11));
        }
      }
      return pid > 0;
    });
    return pid;
  }

  // --- bare pods ---
  // A Pod in namespace demo: `spec` is its spec (JSON).
  object_ptr create_pod(std::string_view name, const std::string& spec) {
    auto created = st.create(pods, "demo",
                             must_parse(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" +
                                        std::string(name) + R"("},"spec":)" + spec + "}"));
    EXPECT_TRUE(created.has_value()) << (created ? "" : created.error().message);
    return created ? *created : nullptr;
  }
  object_ptr get_pod(std::string_view name) {
    auto p = st.get(pods, "demo", name);
    return p ? *p : nullptr;
  }
  std::string dump_pod(std::string_view name) {
    auto p = get_pod(name);
    return p ? json::dump(p->obj) : "pod " + std::string(name) + " is gone";
  }
  // The status of container `c` (regular or init) in a pod object.
  static const json::value* status_of(const json::value& pod, std::string_view c) {
    for (const char* list : {"initContainerStatuses", "containerStatuses"}) {
      const auto* cs = pod.at_path({"status", list});
      if (cs == nullptr || !cs->is_array()) continue;
      for (const auto& x : cs->as_array())
        if (x.get_string("name") == c) return &x;
    }
    return nullptr;
  }
  // "waiting", "running", "terminated" or "".
  static std::string state_of(const json::value& pod, std::string_view c) {
    const auto* s = status_of(pod, c);
    if (s == nullptr || s->at("state") == nullptr) return "";
    for (const char* k : {"waiting", "running", "terminated"})
      if (s->at("state")->at(k) != nullptr) return k;
    return "";
  }
  std::string pod_state(std::string_view pod, std::string_view c) {
    auto p = get_pod(pod);
    return p ? state_of(p->obj, c) : "";
  }
  static std::string phase_of(const json::value& pod) {
    const auto* s = pod.at("status");
    return s != nullptr ? std::string(s->get_string("phase")) : "";
  }
  static pid_t pid_of(const json::value& pod, std::string_view c) {
    const auto* s = status_of(pod, c);
    if (s == nullptr) return -1;
    std::string id(s->get_string("containerID"));
    return id.rfind("simulate://", 0) == 0 ? std::stoi(id.substr(11)) : -1;
  }
  static bool condition(const json::value& pod, std::string_view type) {
    const auto* conds = pod.at_path({"status", "conditions"});
    if (conds == nullptr || !conds->is_array()) return false;
    for (const auto& c : conds->as_array())
      if (c.get_string("type") == type) return c.get_string("status") == "True";
    return false;
  }

  // Every event of the demo namespace's pods, in order (the test reads them while it waits).
  struct pod_events {
    std::unique_ptr<watch_stream> w;
    std::vector<std::pair<std::string, json::value>> seen;  // (type, pod)
    void pump() {
      for (const auto& line : w->next(0ms)) {
        auto ev = json::parse(line);
        if (ev && ev->at("object") != nullptr)
          seen.emplace_back(std::string(ev->get_string("type")), *ev->at("object"));
      }
    }
    bool deleted(std::string_view name) {
      pump();
      for (const auto& [t, o] : seen)
        if (t == "DELETED" && o.at("metadata")->get_string("name") == name) return true;
      return false;
    }
  };
  pod_events watch_pods() {
    pod_events e;
    watch_options wo;
    wo.resource_version = st.list(pods, "demo", {})->resource_version;
    e.w = std::move(*st.watch(pods, "demo", wo));
    return e;
  }
  std::string hostpath(const std::string& name, const fs::path& p) {
    return R"({"name":")" + name + R"(","hostPath":{"path":")" + p.string() + R"("}})";
  }

  store st;
  resource_type jobs, pods, secrets, nss;
  fs::path root;
  std::unique_ptr<kubelet> k;
};

TEST_F(kubelet_test, rclone_sync_between_host_paths_completes_the_job) {
  // The container sees /data/src and /data/dst; the kubelet maps them to the temp dirs.
  json::value pod_extra = must_parse(R"({"volumes":[
      {"name":"src","hostPath":{"path":")" +
                                     (root / "src").string() + R"("}},
      {"name":"dst","hostPath":{"path":")" +
                                     (root / "dst").string() + R"("}}]})");
  json::value c_extra = must_parse(
      R"({"volumeMounts":[{"name":"src","mountPath":"/data/src"},{"name":"dst","mountPath":"/data/dst"}]})");
  ASSERT_TRUE(st.create(
      jobs, "demo",
      job("sync", json::array{"sync", "/data/src", "/data/dst"}, c_extra, {}, pod_extra)));
  ASSERT_TRUE(eventually([&] { return has_condition("sync", "Complete"); })) << dump_state("sync");
  EXPECT_EQ(read_file(root / "dst" / "a.txt"), "hello");
  EXPECT_EQ(read_file(root / "dst" / "sub" / "b.txt").size(), 100000u);

  auto j = get_job("sync");
  EXPECT_EQ(j->obj.at("status")->get_int("succeeded"), 1);
  EXPECT_EQ(j->obj.at("status")->at("active"), nullptr);
  EXPECT_FALSE(j->obj.at("status")->get_string("completionTime").empty());
  EXPECT_FALSE(j->obj.at("status")->get_string("startTime").empty());

  auto ps = pods_of("sync");
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(pod_phase(ps[0]), "Succeeded");
  const auto* meta = ps[0]->obj.at("metadata");
  std::string pod_name(meta->get_string("name"));
  EXPECT_EQ(pod_name.size(), std::string("sync-xxxxx").size());
  EXPECT_EQ(meta->at("labels")->get_string("controller-uid"),
            j->obj.at("metadata")->get_string("uid"));
  EXPECT_EQ(meta->at("ownerReferences")->as_array()[0].get_string("uid"),
            j->obj.at("metadata")->get_string("uid"));
  const auto* term = container_status(ps[0])->at_path({"state", "terminated"});
  ASSERT_NE(term, nullptr);
  EXPECT_EQ(term->get_int("exitCode", -1), 0);
  EXPECT_EQ(term->get_string("reason"), "Completed");
  EXPECT_FALSE(term->get_string("finishedAt").empty());
  fs::path log = root / "data" / "logs" / "demo" / (pod_name + ".log");
  EXPECT_TRUE(fs::exists(log));
  EXPECT_NE(ps[0]->obj.at("status")->get_string("message").find(log.string()), std::string::npos);
  EXPECT_TRUE(eventually([&] { return k->running_processes() == 0; }));
}

TEST_F(kubelet_test, env_from_a_secret_configures_the_rclone_remote) {
  // The remote "src" exists only through RCLONE_CONFIG_SRC_TYPE from the Secret; the job
  // waits (CreateContainerConfigError) until the Secret exists.
  json::value env = must_parse(R"({"env":[
      {"name":"RCLONE_CONFIG_SRC_TYPE","valueFrom":{"secretKeyRef":{"name":"remote","key":"type"}}},
      {"name":"DEST","value":")" +
                               (root / "dst").string() + R"("}]})");
  ASSERT_TRUE(st.create(
      jobs, "demo",
      job("envjob", json::array{"copy", "src:" + (root / "src").string(), "$(DEST)"}, env)));
  ASSERT_TRUE(eventually([&] {
    for (const auto& p : pods_of("envjob")) {
      const auto* cs = container_status(p);
      if (cs != nullptr && pod_phase(p) == "Pending" &&
          cs->at_path({"state", "waiting"}) != nullptr &&
          cs->at_path({"state", "waiting"})->get_string("reason") == "CreateContainerConfigError")
        return cs->at_path({"state", "waiting"})->get_string("message") ==
               "secret \"remote\" not found";
    }
    return false;
  })) << dump_state("envjob");
  EXPECT_FALSE(has_condition("envjob", "Complete"));
  ASSERT_TRUE(st.create(secrets, "demo", must_parse(R"({"metadata":{"name":"remote"},
      "data":{"type":"bG9jYWw="}})")));  // "local"
  ASSERT_TRUE(eventually([&] { return has_condition("envjob", "Complete"); }))
      << dump_state("envjob");
  EXPECT_EQ(read_file(root / "dst" / "a.txt"), "hello");
}

TEST_F(kubelet_test, failing_command_fails_the_job_with_backoff_limit_exceeded) {
  ASSERT_TRUE(st.create(jobs, "demo",
                        job("fail", json::array{"lsf", (root / "does-not-exist").string()}, {},
                            must_parse(R"({"backoffLimit":1})"))));
  ASSERT_TRUE(eventually([&] { return has_condition("fail", "Failed", "BackoffLimitExceeded"); }))
      << dump_state("fail");
  auto j = get_job("fail");
  EXPECT_EQ(j->obj.at("status")->get_int("failed"), 2);  // backoffLimit 1: two attempts
  auto ps = pods_of("fail");
  ASSERT_EQ(ps.size(), 2u);
  for (const auto& p : ps) {
    EXPECT_EQ(pod_phase(p), "Failed");
    const auto* term = container_status(p)->at_path({"state", "terminated"});
    ASSERT_NE(term, nullptr);
    EXPECT_EQ(term->get_int("exitCode"), 3);  // rclone: directory not found
    EXPECT_EQ(term->get_string("reason"), "Error");
    std::string log = read_file(std::string(p->obj.at("status")->get_string("message")).substr(6));
    EXPECT_NE(log.find("directory not found"), std::string::npos) << log;
  }
}

TEST_F(kubelet_test, active_deadline_kills_the_process) {
  auto created = std::chrono::steady_clock::now();
  ASSERT_TRUE(st.create(jobs, "demo",
                        job("slow", json::array{"rcd", "--rc-addr", "127.0.0.1:0"}, {},
                            must_parse(R"({"activeDeadlineSeconds":1})"))));
  pid_t pid = running_pid("slow");
  ASSERT_GT(pid, 0) << dump_state("slow");
  ASSERT_TRUE(eventually([&] { return has_condition("slow", "Failed", "DeadlineExceeded"); }))
      << dump_state("slow");
  EXPECT_GE(std::chrono::steady_clock::now() - created, 900ms);  // not before the deadline
  ASSERT_TRUE(eventually([&] { return !pid_alive(pid); }));
  ASSERT_TRUE(eventually([&] {
    auto ps = pods_of("slow");
    return ps.size() == 1 && pod_phase(ps[0]) == "Failed";
  })) << dump_state("slow");
  auto ps = pods_of("slow");
  EXPECT_EQ(ps[0]->obj.at("status")->get_string("reason"), "DeadlineExceeded");
  EXPECT_EQ(container_status(ps[0])->at_path({"state", "terminated"})->get_int("exitCode"),
            128 + SIGTERM);
  // The pod's status is written just before the process leaves the running set.
  EXPECT_TRUE(eventually([&] { return k->running_processes() == 0; }));
}

TEST_F(kubelet_test, deleting_a_running_job_kills_its_process_and_pods) {
  ASSERT_TRUE(
      st.create(jobs, "demo", job("doomed", json::array{"rcd", "--rc-addr", "127.0.0.1:0"})));
  pid_t pid = running_pid("doomed");
  ASSERT_GT(pid, 0) << dump_state("doomed");
  ASSERT_TRUE(st.remove(jobs, "demo", "doomed"));
  ASSERT_TRUE(eventually([&] { return !pid_alive(pid); }));
  ASSERT_TRUE(eventually([&] { return pods_of("doomed").empty(); }));
  ASSERT_TRUE(eventually([&] { return k->running_processes() == 0; }));
}

TEST_F(kubelet_test, other_images_stay_pending_with_a_reason) {
  auto j = job("nginx", json::array{}, must_parse(R"({"image":"nginx:1.25"})"));
  ASSERT_TRUE(st.create(jobs, "demo", j));
  ASSERT_TRUE(eventually([&] {
    auto ps = pods_of("nginx");
    if (ps.size() != 1) return false;
    const auto* cs = container_status(ps[0]);
    return pod_phase(ps[0]) == "Pending" && cs != nullptr &&
           cs->at_path({"state", "waiting"}) != nullptr &&
           cs->at_path({"state", "waiting"})->get_string("reason") == "UnsupportedImage";
  })) << dump_state("nginx");
  EXPECT_EQ(get_job("nginx")->obj.at("status")->get_int("active"), 1);
}

TEST_F(kubelet_test, stop_kills_running_processes) {
  ASSERT_TRUE(st.create(jobs, "demo", job("long", json::array{"rcd", "--rc-addr", "127.0.0.1:0"})));
  pid_t pid = running_pid("long");
  ASSERT_GT(pid, 0) << dump_state("long");
  k->stop();
  EXPECT_FALSE(pid_alive(pid));
  EXPECT_EQ(k->running_processes(), 0u);
}

TEST_F(kubelet_test, secret_volume_pvc_and_paths_in_env_are_mapped) {
  // rclone reads its config from a Secret volume (RCLONE_CONFIG names the container path)
  // and copies into a PVC, which lives under <data-dir>/volumes/<ns>/<claim>/.
  ASSERT_TRUE(st.create(secrets, "demo", must_parse(R"({"metadata":{"name":"rclone-conf"},
      "stringData":{"rclone.conf":"[from]\ntype = local\n"}})")));
  json::value pod_extra = must_parse(R"({"volumes":[
      {"name":"conf","secret":{"secretName":"rclone-conf"}},
      {"name":"in","hostPath":{"path":")" +
                                     (root / "src").string() + R"("}},
      {"name":"out","persistentVolumeClaim":{"claimName":"backup"}},
      {"name":"scratch","emptyDir":{}}]})");
  json::value c_extra = must_parse(R"({"volumeMounts":[
      {"name":"conf","mountPath":"/config/rclone"},
      {"name":"in","mountPath":"/in"},
      {"name":"out","mountPath":"/out"},
      {"name":"scratch","mountPath":"/scratch"}],
    "env":[{"name":"RCLONE_CONFIG","value":"/config/rclone/rclone.conf"},
           {"name":"POD","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],
    "command":["/usr/local/bin/rclone"]})");
  ASSERT_TRUE(st.create(
      jobs, "demo",
      job("vols", json::array{"copy", "from:/in", "/out/$(POD)", "--log-file=/scratch/rclone.log"},
          c_extra, {}, pod_extra)));
  ASSERT_TRUE(eventually([&] { return has_condition("vols", "Complete"); })) << dump_state("vols");
  auto ps = pods_of("vols");
  ASSERT_EQ(ps.size(), 1u);
  std::string pod(ps[0]->obj.at("metadata")->get_string("name"));
  fs::path out = root / "data" / "volumes" / "demo" / "backup" / pod;
  EXPECT_EQ(read_file(out / "a.txt"), "hello");
  EXPECT_TRUE(
      fs::exists(root / "data" / "pods" / "demo" / pod / "volumes" / "scratch" / "rclone.log"));
}

TEST_F(kubelet_test, dropped_watches_are_resumed) {
  st.close_watches();
  st.compact();
  ASSERT_TRUE(st.create(jobs, "demo", job("after", json::array{"lsf", (root / "src").string()})));
  ASSERT_TRUE(eventually([&] { return has_condition("after", "Complete"); }))
      << dump_state("after");
  // stdout and stderr both land in the log: lsf prints the listing on stdout.
  auto ps = pods_of("after");
  ASSERT_EQ(ps.size(), 1u);
  std::string log =
      read_file(std::string(ps[0]->obj.at("status")->get_string("message")).substr(6));
  EXPECT_NE(log.find("a.txt"), std::string::npos) << log;
  EXPECT_NE(log.find("sub/"), std::string::npos) << log;
}

TEST_F(kubelet_test, pods_left_running_by_a_stopped_kubelet_count_as_failed) {
  ASSERT_TRUE(
      st.create(jobs, "demo", job("orphan", json::array{"rcd", "--rc-addr", "127.0.0.1:0"})));
  ASSERT_GT(running_pid("orphan"), 0) << dump_state("orphan");
  k->stop();
  ASSERT_EQ(pod_phase(pods_of("orphan").at(0)), "Running");
  kubelet_options o;
  o.data_dir = (root / "data").string();
  o.tick = 10ms;
  k = std::make_unique<kubelet>(st, o);
  ASSERT_TRUE(k->start().has_value());
  // backoffLimit 0: the lost pod is the Job's one failure.
  ASSERT_TRUE(eventually([&] { return has_condition("orphan", "Failed", "BackoffLimitExceeded"); }))
      << dump_state("orphan");
  auto ps = pods_of("orphan");
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(pod_phase(ps[0]), "Failed");
  EXPECT_EQ(ps[0]->obj.at("status")->get_string("reason"), "ProcessLost");
}

// --- bare pods ---------------------------------------------------------------------------

// What the PodFilesystemSync webhook makes of a user's pod: an init container that restores
// into the app's volume, a native sidecar, and the app (an image the simulation cannot run,
// so a placeholder) plus a real second container. Deleting it stops the regular containers
// first, then the sidecar, and only then is the pod gone.
TEST_F(kubelet_test, bare_pod_runs_init_then_native_sidecar_then_apps_and_stops_gracefully) {
  auto events = watch_pods();
  std::string spec = R"({
    "volumes":[)" + hostpath("src", root / "src") +
                     R"(,{"name":"html","emptyDir":{}}],
    "initContainers":[
      {"name":"init-volume-restore","image":"rclone/rclone:1.68.2",
       "args":["copy","/restore-from","/data"],
       "volumeMounts":[{"name":"src","mountPath":"/restore-from"},{"name":"html","mountPath":"/data"}]},
      {"name":"volume-syncing-sidecar","image":"rclone/rclone:1.68.2","restartPolicy":"Always",
       "args":["rcd","--rc-addr","127.0.0.1:0"],
       "volumeMounts":[{"name":"html","mountPath":"/data"}]}],
    "containers":[
      {"name":"nginx","image":"nginx:1.25",
       "volumeMounts":[{"name":"html","mountPath":"/usr/share/nginx/html"}]},
      {"name":"worker","image":"rclone/rclone:1.68.2","args":["rcd","--rc-addr","127.0.0.1:0"]}]})";
  ASSERT_TRUE(create_pod("web", spec));

  ASSERT_TRUE(eventually([&] {
    auto p = get_pod("web");
    return p && phase_of(p->obj) == "Running" && condition(p->obj, "Ready") &&
           pid_of(p->obj, "worker") > 0;
  })) << dump_pod("web");
  auto p = get_pod("web");
  const auto& pod = p->obj;
  // Bound to the simulated node, as the scheduler would.
  EXPECT_EQ(pod.at("spec")->get_string("nodeName"), "tidesync-simulate");
  EXPECT_EQ(pod.at("status")->get_string("podIP"), "127.0.0.1");
  EXPECT_EQ(pod.at("status")->get_string("hostIP"), "127.0.0.1");
  for (const char* c : {"Initialized", "Ready", "ContainersReady", "PodScheduled"})
    EXPECT_TRUE(condition(pod, c)) << c;
  // The init container ran to completion; its copy is in the pod's emptyDir.
  const auto* restore = status_of(pod, "init-volume-restore");
  ASSERT_NE(restore, nullptr);
  EXPECT_EQ(restore->at_path({"state", "terminated"})->get_int("exitCode", -1), 0);
  EXPECT_EQ(restore->at_path({"state", "terminated"})->get_string("reason"), "Completed");
  EXPECT_TRUE(restore->get_bool("ready"));
  EXPECT_EQ(read_file(root / "data" / "pods" / "demo" / "web" / "volumes" / "html" / "a.txt"),
            "hello");
  // The sidecar and the worker run as processes; nginx is a placeholder (no process).
  EXPECT_EQ(state_of(pod, "volume-syncing-sidecar"), "running");
  pid_t sidecar = pid_of(pod, "volume-syncing-sidecar");
  pid_t worker = pid_of(pod, "worker");
  ASSERT_GT(sidecar, 0);
  ASSERT_GT(worker, 0);
  EXPECT_TRUE(pid_alive(sidecar));
  EXPECT_EQ(state_of(pod, "nginx"), "running");
  EXPECT_EQ(pid_of(pod, "nginx"), -1);
  EXPECT_TRUE(status_of(pod, "nginx")->get_bool("ready"));
  EXPECT_EQ(status_of(pod, "nginx")->get_int("restartCount", -1), 0);
  EXPECT_EQ(status_of(pod, "worker")->get_string("image"), "rclone/rclone:1.68.2");
  // One log per container.
  fs::path logs = root / "data" / "logs" / "demo" / "web";
  EXPECT_TRUE(fs::exists(logs / "init-volume-restore.log"));
  EXPECT_TRUE(eventually([&] {
    return read_file(logs / "volume-syncing-sidecar.log").find("remote control") !=
           std::string::npos;
  }));
  EXPECT_NE(pod.at("status")->get_string("message").find(logs.string()), std::string::npos);

  // Order: no event shows the sidecar started before the restore succeeded, nor a regular
  // container started before every init container was done.
  events.pump();
  for (const auto& [type, o] : events.seen) {
    if (state_of(o, "volume-syncing-sidecar") == "running" ||
        state_of(o, "volume-syncing-sidecar") == "terminated")
      EXPECT_EQ(state_of(o, "init-volume-restore"), "terminated") << json::dump(o);
    if (state_of(o, "worker") == "running" || state_of(o, "nginx") == "running") {
      EXPECT_EQ(phase_of(o), "Running");
      EXPECT_EQ(state_of(o, "volume-syncing-sidecar"), "running") << json::dump(o);
    }
  }

  // Delete: graceful, as kube-apiserver does it for a pod bound to a node.
  auto r = st.remove(pods, "demo", "web");
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->deleted);
  EXPECT_NE(r->object->obj.at_path({"metadata", "deletionTimestamp"}), nullptr);
  EXPECT_EQ(r->object->obj.at("metadata")->get_int("deletionGracePeriodSeconds"), 30);
  ASSERT_TRUE(eventually([&] { return events.deleted("web"); })) << dump_pod("web");
  EXPECT_FALSE(pid_alive(sidecar));
  EXPECT_FALSE(pid_alive(worker));
  EXPECT_FALSE(get_pod("web"));

  // The regular containers were stopped while the sidecar still ran; then the sidecar
  // (SIGTERM: rclone exits 143); only then was the pod deleted.
  bool apps_down_sidecar_up = false;
  const json::value* last = nullptr;
  for (const auto& [type, o] : events.seen) {
    if (type == "DELETED") break;
    last = &o;
    if (o.at_path({"metadata", "deletionTimestamp"}) != nullptr &&
        state_of(o, "worker") == "terminated" && state_of(o, "nginx") == "terminated" &&
        state_of(o, "volume-syncing-sidecar") == "running")
      apps_down_sidecar_up = true;
  }
  EXPECT_TRUE(apps_down_sidecar_up);
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(state_of(*last, "volume-syncing-sidecar"), "terminated") << json::dump(*last);
  EXPECT_EQ(status_of(*last, "volume-syncing-sidecar")
                ->at_path({"state", "terminated"})
                ->get_int("exitCode"),
            128 + SIGTERM);
  EXPECT_EQ(status_of(*last, "worker")->at_path({"state", "terminated"})->get_int("exitCode"),
            128 + SIGTERM);
  EXPECT_EQ(status_of(*last, "nginx")->at_path({"state", "terminated"})->get_int("exitCode", -1),
            0);
  EXPECT_EQ(phase_of(*last), "Failed");  // worker ended with 143
  EXPECT_TRUE(eventually([&] { return k->running_processes() == 0; }));
}

TEST_F(kubelet_test, init_container_failure_with_restart_policy_never_fails_the_pod) {
  ASSERT_TRUE(create_pod("broken", R"({"restartPolicy":"Never",
    "initContainers":[{"name":"check","image":"rclone/rclone","args":["lsf",")" +
                                       (root / "missing").string() + R"("]}],
    "containers":[{"name":"app","image":"nginx"}]})"));
  ASSERT_TRUE(eventually([&] {
    auto p = get_pod("broken");
    return p && phase_of(p->obj) == "Failed";
  })) << dump_pod("broken");
  auto p = get_pod("broken");
  const auto* check = status_of(p->obj, "check");
  ASSERT_NE(check, nullptr);
  EXPECT_EQ(check->at_path({"state", "terminated"})->get_int("exitCode"), 3);  // not found
  EXPECT_EQ(check->get_int("restartCount", -1), 0);
  EXPECT_EQ(state_of(p->obj, "app"), "waiting");
  EXPECT_EQ(status_of(p->obj, "app")->at_path({"state", "waiting"})->get_string("reason"),
            "PodInitializing");
  EXPECT_FALSE(condition(p->obj, "Initialized"));
  EXPECT_NE(read_file(root / "data" / "logs" / "demo" / "broken" / "check.log")
                .find("directory not found"),
            std::string::npos);
  // A terminated pod is deleted at once.
  auto r = st.remove(pods, "demo", "broken");
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->deleted);
}

TEST_F(kubelet_test, failed_init_container_is_retried_with_back_off_until_it_succeeds) {
  fs::path later = root / "later";
  ASSERT_TRUE(create_pod("retry", R"({"restartPolicy":"Always",
    "initContainers":[{"name":"wait-for-dir","image":"rclone/rclone","args":["lsf",")" +
                                      later.string() + R"("]}],
    "containers":[{"name":"app","image":"nginx"}]})"));
  ASSERT_TRUE(eventually([&] {
    auto p = get_pod("retry");
    if (!p) return false;
    const auto* s = status_of(p->obj, "wait-for-dir");
    return s != nullptr && s->get_int("restartCount") >= 1 && phase_of(p->obj) == "Pending" &&
           s->at("lastState")->at("terminated") != nullptr;
  })) << dump_pod("retry");
  EXPECT_EQ(pod_state("retry", "app"), "waiting");
  fs::create_directories(later);
  ASSERT_TRUE(eventually([&] {
    auto p = get_pod("retry");
    return p && phase_of(p->obj) == "Running" && state_of(p->obj, "app") == "running";
  })) << dump_pod("retry");
  auto p = get_pod("retry");
  EXPECT_EQ(
      status_of(p->obj, "wait-for-dir")->at_path({"state", "terminated"})->get_int("exitCode"), 0);
  // The log keeps every attempt.
  std::string log = read_file(root / "data" / "logs" / "demo" / "retry" / "wait-for-dir.log");
  EXPECT_NE(log.find("directory not found"), std::string::npos) << log;
}

TEST_F(kubelet_test, sidecar_stops_once_the_apps_complete_and_the_pod_succeeds) {
  ASSERT_TRUE(create_pod("batch", R"({"restartPolicy":"Never",
    "volumes":[)" + hostpath("src", root / "src") +
                                      R"(],
    "initContainers":[{"name":"helper","image":"rclone/rclone","restartPolicy":"Always",
                       "args":["rcd","--rc-addr","127.0.0.1:0"]}],
    "containers":[{"name":"list","image":"rclone/rclone","args":["lsf","/in"],
                   "volumeMounts":[{"name":"src","mountPath":"/in"}]}]})"));
  ASSERT_TRUE(eventually([&] {
    auto p = get_pod("batch");
    return p && phase_of(p->obj) == "Succeeded";
  })) << dump_pod("batch");
  auto p = get_pod("batch");
  EXPECT_EQ(status_of(p->obj, "list")->at_path({"state", "terminated"})->get_int("exitCode", -1),
            0);
  const auto* helper = status_of(p->obj, "helper");
  EXPECT_EQ(helper->at_path({"state", "terminated"})->get_int("exitCode"), 128 + SIGTERM);
  EXPECT_FALSE(condition(p->obj, "Ready"));
  EXPECT_NE(read_file(root / "data" / "logs" / "demo" / "batch" / "list.log").find("a.txt"),
            std::string::npos);
  EXPECT_TRUE(eventually([&] { return k->running_processes() == 0; }));
}

TEST_F(kubelet_test, on_failure_restarts_a_failing_container_until_it_succeeds) {
  fs::path later = root / "later";
  ASSERT_TRUE(create_pod("flaky", R"({"restartPolicy":"OnFailure",
    "containers":[{"name":"job","image":"rclone/rclone","args":["lsf",")" +
                                      later.string() + R"("]}]})"));
  ASSERT_TRUE(eventually([&] {
    auto p = get_pod("flaky");
    const auto* s = p ? status_of(p->obj, "job") : nullptr;
    return s != nullptr && s->get_int("restartCount") >= 2 && phase_of(p->obj) == "Running";
  })) << dump_pod("flaky");
  fs::create_directories(later);
  ASSERT_TRUE(eventually([&] {
    auto p = get_pod("flaky");
    return p && phase_of(p->obj) == "Succeeded";
  })) << dump_pod("flaky");
  const auto* s = status_of(get_pod("flaky")->obj, "job");
  EXPECT_EQ(s->at_path({"lastState", "terminated"})->get_int("exitCode"), 3);
}

TEST_F(kubelet_test, pods_of_other_nodes_are_left_alone) {
  ASSERT_TRUE(create_pod("elsewhere", R"({"nodeName":"node-b",
    "containers":[{"name":"app","image":"nginx"}]})"));
  ASSERT_TRUE(create_pod("here", R"({"containers":[{"name":"app","image":"nginx"}]})"));
  ASSERT_TRUE(eventually([&] { return pod_state("here", "app") == "running"; }))
      << dump_pod("here");
  auto p = get_pod("elsewhere");
  EXPECT_EQ(p->obj.at("spec")->get_string("nodeName"), "node-b");
  EXPECT_EQ(p->obj.at("status"), nullptr);
  // Not this kubelet's: deleted at once.
  auto r = st.remove(pods, "demo", "elsewhere");
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->deleted);
}

TEST_F(kubelet_test, deleting_a_job_pod_stops_its_process_and_the_job_counts_a_failure) {
  ASSERT_TRUE(st.create(jobs, "demo", job("j", json::array{"rcd", "--rc-addr", "127.0.0.1:0"})));
  pid_t pid = running_pid("j");
  ASSERT_GT(pid, 0) << dump_state("j");
  std::string name(pods_of("j").at(0)->obj.at("metadata")->get_string("name"));
  auto r = st.remove(pods, "demo", name);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->deleted);  // graceful: the kubelet stops the process first
  ASSERT_TRUE(eventually([&] { return !get_pod(name); })) << dump_state("j");
  EXPECT_FALSE(pid_alive(pid));
  // backoffLimit 0: the killed pod was the Job's one failure.
  ASSERT_TRUE(eventually([&] { return has_condition("j", "Failed", "BackoffLimitExceeded"); }))
      << dump_state("j");
}

// A process that ignores SIGTERM is killed when the grace period ends. `rclone_binary` is
// pointed at /bin/sh for this one, so an "rclone" container can trap SIGTERM.
TEST_F(kubelet_test, sigkill_when_the_grace_period_ends) {
  k.reset();
  kubelet_options o;
  o.data_dir = (root / "data").string();
  o.tick = 10ms;
  o.rclone_binary = "/bin/sh";
  k = std::make_unique<kubelet>(st, o);
  ASSERT_TRUE(k->start().has_value());
  ASSERT_TRUE(create_pod("stubborn", R"({
    "containers":[{"name":"app","image":"rclone/rclone",
                   "args":["-c","trap '' TERM; exec tail -f /dev/null"]}]})"));
  pid_t pid = -1;
  ASSERT_TRUE(eventually([&] {
    auto p = get_pod("stubborn");
    pid = p ? pid_of(p->obj, "app") : -1;
    return pid > 0 && state_of(p->obj, "app") == "running";
  })) << dump_pod("stubborn");
  auto events = watch_pods();
  delete_options d;
  d.grace_period_seconds = 1;
  auto asked = std::chrono::steady_clock::now();
  ASSERT_TRUE(st.remove(pods, "demo", "stubborn", d).has_value());
  ASSERT_TRUE(eventually([&] { return events.deleted("stubborn"); }, 5000ms))
      << dump_pod("stubborn");
  EXPECT_GE(std::chrono::steady_clock::now() - asked, 900ms);  // not before the grace period
  EXPECT_FALSE(pid_alive(pid));
  const json::value* last = nullptr;
  for (const auto& [type, o2] : events.seen)
    if (type != "DELETED") last = &o2;
  ASSERT_NE(last, nullptr);
  const auto* term = status_of(*last, "app")->at_path({"state", "terminated"});
  ASSERT_NE(term, nullptr) << json::dump(*last);
  EXPECT_EQ(term->get_int("exitCode"), 128 + SIGKILL);
  EXPECT_EQ(term->get_int("signal"), SIGKILL);
}

// stop() finishes what it cannot finish later: the pods it was deleting go, and a new
// deletion (no kubelet registered) is immediate.
TEST_F(kubelet_test, stop_deletes_pods_being_deleted_and_later_deletions_are_immediate) {
  ASSERT_TRUE(create_pod("a", R"({"containers":[{"name":"app","image":"rclone/rclone",
      "args":["rcd","--rc-addr","127.0.0.1:0"]}]})"));
  ASSERT_TRUE(create_pod("b", R"({"containers":[{"name":"app","image":"nginx"}]})"));
  ASSERT_TRUE(eventually([&] {
    return pod_state("a", "app") == "running" && pod_state("b", "app") == "running";
  })) << dump_pod("a");
  k->stop();
  // The node is gone with the kubelet: b is deleted at once.
  auto r = st.remove(pods, "demo", "b");
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->deleted);
  // A restarted kubelet runs a again (restartPolicy Always) ...
  kubelet_options o;
  o.data_dir = (root / "data").string();
  o.tick = 10ms;
  k = std::make_unique<kubelet>(st, o);
  ASSERT_TRUE(k->start().has_value());
  ASSERT_TRUE(eventually([&] {
    auto p = get_pod("a");
    return p && pid_of(p->obj, "app") > 0 && pid_alive(pid_of(p->obj, "app")) &&
           state_of(p->obj, "app") == "running";
  })) << dump_pod("a");
  // ... and a pod it is deleting when it stops goes with it.
  delete_options d;
  d.grace_period_seconds = 300;
  ASSERT_TRUE(st.remove(pods, "demo", "a", d).has_value());
  k->stop();
  EXPECT_FALSE(get_pod("a")) << dump_pod("a");
  EXPECT_EQ(k->running_processes(), 0u);
}

}  // namespace
}  // namespace tidesync::apiserver
