// BucketSyncPolicy / BucketSync parsing, validation and status JSON (see bucketsync.hpp).
#include "config/bucketsync.hpp"

#include <cctype>

#include "runtime/cron.hpp"

namespace tidesync::config {

namespace {

const std::vector<std::string_view> k_template_fields = {
    "source",    "destination", "sourceEnv", "destinationEnv",
    "jobLabels", "timeout",     "image",     "rcloneFlags"};

bool has_space_or_control(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || u == ' ' || u == '\t') return true;
  }
  return false;
}

bool has_control(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

std::string read_location(const json::value& spec, std::string_view key, problems& p) {
  std::string path = "spec." + std::string(key);
  const json::value* v = spec.at(key);
  std::string example = key == "source" ? "\"source-bucket/data\"" : "\"backup-bucket/data\"";
  if (v == nullptr || v->is_null()) {
    p.required(path, "write the " + std::string(key) + " bucket in rclone notation, e.g. " +
                         example + " (or \"remote:bucket/path\")");
    return {};
  }
  auto s = read_string(spec, key, path, p);
  if (!s) return {};
  if (s->empty()) {
    p.required(path, "must not be empty; write the bucket in rclone notation, e.g. " + example);
    return {};
  }
  if (has_control(*s) || std::isspace(static_cast<unsigned char>(s->front())) ||
      std::isspace(static_cast<unsigned char>(s->back()))) {
    p.invalid(path, describe(*v) +
                        " has leading/trailing blanks or control characters; write the bare "
                        "location, e.g. " +
                        example);
    return {};
  }
  return *s;
}

std::map<std::string, std::string> read_labels(const json::value& spec, problems& p) {
  std::map<std::string, std::string> out;
  const json::value* v = spec.at("jobLabels");
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_object()) {
    p.type("spec.jobLabels", "a map of label keys to values such as {team: data}", *v);
    return out;
  }
  for (const auto& [key, value] : v->as_object()) {
    std::string at = "spec.jobLabels[" + key + "]";
    if (auto err = check_label_key(key); !err.empty()) {
      p.invalid(at, "\"" + key + "\" is not a valid label key: " + err);
      continue;
    }
    if (!value.is_string()) {
      p.type(at, "a string (quote numbers and booleans: \"1\", \"true\")", value);
      continue;
    }
    if (auto err = check_label_value(value.as_string()); !err.empty()) {
      p.invalid(at, "\"" + value.as_string() + "\": " + err);
      continue;
    }
    out[key] = value.as_string();
  }
  return out;
}

void read_template(const json::value& spec, sync_template& t, problems& p) {
  t.source = read_location(spec, "source", p);
  t.destination = read_location(spec, "destination", p);
  if (!t.source.empty() && t.source == t.destination)
    p.invalid("spec.destination", "is the same as spec.source (\"" + t.source +
                                      "\"); a sync needs two different locations");
  t.source_env = parse_env_list(spec.at("sourceEnv"), "spec.sourceEnv", p);
  t.destination_env = parse_env_list(spec.at("destinationEnv"), "spec.destinationEnv", p);
  t.job_labels = read_labels(spec, p);

  if (auto timeout = read_string(spec, "timeout", "spec.timeout", p)) {
    auto d = parse_duration(*timeout);
    if (!d)
      p.invalid("spec.timeout", "\"" + *timeout + "\" is not a valid duration (" +
                                    d.error().message +
                                    "); write a duration such as \"30m\", \"2h\" or \"1h30m\"");
    else
      t.timeout = *d;
  }
  if (auto image = read_string(spec, "image", "spec.image", p)) {
    if (image->empty() || has_space_or_control(*image))
      p.invalid("spec.image",
                describe(json::value(*image)) + " is not an image reference; write e.g. \"" +
                    std::string(k_default_rclone_image) + "\" or leave image out for that default");
    else
      t.image = *image;
  }
  if (const json::value* flags = spec.at("rcloneFlags"); flags != nullptr && !flags->is_null()) {
    if (!flags->is_array()) {
      p.type("spec.rcloneFlags", "a list of flags such as [\"--transfers=8\"]", *flags);
    } else {
      size_t i = 0;
      for (const auto& f : flags->as_array()) {
        std::string at = "spec.rcloneFlags[" + std::to_string(i++) + "]";
        if (!f.is_string()) {
          p.type(at, "a string such as \"--transfers=8\"", f);
        } else if (f.as_string().size() < 2 || f.as_string().front() != '-') {
          p.invalid(at, describe(f) +
                            " is not a flag; every item must start with '-' (source and "
                            "destination come from spec.source/spec.destination), e.g. "
                            "\"--checksum\"");
        } else if (has_space_or_control(f.as_string())) {
          p.invalid(at, describe(f) +
                            " contains blanks; write a flag and its value as one item joined "
                            "by '=', e.g. \"--transfers=8\"");
        } else {
          t.rclone_flags.push_back(f.as_string());
        }
      }
    }
  }
}

