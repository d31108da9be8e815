// The simulated kubelet's Deployment controller and nfs volumes: real store, real rclone
// processes, real files.
#include <gtest/gtest.h>
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
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
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 8000ms) {
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

// A long-running real process: rclone's remote-control server on a loopback port.
constexpr const char* k_rcd =
    R"({"name":"rcd","image":"rclone/rclone:1.68.2","args":["rcd","--rc-addr","127.0.0.1:0"]})";

class kubelet_deployment_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    root = fs::temp_directory_path() / ("tidesync-kubelet-deploy-" + std::to_string(rd()));
    write_file(root / "src" / "a.txt", "hello");
    pods = *st.find_type("", "v1", "pods");
    deployments = *st.find_type("apps", "v1", "deployments");
    claims = *st.find_type("", "v1", "persistentvolumeclaims");
    volumes = *st.find_type("", "v1", "persistentvolumes");
    webhooks = *st.find_type("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations");
    auto nss = *st.find_type("", "v1", "namespaces");
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
    k.reset();
    std::error_code ec;
    fs::remove_all(root, ec);
  }

  // --- deployments ---
  // A Deployment `name` of `replicas` pods labelled app=<name>, each running `container`;
  // `spec_extra` is merged into its spec.
  object_ptr create_deployment(const std::string& name, int replicas,
                               const std::string& container = k_rcd,
                               const std::string& spec_extra = "{}") {
    json::value d = must_parse(R"({"apiVersion":"apps/v1","kind":"Deployment",
      "metadata":{"name":")" + name +
                               R"("},
      "spec":{"replicas":)" + std::to_string(replicas) +
                               R"(,"selector":{"matchLabels":{"app":")" + name + R"("}},
        "template":{"metadata":{"labels":{"app":")" +
                               name + R"("}},"spec":{"containers":[)" + container + "]}}}}");
    d["spec"] = json::merge_patch(d["spec"], must_parse(spec_extra));
    auto created = st.create(deployments, "demo", std::move(d));
    EXPECT_TRUE(created.has_value()) << (created ? "" : created.error().message);
    return created ? *created : nullptr;
  }
  void patch_deployment(const std::string& name, const std::string& patch) {
    auto r = st.patch(deployments, "demo", name, store::patch_type::merge, must_parse(patch));
    ASSERT_TRUE(r.has_value()) << r.error().message;
  }
  object_ptr get_deployment(const std::string& name) {
    auto d = st.get(deployments, "demo", name);
    return d ? *d : nullptr;
  }
  // Every pod of the deployment (label app=<name>), those being deleted included.
  std::vector<json::value> pods_of(const std::string& name) {
    list_options lo;
    lo.label_selector = "app=" + name;
    std::vector<json::value> out;
    if (auto l = st.list(pods, "demo", lo))
      for (const auto& o : l->items)
        out.push_back(o->obj);
    return out;
  }
  static bool deleting(const json::value& pod) {
    return pod.at_path({"metadata", "deletionTimestamp"}) != nullptr;
  }
  static std::string name_of(const json::value& o) {
    return std::string(o.at("metadata")->get_string("name"));
  }
  static std::string hash_of(const json::value& pod) {
    return std::string(pod.at_path({"metadata", "labels"})->get_string("pod-template-hash"));
  }
  static bool ready(const json::value& pod) {
    const auto* conds = pod.at_path({"status", "conditions"});
    if (conds == nullptr || !conds->is_array()) return false;
    for (const auto& c : conds->as_array())
      if (c.get_string("type") == "Ready") return c.get_string("status") == "True";
    return false;
  }
  // The pid of the pod's first container (containerID simulate://PID), or -1.
  static pid_t pid_of(const json::value& pod) {
    const auto* cs = pod.at_path({"status", "containerStatuses"});
    if (cs == nullptr || !cs->is_array() || cs->as_array().empty()) return -1;
    std::string id(cs->as_array().front().get_string("containerID"));
    return id.rfind("simulate://", 0) == 0 ? std::stoi(id.substr(11)) : -1;
  }
  static const json::value* condition(const json::value& obj, std::string_view type) {
    const auto* conds = obj.at_path({"status", "conditions"});
    if (conds == nullptr || !conds->is_array()) return nullptr;
    for (const auto& c : conds->as_array())
      if (c.get_string("type") == type) return &c;
    return nullptr;
  }
  static bool condition_is(const json::value& obj, std::string_view type, std::string_view status,
                           std::string_view reason = {}) {
    const auto* c = condition(obj, type);
    return c != nullptr && c->get_string("status") == status &&
           (reason.empty() || c->get_string("reason") == reason);
  }
  // The rollout is done: the status is about the current generation, `n` pods of the current
  // template are available (and no other pod is left, not even one being deleted), each with a
  // live process.
  bool rolled_out(const std::string& name, int64_t n) {
    auto d = get_deployment(name);
    if (!d) return false;
    const auto* s = d->obj.at("status");
    if (s == nullptr ||
        s->get_int("observedGeneration") != d->obj.at("metadata")->get_int("generation"))
      return false;
    if (s->get_int("replicas") != n || s->get_int("updatedReplicas") != n ||
        s->get_int("readyReplicas") != n || s->get_int("availableReplicas") != n)
      return false;
    if (!condition_is(d->obj, "Available", "True", "MinimumReplicasAvailable") ||
        !condition_is(d->obj, "Progressing", "True", "NewReplicaSetAvailable"))
      return false;
    auto ps = pods_of(name);
    if (static_cast<int64_t>(ps.size()) != n) return false;
    for (const auto& p : ps)
      if (deleting(p) || !ready(p) || pid_of(p) <= 0 || !pid_alive(pid_of(p))) return false;
    return true;
  }
  std::string dump(const std::string& name) {
    auto d = get_deployment(name);
    std::string out = d ? json::dump(d->obj) : "no deployment " + name;
    for (const auto& p : pods_of(name))
      out += "\n" + json::dump(p);
    return out;
  }

  // Every event of the demo namespace's pods, in order.
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
  };
  pod_events watch_pods() {
    pod_events e;
    watch_options wo;
    wo.resource_version = st.list(pods, "demo", {})->resource_version;
    e.w = std::move(*st.watch(pods, "demo", wo));
    return e;
  }

  // --- bare pods ---
  object_ptr create_pod(const std::string& name, const std::string& spec) {
    auto created = st.create(pods, "demo",
                             must_parse(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" +
                                        name + R"("},"spec":)" + spec + "}"));
    EXPECT_TRUE(created.has_value()) << (created ? "" : created.error().message);
    return created ? *created : nullptr;
  }
  std::string phase(const std::string& pod) {
    auto p = st.get(pods, "demo", pod);
    return p && (*p)->obj.at("status") != nullptr
               ? std::string((*p)->obj.at("status")->get_string("phase"))
               : "";
  }
  std::string dump_pod(const std::string& pod) {
    auto p = st.get(pods, "demo", pod);
    return p ? json::dump((*p)->obj) : "pod " + pod + " is gone";
  }
  // The waiting message of the pod's first container ("" when not waiting).
  std::string waiting_message(const std::string& pod) {
    auto p = st.get(pods, "demo", pod);
    if (!p) return "";
    const auto* cs = (*p)->obj.at_path({"status", "containerStatuses"});
    if (cs == nullptr || !cs->is_array() || cs->as_array().empty()) return "";
    const auto* w = cs->as_array().front().at_path({"state", "waiting"});
    return w != nullptr ? std::string(w->get_string("message")) : "";
  }
  // A pod running rclone once (restartPolicy Never) with `args`, the given volumes, and
  // mounts: volume name → mountPath.
  object_ptr run_once(const std::string& name, const std::string& args, const std::string& volumes,
                      const std::string& mounts) {
    return create_pod(name, R"({"restartPolicy":"Never","volumes":[)" + volumes +
                                R"(],"containers":[{"name":"rclone","image":"rclone/rclone",
                                "args":)" +
                                args + R"(,"volumeMounts":[)" + mounts + "]}]}");
  }
  static std::string hostpath(const std::string& name, const fs::path& p) {
    return R"({"name":")" + name + R"(","hostPath":{"path":")" + p.string() + R"("}})";
  }
  static std::string nfs(const std::string& name, const std::string& server,
                         const std::string& path) {
    return R"({"name":")" + name + R"(","nfs":{"server":")" + server + R"(","path":")" + path +
           R"("}})";
  }
  static std::string mount(const std::string& name, const std::string& path) {
    return R"({"name":")" + name + R"(","mountPath":")" + path + R"("})";
  }

  store st;
  resource_type pods, deployments, claims, volumes, webhooks;
  fs::path root;
  std::unique_ptr<kubelet> k;
};

