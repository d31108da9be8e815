// BucketSyncPolicy / BucketSync parsing, validation, status JSON and conditions.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "config/bucketsync.hpp"
#include "config/condition.hpp"
#include "config/validation.hpp"
#include "runtime/json/value.hpp"
#include "runtime/rfc3339.hpp"

using namespace std::chrono;
using namespace tidesync::config;
namespace json = tidesync::json;

namespace {

json::value parse_json(const std::string& text) {
  auto v = json::parse(text);
  EXPECT_TRUE(v.has_value()) << text;
  return v ? *v : json::value();
}

const char* k_policy = R"({
  "apiVersion": "tidesync.io/v1alpha1", "kind": "BucketSyncPolicy",
  "metadata": {"name": "nightly", "namespace": "default", "generation": 3,
               "creationTimestamp": "2024-01-01T00:00:00Z",
               "annotations": {"tidesync.io/sync-now": ""}},
  "spec": {
    "source": "my-bucket", "destination": "backup:backup-bucket/x",
    "schedule": "0 2 * * *", "timeZone": "Europe/Berlin", "startingDeadlineSeconds": 300,
    "suspend": true, "syncHistoryLimit": 10, "timeout": "1h30m",
    "rcloneFlags": ["--checksum", "--transfers=8"],
    "sourceEnv": [
      {"name": "TYPE", "value": "s3"},
      {"name": "ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "garage-credentials",
                                                               "key": "ACCESS_KEY_ID"}}},
      {"name": "ENDPOINT", "valueFrom": {"configMapKeyRef": {"name": "garage-config",
                                                             "key": "ENDPOINT",
                                                             "optional": true}}}],
    "destinationEnv": [{"name": "type", "value": "s3"}],
    "jobLabels": {"app": "bucket-sync", "example.com/tier": "prod"}
  },
  "status": {"lastSyncTime": "2024-01-15T02:00:00Z", "nextSyncTime": "2024-01-16T02:00:00+01:00",
             "error": null, "observedGeneration": 2,
             "conditions": [{"type": "Ready", "status": "True", "reason": "Scheduled",
                             "message": "ok", "lastTransitionTime": "2024-01-15T02:00:00Z"}]}
})";