void template_to_json(const sync_template& t, json::object& o) {
  o.set("source", t.source);
  o.set("destination", t.destination);
  if (!t.source_env.empty()) o.set("sourceEnv", to_json(t.source_env));
  if (!t.destination_env.empty()) o.set("destinationEnv", to_json(t.destination_env));
  if (!t.job_labels.empty()) {
    json::object labels;
    for (const auto& [k, v] : t.job_labels)
      labels.set(k, v);
    o.set("jobLabels", std::move(labels));
  }
  if (t.timeout) o.set("timeout", format_duration(*t.timeout));
  if (!t.image.empty()) o.set("image", t.image);
  if (!t.rclone_flags.empty()) {
    json::array a;
    for (const auto& f : t.rclone_flags)
      a.push_back(f);
    o.set("rcloneFlags", std::move(a));
  }
}

json::value string_or_null(const std::optional<std::string>& s) {
  if (!s) return nullptr;
  return *s;
}

}  // namespace

rclone_location split_location(std::string_view location) {
  rclone_location l;
  auto colon = location.find(':');
  auto slash = location.find('/');
  // "remote:path" — a ':' after a '/' belongs to the path ("bucket/a:b").
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon < slash)) {
    l.remote = std::string(location.substr(0, colon));
    l.path = std::string(location.substr(colon + 1));
  } else {
    l.path = std::string(location);
  }
  return l;
}

std::string_view to_string(concurrency_policy p) {
  return p == concurrency_policy::allow ? "Allow" : "Forbid";
}

std::string_view to_string(bucket_sync_phase p) {
  switch (p) {
    case bucket_sync_phase::none:
      return "";
    case bucket_sync_phase::initialize:
      return "Initialize";
    case bucket_sync_phase::sync:
      return "Sync";
    case bucket_sync_phase::finalize:
      return "Finalize";
    case bucket_sync_phase::finished:
      return "Finished";
  }
  return "";
}

std::optional<bucket_sync_phase> parse_phase(std::string_view s) {
  for (auto p : {bucket_sync_phase::none, bucket_sync_phase::initialize, bucket_sync_phase::sync,
                 bucket_sync_phase::finalize, bucket_sync_phase::finished})
    if (to_string(p) == s) return p;
  return std::nullopt;
}

const std::vector<std::string_view>& bucket_sync_policy_spec_fields() {
  static const std::vector<std::string_view> fields = [] {
    std::vector<std::string_view> f = k_template_fields;
    for (auto x : {"schedule", "timeZone", "startingDeadlineSeconds", "suspend", "syncHistoryLimit",
                   "concurrencyPolicy"})
      f.emplace_back(x);
    return f;
  }();
  return fields;
}

const std::vector<std::string_view>& bucket_sync_spec_fields() {
  static const std::vector<std::string_view> fields = [] {
    std::vector<std::string_view> f = k_template_fields;
    f.emplace_back("policyRef");
    return f;
  }();
  return fields;
}

