#include "actors/datasync_phase.hpp"

#include <algorithm>

#include "config/datasync_job.hpp"
#include "runtime/rfc3339.hpp"

namespace tidesync::actors {

namespace {

using config::datasync_phase;
using config::datasync_vm_phase;
using namespace datasync_action;
using st = populate_observation::state;

constexpr std::string_view k_ready = config::condition_type::ready;

// Builds one step's result; `status` starts as the status last written.
struct builder {
  const config::datasync& obj;
  const datasync_observations& obs;
  config::sys_seconds now;
  datasync_step_result r;

  builder(const config::datasync& o, const datasync_observations& ob, config::sys_seconds n)
      : obj(o), obs(ob), now(n) {
    r.status = obj.status;
  }

  void ready(std::string status, std::string reason, std::string message) {
    set_condition(r.status.conditions,
                  config::make_condition(std::string(k_ready), std::move(status), std::move(reason),
                                         std::move(message), obj.metadata.generation),
                  now);
  }
  void event(std::string type, std::string reason, std::string message) {
    r.actions.emplace_back(emit_event{std::move(type), std::move(reason), std::move(message)});
  }
  void delete_job_named(const std::string& name) { r.actions.emplace_back(delete_job{name}); }

  datasync_step_result done(reconcile_outcome outcome) {
    r.status.last_reconciled_time = obj.status.last_reconciled_time;
    r.status_changed = !same_status(r.status, obj.status);
    if (r.status_changed) r.status.last_reconciled_time = now;
    r.outcome = std::move(outcome);
    return std::move(r);
  }

