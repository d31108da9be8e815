#include "actors/bucketsync_policy_logic.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>

#include "config/condition.hpp"
#include "config/validation.hpp"
#include "runtime/cron.hpp"
#include "runtime/hash.hpp"
#include "runtime/rfc3339.hpp"

namespace tidesync::actors {
namespace {

using config::bucket_sync_phase;
using config::sys_seconds;
namespace ctype = config::condition_type;

constexpr size_t k_max_name = 63;  // a DNS-1123 label: the Job and label limits
constexpr std::string_view k_manual_infix = "-manual-";

// Ready's reasons.
constexpr std::string_view k_reason_scheduled = "Scheduled";
constexpr std::string_view k_reason_skipped = "SyncSkipped";
constexpr std::string_view k_reason_missed = "MissedSchedule";
constexpr std::string_view k_reason_suspended = "Suspended";
constexpr std::string_view k_reason_invalid = "InvalidSpec";

std::string hex(uint64_t v, size_t digits) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return std::string(buf, digits);
}

// `policy` + `suffix`, at most k_max_name characters: a policy name too long for that is cut
// and keeps 8 hex digits of its hash, so two long names sharing a prefix stay apart.
std::string with_suffix(std::string_view policy, std::string_view suffix) {
  if (policy.size() + suffix.size() <= k_max_name) return std::string(policy) + std::string(suffix);
  std::string prefix(policy.substr(0, k_max_name - suffix.size() - 9));
  while (!prefix.empty() && (prefix.back() == '-' || prefix.back() == '.'))
    prefix.pop_back();
  return prefix + "-" + hex(fnv1a64(policy), 8) + std::string(suffix);
}

std::string fmt(sys_seconds t) {
  return rfc3339::format(t);
}

// The metadata a step needs, read leniently (the spec may not parse).
struct meta_view {
  std::string name;
  std::string namespace_;
  std::string uid;
  int64_t generation = 0;
  std::optional<sys_seconds> creation;
  bool deleting = false;
  std::map<std::string, std::string> annotations;
};

std::optional<sys_seconds> time_at(const json::value* obj, std::string_view key) {
  if (obj == nullptr) return std::nullopt;
  const json::value* v = obj->at(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return rfc3339::parse(v->as_string());
}

std::map<std::string, std::string> string_map(const json::value* v) {
  std::map<std::string, std::string> out;
  if (v == nullptr || !v->is_object()) return out;
  for (const auto& [k, val] : v->as_object())
    if (val.is_string()) out[k] = val.as_string();
  return out;
}

meta_view read_meta(const json::value& object) {
  meta_view m;
  const json::value* md = object.at("metadata");
  if (md == nullptr || !md->is_object()) return m;
  m.name = std::string(md->get_string("name"));
  m.namespace_ = std::string(md->get_string("namespace"));
  m.uid = std::string(md->get_string("uid"));
  m.generation = md->get_int("generation", 0);
  m.creation = time_at(md, "creationTimestamp");
  m.deleting = md->at("deletionTimestamp") != nullptr && !md->at("deletionTimestamp")->is_null();
  m.annotations = string_map(md->at("annotations"));
  return m;
}

bool same_status(const config::bucket_sync_policy_status& a,
                 const config::bucket_sync_policy_status& b) {
  return a.last_sync_time == b.last_sync_time && a.last_schedule_time == b.last_schedule_time &&
         a.next_sync_time == b.next_sync_time && a.last_sync == b.last_sync &&
         a.active == b.active && a.error == b.error &&
         a.last_reconciled_time == b.last_reconciled_time &&
         a.observed_generation == b.observed_generation && a.conditions == b.conditions;
}

// The child's k_created_annotation, when it has a valid one.
std::optional<int64_t> created_us(const policy_child& c) {
  auto it = c.annotations.find(std::string(k_created_annotation));
  if (it == c.annotations.end() || it->second.empty() || it->second.size() > 18 ||
      it->second.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoll(it->second);
}

// Oldest first: creation time (a child without one sorts first), then within one second the
// controller's creation clock (k_created_annotation), then name.
bool older(const policy_child* a, const policy_child* b) {
  if (a->creation_time != b->creation_time) return a->creation_time < b->creation_time;
  auto ua = created_us(*a), ub = created_us(*b);
  if (ua && ub && *ua != *ub) return *ua < *ub;
  return a->name < b->name;
}

// The state of one step while it runs.
struct policy_machine {
  const std::vector<policy_child>& children;
  sys_seconds now;
  const meta_view& meta;
  const config::bucket_sync_policy_status& old;
  policy_result& r;

  config::bucket_sync_policy_status& s() { return r.status; }

  void event(std::string_view type, std::string_view reason, std::string message) {
    r.events.push_back(
        phase_action::emit_event{std::string(type), std::string(reason), std::move(message)});
  }

  void condition(std::string_view type, std::string_view status, std::string_view reason,
                 std::string message) {
    config::set_condition(
        s().conditions,
        config::make_condition(std::string(type), std::string(status), std::string(reason),
                               std::move(message), meta.generation),
        now);
  }

  // True when the Ready condition of the old status already says exactly this (events only
  // on transitions: a repeated step with the same inputs emits none).
  bool ready_was(std::string_view reason, const std::string& message) const {
    const auto* c = config::find_condition(old.conditions, ctype::ready);
    return c != nullptr && c->reason == reason && c->message == message;
  }

  const policy_child* find(std::string_view name) const {
    for (const auto& c : children)
      if (c.name == name) return &c;
    return nullptr;
  }

  // A child created by a recent step that the cache does not show yet (status.lastSync is
  // written right after the create): treat it as existing and active for a grace period.
  bool unseen_recent(std::string_view name) const {
    return old.last_sync && *old.last_sync == name && find(name) == nullptr && old.last_sync_time &&
           now - *old.last_sync_time < k_child_cache_grace;
  }

  // The non-Finished children (a deleting one still finalizes: its Job and locks may exist).
  std::vector<std::string> active_names() const {
    std::vector<const policy_child*> list;
    for (const auto& c : children)
      if (c.phase != bucket_sync_phase::finished) list.push_back(&c);
    std::sort(list.begin(), list.end(), older);
    std::vector<std::string> out;
    for (const auto* c : list)
      out.push_back(c->name);
    if (old.last_sync && unseen_recent(*old.last_sync)) out.push_back(*old.last_sync);
    return out;
  }

  // The latest fire a run was created for: status.lastScheduleTime, or a newer scheduled-time
  // annotation on a child (its status write was lost), else nullopt.
  std::optional<sys_seconds> last_scheduled() const {
    std::optional<sys_seconds> last = old.last_schedule_time;
    for (const auto& c : children) {
      auto it = c.annotations.find(std::string(k_scheduled_time_annotation));
      if (it == c.annotations.end()) continue;
      if (auto t = rfc3339::parse(it->second); t && (!last || *t > *last)) last = t;
    }
    return last;
  }

  // lastSync / lastSyncTime follow the newest child when the status missed it.
  void follow_newest_child() {
    const policy_child* newest = nullptr;
    for (const auto& c : children)
      if (c.creation_time && (newest == nullptr || older(newest, &c))) newest = &c;
    if (newest == nullptr || (s().last_sync && *s().last_sync == newest->name)) return;
    if (!s().last_sync_time || *newest->creation_time > *s().last_sync_time) {
      s().last_sync = newest->name;
      s().last_sync_time = newest->creation_time;
    }
  }

  json::value child_object(const config::bucket_sync_policy& policy, const std::string& name,
                           std::string_view trigger,
                           const std::map<std::string, std::string>& annotations) const {
    json::object labels;
    for (const auto& [k, v] : policy.spec.job_labels)
      labels.set(k, v);
    if (config::check_label_value(meta.name).empty()) labels.set(k_policy_label, meta.name);
    labels.set(k_trigger_label, trigger);
    json::object ann;
    for (const auto& [k, v] : annotations)
      ann.set(k, v);
    json::object owner{{"apiVersion", config::k_api_version},
                       {"kind", config::k_bucket_sync_policy_kind},
                       {"name", meta.name},
                       {"uid", meta.uid},
                       {"controller", true},
                       {"blockOwnerDeletion", true}};
    json::object md{{"name", name},
                    {"namespace", meta.namespace_},
                    {"labels", json::value(std::move(labels))},
                    {"annotations", json::value(std::move(ann))},
                    {"ownerReferences", json::value(json::array{json::value(std::move(owner))})}};
    return json::object{{"apiVersion", config::k_api_version},
                        {"kind", config::k_bucket_sync_kind},
                        {"metadata", json::value(std::move(md))},
                        {"spec", config::to_json(config::sync_spec_for(policy))}};
  }

  void created(const std::string& name, std::vector<std::string>& active) {
    s().last_sync = name;
    s().last_sync_time = now;
    if (std::find(active.begin(), active.end(), name) == active.end()) active.push_back(name);
  }

  // The SyncNowCompleted condition, added with a fixed transition time (the policy's creation)
  // when missing, so a manual run's name never depends on the step that first saw it.
  const config::condition& sync_now_condition() {
    if (const auto* c = config::find_condition(s().conditions, k_sync_now_condition)) return *c;
    auto c = config::make_condition(std::string(k_sync_now_condition), "False", "NotRequested",
                                    "no manual sync requested", meta.generation);
    c.last_transition_time = meta.creation.value_or(sys_seconds{});
    s().conditions.push_back(std::move(c));
    return s().conditions.back();
  }

  // The manual trigger. Returns the name of the requested run while it must not be pruned.
  std::optional<std::string> manual(const config::bucket_sync_policy& policy,
                                    std::vector<std::string>& active) {
    const config::condition done = sync_now_condition();
    auto ann = meta.annotations.find(std::string(config::k_sync_now_annotation));
    if (ann == meta.annotations.end()) {
      if (done.status == "True")  // the annotation is gone: the next request is a new one
        condition(k_sync_now_condition, "False", "NotRequested", "no manual sync requested");
      return std::nullopt;
    }
    // Completed, and the annotation is still seen: our removal is not visible yet, or it
    // failed. Remove it (again); it never starts a second run.
    if (done.status == "True") {
      r.remove_sync_now_annotation = true;
      return std::nullopt;
    }
    const std::string name = manual_child_name(meta.name, ann->second, done.last_transition_time);
    const policy_child* child = find(name);
    if (child != nullptr && child->phase == bucket_sync_phase::finished) {
      std::string message = "BucketSync " + name + " requested by " +
                            std::string(config::k_sync_now_annotation) + " finished";
      if (child->error) message += " with an error: " + *child->error;
      condition(k_sync_now_condition, "True", "Completed", message);
      event(child->error ? "Warning" : "Normal", "SyncNowCompleted",
            message + "; removing the annotation");
      r.remove_sync_now_annotation = true;
      return name;  // protected until the status that says so is written
    }
    std::string running = "BucketSync " + name + " runs the sync requested by " +
                          std::string(config::k_sync_now_annotation);
    if (child != nullptr || unseen_recent(name)) {
      condition(k_sync_now_condition, "False", "Running", running);
      return name;
    }
    if (policy.spec.concurrency == config::concurrency_policy::forbid && !active.empty()) {
      std::string message = "the sync requested by " + std::string(config::k_sync_now_annotation) +
                            " waits for BucketSync " + active.front() +
                            " to finish (concurrencyPolicy Forbid)";
      if (done.reason != "Waiting") event("Normal", "SyncNowWaiting", message);
      condition(k_sync_now_condition, "False", "Waiting", std::move(message));
      return name;
    }
    r.create.push_back(child_object(policy, name, "manual",
                                    {{std::string(config::k_sync_now_annotation), ann->second}}));
    created(name, active);
    condition(k_sync_now_condition, "False", "Running", running);
    event("Normal", "SyncCreated",
          "created BucketSync " + name + " for the manual trigger " +
              std::string(config::k_sync_now_annotation));
    return name;
  }

  // syncHistoryLimit: keep the newest `limit` Finished children, delete the rest oldest first;
  // never a running one, one already being deleted, or `keep` (an unacknowledged manual run).
  void prune(int64_t limit, const std::optional<std::string>& keep) {
    std::vector<const policy_child*> done;
    for (const auto& c : children)
      if (c.phase == bucket_sync_phase::finished && !c.deleting) done.push_back(&c);
    if (static_cast<int64_t>(done.size()) <= limit) return;
    std::sort(done.begin(), done.end(), older);
    const size_t excess = done.size() - static_cast<size_t>(limit);
    for (size_t i = 0; i < excess; ++i)
      if (!keep || done[i]->name != *keep) r.remove.push_back(done[i]->name);
  }
};

}  // namespace

std::string scheduled_child_name(std::string_view policy, sys_seconds scheduled) {
  return with_suffix(policy, "-" + std::to_string(scheduled.time_since_epoch().count()));
}

std::string manual_child_name(std::string_view policy, std::string_view value, sys_seconds since) {
  std::string key(value);
  key += '\n';
  key += std::to_string(since.time_since_epoch().count());
  return with_suffix(policy, std::string(k_manual_infix) + hex(fnv1a64(key), 10));
}

policy_child child_from(const json::value& bucket_sync_json) {
  policy_child c;
  const json::value* md = bucket_sync_json.at("metadata");
  if (md != nullptr && md->is_object()) {
    c.name = std::string(md->get_string("name"));
    c.creation_time = time_at(md, "creationTimestamp");
    const json::value* del = md->at("deletionTimestamp");
    c.deleting = del != nullptr && !del->is_null();
    c.annotations = string_map(md->at("annotations"));
  }
  const json::value* st = bucket_sync_json.at("status");
  if (st != nullptr && st->is_object()) {
    if (const json::value* ph = st->at("phase"); ph != nullptr && ph->is_string())
      c.phase = config::parse_phase(ph->as_string()).value_or(bucket_sync_phase::none);
    c.finish_time = time_at(st, "finishTime");
    if (const json::value* e = st->at("error"); e != nullptr && e->is_string())
      c.error = e->as_string();
  }
  return c;
}

policy_result policy_step(const json::value& policy_json, const std::vector<policy_child>& children,
                          sys_seconds now, const std::string& zoneinfo_root) {
  policy_result r;
  const meta_view meta = read_meta(policy_json);
  config::problems ignored;  // a damaged status never blocks: unreadable fields start empty
  const config::bucket_sync_policy_status old =
      config::parse_bucket_sync_policy_status(policy_json.at("status"), ignored);
  r.status = old;
  // Being deleted: the garbage collector removes the children with it; nothing to decide.
  if (meta.deleting) return r;

  policy_machine m{children, now, meta, old, r};
  auto& s = r.status;
  s.last_reconciled_time = now;
  s.observed_generation = meta.generation;
  std::vector<std::string> active = m.active_names();

  // Parse everything a run needs; any failure is one InvalidSpec message.
  std::string invalid;
  auto policy = config::parse_bucket_sync_policy(policy_json, nullptr, zoneinfo_root);
  std::optional<cron::schedule> sched;
  std::optional<tz::zone> zone;
  std::string what = "BucketSyncPolicy " + meta.namespace_ + "/" + meta.name + " is invalid: ";
  if (!policy) {
    invalid = policy.error().message;
  } else if (auto parsed = cron::schedule::parse(policy->spec.schedule); !parsed) {
    invalid = what + "spec.schedule: " + parsed.error().message;
  } else {
    sched = parsed->is_every() && meta.creation ? parsed->with_anchor(*meta.creation) : *parsed;
    auto z = cron::zone_for(*sched, policy->spec.time_zone, zoneinfo_root);
    if (!z)
      invalid = what + "the time zone of \"" + policy->spec.schedule + "\": " + z.error().message +
                "; write an IANA zone name such as \"Europe/Berlin\" or \"UTC\"";
    else
      zone = *z;
  }

  std::optional<cron::decision> d;
  if (invalid.empty()) {
    auto last = m.last_scheduled();
    // Never ran: count missed fires from the creation (a policy created while the controller
    // was down still gets its latest fire); without a creation time, from now.
    sys_seconds from = last ? *last : meta.creation.value_or(now);
    std::optional<std::chrono::seconds> deadline;
    if (policy->spec.starting_deadline_seconds)
      deadline = std::chrono::seconds{*policy->spec.starting_deadline_seconds};
    d = cron::decide(*sched, *zone, from, now, deadline);
    if (!d->next)
      invalid = what + "spec.schedule: \"" + policy->spec.schedule +
                "\" never fires (no matching date within 9 years, e.g. 30 February): fix the "
                "day-of-month and month fields";
    if (last) s.last_schedule_time = last;
  }

  if (!invalid.empty()) {
    s.error = invalid;
    s.next_sync_time.reset();
    s.active = active;
    m.condition(ctype::ready, "False", k_reason_invalid, invalid);
    if (old.error != invalid) m.event("Warning", k_reason_invalid, invalid);
    m.follow_newest_child();
    r.outcome = reconcile_outcome::terminal(invalid);
    r.status_changed = !same_status(s, old);
    return r;
  }
  s.error.reset();
  m.follow_newest_child();

  const auto& spec = policy->spec;
  const bool forbid = spec.concurrency == config::concurrency_policy::forbid;

  // The manual trigger first: the user asked for it now; under Forbid a due cron fire waits
  // behind it like behind any other active run.
  std::optional<std::string> keep = m.manual(*policy, active);

  const sys_seconds next = std::chrono::floor<std::chrono::seconds>(*d->next);
  std::string zone_text = zone->name().empty() ? std::string("UTC") : zone->name();
  std::string next_text =
      "next run at " + fmt(next) + " (\"" + spec.schedule + "\" in " + zone_text + ")";
  if (spec.suspend) {
    // No cron runs and no missed-run bookkeeping: lastScheduleTime stays, so resuming starts
    // the latest missed fire (within startingDeadlineSeconds), as CronJob does.
    s.next_sync_time.reset();
    m.condition(ctype::ready, "False", k_reason_suspended,
                "spec.suspend is true: no scheduled runs (" +
                    std::string(config::k_sync_now_annotation) +
                    " still runs one); set suspend: false to resume");
    r.outcome = reconcile_outcome::success();
  } else {
    s.next_sync_time = next;
    const sys_seconds due = std::chrono::floor<std::chrono::seconds>(d->scheduled_time);
    if (d->run_now) {
      const std::string name = scheduled_child_name(meta.name, due);
      if (m.find(name) != nullptr || m.unseen_recent(name)) {
        s.last_schedule_time = due;  // created earlier; the status write was lost
        m.condition(ctype::ready, "True", k_reason_scheduled, next_text);
      } else if (forbid && !active.empty()) {
        // Not started and lastScheduleTime not advanced: once the active run finishes, the
        // latest missed fire starts (at most one), unless startingDeadlineSeconds passed.
        std::string message = "the run due at " + fmt(due) + " did not start: BucketSync " +
                              active.front() +
                              " is still active (concurrencyPolicy Forbid); it starts when " +
                              "that one finishes, within startingDeadlineSeconds; " + next_text;
        if (!m.ready_was(k_reason_skipped, message)) m.event("Normal", k_reason_skipped, message);
        m.condition(ctype::ready, "True", k_reason_skipped, std::move(message));
      } else {
        r.create.push_back(m.child_object(*policy, name, "schedule",
                                          {{std::string(k_scheduled_time_annotation), fmt(due)}}));
        m.created(name, active);
        s.last_schedule_time = due;
        std::string message =
            "created BucketSync " + name + " for the run scheduled at " + fmt(due);
        if (d->missed > 1)
          message += " (" + std::to_string(d->missed) + " fires were missed; only the latest runs)";
        m.event("Normal", "SyncCreated", std::move(message));
        m.condition(ctype::ready, "True", k_reason_scheduled, next_text);
      }
    } else if (d->too_late) {
      // No "how late" in the text: it would change on every step and repeat the event.
      std::string message = "missed the run due at " + fmt(due) +
                            ": it could not start within startingDeadlineSeconds (" +
                            std::to_string(*spec.starting_deadline_seconds) + ") and is skipped; " +
                            next_text;
      if (!m.ready_was(k_reason_missed, message)) m.event("Warning", k_reason_missed, message);
      m.condition(ctype::ready, "True", k_reason_missed, std::move(message));
    } else {
      m.condition(ctype::ready, "True", k_reason_scheduled, next_text);
    }
    r.outcome = reconcile_outcome::requeue(std::min<std::chrono::seconds>(
        std::chrono::duration_cast<std::chrono::seconds>(next - now), k_max_policy_requeue));
  }

  if (spec.sync_history_limit) m.prune(*spec.sync_history_limit, keep);
  s.active = active;
  r.status_changed = !same_status(s, old);
  return r;
}

}  // namespace tidesync::actors
