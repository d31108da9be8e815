#include "actors/config_api.hpp"

#include <openssl/rand.h>

#include <caf/all.hpp>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "actors/config_owner.hpp"
#include "config/sharedconfig.hpp"
#include "runtime/archive/store.hpp"
#include "runtime/base64.hpp"
#include "runtime/log.hpp"
#include "runtime/rfc3339.hpp"
#include "runtime/transfer/remote.hpp"

namespace tidesync::actors {
namespace {

// archive::config_store as the owner actor sees it.
class store_adapter : public owner_store {
 public:
  explicit store_adapter(std::unique_ptr<transfer::backend> root) : store_(std::move(root)) {}
  expected<std::optional<archive::latest>> read_latest() override { return store_.read_latest(); }
  expected<void> upload_bundle(const std::string& rev, const std::filesystem::path& f) override {
    return store_.upload_bundle(rev, f);
  }
  expected<void> write_latest(const archive::latest& l) override { return store_.write_latest(l); }
  expected<std::vector<std::string>> list_revisions() override { return store_.list_revisions(); }
  expected<void> remove_revision(const std::string& rev) override {
    return store_.remove_revision(rev);
  }

 private:
  archive::config_store store_;
};

std::string object_rv(const json::value& obj) {
  const auto* rv = obj.at_path({"metadata", "resourceVersion"});
  return rv && rv->is_string() ? rv->as_string() : std::string{};
}

// The Secret's data as an environment (REMOTE_* and RCLONE_CONFIG_* keys).
std::map<std::string, std::string> secret_env(const json::value& secret) {
  std::map<std::string, std::string> env;
  if (const auto* data = secret.at("data"); data && data->is_object())
    for (const auto& [k, v] : data->as_object())
      if (v.is_string())
        if (auto d = base64::decode(v.as_string())) env[k] = std::move(*d);
  return env;
}

// Writes the SharedConfig's status after a publish (asynchronous; a failure is logged).
void write_status(k8s::client& client, const configapi::config_ref& ref, int64_t generation,
                  const archive::latest& l, uint64_t size) {
  config::sharedconfig_status s;
  s.revision = l.revision;
  s.checksum = l.checksum;
  s.size = static_cast<int64_t>(size);
  s.updated_at = l.updated_at;
  s.observed_generation = generation;
  auto c = config::make_condition("Ready", "True", "Published",
                                  "revision " + l.revision + " is the latest", generation);
  c.last_transition_time = l.updated_at;
  s.conditions.push_back(std::move(c));
  json::value patch(json::object{{"status", config::to_json(s)}});
  client.patch_status(sharedconfigs_resource(), ref.ns, ref.name, k8s::patch_type::merge, patch,
                      [key = ref.ns + "/" + ref.name](expected<json::value> r) {
                        if (!r)
                          log::get("configapi")
                              ->warn("SharedConfig {}: writing its status: {}", key,
                                     r.error().message);
                      });
}

class backend_impl : public configapi::backend {
 public:
  backend_impl(caf::actor_system& sys, k8s::client& client, http::loop& loop, config_api_options o)
      : sys_(sys), client_(client), loop_(loop), opts_(std::move(o)) {}

  ~backend_impl() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [k, e] : owners_)
      caf::anon_send_exit(e.owner, caf::exit_reason::user_shutdown);
  }

  expected<uint64_t> max_bundle_bytes(const configapi::config_ref& ref) override {
    auto e = resolve(ref);
    if (!e) return e.error();
    return e->max_bytes;
  }

  expected<std::optional<archive::latest>> latest(const configapi::config_ref& ref,
                                                  const std::optional<std::string>& known,
                                                  std::chrono::milliseconds wait) override {
    auto e = resolve(ref);
    if (!e) return e.error();
    auto r = ask(e->owner, wait + std::chrono::seconds(30),
                 caf::make_message(atom::poll_v, known.has_value(), known.value_or(""),
                                   static_cast<uint32_t>(wait.count())));
    if (!r) return r.error();
    return r->latest();
  }

