// The simulated Deployment controller's decisions (deployment_logic.hpp): pure, no store.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "runtime/apiserver/deployment_logic.hpp"
#include "runtime/rfc3339.hpp"

namespace tidesync::apiserver {
namespace {

using namespace std::chrono_literals;
using sys_clock = std::chrono::system_clock;

json::value must_parse(std::string_view text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? *v : json::value{};
}

// A fixed "now" so condition times are predictable.
const sys_clock::time_point t0 = sys_clock::time_point(std::chrono::seconds(1700000000));

std::string at(sys_clock::time_point t) {
  return rfc3339::format(std::chrono::time_point_cast<std::chrono::seconds>(t));
}

json::value deployment(const std::string& extra_spec = "{}", int64_t replicas = 2) {
  json::value d = must_parse(R"({"apiVersion":"apps/v1","kind":"Deployment",
    "metadata":{"name":"web","namespace":"demo","uid":"d-uid","generation":1},
    "spec":{"replicas":)" + std::to_string(replicas) +
                             R"(,"selector":{"matchLabels":{"app":"web"}},
      "template":{"metadata":{"labels":{"app":"web"}},
        "spec":{"containers":[{"name":"app","image":"nginx"}]}}}})");
  d["spec"] = json::merge_patch(d["spec"], must_parse(extra_spec));
  return d;
}

std::string hash_of(const json::value& d) {
  return pod_template_hash(*d.at_path({"spec", "template"}));
}

// A Pod of the Deployment: `hash` its template, `ready_since` when it became ready (unset: not
// ready), `phase` Running unless given.
json::value pod(const std::string& name, const std::string& hash,
                std::optional<sys_clock::time_point> ready_since = t0 - 60s,
                const std::string& phase = "Running", bool deleting = false,
                const std::string& created = "2023-11-14T22:00:00Z") {
  json::value p = must_parse(R"({"metadata":{"name":")" + name + R"(","uid":"u-)" + name +
                             R"(","creationTimestamp":")" + created + R"(",
      "labels":{"app":"web","pod-template-hash":")" +
                             hash + R"("},
      "ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"web",
                          "uid":"d-uid","controller":true}]},
    "spec":{"nodeName":"tidesync-simulate"},"status":{"phase":")" +
                             phase + R"("}})");
  json::array conds;
  conds.push_back(json::object{{"type", "Ready"},
                               {"status", ready_since ? "True" : "False"},
                               {"lastTransitionTime", at(ready_since.value_or(t0 - 60s))}});
  p["status"]["conditions"] = std::move(conds);
  if (deleting) p["metadata"]["deletionTimestamp"] = at(t0 + 30s);
  return p;
}

std::vector<std::string> removed(const deployment_plan& p) {
  std::vector<std::string> out;
  for (const auto& k : p.remove)
    out.push_back(k.name);
  std::sort(out.begin(), out.end());
  return out;
}

const json::value* cond(const json::value& status, std::string_view type) {
  for (const auto& c : status.at("conditions")->as_array())
    if (c.get_string("type") == type) return &c;
  return nullptr;
}

TEST(deployment_logic, template_hash_ignores_key_order_and_looks_like_kubernetes) {
  auto a = must_parse(R"({"metadata":{"labels":{"app":"web","tier":"x"}},
      "spec":{"containers":[{"name":"app","image":"nginx"}]}})");
  auto b = must_parse(R"({"spec":{"containers":[{"image":"nginx","name":"app"}]},
      "metadata":{"labels":{"tier":"x","app":"web"}}})");
  auto c = must_parse(R"({"metadata":{"labels":{"app":"web","tier":"y"}},
      "spec":{"containers":[{"name":"app","image":"nginx"}]}})");
  EXPECT_EQ(pod_template_hash(a), pod_template_hash(b));
  EXPECT_NE(pod_template_hash(a), pod_template_hash(c));
  std::string h = pod_template_hash(a);
  EXPECT_GE(h.size(), 1u);
  EXPECT_LE(h.size(), 10u);
  EXPECT_EQ(h.find_first_not_of("bcdfghjklmnpqrstvwxz2456789"), std::string::npos) << h;
}

TEST(deployment_logic, new_pod_is_named_labelled_and_owned) {
  auto d = deployment();
  auto p = deployment_pod(d, "abc42", "xyz12");
  const auto* m = p.at("metadata");
  EXPECT_EQ(m->get_string("name"), "web-abc42-xyz12");
  EXPECT_EQ(m->get_string("generateName"), "web-abc42-");
  EXPECT_EQ(m->get_string("namespace"), "demo");
  EXPECT_EQ(m->at("labels")->get_string("app"), "web");
  EXPECT_EQ(m->at("labels")->get_string("pod-template-hash"), "abc42");
  const auto& ref = m->at("ownerReferences")->as_array().at(0);
  EXPECT_EQ(ref.get_string("kind"), "Deployment");
  EXPECT_EQ(ref.get_string("uid"), "d-uid");
  EXPECT_TRUE(ref.get_bool("controller"));
  EXPECT_EQ(controlling_deployment(p), "d-uid");
  EXPECT_EQ(p.at_path({"spec", "containers"})->as_array().at(0).get_string("image"), "nginx");
  EXPECT_EQ(p.at_path({"spec", "nodeName"}), nullptr);  // bound by the kubelet

  // A long name is cut so the whole stays within 63 characters.
  auto long_d = deployment();
  long_d["metadata"]["name"] = std::string(70, 'a');
  std::string name(
      deployment_pod(long_d, "abc42", "xyz12").at_path({"metadata", "name"})->as_string());
  EXPECT_EQ(name.size(), 63u);
}