std::vector<std::string> fields_of(const tidesync::error& e) {
  std::vector<std::string> out;
  for (const auto& c : e.causes)
    out.push_back(c.field);
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

TEST(BucketSyncPolicy, ParsesTheSeedFields) {
  std::vector<std::string> warnings;
  auto p = parse_bucket_sync_policy(parse_json(k_policy), &warnings);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(p->metadata.name, "nightly");
  EXPECT_EQ(p->metadata.generation, 3);
  EXPECT_TRUE(p->metadata.annotations.count(std::string(k_sync_now_annotation)));
  const auto& s = p->spec;
  EXPECT_EQ(s.source, "my-bucket");
  EXPECT_EQ(s.destination, "backup:backup-bucket/x");
  EXPECT_EQ(s.schedule, "0 2 * * *");
  EXPECT_EQ(s.time_zone, "Europe/Berlin");
  EXPECT_EQ(s.starting_deadline_seconds, 300);
  EXPECT_TRUE(s.suspend);
  EXPECT_EQ(s.sync_history_limit, 10);
  EXPECT_EQ(s.concurrency, concurrency_policy::forbid);
  EXPECT_EQ(s.timeout, seconds(5400));
  EXPECT_EQ(s.rclone_flags, (std::vector<std::string>{"--checksum", "--transfers=8"}));
  ASSERT_EQ(s.source_env.size(), 3u);
  EXPECT_EQ(s.source_env[0].value, "s3");
  ASSERT_TRUE(s.source_env[1].value_from && s.source_env[1].value_from->secret_key_ref);
  EXPECT_EQ(s.source_env[1].value_from->secret_key_ref->name, "garage-credentials");
  EXPECT_FALSE(s.source_env[1].value);
  ASSERT_TRUE(s.source_env[2].value_from->config_map_key_ref);
  EXPECT_EQ(s.source_env[2].value_from->config_map_key_ref->optional, true);
  EXPECT_EQ(s.job_labels.at("example.com/tier"), "prod");

  EXPECT_EQ(p->status.last_sync_time, sys_days(2024y / 1 / 15) + 2h);
  EXPECT_EQ(p->status.next_sync_time, sys_days(2024y / 1 / 16) + 1h);  // +01:00 → 01:00Z
  EXPECT_FALSE(p->status.error);
  EXPECT_EQ(p->status.observed_generation, 2);
  ASSERT_EQ(p->status.conditions.size(), 1u);
  EXPECT_EQ(p->status.conditions[0].reason, "Scheduled");
}

TEST(BucketSyncPolicy, DefaultsWhenOptionalFieldsAreAbsent) {
  auto p = parse_bucket_sync_policy(
      parse_json(R"({"spec": {"source": "a", "destination": "b", "schedule": "@daily"}})"));
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_FALSE(p->spec.suspend);
  EXPECT_FALSE(p->spec.sync_history_limit);
  EXPECT_FALSE(p->spec.starting_deadline_seconds);
  EXPECT_FALSE(p->spec.timeout);
  EXPECT_TRUE(p->spec.time_zone.empty());
  EXPECT_TRUE(p->spec.image.empty());
}

TEST(BucketSyncPolicy, ReportsEveryProblemWithItsFieldPath) {
  auto p = parse_bucket_sync_policy(parse_json(R"({
    "apiVersion": "tidesync.io/v1", "kind": "BucketSyncPolicy",
    "metadata": {"name": "bad", "namespace": "ns"},
    "spec": {
      "destination": "", "schedule": "61 * * * *", "timeZone": "Mars/Olympus",
      "startingDeadlineSeconds": -1, "suspend": "yes", "syncHistoryLimit": 0,
      "timeout": "10", "concurrencyPolicy": "Replace", "rcloneFlags": ["sync", "--a b"],
      "image": "rclone rclone",
      "sourceEnv": [{"name": "1BAD"}, {"value": "x"}, {"name": "A", "value": "1"},
                    {"name": "a", "value": "2"},
                    {"name": "B", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s",
                                                                               "key": "k"}}},
                    {"name": "C", "valueFrom": {}},
                    {"name": "D", "valueFrom": {"secretKeyRef": {"name": "Bad_Name"}}}],
      "jobLabels": {"-bad": "x", "ok": 5}
    }})"));
  ASSERT_FALSE(p.has_value());
  const auto& e = p.error();
  EXPECT_EQ(e.code, tidesync::errc::invalid);
  auto f = fields_of(e);
  for (const char* want : {"apiVersion",
                           "spec.source",
                           "spec.destination",
                           "spec.schedule",
                           "spec.timeZone",
                           "spec.startingDeadlineSeconds",
                           "spec.suspend",
                           "spec.syncHistoryLimit",
                           "spec.timeout",
                           "spec.concurrencyPolicy",
                           "spec.rcloneFlags[0]",
                           "spec.rcloneFlags[1]",
                           "spec.image",
                           "spec.sourceEnv[0].name",
                           "spec.sourceEnv[1].name",
                           "spec.sourceEnv[3].name",
                           "spec.sourceEnv[4]",
                           "spec.sourceEnv[5].valueFrom",
                           "spec.sourceEnv[6].valueFrom.secretKeyRef.name",
                           "spec.sourceEnv[6].valueFrom.secretKeyRef.key",
                           "spec.jobLabels[-bad]",
                           "spec.jobLabels[ok]"})
    EXPECT_TRUE(has(f, want)) << want << " missing in: " << e.message;
  // The message names the object and says what to write.
  EXPECT_NE(e.message.find("BucketSyncPolicy ns/bad is invalid"), std::string::npos);
  EXPECT_NE(e.message.find("spec.schedule: \"61 * * * *\""), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("write apiVersion: tidesync.io/v1alpha1"), std::string::npos);
  EXPECT_NE(e.message.find("e.g. \"ACCESS_KEY_ID\""), std::string::npos);
  EXPECT_NE(e.message.find("without a unit"), std::string::npos) << e.message;
  for (const auto& c : e.causes)
    EXPECT_FALSE(c.reason.empty()) << c.field;
}