const std::vector<std::string_view>& bucket_sync_policy_status_fields() {
  static const std::vector<std::string_view> fields = {
      "lastSyncTime", "lastScheduleTime",   "nextSyncTime",       "lastSync",  "active",
      "error",        "lastReconciledTime", "observedGeneration", "conditions"};
  return fields;
}

const std::vector<std::string_view>& bucket_sync_status_fields() {
  static const std::vector<std::string_view> fields = {"phase",
                                                       "job",
                                                       "startTime",
                                                       "finishTime",
                                                       "error",
                                                       "lastReconciledTime",
                                                       "observedGeneration",
                                                       "conditions"};
  return fields;
}

bucket_sync_policy_spec parse_bucket_sync_policy_spec(const json::value& spec, problems& p,
                                                      const std::string& zoneinfo_root) {
  bucket_sync_policy_spec s;
  warn_unknown_fields(spec, "spec", bucket_sync_policy_spec_fields(), p);
  read_template(spec, s, p);

  std::optional<cron::schedule> parsed;
  if (const json::value* v = spec.at("schedule"); v == nullptr || v->is_null()) {
    p.required("spec.schedule",
               "write a cron schedule such as \"0 2 * * *\" (02:00 every day), \"@daily\" or "
               "\"@every 6h\"");
  } else if (auto text = read_string(spec, "schedule", "spec.schedule", p)) {
    auto sched = cron::schedule::parse(*text);
    if (!sched)
      p.invalid("spec.schedule", "\"" + *text + "\": " + sched.error().message +
                                     " (a schedule is 5 fields \"minute hour day-of-month month "
                                     "day-of-week\" such as \"0 2 * * *\", a macro such as "
                                     "@daily, or @every 6h)");
    else {
      s.schedule = *text;
      parsed = *sched;
    }
  }

  if (auto zone = read_string(spec, "timeZone", "spec.timeZone", p)) {
    auto hint = std::string("; write an IANA zone name such as \"Europe/Berlin\" or \"UTC\"");
    if (zone->empty()) {
      p.invalid("spec.timeZone", "is empty; leave timeZone out for UTC" + hint);
    } else if (parsed) {
      auto z = cron::zone_for(*parsed, *zone, zoneinfo_root);
      if (!z)
        p.invalid("spec.timeZone", "\"" + *zone + "\": " + z.error().message + hint);
      else
        s.time_zone = *zone;
    } else {
      auto z = tz::zone::load(*zone, zoneinfo_root);
      if (!z)
        p.invalid("spec.timeZone", "\"" + *zone + "\": " + z.error().message + hint);
      else
        s.time_zone = *zone;
    }
  }

  if (auto d = read_int(spec, "startingDeadlineSeconds", "spec.startingDeadlineSeconds", p)) {
    if (*d < 0)
      p.invalid("spec.startingDeadlineSeconds",
                std::to_string(*d) +
                    " is negative; write a number of seconds ≥ 0 (e.g. 300) "
                    "or leave it out to always start a missed run");
    else
      s.starting_deadline_seconds = *d;
  }
  s.suspend = read_bool(spec, "suspend", "spec.suspend", p).value_or(false);
  if (auto limit = read_int(spec, "syncHistoryLimit", "spec.syncHistoryLimit", p)) {
    if (*limit < 1)
      p.invalid("spec.syncHistoryLimit", std::to_string(*limit) +
                                             " is below the minimum of 1; write e.g. 10, or leave "
                                             "syncHistoryLimit out to keep every BucketSync");
    else
      s.sync_history_limit = *limit;
  }
  if (auto cp = read_string(spec, "concurrencyPolicy", "spec.concurrencyPolicy", p)) {
    if (*cp == "Forbid")
      s.concurrency = concurrency_policy::forbid;
    else if (*cp == "Allow")
      s.concurrency = concurrency_policy::allow;
    else
      p.invalid("spec.concurrencyPolicy",
                "\"" + *cp +
                    "\" is not supported; write Forbid (the default: skip a run while "
                    "the previous one is active) or Allow");
  }
  return s;
}

