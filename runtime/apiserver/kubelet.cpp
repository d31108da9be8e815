// The simulated kubelet + Job controller (see kubelet.hpp and docs/kubelet.md).
#include "runtime/apiserver/kubelet.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
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

#include "runtime/apiserver/admission.hpp"
#include "runtime/apiserver/deployment_logic.hpp"
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

// The local folder that plays the export `path` of NFS server `server`:
// <data_dir>/nfs/<server>/<path>, shared by every volume that names the same server and path.
// The server is one folder (lowercased, as DNS names compare, a trailing dot dropped); the path
// must be absolute, as Kubernetes validates it, and is normalised ("/a/../b/" is "/b", and
// ".." cannot climb above the server's folder). Empty with `why` set when either is invalid.
std::string nfs_folder(const std::string& data_dir, std::string_view server_in,
                       std::string_view path, std::string& why) {
  std::string server(server_in);
  std::transform(server.begin(), server.end(), server.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!server.empty() && server.back() == '.') server.pop_back();
  if (server.empty() || server == "." || server == ".." ||
      server.find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
    why = "nfs server \"" + std::string(server_in) + "\" is not a host name or address";
    return {};
  }
  if (path.empty() || path.front() != '/' || path.find('\0') != std::string_view::npos) {
    why = "nfs path \"" + std::string(path) + "\" must be an absolute path";
    return {};
  }
  fs::path folder = fs::path(data_dir) / "nfs" / server;
  for (const auto& part : fs::path(std::string(path)).lexically_normal().relative_path()) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {  // cannot happen below a root, kept as the guarantee
      why = "nfs path \"" + std::string(path) + "\" leaves the export";
      return {};
    }
    folder /= part;
  }
  return folder.string();
}

// The node name this kubelet registers and binds Pods to.
constexpr const char* k_node = "tidesync-simulate";

bool has_deletion(const json::value& obj) {
  const auto* ts = obj.at_path({"metadata", "deletionTimestamp"});
  return ts != nullptr && !ts->is_null();
}

// A Pod the (simulated) Job controller owns: those run the Job way (first container only).
bool owned_by_job(const json::value& pod) {
  const auto* refs = pod.at_path({"metadata", "ownerReferences"});
  if (refs == nullptr || !refs->is_array()) return false;
  for (const auto& r : refs->as_array())
    if (r.get_string("kind") == "Job") return true;
  return false;
}

// What a container needs from its Pod to be prepared.
struct pod_ref {
  std::string ns, name;
  const json::value* spec = nullptr;  // the Pod's spec (volumes, serviceAccountName)
};

// A container made ready to start: the process's argv, env and working dir.
struct launch {
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  mount_table mounts;
  std::string cwd;
};

// Starts the process in its own process group, stdout and stderr into `log_path` (appended to
// when `append`, else truncated), stdin /dev/null. Returns 0 or the errno of the failure.
int spawn(launch& l, const std::string& log_path, bool append, pid_t& pid) {
  std::vector<std::string> envs;
  envs.reserve(l.env.size());
  for (const auto& [k, v] : l.env)
    envs.push_back(k + "=" + v);
  std::vector<char*> cargv, cenv;
  for (auto& a : l.argv)
    cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : envs)
    cenv.push_back(e.data());
  cenv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(),
                                   O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  // The server's sockets and files are not the container's business.
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawn_file_actions_addchdir_np(&fa, l.cwd.c_str());
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
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  int rc = posix_spawn(&pid, cargv[0], &fa, &attr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return rc;
}

// What a process's wait status says, as a runtime reports it: the exit code (128 + signal
// when killed) and the `state.terminated` object (exitCode, reason, signal, message from the
// termination-log file, startedAt, finishedAt).
struct exit_report {
  int64_t code = -1;
  json::object terminated;
};

exit_report report_exit(int wstatus, bool known, std::string& termination_log,
                        const std::string& started_at) {
  exit_report out;
  json::object& t = out.terminated;
  if (known && WIFEXITED(wstatus)) {
    out.code = WEXITSTATUS(wstatus);
  } else if (known && WIFSIGNALED(wstatus)) {
    out.code = 128 + WTERMSIG(wstatus);
    t.set("signal", int64_t{WTERMSIG(wstatus)});
  }
  t.set("exitCode", out.code);
  t.set("reason", out.code == 0 ? "Completed" : "Error");
  if (!termination_log.empty()) {
    // As the kubelet: at most 4096 bytes of the file.
    std::ifstream in(termination_log, std::ios::binary);
    std::string msg(4096, '\0');
    in.read(msg.data(), static_cast<std::streamsize>(msg.size()));
    msg.resize(static_cast<size_t>(in.gcount()));
    if (!msg.empty()) t.set("message", std::move(msg));
    termination_log.clear();
  }
  t.set("startedAt", started_at);
  t.set("finishedAt", rfc3339::now());
  return out;
}

void signal_group(pid_t pid, int sig) {
  if (::kill(-pid, sig) != 0) ::kill(pid, sig);
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
  std::string pod_uid;
  json::value pod_spec;       // the current pod's spec (volumes, serviceAccountName)
  bool pod_deleting = false;  // the pod got a deletionTimestamp: removed once the process ends

  [[nodiscard]] pod_ref ref() const { return pod_ref{ns, pod, &pod_spec}; }
};

// A process whose pod or Job is gone (or going): SIGTERM was sent, SIGKILL follows at
// kill_at; once it is reaped, its pod (if named) is deleted for good.
struct dying_process {
  pid_t pid;
  steady::time_point kill_at;
  bool killed = false;
  std::string ns, pod, pod_uid;
};

// --- bare Pods ---------------------------------------------------------------------------
// A container of a bare Pod. Init containers run one after the other; an init container with
// restartPolicy Always is a native sidecar (started, then the next one goes at once); the
// regular containers start together once every init container is done.
enum class role { init, sidecar, app };
enum class cphase { waiting, running, terminated };

struct container_run {
  std::string name, image;
  json::value spec;  // the container as the Pod spec gives it
  role kind = role::app;
  // Its image is neither rclone nor tidesync: no process. An app or sidecar placeholder is
  // `running` until the Pod goes; an init placeholder completes at once.
  bool placeholder = false;
  cphase state = cphase::waiting;
  std::string reason = "PodInitializing", message;  // state.waiting
  pid_t pid = -1;
  std::string container_id;  // simulate://PID of the last process
  std::string started_at;    // state.running.startedAt
  steady::time_point started_steady;
  json::value terminated;                   // state.terminated, when terminated
  json::value last_state = json::object{};  // lastState
  int64_t restarts = 0;                     // restartCount
  int64_t exit_code = 0;                    // of the last run
  bool ever_started = false;
  bool done = false;  // terminated (or waiting) for good: it is not started again
  // While waiting: when to (re)start it (unset: now; max(): only a new spec would help).
  std::optional<steady::time_point> retry_at;
  std::chrono::milliseconds backoff{0};
  std::string log_path, termination_log;
  bool term_sent = false;  // SIGTERM sent (pod stopping)
  uint64_t start_seq = 0;  // order of its last start: sidecars stop in reverse order

  [[nodiscard]] bool alive() const { return pid > 0 || (placeholder && state == cphase::running); }
};

