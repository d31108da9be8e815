#include "actors/datasync_logic.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <numeric>
#include <tuple>

#include "config/validation.hpp"
#include "runtime/rfc3339.hpp"

namespace tidesync::datasync {
namespace {

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && space(s.back()))
    s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Reads the policy ConfigMap key by key into `r`.
class policy_reader {
 public:
  explicit policy_reader(policy_result& r) : r_(r) {}

  void integer(const std::map<std::string, std::string>& data, std::string_view key, int& out,
               int lo, int hi) {
    auto it = data.find(std::string(key));
    if (it == data.end()) return;
    std::string_view text = trim(it->second);
    int64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    std::string why;
    if (text.empty())
      why = "is empty";
    else if (ec == std::errc::result_out_of_range)
      why = "is out of range";
    else if (ec != std::errc() || end != text.data() + text.size())
      why = "is not a whole number";
    else if (v < lo || v > hi)
      why = "is out of range";
    if (why.empty()) {
      out = static_cast<int>(v);
      return;
    }
    add_invalid(
        key, it->second, std::to_string(out),
        why + "; write a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
  }

  void duration(const std::map<std::string, std::string>& data, std::string_view key,
                std::chrono::seconds& out) {
    auto it = data.find(std::string(key));
    if (it == data.end()) return;
    std::string_view text = trim(it->second);
    auto d = config::parse_duration(text);
    std::string why;
    if (!d)
      why = "is not a valid duration (" + d.error().message + ")";
    else if (*d > k_duration_max)
      why = "is longer than " + config::format_duration(k_duration_max);
    if (why.empty()) {
      out = *d;
      return;
    }
    add_invalid(key, it->second, config::format_duration(out),
                why + "; write a Go duration from " + config::format_duration(k_duration_min) +
                    " to " + config::format_duration(k_duration_max) +
                    ", e.g. \"5m\" or \"1h30m\"");
  }

  void unknown(const std::string& key, const std::string& value) {
    policy_problem p;
    p.what = policy_problem::kind::unknown_key;
    p.key = key;
    p.value = value;
    p.message =
        "ConfigMap " + std::string(k_policy_config_map) + ": unknown key \"" + key + "\" ignored";
    auto same_but_case = std::find_if(std::begin(k_policy_keys), std::end(k_policy_keys),
                                      [&](std::string_view known) { return iequals(known, key); });
    if (same_but_case != std::end(k_policy_keys))
      p.message +=
          "; did you mean \"" + std::string(*same_but_case) + "\"? (keys are case-sensitive)";
    else
      for (std::size_t i = 0; i < std::size(k_policy_keys); ++i)
        p.message += (i == 0 ? "; known keys: " : ", ") + std::string(k_policy_keys[i]);
    r_.problems.push_back(std::move(p));
  }

  void add_invalid(std::string_view key, const std::string& value, std::string used,
                   const std::string& why) {
    policy_problem p;
    p.what = policy_problem::kind::invalid;
    p.key = std::string(key);
    p.value = value;
    p.used = std::move(used);
    p.message = "ConfigMap " + std::string(k_policy_config_map) + ": " + p.key + " \"" + value +
                "\" " + why + "; using " + p.used;
    r_.problems.push_back(std::move(p));
  }

 private:
  policy_result& r_;
};

}  // namespace

policy_result parse_policy(const std::map<std::string, std::string>* configmap_data) {
  policy_result r;
  if (configmap_data == nullptr) {
    r.from_defaults = true;
    return r;
  }
  const auto& data = *configmap_data;
  policy_reader read(r);
  datasync_policy& p = r.policy;
  // The defaults are already in `p`: a reader that rejects a value leaves them in place.
  read.integer(data, k_key_concurrency, p.concurrency, k_concurrency_min, k_concurrency_max);
  read.integer(data, k_key_retry_limit, p.retry_limit, 0, k_retry_limit_max);
  read.duration(data, k_key_retry_backoff, p.retry_backoff);
  read.duration(data, k_key_retry_backoff_limit, p.retry_backoff_limit);
  read.integer(data, k_key_version_retention, p.version_retention, 0, k_version_retention_max);
  for (const auto& [key, value] : data) {
    if (std::find(std::begin(k_policy_keys), std::end(k_policy_keys), key) ==
        std::end(k_policy_keys))
      read.unknown(key, value);
  }
  // Checked after both durations are settled (either may have fallen back to its default).
  if (p.retry_backoff_limit < p.retry_backoff) {
    auto it = data.find(std::string(k_key_retry_backoff_limit));
    // The limit may be the default (1h) below an explicit duration such as "2h".
    std::string value =
        it != data.end() ? it->second : config::format_duration(p.retry_backoff_limit);
    read.add_invalid(k_key_retry_backoff_limit, value, config::format_duration(p.retry_backoff),
                     "is below " + std::string(k_key_retry_backoff) + " (" +
                         config::format_duration(p.retry_backoff) +
                         "); the cap must be at least the first wait");
    p.retry_backoff_limit = p.retry_backoff;
  }
  return r;
}

std::string queue_key(std::string_view ns, std::string_view name) {
  std::string k;
  k.reserve(ns.size() + 1 + name.size());
  k.append(ns).append("/").append(name);
  return k;
}

admission admit(const std::vector<queued_item>& queue, int syncing, const datasync_policy& policy,
                sys_seconds now) {
  admission a;
  std::vector<std::size_t> order(queue.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    const auto& l = queue[x];
    const auto& r = queue[y];
    return std::tie(l.created, l.ns, l.name, l.uid) < std::tie(r.created, r.ns, r.name, r.uid);
  });
  // `syncing` may exceed concurrency after the policy was lowered: no slot then.
  int slots = std::max(0, policy.concurrency - std::max(0, syncing));
  int position = 0;
  std::optional<sys_seconds> earliest_waiting;
  bool held = false;  // a pending item was passed: nothing younger starts
  for (std::size_t i : order) {
    const auto& item = queue[i];
    bool waiting = item.not_before && *item.not_before > now;
    held = held || item.pending;
    if (!waiting && !held && slots > 0) {
      a.start.push_back(i);
      --slots;
      continue;
    }
    a.positions[queue_key(item.ns, item.name)] = ++position;
    if (waiting && (!earliest_waiting || *item.not_before < *earliest_waiting))
      earliest_waiting = item.not_before;
  }
  a.free_slots = slots;
  // A slot left over means every item not waiting has started; the first backoff to expire
  // can take it then. Without a free slot the next admission comes with the next change.
  if (slots > 0 && !held) a.wake_at = earliest_waiting;
  return a;
}