bucket_sync_spec parse_bucket_sync_spec(const json::value& spec, problems& p) {
  bucket_sync_spec s;
  warn_unknown_fields(spec, "spec", bucket_sync_spec_fields(), p);
  read_template(spec, s, p);
  if (const json::value* ref = spec.at("policyRef"); ref != nullptr && !ref->is_null()) {
    if (!ref->is_object()) {
      p.type("spec.policyRef", "an object such as {name: nightly}", *ref);
    } else {
      warn_unknown_fields(*ref, "spec.policyRef", {"name"}, p);
      auto name = read_string(*ref, "name", "spec.policyRef.name", p);
      if (!name || name->empty())
        p.required("spec.policyRef.name",
                   "name the BucketSyncPolicy in this namespace, or remove policyRef");
      else if (auto err = check_dns_subdomain(*name); !err.empty())
        p.invalid("spec.policyRef.name", "\"" + *name + "\" " + err);
      else
        s.policy_ref = policy_reference{*name};
    }
  }
  return s;
}

bucket_sync_policy_status parse_bucket_sync_policy_status(const json::value* status, problems& p) {
  bucket_sync_policy_status s;
  if (status == nullptr || !status->is_object()) return s;
  problems local;
  s.last_sync_time = read_time(*status, "lastSyncTime", "status.lastSyncTime", local);
  s.last_schedule_time = read_time(*status, "lastScheduleTime", "status.lastScheduleTime", local);
  s.next_sync_time = read_time(*status, "nextSyncTime", "status.nextSyncTime", local);
  s.last_sync = read_string(*status, "lastSync", "status.lastSync", local);
  if (const json::value* a = status->at("active"); a != nullptr && a->is_array())
    for (const auto& n : a->as_array())
      if (n.is_string()) s.active.push_back(n.as_string());
  s.error = read_string(*status, "error", "status.error", local);
  s.last_reconciled_time =
      read_time(*status, "lastReconciledTime", "status.lastReconciledTime", local);
  s.observed_generation =
      read_int(*status, "observedGeneration", "status.observedGeneration", local).value_or(0);
  s.conditions = parse_conditions(status->at("conditions"), "status.conditions", local);
  demote(local, p);
  return s;
}

bucket_sync_status parse_bucket_sync_status(const json::value* status, problems& p) {
  bucket_sync_status s;
  if (status == nullptr || !status->is_object()) return s;
  problems local;
  if (auto phase = read_string(*status, "phase", "status.phase", local)) {
    if (auto ph = parse_phase(*phase))
      s.phase = *ph;
    else
      local.warn("status.phase: unknown phase \"" + *phase + "\"; treated as not started");
  }
  s.job = read_string(*status, "job", "status.job", local);
  s.start_time = read_time(*status, "startTime", "status.startTime", local);
  s.finish_time = read_time(*status, "finishTime", "status.finishTime", local);
  s.error = read_string(*status, "error", "status.error", local);
  s.last_reconciled_time =
      read_time(*status, "lastReconciledTime", "status.lastReconciledTime", local);
  s.observed_generation =
      read_int(*status, "observedGeneration", "status.observedGeneration", local).value_or(0);
  s.conditions = parse_conditions(status->at("conditions"), "status.conditions", local);
  demote(local, p);
  return s;
}