  expected<configapi::publish_outcome> publish(const configapi::config_ref& ref,
                                               const std::string& expected_revision,
                                               const std::filesystem::path& bundle,
                                               const std::string& checksum) override {
    if (!opts_.leading())
      return make_error(errc::unavailable,
                        "this controller replica is not the leader; the leader writes configs");
    auto e = resolve(ref);
    if (!e) return e.error();
    auto r = ask(e->owner, opts_.publish_timeout,
                 caf::make_message(atom::publish_v, expected_revision, bundle.string(), checksum));
    if (!r) return r.error();
    configapi::publish_outcome out;
    out.conflict = r->conflict;
    if (auto l = r->latest()) out.latest = *l;
    return out;
  }

  void cancel_waits() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [k, e] : owners_)
      caf::anon_send(e.owner, atom::flush_v);
  }

 private:
  struct entry {
    config_owner_actor owner;
    std::shared_ptr<owner_bindings> bindings;
    std::string uid;
    int64_t generation = 0;
    std::string secret_rv;
    uint64_t max_bytes = 0;
    std::chrono::steady_clock::time_point read_at;
  };

  expected<config_reply> ask(const config_owner_actor& owner, std::chrono::milliseconds timeout,
                             caf::message msg) {
    caf::scoped_actor self{sys_};
    std::optional<config_reply> reply;
    std::optional<error> failed;
    self->request(caf::actor_cast<caf::actor>(owner), timeout, std::move(msg))
        .receive([&](config_reply& r) { reply = std::move(r); },
                 [&](caf::error& err) {
                   failed = make_error(errc::unavailable,
                                       "the config writer did not answer: " + caf::to_string(err));
                 });
    if (failed) return *failed;
    if (!reply->ok) return make_error(static_cast<errc>(reply->code), reply->message);
    return *reply;
  }

  // The owner of `ref`, spawned or rebound as its SharedConfig and Secret say.
  expected<entry> resolve(const configapi::config_ref& ref) {
    const std::string key = ref.ns + "/" + ref.name;
    auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = owners_.find(key);
      if (it != owners_.end() && now - it->second.read_at < opts_.spec_ttl) return it->second;
    }
    auto obj = client_.get_sync(sharedconfigs_resource(), ref.ns, ref.name);
    if (!obj) {
      if (obj.error().code == errc::not_found)
        return make_error(errc::not_found, "there is no SharedConfig " + key +
                                               ": create it first (docs/sharedconfig.md)");
      return make_error(errc::unavailable,
                        "reading SharedConfig " + key + ": " + obj.error().message);
    }
    auto sc = config::parse_sharedconfig(*obj);
    if (!sc) return make_error(errc::invalid, sc.error().message);
    auto secret = client_.get_sync(k8s::resources::secrets(), ref.ns, sc->spec.secret_name);
    if (!secret) {
      if (secret.error().code == errc::not_found)
        return make_error(errc::config_error, "SharedConfig " + key + " names Secret " +
                                                  sc->spec.secret_name +
                                                  ", which does not exist in namespace " + ref.ns +
                                                  ": create it with the store's REMOTE_* keys");
      return make_error(errc::unavailable, "reading Secret " + ref.ns + "/" + sc->spec.secret_name +
                                               ": " + secret.error().message);
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto it = owners_.find(key);
    const auto secret_rv = object_rv(*secret);
    if (it != owners_.end() && it->second.uid == sc->metadata.uid &&
        it->second.generation == sc->metadata.generation && it->second.secret_rv == secret_rv) {
      it->second.read_at = now;
      return it->second;
    }
    auto env = secret_env(*secret);
    auto lookup =
        transfer::with_seed_remote([env](const std::string& k) -> std::optional<std::string> {
          auto f = env.find(k);
          if (f == env.end()) return std::nullopt;
          return f->second;
        });
    const std::string where = std::string(transfer::k_seed_remote) + ":" + sc->spec.bucket + "/" +
                              config::sharedconfig_root(sc->spec);
    auto loc = transfer::parse_location(where, lookup);
    if (!loc)
      return make_error(errc::config_error, "SharedConfig " + key + ": the store from Secret " +
                                                sc->spec.secret_name + ": " + loc.error().message);
    auto be = transfer::make_backend(*loc, loop_, archive::store_backend_options());
    if (!be)
      return make_error(errc::config_error,
                        "SharedConfig " + key + ": opening the store: " + be.error().message);
    owner_binding b;
    b.store = std::make_shared<store_adapter>(std::move(*be));
    b.retain = static_cast<size_t>(sc->spec.retain_revisions);
    // The client outlives the owners (the actor system stops first); the backend may not.
    b.published = [client = &client_, ref, generation = sc->metadata.generation](
                      const archive::latest& l, uint64_t size) {
      write_status(*client, ref, generation, l, size);
    };
    if (it == owners_.end()) {
      entry e;
      e.bindings = std::make_shared<owner_bindings>(std::move(b));
      config_owner_settings s;
      s.key = key;
      s.bindings = e.bindings;
      e.owner = sys_.spawn<caf::detached>(config_owner, std::move(s));
      it = owners_.emplace(key, std::move(e)).first;
    } else {
      // The same owner goes on with the new store: it stays the only writer.
      it->second.bindings->replace(std::move(b));
    }
    it->second.uid = sc->metadata.uid;
    it->second.generation = sc->metadata.generation;
    it->second.secret_rv = secret_rv;
    it->second.max_bytes = static_cast<uint64_t>(sc->spec.max_bundle_bytes);
    it->second.read_at = now;
    log::get("configapi")->info("SharedConfig {}: writing to {}", key, loc->text);
    return it->second;
  }

  caf::actor_system& sys_;
  k8s::client& client_;
  http::loop& loop_;
  config_api_options opts_;
  std::mutex mu_;
  std::map<std::string, entry> owners_;
};

