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

}  // namespace
}  // namespace tidesync::apiserver