TEST_F(kubelet_deployment_test, runs_its_replicas_and_reports_available) {
  auto d = create_deployment("web", 2);
  ASSERT_TRUE(d);
  ASSERT_TRUE(eventually([&] { return rolled_out("web", 2); })) << dump("web");
  auto dep = get_deployment("web");
  std::string uid(dep->obj.at("metadata")->get_string("uid"));
  const auto* s = dep->obj.at("status");
  EXPECT_EQ(s->get_int("observedGeneration"), 1);
  EXPECT_EQ(s->at("unavailableReplicas"), nullptr);
  EXPECT_NE(
      condition(dep->obj, "Progressing")->get_string("message").find("has successfully progressed"),
      std::string_view::npos);

  auto ps = pods_of("web");
  ASSERT_EQ(ps.size(), 2u);
  std::set<pid_t> pids;
  for (const auto& p : ps) {
    std::string name = name_of(p), hash = hash_of(p);
    EXPECT_FALSE(hash.empty());
    // <deployment>-<hash>-<5 random>
    EXPECT_EQ(name.rfind("web-" + hash + "-", 0), 0u) << name;
    EXPECT_EQ(name.size(), std::string("web-").size() + hash.size() + 6);
    EXPECT_EQ(p.at_path({"metadata", "labels"})->get_string("app"), "web");
    const auto& ref = p.at_path({"metadata", "ownerReferences"})->as_array().at(0);
    EXPECT_EQ(ref.get_string("kind"), "Deployment");
    EXPECT_EQ(ref.get_string("uid"), uid);
    EXPECT_TRUE(ref.get_bool("controller"));
    // Run by the bare-pod runner: bound to the node, a real rclone process.
    EXPECT_EQ(p.at("spec")->get_string("nodeName"), "tidesync-simulate");
    EXPECT_EQ(p.at("status")->get_string("phase"), "Running");
    pids.insert(pid_of(p));
  }
  EXPECT_EQ(pids.size(), 2u);
  EXPECT_EQ(k->running_processes(), 2u);
}