// A bare Pod (no Job owns it) this kubelet runs, from binding to its removal.
struct pod_run {
  std::string ns, name, uid;
  json::value spec;
  std::string restart_policy = "Always";
  std::vector<container_run> inits, apps;
  size_t next_init = 0;  // the init container to run next; inits.size(): initialised
  std::string start_time, log_dir;
  std::string reason, message;  // status.reason/message set by the kubelet (else the logs)
  // Set once every regular container ended for good (or an init container failed with
  // restartPolicy Never); the sidecars are then stopped and the phase becomes final_phase.
  std::string final_phase;
  bool finished = false;  // everything is down: final_phase is the phase
  // Graceful deletion: the regular containers get SIGTERM, then the sidecars in reverse
  // order; whatever is left at kill_at gets SIGKILL; then the Pod is deleted for good.
  bool deleting = false;
  steady::time_point delete_seen;
  int64_t grace = 0;
  std::optional<steady::time_point> kill_at;
  bool killed = false;
  std::map<std::string, std::pair<bool, std::string>> conditions;  // type → (status, since)
  std::string written;  // the status last written (no write when nothing changed)

  [[nodiscard]] pod_ref ref() const { return pod_ref{ns, name, &spec}; }
  template <typename F>
  void each(F&& f) {
    for (auto& c : inits)
      f(c);
    for (auto& c : apps)
      f(c);
  }
};

// A Deployment this kubelet plays the Deployment (and ReplicaSet) controller for.
struct deploy_run {
  std::string ns, name;
  bool dirty = true;               // an event came: reconcile at the next tick
  steady::time_point next_sync{};  // reconciled at least this often anyway (minReadySeconds,
                                   // progressDeadlineSeconds, a failed create)
  std::string create_error;        // the last Pod create failed: the ReplicaFailure message
  steady::time_point retry_create_at{};
};

