// Graceful Pod deletion in the embedded API server (store::register_node), in the store and
// through DeleteOptions over HTTP.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <string>

#include "runtime/apiserver/server.hpp"
#include "runtime/apiserver/store.hpp"
#include "runtime/json/value.hpp"
#include "runtime/rfc3339.hpp"

namespace tidesync::apiserver {
namespace {

json::value must_parse(std::string_view text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? *v : json::value{};
}

class pod_deletion_test : public ::testing::Test {
 protected:
  void SetUp() override {
    pods = *st.find_type("", "v1", "pods");
    jobs = *st.find_type("batch", "v1", "jobs");
    st.register_node("node-a");
  }

  // A pod bound to `node` (empty: not scheduled), in `phase`.
  object_ptr make_pod(const std::string& name, const std::string& node,
                      const std::string& phase = "Running", const std::string& spec_extra = "",
                      const std::string& meta_extra = "") {
    std::string text = R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + name + R"(")" +
                       meta_extra + R"(},"spec":{"containers":[{"name":"c","image":"x"}])";
    if (!node.empty()) text += R"(,"nodeName":")" + node + R"(")";
    text += spec_extra + R"(}})";
    auto created = st.create(pods, "default", must_parse(text));
    EXPECT_TRUE(created.has_value());
    if (!created) return nullptr;
    json::value obj = (*created)->obj;
    obj["status"] = json::object{{"phase", phase}};
    auto updated = st.update(pods, "default", name, obj, true);
    EXPECT_TRUE(updated.has_value());
    return updated ? *updated : nullptr;
  }
  bool exists(const std::string& name) { return st.get(pods, "default", name).has_value(); }
  static delete_options grace(int64_t s) {
    delete_options d;
    d.grace_period_seconds = s;
    return d;
  }
  static int64_t seconds_from_now(const json::value& obj) {
    auto t = rfc3339::parse(obj.at_path({"metadata", "deletionTimestamp"})->as_string());
    EXPECT_TRUE(t.has_value());
    return std::chrono::duration_cast<std::chrono::seconds>(*t - std::chrono::system_clock::now())
        .count();
  }

  store st;
  resource_type pods, jobs;
};

TEST_F(pod_deletion_test, pods_without_a_registered_node_or_terminated_go_at_once) {
  make_pod("unscheduled", "");
  make_pod("elsewhere", "node-b");
  make_pod("done", "node-a", "Succeeded");
  make_pod("failed", "node-a", "Failed");
  for (const char* name : {"unscheduled", "elsewhere", "done", "failed"}) {
    auto r = st.remove(pods, "default", name);
    ASSERT_TRUE(r.has_value()) << name;
    EXPECT_TRUE(r->deleted) << name;
    EXPECT_FALSE(exists(name)) << name;
  }
  // A grace period of 0 deletes a running pod at once.
  make_pod("forced", "node-a");
  auto r = st.remove(pods, "default", "forced", grace(0));
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->deleted);
  EXPECT_FALSE(exists("forced"));
}

TEST_F(pod_deletion_test, a_running_pod_on_a_registered_node_waits_for_its_kubelet) {
  make_pod("web", "node-a");
  auto r = st.remove(pods, "default", "web");
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->deleted);
  const auto* meta = r->object->obj.at("metadata");
  EXPECT_EQ(meta->get_int("deletionGracePeriodSeconds"), 30);  // the default
  EXPECT_NEAR(seconds_from_now(r->object->obj), 30, 2);        // now + grace, as kube-apiserver
  ASSERT_TRUE(exists("web"));

  // The kubelet writes status while it stops the containers: the pod stays.
  json::value obj = (*st.get(pods, "default", "web"))->obj;
  obj["status"]["phase"] = "Running";
  obj["status"]["message"] = "stopping";
  ASSERT_TRUE(st.update(pods, "default", "web", obj, true).has_value());
  ASSERT_TRUE(exists("web"));

  // Another delete may only shorten the period; the deadline moves with it.
  r = st.remove(pods, "default", "web", grace(60));
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->deleted);
  EXPECT_EQ(r->object->obj.at("metadata")->get_int("deletionGracePeriodSeconds"), 30);
  r = st.remove(pods, "default", "web", grace(10));
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->deleted);
  EXPECT_EQ(r->object->obj.at("metadata")->get_int("deletionGracePeriodSeconds"), 10);
  EXPECT_NEAR(seconds_from_now(r->object->obj), 10, 2);
  r = st.remove(pods, "default", "web");  // no period given: nothing changes
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->deleted);

  // The kubelet's final delete.
  r = st.remove(pods, "default", "web", grace(0));
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->deleted);
  EXPECT_FALSE(exists("web"));
}