TEST_F(kubelet_deployment_test, scaling_down_deletes_a_pod_and_scaling_up_adds_them) {
  ASSERT_TRUE(create_deployment("web", 2));
  ASSERT_TRUE(eventually([&] { return rolled_out("web", 2); })) << dump("web");
  std::set<std::string> before;
  std::map<std::string, pid_t> pids;
  for (const auto& p : pods_of("web")) {
    before.insert(name_of(p));
    pids[name_of(p)] = pid_of(p);
  }

  patch_deployment("web", R"({"spec":{"replicas":1}})");
  ASSERT_TRUE(eventually([&] { return rolled_out("web", 1); })) << dump("web");
  auto left = pods_of("web");
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(before.count(name_of(left[0])), 1u);  // one of the two, kept
  for (const auto& [name, pid] : pids)
    if (name != name_of(left[0])) {
      EXPECT_FALSE(pid_alive(pid)) << name;
    }
  EXPECT_EQ(get_deployment("web")->obj.at("status")->get_int("observedGeneration"), 2);

  patch_deployment("web", R"({"spec":{"replicas":3}})");
  ASSERT_TRUE(eventually([&] { return rolled_out("web", 3); })) << dump("web");
  EXPECT_EQ(k->running_processes(), 3u);
}

// Recreate: every old pod is gone before the first new one is created.
TEST_F(kubelet_deployment_test, template_change_recreates_the_pods) {
  ASSERT_TRUE(create_deployment("web", 2, k_rcd, R"({"strategy":{"type":"Recreate"}})"));
  ASSERT_TRUE(eventually([&] { return rolled_out("web", 2); })) << dump("web");
  std::string old_hash = hash_of(pods_of("web").at(0));
  std::vector<pid_t> old_pids;
  for (const auto& p : pods_of("web"))
    old_pids.push_back(pid_of(p));
  auto events = watch_pods();

  patch_deployment("web", R"({"spec":{"template":{"metadata":{"annotations":{"rev":"2"}}}}})");
  ASSERT_TRUE(eventually([&] {
    return rolled_out("web", 2) && hash_of(pods_of("web").at(0)) != old_hash;
  })) << dump("web");
  for (pid_t pid : old_pids)
    EXPECT_FALSE(pid_alive(pid));
  for (const auto& p : pods_of("web"))
    EXPECT_EQ(p.at_path({"metadata", "annotations"})->get_string("rev"), "2");

  events.pump();
  size_t old_deleted = 0;
  bool new_created = false;
  for (const auto& [type, o] : events.seen) {
    bool is_old = hash_of(o) == old_hash;
    if (type == "DELETED" && is_old) {
      ++old_deleted;
      EXPECT_FALSE(new_created) << "an old pod was still there when a new one was created";
    }
    if (type == "ADDED" && !is_old) {
      EXPECT_EQ(old_deleted, 2u) << "a new pod was created before the old ones were gone";
      new_created = true;
    }
  }
  EXPECT_EQ(old_deleted, 2u);
  EXPECT_TRUE(new_created);
}