TEST(deployment_logic, scales_up_and_down_from_the_pods_it_has) {
  auto d = deployment("{}", 3);
  std::string h = hash_of(d);
  auto up = plan_deployment(d, {pod("a", h)}, t0);
  EXPECT_EQ(up.hash, h);
  EXPECT_EQ(up.create, 2);
  EXPECT_TRUE(up.remove.empty());

  // Down to 1: the unready and the newer go first; a pod being deleted does not count.
  auto down = deployment("{}", 1);
  auto plan =
      plan_deployment(down,
                      {pod("old-ready", h, t0 - 300s, "Running", false, "2023-11-14T20:00:00Z"),
                       pod("new-ready", h, t0 - 10s, "Running", false, "2023-11-14T21:00:00Z"),
                       pod("unready", h, std::nullopt), pod("going", h, t0 - 10s, "Running", true)},
                      t0);
  EXPECT_EQ(plan.create, 0);
  EXPECT_EQ(removed(plan), (std::vector<std::string>{"new-ready", "unready"}));

  // Default replicas is 1; a paused or deleted Deployment is left alone.
  auto one = deployment();
  one["spec"].as_object().erase("replicas");
  EXPECT_EQ(plan_deployment(one, {}, t0).create, 1);
  EXPECT_EQ(plan_deployment(deployment(R"({"paused":true})"), {}, t0).create, 0);
  auto deleted = deployment();
  deleted["metadata"]["deletionTimestamp"] = at(t0);
  EXPECT_EQ(plan_deployment(deleted, {}, t0).create, 0);
}

TEST(deployment_logic, ended_pods_are_deleted_and_replaced) {
  auto d = deployment();
  std::string h = hash_of(d);
  auto plan = plan_deployment(d, {pod("ok", h), pod("done", h, std::nullopt, "Succeeded")}, t0);
  EXPECT_EQ(removed(plan), std::vector<std::string>{"done"});
  EXPECT_EQ(plan.create, 1);
}

TEST(deployment_logic, recreate_deletes_the_old_pods_before_making_new_ones) {
  auto d = deployment(R"({"strategy":{"type":"Recreate"}})");
  std::string h = hash_of(d);
  auto first = plan_deployment(d, {pod("old-1", "oldhash"), pod("old-2", "oldhash")}, t0);
  EXPECT_EQ(removed(first), (std::vector<std::string>{"old-1", "old-2"}));
  EXPECT_EQ(first.create, 0);
  // Still terminating: wait.
  auto waiting = plan_deployment(
      d,
      {pod("old-1", "oldhash", t0, "Running", true), pod("old-2", "oldhash", t0, "Running", true)},
      t0);
  EXPECT_TRUE(waiting.remove.empty());
  EXPECT_EQ(waiting.create, 0);
  // Gone (or ended): the new template's pods.
  auto then = plan_deployment(d, {pod("old-1", "oldhash", std::nullopt, "Succeeded", true)}, t0);
  EXPECT_EQ(then.create, 2);
}

TEST(deployment_logic, rolling_update_keeps_an_old_pod_per_new_one_not_yet_available) {
  auto d = deployment(R"({"minReadySeconds":30})");
  std::string h = hash_of(d);
  std::vector<json::value> pods{pod("old-1", "oldhash"), pod("old-2", "oldhash")};
  auto surge = plan_deployment(d, pods, t0);
  EXPECT_EQ(surge.create, 2);
  EXPECT_TRUE(surge.remove.empty());
  // One new pod ready long enough (available), one ready too recently, one old pod goes.
  pods.push_back(pod("new-1", h, t0 - 60s));
  pods.push_back(pod("new-2", h, t0 - 5s));
  auto half = plan_deployment(d, pods, t0);
  EXPECT_EQ(half.create, 0);
  EXPECT_EQ(half.remove.size(), 1u);
  // Both available: the last old pod goes.
  auto all = plan_deployment(d, pods, t0 + 60s);
  EXPECT_EQ(removed(all), (std::vector<std::string>{"old-1", "old-2"}));
}

