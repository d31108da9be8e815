#include "actors/events.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>

#include "runtime/log.hpp"
#include "runtime/rfc3339.hpp"

namespace tidesync::actors {

namespace {

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// splitmix64: spreads (time, seq) over 64 bits so names do not collide across restarts.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

json::value build_event(const event_subject& about, std::string_view type, std::string_view reason,
                        std::string_view message, config::sys_seconds now, uint64_t seq,
                        std::string_view component) {
  auto secs = static_cast<uint64_t>(now.time_since_epoch().count());
  std::string name = about.name + "." + hex16(mix(secs * 1'000'003ULL + seq));
  std::string msg(message.substr(0, 1024));
  std::string ts = rfc3339::format(now);
  json::object involved{{"apiVersion", about.api_version},
                        {"kind", about.kind},
                        {"name", about.name},
                        {"uid", about.uid}};
  if (!about.ns.empty()) involved.set("namespace", about.ns);
  if (!about.resource_version.empty()) involved.set("resourceVersion", about.resource_version);
  json::object meta{{"name", name}};
  if (!about.ns.empty()) meta.set("namespace", about.ns);
  return json::value(json::object{
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", json::value(std::move(meta))},
      {"involvedObject", json::value(std::move(involved))},
      {"type", std::string(type)},
      {"reason", std::string(reason)},
      {"message", msg},
      {"firstTimestamp", ts},
      {"lastTimestamp", ts},
      {"count", 1},
      {"source", json::value(json::object{{"component", std::string(component)}})},
      {"reportingComponent", std::string(component)},
  });
}

void send_event(k8s::client& client, const event_subject& about, std::string_view type,
                std::string_view reason, std::string_view message, config::sys_seconds now) {
  static std::atomic<uint64_t> seq{0};
  auto ev = build_event(about, type, reason, message, now, seq.fetch_add(1));
  std::string what = about.ns + "/" + about.name + " " + std::string(reason);
  client.create(k8s::resources::events(), about.ns, ev, [what](expected<json::value> r) {
    if (!r) log::get("events")->debug("event {} not written: {}", what, r.error().to_string());
  });
}

}  // namespace tidesync::actors