// RollingUpdate (the default): the new pods come first, an old pod goes once a new one is
// ready; the Deployment stays Available throughout.
TEST_F(kubelet_deployment_test, template_change_rolls_the_pods_over) {
  ASSERT_TRUE(create_deployment("web", 2));
  ASSERT_TRUE(eventually([&] { return rolled_out("web", 2); })) << dump("web");
  std::string old_hash = hash_of(pods_of("web").at(0));
  auto events = watch_pods();
  watch_options wo;
  wo.resource_version = st.list(deployments, "demo", {})->resource_version;
  auto dep_events = std::move(*st.watch(deployments, "demo", wo));

  patch_deployment("web", R"({"spec":{"template":{"metadata":{"annotations":{"rev":"2"}}}}})");
  ASSERT_TRUE(eventually([&] {
    return rolled_out("web", 2) && hash_of(pods_of("web").at(0)) != old_hash;
  })) << dump("web");

  // When an old pod got its deletionTimestamp, as many new pods were ready as old ones had
  // been deleted so far.
  events.pump();
  std::set<std::string> new_ready, old_deleting;
  for (const auto& [type, o] : events.seen) {
    bool is_old = hash_of(o) == old_hash;
    if (!is_old && ready(o)) new_ready.insert(name_of(o));
    if (is_old && deleting(o) && old_deleting.insert(name_of(o)).second) {
      EXPECT_GE(new_ready.size(), old_deleting.size()) << json::dump(o);
    }
  }
  EXPECT_EQ(old_deleting.size(), 2u);
  // The Deployment never stopped being Available.
  for (const auto& line : dep_events->next(0ms)) {
    auto ev = json::parse(line);
    ASSERT_TRUE(ev.has_value());
    const auto* o = ev->at("object");
    if (o->at("status") != nullptr) {
      EXPECT_TRUE(condition_is(*o, "Available", "True")) << json::dump(*o);
    }
  }
}