TEST(BucketSyncPolicy, RequiredFieldsAndMissingSpec) {
  auto none = parse_bucket_sync_policy(parse_json(R"({"metadata": {"name": "x"}})"));
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(fields_of(none.error()), std::vector<std::string>{"spec"});
  EXPECT_EQ(none.error().causes[0].reason, "FieldValueRequired");

  auto empty = parse_bucket_sync_policy(parse_json(R"({"spec": {}})"));
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(fields_of(empty.error()),
            (std::vector<std::string>{"spec.source", "spec.destination", "spec.schedule"}));
}

TEST(BucketSyncPolicy, UnknownFieldsAreWarningsNotErrors) {
  std::vector<std::string> warnings;
  auto p = parse_bucket_sync_policy(parse_json(R"({"spec": {
      "source": "a", "destination": "b", "schedule": "@hourly", "schedul": "x",
      "sourceEnv": [{"name": "T", "value": "s3", "valu": 1}]}})"),
                                    &warnings);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0].rfind("spec.schedul: unknown field", 0), 0u) << warnings[0];
  EXPECT_NE(warnings[0].find("schedule"), std::string::npos);  // lists the known fields
  EXPECT_EQ(warnings[1].rfind("spec.sourceEnv[0].valu: unknown field", 0), 0u) << warnings[1];
}

TEST(BucketSyncPolicy, TimeZoneMustAgreeWithCronTzPrefix) {
  auto p = parse_bucket_sync_policy(parse_json(R"({"spec": {"source": "a", "destination": "b",
      "schedule": "CRON_TZ=Asia/Tokyo 0 2 * * *", "timeZone": "Europe/Berlin"}})"));
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(fields_of(p.error()), std::vector<std::string>{"spec.timeZone"});
  auto same = parse_bucket_sync_policy(parse_json(R"({"spec": {"source": "a", "destination": "b",
      "schedule": "CRON_TZ=Europe/Berlin 0 2 * * *", "timeZone": "Europe/Berlin"}})"));
  EXPECT_TRUE(same.has_value()) << same.error().message;
}

TEST(BucketSyncPolicy, SameSourceAndDestinationIsRejected) {
  auto p = parse_bucket_sync_policy(
      parse_json(R"({"spec": {"source": "s3:a", "destination": "s3:a", "schedule": "@daily"}})"));
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(fields_of(p.error()), std::vector<std::string>{"spec.destination"});
}

TEST(BucketSyncPolicy, DamagedStatusIsAWarningNotAnError) {
  std::vector<std::string> warnings;
  auto p = parse_bucket_sync_policy(parse_json(R"({
      "spec": {"source": "a", "destination": "b", "schedule": "@daily"},
      "status": {"lastSyncTime": "yesterday", "observedGeneration": "x",
                 "conditions": [{"status": "True"}]}})"),
                                    &warnings);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(warnings.size(), 3u);
  EXPECT_FALSE(p->status.last_sync_time);
  EXPECT_TRUE(p->status.conditions.empty());
}

TEST(BucketSyncPolicy, StatusToJsonHasEveryFieldAndNullsForUnset) {
  bucket_sync_policy_status s;
  s.last_sync_time = sys_days(2024y / 1 / 15) + 2h;
  s.next_sync_time = sys_days(2024y / 1 / 16) + 2h;
  s.last_sync = "nightly-1705284000";
  s.active = {"nightly-1705284000"};
  s.observed_generation = 4;
  set_condition(s.conditions, make_condition("Ready", "True", "Scheduled"),
                sys_days(2024y / 1 / 15));
  auto j = to_json(s);
  EXPECT_EQ(json::dump(j),
            R"({"lastSyncTime":"2024-01-15T02:00:00Z","lastScheduleTime":null,)"
            R"("nextSyncTime":"2024-01-16T02:00:00Z","lastSync":"nightly-1705284000",)"
            R"("active":["nightly-1705284000"],"error":null,"lastReconciledTime":null,)"
            R"("observedGeneration":4,"conditions":[{"type":"Ready","status":"True",)"
            R"("reason":"Scheduled","lastTransitionTime":"2024-01-15T00:00:00Z",)"
            R"("observedGeneration":0}]})");
  // Round trip through the lenient reader.
  tidesync::config::problems pr;
  auto back = parse_bucket_sync_policy_status(&j, pr);
  EXPECT_TRUE(pr.warnings().empty());
  EXPECT_EQ(back.last_sync_time, s.last_sync_time);
  EXPECT_EQ(back.active, s.active);
  EXPECT_EQ(back.conditions, s.conditions);
  for (auto f : bucket_sync_policy_status_fields())
    EXPECT_NE(j.at(f), nullptr) << f;
}