std::string_view to_string(failure_kind k) {
  switch (k) {
    case failure_kind::missing_source:
      return "MissingSource";
    case failure_kind::checksum_mismatch:
      return "ChecksumMismatch";
    case failure_kind::unauthorized:
      return "Unauthorized";
    case failure_kind::transient:
      return "Transient";
  }
  return "Transient";
}

failure_kind classify(int exit_code, std::string_view reason_text) {
  switch (exit_code) {
    case k_exit_missing_source:
      return failure_kind::missing_source;
    case k_exit_checksum_mismatch:
      return failure_kind::checksum_mismatch;
    case k_exit_unauthorized:
      return failure_kind::unauthorized;
    default:
      break;
  }
  // Exact words only: a Pod message that merely mentions "Unauthorized" in passing must not
  // turn a retryable failure into a terminal one.
  std::string_view reason = trim(reason_text);
  if (reason == "MissingSource") return failure_kind::missing_source;
  if (reason == "ChecksumMismatch") return failure_kind::checksum_mismatch;
  if (reason == "Unauthorized") return failure_kind::unauthorized;
  // DeadlineExceeded, BackoffLimitExceeded, Evicted, OOMKilled, Error, "" and the rest: the
  // next attempt may well succeed, and retryLimit bounds the cost if it does not.
  return failure_kind::transient;
}