TEST_F(kubelet_deployment_test, a_deleted_pod_is_replaced) {
  ASSERT_TRUE(create_deployment("web", 1));
  ASSERT_TRUE(eventually([&] { return rolled_out("web", 1); })) << dump("web");
  auto first = pods_of("web").at(0);
  ASSERT_TRUE(st.remove(pods, "demo", name_of(first)).has_value());
  ASSERT_TRUE(eventually([&] {
    return rolled_out("web", 1) && name_of(pods_of("web").at(0)) != name_of(first);
  })) << dump("web");
  EXPECT_FALSE(pid_alive(pid_of(first)));
  EXPECT_EQ(hash_of(pods_of("web").at(0)), hash_of(first));
}

// A container that exits is restarted in place (restartPolicy Always, as a Deployment's pods
// have it); a pod that ends (restartPolicy Never, which Kubernetes would refuse for a
// Deployment) is replaced by a new pod.
TEST_F(kubelet_deployment_test, containers_restart_and_ended_pods_are_replaced) {
  std::string lsf = R"({"name":"ls","image":"rclone/rclone","args":["lsf",")" +
                    (root / "src").string() + R"("]})";
  ASSERT_TRUE(create_deployment("always", 1, lsf));
  ASSERT_TRUE(
      create_deployment("never", 1, lsf, R"({"template":{"spec":{"restartPolicy":"Never"}}})"));
  std::string first_never;
  ASSERT_TRUE(eventually([&] {
    auto ps = pods_of("never");
    if (first_never.empty() && !ps.empty()) first_never = name_of(ps[0]);
    return !first_never.empty() && !ps.empty() &&
           std::none_of(ps.begin(), ps.end(),
                        [&](const json::value& p) { return name_of(p) == first_never; });
  })) << dump("never");
  ASSERT_TRUE(eventually([&] {
    auto ps = pods_of("always");
    if (ps.size() != 1) return false;
    const auto* cs = ps[0].at_path({"status", "containerStatuses"});
    return cs != nullptr && cs->as_array().at(0).get_int("restartCount") >= 2;
  })) << dump("always");
}

TEST_F(kubelet_deployment_test, deleting_the_deployment_removes_its_pods) {
  ASSERT_TRUE(create_deployment("web", 2));
  ASSERT_TRUE(eventually([&] { return rolled_out("web", 2); })) << dump("web");
  std::vector<pid_t> pids;
  for (const auto& p : pods_of("web"))
    pids.push_back(pid_of(p));
  auto r = st.remove(deployments, "demo", "web");
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->deleted);
  ASSERT_TRUE(eventually([&] { return pods_of("web").empty(); })) << dump("web");
  for (pid_t pid : pids)
    EXPECT_FALSE(pid_alive(pid));
  EXPECT_TRUE(eventually([&] { return k->running_processes() == 0; }));
}

