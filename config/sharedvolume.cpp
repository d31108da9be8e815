#include "config/sharedvolume.hpp"

#include <utility>

#include "config/datasync.hpp"

namespace tidesync::config {

namespace {

bool has_control(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

// A Git URL: https/http/ssh/git/file URLs, or scp-like user@host:path. Never a path that starts
// with '-' (it would read as an option to a git tool).
std::optional<std::string> git_url_problem(std::string_view u) {
  if (u.empty()) return "must not be empty";
  if (u.size() > 2048) return "must be at most 2048 characters";
  if (has_control(u) || u.find(' ') != std::string_view::npos)
    return "must not contain spaces or control characters";
  if (u.front() == '-') return "must not start with '-'";
  for (std::string_view scheme : {"https://", "http://", "ssh://", "git://", "file://"})
    if (u.rfind(scheme, 0) == 0)
      return u.size() > scheme.size() ? std::nullopt
                                      : std::optional<std::string>("needs a host and a path");
  auto colon = u.find(':');
  auto at = u.find('@');
  if (colon != std::string_view::npos && at != std::string_view::npos && at < colon &&
      colon + 1 < u.size())
    return std::nullopt;  // git@host:org/repo.git
  return "must be an https://, ssh:// or file:// URL, or scp-like user@host:org/repo.git";
}

std::optional<std::string> http_url_problem(std::string_view u) {
  if (u.rfind("https://", 0) != 0 && u.rfind("http://", 0) != 0)
    return "must start with https:// or http://";
  if (u.size() > 2048) return "must be at most 2048 characters";
  if (has_control(u) || u.find(' ') != std::string_view::npos)
    return "must not contain spaces or control characters";
  return std::nullopt;
}

// BUCKET/PREFIX or PATH: folder names separated by '/', no "..".
std::optional<std::string> remote_problem(std::string_view r, bool needs_bucket) {
  if (r.empty()) return needs_bucket ? "needs BUCKET or BUCKET/PREFIX" : "needs a path";
  if (r.size() > 1024) return "must be at most 1024 characters";
  if (has_control(r)) return "must not contain control characters";
  size_t start = needs_bucket || r.front() != '/' ? 0 : 1;
  while (start <= r.size()) {
    auto end = r.find('/', start);
    auto seg = r.substr(start, end == std::string_view::npos ? r.size() - start : end - start);
    if (seg == "..") return "must not contain \"..\"";
    if (seg.empty() && end != std::string_view::npos)
      return "must not contain empty folder names (\"//\")";
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return std::nullopt;
}

bool hex_commit(std::string_view c) {
  if (c.size() < 7 || c.size() > 40) return false;
  for (char ch : c)
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
  return true;
}

// A ref name git accepts (the subset that matters: no spaces, "..", control characters, and
// not starting with '-').
std::optional<std::string> ref_problem(std::string_view r) {
  if (r.empty() || r.size() > 255) return "must be 1 to 255 characters";
  if (has_control(r) || r.find_first_of(" ~^:?*[\\") != std::string_view::npos)
    return "must not contain spaces, control characters or any of ~^:?*[\\";
  if (r.find("..") != std::string_view::npos || r.front() == '-' || r.front() == '/' ||
      r.back() == '/' || r.back() == '.')
    return "is not a valid git ref name";
  return std::nullopt;
}

std::optional<std::string> read_secret_ref(const json::value& obj, const std::string& path,
                                           problems& p) {
  const json::value* ref = obj.at("secretRef");
  if (ref == nullptr || ref->is_null()) return std::nullopt;
  if (!ref->is_object()) {
    p.type(path + ".secretRef", "an object such as {name: my-secret}", *ref);
    return std::nullopt;
  }
  auto name = read_string(*ref, "name", path + ".secretRef.name", p);
  if (!name || name->empty()) {
    p.required(path + ".secretRef.name", "needs the Secret's name");
    return std::nullopt;
  }
  if (auto why = check_dns_subdomain(*name); !why.empty())
    p.invalid(path + ".secretRef.name", "\"" + *name + "\" " + why);
  return name;
}

void read_source(const json::value& spec, volume_source& out, problems& p) {
  const json::value* src = spec.at("source");
  if (src == nullptr || !src->is_object()) {
    p.required("spec.source",
               "needs exactly one of git, s3, sftp or http, e.g. source: {git: {url: "
               "https://github.com/org/repo.git}}");
    return;
  }
  warn_unknown_fields(*src, "spec.source", sharedvolume_source_fields(), p);
  std::vector<std::string_view> given;
  for (auto k : sharedvolume_source_fields())
    if (const auto* v = src->at(k); v != nullptr && !v->is_null()) given.push_back(k);
  if (given.size() != 1) {
    p.invalid("spec.source", given.empty()
                                 ? "needs exactly one of git, s3, sftp or http"
                                 : "sets " + std::to_string(given.size()) +
                                       " sources; set exactly one of git, s3, sftp or http");
    return;
  }
  const std::string key(given.front());
  const std::string path = "spec.source." + key;
  const json::value& s = *src->at(key);
  if (!s.is_object()) {
    p.type(path, "an object", s);
    return;
  }
  out.secret_name = read_secret_ref(s, path, p).value_or("");
  if (key == "git") {
    out.type = volume_source_type::git;
    warn_unknown_fields(s, path, {"url", "ref", "secretRef"}, p);
    if (auto u = read_string(s, "url", path + ".url", p)) {
      if (auto why = git_url_problem(*u)) p.invalid(path + ".url", *why);
      out.url = *u;
    } else if (s.at("url") == nullptr) {
      p.required(path + ".url", "needs the repository URL, e.g. https://github.com/org/repo.git");
    }
    if (const json::value* ref = s.at("ref"); ref != nullptr && !ref->is_null()) {
      if (!ref->is_object()) {
        p.type(path + ".ref", "an object: {branch: main}, {tag: v1} or {commit: <sha>}", *ref);
      } else {
        warn_unknown_fields(*ref, path + ".ref", {"branch", "tag", "commit"}, p);
        int set = 0;
        for (auto [k, slot] : {std::pair{"branch", &out.ref.branch}, std::pair{"tag", &out.ref.tag},
                               std::pair{"commit", &out.ref.commit}})
          if (auto v = read_string(*ref, k, path + ".ref." + k, p)) {
            *slot = *v;
            ++set;
          }
        if (set > 1) p.invalid(path + ".ref", "set only one of branch, tag and commit");
        if (!out.ref.branch.empty())
          if (auto why = ref_problem(out.ref.branch)) p.invalid(path + ".ref.branch", *why);
        if (!out.ref.tag.empty())
          if (auto why = ref_problem(out.ref.tag)) p.invalid(path + ".ref.tag", *why);
        if (!out.ref.commit.empty() && !hex_commit(out.ref.commit))
          p.invalid(path + ".ref.commit",
                    "must be a commit SHA: 7 to 40 lower-case hex digits, e.g. 4f2c9e1");
      }
    }
  } else if (key == "http") {
    out.type = volume_source_type::http;
    warn_unknown_fields(s, path, {"url", "secretRef"}, p);
    if (auto u = read_string(s, "url", path + ".url", p)) {
      if (auto why = http_url_problem(*u)) p.invalid(path + ".url", *why);
      out.url = *u;
    } else if (s.at("url") == nullptr) {
      p.required(path + ".url", "needs the URL of a file or a directory listing");
    }
  } else {
    out.type = key == "s3" ? volume_source_type::s3 : volume_source_type::sftp;
    warn_unknown_fields(s, path, {"remote", "secretRef"}, p);
    if (auto r = read_string(s, "remote", path + ".remote", p)) {
      if (auto why = remote_problem(*r, key == "s3")) p.invalid(path + ".remote", *why);
      out.remote = *r;
    } else if (s.at("remote") == nullptr) {
      p.required(path + ".remote",
                 key == "s3" ? "needs BUCKET/PREFIX on the remote of the Secret's REMOTE_* keys"
                             : "needs the PATH on the remote of the Secret's REMOTE_* keys");
    }
    if (out.secret_name.empty())
      p.required(path + ".secretRef",
                 "needs the Secret with the REMOTE_* keys of the " + key + " server");
  }
}

void read_storage(const json::value& spec, volume_storage& out, problems& p) {
  const json::value* st = spec.at("storage");
  if (st == nullptr || st->is_null()) return;  // dynamic with the defaults
  if (!st->is_object()) {
    p.type("spec.storage", "an object: {dynamic: {...}} or {external: {...}}", *st);
    return;
  }
  warn_unknown_fields(*st, "spec.storage", sharedvolume_storage_fields(), p);
  const json::value* dyn = st->at("dynamic");
  const json::value* ext = st->at("external");
  const bool has_dyn = dyn != nullptr && !dyn->is_null();
  const bool has_ext = ext != nullptr && !ext->is_null();
  if (has_dyn && has_ext) {
    p.invalid("spec.storage", "set one of dynamic and external, not both");
    return;
  }
  if (has_dyn) {
    if (!dyn->is_object()) return p.type("spec.storage.dynamic", "an object", *dyn);
    warn_unknown_fields(*dyn, "spec.storage.dynamic", {"size", "storageClassName"}, p);
    if (auto s = read_string(*dyn, "size", "spec.storage.dynamic.size", p)) {
      auto q = parse_quantity(*s);
      if (!q || *q <= 0)
        p.invalid("spec.storage.dynamic.size",
                  "\"" + *s + "\" is not a positive quantity; write e.g. 1Gi or 500Mi");
      out.size = *s;
    }
    if (auto c = read_string(*dyn, "storageClassName", "spec.storage.dynamic.storageClassName", p))
      out.storage_class_name = *c;
  }
  if (has_ext) {
    if (!ext->is_object()) return p.type("spec.storage.external", "an object", *ext);
    out.external = true;
    warn_unknown_fields(*ext, "spec.storage.external", {"server", "path"}, p);
    if (auto s = read_string(*ext, "server", "spec.storage.external.server", p); s && !s->empty()) {
      if (has_control(*s) || s->find_first_of(" /:") != std::string::npos)
        p.invalid("spec.storage.external.server",
                  "\"" + *s + "\" is not a host name or IP address");
      out.server = *s;
    } else {
      p.required("spec.storage.external.server", "needs the NFS server's host name or IP address");
    }
    if (auto s = read_string(*ext, "path", "spec.storage.external.path", p)) {
      if (s->empty() || s->front() != '/' || s->find("/../") != std::string::npos ||
          (s->size() >= 3 && s->substr(s->size() - 3) == "/..") || has_control(*s))
        p.invalid("spec.storage.external.path",
                  "\"" + *s + "\" must be an absolute export path such as /exports/docs");
      out.path = *s;
    }
  }
}

void read_duration(const json::value& spec, const char* key, std::chrono::seconds min,
                   std::chrono::seconds& out, problems& p) {
  const std::string path = std::string("spec.") + key;
  if (auto v = read_string(spec, key, path, p)) {
    auto d = parse_duration(*v);
    if (!d) {
      p.invalid(path, "\"" + *v + "\": " + d.error().message);
    } else if (*d < min) {
      p.invalid(path, "\"" + *v + "\" is shorter than " + format_duration(min));
    } else {
      out = *d;
    }
  }
}

}  // namespace

std::string_view to_string(volume_source_type t) {
  switch (t) {
    case volume_source_type::git:
      return "git";
    case volume_source_type::s3:
      return "s3";
    case volume_source_type::sftp:
      return "sftp";
    case volume_source_type::http:
      return "http";
  }
  return "git";
}

const std::vector<std::string_view>& sharedvolume_spec_fields() {
  static const std::vector<std::string_view> f = {"source", "syncInterval", "syncTimeout",
                                                  "storage", "readOnly"};
  return f;
}

const std::vector<std::string_view>& sharedvolume_source_fields() {
  static const std::vector<std::string_view> f = {"git", "s3", "sftp", "http"};
  return f;
}

const std::vector<std::string_view>& sharedvolume_storage_fields() {
  static const std::vector<std::string_view> f = {"dynamic", "external"};
  return f;
}

const std::vector<std::string_view>& sharedvolume_status_fields() {
  static const std::vector<std::string_view> f = {
      "phase",        "observedGeneration", "conditions",      "nfs",      "revision",
      "lastSyncTime", "lastSyncResult",     "lastSyncMessage", "consumers"};
  return f;
}

expected<sharedvolume> parse_sharedvolume(const json::value& object,
                                          std::vector<std::string>* warnings) {
  problems p;
  sharedvolume out;
  out.cluster = object.get_string("kind") == k_cluster_sharedvolume_kind;
  const auto kind = out.cluster ? k_cluster_sharedvolume_kind : k_sharedvolume_kind;
  check_type_meta(object, kind, p);
  out.metadata = read_meta(object, p);
  const json::value* spec = object.at("spec");
  if (spec == nullptr || !spec->is_object()) {
    p.required("spec", "needs a spec with a source, e.g. {source: {git: {url: ...}}}");
    return p.to_error(object_label(kind, out.metadata));
  }
  warn_unknown_fields(*spec, "spec", sharedvolume_spec_fields(), p);
  read_source(*spec, out.spec.source, p);
  read_duration(*spec, "syncInterval", k_min_sync_interval, out.spec.sync_interval, p);
  read_duration(*spec, "syncTimeout", std::chrono::seconds(10), out.spec.sync_timeout, p);
  read_storage(*spec, out.spec.storage, p);
  if (auto ro = read_bool(*spec, "readOnly", "spec.readOnly", p)) out.spec.read_only = *ro;

  if (const json::value* st = object.at("status"); st != nullptr && st->is_object()) {
    problems local;
    auto& s = out.status;
    s.phase = std::string(st->get_string("phase"));
    s.observed_generation = st->get_int("observedGeneration");
    s.conditions = parse_conditions(st->at("conditions"), "status.conditions", local);
    if (const auto* nfs = st->at("nfs"); nfs != nullptr && nfs->is_object()) {
      s.nfs_server = std::string(nfs->get_string("server"));
      s.nfs_path = std::string(nfs->get_string("path"));
    }
    s.revision = std::string(st->get_string("revision"));
    s.last_sync_time = read_time(*st, "lastSyncTime", "status.lastSyncTime", local);
    s.last_sync_result = std::string(st->get_string("lastSyncResult"));
    s.last_sync_message = std::string(st->get_string("lastSyncMessage"));
    if (const auto* cs = st->at("consumers"); cs != nullptr && cs->is_array())
      for (const auto& c : cs->as_array())
        if (c.is_object())
          s.consumers.push_back({std::string(c.get_string("namespace")), c.get_int("pods")});
    demote(local, p);
  }
  if (warnings != nullptr) *warnings = p.take_warnings();
  if (!p.empty()) return p.to_error(object_label(kind, out.metadata));
  return out;
}

json::value to_json(const sharedvolume_status& s) {
  json::array consumers;
  for (const auto& c : s.consumers)
    consumers.push_back(json::value(json::object{{"namespace", c.ns}, {"pods", c.pods}}));
  auto str_or_null = [](const std::string& v) {
    return v.empty() ? json::value() : json::value(v);
  };
  return json::value(json::object{
      {"phase", str_or_null(s.phase)},
      {"observedGeneration", s.observed_generation},
      {"conditions", to_json(s.conditions)},
      {"nfs", s.nfs_server.empty()
                  ? json::value()
                  : json::value(json::object{{"server", s.nfs_server}, {"path", s.nfs_path}})},
      {"revision", str_or_null(s.revision)},
      {"lastSyncTime", time_or_null(s.last_sync_time)},
      {"lastSyncResult", str_or_null(s.last_sync_result)},
      {"lastSyncMessage", str_or_null(s.last_sync_message)},
      {"consumers", std::move(consumers)},
  });
}

}  // namespace tidesync::config