std::optional<std::string> token_of(const json::value& secret) {
  const auto* v = secret.at_path({"data", "token"});
  if (v == nullptr || !v->is_string()) return std::nullopt;
  auto d = base64::decode(v->as_string());
  if (!d || d->empty()) return std::nullopt;
  while (!d->empty() && (d->back() == '\n' || d->back() == '\r' || d->back() == ' '))
    d->pop_back();
  return d;
}

}  // namespace

expected<std::function<std::string()>> config_api_token_source(k8s::client& client,
                                                               const std::string& ns) {
  auto secret = client.get_sync(k8s::resources::secrets(), ns, k_config_api_secret);
  if (!secret && secret.error().code == errc::not_found) {
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1)
      return make_error(errc::internal, "no random bytes for the config API token");
    static const char* hex = "0123456789abcdef";
    std::string token;
    for (unsigned char c : raw) {
      token += hex[c >> 4];
      token += hex[c & 15];
    }
    json::value obj(json::object{
        {"apiVersion", "v1"},
        {"kind", "Secret"},
        {"metadata",
         json::object{{"name", k_config_api_secret},
                      {"namespace", ns},
                      {"labels", json::object{{"app.kubernetes.io/name", "tidesync"}}}}},
        {"type", "Opaque"},
        {"data", json::object{{"token", base64::encode(token)}}},
    });
    secret = client.create_sync(k8s::resources::secrets(), ns, obj);
    if (!secret && secret.error().code == errc::already_exists)
      secret = client.get_sync(k8s::resources::secrets(), ns, k_config_api_secret);
    if (secret)
      log::get("configapi")
          ->info("created Secret {}/{} with a new config API token", ns, k_config_api_secret);
  }
  if (!secret)
    return make_error(secret.error().code, "reading the config API token (Secret " + ns + "/" +
                                               k_config_api_secret +
                                               ", key token): " + secret.error().message);
  auto first = token_of(*secret);
  if (!first)
    return make_error(errc::config_error, "Secret " + ns + "/" + k_config_api_secret +
                                              " has no key token: add one (any long random text)");
  struct cache {
    std::mutex mu;
    std::string token;
    std::chrono::steady_clock::time_point read_at = std::chrono::steady_clock::now();
  };
  auto c = std::make_shared<cache>();
  c->token = std::move(*first);
  return std::function<std::string()>([c, &client, ns] {
    std::lock_guard<std::mutex> lock(c->mu);
    auto now = std::chrono::steady_clock::now();
    if (now - c->read_at >= std::chrono::seconds(10)) {
      c->read_at = now;
      if (auto s = client.get_sync(k8s::resources::secrets(), ns, k_config_api_secret); s) {
        c->token = token_of(*s).value_or("");  // a Secret without a token refuses everything
      } else if (s.error().code == errc::not_found) {
        c->token.clear();
      }
    }
    return c->token;
  });
}

std::unique_ptr<configapi::backend> make_config_api_backend(caf::actor_system& sys,
                                                            k8s::client& client, http::loop& loop,
                                                            config_api_options options) {
  return std::make_unique<backend_impl>(sys, client, loop, std::move(options));
}

}  // namespace tidesync::actors
