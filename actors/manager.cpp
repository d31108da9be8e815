#include "actors/manager.hpp"

#include <caf/all.hpp>
#include <condition_variable>
#include <future>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "actors/config_api.hpp"
#include "actors/controller.hpp"
#include "actors/datasync_queue.hpp"
#include "actors/kinds.hpp"
#include "actors/lease_writer.hpp"
#include "actors/lock_manager.hpp"
#include "actors/pfs_status.hpp"
#include "actors/sharedconfig_status.hpp"
#include "actors/sharedvolume_controller.hpp"
#include "actors/type_ids.hpp"
#include "actors/watcher.hpp"
#include "actors/webhook_setup.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics/metrics.hpp"

namespace tidesync::actors {

namespace {

// Passes every call to the Lease writer and keeps tidesync_locks_held true (one lock per
// Lease). Runs on the lock manager's thread only.
class counting_sink : public lease_sink {
 public:
  counting_sink(std::shared_ptr<lease_sink> inner, std::shared_ptr<metrics::registry> m)
      : inner_(std::move(inner)), metrics_(std::move(m)) {}
  bool alive(std::string_view holder) override { return inner_->alive(holder); }
  void granted(const std::vector<lease_record>& leases) override {
    for (const auto& l : leases)
      held_.insert(l.path);
    report();
    inner_->granted(leases);
  }
  void renewed(const std::vector<lease_record>& leases) override {
    for (const auto& l : leases)
      held_.insert(l.path);
    report();
    inner_->renewed(leases);
  }
  void released(const std::vector<lease_record>& leases) override {
    for (const auto& l : leases)
      held_.erase(l.path);
    report();
    inner_->released(leases);
  }

 private:
  void report() {
    if (metrics_) metrics_->locks_held(static_cast<double>(held_.size()));
  }
  std::shared_ptr<lease_sink> inner_;
  std::shared_ptr<metrics::registry> metrics_;
  std::set<std::string> held_;
};

}  // namespace

struct manager::impl {
  k8s::client& client;
  http::loop& loop;
  manager_options options;
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<controller_context> ctx;
  std::vector<watcher_actor> watchers;
  // Which watchers each controller listens to (by the informer it owns).
  std::map<const watched*, watcher_actor> watcher_of;
  std::shared_ptr<lease_writer> leases;
  lock_manager_actor locks;
  controller_actor bucket_sync_controller;
  controller_actor policy_controller;
  controller_actor datasync_controller;
  datasync_queue_actor datasync_queue;
  // The config API: its server first, its writer (owner actors) second, both before `sys`.
  std::unique_ptr<configapi::backend> config_backend;
  std::unique_ptr<configapi::server> config_server;
  watcher_actor sharedconfig_watcher;  // feeds sharedconfig_status
  listener_actor sharedconfig_status;
  // The webhook: its server, the PodFilesystemSync and labelled-pod watchers, the status actor
  // and the maintenance thread (rotation, registration, periodic status).
  std::unique_ptr<webhook::server> webhook_server;
  std::vector<watcher_actor> pfs_watchers;
  listener_actor pfs_status;
  listener_actor sharedvolume_controller;
  std::shared_ptr<watched> sharedvolumes, cluster_sharedvolumes;
  std::thread webhook_thread;
  std::mutex webhook_mu;
  std::condition_variable webhook_cv;
  bool webhook_stopping = false;

  void webhook_maintenance(webhook_settings s, std::function<bool()> leading,
                           std::shared_ptr<watched> syncs, webhook::tls_material material);