expected<bucket_sync_policy> parse_bucket_sync_policy(const json::value& object,
                                                      std::vector<std::string>* warnings,
                                                      const std::string& zoneinfo_root) {
  problems p;
  bucket_sync_policy out;
  if (!object.is_object()) {
    p.type("(object)", "a BucketSyncPolicy object", object);
  } else {
    check_type_meta(object, k_bucket_sync_policy_kind, p);
    out.metadata = read_meta(object, p);
    const json::value* spec = object.at("spec");
    if (spec == nullptr || spec->is_null())
      p.required("spec",
                 "a BucketSyncPolicy needs a spec with at least source, destination "
                 "and schedule");
    else if (!spec->is_object())
      p.type("spec", "an object", *spec);
    else
      out.spec = parse_bucket_sync_policy_spec(*spec, p, zoneinfo_root);
    out.status = parse_bucket_sync_policy_status(object.at("status"), p);
  }
  if (warnings != nullptr) *warnings = p.take_warnings();
  if (!p.empty()) return p.to_error(object_label(k_bucket_sync_policy_kind, out.metadata));
  return out;
}

bucket_sync parse_bucket_sync_partial(const json::value& object, std::optional<error>* problem,
                                      std::vector<std::string>* warnings) {
  problems p;
  bucket_sync out;
  if (!object.is_object()) {
    p.type("(object)", "a BucketSync object", object);
  } else {
    check_type_meta(object, k_bucket_sync_kind, p);
    out.metadata = read_meta(object, p);
    const json::value* spec = object.at("spec");
    if (spec == nullptr || spec->is_null())
      p.required("spec", "a BucketSync needs a spec with at least source and destination");
    else if (!spec->is_object())
      p.type("spec", "an object", *spec);
    else
      out.spec = parse_bucket_sync_spec(*spec, p);
    out.status = parse_bucket_sync_status(object.at("status"), p);
  }
  if (warnings != nullptr) *warnings = p.take_warnings();
  if (problem != nullptr) {
    if (p.empty())
      problem->reset();
    else
      *problem = p.to_error(object_label(k_bucket_sync_kind, out.metadata));
  }
  return out;
}

expected<bucket_sync> parse_bucket_sync(const json::value& object,
                                        std::vector<std::string>* warnings) {
  std::optional<error> problem;
  auto out = parse_bucket_sync_partial(object, &problem, warnings);
  if (problem) return std::move(*problem);
  return out;
}

json::value to_json(const bucket_sync_policy_status& s) {
  json::array active;
  for (const auto& a : s.active)
    active.push_back(a);
  return json::object{{"lastSyncTime", time_or_null(s.last_sync_time)},
                      {"lastScheduleTime", time_or_null(s.last_schedule_time)},
                      {"nextSyncTime", time_or_null(s.next_sync_time)},
                      {"lastSync", string_or_null(s.last_sync)},
                      {"active", std::move(active)},
                      {"error", string_or_null(s.error)},
                      {"lastReconciledTime", time_or_null(s.last_reconciled_time)},
                      {"observedGeneration", s.observed_generation},
                      {"conditions", to_json(s.conditions)}};
}

json::value to_json(const bucket_sync_status& s) {
  json::value phase =
      s.phase == bucket_sync_phase::none ? json::value(nullptr) : json::value(to_string(s.phase));
  return json::object{{"phase", std::move(phase)},
                      {"job", string_or_null(s.job)},
                      {"startTime", time_or_null(s.start_time)},
                      {"finishTime", time_or_null(s.finish_time)},
                      {"error", string_or_null(s.error)},
                      {"lastReconciledTime", time_or_null(s.last_reconciled_time)},
                      {"observedGeneration", s.observed_generation},
                      {"conditions", to_json(s.conditions)}};
}

json::value to_json(const bucket_sync_spec& s) {
  json::object o;
  template_to_json(s, o);
  if (s.policy_ref) o.set("policyRef", json::object{{"name", s.policy_ref->name}});
  return o;
}

bucket_sync_spec sync_spec_for(const bucket_sync_policy& policy) {
  bucket_sync_spec s;
  static_cast<sync_template&>(s) = static_cast<const sync_template&>(policy.spec);
  s.policy_ref = policy_reference{policy.metadata.name};
  return s;
}

}  // namespace tidesync::config
