#include "actors/config_owner.hpp"

#include <algorithm>
#include <caf/all.hpp>
#include <system_error>
#include <utility>

#include "runtime/log.hpp"

namespace tidesync::actors {

namespace {

using self_ptr = config_owner_actor::stateful_pointer<config_owner_state>;

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("configowner");
  return l;
}

config_reply reply_of(const std::optional<archive::latest>& l) {
  config_reply r;
  r.set_latest(l);
  return r;
}

// Takes the binding in force; a new one (another store) makes the cached latest unknown.
void rebind(self_ptr self) {
  auto& st = self->state;
  auto [b, version] = st.settings.bindings->get();
  if (version == st.binding_version) return;
  st.binding = std::move(b);
  st.binding_version = version;
  st.loaded = false;
}

// Reads latest.json from the store into the state.
expected<void> load(self_ptr self) {
  auto& st = self->state;
  auto l = st.binding.store->read_latest();
  if (!l) {
    st.loaded = false;
    return make_error(l.error().code, "reading latest.json of SharedConfig " + st.settings.key +
                                          " from the store: " + l.error().message);
  }
  st.current = std::move(*l);
  st.loaded = true;
  return {};
}

void answer_waiters(self_ptr self, bool all) {
  auto& st = self->state;
  auto cur = st.current ? st.current->revision : std::string{};
  auto keep =
      std::partition(st.waiters.begin(), st.waiters.end(),
                     [&](const config_owner_state::waiter& w) { return !all && w.known == cur; });
  for (auto it = keep; it != st.waiters.end(); ++it)
    it->promise.deliver(reply_of(st.current));
  st.waiters.erase(keep, st.waiters.end());
}

config_reply publish(self_ptr self, const std::string& expected, const std::string& path,
                     const std::string& checksum) {
  auto& st = self->state;
  rebind(self);
  // Read the store again: a stale cache must never let a stale writer win.
  if (auto ok = load(self); !ok) return config_reply::failure(ok.error());
  auto cur = st.current ? st.current->revision : std::string{};
  if (expected != cur) {
    auto r = reply_of(st.current);
    r.conflict = true;
    return r;
  }
  archive::latest next;
  auto now = st.settings.now ? st.settings.now() : std::chrono::system_clock::now();
  next.revision = archive::make_revision(now, cur);
  next.checksum = checksum;
  next.updated_at = std::chrono::floor<std::chrono::seconds>(now);
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  // The bundle first: a reader that sees the new latest.json always finds its bundle.
  if (auto up = st.binding.store->upload_bundle(next.revision, path); !up)
    return config_reply::failure(make_error(
        up.error().code, "uploading revision " + next.revision + ": " + up.error().message));
  if (auto w = st.binding.store->write_latest(next); !w)
    return config_reply::failure(make_error(
        w.error().code, "writing latest.json for revision " + next.revision + ": " +
                            w.error().message + " (the previous revision stays current)"));
  st.current = next;
  logger()->info("{}: published revision {} ({} bytes)", st.settings.key, next.revision, size);
  answer_waiters(self, false);
  if (st.binding.published) st.binding.published(next, ec ? 0 : size);
  if (auto stored = st.binding.store->list_revisions(); stored) {
    for (const auto& old : revisions_to_prune(std::move(*stored), next.revision, st.binding.retain))
      if (auto rm = st.binding.store->remove_revision(old); !rm)
        logger()->warn("{}: removing old revision {}: {}", st.settings.key, old,
                       rm.error().message);
  } else {
    logger()->warn("{}: listing revisions to prune: {}", st.settings.key, stored.error().message);
  }
  return reply_of(st.current);
}

}  // namespace

std::vector<std::string> revisions_to_prune(std::vector<std::string> stored,
                                            const std::string& current, size_t retain) {
  std::sort(stored.begin(), stored.end());
  std::vector<std::string> out;
  size_t keep_from = stored.size() > retain ? stored.size() - retain : 0;
  for (size_t i = 0; i < keep_from; ++i)
    if (stored[i] != current) out.push_back(stored[i]);
  return out;
}

config_owner_actor::behavior_type config_owner(self_ptr self, config_owner_settings settings) {
  self->state.settings = std::move(settings);
  return {
      [self](atom::publish, const std::string& expected, const std::string& path,
             const std::string& checksum) -> config_reply {
        return publish(self, expected, path, checksum);
      },
      [self](atom::poll, bool has_known, const std::string& known,
             uint32_t wait_ms) -> caf::result<config_reply> {
        auto& st = self->state;
        rebind(self);
        // Read latest.json again (one small GET): another writer (a restore, an older tool) may
        // have moved it. A store that does not answer: the last known state, if there is one.
        const bool had = st.loaded;
        auto known_before = st.current;
        if (auto ok = load(self); !ok) {
          if (!had) return config_reply::failure(ok.error());
          st.current = std::move(known_before);
          st.loaded = true;
        } else if (st.current != known_before) {
          answer_waiters(self, false);
        }
        auto cur = st.current ? st.current->revision : std::string{};
        if (!has_known || known != cur || wait_ms == 0) return reply_of(st.current);
        auto id = ++st.next_id;
        auto promise = self->make_response_promise<config_reply>();
        st.waiters.push_back({id, known, promise});
        self->delayed_send(self, std::chrono::milliseconds(wait_ms), atom::tick_v, id);
        return promise;
      },
      [self](atom::flush) { answer_waiters(self, true); },
      [self](atom::tick, uint64_t id) {
        auto& w = self->state.waiters;
        auto it = std::find_if(w.begin(), w.end(),
                               [id](const config_owner_state::waiter& x) { return x.id == id; });
        if (it == w.end()) return;  // already answered
        it->promise.deliver(reply_of(self->state.current));
        w.erase(it);
      },
  };
}

}  // namespace tidesync::actors