std::chrono::seconds backoff_for(int retry_count, const datasync_policy& policy) {
  std::chrono::seconds limit = std::max(policy.retry_backoff_limit, std::chrono::seconds{0});
  std::chrono::seconds wait = std::clamp(policy.retry_backoff, std::chrono::seconds{1},
                                         std::max(limit, std::chrono::seconds{1}));
  // Doubling stops at the cap, so this runs at most log2(limit / first) times and never
  // overflows, whatever retry_count is.
  for (int i = 0; i < retry_count && wait < limit; ++i)
    wait = wait > limit / 2 ? limit : wait * 2;
  return std::min(wait, limit);
}

retry_decision decide_retry(failure_kind kind, int retry_count, const datasync_policy& policy,
                            sys_seconds now) {
  retry_decision d;
  std::string what = kind == failure_kind::checksum_mismatch ? "checksum mismatch"
                     : kind == failure_kind::missing_source  ? "the source does not exist"
                     : kind == failure_kind::unauthorized    ? "access to the source was denied"
                                                             : "transient failure";
  if (kind == failure_kind::missing_source || kind == failure_kind::unauthorized) {
    d.reason = std::string(to_string(kind));
    d.message =
        what + " (not retried); " +
        (kind == failure_kind::unauthorized ? "check spec.secretRef and its keys, then re-apply"
                                            : "fix the URL (or create the object), then re-apply");
    return d;
  }
  retry_count = std::max(retry_count, 0);
  if (retry_count >= policy.retry_limit) {
    d.reason = "RetryLimitExceeded";
    d.message = what + "; gave up after " + std::to_string(retry_count) + " retr" +
                (retry_count == 1 ? "y" : "ies") + " (retryLimit " +
                std::to_string(policy.retry_limit) + ")";
    return d;
  }
  d.retry = true;
  d.reason = "Retrying";
  d.wait = backoff_for(retry_count, policy);
  d.next_retry_time = now + d.wait;
  d.message = what + "; retry " + std::to_string(retry_count + 1) + " of " +
              std::to_string(policy.retry_limit) + " at " + rfc3339::format(*d.next_retry_time) +
              " (in " + config::format_duration(d.wait) + ")";
  return d;
}

prune_plan plan_prune(const std::vector<version_item>& items,
                      const std::set<std::string>& mounted_claims, int retention) {
  prune_plan plan;
  if (retention <= 0) return plan;
  std::vector<const version_item*> succeeded;
  std::set<std::string> protected_claims;
  for (const auto& item : items) {
    if (item.succeeded)
      succeeded.push_back(&item);
    else
      protected_claims.insert(item.claims.begin(), item.claims.end());
  }
  // Newest first; equal creation times: the greater name is newer.
  std::sort(succeeded.begin(), succeeded.end(), [](const version_item* a, const version_item* b) {
    return std::tie(a->created, a->name) > std::tie(b->created, b->name);
  });
  auto keep = std::min(succeeded.size(), static_cast<std::size_t>(retention));
  for (std::size_t i = 0; i < keep; ++i)
    protected_claims.insert(succeeded[i]->claims.begin(), succeeded[i]->claims.end());
  // Candidates oldest first, so the longest-unused volumes go first.
  std::set<std::string> planned;
  for (std::size_t i = succeeded.size(); i-- > keep;) {
    const auto& item = *succeeded[i];
    bool all_gone = true;
    for (const auto& claim : item.claims) {
      if (mounted_claims.count(claim) != 0) {
        plan.kept_for_mount.push_back(claim);
        all_gone = false;
      } else if (protected_claims.count(claim) != 0) {
        all_gone = false;  // shared with a kept DataSync: not ours to delete
      } else if (planned.insert(claim).second) {
        plan.delete_claims.push_back(claim);
      }
    }
    if (all_gone) plan.pruned_datasyncs.push_back(item.name);
  }
  return plan;
}

}  // namespace tidesync::datasync