TEST(deployment_logic, status_counts_and_conditions) {
  auto d = deployment();
  std::string h = hash_of(d);
  auto s = deployment_status(d, {pod("a", h), pod("b", h, std::nullopt)}, t0, "");
  EXPECT_EQ(s.get_int("observedGeneration"), 1);
  EXPECT_EQ(s.get_int("replicas"), 2);
  EXPECT_EQ(s.get_int("updatedReplicas"), 2);
  EXPECT_EQ(s.get_int("readyReplicas"), 1);
  EXPECT_EQ(s.get_int("availableReplicas"), 1);
  EXPECT_EQ(s.get_int("unavailableReplicas"), 1);
  EXPECT_EQ(cond(s, "Available")->get_string("status"), "False");
  EXPECT_EQ(cond(s, "Available")->get_string("reason"), "MinimumReplicasUnavailable");
  EXPECT_EQ(cond(s, "Progressing")->get_string("status"), "True");
  EXPECT_EQ(cond(s, "Progressing")->get_string("reason"), "ReplicaSetUpdated");
  EXPECT_EQ(cond(s, "Progressing")->get_string("message"),
            "ReplicaSet \"web-" + h + "\" is progressing.");
  EXPECT_EQ(cond(s, "ReplicaFailure"), nullptr);

  // Both ready: Available, and the rollout is complete.
  d["status"] = s;
  auto done = deployment_status(d, {pod("a", h), pod("b", h)}, t0 + 10s, "");
  EXPECT_EQ(done.get_int("availableReplicas"), 2);
  EXPECT_EQ(done.at("unavailableReplicas"), nullptr);  // zero: omitted, as Kubernetes does
  EXPECT_EQ(cond(done, "Available")->get_string("status"), "True");
  EXPECT_EQ(cond(done, "Available")->get_string("reason"), "MinimumReplicasAvailable");
  EXPECT_EQ(cond(done, "Available")->get_string("lastTransitionTime"), at(t0 + 10s));
  EXPECT_EQ(cond(done, "Progressing")->get_string("reason"), "NewReplicaSetAvailable");
  EXPECT_EQ(cond(done, "Progressing")->get_string("lastTransitionTime"), at(t0));

  // Nothing changed: the same status, times included (no write).
  d["status"] = done;
  EXPECT_EQ(json::dump(deployment_status(d, {pod("a", h), pod("b", h)}, t0 + 20s, "")),
            json::dump(done));

  // A failed create shows as ReplicaFailure.
  auto failed = deployment_status(d, {pod("a", h)}, t0 + 30s, "denied by a webhook");
  EXPECT_EQ(cond(failed, "ReplicaFailure")->get_string("reason"), "FailedCreate");
  EXPECT_EQ(cond(failed, "ReplicaFailure")->get_string("message"), "denied by a webhook");

  // Paused.
  auto paused = deployment(R"({"paused":true})");
  EXPECT_EQ(cond(deployment_status(paused, {}, t0, ""), "Progressing")->get_string("reason"),
            "DeploymentPaused");
  // Zero replicas: available.
  auto zero = deployment("{}", 0);
  EXPECT_EQ(cond(deployment_status(zero, {}, t0, ""), "Available")->get_string("status"), "True");
}

TEST(deployment_logic, no_progress_for_the_deadline_is_progress_deadline_exceeded) {
  auto d = deployment(R"({"progressDeadlineSeconds":60})");
  std::string h = hash_of(d);
  std::vector<json::value> stuck{pod("a", h, std::nullopt), pod("b", h, std::nullopt)};
  d["status"] = deployment_status(d, stuck, t0, "");
  EXPECT_EQ(cond(d["status"], "Progressing")->get_string("reason"), "ReplicaSetUpdated");
  // Within the deadline: unchanged.
  EXPECT_EQ(json::dump(deployment_status(d, stuck, t0 + 59s, "")), json::dump(d["status"]));
  auto late = deployment_status(d, stuck, t0 + 61s, "");
  EXPECT_EQ(cond(late, "Progressing")->get_string("status"), "False");
  EXPECT_EQ(cond(late, "Progressing")->get_string("reason"), "ProgressDeadlineExceeded");
  // A pod getting ready is progress again.
  d["status"] = late;
  auto again = deployment_status(d, {pod("a", h), pod("b", h, std::nullopt)}, t0 + 70s, "");
  EXPECT_EQ(cond(again, "Progressing")->get_string("status"), "True");
  EXPECT_EQ(cond(again, "Progressing")->get_string("reason"), "ReplicaSetUpdated");
}

TEST(deployment_logic, old_pods_count_until_they_go) {
  auto d = deployment();
  std::string h = hash_of(d);
  auto s = deployment_status(d, {pod("old", "oldhash"), pod("new", h, std::nullopt)}, t0, "");
  EXPECT_EQ(s.get_int("replicas"), 2);
  EXPECT_EQ(s.get_int("updatedReplicas"), 1);
  EXPECT_EQ(s.get_int("availableReplicas"), 1);
  EXPECT_EQ(s.get_int("unavailableReplicas"), 2);  // 2 wanted of the new template + 1 old - 1
}

}  // namespace
}  // namespace tidesync::apiserver