  static bool same_status(const config::datasync_status& a, const config::datasync_status& b) {
    return a.phase == b.phase && a.message == b.message && a.queue_position == b.queue_position &&
           a.retry_count == b.retry_count && a.next_retry_time == b.next_retry_time &&
           a.vms == b.vms && a.observed_generation == b.observed_generation &&
           a.conditions == b.conditions;
  }
};

// The Job a VM runs now: its name at this generation and retry count.
std::string current_job(const config::datasync& obj, const std::string& vm) {
  return config::datasync_job_name(obj.metadata.name, vm, obj.metadata.generation,
                                   obj.status.retry_count);
}

const populate_observation* job_named(const datasync_observations& obs, const std::string& name) {
  for (const auto& j : obs.jobs)
    if (j.name == name) return &j;
  return nullptr;
}

// Deletes every owned Job that is not the current Job of a VM of the spec (an older
// generation or retry). With `all`, deletes the current ones too (finished DataSync); with
// `unfinished_only`, spares finished Jobs (a Failed DataSync keeps them for `kubectl logs`).
void delete_jobs(builder& b, bool all, bool unfinished_only) {
  std::set<std::string> current;
  if (!all)
    for (const auto& vm : b.obj.spec.vms)
      current.insert(current_job(b.obj, vm.name));
  for (const auto& j : b.obs.jobs) {
    if (j.deleting || current.count(j.name) != 0) continue;
    if (unfinished_only && j.what != st::active) continue;
    b.delete_job_named(j.name);
  }
}

config::datasync_vm_status& vm_status(config::datasync_status& s, const std::string& name) {
  for (auto& v : s.vms)
    if (v.name == name) return v;
  s.vms.push_back({});
  s.vms.back().name = name;
  return s.vms.back();
}

// Fresh per-VM entries in spec order (a new generation starts over; the agent's digest file
// makes already-present data cost nothing).
std::vector<config::datasync_vm_status> fresh_vms(const config::datasync_spec& spec) {
  std::vector<config::datasync_vm_status> out;
  for (const auto& vm : spec.vms) {
    config::datasync_vm_status v;
    v.name = vm.name;
    v.size = vm.size;
    out.push_back(std::move(v));
  }
  return out;
}

std::string plural(int64_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

std::string queued_message(const queue_answer& q, const config::datasync_status& s,
                           config::sys_seconds now) {
  std::string where =
      q.position > 0 ? "; position " + std::to_string(q.position) + " in the queue" : "";
  if (s.next_retry_time && *s.next_retry_time > now)
    return "waiting until " + rfc3339::format(*s.next_retry_time) + " to retry" + where;
  return "waiting for a slot: " + std::to_string(q.syncing) + " of " +
         std::to_string(q.concurrency) + " syncing" + where;
}

// What a failed populate said, for people: "VM base: checksum mismatch: want …, got …".
std::string failure_text(const populate_observation& j) {
  std::string text = j.message;
  if (text.empty()) text = j.reason.empty() ? "the populate Job failed" : j.reason;
  if (j.exit_code != datasync::k_exit_unknown && text.find("exit") == std::string::npos)
    text += " (exit code " + std::to_string(j.exit_code) + ")";
  return "VM " + j.vm + ": " + text;
}

datasync_step_result to_queued(builder& b, std::string event_message) {
  auto& s = b.r.status;
  s.phase = datasync_phase::queued;
  s.observed_generation = b.obj.metadata.generation;
  s.retry_count = 0;
  s.next_retry_time.reset();
  s.queue_position.reset();
  s.vms = fresh_vms(b.obj.spec);
  s.message = "queued";
  // A new generation recreates the volumes a pruned version lost.
  std::erase_if(s.conditions, [](const config::condition& c) {
    return c.type == config::condition_type::pruned;
  });
  b.ready("False", "Queued", "waiting for a slot in the queue");
  b.event("Normal", "Queued", std::move(event_message));
  delete_jobs(b, /*all=*/true, /*unfinished_only=*/false);
  return b.done(reconcile_outcome::success());
}

datasync_step_result queued(builder& b) {
  if (!b.obs.queue) {
    b.r.actions.assign(1, ask_queue{});  // alone: the step runs again with the answer
    return b.done(reconcile_outcome::success());
  }
  const auto& q = *b.obs.queue;
  auto& s = b.r.status;
  delete_jobs(b, /*all=*/false, /*unfinished_only=*/false);  // the failed Jobs of a retry
  if (q.granted) {
    s.phase = datasync_phase::syncing;
    s.queue_position.reset();
    s.next_retry_time.reset();
    int64_t todo = 0;
    for (const auto& v : s.vms)
      if (v.phase != datasync_vm_phase::succeeded) ++todo;
    s.message = "syncing " + plural(todo, "VM", "VMs");
    b.ready("False", "Syncing", s.message);
    b.event("Normal", "Started",
            "admitted (" + std::to_string(q.syncing) + " of " + std::to_string(q.concurrency) +
                " slots in use); syncing " + plural(todo, "VM", "VMs") +
                (s.retry_count > 0 ? " (retry " + std::to_string(s.retry_count) + ")" : ""));
    // Read back before anything is created: the next run sees Syncing and creates the Jobs.
    return b.done(reconcile_outcome::requeue(std::chrono::milliseconds(0)));
  }
  if (position_worth_writing(s.queue_position, q.position)) s.queue_position = q.position;
  // A position of 0 (the queue's cache lags behind our last write) keeps what is written.
  auto shown = s.queue_position ? *s.queue_position : 0;
  queue_answer shown_q = q;
  shown_q.position = shown;
  s.message = queued_message(shown_q, s, b.now);
  if (s.retry_count == 0)
    b.ready("False", "Queued", s.message);
  else
    b.ready("False", "Retrying", s.message);
  return b.done(reconcile_outcome::success());
}

datasync_step_result syncing(builder& b) {
  if (!b.obs.queue) {
    b.r.actions.assign(1, ask_queue{});  // alone: the step runs again with the answer
    return b.done(reconcile_outcome::success());
  }
  const auto policy = b.obs.queue->policy();
  auto& s = b.r.status;
  delete_jobs(b, /*all=*/false, /*unfinished_only=*/false);

  std::vector<std::string> taken;  // claims of unfinished VMs that are not ours
  for (const auto& vm : b.obj.spec.vms)
    if (b.obs.foreign_claims.count(vm.name) != 0 &&
        vm_status(s, vm.name).phase != datasync_vm_phase::succeeded)
      taken.push_back(config::datasync_claim_name(b.obj.metadata.name, vm.name));
  if (!taken.empty()) {
    // Never write into someone else's volume: stop everything and say what to change.
    for (const auto& vm : b.obj.spec.vms)
      if (const auto* j = job_named(b.obs, current_job(b.obj, vm.name));
          j && !j->deleting && j->what == st::active)
        b.delete_job_named(j->name);
    std::string names;
    for (const auto& t : taken)
      names += (names.empty() ? "" : ", ") + t;
    s.phase = datasync_phase::failed;
    s.message = "PersistentVolumeClaim " + names + " in namespace " + b.obj.metadata.namespace_ +
                " already exists and is not owned by this DataSync; tidesync never writes into "
                "a volume it does not own: delete or rename that claim, or rename the VM";
    for (auto& vs : s.vms)
      if (vs.phase == datasync_vm_phase::syncing) {
        vs.phase = datasync_vm_phase::pending;
        vs.message = "stopped: a claim name is taken";
      }
    b.ready("False", "ClaimConflict", s.message);
    b.event("Warning", "ClaimConflict", s.message);
    return b.done(reconcile_outcome::success());
  }

  struct failure {
    datasync::failure_kind kind;
    std::string text;
  };
  std::vector<failure> failures;
  std::vector<std::string> active;              // current Jobs still running
  std::optional<std::chrono::seconds> recheck;  // a failed Job's pod status is awaited
  std::vector<datasync_step_action> creates;    // claims and Jobs missing: made unless it fails
  int64_t succeeded = 0;
  for (const auto& vm : b.obj.spec.vms) {
    auto& vs = vm_status(s, vm.name);
    if (!vs.size && vm.size) vs.size = vm.size;
    if (vs.phase == datasync_vm_phase::succeeded) {
      ++succeeded;
      continue;
    }
    auto name = current_job(b.obj, vm.name);
    const auto* job = job_named(b.obs, name);
    if (job == nullptr) {
      if (vs.phase == datasync_vm_phase::failed) {
        // Failed under this retry count and its Job is gone (deleted by someone): its failure
        // stands until the DataSync is retried.
        failures.push_back({datasync::failure_kind::transient,
                            "VM " + vm.name + ": " + vs.message.value_or("failed")});
        continue;
      }
      if (b.obs.claims.count(vm.name) == 0) creates.emplace_back(create_claim{vm.name});
      creates.emplace_back(create_job{vm.name, name});
      vs.phase = datasync_vm_phase::syncing;
      vs.message.reset();
      continue;
    }
    switch (job->what) {
      case st::active:
        vs.phase = datasync_vm_phase::syncing;
        vs.message.reset();
        active.push_back(name);
        break;
      case st::succeeded: {
        vs.phase = datasync_vm_phase::succeeded;
        vs.message.reset();
        vs.digest = job->digest;
        if (job->bytes > 0) {
          vs.bytes = job->bytes;
          if (!vs.size) vs.size = job->bytes;
        } else if (vs.size) {
          vs.bytes = *vs.size;
        }
        ++succeeded;
        std::string what = job->message.empty() ? "synced" : job->message;
        b.event("Normal", "VMSynced", "VM " + vm.name + ": " + what);
        break;
      }
      case st::failed: {
        if (job->exit_code == datasync::k_exit_unknown && job->pod_unsettled && job->failed_at &&
            b.now < *job->failed_at + k_pod_status_grace) {
          // The exit code says whether to retry: wait for the pod's status (its own event
          // wakes this DataSync; the requeue bounds the wait).
          vs.phase = datasync_vm_phase::syncing;
          active.push_back(name);
          auto left = *job->failed_at + k_pod_status_grace - b.now;
          recheck = recheck ? std::min(*recheck, left) : left;
          break;
        }
        auto kind = datasync::classify(job->exit_code, job->reason);
        auto text = failure_text(*job);
        if (vs.phase != datasync_vm_phase::failed)
          b.event("Warning", "VMFailed", text + " [" + std::string(to_string(kind)) + "]");
        vs.phase = datasync_vm_phase::failed;
        vs.message = std::string(to_string(kind)) + ": " +
                     (job->message.empty() ? failure_text(*job) : job->message);
        failures.push_back({kind, std::move(text)});
        break;
      }
    }
  }
  // Entries of VMs no longer in the spec cannot exist here (a new generation starts over).
  const auto total = static_cast<int64_t>(b.obj.spec.vms.size());

  auto terminal = std::find_if(failures.begin(), failures.end(), [](const failure& f) {
    return f.kind == datasync::failure_kind::missing_source ||
           f.kind == datasync::failure_kind::unauthorized;
  });
  if (terminal != failures.end()) {
    // Nothing heals by itself: fail now and stop the other downloads.
    auto d = datasync::decide_retry(terminal->kind, static_cast<int>(s.retry_count), policy, b.now);
    for (const auto& name : active)
      b.delete_job_named(name);
    for (auto& vs : s.vms)
      if (vs.phase == datasync_vm_phase::syncing) {
        vs.phase = datasync_vm_phase::pending;
        vs.message = "stopped: another VM failed";
      }
    s.phase = datasync_phase::failed;
    s.message = terminal->text + "; " + d.message;
    b.ready("False", d.reason, s.message);
    b.event("Warning", d.reason, s.message);
    return b.done(reconcile_outcome::success());
  }
  // Not failing: the missing claims and Jobs are made now.
  for (auto& c : creates) {
    if (const auto* j = std::get_if<create_job>(&c)) active.push_back(j->name);
    b.r.actions.push_back(std::move(c));
  }
  if (succeeded == total) {
    s.phase = datasync_phase::succeeded;
    s.message = "all " + plural(total, "VM", "VMs") + " synced and verified";
    b.ready("True", "Succeeded", s.message);
    b.event("Normal", "Succeeded", s.message);
    // The data is in the volumes; the finished Jobs (and their pods) are no longer needed.
    for (const auto& vm : b.obj.spec.vms)
      if (const auto* j = job_named(b.obs, current_job(b.obj, vm.name)); j && !j->deleting)
        b.delete_job_named(j->name);
    return b.done(reconcile_outcome::success());
  }
  if (!failures.empty() && active.empty()) {
    // Every VM ran: retry the DataSync (only its unfinished VMs run again) or give up.
    bool checksum = std::any_of(failures.begin(), failures.end(), [](const failure& f) {
      return f.kind == datasync::failure_kind::checksum_mismatch;
    });
    auto kind =
        checksum ? datasync::failure_kind::checksum_mismatch : datasync::failure_kind::transient;
    auto d = datasync::decide_retry(kind, static_cast<int>(s.retry_count), policy, b.now);
    std::string why;
    for (const auto& f : failures)
      why += (why.empty() ? "" : "; ") + f.text;
    if (d.retry) {
      s.phase = datasync_phase::queued;
      s.retry_count += 1;
      s.next_retry_time = d.next_retry_time;
      s.queue_position.reset();
      for (auto& vs : s.vms)
        if (vs.phase == datasync_vm_phase::failed) vs.phase = datasync_vm_phase::pending;
      s.message = d.message + ": " + why;
      b.ready("False", "Retrying", s.message);
      b.event("Warning", "Retrying", s.message);
      // The slot is free now; the queue admits this DataSync again after nextRetryTime.
      return b.done(reconcile_outcome::success());
    }
    s.phase = datasync_phase::failed;
    s.message = d.message + ": " + why;
    b.ready("False", d.reason, s.message);
    b.event("Warning", d.reason, s.message);
    return b.done(reconcile_outcome::success());
  }
  s.message = "syncing: " + std::to_string(succeeded) + " of " + plural(total, "VM", "VMs") +
              " done" +
              (failures.empty() ? "" : ", " + std::to_string(failures.size()) + " failed");
  b.ready("False", "Syncing", s.message);
  return b.done(recheck ? reconcile_outcome::requeue(*recheck) : reconcile_outcome::success());
}

}  // namespace

bool position_worth_writing(std::optional<int64_t> written, int64_t position) {
  if (position <= 0) return false;
  if (!written) return true;
  if (position == *written) return false;
  if (position <= 3 || position > *written) return true;
  return position * 2 <= *written;
}

datasync_step_result datasync_step(const config::datasync& obj, const datasync_observations& obs,
                                   config::sys_seconds now) {
  builder b(obj, obs, now);
  auto& s = b.r.status;
  const auto gen = obj.metadata.generation;

  if (obs.spec_error) {
    bool reported = s.phase == datasync_phase::failed && s.observed_generation == gen;
    if (!reported) {
      s.phase = datasync_phase::failed;
      s.observed_generation = gen;
      s.message = "invalid spec: " + *obs.spec_error;
      s.queue_position.reset();
      s.next_retry_time.reset();
      s.retry_count = 0;
      s.vms.clear();
      b.ready("False", "InvalidSpec", s.message);
      b.event("Warning", "InvalidSpec", s.message);
    }
    delete_jobs(b, /*all=*/true, /*unfinished_only=*/true);
    return b.done(reconcile_outcome::success());
  }
  if (!obs.has_workspace_label) b.r.actions.emplace_back(label_workspace{});

  if (s.phase == datasync_phase::none)
    return to_queued(
        b, "queued with " + plural(static_cast<int64_t>(obj.spec.vms.size()), "VM", "VMs"));
  if (s.observed_generation != gen)
    return to_queued(b, "the spec changed (generation " + std::to_string(gen) + "): queued again");

  switch (s.phase) {
    case datasync_phase::queued:
      return queued(b);
    case datasync_phase::syncing:
      return syncing(b);
    case datasync_phase::succeeded:
      delete_jobs(b, /*all=*/true, /*unfinished_only=*/false);
      return b.done(reconcile_outcome::success());
    case datasync_phase::failed:
      // Finished Jobs stay for `kubectl logs`; nothing may still be downloading.
      delete_jobs(b, /*all=*/true, /*unfinished_only=*/true);
      return b.done(reconcile_outcome::success());
    case datasync_phase::none:
      break;
  }
  return b.done(reconcile_outcome::success());
}

int64_t newly_synced_bytes(const config::datasync_status& before,
                           const config::datasync_status& after) {
  int64_t out = 0;
  for (const auto& vm : after.vms) {
    if (vm.phase != config::datasync_vm_phase::succeeded || vm.bytes <= 0) continue;
    bool was = false;
    for (const auto& old : before.vms)
      was |= old.name == vm.name && old.phase == config::datasync_vm_phase::succeeded;
    if (!was) out += vm.bytes;
  }
  return out;
}

}  // namespace tidesync::actors
