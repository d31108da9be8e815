#include "actors/bucketsync_phase.hpp"

#include <algorithm>

#include "actors/lock_logic.hpp"
#include "config/condition.hpp"
#include "config/job_builder.hpp"

namespace tidesync::actors {
namespace {

using config::bucket_sync_phase;
namespace ctype = config::condition_type;

// Ready's reasons while the sync is not finished (the failures name their own).
constexpr std::string_view k_reason_initializing = "Initializing";
constexpr std::string_view k_reason_waiting = "WaitingForLock";
constexpr std::string_view k_reason_syncing = "Syncing";

bool same_status(const config::bucket_sync_status& a, const config::bucket_sync_status& b) {
  return a.phase == b.phase && a.job == b.job && a.start_time == b.start_time &&
         a.finish_time == b.finish_time && a.error == b.error &&
         a.last_reconciled_time == b.last_reconciled_time &&
         a.observed_generation == b.observed_generation && a.conditions == b.conditions;
}

// The state of one step while it runs.
struct machine {
  const config::bucket_sync& obj;
  const observations& obs;
  config::sys_seconds now;
  step_result& r;

  config::bucket_sync_status& s() { return r.status; }

  void event(std::string_view type, std::string_view reason, std::string message) {
    r.actions.emplace_back(
        phase_action::emit_event{std::string(type), std::string(reason), std::move(message)});
  }

  // Sets a condition stamped with the generation the status describes.
  const config::condition& condition(std::string_view type, std::string_view status,
                                     std::string_view reason, std::string message) {
    config::set_condition(
        s().conditions,
        config::make_condition(std::string(type), std::string(status), std::string(reason),
                               std::move(message), s().observed_generation),
        now);
    return *config::find_condition(s().conditions, type);
  }

  // Any failure: record it and go to Finalize (in the same step).
  void fail(std::string_view reason, std::string message) {
    s().error = message;
    condition(ctype::ready, "False", reason, message);
    event("Warning", reason, std::move(message));
    s().phase = bucket_sync_phase::finalize;
  }

  std::string name() const { return obj.metadata.namespace_ + "/" + obj.metadata.name; }

  void initialize() {
    const int64_t generation = obj.metadata.generation;
    // A new generation after we asked for locks: the set may have changed, and the lock
    // manager refuses a different set from a waiter, so withdraw and ask again.
    const bool respec = s().observed_generation != 0 && s().observed_generation != generation;
    s().observed_generation = generation;
    if (obs.spec_error) return fail("InvalidSpec", *obs.spec_error);
    auto paths = lock_paths(obj);
    if (!paths) return fail("InvalidSpec", paths.error().message);
    const std::string holder = lock_holder(obj);

    if (respec || !obs.locks) {
      if (respec) r.actions.emplace_back(phase_action::release_locks{holder});
      r.actions.emplace_back(phase_action::acquire_locks{holder, *paths});
      if (!config::find_condition(s().conditions, ctype::ready))
        condition(ctype::ready, "False", k_reason_initializing, "acquiring the bucket locks");
      return;
    }
    const lock_reply& lock = *obs.locks;
    switch (lock.what) {
      case lock_reply::kind::waiting: {
        std::string message = "waiting for the lock on " + lock.path + " held by " + lock.blocker;
        if (lock.blocker_waiting) message += " (itself waiting for it)";
        message += "; position " + std::to_string(lock.position) + " in the queue";
        const auto* before = config::find_condition(s().conditions, ctype::waiting_for_lock);
        const bool was_waiting = before && before->status == "True";
        condition(ctype::waiting_for_lock, "True", "LockHeld", message);
        condition(ctype::ready, "False", k_reason_waiting, message);
        if (!was_waiting) event("Normal", k_reason_waiting, message);
        return;
      }
      case lock_reply::kind::rejected:
        return fail("LockRejected", "the bucket locks were refused: " + lock.message);
      case lock_reply::kind::granted: {
        std::string joined;
        for (const auto& p : *paths)
          joined += (joined.empty() ? "" : ", ") + p;
        if (config::find_condition(s().conditions, ctype::waiting_for_lock))
          condition(ctype::waiting_for_lock, "False", "LockAcquired", "holding " + joined);
        event("Normal", "LocksAcquired", "holding the locks on " + joined);
        s().phase = bucket_sync_phase::sync;
        return;
      }
    }
  }

  void sync() {
    const std::string job = config::job_name(obj);
    const job_observation& seen = obs.job;
    if (seen.what == job_observation::state::absent) {
      if (!s().job) {
        r.actions.emplace_back(phase_action::create_job{job});
        s().job = job;
        condition(ctype::ready, "Unknown", k_reason_syncing, "Job " + job + " runs rclone sync");
        event("Normal", "JobCreated", "created Job " + job);
        r.outcome = reconcile_outcome::requeue(k_job_grace);
        return;
      }
      // Created earlier: either the cache lags or someone deleted it. Ready turned Syncing
      // (Unknown) when it was created or adopted; past the grace it is gone for good.
      const auto* ready = config::find_condition(s().conditions, ctype::ready);
      auto since = ready && ready->reason == k_reason_syncing ? now - ready->last_transition_time
                                                              : std::chrono::seconds{0};
      if (since >= k_job_grace)
        return fail("JobVanished", "Job " + job + " was deleted before it finished");
      r.outcome = reconcile_outcome::requeue(k_job_grace - since);
      return;
    }
    if (!seen.owned)
      return fail("JobConflict", "a Job named " + job +
                                     " exists and is not controlled by this BucketSync; delete "
                                     "it or create the BucketSync under another name");
    if (!s().job) {  // a controller restart between create and status write: adopt it
      s().job = job;
      event("Normal", "JobAdopted", "adopted the existing Job " + job);
    }
    condition(ctype::ready, "Unknown", k_reason_syncing, "Job " + job + " runs rclone sync");
    switch (seen.what) {
      case job_observation::state::active:
      case job_observation::state::absent:
        return;
      case job_observation::state::succeeded:
        event("Normal", "JobSucceeded", "Job " + job + " completed");
        s().phase = bucket_sync_phase::finalize;
        return;
      case job_observation::state::failed: {
        std::string message = "Job " + job + " failed";
        if (!seen.reason.empty()) message += ": " + seen.reason;
        if (!seen.message.empty()) message += ": " + seen.message;
        return fail("JobFailed", std::move(message));
      }
    }
  }