  // Every informer of the process is made here, so each counts its watch reconnects.
  [[nodiscard]] std::shared_ptr<watched> watched_over(const k8s::resource& r, std::string ns,
                                                      watch::watcher_options o = {}) const {
    return make_watched(client, loop, r, std::move(ns), std::move(o), options.metrics);
  }
  [[nodiscard]] std::vector<std::shared_ptr<watched>> informers() const {
    return {ctx->bucket_syncs,    ctx->policies,          ctx->jobs,
            ctx->datasyncs,       ctx->datasync_jobs,     ctx->datasync_pods,
            ctx->datasync_claims, ctx->policy_config_maps};
  }
  [[nodiscard]] std::vector<watcher_actor> watchers_for(
      std::initializer_list<std::shared_ptr<watched>> sources) const {
    std::vector<watcher_actor> out;
    for (const auto& w : sources)
      out.push_back(watcher_of.at(w.get()));
    return out;
  }
  bool watching = false;
  bool running = false;
  bool stopped = false;

  impl(k8s::client& c, http::loop& l, manager_options o)
      : client(c), loop(l), options(std::move(o)) {
    cfg.add_message_types<caf::id_block::tidesync>();
    size_t threads = options.threads;
    if (threads == 0) threads = std::max<size_t>(2, std::thread::hardware_concurrency());
    cfg.set("scheduler.max-threads", threads);
    // CAF 0.17's idle workers poll with 50 µs sleeps before they block; a controller's steady
    // trickle of messages keeps them polling. Measured (docs/benchmarks.md): 5x less controller
    // CPU at the default API rate limit without the moderate polling phase.
    cfg.set("work-stealing.moderate-poll-attempts", size_t{0});
    // CAF prints its own log/banner to stderr otherwise; we use spdlog.
    cfg.set("logger.console", caf::atom("none"));
    sys = std::make_unique<caf::actor_system>(cfg);
  }
};

manager::manager(k8s::client& client, http::loop& loop, manager_options options)
    : impl_(std::make_unique<impl>(client, loop, std::move(options))) {}

manager::~manager() {
  stop();
}

expected<void> manager::start_watching() {
  auto& m = *impl_;
  if (m.watching) return {};
  auto ctx = std::make_shared<controller_context>();
  ctx->client = &m.client;
  ctx->events = m.options.events_client;
  const auto& wns = m.options.watch_namespace;
  ctx->bucket_syncs = m.watched_over(bucket_syncs_resource(), wns);
  ctx->policies = m.watched_over(bucket_sync_policies_resource(), wns);
  // Only our Jobs: the label every Job we build carries.
  watch::watcher_options jo;
  jo.label_selector = std::string(config::k_bucket_sync_label);
  ctx->jobs = m.watched_over(k8s::resources::jobs(), wns, jo);
  // DataSync: the kind, and what it owns by its label (populate pods carry it too).
  ctx->datasyncs = m.watched_over(datasyncs_resource(), wns);
  watch::watcher_options owned;
  owned.label_selector = std::string(config::k_datasync_label);
  ctx->datasync_jobs = m.watched_over(k8s::resources::jobs(), wns, owned);
  ctx->datasync_pods = m.watched_over(k8s::resources::pods(), wns, owned);
  ctx->datasync_claims = m.watched_over(k8s::resources::persistentvolumeclaims(), wns, owned);
  // The policy ConfigMap lives in the controller's namespace (its ConfigMaps are few).
  ctx->policy_config_maps = m.watched_over(k8s::resources::configmaps(), m.options.ns);
  ctx->controller_namespace = m.options.ns;
  ctx->populate = m.options.populate;
  ctx->metrics = m.options.metrics;
  ctx->job_settings = m.options.job;
  ctx->zoneinfo_root = m.options.zoneinfo_root;
  ctx->now = [] {
    return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  };
  m.ctx = ctx;
  for (const auto& w : m.informers()) {
    m.watchers.push_back(m.sys->spawn(watcher, w));
    m.watcher_of[w.get()] = m.watchers.back();
  }
  m.watching = true;
  return {};
}

std::string manager::unsynced() const {
  auto& m = *impl_;
  if (!m.ctx) return "everything (not watching yet)";
  std::string out;
  for (const auto& w : m.informers())
    if (!w->informer->has_synced()) out += (out.empty() ? "" : ", ") + w->resource;
  return out;
}

expected<void> manager::start_controllers() {
  auto& m = *impl_;
  if (m.running) return {};
  if (!m.watching) return make_error(errc::internal, "start_watching must come first");
  if (!synced())
    return make_error(errc::unavailable, "the informers have not synced: " + unsynced());
  auto existing = list_lock_leases(m.client, m.options.ns);
  if (!existing)
    return make_error(existing.error().code, "cannot list the lock Leases in namespace " +
                                                 m.options.ns + ": " + existing.error().message);
  auto bucket_syncs = m.ctx->bucket_syncs;
  k8s::client& lease_client = m.options.lease_client ? *m.options.lease_client : m.client;
  m.leases = std::make_shared<lease_writer>(lease_client, [bucket_syncs](std::string_view holder) {
    return bucket_sync_alive(bucket_syncs->cache(), holder);
  });
  auto lo = m.options.locks;
  lo.lease_namespace = m.options.ns;
  std::shared_ptr<lease_sink> sink = std::make_shared<counting_sink>(m.leases, m.options.metrics);
  m.locks = m.sys->spawn(lock_manager, lo, std::move(*existing), std::move(sink));
  m.ctx->locks = m.locks;
  m.datasync_queue = m.sys->spawn(datasync_queue, std::shared_ptr<const controller_context>(m.ctx));
  m.ctx->datasync_queue = m.datasync_queue;
  std::shared_ptr<const controller_context> ctx = m.ctx;
  m.bucket_sync_controller =
      m.sys->spawn(controller, bucket_sync_hooks(ctx), ctx, m.options.bucket_syncs,
                   m.watchers_for({ctx->bucket_syncs, ctx->jobs}));
  m.policy_controller = m.sys->spawn(controller, policy_hooks(ctx), ctx, m.options.policies,
                                     m.watchers_for({ctx->policies, ctx->bucket_syncs}));
  m.datasync_controller = m.sys->spawn(controller, datasync_hooks(ctx), ctx, m.options.datasyncs,
                                       m.watchers_for({ctx->datasyncs, ctx->datasync_jobs,
                                                       ctx->datasync_pods, ctx->datasync_claims}));
  auto queue_listener = caf::actor_cast<listener_actor>(m.datasync_queue);
  for (const auto& w : m.watchers_for({ctx->datasyncs, ctx->policy_config_maps}))
    caf::anon_send(w, atom::subscribe_v, queue_listener);
  caf::anon_send(m.datasync_queue, atom::attach_v, m.datasync_controller);
  m.running = true;
  log::get("controller")->info("controllers started (lock Leases in namespace {})", m.options.ns);
  return {};
}

bool manager::synced() const {
  auto& m = *impl_;
  if (!m.ctx) return false;
  for (const auto& w : m.informers())
    if (!w->informer->has_synced()) return false;
  return true;
}

bool manager::controllers_running() const {
  return impl_->running;
}

expected<uint16_t> manager::start_config_api(configapi::server_options options,
                                             std::function<bool()> leading) {
  auto& m = *impl_;
  if (m.config_server) return m.config_server->port();
  config_api_options o;
  o.leading = leading;
  auto o_leading = std::move(leading);
  m.config_backend = make_config_api_backend(*m.sys, m.client, m.loop, std::move(o));
  auto s = configapi::server::start(*m.config_backend, std::move(options));
  if (!s) {
    m.config_backend.reset();
    return s.error();
  }
  m.config_server = std::move(*s);
  // The SharedConfigs' status, from a watch of their own: not part of synced() (a cluster
  // without the SharedConfig CRD still runs the other controllers).
  sharedconfig_status_settings ss;
  ss.backend = m.config_backend.get();
  ss.sharedconfigs = m.watched_over(sharedconfigs_resource(), m.options.watch_namespace);
  ss.client = &m.client;
  ss.leading = o_leading;
  m.sharedconfig_watcher = m.sys->spawn(watcher, ss.sharedconfigs);
  m.sharedconfig_status = spawn_sharedconfig_status(*m.sys, std::move(ss));
  caf::anon_send(m.sharedconfig_watcher, atom::subscribe_v, m.sharedconfig_status);
  return m.config_server->port();
}

expected<uint16_t> manager::start_webhook(webhook_settings settings,
                                          std::function<bool()> leading) {
  auto& m = *impl_;
  if (m.webhook_server) return m.webhook_server->port();
  auto tls = ensure_webhook_tls(m.client, m.options.ns, settings.cert_names,
                                std::chrono::system_clock::now());
  if (!tls) return tls.error();
  const auto& wns = m.options.watch_namespace;
  auto syncs = m.watched_over(podfilesystemsyncs_resource(), wns);
  watch::watcher_options labelled;
  labelled.label_selector = std::string(config::k_volume_syncing_label) + "=true";
  auto pods = m.watched_over(k8s::resources::pods(), wns, labelled);

  auto inj = settings.injection;
  inj.report_url = settings.report_url;
  inj.report_ca = webhook::ca_bundle(tls->material, std::chrono::system_clock::now());
  inj.report_token = [key = tls->material.report_key](std::string_view ns, std::string_view pfs,
                                                      std::string_view id) {
    return webhook::report_token(key, ns, pfs, id);
  };
  // The decider needs the report URL, which needs the bound port: the server starts with a
  // holder that admits untouched until both it and the PodFilesystemSync listing are ready.
  struct decider_holder {
    std::mutex mu;
    config::pod_decider decide;
  };
  auto holder = std::make_shared<decider_holder>();
  auto server_opts = settings.server;
  server_opts.tls = tls->material.serving;
  server_opts.posts["/report"] =
      make_report_handler(m.client, tls->material.report_key, m.options.metrics);
  // SharedVolume and ClusterSharedVolume: the mounting webhook and the syncers' reports.
  auto volume_objects = settings.volumes;
  volume_objects.controller_namespace = m.options.ns;
  volume_objects.report_ca = inj.report_ca;
  m.sharedvolumes = m.watched_over(sharedvolumes_resource(), wns);
  m.cluster_sharedvolumes = m.watched_over(clustersharedvolumes_resource(), "");
  watch::watcher_options consumer_pods;
  consumer_pods.label_selector = std::string(config::k_shared_volume_consumer_label) + "=true";
  auto consumers = m.watched_over(k8s::resources::pods(), wns, consumer_pods);
  watch::watcher_options owned;
  owned.label_selector = std::string(config::k_shared_volume_id_label);
  auto volume_deployments =
      m.watched_over({"apps", "v1", "deployments", "Deployment", true}, "", owned);
  auto volume_claims = m.watched_over(k8s::resources::persistentvolumeclaims(), "", owned);
  server_opts.reviews[settings.registration.volumes_path] =
      make_mount_handler(m.client, m.sharedvolumes, m.cluster_sharedvolumes, volume_objects);
  server_opts.posts["/volume-report"] =
      make_volume_report_handler(m.client, tls->material.report_key);
  auto server = webhook::server::start(
      [holder, syncs](const json::value& review) -> expected<json::value> {
        config::pod_decider decide;
        {
          std::lock_guard lock(holder->mu);
          decide = holder->decide;
        }
        if (!decide || !syncs->informer->has_synced())
          return config::answer_admission_review(
              review, [](const json::value&, const std::string&) {
                config::injection_decision d;
                d.message = "the controller has not listed the PodFilesystemSyncs yet";
                return d;
              });
        return config::answer_admission_review(review, decide);
      },
      std::move(server_opts));
  if (!server) return server.error();
  m.webhook_server = std::move(*server);
  const auto port = m.webhook_server->port();
  auto with_port = [port](std::string s) {
    if (auto at = s.find("{port}"); at != std::string::npos) s.replace(at, 6, std::to_string(port));
    return s;
  };
  settings.registration.url = with_port(settings.registration.url);
  settings.report_url = with_port(settings.report_url);
  inj.report_url = settings.report_url;
  {
    std::lock_guard lock(holder->mu);
    holder->decide = make_pfs_decider(syncs, inj);
  }

  pfs_status_settings ps;
  ps.syncs = syncs;
  ps.pods = pods;
  ps.client = &m.client;
  ps.events = m.options.events_client;
  ps.leading = leading;
  ps.metrics = m.options.metrics;
  m.pfs_watchers.push_back(m.sys->spawn(watcher, syncs));
  m.pfs_watchers.push_back(m.sys->spawn(watcher, pods));
  m.pfs_status = spawn_pfs_status(*m.sys, std::move(ps));
  for (const auto& w : m.pfs_watchers)
    caf::anon_send(w, atom::subscribe_v, m.pfs_status);
  sharedvolume_settings vs;
  vs.volumes = m.sharedvolumes;
  vs.cluster_volumes = m.cluster_sharedvolumes;
  vs.consumers = consumers;
  vs.deployments = volume_deployments;
  vs.claims = volume_claims;
  vs.client = &m.client;
  vs.events = m.options.events_client;
  vs.leading = leading;
  vs.objects = volume_objects;
  if (auto at = settings.report_url.rfind("/report"); at != std::string::npos)
    vs.objects.report_url = settings.report_url.substr(0, at) + "/volume-report";
  vs.report_key = tls->material.report_key;
  vs.claim_grace = settings.volume_claim_grace;
  std::vector<watcher_actor> volume_watchers;
  for (const auto& w :
       {m.sharedvolumes, m.cluster_sharedvolumes, consumers, volume_deployments, volume_claims})
    volume_watchers.push_back(m.sys->spawn(watcher, w));
  m.sharedvolume_controller = spawn_sharedvolume_controller(*m.sys, std::move(vs));
  for (const auto& w : volume_watchers) {
    caf::anon_send(w, atom::subscribe_v, m.sharedvolume_controller);
    m.pfs_watchers.push_back(w);
  }
  m.webhook_thread = std::thread(
      [&m, settings = std::move(settings), leading, syncs, material = tls->material]() mutable {
        m.webhook_maintenance(std::move(settings), std::move(leading), std::move(syncs),
                              std::move(material));
      });
  return port;
}

void manager::impl::webhook_maintenance(webhook_settings s, std::function<bool()> leading,
                                        std::shared_ptr<watched> syncs,
                                        webhook::tls_material material) {
  auto log = log::get("webhook");
  bool registered = false, was_leading = false;
  auto last_check = std::chrono::steady_clock::now();
  std::unique_lock lock(webhook_mu);
  while (!webhook_stopping) {
    lock.unlock();
    const auto now = std::chrono::steady_clock::now();
    const bool due = now - last_check >= s.check_every;
    const auto wall = std::chrono::system_clock::now();
    if (due) {
      last_check = now;
      if (auto t = ensure_webhook_tls(client, options.ns, s.cert_names, wall); !t) {
        log->warn("checking the webhook's certificate: {}", t.error().message);
      } else {
        if (t->material.serving.cert != material.serving.cert) {
          // Rotated here or by another replica.
          if (auto set = webhook_server->set_tls(t->material.serving); !set)
            log->error("cannot serve the new certificate: {}", set.error().message);
          registered = false;  // the caBundle may have changed
        }
        material = std::move(t->material);
      }
    }
    // Registered once the PodFilesystemSyncs are listed, so the API server never asks before
    // we can answer; checked again every round (an edit by hand is put back).
    const bool synced = syncs->informer->has_synced();
    if (synced && (!registered || due)) {
      auto r = s.registration;
      r.ca_bundle_pem = webhook::ca_bundle(material, wall);
      if (auto e = ensure_webhook_registration(client, r); !e)
        log->warn("{}", e.error().message);
      else
        registered = true;
    }
    // A new leader, and every round: recompute every status (Secrets are not watched).
    const bool lead = synced && leading();
    if (lead && (!was_leading || due)) {
      for (const auto& key : syncs->cache().keys())
        caf::anon_send(pfs_status, atom::changed_v, std::string("podfilesystemsyncs"), key);
      for (const auto& key : sharedvolumes->cache().keys())
        caf::anon_send(sharedvolume_controller, atom::changed_v, std::string("sharedvolumes"), key);
      for (const auto& key : cluster_sharedvolumes->cache().keys())
        caf::anon_send(sharedvolume_controller, atom::changed_v,
                       std::string("clustersharedvolumes"), key);
    }
    was_leading = lead;
    lock.lock();
    webhook_cv.wait_for(lock, registered ? std::chrono::seconds(1) : std::chrono::milliseconds(100),
                        [this] { return webhook_stopping; });
  }
}

void manager::stop() {
  auto& m = *impl_;
  if (m.stopped) return;
  m.stopped = true;
  if (m.webhook_thread.joinable()) {
    {
      std::lock_guard lock(m.webhook_mu);
      m.webhook_stopping = true;
    }
    m.webhook_cv.notify_all();
    m.webhook_thread.join();
  }
  if (m.webhook_server) m.webhook_server->stop();
  if (m.pfs_status) {
    for (auto& w : m.pfs_watchers)
      caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(m.pfs_status, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(m.sharedvolume_controller, caf::exit_reason::user_shutdown);
    caf::scoped_actor self{*m.sys};
    self->wait_for(m.pfs_status, m.sharedvolume_controller);
    m.pfs_status = nullptr;
    m.sharedvolume_controller = nullptr;
    m.pfs_watchers.clear();
  }
  if (m.config_server) m.config_server->stop();  // ends long-polls, finishes requests
  m.config_server.reset();
  if (m.sharedconfig_status) {
    // It may be in a call to the backend: wait until it is gone before the backend goes.
    caf::anon_send_exit(m.sharedconfig_watcher, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(m.sharedconfig_status, caf::exit_reason::user_shutdown);
    caf::scoped_actor self{*m.sys};
    self->wait_for(m.sharedconfig_status);
    m.sharedconfig_status = nullptr;
    m.sharedconfig_watcher = nullptr;
  }
  m.config_backend.reset();  // its owner actors exit
  auto shutdown = caf::exit_reason::user_shutdown;
  if (m.running) {
    caf::anon_send_exit(m.bucket_sync_controller, shutdown);
    caf::anon_send_exit(m.policy_controller, shutdown);
    caf::anon_send_exit(m.datasync_controller, shutdown);
    caf::anon_send_exit(m.datasync_queue, shutdown);
    caf::anon_send_exit(m.locks, shutdown);
  }
  for (auto& w : m.watchers)
    caf::anon_send_exit(w, shutdown);
  m.watchers.clear();
  m.watcher_of.clear();
  m.bucket_sync_controller = nullptr;
  m.policy_controller = nullptr;
  m.datasync_controller = nullptr;
  m.datasync_queue = nullptr;
  m.locks = nullptr;
  if (m.ctx) {
    m.ctx->locks = nullptr;
    m.ctx->datasync_queue = nullptr;
  }
  m.sys->await_all_actors_done();
  if (m.leases && !m.leases->flush(std::chrono::seconds(5)))
    log::get("controller")->warn("some lock Lease writes did not finish before shutdown");
  // The watchers posted their informers' stop to the loop: wait until it ran.
  // (A loop already stopped drops the post: the promise breaks and the wait ends at once.)
  auto done = std::make_shared<std::promise<void>>();
  auto f = done->get_future();
  m.loop.post([done] { done->set_value(); });
  done.reset();
  f.wait_for(std::chrono::seconds(5));
}

}  // namespace tidesync::actors
