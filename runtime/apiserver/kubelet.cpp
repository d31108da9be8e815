// The simulated kubelet + Job controller (see kubelet.hpp and docs/kubelet.md).
#include "runtime/apiserver/kubelet.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "runtime/apiserver/store.hpp"
#include "runtime/base64.hpp"
#include "runtime/json/value.hpp"
#include "runtime/log.hpp"
#include "runtime/rfc3339.hpp"

extern char** environ;

namespace tidesync::apiserver {
namespace {

namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> logger() {
  return log::get("kubelet");
}

// The five characters Kubernetes appends for generateName (no vowels, no confusables).
std::string random_suffix() {
  static const char* alphabet = "bcdfghjklmnpqrstvwxz2456789";
  thread_local std::mt19937 gen{std::random_device{}()};
  std::uniform_int_distribution<int> d(0, 26);
  std::string s;
  for (int i = 0; i < 5; ++i)
    s += alphabet[d(gen)];
  return s;
}

bool condition_true(const json::value& obj, std::string_view type) {
  const auto* conds = obj.at_path({"status", "conditions"});
  if (conds == nullptr || !conds->is_array()) return false;
  for (const auto& c : conds->as_array())
    if (c.get_string("type") == type && c.get_string("status") == "True") return true;
  return false;
}

// Looks a bare command name up in PATH (a name with a slash is taken as it is).
std::string find_in_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string p = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t colon = p.find(':', start);
    std::string dir =
        p.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (dir.empty()) dir = ".";
    std::string cand = dir + "/" + name;
    if (::access(cand.c_str(), X_OK) == 0) return cand;
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return {};
}

// Kubernetes $(VAR) expansion in command, args and env values: a reference to a variable
// defined earlier is replaced, an unknown one is left as it is, and $$ escapes a $.
std::string expand(std::string_view s,
                   const std::vector<std::pair<std::string, std::string>>& env) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '(') {
      size_t close = s.find(')', i + 2);
      if (close != std::string_view::npos) {
        std::string_view name = s.substr(i + 2, close - i - 2);
        auto it = std::find_if(env.rbegin(), env.rend(),
                               [&](const auto& kv) { return kv.first == name; });
        if (it != env.rend()) {
          out += it->second;
          i = close;
          continue;
        }
      }
    }
    out += s[i];
  }
  return out;
}

enum class entrypoint { none, rclone, tidesync };

// Which program an image runs: the repository name (last path component, no tag) decides
// first, so "ghcr.io/tidesync/rclone:1.60" is rclone.
entrypoint image_entrypoint(std::string_view image) {
  std::string_view repo = image.substr(0, image.find('@'));
  size_t slash = repo.rfind('/');
  std::string_view last = slash == std::string_view::npos ? repo : repo.substr(slash + 1);
  last = last.substr(0, last.find(':'));
  if (last.find("rclone") != std::string_view::npos) return entrypoint::rclone;
  if (image.find("tidesync") != std::string_view::npos) return entrypoint::tidesync;
  if (image.find("rclone") != std::string_view::npos) return entrypoint::rclone;
  return entrypoint::none;
}

// A reason the container cannot start yet (the Pod stays Pending, as with a kubelet).
struct waiting {
  std::string reason;
  std::string message;
};

// mountPath → local folder, longest mountPath first so nested mounts win.
using mount_table = std::vector<std::pair<std::string, std::string>>;

std::string map_path(const std::string& p, const mount_table& mounts) {
  for (const auto& [mp, host] : mounts) {
    if (p == mp) return host;
    if (p.size() > mp.size() && p.compare(0, mp.size(), mp) == 0 &&
        (mp == "/" || p[mp.size()] == '/'))
      return host + p.substr(mp == "/" ? 0 : mp.size());
  }
  return p;
}

// Rewrites one argument: a path under a mountPath, the value of `--flag=PATH`, or the path of
// `remote:PATH` (rclone's syntax; a local remote's path is a container path).
std::string map_arg(const std::string& a, const mount_table& mounts) {
  if (!a.empty() && a[0] == '/') return map_path(a, mounts);
  if (a.size() > 1 && a[0] == '-') {
    size_t eq = a.find('=');
    if (eq != std::string::npos && eq + 1 < a.size() && a[eq + 1] == '/')
      return a.substr(0, eq + 1) + map_path(a.substr(eq + 1), mounts);
    return a;
  }
  size_t colon = a.find(':');
  if (colon != std::string::npos && colon + 1 < a.size() && a[colon + 1] == '/' &&
      a.find('/') > colon)
    return a.substr(0, colon + 1) + map_path(a.substr(colon + 1), mounts);
  return a;
}

}  // namespace

// One Job this kubelet runs. Pods run one at a time until `completions` succeeded or the
// Job failed.
struct job_run {
  std::string ns, name, uid;
  json::value spec;  // the Job's spec when it was taken over
  int64_t succeeded = 0, failed = 0;
  int64_t completions = 1, backoff_limit = 6;
  std::optional<int64_t> deadline_seconds;
  std::string start_time;
  // When the Job started: exact for Jobs started here, whole seconds for those taken over
  // from status.startTime (a restarted simulation).
  std::chrono::system_clock::time_point started_at;
  json::array conditions;
  std::string completion_time;
  bool finished = false;