  void finalize() {
    const bool ours = obs.job.what != job_observation::state::absent && obs.job.owned;
    if (ours) {
      // Locks are released only once the Job is gone: no rclone may still write to a bucket
      // another sync is given.
      if (!obs.job.deleting)
        r.actions.emplace_back(phase_action::delete_job{config::job_name(obj)});
      r.outcome = reconcile_outcome::requeue(k_job_grace);
      return;
    }
    r.actions.emplace_back(phase_action::release_locks{lock_holder(obj)});
    const auto* waiting = config::find_condition(s().conditions, ctype::waiting_for_lock);
    if (waiting && waiting->status == "True")
      condition(ctype::waiting_for_lock, "False", "NotWaiting", "the sync is over");
    s().phase = bucket_sync_phase::finished;
    s().finish_time = now;
    if (s().error) {
      // Ready already carries the failure's reason (fail()).
      event("Warning", "Failed", "sync failed: " + *s().error);
    } else {
      std::string message = "synced " + obj.spec.source + " to " + obj.spec.destination;
      condition(ctype::ready, "True", "Succeeded", message);
      event("Normal", "Succeeded", std::move(message));
    }
  }
};

}  // namespace

std::string lock_holder(const config::bucket_sync& obj) {
  return obj.metadata.namespace_ + "/" + obj.metadata.name + "/" + obj.metadata.uid;
}

expected<std::vector<std::string>> lock_paths(const config::bucket_sync& obj) {
  const auto& spec = obj.spec;
  auto source = normalize(spec.source);
  if (!source) return make_error(errc::invalid_argument, "spec.source: " + source.error().message);
  auto destination = normalize(spec.destination);
  if (!destination)
    return make_error(errc::invalid_argument, "spec.destination: " + destination.error().message);
  // Overlap is a mistake only where both name the same storage: the same explicit remote, or
  // both the local file system. Bare buckets on env-configured remotes may be two endpoints.
  const bool source_env =
      config::split_location(spec.source).remote.empty() && !spec.source_env.empty();
  const bool destination_env =
      config::split_location(spec.destination).remote.empty() && !spec.destination_env.empty();
  if (!source_env && !destination_env && conflicts(*source, *destination))
    return make_error(errc::invalid_argument,
                      "spec.source " + source->canonical() + " and spec.destination " +
                          destination->canonical() +
                          " overlap: rclone sync would delete what it copies; use separate paths");
  std::vector<bucket_path> set{*source, *destination};
  std::sort(set.begin(), set.end());
  std::vector<std::string> out;
  for (const auto& p : set) {
    std::string c = p.canonical();
    if (out.empty() || out.back() != c) out.push_back(std::move(c));
  }
  return out;
}

step_result step(const config::bucket_sync& obj, const observations& obs, config::sys_seconds now) {
  step_result r;
  r.status = obj.status;
  r.next = obj.status.phase;
  auto& s = r.status;

  // Finished is terminal: spec edits change nothing (one BucketSync, one run) and the status
  // is left alone; only a finalizer left over is removed.
  if (s.phase == bucket_sync_phase::finished) {
    if (obs.has_finalizer) r.actions.emplace_back(phase_action::remove_finalizer{});
    return r;
  }
  const bool deleting = obj.metadata.deletion_timestamp.has_value();
  // Deleted before our first step added the finalizer: nothing was started.
  if (deleting && !obs.has_finalizer) return r;

  machine m{obj, obs, now, r};
  s.last_reconciled_time = now;
  bool added_finalizer = false;
  if (s.phase == bucket_sync_phase::none) {
    s.phase = bucket_sync_phase::initialize;
    if (!s.start_time) s.start_time = now;
    m.event("Normal", "Started", "syncing " + obj.spec.source + " to " + obj.spec.destination);
  }
  if (!obs.has_finalizer && !deleting) {
    r.actions.emplace_back(phase_action::add_finalizer{});
    added_finalizer = true;
  }
  if (deleting &&
      (s.phase == bucket_sync_phase::initialize || s.phase == bucket_sync_phase::sync)) {
    std::string during(config::to_string(s.phase));
    m.fail("Deleted", "deleted during " + during + ": the sync was stopped");
  }

  if (s.phase == bucket_sync_phase::initialize) m.initialize();
  if (s.phase == bucket_sync_phase::sync) m.sync();
  if (s.phase == bucket_sync_phase::finalize) m.finalize();

  if (s.phase == bucket_sync_phase::finished) {
    // Nothing is left to clean up: the finalizer goes (last, after the status write). One
    // added in this very step is simply not added.
    if (added_finalizer) {
      std::erase_if(r.actions, [](const action& a) {
        return std::holds_alternative<phase_action::add_finalizer>(a);
      });
    } else if (obs.has_finalizer) {
      r.actions.emplace_back(phase_action::remove_finalizer{});
    }
    r.outcome = reconcile_outcome::success();
  }
  r.next = s.phase;
  r.status_changed = !same_status(s, obj.status);
  return r;
}

}  // namespace tidesync::actors