struct kubelet::state {
  resource_type jobs, pods, secrets, configmaps, deployments, claims, volumes;
  std::unique_ptr<watch_stream> watch;         // Jobs
  std::unique_ptr<watch_stream> pod_watch;     // Pods (bare ones are run, deletions finished)
  std::unique_ptr<watch_stream> deploy_watch;  // Deployments
  std::map<std::string, deploy_run> deploys;   // Deployment uid → run
  std::set<std::string> deploys_done;          // unused: a Deployment is never done
  std::map<std::string, job_run> runs;         // Job uid → run
  std::set<std::string> done;                  // uids of Jobs that finished (nothing more to do)
  std::vector<dying_process> dying;            // processes of deleted Jobs/Pods, being killed
  std::map<std::string, pod_run> pod_runs;     // bare Pod uid → run
  std::set<std::string> pods_done;             // uids of bare Pods that ended (or were lost)
  uint64_t start_seq = 0;

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
    r.pod_spec = pod.at("spec") != nullptr ? *pod.at("spec") : json::value(json::object{});
    r.pod_deleting = false;
    auto created = st->create(pods, r.ns, std::move(pod));
    if (!created) {
      logger()->warn("job {}/{}: cannot create pod: {}", r.ns, r.name, created.error().message);
      r.pod.clear();
      r.wait = waiting{"PodCreateFailed", created.error().message};
      r.retry_wait = true;  // try again next second (a pod name clash, a missing namespace)
      r.next_attempt = steady::now() + std::chrono::seconds(1);
      return;
    }
    r.pod_uid = (*created)->uid;
    r.log_path.clear();
    write_job_status(r);
    try_start_container(r);
  }

  // Resolves env and volumes and starts the process; on a problem the pod stays Pending with
  // the reason in its container's `waiting` state.
  void try_start_container(job_run& r) {
    const auto* c = first_container(r.spec);
    launch l;
    fs::path pod_dir = fs::path(opt->data_dir) / "pods" / r.ns / r.pod;
    auto w =
        c == nullptr
            ? std::optional<waiting>(waiting{"InvalidPodSpec", "the pod template has no container"})
            : prepare(r.ref(), *c, (pod_dir / "termination-log").string(), l, r.termination_log);
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

    pid_t pid = -1;
    int rc = spawn(l, r.log_path, false, pid);
    if (rc != 0) {
      // As a runtime that cannot exec: the container terminates with StartError, code 128.
      std::string now = rfc3339::now();
      std::string msg = "cannot start " + l.argv[0] + ": " + std::strerror(rc);
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
    logger()->info("pod {}/{}: started {} (pid {}), logs in {}", r.ns, r.pod, l.argv[0], pid,
                   r.log_path);
    write_pod_status(r, "Running",
                     json::object{{"running", json::object{{"startedAt", r.container_started}}}});
    write_job_status(r);
  }

  // Fills `l` for container `c` of pod `p`, or says why it cannot start. `termination_file`
  // is the local file behind the container's terminationMessagePath; `termination_log` is
  // set to it when the container has one.
  std::optional<waiting> prepare(const pod_ref& p, const json::value& c,
                                 const std::string& termination_file, launch& l,
                                 std::string& termination_log) {
    auto& argv = l.argv;
    auto& env = l.env;
    auto& mounts = l.mounts;
    std::string image(c.get_string("image"));
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
    fs::path pod_dir = fs::path(opt->data_dir) / "pods" / p.ns / p.name;
    env.emplace_back("HOSTNAME", p.name);
    env.emplace_back("HOME", pod_dir.string());
    auto set_env = [&](const std::string& k, std::string v) {
      for (auto& kv : env)
        if (kv.first == k) {
          kv.second = std::move(v);
          return;
        }
      env.emplace_back(k, std::move(v));
    };
    if (auto w = resolve_env_from(p, c, set_env)) return w;
    if (auto w = resolve_env(p, c, env, set_env)) return w;

    // Volumes.
    std::map<std::string, std::string> volume_paths;
    if (const auto* vols = p.spec != nullptr ? p.spec->at("volumes") : nullptr;
        vols != nullptr && vols->is_array())
      for (const auto& v : vols->as_array())
        if (auto w = resolve_volume(p, v, pod_dir, volume_paths)) return w;
    if (const auto* vms = c.at("volumeMounts"); vms != nullptr && vms->is_array())
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
    // terminationMessagePath (default /dev/termination-log) is a per-container file, as the
    // kubelet bind-mounts one; its content becomes state.terminated.message.
    termination_log.clear();
    std::string tm_path(c.get_string("terminationMessagePath", "/dev/termination-log"));
    if (!tm_path.empty() && tm_path.front() == '/') {
      std::error_code tec;
      fs::create_directories(fs::path(termination_file).parent_path(), tec);
      termination_log = termination_file;
      fs::remove(termination_log, tec);
      mounts.emplace_back(tm_path, termination_log);
    }
    std::sort(mounts.begin(), mounts.end(),
              [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    for (auto& kv : env)
      kv.second = map_arg(kv.second, mounts);

    // argv: command replaces the image's entrypoint, args follow.
    std::vector<std::string> cmd, args;
    if (const auto* a = c.at("command"); a != nullptr && a->is_array())
      for (const auto& x : a->as_array())
        cmd.push_back(expand(x.is_string() ? x.as_string() : "", env));
    if (const auto* a = c.at("args"); a != nullptr && a->is_array())
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
    std::string wd(c.get_string("workingDir"));
    l.cwd = wd.empty() ? pod_dir.string() : map_path(wd, mounts);
    fs::create_directories(l.cwd, ec);
    return std::nullopt;
  }

  // The data of a Secret (decoded) or ConfigMap; a missing object is an error message.
  std::optional<std::map<std::string, std::string>> source_data(const pod_ref& p, bool secret,
                                                                const std::string& name,
                                                                std::string& why) {
    auto o = st->get(secret ? secrets : configmaps, p.ns, name);
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
  std::optional<waiting> resolve_env_from(const pod_ref& p, const json::value& c, Set& set_env) {
    const auto* ef = c.at("envFrom");
    if (ef == nullptr || !ef->is_array()) return std::nullopt;
    for (const auto& src : ef->as_array()) {
      bool secret = src.at("secretRef") != nullptr;
      const auto* ref = secret ? src.at("secretRef") : src.at("configMapRef");
      if (ref == nullptr) continue;
      std::string why;
      auto data = source_data(p, secret, std::string(ref->get_string("name")), why);
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
  std::optional<waiting> resolve_env(const pod_ref& p, const json::value& c,
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
        auto data = source_data(p, secret, oname, why);
        if (data) {
          auto it = data->find(key);
          if (it != data->end()) {
            set_env(name, it->second);
            continue;
          }
          why = "couldn't find key " + key + " in " + (secret ? "Secret " : "ConfigMap ") + p.ns +
                "/" + oname;
        }
        if (ref->get_bool("optional")) continue;
        return waiting{"CreateContainerConfigError", why};
      }
      if (const auto* fr = vf->at("fieldRef"); fr != nullptr) {
        std::string path(fr->get_string("fieldPath"));
        if (path == "metadata.name")
          set_env(name, p.name);
        else if (path == "metadata.namespace")
          set_env(name, p.ns);
        else if (path == "spec.nodeName")
          set_env(name, "tidesync-simulate");
        else if (path == "status.podIP" || path == "status.hostIP")
          set_env(name, "127.0.0.1");
        else if (path == "spec.serviceAccountName")
          set_env(name, std::string(p.spec != nullptr
                                        ? p.spec->get_string("serviceAccountName", "default")
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

  std::optional<waiting> resolve_volume(const pod_ref& pod, const json::value& v,
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
    } else if (const auto* nfs = v.at("nfs"); nfs != nullptr) {
      std::string why;
      std::string p =
          nfs_folder(opt->data_dir, nfs->get_string("server"), nfs->get_string("path"), why);
      if (p.empty()) return waiting{"CreateContainerConfigError", "volume " + name + ": " + why};
      fs::create_directories(p, ec);
      out[name] = p;
    } else if (const auto* pvc = v.at("persistentVolumeClaim"); pvc != nullptr) {
      std::string claim(pvc->get_string("claimName"));
      json::value pv_nfs;
      if (auto w = bound_nfs(pod.ns, claim, pv_nfs))
        return waiting{w->reason, "volume " + name + ": " + w->message};
      std::string p;
      if (pv_nfs.is_object()) {
        // The claim is bound to an nfs PersistentVolume: the same folder as an inline nfs
        // volume of that server and path.
        std::string why;
        p = nfs_folder(opt->data_dir, pv_nfs.get_string("server"), pv_nfs.get_string("path"), why);
        if (p.empty()) return waiting{"CreateContainerConfigError", "volume " + name + ": " + why};
      } else {
        p = (fs::path(opt->data_dir) / "volumes" / pod.ns / claim).string();
      }
      fs::create_directories(p, ec);
      out[name] = p;
    } else if (v.at("secret") != nullptr || v.at("configMap") != nullptr) {
      bool secret = v.at("secret") != nullptr;
      const auto* src = secret ? v.at("secret") : v.at("configMap");
      std::string oname(src->get_string(secret ? "secretName" : "name"));
      std::string why;
      auto data = source_data(pod, secret, oname, why);
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
                         ": only hostPath, emptyDir, nfs, persistentVolumeClaim, secret and "
                         "configMap volumes are supported by the simulation"};
    }
    return std::nullopt;
  }

  // The `nfs` source of the PersistentVolume bound to claim ns/claim, left in `out` (null when
  // the claim is bound to no PersistentVolume, or to one that is not nfs): the PV the claim's
  // spec.volumeName names, else a PV whose spec.claimRef names the claim. A claim naming a PV
  // that does not exist waits for it, as its pod would not be scheduled.
  std::optional<waiting> bound_nfs(const std::string& ns, const std::string& claim,
                                   json::value& out) {
    out = nullptr;
    auto pvc = st->get(claims, ns, claim);
    std::string volume_name;
    if (pvc)
      volume_name = std::string((*pvc)->obj.at("spec") != nullptr
                                    ? (*pvc)->obj.at("spec")->get_string("volumeName")
                                    : "");
    const json::value* nfs = nullptr;
    object_ptr pv;
    if (!volume_name.empty()) {
      auto got = st->get(volumes, "", volume_name);
      if (!got)
        return waiting{"CreateContainerConfigError", "persistentvolumeclaim \"" + claim +
                                                         "\" is bound to persistentvolume \"" +
                                                         volume_name + "\", which does not exist"};
      pv = *got;
    } else if (auto all = st->list(volumes, "", {})) {
      for (const auto& o : all->items) {
        const auto* ref = o->obj.at_path({"spec", "claimRef"});
        if (ref == nullptr || ref->get_string("name") != claim ||
            ref->get_string("namespace", "default") != ns)
          continue;
        // A claimRef with a uid names that one claim: a claim recreated under the same name is
        // another one.
        std::string ref_uid(ref->get_string("uid"));
        if (!ref_uid.empty() && pvc && (*pvc)->uid != ref_uid) continue;
        pv = o;
        break;
      }
    }
    if (pv) nfs = pv->obj.at_path({"spec", "nfs"});
    if (nfs != nullptr && nfs->is_object()) out = *nfs;
    return std::nullopt;
  }

  // --- processes -------------------------------------------------------------------------
  void on_exit(job_run& r, int wstatus, bool known) {
    auto rep = report_exit(wstatus, known, r.termination_log, r.container_started);
    int64_t code = rep.code;
    bool ok = code == 0 && r.pod_reason.empty();
    logger()->info("pod {}/{}: exited with code {}", r.ns, r.pod, code);
    write_pod_status(r, ok ? "Succeeded" : "Failed",
                     json::object{{"terminated", std::move(rep.terminated)}});
    r.pid = -1;
    --*running;
    r.kill_at.reset();
    if (r.pod_deleting) remove_now(r.ns, r.pod, r.pod_uid);  // its deletion waited for this
    r.pod_deleting = false;
    r.pod.clear();
    if (r.finished) return;  // the deadline ended the Job already
    if (ok)
      ++r.succeeded;
    else
      ++r.failed;
    next_step(r);
  }

  // Deletes a pod for good (grace period 0): what a kubelet does once its containers are down.
  void remove_now(const std::string& ns, const std::string& name, const std::string& uid) {
    delete_options d;
    d.grace_period_seconds = 0;
    d.precondition_uid = uid;
    auto r = st->remove(pods, ns, name, d);
    if (!r && r.error().code != errc::not_found && r.error().code != errc::conflict)
      logger()->warn("pod {}/{}: cannot delete: {}", ns, name, r.error().message);
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
      dying.push_back({r.pid, steady::now() + opt->kill_grace, false, r.ns, r.pod, r.pod_uid});
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
    sync_deployments();
    std::vector<std::string> over;
    for (auto& [uid, p] : pod_runs)
      if (!advance(p)) over.push_back(uid);
    for (const auto& uid : over) {
      pod_runs.erase(uid);
      pods_done.insert(uid);
    }
    for (auto it = dying.begin(); it != dying.end();) {
      int ws = 0;
      pid_t w = ::waitpid(it->pid, &ws, WNOHANG);
      if (w == it->pid || (w < 0 && errno == ECHILD)) {
        --*running;
        if (!it->pod.empty()) remove_now(it->ns, it->pod, it->pod_uid);
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

  // --- the Deployment controller ---------------------------------------------------------
  // A Deployment was added or changed: it is reconciled at the next tick.
  void observe_deploy(const json::value& d) {
    const auto* meta = d.at("metadata");
    if (meta == nullptr) return;
    auto& r = deploys[std::string(meta->get_string("uid"))];
    r.ns = std::string(meta->get_string("namespace"));
    r.name = std::string(meta->get_string("name"));
    r.dirty = true;
  }

  // A Deployment is gone. The store's ownerReference cascade deletes its Pods (gracefully);
  // any it did not reach go now. An orphaning delete dropped their references first, so those
  // are not found here and run on as bare Pods, as in Kubernetes.
  void deploy_gone(const std::string& uid) {
    auto it = deploys.find(uid);
    if (it == deploys.end()) return;
    for (const auto& pod : deployment_pods(it->second.ns, uid))
      if (!has_deletion(pod)) {
        const auto* m = pod.at("metadata");
        (void)st->remove(pods, it->second.ns, std::string(m->get_string("name")));
      }
    logger()->info("deployment {}/{}: deleted", it->second.ns, it->second.name);
    deploys.erase(it);
  }

  // Every Pod of namespace `ns` that Deployment `uid` controls (being deleted included).
  std::vector<json::value> deployment_pods(const std::string& ns, const std::string& uid) {
    std::vector<json::value> out;
    auto l = st->list(pods, ns, {});
    if (!l) return out;
    for (const auto& o : l->items)
      if (controlling_deployment(o->obj) == uid) out.push_back(o->obj);
    return out;
  }

  // A Pod event: the Deployment that controls the Pod (if any) is reconciled at the next tick.
  void pod_changed(const json::value& pod) {
    std::string owner = controlling_deployment(pod);
    if (owner.empty()) return;
    if (auto it = deploys.find(owner); it != deploys.end()) it->second.dirty = true;
  }

  void sync_deployments() {
    auto now = steady::now();
    for (auto& [uid, r] : deploys) {
      if (!r.dirty && now < r.next_sync) continue;
      r.dirty = false;
      r.next_sync = now + std::chrono::seconds(1);
      reconcile_deployment(uid, r);
    }
  }

  // Level-based: reads the Deployment and its Pods from the store, deletes and creates Pods as
  // deployment_logic plans it, then writes the status (when it changed) from the Pods as they
  // are now.
  void reconcile_deployment(const std::string& uid, deploy_run& r) {
    auto cur = st->get(deployments, r.ns, r.name);
    if (!cur || (*cur)->uid != uid) return;  // gone: its DELETED event follows
    const json::value& dep = (*cur)->obj;
    if (has_deletion(dep)) return;  // its Pods go with it (the cascade)
    auto now = std::chrono::system_clock::now();
    auto owned = deployment_pods(r.ns, uid);
    auto plan = plan_deployment(dep, owned, now);
    bool may_create = plan.create > 0 && steady::now() >= r.retry_create_at;
    if (!plan.reason.empty() && (!plan.remove.empty() || may_create))
      logger()->info("deployment {}/{}: {}", r.ns, r.name, plan.reason);
    for (const auto& p : plan.remove) {
      delete_options o;
      o.precondition_uid = p.uid;
      auto rm = st->remove(pods, r.ns, p.name, o);
      if (!rm && rm.error().code != errc::not_found && rm.error().code != errc::conflict)
        logger()->warn("deployment {}/{}: cannot delete pod {}: {}", r.ns, r.name, p.name,
                       rm.error().message);
    }
    if (plan.create == 0) r.create_error.clear();
    if (may_create) {
      for (int64_t i = 0; i < plan.create; ++i) {
        auto failed = create_deployment_pod(dep, plan.hash, r);
        if (failed) {
          if (*failed != r.create_error)
            logger()->warn("deployment {}/{}: cannot create a pod: {}", r.ns, r.name, *failed);
          r.create_error = *failed;
          r.retry_create_at = steady::now() + std::chrono::seconds(1);
          break;
        }
        r.create_error.clear();
      }
    }
    if (!plan.remove.empty() || plan.create > 0) owned = deployment_pods(r.ns, uid);
    auto status = deployment_status(dep, owned, now, r.create_error);
    const auto* old = dep.at("status");
    if (old == nullptr || json::dump(*old) != json::dump(status))
      write_status(deployments, r.ns, r.name, status);
  }

  // Creates one Pod of the template, through the mutating admission webhooks as the
  // ReplicaSet controller's creates go through kube-apiserver's. Returns why it failed.
  std::optional<std::string> create_deployment_pod(const json::value& dep, const std::string& hash,
                                                   const deploy_run& r) {
    for (int attempt = 0;; ++attempt) {
      auto admitted = admit_create(*st, pods, r.ns, deployment_pod(dep, hash, random_suffix()));
      if (!admitted) return admitted.error().message;
      auto created = st->create(pods, r.ns, std::move(*admitted));
      if (created) {
        logger()->info("deployment {}/{}: created pod {}", r.ns, r.name,
                       (*created)->obj.at("metadata")->get_string("name"));
        return std::nullopt;
      }
      // A name clash with another Pod: another suffix, as generateName would retry.
      if (created.error().code != errc::already_exists || attempt >= 3)
        return created.error().message;
    }
  }

  // Kills and reaps every process (stop()).
  void kill_all() {
    std::vector<pid_t> pids;
    for (auto& [uid, r] : runs)
      if (r.pid > 0) pids.push_back(r.pid);
    for (auto& d : dying)
      pids.push_back(d.pid);
    for (auto& [uid, p] : pod_runs)
      for (auto* list : {&p.inits, &p.apps})
        for (auto& c : *list)
          if (c.pid > 0) pids.push_back(c.pid);
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
    for (auto& [uid, p] : pod_runs)
      for (auto* list : {&p.inits, &p.apps})
        for (auto& c : *list)
          c.pid = -1;
    dying.clear();
  }

  // --- bare Pods -------------------------------------------------------------------------
  // A Pod event. Bare Pods (no Job owner) with no node or this node are bound and run; a
  // deletionTimestamp on a Pod of this node starts its graceful termination (or, when nothing
  // of it runs, deletes it for good at once).
  void observe_pod(const json::value& pod) {
    const auto* meta = pod.at("metadata");
    const auto* spec = pod.at("spec");
    if (meta == nullptr || spec == nullptr) return;
    std::string uid(meta->get_string("uid")), ns(meta->get_string("namespace")),
        name(meta->get_string("name")), node(spec->get_string("nodeName"));
    if (owned_by_job(pod)) {
      if (node == k_node && has_deletion(pod)) job_pod_deleted(pod);
      return;
    }
    if (auto it = pod_runs.find(uid); it != pod_runs.end()) {
      if (has_deletion(pod))
        begin_deletion(it->second, meta->get_int("deletionGracePeriodSeconds"));
      return;
    }
    if (!node.empty() && node != k_node) return;  // another node's Pod
    if (has_deletion(pod)) {
      // Nothing of it runs here (it ended, or an earlier run of the simulation ran it).
      if (node == k_node) remove_now(ns, name, uid);
      return;
    }
    if (pods_done.count(uid) != 0) return;
    const auto* status = pod.at("status");
    std::string phase(status != nullptr ? status->get_string("phase") : "");
    if (phase == "Succeeded" || phase == "Failed") {
      pods_done.insert(uid);
      return;
    }
    json::value bound = pod;
    if (node.empty()) {
      // As the scheduler: bind it to this node (the resourceVersion guards against a stale
      // event; a conflict means a newer event follows).
      bound["spec"]["nodeName"] = k_node;
      auto r = st->update(pods, ns, name, bound);
      if (!r) {
        if (r.error().code != errc::conflict && r.error().code != errc::not_found)
          logger()->warn("pod {}/{}: cannot bind: {}", ns, name, r.error().message);
        return;
      }
      bound = (*r)->obj;
    } else if (status != nullptr && !status->get_string("startTime").empty()) {
      // It ran under an earlier run of the simulation: its processes are gone. As after a
      // node restart, restartPolicy Never fails it, otherwise it starts again from its init
      // containers.
      if (spec->get_string("restartPolicy", "Always") == "Never") {
        json::value s = *status;
        s["phase"] = "Failed";
        s["reason"] = "ProcessLost";
        s["message"] = "the simulation stopped while this pod ran";
        write_status(pods, ns, name, s);
        pods_done.insert(uid);
        return;
      }
    }
    take_pod(bound);
  }

  void take_pod(const json::value& pod) {
    const auto* meta = pod.at("metadata");
    pod_run p;
    p.ns = std::string(meta->get_string("namespace"));
    p.name = std::string(meta->get_string("name"));
    p.uid = std::string(meta->get_string("uid"));
    p.spec = *pod.at("spec");
    p.restart_policy = std::string(p.spec.get_string("restartPolicy", "Always"));
    p.start_time = rfc3339::now();
    p.log_dir = (fs::path(opt->data_dir) / "logs" / p.ns / p.name).string();
    std::error_code ec;
    fs::create_directories(p.log_dir, ec);
    auto add = [&](const json::value* list, bool init) {
      if (list == nullptr || !list->is_array()) return;
      for (const auto& c : list->as_array()) {
        container_run cr;
        cr.name = std::string(c.get_string("name"));
        cr.image = std::string(c.get_string("image"));
        cr.spec = c;
        cr.kind = !init                                       ? role::app
                  : c.get_string("restartPolicy") == "Always" ? role::sidecar
                                                              : role::init;
        cr.placeholder = image_entrypoint(cr.image) == entrypoint::none;
        cr.log_path = (fs::path(p.log_dir) / (cr.name + ".log")).string();
        (init ? p.inits : p.apps).push_back(std::move(cr));
      }
    };
    add(p.spec.at("initContainers"), true);
    add(p.spec.at("containers"), false);
    if (p.apps.empty()) {
      p.final_phase = "Failed";
      p.reason = "InvalidPodSpec";
      p.message = "the pod has no containers";
    }
    logger()->info("pod {}/{}: taken ({} init containers, {} containers), logs in {}", p.ns, p.name,
                   p.inits.size(), p.apps.size(), p.log_dir);
    auto [it, inserted] = pod_runs.emplace(p.uid, std::move(p));
    if (inserted && !advance(it->second)) {
      pods_done.insert(it->first);
      pod_runs.erase(it);
    }
  }

  // The Pod was deleted (at once: no graceful deletion, or it was forced) while it ran: its
  // processes are killed in the background.
  void pod_gone(const std::string& uid) {
    pods_done.erase(uid);
    auto it = pod_runs.find(uid);
    if (it == pod_runs.end()) return;
    auto now = steady::now();
    it->second.each([&](container_run& c) {
      if (c.pid <= 0) return;
      signal_group(c.pid, SIGTERM);
      dying.push_back({c.pid, now + opt->kill_grace, false, "", "", ""});
    });
    logger()->info("pod {}/{}: deleted", it->second.ns, it->second.name);
    pod_runs.erase(it);
  }

  void begin_deletion(pod_run& p, int64_t grace) {
    auto now = steady::now();
    grace = std::max<int64_t>(0, grace);
    if (!p.deleting) {
      p.deleting = true;
      p.delete_seen = now;
      p.grace = grace;
      auto at = now + std::chrono::seconds(grace);
      p.kill_at = p.kill_at ? std::min(*p.kill_at, at) : at;
      logger()->info("pod {}/{}: deleted, stopping its containers (grace period {} s)", p.ns,
                     p.name, grace);
    } else if (grace < p.grace) {  // a second delete shortened the grace period
      p.grace = grace;
      p.kill_at = std::min(*p.kill_at, p.delete_seen + std::chrono::seconds(grace));
    }
  }

  // A Job's pod got a deletionTimestamp. The Job's own deletion (cascade, or the Job
  // controller's cleanup) kills the process as before; a pod deleted on its own gets SIGTERM
  // and counts as a failure once it exits. Either way it is deleted for good when no process
  // of it is left.
  void job_pod_deleted(const json::value& pod) {
    const auto* meta = pod.at("metadata");
    std::string ns(meta->get_string("namespace")), name(meta->get_string("name")),
        uid(meta->get_string("uid"));
    int64_t grace = std::max<int64_t>(0, meta->get_int("deletionGracePeriodSeconds"));
    for (auto& [juid, r] : runs) {
      if (r.ns != ns || r.pod != name || r.pid <= 0) continue;
      auto job = st->get(jobs, r.ns, r.name);
      if (!job || (*job)->uid != r.uid || has_deletion((*job)->obj)) {
        forget(std::string(juid));  // the Job goes: as a Job deletion
        return;
      }
      auto at = steady::now() + std::chrono::seconds(grace);
      if (!r.pod_deleting) {
        logger()->info("pod {}/{}: deleted, stopping pid {}", ns, name, r.pid);
        signal_group(r.pid, SIGTERM);
        r.pod_deleting = true;
      }
      if (!r.kill_at || at < *r.kill_at) r.kill_at = at;
      return;
    }
    for (const auto& d : dying)
      if (d.ns == ns && d.pod == name) return;  // deleted for good once the process is reaped
    remove_now(ns, name, uid);
  }

  static bool due(const container_run& c, steady::time_point now) {
    return c.state == cphase::waiting && !c.done && (!c.retry_at || now >= *c.retry_at);
  }

  // One step of a Pod's life: reap exits, start what is due, stop what must stop, write the
  // status. False when the run is over (the Pod finished, or was deleted for good).
  bool advance(pod_run& p) {
    auto now = steady::now();
    p.each([&](container_run& c) { reap(p, c); });
    if (p.kill_at && now >= *p.kill_at && !p.killed) {
      p.killed = true;
      p.each([&](container_run& c) {
        if (c.pid > 0) {
          logger()->info("pod {}/{}: container {} still runs after the grace period: SIGKILL", p.ns,
                         p.name, c.name);
          signal_group(c.pid, SIGKILL);
        }
      });
    }
    if (p.deleting) return terminate_step(p, now);
    if (p.final_phase.empty()) {
      run_inits(p, now);
      // Native sidecars that exited are restarted (their restartPolicy is Always).
      for (size_t i = 0; i < p.next_init && i < p.inits.size(); ++i)
        if (p.inits[i].kind == role::sidecar && due(p.inits[i], now)) start(p, p.inits[i]);
      if (p.final_phase.empty() && p.next_init >= p.inits.size()) {
        for (auto& c : p.apps)
          if (due(c, now)) start(p, c);
        bool all_done = std::all_of(p.apps.begin(), p.apps.end(), [](const container_run& c) {
          return c.done && c.state == cphase::terminated;
        });
        if (all_done) {
          bool ok = std::all_of(p.apps.begin(), p.apps.end(),
                                [](const container_run& c) { return c.exit_code == 0; });
          p.final_phase = ok ? "Succeeded" : "Failed";
        }
      }
    }
    if (!p.final_phase.empty()) {
      // Nothing regular runs any more: the sidecars stop (reverse order), then it is over.
      if (!stop_sidecars(p, now)) {
        publish(p);
        return true;
      }
      p.finished = true;
      logger()->info("pod {}/{}: {}", p.ns, p.name, p.final_phase);
      publish(p);
      return false;
    }
    publish(p);
    return true;
  }

  void run_inits(pod_run& p, steady::time_point now) {
    while (p.next_init < p.inits.size() && p.final_phase.empty()) {
      auto& c = p.inits[p.next_init];
      if (due(c, now)) start(p, c);
      if (c.kind == role::sidecar) {
        if (c.state != cphase::running) return;  // cannot start yet
        ++p.next_init;                           // started: the next one goes at once
        continue;
      }
      if (c.state == cphase::terminated && c.done && c.exit_code == 0) {
        ++p.next_init;
        continue;
      }
      return;  // running, backing off, or failed for good
    }
  }

  // Stops the sidecars one at a time, last started first; true once none is left.
  bool stop_sidecars(pod_run& p, steady::time_point now) {
    if (!p.kill_at) {
      int64_t grace = std::max<int64_t>(0, p.spec.get_int("terminationGracePeriodSeconds", 30));
      p.kill_at = now + std::chrono::seconds(grace);
    }
    for (auto& c : p.inits)
      if (c.kind == role::sidecar && c.state == cphase::waiting) c.done = true;
    for (;;) {
      container_run* last = nullptr;
      for (auto& c : p.inits)
        if (c.kind == role::sidecar && c.alive() &&
            (last == nullptr || c.start_seq > last->start_seq))
          last = &c;
      if (last == nullptr) return true;
      if (last->placeholder) {
        end_placeholder(p, *last);
        continue;
      }
      if (!last->term_sent) {
        logger()->info("pod {}/{}: stopping sidecar {} (pid {})", p.ns, p.name, last->name,
                       last->pid);
        signal_group(last->pid, SIGTERM);
        last->term_sent = true;
      }
      return false;
    }
  }

  // Graceful deletion: regular containers first, then the sidecars; then the Pod goes.
  bool terminate_step(pod_run& p, steady::time_point now) {
    bool regular_alive = false;
    p.each([&](container_run& c) {
      if (c.state == cphase::waiting) c.done = true;  // nothing starts any more
      if (c.kind == role::sidecar || !c.alive()) return;
      if (c.placeholder) {
        end_placeholder(p, c);
        return;
      }
      if (!c.term_sent) {
        logger()->info("pod {}/{}: stopping container {} (pid {})", p.ns, p.name, c.name, c.pid);
        signal_group(c.pid, SIGTERM);
        c.term_sent = true;
      }
      regular_alive = true;
    });
    if (regular_alive || !stop_sidecars(p, now)) {
      publish(p);
      return true;
    }
    if (p.final_phase.empty()) {
      bool ok = std::all_of(p.apps.begin(), p.apps.end(), [](const container_run& c) {
        return c.state == cphase::terminated && c.exit_code == 0;
      });
      p.final_phase = ok ? "Succeeded" : "Failed";
    }
    p.finished = true;
    publish(p);
    logger()->info("pod {}/{}: containers stopped, deleting it", p.ns, p.name);
    remove_now(p.ns, p.name, p.uid);
    return false;
  }

  // A placeholder container (imaginary app) stops: it exits 0 at once.
  void end_placeholder(pod_run& p, container_run& c) {
    (void)p;
    std::string now = rfc3339::now();
    c.state = cphase::terminated;
    c.exit_code = 0;
    c.done = true;
    c.terminated =
        json::object{{"exitCode", int64_t{0}},
                     {"reason", "Completed"},
                     {"message", "placeholder: image " + c.image + " is not run by the simulation"},
                     {"startedAt", c.started_at.empty() ? now : c.started_at},
                     {"finishedAt", now}};
  }

  // Starts a container (or records why it cannot start yet).
  void start(pod_run& p, container_run& c) {
    auto now = steady::now();
    std::string stamp = rfc3339::now();
    c.term_sent = false;
    c.start_seq = ++start_seq;
    if (c.placeholder) {
      if (c.ever_started) ++c.restarts;
      c.ever_started = true;
      c.retry_at.reset();
      c.started_at = stamp;
      c.started_steady = now;
      if (c.kind == role::init) {
        end_placeholder(p, c);  // an imaginary init container succeeds at once
        return;
      }
      c.state = cphase::running;
      logger()->info("pod {}/{}: container {} is a placeholder (image {} is not run)", p.ns, p.name,
                     c.name, c.image);
      return;
    }
    launch l;
    fs::path tl = fs::path(opt->data_dir) / "pods" / p.ns / p.name / "termination-logs" / c.name;
    if (auto w = prepare(p.ref(), c.spec, tl.string(), l, c.termination_log)) {
      if (c.reason != w->reason || c.message != w->message)
        logger()->info("pod {}/{}: container {}: {}: {}", p.ns, p.name, c.name, w->reason,
                       w->message);
      c.state = cphase::waiting;
      c.reason = w->reason;
      c.message = w->message;
      // A missing Secret/ConfigMap may appear: retried every second, as a kubelet does.
      c.retry_at = w->reason == "CreateContainerConfigError" ? now + std::chrono::seconds(1)
                                                             : steady::time_point::max();
      return;
    }
    if (c.ever_started) ++c.restarts;
    bool append = c.ever_started;  // a restart appends to the log, as `kubectl logs -p` keeps it
    c.ever_started = true;
    c.retry_at.reset();
    c.started_at = stamp;
    c.started_steady = now;
    pid_t pid = -1;
    int rc = spawn(l, c.log_path, append, pid);
    if (rc != 0) {
      std::string msg = "cannot start " + l.argv[0] + ": " + std::strerror(rc);
      logger()->warn("pod {}/{}: container {}: {}", p.ns, p.name, c.name, msg);
      c.terminated = json::object{{"exitCode", int64_t{128}},
                                  {"reason", "StartError"},
                                  {"message", msg},
                                  {"startedAt", stamp},
                                  {"finishedAt", stamp}};
      c.exit_code = 128;
      c.state = cphase::terminated;
      after_exit(p, c);
      return;
    }
    c.pid = pid;
    c.container_id = "simulate://" + std::to_string(pid);
    c.state = cphase::running;
    ++*running;
    logger()->info("pod {}/{}: started container {}: {} (pid {})", p.ns, p.name, c.name, l.argv[0],
                   pid);
  }

  void reap(pod_run& p, container_run& c) {
    if (c.pid <= 0) return;
    int ws = 0;
    pid_t w = ::waitpid(c.pid, &ws, WNOHANG);
    if (w != c.pid && !(w < 0 && errno == ECHILD)) return;
    auto rep = report_exit(ws, w == c.pid, c.termination_log, c.started_at);
    logger()->info("pod {}/{}: container {} exited with code {}", p.ns, p.name, c.name, rep.code);
    c.pid = -1;
    --*running;
    c.exit_code = rep.code;
    c.terminated = json::value(std::move(rep.terminated));
    c.state = cphase::terminated;
    after_exit(p, c);
  }

  // A container ended: restart it (after a back-off) or leave it terminated for good.
  void after_exit(pod_run& p, container_run& c) {
    if (p.deleting || !p.final_phase.empty()) {
      c.done = true;
      return;
    }
    bool restart = false;
    switch (c.kind) {
      case role::init:
        if (c.exit_code == 0) break;
        restart = p.restart_policy != "Never";
        if (!restart) {
          logger()->info("pod {}/{}: init container {} failed (restartPolicy Never)", p.ns, p.name,
                         c.name);
          p.final_phase = "Failed";
        }
        break;
      case role::sidecar:
        restart = true;
        break;
      case role::app:
        restart =
            p.restart_policy == "Always" || (p.restart_policy == "OnFailure" && c.exit_code != 0);
        break;
    }
    if (!restart) {
      c.done = true;
      return;
    }
    // As the kubelet's CrashLoopBackOff: the delay doubles up to a cap, and starts over once
    // the container ran for longer than the cap.
    auto now = steady::now();
    if (c.backoff.count() == 0 || now - c.started_steady >= opt->max_restart_backoff)
      c.backoff = opt->restart_backoff;
    else
      c.backoff = std::min(c.backoff * 2, opt->max_restart_backoff);
    c.last_state = json::object{{"terminated", c.terminated}};
    c.state = cphase::waiting;
    c.reason = "CrashLoopBackOff";
    c.message = "back-off " + std::to_string(c.backoff.count()) +
                "ms restarting failed container=" + c.name + " pod=" + p.name + "_" + p.ns + "(" +
                p.uid + ")";
    c.retry_at = now + c.backoff;
  }

  json::value container_status(const container_run& c) {
    json::object state;
    switch (c.state) {
      case cphase::waiting: {
        json::object w{{"reason", c.reason}};
        if (!c.message.empty()) w.set("message", c.message);
        state.set("waiting", std::move(w));
        break;
      }
      case cphase::running:
        state.set("running", json::object{{"startedAt", c.started_at}});
        break;
      case cphase::terminated:
        state.set("terminated", c.terminated);
        break;
    }
    bool running_now = c.state == cphase::running;
    // Probes are not run: a running container is ready; a regular init container is ready
    // once it completed.
    bool ready =
        c.kind == role::init ? c.state == cphase::terminated && c.exit_code == 0 : running_now;
    json::object s{{"name", c.name}, {"state", std::move(state)},  {"lastState", c.last_state},
                   {"ready", ready}, {"restartCount", c.restarts}, {"image", c.image},
                   {"imageID", ""},  {"started", running_now}};
    if (!c.container_id.empty()) s.set("containerID", c.container_id);
    return json::value(std::move(s));
  }

  // Writes the Pod's status as a kubelet would, when it changed.
  void publish(pod_run& p) {
    bool initialised = p.next_init >= p.inits.size();
    bool any_started = std::any_of(p.apps.begin(), p.apps.end(),
                                   [](const container_run& c) { return c.ever_started; });
    std::string phase = p.finished                   ? p.final_phase
                        : initialised && any_started ? "Running"
                                                     : "Pending";
    bool terminal = phase == "Succeeded" || phase == "Failed";
    bool apps_ready = std::all_of(p.apps.begin(), p.apps.end(), [](const container_run& c) {
      return c.state == cphase::running;
    });
    bool sidecars_ready = std::all_of(p.inits.begin(), p.inits.end(), [](const container_run& c) {
      return c.kind != role::sidecar || c.state == cphase::running;
    });
    auto cond = [&](const char* type, bool ok, const char* reason, const std::string& message) {
      auto& [was, since] = p.conditions[type];
      if (since.empty() || was != ok) {
        was = ok;
        since = rfc3339::now();
      }
      json::object c{{"type", type},
                     {"status", ok ? "True" : "False"},
                     {"lastProbeTime", nullptr},
                     {"lastTransitionTime", since}};
      if (!ok && reason != nullptr) c.set("reason", reason);
      if (!ok && !message.empty()) c.set("message", message);
      return json::value(std::move(c));
    };
    std::string unready;
    for (const auto& c : p.apps)
      if (c.state != cphase::running) unready += (unready.empty() ? "" : " ") + c.name;
    std::string not_ready_msg = "containers with unready status: [" + unready + "]";
    const char* not_ready = terminal ? "PodCompleted" : "ContainersNotReady";
    std::string incomplete;
    for (size_t i = p.next_init; i < p.inits.size(); ++i)
      incomplete += (incomplete.empty() ? "" : " ") + p.inits[i].name;
    json::array conds{
        cond("Initialized", initialised, "ContainersNotInitialized",
             "containers with incomplete status: [" + incomplete + "]"),
        cond("Ready", apps_ready && sidecars_ready && !terminal, not_ready,
             terminal ? "" : not_ready_msg),
        cond("ContainersReady", apps_ready && !terminal, not_ready, terminal ? "" : not_ready_msg),
        cond("PodScheduled", true, nullptr, "")};
    json::object s{
        {"phase", phase},           {"conditions", std::move(conds)},
        {"hostIP", "127.0.0.1"},    {"hostIPs", json::array{json::object{{"ip", "127.0.0.1"}}}},
        {"podIP", "127.0.0.1"},     {"podIPs", json::array{json::object{{"ip", "127.0.0.1"}}}},
        {"startTime", p.start_time}};
    if (!p.inits.empty()) {
      json::array is;
      for (const auto& c : p.inits)
        is.push_back(container_status(c));
      s.set("initContainerStatuses", std::move(is));
    }
    json::array cs;
    for (const auto& c : p.apps)
      cs.push_back(container_status(c));
    s.set("containerStatuses", std::move(cs));
    s.set("qosClass", "BestEffort");
    if (!p.reason.empty()) s.set("reason", p.reason);
    s.set("message", !p.message.empty() ? p.message : "logs: " + p.log_dir + "/<container>.log");
    json::value status(std::move(s));
    std::string text = json::dump(status);
    if (text == p.written) return;
    if (write_status(pods, p.ns, p.name, status)) p.written = std::move(text);
  }

  // Pods of this node left with a deletionTimestamp: nothing of them runs any more (stop(),
  // or an earlier run that ended mid-deletion), so they are deleted for good.
  void finish_terminating_pods() {
    list_options lo;
    lo.field_selector = std::string("spec.nodeName=") + k_node;
    auto l = st->list(pods, "", lo);
    if (!l) return;
    for (const auto& o : l->items)
      if (has_deletion(o->obj)) {
        const auto* m = o->obj.at("metadata");
        remove_now(std::string(m->get_string("namespace")), std::string(m->get_string("name")),
                   o->uid);
      }
  }

  // --- the Job watch ---------------------------------------------------------------------
  // Lists every Job (level-based: also after a dropped watch or a 410) and watches from there.
  // Lists `t` (`what`: for the log), hands each object to `observe`, calls `gone` for each uid
  // of `known` that is no longer listed, trims `done` to the listed uids, and watches from the
  // listing. Null when the list or the watch fails (the caller retries).
  template <class Observe, class Map, class Gone>
  std::unique_ptr<watch_stream> list_and_watch(const resource_type& t, const char* what,
                                               Observe observe, const Map& known, Gone gone,
                                               std::set<std::string>& done) {
    auto l = st->list(t, "", {});
    if (!l) {
      logger()->warn("list {}: {}", what, l.error().message);
      return nullptr;
    }
    std::set<std::string> seen;
    for (const auto& o : l->items) {
      seen.insert(o->uid.empty() ? std::string(o->obj.at("metadata")->get_string("uid")) : o->uid);
      observe(o->obj);
    }
    std::vector<std::string> vanished;
    for (const auto& entry : known)
      if (seen.count(entry.first) == 0) vanished.push_back(entry.first);
    for (const auto& uid : vanished)
      gone(uid);
    for (auto it = done.begin(); it != done.end();)
      it = seen.count(*it) == 0 ? done.erase(it) : std::next(it);
    watch_options wo;
    wo.resource_version = l->resource_version;
    auto w = st->watch(t, "", wo);
    if (!w) {
      logger()->warn("watch {}: {}", what, w.error().message);
      return nullptr;
    }
    return std::move(*w);
  }

  bool relist() {
    watch = list_and_watch(
        jobs, "jobs", [this](const json::value& o) { observe(o); }, runs,
        [this](const std::string& uid) { forget(uid); }, done);
    return watch != nullptr && relist_pods() && relist_deployments();
  }

  // Lists every Deployment (each is reconciled at the next tick) and watches from there.
  bool relist_deployments() {
    deploy_watch.reset();
    deploy_watch = list_and_watch(
        deployments, "deployments", [this](const json::value& o) { observe_deploy(o); }, deploys,
        [this](const std::string& uid) { deploy_gone(uid); }, deploys_done);
    return deploy_watch != nullptr;
  }

  void handle_deploy_line(const std::string& line) {
    auto ev = json::parse(line);
    if (!ev) return;
    std::string type(ev->get_string("type"));
    const auto* obj = ev->at("object");
    if (obj == nullptr) return;
    if (type == "ERROR") {  // 410 Expired: relist
      deploy_watch.reset();
      return;
    }
    if (type == "DELETED") {
      const auto* meta = obj->at("metadata");
      if (meta != nullptr) deploy_gone(std::string(meta->get_string("uid")));
      return;
    }
    if (type == "ADDED" || type == "MODIFIED") observe_deploy(*obj);
  }

  // Lists every Pod (bare ones to run, deletions to finish) and watches from there.
  bool relist_pods() {
    pod_watch.reset();
    pod_watch = list_and_watch(
        pods, "pods", [this](const json::value& o) { observe_pod(o); }, pod_runs,
        [this](const std::string& uid) { pod_gone(uid); }, pods_done);
    return pod_watch != nullptr;
  }

  void handle_pod_line(const std::string& line) {
    auto ev = json::parse(line);
    if (!ev) return;
    std::string type(ev->get_string("type"));
    const auto* obj = ev->at("object");
    if (obj == nullptr) return;
    if (type == "ERROR") {  // 410 Expired: relist
      pod_watch.reset();
      return;
    }
    if (type == "ADDED" || type == "MODIFIED" || type == "DELETED") pod_changed(*obj);
    if (type == "DELETED") {
      const auto* meta = obj->at("metadata");
      if (meta != nullptr) pod_gone(std::string(meta->get_string("uid")));
      return;
    }
    if (type == "ADDED" || type == "MODIFIED") observe_pod(*obj);
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
  auto deployments = find("apps", "deployments");
  auto claims = find("", "persistentvolumeclaims");
  auto volumes = find("", "persistentvolumes");
  for (const auto* t : {&jobs, &pods, &secrets, &cms, &deployments, &claims, &volumes})
    if (!*t) return t->error();
  s.jobs = *jobs;
  s.pods = *pods;
  s.secrets = *secrets;
  s.configmaps = *cms;
  s.deployments = *deployments;
  s.claims = *claims;
  s.volumes = *volumes;
  if (options_.data_dir.empty()) return make_error(errc::config_error, "kubelet: no data dir");
  std::error_code ec;
  fs::create_directories(options_.data_dir, ec);
  if (ec)
    return make_error(errc::io_error,
                      "kubelet: cannot create " + options_.data_dir + ": " + ec.message());
  // Registered before the first list: from now on deleting a Pod of this node is graceful
  // and this kubelet finishes it (store::register_node).
  store_.register_node(k_node);
  if (!s.relist()) {
    store_.unregister_node(k_node);
    return make_error(errc::internal, "kubelet: cannot list or watch jobs, pods and deployments");
  }
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
  return {};
}

void kubelet::run() {
  auto& s = *state_;
  while (!stopping_) {
    if ((!s.watch || !s.pod_watch || !s.deploy_watch) && !s.relist()) {
      s.tick();
      std::this_thread::sleep_for(options_.tick);  // the store failed: retry shortly
      continue;
    }
    // Waits on the Job watch (any change to the store wakes it up to `tick` later at most),
    // then takes whatever Pod and Deployment events are there.
    auto lines = s.watch->next(options_.tick);
    for (const auto& l : lines) {
      if (!s.watch) break;
      s.handle_line(l);
    }
    if (s.pod_watch) {
      auto pod_lines = s.pod_watch->next(std::chrono::milliseconds(0));
      for (const auto& l : pod_lines) {
        if (!s.pod_watch) break;
        s.handle_pod_line(l);
      }
    }
    if (s.deploy_watch) {
      auto deploy_lines = s.deploy_watch->next(std::chrono::milliseconds(0));
      for (const auto& l : deploy_lines) {
        if (!s.deploy_watch) break;
        s.handle_deploy_line(l);
      }
    }
    if (s.watch && s.watch->closed()) s.watch.reset();
    if (s.pod_watch && s.pod_watch->closed()) s.pod_watch.reset();
    if (s.deploy_watch && s.deploy_watch->closed()) s.deploy_watch.reset();
    if (!s.watch || !s.pod_watch || !s.deploy_watch) {
      s.watch.reset();
      s.pod_watch.reset();
      s.deploy_watch.reset();
    }
    s.tick();
  }
  // New deletions are immediate from here on; the processes are killed and the pods that
  // were being deleted are deleted for good (nobody else would).
  store_.unregister_node(k_node);
  s.watch.reset();
  s.pod_watch.reset();
  s.deploy_watch.reset();
  s.kill_all();
  s.finish_terminating_pods();
}

void kubelet::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

}  // namespace tidesync::apiserver