TEST_F(pod_deletion_test, a_dry_run_delete_answers_the_graceful_deletion_and_keeps_the_pod) {
  make_pod("web", "node-a");
  const uint64_t rv = st.current_resource_version();
  delete_options d;
  d.mode = write_mode::dry_run;
  auto r = st.remove(pods, "default", "web", d);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->deleted);
  EXPECT_EQ(r->object->obj.at("metadata")->get_int("deletionGracePeriodSeconds"), 30);
  EXPECT_NEAR(seconds_from_now(r->object->obj), 30, 2);
  d.grace_period_seconds = 0;
  r = st.remove(pods, "default", "web", d);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->deleted) << "a grace period of 0 would delete it at once";
  auto kept = st.get(pods, "default", "web");
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ((*kept)->obj.at_path({"metadata", "deletionTimestamp"}), nullptr);
  EXPECT_EQ(st.current_resource_version(), rv);
}

TEST_F(pod_deletion_test, the_pods_grace_period_and_unregistering_the_node) {
  make_pod("quick", "node-a", "Running", R"(,"terminationGracePeriodSeconds":5)");
  auto r = st.remove(pods, "default", "quick");
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->deleted);
  EXPECT_EQ(r->object->obj.at("metadata")->get_int("deletionGracePeriodSeconds"), 5);

  // Once no kubelet serves the node, deletions are immediate again (simulate --no-kubelet).
  st.unregister_node("node-a");
  make_pod("later", "node-a");
  r = st.remove(pods, "default", "later");
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->deleted);
}

TEST_F(pod_deletion_test, finalizers_keep_the_pod_after_the_final_delete) {
  make_pod("held", "node-a", "Running", "", R"(,"finalizers":["example.com/hold"])");
  auto r = st.remove(pods, "default", "held");
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->deleted);
  EXPECT_EQ(r->object->obj.at("metadata")->get_int("deletionGracePeriodSeconds"), 30);
  r = st.remove(pods, "default", "held", grace(0));
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->deleted);
  EXPECT_EQ(r->object->obj.at("metadata")->get_int("deletionGracePeriodSeconds", -1), 0);
  json::value obj = r->object->obj;
  obj["metadata"].as_object().erase("finalizers");
  ASSERT_TRUE(st.update(pods, "default", "held", obj).has_value());
  EXPECT_FALSE(exists("held"));
}

TEST_F(pod_deletion_test, a_jobs_cascade_deletes_its_running_pods_gracefully) {
  auto job = st.create(jobs, "default", must_parse(R"({"apiVersion":"batch/v1","kind":"Job",
      "metadata":{"name":"j"},"spec":{"template":{"spec":{"restartPolicy":"Never",
      "containers":[{"name":"c","image":"x"}]}}}})"));
  ASSERT_TRUE(job.has_value());
  make_pod("j-abcde", "node-a", "Running", "",
           R"(,"ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":"j","uid":")" +
               (*job)->uid + R"(","controller":true}])");
  ASSERT_TRUE(st.remove(jobs, "default", "j").has_value());
  auto p = st.get(pods, "default", "j-abcde");
  ASSERT_TRUE(p.has_value());
  EXPECT_NE((*p)->obj.at_path({"metadata", "deletionTimestamp"}), nullptr);
}

TEST_F(pod_deletion_test, grace_period_seconds_over_http) {
  server srv(st);
  auto port = srv.start();
  ASSERT_TRUE(port.has_value()) << port.error().message;
  httplib::Client cli("127.0.0.1", *port);
  make_pod("a", "node-a");
  make_pod("b", "node-a");
  // kubectl delete --grace-period=7 sends it in the DeleteOptions body.
  auto r = cli.Delete("/api/v1/namespaces/default/pods/a",
                      R"({"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":7})",
                      "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto body = must_parse(r->body);
  EXPECT_EQ(body.get_string("kind"), "Pod");  // the pod as it is now: still there
  EXPECT_EQ(body.at("metadata")->get_int("deletionGracePeriodSeconds"), 7);
  // The query parameter works too; 0 deletes at once.
  r = cli.Delete("/api/v1/namespaces/default/pods/a?gracePeriodSeconds=0");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(must_parse(r->body).get_string("status"), "Success");
  EXPECT_FALSE(exists("a"));
  r = cli.Delete("/api/v1/namespaces/default/pods/b?gracePeriodSeconds=soon");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(exists("b"));
  srv.stop();
}

}  // namespace
}  // namespace tidesync::apiserver