  // The current pod (empty name: none).
  std::string pod;
  std::string pod_start_time;
  std::string log_path;
  std::optional<waiting> wait;      // the container cannot start (yet)
  bool retry_wait = false;          // wait is retried (missing Secret/ConfigMap)
  steady::time_point next_attempt;  // when
  pid_t pid = -1;
  std::string container_started;
  std::string pod_reason;  // status.reason when the pod ends ("DeadlineExceeded")
  std::optional<steady::time_point> kill_at;  // SIGKILL after SIGTERM when still alive
  // The local file behind the container's terminationMessagePath: read into
  // state.terminated.message when the process exits.
  std::string termination_log;
};

struct dying_process {
  pid_t pid;
  steady::time_point kill_at;
  bool killed = false;
};

struct kubelet::state {
  resource_type jobs, pods, secrets, configmaps;
  std::unique_ptr<watch_stream> watch;
  std::map<std::string, job_run> runs;  // Job uid → run
  std::set<std::string> done;           // uids of Jobs that finished (nothing more to do)
  std::vector<dying_process> dying;     // processes of deleted Jobs, being killed

  store* st = nullptr;
  const kubelet_options* opt = nullptr;
  std::atomic<size_t>* running = nullptr;

  // --- store helpers ---------------------------------------------------------------------
  // Replaces the status of an object (the /status subresource), retrying on conflicts.
  bool write_status(const resource_type& t, const std::string& ns, const std::string& name,
                    const json::value& status) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto cur = st->get(t, ns, name);
      if (!cur) return false;  // gone (deleted, garbage-collected): nothing to report on
      json::value obj = (*cur)->obj;
      obj["status"] = status;
      auto r = st->update(t, ns, name, std::move(obj), true);
      if (r) return true;
      if (r.error().code != errc::conflict) {
        logger()->warn("status of {} {}/{}: {}", t.res.kind, ns, name, r.error().message);
        return false;
      }
    }
    return false;
  }

  void write_job_status(const job_run& r) {
    json::object s;
    if (!r.conditions.empty()) s.set("conditions", r.conditions);
    s.set("startTime", r.start_time);
    if (!r.completion_time.empty()) s.set("completionTime", r.completion_time);
    bool active = !r.pod.empty() && !r.finished;
    if (active) s.set("active", int64_t{1});
    if (r.succeeded > 0) s.set("succeeded", r.succeeded);
    if (r.failed > 0) s.set("failed", r.failed);
    write_status(jobs, r.ns, r.name, json::value(std::move(s)));
  }

  json::value container_status(const job_run& r, json::value state, bool ready) {
    const auto* c = first_container(r.spec);
    json::object cs{{"name", c != nullptr ? json::value(c->get_string("name")) : json::value("")},
                    {"state", std::move(state)},
                    {"lastState", json::object{}},
                    {"ready", ready},
                    {"restartCount", int64_t{0}},
                    {"image", c != nullptr ? json::value(c->get_string("image")) : json::value("")},
                    {"imageID", ""},
                    {"started", ready}};
    if (r.pid > 0) cs.set("containerID", "simulate://" + std::to_string(r.pid));
    return json::value(std::move(cs));
  }

  // phase: Pending, Running, Succeeded, Failed.
  void write_pod_status(const job_run& r, std::string_view phase, json::value cstate) {
    bool running_now = phase == "Running";
    bool ended = phase == "Succeeded" || phase == "Failed";
    auto cond = [&](const char* type, bool ok, const char* reason) {
      json::object c{{"type", type},
                     {"status", ok ? "True" : "False"},
                     {"lastProbeTime", nullptr},
                     {"lastTransitionTime", r.pod_start_time}};
      if (!ok && reason != nullptr) c.set("reason", reason);
      return json::value(std::move(c));
    };
    const char* not_ready = ended ? "PodCompleted" : "ContainersNotReady";
    json::object s{
        {"phase", std::string(phase)},
        {"conditions",
         json::array{cond("Initialized", true, nullptr), cond("Ready", running_now, not_ready),
                     cond("ContainersReady", running_now, not_ready),
                     cond("PodScheduled", true, nullptr)}},
        {"hostIP", "127.0.0.1"},
        {"podIP", "127.0.0.1"},
        {"podIPs", json::array{json::object{{"ip", "127.0.0.1"}}}},
        {"startTime", r.pod_start_time},
        {"containerStatuses", json::array{container_status(r, std::move(cstate), running_now)}},
        {"qosClass", "BestEffort"}};
    if (!r.pod_reason.empty()) s.set("reason", r.pod_reason);
    if (!r.log_path.empty()) s.set("message", "logs: " + r.log_path);
    write_status(pods, r.ns, r.pod, json::value(std::move(s)));
  }

  static const json::value* first_container(const json::value& spec) {
    const auto* cs = spec.at_path({"template", "spec", "containers"});
    if (cs == nullptr || !cs->is_array() || cs->as_array().empty()) return nullptr;
    return &cs->as_array().front();
  }

  // --- the Job controller ----------------------------------------------------------------
  void observe(const json::value& job) {
    const auto* meta = job.at("metadata");
    if (meta == nullptr) return;
    std::string uid(meta->get_string("uid"));
    if (meta->at("deletionTimestamp") != nullptr && !meta->at("deletionTimestamp")->is_null()) {
      forget(uid);
      return;
    }
    if (runs.count(uid) != 0 || done.count(uid) != 0) return;
    if (condition_true(job, "Complete") || condition_true(job, "Failed")) {
      done.insert(uid);
      return;
    }
    const auto* spec = job.at("spec");
    if (spec == nullptr) return;
    if (spec->get_bool("suspend")) return;  // a resumed Job arrives as MODIFIED

    job_run r;
    r.ns = std::string(meta->get_string("namespace"));
    r.name = std::string(meta->get_string("name"));
    r.uid = uid;
    r.spec = *spec;
    r.completions = std::max<int64_t>(1, spec->get_int("completions", 1));
    r.backoff_limit = spec->get_int("backoffLimit", 6);
    if (const auto* d = spec->at("activeDeadlineSeconds"); d != nullptr && d->is_int())
      r.deadline_seconds = d->as_int();
    const auto* status = job.at("status");
    std::string prev_start = status != nullptr ? std::string(status->get_string("startTime")) : "";
    r.start_time = prev_start.empty() ? rfc3339::now() : prev_start;
    r.started_at = std::chrono::system_clock::now();
    if (auto t = rfc3339::parse(prev_start)) r.started_at = *t;
    if (status != nullptr) {
      r.succeeded = status->get_int("succeeded");
      r.failed = status->get_int("failed");
    }
    adopt_orphans(r);
    auto [it, inserted] = runs.emplace(uid, std::move(r));
    (void)inserted;
    logger()->info("job {}/{}: taken over", it->second.ns, it->second.name);
    next_step(it->second);
  }

  // Pods of this Job left Pending/Running by an earlier run of the simulation: their
  // processes are gone, so they failed (as pods on a lost node do).
  void adopt_orphans(job_run& r) {
    list_options lo;
    lo.label_selector = "controller-uid=" + r.uid;
    auto pl = st->list(pods, r.ns, lo);
    if (!pl) return;
    for (const auto& p : pl->items) {
      std::string phase(p->obj.at("status") != nullptr ? p->obj.at("status")->get_string("phase")
                                                       : "Pending");
      if (phase == "Succeeded" || phase == "Failed") continue;
      json::value s = p->obj.at("status") != nullptr ? *p->obj.at("status") : json::object{};
      s["phase"] = "Failed";
      s["reason"] = "ProcessLost";
      s["message"] = "the simulation stopped while this pod ran";
      write_status(pods, r.ns, std::string(p->obj.at("metadata")->get_string("name")), s);
      ++r.failed;
    }
  }

  // Decides what a Job needs now that no pod of it runs.
  void next_step(job_run& r) {
    if (r.succeeded >= r.completions) {
      finish(r, "Complete", "", "");
    } else if (r.failed > r.backoff_limit) {
      finish(r, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit");
    } else if (deadline_passed(r)) {
      finish(r, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline");
    } else {
      start_pod(r);
    }
  }

  bool deadline_passed(const job_run& r) const {
    return r.deadline_seconds && std::chrono::system_clock::now() >=
                                     r.started_at + std::chrono::seconds(*r.deadline_seconds);
  }

  void finish(job_run& r, const char* type, const char* reason, const char* message) {
    std::string now = rfc3339::now();
    json::object c{
        {"type", type}, {"status", "True"}, {"lastProbeTime", now}, {"lastTransitionTime", now}};
    if (*reason != 0) c.set("reason", reason);
    if (*message != 0) c.set("message", message);
    r.conditions.push_back(json::value(std::move(c)));
    if (std::string_view(type) == "Complete") r.completion_time = now;
    r.finished = true;
    write_job_status(r);
    logger()->info("job {}/{}: {}{}{}", r.ns, r.name, type, *reason != 0 ? " " : "", reason);
  }

  void start_pod(job_run& r) {
    const auto* tmpl = r.spec.at("template");
    json::value pod_meta = tmpl != nullptr && tmpl->at("metadata") != nullptr
                               ? *tmpl->at("metadata")
                               : json::value(json::object{});
    if (!pod_meta.is_object()) pod_meta = json::object{};
    std::string base = r.name.substr(0, 57);
    r.pod = base + "-" + random_suffix();
    r.pod_start_time = rfc3339::now();
    r.wait.reset();
    r.retry_wait = false;
    r.pod_reason.clear();
    r.container_started.clear();
    auto& labels = pod_meta["labels"];
    if (!labels.is_object()) labels = json::object{};
    labels.as_object().set("controller-uid", r.uid);
    labels.as_object().set("job-name", r.name);
    pod_meta.as_object().set("name", r.pod);
    pod_meta.as_object().set("namespace", r.ns);
    pod_meta.as_object().erase("generateName");
    pod_meta.as_object().set("ownerReferences",
                             json::array{json::object{{"apiVersion", "batch/v1"},
                                                      {"kind", "Job"},
                                                      {"name", r.name},
                                                      {"uid", r.uid},
                                                      {"controller", true},
                                                      {"blockOwnerDeletion", true}}});
    json::value spec = tmpl != nullptr && tmpl->at("spec") != nullptr ? *tmpl->at("spec")
                                                                      : json::value(json::object{});
    spec["nodeName"] = "tidesync-simulate";
    json::value pod = json::object{{"apiVersion", "v1"},
                                   {"kind", "Pod"},
                                   {"metadata", std::move(pod_meta)},
                                   {"spec", std::move(spec)},
                                   {"status", json::object{{"phase", "Pending"}}}};
    auto created = st->create(pods, r.ns, std::move(pod));
    if (!created) {
      logger()->warn("job {}/{}: cannot create pod: {}", r.ns, r.name, created.error().message);
      r.pod.clear();
      r.wait = waiting{"PodCreateFailed", created.error().message};
      r.retry_wait = true;  // try again next second (a pod name clash, a missing namespace)
      r.next_attempt = steady::now() + std::chrono::seconds(1);
      return;
    }
    r.log_path.clear();
    write_job_status(r);
    try_start_container(r);
  }

  // Resolves env and volumes and starts the process; on a problem the pod stays Pending with
  // the reason in its container's `waiting` state.
  void try_start_container(job_run& r) {
    const auto* c = first_container(r.spec);
    std::vector<std::string> argv;
    std::vector<std::pair<std::string, std::string>> env;
    mount_table mounts;
    std::string cwd;
    auto w = prepare(r, c, argv, env, mounts, cwd);
    if (w) {
      bool changed = !r.wait || r.wait->reason != w->reason || r.wait->message != w->message;
      r.wait = *w;
      r.retry_wait = w->reason == "CreateContainerConfigError";
      r.next_attempt = steady::now() + std::chrono::seconds(1);
      if (changed) {
        logger()->info("pod {}/{}: {}: {}", r.ns, r.pod, w->reason, w->message);
        write_pod_status(r, "Pending",
                         json::object{{"waiting", json::object{{"reason", w->reason},
                                                               {"message", w->message}}}});
      }
      return;
    }
    r.wait.reset();
    r.retry_wait = false;

    fs::path log_dir = fs::path(opt->data_dir) / "logs" / r.ns;
    std::error_code ec;
    fs::create_directories(log_dir, ec);
    r.log_path = (log_dir / (r.pod + ".log")).string();

    std::vector<std::string> envs;
    envs.reserve(env.size());
    for (const auto& [k, v] : env)
      envs.push_back(k + "=" + v);
    std::vector<char*> cargv, cenv;
    for (auto& a : argv)
      cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto& e : envs)
      cenv.push_back(e.data());
    cenv.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, r.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    // The server's sockets and files are not the container's business.
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Its own process group, so a kill reaches what it starts; default signal handling and
    // an empty mask, since `simulate` blocks SIGINT/SIGTERM in its threads.
    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigemptyset(&defaults);
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGQUIT})
      sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, cargv[0], &fa, &attr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      // As a runtime that cannot exec: the container terminates with StartError, code 128.
      std::string now = rfc3339::now();
      std::string msg = "cannot start " + argv[0] + ": " + std::strerror(rc);
      logger()->warn("pod {}/{}: {}", r.ns, r.pod, msg);
      write_pod_status(r, "Failed",
                       json::object{{"terminated", json::object{{"exitCode", int64_t{128}},
                                                                {"reason", "StartError"},
                                                                {"message", msg},
                                                                {"startedAt", now},
                                                                {"finishedAt", now}}}});
      ++r.failed;
      r.pod.clear();
      next_step(r);
      return;
    }
    r.pid = pid;
    ++*running;
    r.container_started = rfc3339::now();
    logger()->info("pod {}/{}: started {} (pid {}), logs in {}", r.ns, r.pod, argv[0], pid,
                   r.log_path);
    write_pod_status(r, "Running",
                     json::object{{"running", json::object{{"startedAt", r.container_started}}}});
    write_job_status(r);
  }

  // Fills argv/env/mounts/cwd for the container, or says why it cannot start.
  std::optional<waiting> prepare(job_run& r, const json::value* c, std::vector<std::string>& argv,
                                 std::vector<std::pair<std::string, std::string>>& env,
                                 mount_table& mounts, std::string& cwd) {
    if (c == nullptr) return waiting{"InvalidPodSpec", "the pod template has no container"};
    std::string image(c->get_string("image"));
    entrypoint ep = image_entrypoint(image);
    if (ep == entrypoint::none)
      return waiting{"UnsupportedImage", "image \"" + image +
                                             "\": the simulation runs only rclone and "
                                             "tidesync images"};
    std::string rclone = find_in_path(opt->rclone_binary);
    std::string tidesync = opt->tidesync_binary;
    auto binary_for = [&](entrypoint e) -> std::optional<std::string> {
      const std::string& b = e == entrypoint::rclone ? rclone : tidesync;
      if (b.empty()) return std::nullopt;
      return b;
    };
    if (!binary_for(ep))
      return waiting{"UnsupportedImage",
                     ep == entrypoint::rclone
                         ? "no rclone binary (" + opt->rclone_binary + ") found in PATH"
                         : "image \"" + image + "\": no tidesync binary given to the simulation"};

    // Env: base, then the container's, in order ($(VAR) sees earlier entries).
    for (const auto& [k, v] : opt->base_env)
      env.emplace_back(k, v);
    fs::path pod_dir = fs::path(opt->data_dir) / "pods" / r.ns / r.pod;
    env.emplace_back("HOSTNAME", r.pod);
    env.emplace_back("HOME", pod_dir.string());
    auto set_env = [&](const std::string& k, std::string v) {
      for (auto& kv : env)
        if (kv.first == k) {
          kv.second = std::move(v);
          return;
        }
      env.emplace_back(k, std::move(v));
    };
    if (auto w = resolve_env_from(r, *c, set_env)) return w;
    if (auto w = resolve_env(r, *c, env, set_env)) return w;

    // Volumes.
    std::map<std::string, std::string> volume_paths;
    if (const auto* vols = r.spec.at_path({"template", "spec", "volumes"});
        vols != nullptr && vols->is_array())
      for (const auto& v : vols->as_array())
        if (auto w = resolve_volume(r, v, pod_dir, volume_paths)) return w;
    if (const auto* vms = c->at("volumeMounts"); vms != nullptr && vms->is_array())
      for (const auto& m : vms->as_array()) {
        std::string vname(m.get_string("name"));
        auto it = volume_paths.find(vname);
        if (it == volume_paths.end())
          return waiting{"CreateContainerConfigError",
                         "volumeMount \"" + vname + "\" names no volume of the pod"};
        std::string mp(m.get_string("mountPath"));
        while (mp.size() > 1 && mp.back() == '/')
          mp.pop_back();
        std::string host = it->second;
        std::string sub(m.get_string("subPath"));
        if (!sub.empty()) host = (fs::path(host) / sub).string();
        mounts.emplace_back(mp, host);
      }
    // terminationMessagePath (default /dev/termination-log) is a per-pod file, as the kubelet
    // bind-mounts one; its content becomes state.terminated.message.
    std::string tm_path(c->get_string("terminationMessagePath", "/dev/termination-log"));
    if (!tm_path.empty() && tm_path.front() == '/') {
      std::error_code tec;
      fs::create_directories(pod_dir, tec);
      r.termination_log = (pod_dir / "termination-log").string();
      fs::remove(r.termination_log, tec);
      mounts.emplace_back(tm_path, r.termination_log);
    }
    std::sort(mounts.begin(), mounts.end(),
              [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    for (auto& kv : env)
      kv.second = map_arg(kv.second, mounts);

    // argv: command replaces the image's entrypoint, args follow.
    std::vector<std::string> cmd, args;
    if (const auto* a = c->at("command"); a != nullptr && a->is_array())
      for (const auto& x : a->as_array())
        cmd.push_back(expand(x.is_string() ? x.as_string() : "", env));
    if (const auto* a = c->at("args"); a != nullptr && a->is_array())
      for (const auto& x : a->as_array())
        args.push_back(expand(x.is_string() ? x.as_string() : "", env));
    if (cmd.empty()) {
      argv.push_back(*binary_for(ep));
    } else {
      std::string exe = fs::path(cmd[0]).filename().string();
      if (exe == "rclone")
        argv.push_back(rclone);
      else if (exe == "tidesync" && !tidesync.empty())
        argv.push_back(tidesync);
      else
        return waiting{
            "CreateContainerError",
            "exec: \"" + cmd[0] + "\": the simulation runs only the rclone and tidesync programs"};
      for (size_t i = 1; i < cmd.size(); ++i)
        argv.push_back(map_arg(cmd[i], mounts));
    }
    for (const auto& a : args)
      argv.push_back(map_arg(a, mounts));

    std::error_code ec;
    fs::create_directories(pod_dir, ec);
    std::string wd(c->get_string("workingDir"));
    cwd = wd.empty() ? pod_dir.string() : map_path(wd, mounts);
    fs::create_directories(cwd, ec);
    return std::nullopt;
  }

  // The data of a Secret (decoded) or ConfigMap; a missing object is an error message.
  std::optional<std::map<std::string, std::string>> source_data(const job_run& r, bool secret,
                                                                const std::string& name,
                                                                std::string& why) {
    auto o = st->get(secret ? secrets : configmaps, r.ns, name);
    if (!o) {
      why = std::string(secret ? "secret" : "configmap") + " \"" + name + "\" not found";
      return std::nullopt;
    }
    std::map<std::string, std::string> out;
    if (const auto* d = (*o)->obj.at("data"); d != nullptr && d->is_object())
      for (const auto& [k, v] : d->as_object()) {
        if (!v.is_string()) continue;
        if (secret) {
          auto dec = base64::decode(v.as_string());
          if (!dec) {
            why = "secret \"" + name + "\" key " + k + " is not valid base64";
            return std::nullopt;
          }
          out[k] = *dec;
        } else {
          out[k] = v.as_string();
        }
      }
    if (!secret)
      if (const auto* d = (*o)->obj.at("binaryData"); d != nullptr && d->is_object())
        for (const auto& [k, v] : d->as_object())
          if (v.is_string()) out[k] = base64::decode(v.as_string()).value_or("");
    return out;
  }

  template <typename Set>
  std::optional<waiting> resolve_env_from(const job_run& r, const json::value& c, Set& set_env) {
    const auto* ef = c.at("envFrom");
    if (ef == nullptr || !ef->is_array()) return std::nullopt;
    for (const auto& src : ef->as_array()) {
      bool secret = src.at("secretRef") != nullptr;
      const auto* ref = secret ? src.at("secretRef") : src.at("configMapRef");
      if (ref == nullptr) continue;
      std::string why;
      auto data = source_data(r, secret, std::string(ref->get_string("name")), why);
      if (!data) {
        if (ref->get_bool("optional")) continue;
        return waiting{"CreateContainerConfigError", why};
      }
      std::string prefix(src.get_string("prefix"));
      for (const auto& [k, v] : *data)
        set_env(prefix + k, v);
    }
    return std::nullopt;
  }

  template <typename Set>
  std::optional<waiting> resolve_env(const job_run& r, const json::value& c,
                                     const std::vector<std::pair<std::string, std::string>>& env,
                                     Set& set_env) {
    const auto* ev = c.at("env");
    if (ev == nullptr || !ev->is_array()) return std::nullopt;
    for (const auto& e : ev->as_array()) {
      std::string name(e.get_string("name"));
      const auto* vf = e.at("valueFrom");
      if (vf == nullptr) {
        set_env(name, expand(e.get_string("value"), env));
        continue;
      }
      const auto* sk = vf->at("secretKeyRef");
      const auto* ck = vf->at("configMapKeyRef");
      if (sk != nullptr || ck != nullptr) {
        bool secret = sk != nullptr;
        const auto* ref = secret ? sk : ck;
        std::string oname(ref->get_string("name")), key(ref->get_string("key"));
        std::string why;
        auto data = source_data(r, secret, oname, why);
        if (data) {
          auto it = data->find(key);
          if (it != data->end()) {
            set_env(name, it->second);
            continue;
          }
          why = "couldn't find key " + key + " in " + (secret ? "Secret " : "ConfigMap ") + r.ns +
                "/" + oname;
        }
        if (ref->get_bool("optional")) continue;
        return waiting{"CreateContainerConfigError", why};
      }
      if (const auto* fr = vf->at("fieldRef"); fr != nullptr) {
        std::string path(fr->get_string("fieldPath"));
        if (path == "metadata.name")
          set_env(name, r.pod);
        else if (path == "metadata.namespace")
          set_env(name, r.ns);
        else if (path == "spec.nodeName")
          set_env(name, "tidesync-simulate");
        else if (path == "status.podIP" || path == "status.hostIP")
          set_env(name, "127.0.0.1");
        else if (path == "spec.serviceAccountName")
          set_env(name, std::string(r.spec.at_path({"template", "spec"}) != nullptr
                                        ? r.spec.at_path({"template", "spec"})
                                              ->get_string("serviceAccountName", "default")
                                        : "default"));
        else
          return waiting{"CreateContainerConfigError", "env " + name + ": fieldRef " + path +
                                                           " is not supported by the simulation"};
        continue;
      }
      return waiting{"CreateContainerConfigError",
                     "env " + name +
                         ": only value, secretKeyRef, configMapKeyRef and fieldRef "
                         "are supported by the simulation"};
    }
    return std::nullopt;
  }

  std::optional<waiting> resolve_volume(const job_run& r, const json::value& v,
                                        const fs::path& pod_dir,
                                        std::map<std::string, std::string>& out) {
    std::string name(v.get_string("name"));
    std::error_code ec;
    if (const auto* hp = v.at("hostPath"); hp != nullptr) {
      std::string path = fs::absolute(std::string(hp->get_string("path")), ec).string();
      std::string type(hp->get_string("type"));
      if (type.empty() || type == "DirectoryOrCreate") fs::create_directories(path, ec);
      out[name] = path;
    } else if (v.at("emptyDir") != nullptr) {
      fs::path p = pod_dir / "volumes" / name;
      fs::create_directories(p, ec);
      out[name] = p.string();
    } else if (const auto* pvc = v.at("persistentVolumeClaim"); pvc != nullptr) {
      fs::path p =
          fs::path(opt->data_dir) / "volumes" / r.ns / std::string(pvc->get_string("claimName"));
      fs::create_directories(p, ec);
      out[name] = p.string();
    } else if (v.at("secret") != nullptr || v.at("configMap") != nullptr) {
      bool secret = v.at("secret") != nullptr;
      const auto* src = secret ? v.at("secret") : v.at("configMap");
      std::string oname(src->get_string(secret ? "secretName" : "name"));
      std::string why;
      auto data = source_data(r, secret, oname, why);
      if (!data) {
        if (src->get_bool("optional"))
          data.emplace();
        else
          return waiting{"CreateContainerConfigError", why};
      }
      fs::path p = pod_dir / "volumes" / name;
      fs::create_directories(p, ec);
      std::vector<std::pair<std::string, std::string>> files;  // key → relative path
      if (const auto* items = src->at("items"); items != nullptr && items->is_array())
        for (const auto& it : items->as_array())
          files.emplace_back(it.get_string("key"), it.get_string("path"));
      else
        for (const auto& [k, _] : *data)
          files.emplace_back(k, k);
      for (const auto& [k, rel] : files) {
        auto it = data->find(k);
        if (it == data->end())
          return waiting{"CreateContainerConfigError",
                         "volume " + name + ": key " + k + " not found in " + oname};
        fs::create_directories((p / rel).parent_path(), ec);
        std::ofstream f(p / rel, std::ios::binary | std::ios::trunc);
        f << it->second;
      }
      out[name] = p.string();
    } else {
      return waiting{"CreateContainerConfigError",
                     "volume " + name +
                         ": only hostPath, emptyDir, persistentVolumeClaim, secret and configMap "
                         "volumes are supported by the simulation"};
    }
    return std::nullopt;
  }

  // --- processes -------------------------------------------------------------------------
  static void signal_group(pid_t pid, int sig) {
    if (::kill(-pid, sig) != 0) ::kill(pid, sig);
  }

  void on_exit(job_run& r, int wstatus, bool known) {
    std::string now = rfc3339::now();
    int64_t code = -1;
    json::object t;
    if (known && WIFEXITED(wstatus)) {
      code = WEXITSTATUS(wstatus);
    } else if (known && WIFSIGNALED(wstatus)) {
      code = 128 + WTERMSIG(wstatus);
      t.set("signal", int64_t{WTERMSIG(wstatus)});
    }
    t.set("exitCode", code);
    t.set("reason", code == 0 ? "Completed" : "Error");
    if (!r.termination_log.empty()) {
      // As the kubelet: at most 4096 bytes of the file.
      std::ifstream in(r.termination_log, std::ios::binary);
      std::string msg(4096, '\0');
      in.read(msg.data(), static_cast<std::streamsize>(msg.size()));
      msg.resize(static_cast<size_t>(in.gcount()));
      if (!msg.empty()) t.set("message", std::move(msg));
      r.termination_log.clear();
    }
    t.set("startedAt", r.container_started);
    t.set("finishedAt", now);
    bool ok = code == 0 && r.pod_reason.empty();
    logger()->info("pod {}/{}: exited with code {}", r.ns, r.pod, code);
    write_pod_status(r, ok ? "Succeeded" : "Failed", json::object{{"terminated", std::move(t)}});
    r.pid = -1;
    --*running;
    r.kill_at.reset();
    r.pod.clear();
    if (r.finished) return;  // the deadline ended the Job already
    if (ok)
      ++r.succeeded;
    else
      ++r.failed;
    next_step(r);
  }

  // Kills the Job's process and ends the Job with DeadlineExceeded.
  void deadline_exceeded(job_run& r) {
    if (r.pid > 0) {
      r.pod_reason = "DeadlineExceeded";
      signal_group(r.pid, SIGTERM);
      r.kill_at = steady::now() + opt->kill_grace;
      ++r.failed;
    } else if (!r.pod.empty()) {
      r.pod_reason = "DeadlineExceeded";
      write_pod_status(
          r, "Failed",
          json::object{{"waiting", json::object{{"reason", r.wait ? r.wait->reason : ""},
                                                {"message", r.wait ? r.wait->message : ""}}}});
      r.pod.clear();
      ++r.failed;
    }
    finish(r, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline");
  }

  // A Job is gone (or being deleted): kill its process, delete its pods.
  void forget(const std::string& uid) {
    done.erase(uid);
    auto it = runs.find(uid);
    if (it == runs.end()) return;
    job_run& r = it->second;
    if (r.pid > 0) {
      logger()->info("job {}/{} deleted: killing pid {}", r.ns, r.name, r.pid);
      signal_group(r.pid, SIGTERM);
      dying.push_back({r.pid, steady::now() + opt->kill_grace});
    }
    list_options lo;
    lo.label_selector = "controller-uid=" + uid;
    if (auto pl = st->list(pods, r.ns, lo))
      for (const auto& p : pl->items)
        (void)st->remove(pods, r.ns, std::string(p->obj.at("metadata")->get_string("name")));
    runs.erase(it);
  }

  void tick() {
    auto now = steady::now();
    std::vector<std::string> finished;
    for (auto& [uid, r] : runs) {
      if (r.pid > 0) {
        int ws = 0;
        pid_t w = ::waitpid(r.pid, &ws, WNOHANG);
        if (w == r.pid) {
          on_exit(r, ws, true);
        } else if (w < 0 && errno == ECHILD) {  // reaped elsewhere (SIGCHLD ignored)
          on_exit(r, 0, false);
        } else if (r.kill_at && now >= *r.kill_at) {
          signal_group(r.pid, SIGKILL);
          r.kill_at = now + std::chrono::hours(24);  // once
        }
      }
      if (!r.finished && deadline_passed(r)) deadline_exceeded(r);
      if (!r.finished && r.pid <= 0 && r.retry_wait && now >= r.next_attempt) {
        if (r.pod.empty())
          start_pod(r);
        else
          try_start_container(r);
      }
      if (r.finished && r.pid <= 0) finished.push_back(uid);
    }
    for (const auto& uid : finished) {
      runs.erase(uid);
      done.insert(uid);
    }
    for (auto it = dying.begin(); it != dying.end();) {
      int ws = 0;
      pid_t w = ::waitpid(it->pid, &ws, WNOHANG);
      if (w == it->pid || (w < 0 && errno == ECHILD)) {
        --*running;
        it = dying.erase(it);
        continue;
      }
      if (!it->killed && now >= it->kill_at) {
        signal_group(it->pid, SIGKILL);
        it->killed = true;
      }
      ++it;
    }
  }

  // Kills and reaps every process (stop()).
  void kill_all() {
    std::vector<pid_t> pids;
    for (auto& [uid, r] : runs)
      if (r.pid > 0) pids.push_back(r.pid);
    for (auto& d : dying)
      pids.push_back(d.pid);
    for (pid_t p : pids)
      signal_group(p, SIGTERM);
    auto deadline = steady::now() + opt->kill_grace;
    while (!pids.empty()) {
      for (auto it = pids.begin(); it != pids.end();) {
        int ws = 0;
        pid_t w = ::waitpid(*it, &ws, WNOHANG);
        if (w == *it || (w < 0 && errno == ECHILD)) {
          --*running;
          it = pids.erase(it);
        } else {
          ++it;
        }
      }
      if (pids.empty()) break;
      if (steady::now() >= deadline) {
        for (pid_t p : pids) {
          signal_group(p, SIGKILL);
          int ws = 0;
          ::waitpid(p, &ws, 0);
          --*running;
        }
        break;
      }
      // Shutdown only: a short pause between polls of processes that were asked to exit.
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (auto& [uid, r] : runs)
      r.pid = -1;
    dying.clear();
  }

  // --- the Job watch ---------------------------------------------------------------------
  // Lists every Job (level-based: also after a dropped watch or a 410) and watches from there.
  bool relist() {
    auto l = st->list(jobs, "", {});
    if (!l) {
      logger()->warn("list jobs: {}", l.error().message);
      return false;
    }
    std::set<std::string> seen;
    for (const auto& o : l->items) {
      seen.insert(o->uid.empty() ? std::string(o->obj.at("metadata")->get_string("uid")) : o->uid);
      observe(o->obj);
    }
    std::vector<std::string> gone;
    for (const auto& [uid, r] : runs)
      if (seen.count(uid) == 0) gone.push_back(uid);
    for (const auto& uid : gone)
      forget(uid);
    for (auto it = done.begin(); it != done.end();)
      it = seen.count(*it) == 0 ? done.erase(it) : std::next(it);
    watch_options wo;
    wo.resource_version = l->resource_version;
    auto w = st->watch(jobs, "", wo);
    if (!w) {
      logger()->warn("watch jobs: {}", w.error().message);
      return false;
    }
    watch = std::move(*w);
    return true;
  }

  void handle_line(const std::string& line) {
    auto ev = json::parse(line);
    if (!ev) return;
    std::string type(ev->get_string("type"));
    const auto* obj = ev->at("object");
    if (obj == nullptr) return;
    if (type == "ERROR") {  // 410 Expired: relist
      watch.reset();
      return;
    }
    if (type == "DELETED") {
      const auto* meta = obj->at("metadata");
      if (meta != nullptr) forget(std::string(meta->get_string("uid")));
      return;
    }
    if (type == "ADDED" || type == "MODIFIED") observe(*obj);
  }
};

kubelet::kubelet(store& st, kubelet_options options)
    : store_(st), options_(std::move(options)), state_(std::make_unique<state>()) {
  // Containers run in their pod's folder: every path handed to them must be absolute.
  std::error_code ec;
  if (!options_.data_dir.empty())
    options_.data_dir = fs::absolute(options_.data_dir, ec).lexically_normal().string();
  if (options_.inherit_path && options_.base_env.count("PATH") == 0) {
    const char* p = std::getenv("PATH");
    options_.base_env["PATH"] = p != nullptr ? p : "/usr/local/bin:/usr/bin:/bin";
  }
}

kubelet::~kubelet() {
  stop();
}

expected<void> kubelet::start() {
  if (thread_.joinable()) return {};
  auto& s = *state_;
  s.st = &store_;
  s.opt = &options_;
  s.running = &running_;
  auto find = [&](std::string_view g, std::string_view p) -> expected<resource_type> {
    auto t = store_.find_type(g, "v1", p);
    if (!t) return make_error(errc::internal, "the store serves no " + std::string(p));
    return *t;
  };
  auto jobs = find("batch", "jobs");
  auto pods = find("", "pods");
  auto secrets = find("", "secrets");
  auto cms = find("", "configmaps");
  for (const auto* t : {&jobs, &pods, &secrets, &cms})
    if (!*t) return t->error();
  s.jobs = *jobs;
  s.pods = *pods;
  s.secrets = *secrets;
  s.configmaps = *cms;
  if (options_.data_dir.empty()) return make_error(errc::config_error, "kubelet: no data dir");
  std::error_code ec;
  fs::create_directories(options_.data_dir, ec);
  if (ec)
    return make_error(errc::io_error,
                      "kubelet: cannot create " + options_.data_dir + ": " + ec.message());
  if (!s.relist()) return make_error(errc::internal, "kubelet: cannot list or watch jobs");
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
  return {};
}

void kubelet::run() {
  auto& s = *state_;
  while (!stopping_) {
    if (!s.watch && !s.relist()) {
      s.tick();
      std::this_thread::sleep_for(options_.tick);  // the store failed: retry shortly
      continue;
    }
    auto lines = s.watch->next(options_.tick);
    for (const auto& l : lines) {
      if (!s.watch) break;
      s.handle_line(l);
    }
    if (s.watch && s.watch->closed()) s.watch.reset();
    s.tick();
  }
  s.watch.reset();
  s.kill_all();
}

void kubelet::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

}  // namespace tidesync::apiserver