TEST(BucketSync, ParsesSpecAndStatus) {
  auto b = parse_bucket_sync(parse_json(R"({
    "apiVersion": "tidesync.io/v1alpha1", "kind": "BucketSync",
    "metadata": {"name": "daily-backup-1705316400", "namespace": "default"},
    "spec": {"source": "data/backups", "destination": "archive/backups",
             "policyRef": {"name": "daily-backup"},
             "sourceEnv": [{"name": "TYPE", "value": "s3"}],
             "jobLabels": {"workload-type": "backup"}},
    "status": {"phase": "Sync", "job": "daily-backup-1705316400",
               "startTime": "2024-01-15T02:00:00Z", "finishTime": null, "error": null,
               "lastReconciledTime": "2024-01-15T02:00:30Z", "observedGeneration": 1}})"));
  ASSERT_TRUE(b.has_value()) << b.error().message;
  ASSERT_TRUE(b->spec.policy_ref);
  EXPECT_EQ(b->spec.policy_ref->name, "daily-backup");
  EXPECT_EQ(b->status.phase, bucket_sync_phase::sync);
  EXPECT_EQ(b->status.job, "daily-backup-1705316400");
  EXPECT_FALSE(b->status.finish_time);
  EXPECT_EQ(b->status.last_reconciled_time, sys_days(2024y / 1 / 15) + 2h + 30s);
}

TEST(BucketSync, RejectsBadSpecAndNeedsNoSchedule) {
  std::vector<std::string> warnings;
  auto b = parse_bucket_sync(parse_json(R"({"kind": "BucketSyncPolicy",
      "spec": {"source": "a", "schedule": "@daily", "policyRef": {}}})"),
                             &warnings);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(fields_of(b.error()),
            (std::vector<std::string>{"kind", "spec.destination", "spec.policyRef.name"}));
  ASSERT_EQ(warnings.size(), 1u);  // schedule is not a BucketSync field
  EXPECT_EQ(warnings[0].rfind("spec.schedule: unknown field", 0), 0u);
}

TEST(BucketSync, StatusToJsonAndPhases) {
  bucket_sync_status s;
  EXPECT_TRUE(to_json(s).at("phase")->is_null());
  s.phase = bucket_sync_phase::finished;
  s.job = "j";
  s.error = "Job j failed: BackoffLimitExceeded";
  s.start_time = sys_days(2024y / 2 / 29);
  s.finish_time = sys_days(2024y / 2 / 29) + 90s;
  auto j = to_json(s);
  EXPECT_EQ(*j.at("phase"), json::value("Finished"));
  EXPECT_EQ(*j.at("finishTime"), json::value("2024-02-29T00:01:30Z"));
  for (auto f : bucket_sync_status_fields())
    EXPECT_NE(j.at(f), nullptr) << f;
  tidesync::config::problems pr;
  auto back = parse_bucket_sync_status(&j, pr);
  EXPECT_EQ(back.phase, s.phase);
  EXPECT_EQ(back.error, s.error);
  EXPECT_EQ(back.finish_time, s.finish_time);
  for (auto p : {bucket_sync_phase::initialize, bucket_sync_phase::sync,
                 bucket_sync_phase::finalize, bucket_sync_phase::finished})
    EXPECT_EQ(parse_phase(to_string(p)), p);
  EXPECT_FALSE(parse_phase("Running"));
}