// Pods go through the mutating admission webhooks: a webhook that cannot be called (failurePolicy
// Fail) stops their creation, which the status shows as ReplicaFailure.
TEST_F(kubelet_deployment_test, a_refused_pod_create_is_a_replica_failure) {
  ASSERT_TRUE(st.create(webhooks, "", must_parse(R"({
    "apiVersion":"admissionregistration.k8s.io/v1","kind":"MutatingWebhookConfiguration",
    "metadata":{"name":"unreachable"},
    "webhooks":[{"name":"unreachable.example.com","clientConfig":{"url":"https://127.0.0.1:1/m"},
      "rules":[{"operations":["CREATE"],"apiGroups":[""],"apiVersions":["v1"],"resources":["pods"]}],
      "failurePolicy":"Fail","sideEffects":"None","admissionReviewVersions":["v1"],
      "timeoutSeconds":1}]})")));
  ASSERT_TRUE(create_deployment("web", 1));
  ASSERT_TRUE(eventually([&] {
    auto d = get_deployment("web");
    return d && condition_is(d->obj, "ReplicaFailure", "True", "FailedCreate") &&
           condition_is(d->obj, "Available", "False");
  })) << dump("web");
  EXPECT_NE(condition(get_deployment("web")->obj, "ReplicaFailure")
                ->get_string("message")
                .find("unreachable.example.com"),
            std::string_view::npos);
  EXPECT_TRUE(pods_of("web").empty());

  ASSERT_TRUE(st.remove(webhooks, "", "unreachable").has_value());
  ASSERT_TRUE(eventually([&] { return rolled_out("web", 1); })) << dump("web");
  EXPECT_EQ(condition(get_deployment("web")->obj, "ReplicaFailure"), nullptr);
}

// --- nfs volumes -------------------------------------------------------------------------

// The NFS server is a local folder: pods naming the same server and path share it, whatever
// way the path is written; a claim bound to an nfs PersistentVolume is that folder too.
TEST_F(kubelet_deployment_test, nfs_volumes_of_one_server_and_path_share_a_folder) {
  fs::path share = root / "data" / "nfs" / "nfs.example.com" / "exports" / "docs";
  ASSERT_TRUE(run_once(
      "writer", R"(["copy","/in","/share"])",
      hostpath("in", root / "src") + "," + nfs("share", "NFS.example.com", "/exports/docs"),
      mount("in", "/in") + "," + mount("share", "/share")));
  ASSERT_TRUE(eventually([&] { return phase("writer") == "Succeeded"; })) << dump_pod("writer");
  EXPECT_EQ(read_file(share / "a.txt"), "hello");

  // Another pod, the same export written another way, reads what the first wrote.
  ASSERT_TRUE(run_once("reader", R"(["copy","/share","/out"])",
                       nfs("share", "nfs.example.com.", "/exports/./tmp/../docs/") + "," +
                           hostpath("out", root / "out"),
                       mount("share", "/share") + "," + mount("out", "/out")));
  ASSERT_TRUE(eventually([&] { return phase("reader") == "Succeeded"; })) << dump_pod("reader");
  EXPECT_EQ(read_file(root / "out" / "a.txt"), "hello");

  // A claim bound by spec.volumeName to an nfs PersistentVolume: the same folder. The pod
  // waits while the PersistentVolume does not exist.
  ASSERT_TRUE(st.create(claims, "demo", must_parse(R"({"metadata":{"name":"docs"},
      "spec":{"accessModes":["ReadWriteMany"],"volumeName":"pv-docs",
              "resources":{"requests":{"storage":"1Gi"}}}})")));
  ASSERT_TRUE(run_once("by-name", R"(["copy","/claim","/out2"])",
                       R"({"name":"claim","persistentVolumeClaim":{"claimName":"docs"}},)" +
                           hostpath("out2", root / "out2"),
                       mount("claim", "/claim") + "," + mount("out2", "/out2")));
  ASSERT_TRUE(eventually([&] {
    return waiting_message("by-name").find("persistentvolume \"pv-docs\", which does not exist") !=
           std::string::npos;
  })) << dump_pod("by-name");
  ASSERT_TRUE(st.create(volumes, "", must_parse(R"({"metadata":{"name":"pv-docs"},
      "spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteMany"],
              "nfs":{"server":"nfs.example.com","path":"/exports/docs","readOnly":true},
              "claimRef":{"namespace":"demo","name":"docs"}}})")));
  ASSERT_TRUE(eventually([&] { return phase("by-name") == "Succeeded"; })) << dump_pod("by-name");
  EXPECT_EQ(read_file(root / "out2" / "a.txt"), "hello");

  // A PersistentVolume whose claimRef names the claim (no volumeName): the same folder; this
  // pod writes into it.
  ASSERT_TRUE(st.create(volumes, "", must_parse(R"({"metadata":{"name":"pv-by-ref"},
      "spec":{"nfs":{"server":"nfs.example.com","path":"/exports/docs"},
              "claimRef":{"namespace":"demo","name":"docs-by-ref"}}})")));
  ASSERT_TRUE(st.create(claims, "demo", must_parse(R"({"metadata":{"name":"docs-by-ref"},
      "spec":{"accessModes":["ReadWriteMany"],"resources":{"requests":{"storage":"1Gi"}}}})")));
  ASSERT_TRUE(run_once("by-ref", R"(["touch","/claim/from-claim.txt"])",
                       R"({"name":"claim","persistentVolumeClaim":{"claimName":"docs-by-ref"}})",
                       mount("claim", "/claim")));
  ASSERT_TRUE(eventually([&] { return phase("by-ref") == "Succeeded"; })) << dump_pod("by-ref");
  EXPECT_TRUE(fs::exists(share / "from-claim.txt"));
  EXPECT_FALSE(fs::exists(root / "data" / "volumes" / "demo" / "docs-by-ref"));

  // A claim bound to no nfs PersistentVolume keeps its own folder.
  ASSERT_TRUE(run_once("plain", R"(["touch","/claim/x.txt"])",
                       R"({"name":"claim","persistentVolumeClaim":{"claimName":"scratch"}})",
                       mount("claim", "/claim")));
  ASSERT_TRUE(eventually([&] { return phase("plain") == "Succeeded"; })) << dump_pod("plain");
  EXPECT_TRUE(fs::exists(root / "data" / "volumes" / "demo" / "scratch" / "x.txt"));
}

// Two replicas of a Deployment with one nfs volume: what one pod writes, the other sees.
TEST_F(kubelet_deployment_test, replicas_share_an_nfs_volume) {
  // The pods' processes serve rclone's remote control; the test writes into the share through
  // one pod's mount folder and reads the other's (both are the export's folder).
  std::string container = R"({"name":"rcd","image":"rclone/rclone","args":["rcd","--rc-addr",
      "127.0.0.1:0","--rc-files","/share"],"volumeMounts":[{"name":"share","mountPath":"/share"}]})";
  ASSERT_TRUE(create_deployment(
      "mirror", 2, container,
      R"({"template":{"spec":{"volumes":[{"name":"share","nfs":{"server":"10.0.0.7","path":"/"}}]}}})"));
  ASSERT_TRUE(eventually([&] { return rolled_out("mirror", 2); })) << dump("mirror");
  // Each process got the mapped folder as its --rc-files argument.
  fs::path share = root / "data" / "nfs" / "10.0.0.7";
  for (const auto& p : pods_of("mirror")) {
    std::string cmdline = read_file("/proc/" + std::to_string(pid_of(p)) + "/cmdline");
    EXPECT_NE(cmdline.find(share.string()), std::string::npos) << cmdline;
  }
  // A job-like pod writes into the export, and a second reads it back.
  ASSERT_TRUE(run_once("w", R"(["copy","/in","/share/site"])",
                       hostpath("in", root / "src") + "," + nfs("share", "10.0.0.7", "/"),
                       mount("in", "/in") + "," + mount("share", "/share")));
  ASSERT_TRUE(eventually([&] { return phase("w") == "Succeeded"; })) << dump_pod("w");
  EXPECT_EQ(read_file(share / "site" / "a.txt"), "hello");
}

