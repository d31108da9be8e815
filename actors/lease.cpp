#include "actors/lease.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <utility>

#include "runtime/hash.hpp"

namespace tidesync::actors {

namespace {

using time_point = lock_table::time_point;
using namespace std::chrono;

constexpr std::string_view name_prefix = "tidesync-lock-";
constexpr std::size_t max_name = 63;  // DNS-1123 label
constexpr std::size_t hash_digits = 12;

error parse_err(std::string msg) {
  return make_error(errc::parse_error, "lease: " + std::move(msg));
}

// Reads `n` decimal digits at s[pos...]; false if any is not a digit.
bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

}  // namespace

std::string lease_name(std::string_view canonical_path) {
  std::string slug;
  for (char c : canonical_path) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (ok) {
      slug += c;
    } else if (!slug.empty() && slug.back() != '-') {
      slug += '-';
    }
  }
  const std::size_t budget = max_name - name_prefix.size() - 1 - hash_digits;
  if (slug.size() > budget) slug.resize(budget);
  while (!slug.empty() && slug.back() == '-')
    slug.pop_back();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(fnv1a64(canonical_path)));
  std::string name(name_prefix);
  if (!slug.empty()) name += slug + "-";
  name.append(hex, hash_digits);
  return name;
}

std::string format_micro_time(time_point t) {
  auto us = floor<microseconds>(t);
  auto day = floor<days>(us);
  year_month_day ymd{day};
  hh_mm_ss<microseconds> hms{us - day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%06lldZ", int(ymd.year()),
                unsigned(ymd.month()), unsigned(ymd.day()), int(hms.hours().count()),
                int(hms.minutes().count()), int(hms.seconds().count()),
                static_cast<long long>(hms.subseconds().count()));
  return buf;
}

expected<time_point> parse_micro_time(std::string_view s) {
  auto bad = [&]() -> expected<time_point> {
    return parse_err("\"" + std::string(s) + "\" is not an RFC 3339 time");
  };
  int y, mo, d, h, mi, sec;
  if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, h) ||
      s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec))
    return bad();
  year_month_day ymd{year{y}, month{unsigned(mo)}, day{unsigned(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 59) return bad();
  std::size_t pos = 19;
  int64_t micros = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    std::size_t n = 0;
    for (; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos, ++n) {
      if (n < 6) micros = micros * 10 + (s[pos] - '0');
    }
    if (n == 0 || n > 9) return bad();
    for (; n < 6; ++n)
      micros *= 10;
  }
  if (pos >= s.size()) return bad();
  minutes offset{0};
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh, om;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, om) || oh > 23 || om > 59)
      return bad();
    offset = hours{oh} + minutes{om};
    if (s[pos] == '-') offset = -offset;
    pos += 6;
  } else {
    return bad();
  }
  if (pos != s.size()) return bad();
  auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} + microseconds{micros} - offset;
  return time_point{duration_cast<time_point::duration>(t.time_since_epoch())};
}

bool lease_stale(time_point renewed, time_point now, seconds ttl) {
  return now - renewed >= ttl;
}

lease_verdict judge_lease(const lease_record& r, time_point now, seconds ttl, bool holder_alive) {
  if (holder_alive) return lease_verdict::adopt;
  return lease_stale(r.renew_time, now, ttl) ? lease_verdict::reclaim : lease_verdict::hold;
}

json::value build_lease(const lease_record& r) {
  json::array set;
  for (const auto& p : r.set)
    set.emplace_back(p);
  json::object metadata{
      {"name", r.name.empty() ? lease_name(r.path) : r.name},
      {"namespace", r.lease_namespace},
      {"labels", json::object{{"app.kubernetes.io/managed-by", "tidesync"},
                              {std::string(lease_lock_label), "true"}}},
      {"annotations", json::object{{std::string(lease_path_annotation), r.path},
                                   {std::string(lease_set_annotation), json::dump(set)}}},
  };
  if (!r.resource_version.empty()) metadata.set("resourceVersion", r.resource_version);
  return json::object{
      {"apiVersion", "coordination.k8s.io/v1"},
      {"kind", "Lease"},
      {"metadata", std::move(metadata)},
      {"spec", json::object{{"holderIdentity", r.holder},
                            {"acquireTime", format_micro_time(r.acquire_time)},
                            {"renewTime", format_micro_time(r.renew_time)},
                            {"leaseDurationSeconds", static_cast<int64_t>(r.duration.count())}}},
  };
}

expected<lease_record> parse_lease(const json::value& v) {
  if (!v.is_object()) return parse_err("not an object");
  if (v.get_string("apiVersion") != "coordination.k8s.io/v1" || v.get_string("kind") != "Lease")
    return parse_err("not a coordination.k8s.io/v1 Lease");
  const auto* md = v.at("metadata");
  const auto* spec = v.at("spec");
  if (!md || !md->is_object()) return parse_err("no metadata");
  lease_record r;
  r.name = std::string(md->get_string("name"));
  r.lease_namespace = std::string(md->get_string("namespace"));
  r.resource_version = std::string(md->get_string("resourceVersion"));
  const auto* ann = md->at("annotations");
  const auto* path = ann ? ann->at(lease_path_annotation) : nullptr;
  if (!path || !path->is_string())
    return parse_err(r.name + ": no " + std::string(lease_path_annotation) +
                     " annotation (not a tidesync lock)");
  auto p = normalize(path->as_string());
  if (!p) return parse_err(r.name + ": " + p.error().message);
  r.path = p->canonical();
  std::vector<std::string> raw{path->as_string()};
  if (const auto* set = ann->at(lease_set_annotation)) {
    if (!set->is_string()) return parse_err(r.name + ": lock-set annotation is not a string");
    auto doc = json::parse(set->as_string());
    if (!doc || !doc->is_array())
      return parse_err(r.name + ": lock-set annotation is not a JSON array of strings");
    for (const auto& e : doc->as_array()) {
      if (!e.is_string()) return parse_err(r.name + ": lock-set has a non-string entry");
      raw.push_back(e.as_string());
    }
  }
  auto set = normalize_set(raw);  // includes the path itself, sorted and unique
  if (!set) return parse_err(r.name + ": " + set.error().message);
  for (const auto& s : *set)
    r.set.push_back(s.canonical());

  if (!spec || !spec->is_object()) return parse_err(r.name + ": no spec");
  r.holder = std::string(spec->get_string("holderIdentity"));
  if (r.holder.empty()) return parse_err(r.name + ": no spec.holderIdentity");
  auto renew = parse_micro_time(spec->get_string("renewTime"));
  if (!renew) return parse_err(r.name + ": spec.renewTime: " + renew.error().message);
  r.renew_time = *renew;
  auto acquire_text = spec->get_string("acquireTime");
  if (acquire_text.empty()) {
    r.acquire_time = r.renew_time;
  } else {
    auto acquire = parse_micro_time(acquire_text);
    if (!acquire) return parse_err(r.name + ": spec.acquireTime: " + acquire.error().message);
    r.acquire_time = *acquire;
  }
  const auto* dur = spec->at("leaseDurationSeconds");
  if (dur) {
    if (!dur->is_int() || dur->as_int() <= 0)
      return parse_err(r.name + ": spec.leaseDurationSeconds must be a positive integer");
    r.duration = seconds{dur->as_int()};
  }
  return r;
}

}  // namespace tidesync::actors