TEST(BucketSync, SpecForAPolicyRunCopiesTheTemplateAndPointsBack) {
  auto p = parse_bucket_sync_policy(parse_json(k_policy));
  ASSERT_TRUE(p.has_value());
  auto spec = sync_spec_for(*p);
  EXPECT_EQ(spec.policy_ref->name, "nightly");
  auto j = to_json(spec);
  // What the policy writes must parse back as a valid BucketSync spec, with nothing unknown.
  tidesync::config::problems pr;
  auto back = parse_bucket_sync_spec(j, pr);
  EXPECT_TRUE(pr.empty()) << pr.to_error("spec").message;
  EXPECT_TRUE(pr.warnings().empty());
  EXPECT_EQ(back.source_env, p->spec.source_env);
  EXPECT_EQ(back.destination_env, p->spec.destination_env);
  EXPECT_EQ(back.job_labels, p->spec.job_labels);
  EXPECT_EQ(back.timeout, p->spec.timeout);
  EXPECT_EQ(back.rclone_flags, p->spec.rclone_flags);
  EXPECT_EQ(j.at("timeout")->as_string(), "1h30m");
}

TEST(Condition, KeepsTransitionTimeWhenStatusDoesNotChange) {
  std::vector<condition> list;
  sys_seconds t0 = sys_days(2024y / 1 / 1), t1 = t0 + 1h, t2 = t0 + 2h;
  EXPECT_TRUE(
      set_condition(list, make_condition("Ready", "False", "WaitingForLock", "held by a"), t0));
  EXPECT_EQ(list[0].last_transition_time, t0);
  // Same status, new message: updated, transition time kept.
  EXPECT_TRUE(
      set_condition(list, make_condition("Ready", "False", "WaitingForLock", "held by b"), t1));
  EXPECT_EQ(list[0].message, "held by b");
  EXPECT_EQ(list[0].last_transition_time, t0);
  // Identical: no change reported (no status write needed).
  EXPECT_FALSE(
      set_condition(list, make_condition("Ready", "False", "WaitingForLock", "held by b"), t2));
  // Status flips: transition time moves.
  EXPECT_TRUE(set_condition(list, make_condition("Ready", "True", "Synced"), t2));
  EXPECT_EQ(list[0].last_transition_time, t2);
  EXPECT_EQ(list.size(), 1u);
  set_condition(list, make_condition("WaitingForLock", "True"), t2);
  EXPECT_EQ(list.size(), 2u);
  ASSERT_NE(find_condition(list, "WaitingForLock"), nullptr);
  EXPECT_TRUE(remove_condition(list, "WaitingForLock"));
  EXPECT_EQ(find_condition(list, "WaitingForLock"), nullptr);
}

TEST(Validation, Rfc3339AndDurations) {
  EXPECT_EQ(tidesync::rfc3339::parse("2024-02-29T23:59:59.123456Z"),
            sys_days(2024y / 2 / 29) + 86399s);
  EXPECT_EQ(tidesync::rfc3339::parse("2024-03-01T01:00:00+02:00"), sys_days(2024y / 2 / 29) + 23h);
  EXPECT_FALSE(tidesync::rfc3339::parse("2023-02-29T00:00:00Z"));
  EXPECT_FALSE(tidesync::rfc3339::parse("2024-01-01 00:00"));
  EXPECT_FALSE(tidesync::rfc3339::parse("2024-01-01T00:00:00"));
  EXPECT_EQ(tidesync::rfc3339::format(sys_days(1970y / 1 / 1)), "1970-01-01T00:00:00Z");
  EXPECT_EQ(parse_duration("1h30m").value(), seconds(5400));
  EXPECT_EQ(parse_duration("1.5h").value(), seconds(5400));
  EXPECT_EQ(parse_duration("90s").value(), seconds(90));
  EXPECT_FALSE(parse_duration("10").has_value());
  EXPECT_FALSE(parse_duration("-5m").has_value());
  EXPECT_FALSE(parse_duration("5d").has_value());
  EXPECT_FALSE(parse_duration("500ms").has_value());
  EXPECT_EQ(format_duration(seconds(5400)), "1h30m");
  EXPECT_EQ(format_duration(seconds(3601)), "1h1s");
  EXPECT_EQ(split_location("s3:bucket/a:b").remote, "s3");
  EXPECT_EQ(split_location("bucket/a:b").remote, "");
  EXPECT_EQ(split_location("bucket/a:b").path, "bucket/a:b");
}