TEST_F(kubelet_deployment_test, nfs_paths_stay_inside_the_server_folder) {
  // ".." cannot climb out of the server's folder: "/../../escape" is "/escape" there.
  ASSERT_TRUE(run_once("climb", R"(["touch","/share/x.txt"])", nfs("share", "srv", "/../../escape"),
                       mount("share", "/share")));
  ASSERT_TRUE(eventually([&] { return phase("climb") == "Succeeded"; })) << dump_pod("climb");
  EXPECT_TRUE(fs::exists(root / "data" / "nfs" / "srv" / "escape" / "x.txt"));
  EXPECT_FALSE(fs::exists(root / "escape"));
  // A relative path or a server that is not one name leaves the pod waiting, with the reason.
  ASSERT_TRUE(run_once("relative", R"(["touch","/share/x.txt"])", nfs("share", "srv", "exports"),
                       mount("share", "/share")));
  ASSERT_TRUE(run_once("slash", R"(["touch","/share/x.txt"])", nfs("share", "a/b", "/x"),
                       mount("share", "/share")));
  ASSERT_TRUE(eventually([&] {
    return waiting_message("relative").find("must be an absolute path") != std::string::npos &&
           waiting_message("slash").find("is not a host name or address") != std::string::npos;
  })) << dump_pod("relative")
      << dump_pod("slash");
}

}  // namespace
}  // namespace tidesync::apiserver
