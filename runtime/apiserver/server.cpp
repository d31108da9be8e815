// The Kubernetes REST protocol over cpp-httplib (see server.hpp).
#include "runtime/apiserver/server.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <thread>

#include "runtime/apiserver/admission.hpp"
#include "runtime/apiserver/protobuf.hpp"
#include "runtime/apiserver/rbac.hpp"
#include "runtime/apiserver/store.hpp"
#include "runtime/log.hpp"
#include "runtime/rfc3339.hpp"

namespace tidesync::apiserver {
namespace {

// The charset parameter keeps httplib from gzipping (it compresses only the bare
// "application/json"): on loopback compression costs more than it saves (a 10,000-object
// list: 11 ms plain, 60 ms gzipped). Clients parse the media type, so the parameter is fine.
constexpr const char* kJson = "application/json;charset=utf-8";

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    if (slash > pos) out.push_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return out;
}

void send_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, kJson);
}

void send_error(httplib::Response& res, const error& e) {
  json::value st = status_for(e);
  send_json(res, static_cast<int>(st.get_int("code", 500)), json::dump(st));
}

error http_error(int status, std::string reason, std::string message) {
  error e = make_error(errc_from_http_status(status), std::move(message));
  e.http_status = status;
  e.reason = std::move(reason);
  return e;
}

// A string as Go's %#v prints it inside a []string (strconv.Quote, for the ASCII cases).
std::string go_quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// The `dryRun` values of a write (query parameter or DeleteOptions.dryRun), checked as
// kube-apiserver's Validate{Create,Update,Patch,Delete}Options do: none means a real write,
// every one "All" a dry run, anything else (also an empty value) is 422 Invalid on the options
// kind (`options_kind`, e.g. "CreateOptions"), with the real server's message and cause.
expected<write_mode> dry_run_mode(const std::vector<std::string>& values,
                                  const std::string& options_kind) {
  if (values.empty()) return write_mode::commit;
  if (std::all_of(values.begin(), values.end(), [](const std::string& v) { return v == "All"; }))
    return write_mode::dry_run;
  std::string list = "[]string{";
  for (size_t i = 0; i < values.size(); ++i)
    list += (i != 0 ? ", " : "") + go_quoted(values[i]);
  list += "}";
  std::string detail = "Unsupported value: " + list + ": supported values: \"All\"";
  error e =
      http_error(422, "Invalid", options_kind + ".meta.k8s.io \"\" is invalid: dryRun: " + detail);
  e.subject = error_subject{options_kind, "meta.k8s.io", ""};
  e.causes.push_back(error_cause{"FieldValueNotSupported", "dryRun", detail});
  return e;
}

std::vector<std::string> query_values(const httplib::Request& req, const char* key) {
  std::vector<std::string> out;
  for (size_t i = 0, n = req.get_param_value_count(key); i < n; ++i)
    out.push_back(req.get_param_value(key, i));
  return out;
}

// "5s", "3m", "2h", "4d" like kubectl's HumanDuration (coarser, good enough for a demo).
std::string human_age(const std::string& timestamp) {
  auto then = rfc3339::parse(timestamp);
  if (!then) return "<unknown>";
  auto age = std::chrono::system_clock::now() - *then;
  long long s = std::chrono::duration_cast<std::chrono::seconds>(age).count();
  // As apimachinery's HumanDuration: a time in the future has no age.
  if (s < -1) return "<invalid>";
  s = std::max<long long>(0, s);
  if (s < 120) return std::to_string(s) + "s";
  long long m = s / 60;
  if (m < 10) return std::to_string(m) + "m" + (s % 60 ? std::to_string(s % 60) + "s" : "");
  if (m < 180) return std::to_string(m) + "m";
  long long h = m / 60;
  if (h < 48) return std::to_string(h) + "h";
  return std::to_string(h / 24) + "d";
}

// Evaluates the JSONPath subset CRD printer columns use: `.a.b`, `.a[0].b`,
// `.a[?(@.type=="Ready")].status`. Returns nullptr when the path selects nothing.
const json::value* eval_json_path(const json::value& root, std::string_view path) {
  if (!path.empty() && path.front() == '{' && path.back() == '}')
    path = path.substr(1, path.size() - 2);
  if (!path.empty() && path.front() == '$') path.remove_prefix(1);
  const json::value* cur = &root;
  size_t i = 0;
  while (cur != nullptr && i < path.size()) {
    if (path[i] == '.') {
      ++i;
      size_t j = i;
      while (j < path.size() && path[j] != '.' && path[j] != '[')
        ++j;
      if (j > i) cur = cur->at(path.substr(i, j - i));
      i = j;
    } else if (path[i] == '[') {
      size_t close = path.find(']', i);
      if (close == std::string_view::npos) return nullptr;
      std::string_view inner = path.substr(i + 1, close - i - 1);
      i = close + 1;
      if (!cur->is_array()) return nullptr;
      const auto& arr = cur->as_array();
      if (inner.rfind("?(@.", 0) == 0) {
        // ?(@.key=="value") or ?(@.key=='value')
        size_t eq = inner.find("==");
        if (eq == std::string_view::npos) return nullptr;
        std::string key(inner.substr(4, eq - 4));
        std::string_view val = inner.substr(eq + 2);
        if (!val.empty() && val.back() == ')') val.remove_suffix(1);
        if (val.size() >= 2 && (val.front() == '"' || val.front() == '\''))
          val = val.substr(1, val.size() - 2);
        const json::value* found = nullptr;
        for (const auto& e : arr)
          if (e.get_string(key) == val) {
            found = &e;
            break;
          }
        cur = found;
      } else {
        char* end = nullptr;
        std::string idx(inner);
        long n = std::strtol(idx.c_str(), &end, 10);
        if (*end != '\0') return nullptr;
        if (n < 0) n += static_cast<long>(arr.size());
        cur = (n >= 0 && static_cast<size_t>(n) < arr.size()) ? &arr[static_cast<size_t>(n)]
                                                              : nullptr;
      }
    } else {
      return nullptr;
    }
  }
  return cur;
}

json::value column_definitions(const resource_type& t) {
  json::array defs;
  defs.push_back(json::object{{"name", "Name"},
                              {"type", "string"},
                              {"format", "name"},
                              {"description", "Name must be unique within a namespace."},
                              {"priority", 0}});
  if (t.columns.empty()) {
    defs.push_back(json::object{{"name", "Age"},
                                {"type", "date"},
                                {"format", ""},
                                {"description",
                                 "CreationTimestamp is a timestamp representing the server time "
                                 "when this object was created."},
                                {"priority", 0}});
  }
  for (const auto& c : t.columns)
    defs.push_back(json::object{{"name", c.name},
                                {"type", c.type},
                                {"format", ""},
                                {"description", c.description},
                                {"priority", c.priority}});
  return defs;
}

json::value table_row(const resource_type& t, const stored_object& so, bool include_object) {
  json::array cells;
  const auto* m = so.obj.at("metadata");
  cells.emplace_back(std::string(m->get_string("name")));
  if (t.columns.empty())
    cells.emplace_back(human_age(std::string(m->get_string("creationTimestamp"))));
  for (const auto& c : t.columns) {
    const json::value* v = eval_json_path(so.obj, c.json_path);
    if (v == nullptr) {
      cells.emplace_back(nullptr);
    } else if (c.type == "date" && v->is_string()) {
      cells.emplace_back(human_age(v->as_string()));
    } else if (v->is_object() || v->is_array()) {
      cells.emplace_back(json::dump(*v));
    } else {
      cells.push_back(*v);
    }
  }
  json::value object;
  if (include_object) {
    object = so.obj;
  } else {
    object = json::object{
        {"kind", "PartialObjectMetadata"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", *m}};
  }
  return json::object{{"cells", std::move(cells)}, {"object", std::move(object)}};
}

bool wants_table(const httplib::Request& req) {
  std::string accept = req.get_header_value("Accept");
  return accept.find("as=Table") != std::string::npos;
}

// The media type without parameters, lower-cased.
std::string media_type(const httplib::Request& req) {
  std::string ct = req.get_header_value("Content-Type");
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && ct.back() == ' ')
    ct.pop_back();
  std::transform(ct.begin(), ct.end(), ct.begin(), [](unsigned char c) { return std::tolower(c); });
  return ct;
}

// Finds the socket of this request's connection, so a watch can notice that its client went
// away while no events flow (httplib 0.11 only notices on a failed write).
int find_connection_fd(int local_port, int remote_port) {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int found = -1;
  while (dirent* ent = readdir(d)) {
    int fd = std::atoi(ent->d_name);
    if (fd <= 2) continue;
    sockaddr_storage local{}, peer{};
    socklen_t ll = sizeof local, pl = sizeof peer;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0) continue;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0) continue;
    auto port_of = [](const sockaddr_storage& s) {
      if (s.ss_family == AF_INET)
        return static_cast<int>(ntohs(reinterpret_cast<const sockaddr_in&>(s).sin_port));
      if (s.ss_family == AF_INET6)
        return static_cast<int>(ntohs(reinterpret_cast<const sockaddr_in6&>(s).sin6_port));
      return -1;
    };
    if (port_of(local) == local_port && port_of(peer) == remote_port) {
      found = fd;
      break;
    }
  }
  closedir(d);
  return found;
}

bool peer_closed(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, static_cast<short>(POLLRDHUP), 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

struct route {
  std::string group, version;
  std::string ns;
  std::string plural, name, subresource;
  bool watch_prefix = false;
};

}  // namespace

struct server::impl {
  store& st;
  server_options opts;
  httplib::Server http;
  std::thread thread;
  int port = 0;
  std::atomic<bool> running{false};
  std::shared_ptr<spdlog::logger> log = tidesync::log::get("apiserver");

  impl(store& s, server_options o) : st(s), opts(std::move(o)) {}

  // ---- discovery ---------------------------------------------------------------------------
  std::string api_versions() const {
    json::value v = json::object{
        {"kind", "APIVersions"},
        {"versions", json::array{"v1"}},
        {"serverAddressByClientCIDRs",
         json::array{json::object{{"clientCIDR", "0.0.0.0/0"},
                                  {"serverAddress", opts.host + ":" + std::to_string(port)}}}}};
    return json::dump(v);
  }

  json::value api_group(const std::string& group, const std::vector<resource_type>& types) const {
    json::array versions;
    std::vector<std::string> seen;
    for (const auto& t : types) {
      if (t.res.group != group) continue;
      if (std::find(seen.begin(), seen.end(), t.res.version) != seen.end()) continue;
      seen.push_back(t.res.version);
      versions.push_back(
          json::object{{"groupVersion", group + "/" + t.res.version}, {"version", t.res.version}});
    }
    if (versions.empty()) return nullptr;
    // Kubernetes prefers the highest version; ours are usually one.
    json::value preferred = versions.front();
    return json::object{{"name", group},
                        {"versions", std::move(versions)},
                        {"preferredVersion", std::move(preferred)}};
  }

  std::string api_group_list() const {
    auto types = st.types();
    json::array groups;
    std::vector<std::string> names;
    for (const auto& t : types)
      if (!t.res.group.empty() && std::find(names.begin(), names.end(), t.res.group) == names.end())
        names.push_back(t.res.group);
    for (const auto& g : names)
      groups.push_back(api_group(g, types));
    return json::dump(json::object{
        {"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", std::move(groups)}});
  }

  bool resource_list(const std::string& group, const std::string& version, std::string& out) const {
    json::array resources;
    for (const auto& t : st.types()) {
      if (t.res.group != group || t.res.version != version) continue;
      json::array verbs{"create", "delete", "deletecollection", "get",
                        "list",   "patch",  "update",           "watch"};
      json::array shorts, cats;
      for (const auto& s : t.short_names)
        shorts.emplace_back(s);
      for (const auto& c : t.categories)
        cats.emplace_back(c);
      json::object r{{"name", t.res.plural},
                     {"singularName", t.singular},
                     {"namespaced", t.res.namespaced},
                     {"kind", t.res.kind},
                     {"verbs", std::move(verbs)}};
      if (!shorts.empty()) r.set("shortNames", std::move(shorts));
      if (!cats.empty()) r.set("categories", std::move(cats));
      resources.emplace_back(std::move(r));
      if (t.status_subresource)
        resources.push_back(json::object{{"name", t.res.plural + "/status"},
                                         {"singularName", ""},
                                         {"namespaced", t.res.namespaced},
                                         {"kind", t.res.kind},
                                         {"verbs", json::array{"get", "patch", "update"}}});
    }
    if (resources.empty()) return false;
    std::string gv = group.empty() ? version : group + "/" + version;
    out = json::dump(json::object{{"kind", "APIResourceList"},
                                  {"apiVersion", "v1"},
                                  {"groupVersion", gv},
                                  {"resources", std::move(resources)}});
    return true;
  }

  // ---- OpenAPI v3 ---------------------------------------------------------------------------
  // Schemas only for custom resources (their CRD's openAPIV3Schema, so `kubectl explain`
  // works on them), and what kubectl reads to learn that the server validates fields itself
  // (each type's PATCH operation, tagged with its group/version/kind, takes the
  // `fieldValidation` query parameter). kubectl then skips client-side validation and
  // `kubectl apply` works without --validate=false. /openapi/v2 stays 404, which kubectl
  // accepts once v3 answered.
  std::string openapi_v3_root() const {
    json::object paths;
    for (const auto& t : st.types()) {
      std::string key = t.res.group.empty() ? "api/" + t.res.version
                                            : "apis/" + t.res.group + "/" + t.res.version;
      if (paths.find(key) != nullptr) continue;
      paths.set(key, json::object{{"serverRelativeURL",
                                   "/openapi/v3/" + key +
                                       "?hash=" + std::to_string(st.current_resource_version())}});
    }
    return json::dump(json::object{{"paths", std::move(paths)}});
  }

  bool openapi_v3_group_version(const std::string& gv_path, std::string& out) const {
    json::object paths;
    for (const auto& t : st.types()) {
      std::string key = t.res.group.empty() ? "api/" + t.res.version
                                            : "apis/" + t.res.group + "/" + t.res.version;
      if (key != gv_path) continue;
      std::string path = t.res.namespaced ? t.res.object_path("{namespace}", "{name}")
                                          : t.res.object_path("", "{name}");
      json::value gvk =
          json::object{{"group", t.res.group}, {"version", t.res.version}, {"kind", t.res.kind}};
      json::array params{
          json::object{
              {"name", "dryRun"}, {"in", "query"}, {"schema", json::object{{"type", "string"}}}},
          json::object{{"name", "fieldValidation"},
                       {"in", "query"},
                       {"schema", json::object{{"type", "string"}}}}};
      paths.set(path, json::object{{"patch", json::object{{"operationId", "patch" + t.res.kind},
                                                          {"parameters", std::move(params)},
                                                          {"x-kubernetes-group-version-kind", gvk},
                                                          {"responses", json::object{}}}}});
    }
    if (paths.empty()) return false;
    json::object schemas;
    for (const auto& t : st.types()) {
      std::string key = t.res.group.empty() ? "api/" + t.res.version
                                            : "apis/" + t.res.group + "/" + t.res.version;
      if (key != gv_path || t.crd_name.empty()) continue;
      json::value schema = crd_schema(t);
      if (!schema.is_null()) schemas.set(schema_name(t), std::move(schema));
    }
    out = json::dump(json::object{
        {"openapi", "3.0.0"},
        {"info", json::object{{"title", "Kubernetes (tidesync simulate)"}, {"version", "v1.32.0"}}},
        {"paths", std::move(paths)},
        {"components", json::object{{"schemas", std::move(schemas)}}}});
    return true;
  }

  // "io.tidesync.conformance.v1alpha1.BucketSync": the group reversed, as the real server
  // names a custom resource's schema.
  static std::string schema_name(const resource_type& t) {
    std::vector<std::string> parts;
    size_t pos = 0;
    while (pos <= t.res.group.size()) {
      size_t dot = t.res.group.find('.', pos);
      if (dot == std::string::npos) dot = t.res.group.size();
      parts.push_back(t.res.group.substr(pos, dot - pos));
      pos = dot + 1;
    }
    std::string out;
    for (auto it = parts.rbegin(); it != parts.rend(); ++it)
      out += *it + ".";
    return out + t.res.version + "." + t.res.kind;
  }

  // A custom resource's schema as the real server publishes it (enough for `kubectl
  // explain`): the CRD's openAPIV3Schema for this version, plus apiVersion, kind and metadata,
  // tagged with its group/version/kind. Null when the CRD declares no schema.
  json::value crd_schema(const resource_type& t) const {
    auto crds = st.find_type("apiextensions.k8s.io", "v1", "customresourcedefinitions");
    if (!crds) return nullptr;
    auto crd = st.get(*crds, "", t.crd_name);
    if (!crd) return nullptr;
    const auto* versions = (*crd)->obj.at_path({"spec", "versions"});
    if (versions == nullptr || !versions->is_array()) return nullptr;
    for (const auto& v : versions->as_array()) {
      if (v.get_string("name") != t.res.version) continue;
      const auto* s = v.at_path({"schema", "openAPIV3Schema"});
      if (s == nullptr || !s->is_object()) return nullptr;
      json::value schema = *s;
      auto& props = schema["properties"];
      if (!props.is_object()) props = json::object{};
      auto& p = props.as_object();
      if (p.find("apiVersion") == nullptr)
        p.set("apiVersion",
              json::object{{"type", "string"},
                           {"description",
                            "APIVersion defines the versioned schema of this representation of an "
                            "object. Servers should convert recognized schemas to the latest "
                            "internal value, and may reject unrecognized values."}});
      if (p.find("kind") == nullptr)
        p.set("kind", json::object{{"type", "string"},
                                   {"description",
                                    "Kind is a string value representing the REST resource this "
                                    "object represents. In CamelCase."}});
      if (p.find("metadata") == nullptr)
        p.set("metadata", json::object{{"type", "object"},
                                       {"description",
                                        "Standard object's metadata. More info: "
                                        "https://git.k8s.io/community/contributors/devel/"
                                        "sig-architecture/api-conventions.md#metadata"}});
      schema.as_object().set(
          "x-kubernetes-group-version-kind",
          json::array{json::object{
              {"group", t.res.group}, {"kind", t.res.kind}, {"version", t.res.version}}});
      return schema;
    }
    return nullptr;
  }

  // ---- routing -----------------------------------------------------------------------------
  // Parses /api/v1/... and /apis/g/v/... into a route; false when it is not a resource path.
  static bool parse_route(const std::vector<std::string>& seg, route& r, size_t& rest) {
    size_t i;
    if (seg.size() >= 2 && seg[0] == "api") {
      r.version = seg[1];
      i = 2;
    } else if (seg.size() >= 3 && seg[0] == "apis") {
      r.group = seg[1];
      r.version = seg[2];
      i = 3;
    } else {
      return false;
    }
    if (i < seg.size() && seg[i] == "watch") {
      r.watch_prefix = true;
      ++i;
    }
    if (i >= seg.size()) return false;
    if (seg[i] == "namespaces" && i + 2 < seg.size() && seg[i + 2] != "status" &&
        seg[i + 2] != "finalize") {
      r.ns = seg[i + 1];
      i += 2;
    }
    r.plural = seg[i++];
    if (i < seg.size()) r.name = seg[i++];
    if (i < seg.size()) r.subresource = seg[i++];
    rest = i;
    return true;
  }

  void handle(const httplib::Request& req, httplib::Response& res) {
    try {
      dispatch(req, res);
    } catch (const std::exception& e) {
      log->error("{} {}: internal error: {}", req.method, req.path, e.what());
      send_error(res, http_error(500, "InternalError", std::string("internal error: ") + e.what()));
    }
  }

  // The RBAC user of a request, "" for an administrator (no token of opts.token_users).
  std::string rbac_user(const httplib::Request& req) const {
    if (opts.token_users.empty()) return {};
    const std::string auth = req.get_header_value("Authorization");
    const std::string_view bearer = "Bearer ";
    if (auth.compare(0, bearer.size(), bearer) != 0) return {};
    auto it = opts.token_users.find(auth.substr(bearer.size()));
    return it == opts.token_users.end() ? std::string() : it->second;
  }

  void dispatch(const httplib::Request& req, httplib::Response& res) {
    const std::string& p = req.path;
    const auto seg = split_path(p);
    const std::string user = rbac_user(req);
    if (req.method == "GET") {
      if (p == "/healthz" || p == "/readyz" || p == "/livez") {
        res.set_content("ok", "text/plain");
        return;
      }
      if (p == "/version") {
        send_json(res, 200,
                  json::dump(json::object{{"major", "1"},
                                          {"minor", "32"},
                                          {"gitVersion", "v1.32.0-tidesync"},
                                          {"gitCommit", TIDESYNC_GIT_VERSION},
                                          {"gitTreeState", "clean"},
                                          {"buildDate", "1970-01-01T00:00:00Z"},
                                          {"goVersion", "none"},
                                          {"compiler", "gcc"},
                                          {"platform", "linux/amd64"}}));
        return;
      }
      if (p == "/openapi/v3" || p == "/openapi/v3/") return send_json(res, 200, openapi_v3_root());
      if (p.rfind("/openapi/v3/", 0) == 0) {
        std::string doc;
        if (openapi_v3_group_version(p.substr(12), doc)) return send_json(res, 200, doc);
        return send_error(
            res, http_error(404, "NotFound", "the server could not find the requested resource"));
      }
      if (p == "/api" || p == "/api/") {
        send_json(res, 200, api_versions());
        return;
      }
      if (p == "/apis" || p == "/apis/") {
        send_json(res, 200, api_group_list());
        return;
      }
      std::string body;
      if (seg.size() == 2 && seg[0] == "api") {
        if (resource_list("", seg[1], body)) return send_json(res, 200, body);
        return send_error(
            res, http_error(404, "NotFound", "the server could not find the requested resource"));
      }
      if (seg.size() == 2 && seg[0] == "apis") {
        auto g = api_group(seg[1], st.types());
        if (g.is_null())
          return send_error(
              res, http_error(404, "NotFound", "the server could not find the requested resource"));
        g.as_object().set("kind", "APIGroup");
        g.as_object().set("apiVersion", "v1");
        return send_json(res, 200, json::dump(g));
      }
      if (seg.size() == 3 && seg[0] == "apis") {
        if (resource_list(seg[1], seg[2], body)) return send_json(res, 200, body);
        return send_error(
            res, http_error(404, "NotFound", "the server could not find the requested resource"));
      }
    }
    if (req.method == "POST" && opts.debug_endpoints && user.empty()) {
      if (p == "/debug/tidesync/compact") {
        st.compact();
        return send_json(
            res, 200,
            R"({"kind":"Status","apiVersion":"v1","status":"Success","message":"history compacted"})");
      }
      if (p == "/debug/tidesync/close-watches") {
        st.close_watches();
        return send_json(
            res, 200,
            R"({"kind":"Status","apiVersion":"v1","status":"Success","message":"watches closed"})");
      }
    }
    route r;
    size_t rest = 0;
    if (!parse_route(seg, r, rest) || rest != seg.size())
      return send_error(
          res, http_error(404, "NotFound", "the server could not find the requested resource"));
    auto type = st.find_type(r.group, r.version, r.plural);
    if (!type) {
      std::string gv = r.group.empty() ? r.version : r.group + "/" + r.version;
      return send_error(
          res, http_error(404, "NotFound",
                          "the server could not find the requested resource (no resource \"" +
                              r.plural + "\" in " + gv + ")"));
    }
    if (!type->res.namespaced && !r.ns.empty())
      return send_error(res, http_error(404, "NotFound",
                                        "the server could not find the requested resource (" +
                                            r.plural + " is not namespaced)"));
    if (!r.subresource.empty() && (r.subresource != "status" || !type->status_subresource))
      return send_error(
          res, http_error(404, "NotFound",
                          "the server could not find the requested resource (no subresource \"" +
                              r.subresource + "\" of " + r.plural + ")"));
    bool status = r.subresource == "status";
    const auto& t = *type;
    const std::string& m = req.method;
    bool watch = r.watch_prefix || req.get_param_value("watch") == "true" ||
                 req.get_param_value("watch") == "1";
    if (!user.empty()) {
      const request_attributes a{
          rbac_verb(m, !r.name.empty(), watch), r.group, r.plural, r.subresource, r.ns, r.name};
      if (!authorize(st, user, a)) {
        std::string why = forbidden_message(user, a);
        log->warn("RBAC denied: {}", why);
        error e = http_error(403, "Forbidden", std::move(why));
        e.subject = error_subject{a.resource, a.group, a.name};
        return send_error(res, e);
      }
    }
    if (m == "GET" && watch) return do_watch(req, res, t, r);
    if (r.watch_prefix)
      return send_error(res,
                        http_error(405, "MethodNotAllowed", "only GET is allowed on watch paths"));
    if (r.name.empty()) {
      if (m == "GET") return do_list(req, res, t, r);
      if (m == "POST") return do_create(req, res, t, r);
      if (m == "DELETE") return do_delete_collection(req, res, t, r);
    } else {
      if (m == "GET") return do_get(req, res, t, r);
      if (m == "PUT") return do_update(req, res, t, r, status);
      if (m == "PATCH") return do_patch(req, res, t, r, status);
      if (m == "DELETE" && !status) return do_delete(req, res, t, r);
    }
    send_error(res, http_error(405, "MethodNotAllowed",
                               "the server does not allow this method on the requested resource"));
  }

  // ---- verbs -------------------------------------------------------------------------------
  std::string table(const resource_type& t, const std::vector<object_ptr>& items,
                    const std::string& rv, const std::string& cont, bool include_object) const {
    json::array rows;
    for (const auto& so : items)
      rows.push_back(table_row(t, *so, include_object));
    json::object meta{{"resourceVersion", rv}};
    if (!cont.empty()) meta.set("continue", cont);
    return json::dump(json::object{{"kind", "Table"},
                                   {"apiVersion", "meta.k8s.io/v1"},
                                   {"metadata", std::move(meta)},
                                   {"columnDefinitions", column_definitions(t)},
                                   {"rows", std::move(rows)}});
  }

  void do_get(const httplib::Request& req, httplib::Response& res, const resource_type& t,
              const route& r) {
    auto got = st.get(t, r.ns, r.name);
    if (!got) return send_error(res, got.error());
    if (wants_table(req))
      return send_json(res, 200,
                       table(t, {*got}, std::to_string((*got)->rv), "",
                             req.get_param_value("includeObject") == "Object"));
    send_json(res, 200, (*got)->text);
  }

  void do_list(const httplib::Request& req, httplib::Response& res, const resource_type& t,
               const route& r) {
    list_options o;
    o.label_selector = req.get_param_value("labelSelector");
    o.field_selector = req.get_param_value("fieldSelector");
    o.continue_token = req.get_param_value("continue");
    if (req.has_param("limit"))
      o.limit = std::strtoll(req.get_param_value("limit").c_str(), nullptr, 10);
    auto l = st.list(t, r.ns, o);
    if (!l) return send_error(res, l.error());
    if (wants_table(req))
      return send_json(res, 200,
                       table(t, l->items, l->resource_version, l->continue_token,
                             req.get_param_value("includeObject") == "Object"));
    std::string out;
    size_t total = 0;
    for (const auto& so : l->items)
      total += so->text.size() + 1;
    out.reserve(total + 256);
    out += "{\"kind\":\"" + t.res.kind + "List\",\"apiVersion\":\"" + t.res.api_version() +
           "\",\"metadata\":{\"resourceVersion\":\"" + l->resource_version + "\"";
    if (!l->continue_token.empty()) {
      out += ",\"continue\":\"" + l->continue_token + "\"";
      if (o.label_selector.empty() && o.field_selector.empty())
        out += ",\"remainingItemCount\":" + std::to_string(l->remaining);
    }
    out += "},\"items\":[";
    for (size_t i = 0; i < l->items.size(); ++i) {
      if (i != 0) out += ',';
      out += l->items[i]->text;
    }
    out += "]}";
    send_json(res, 200, out);
  }

  bool read_body(const httplib::Request& req, httplib::Response& res, const resource_type& t,
                 json::value& out) {
    auto doc = json::parse(req.body);
    if (!doc) {
      send_error(res, http_error(400, "BadRequest",
                                 "the object provided is unrecognized (must be of type " +
                                     t.res.kind + "): couldn't parse the request body as JSON: " +
                                     doc.error().message));
      return false;
    }
    out = std::move(*doc);
    return true;
  }

  bool check_json_content_type(const httplib::Request& req, httplib::Response& res) {
    std::string mt = media_type(req);
    if (mt.empty() || mt == "application/json" || mt == "*/*") return true;
    send_error(res, http_error(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format (" + mt +
                                   ") - accepted media types include: application/json"));
    return false;
  }

  void do_create(const httplib::Request& req, httplib::Response& res, const resource_type& t,
                 const route& r) {
    // kubectl's typed commands (create configmap/secret/namespace) send protobuf.
    const bool protobuf = media_type(req) == "application/vnd.kubernetes.protobuf";
    if (!protobuf && !check_json_content_type(req, res)) return;
    auto mode = dry_run_mode(query_values(req, "dryRun"), "CreateOptions");
    if (!mode) return send_error(res, mode.error());
    json::value body;
    if (protobuf) {
      auto decoded = decode_k8s_protobuf(req.body);
      if (!decoded) return send_error(res, decoded.error());
      body = std::move(*decoded);
    } else if (!read_body(req, res, t, body)) {
      return;
    }
    if (t.res.namespaced && r.ns.empty())
      return send_error(res, http_error(405, "MethodNotAllowed",
                                        "create needs a namespace: POST to " +
                                            t.res.collection_path("NAMESPACE")));
    // Mutating admission webhooks, as kube-apiserver calls them (admission.hpp).
    auto admitted = admit_create(st, t, r.ns, std::move(body), *mode);
    if (!admitted) return send_error(res, admitted.error());
    auto created = st.create(t, r.ns, std::move(*admitted), *mode);
    if (!created) return send_error(res, created.error());
    send_json(res, 201, (*created)->text);
  }

  void do_update(const httplib::Request& req, httplib::Response& res, const resource_type& t,
                 const route& r, bool status) {
    if (!check_json_content_type(req, res)) return;
    auto mode = dry_run_mode(query_values(req, "dryRun"), "UpdateOptions");
    if (!mode) return send_error(res, mode.error());
    json::value body;
    if (!read_body(req, res, t, body)) return;
    auto updated = st.update(t, r.ns, r.name, std::move(body), status, *mode);
    if (!updated) return send_error(res, updated.error());
    send_json(res, 200, (*updated)->text);
  }

  void do_patch(const httplib::Request& req, httplib::Response& res, const resource_type& t,
                const route& r, bool status) {
    std::string mt = media_type(req);
    store::patch_type pt;
    if (mt == "application/merge-patch+json") {
      pt = store::patch_type::merge;
    } else if (mt == "application/json-patch+json") {
      pt = store::patch_type::json;
    } else if (mt == "application/strategic-merge-patch+json") {
      if (!t.crd_name.empty())
        return send_error(res, http_error(415, "UnsupportedMediaType",
                                          "strategic merge patch is not supported for custom "
                                          "resources: use application/merge-patch+json"));
      pt = store::patch_type::strategic;
    } else {
      return send_error(
          res,
          http_error(415, "UnsupportedMediaType",
                     "the body of the request was in an unknown format (" + mt +
                         ") - accepted media types include: application/json-patch+json, "
                         "application/merge-patch+json, application/strategic-merge-patch+json"));
    }
    auto mode = dry_run_mode(query_values(req, "dryRun"), "PatchOptions");
    if (!mode) return send_error(res, mode.error());
    json::value body;
    if (!read_body(req, res, t, body)) return;
    auto patched = st.patch(t, r.ns, r.name, pt, body, status, *mode);
    if (!patched) return send_error(res, patched.error());
    send_json(res, 200, (*patched)->text);
  }

  bool delete_options_from(const httplib::Request& req, httplib::Response& res, delete_options& d) {
    d.propagation_policy = req.get_param_value("propagationPolicy");
    if (req.has_param("gracePeriodSeconds")) {
      const std::string g = req.get_param_value("gracePeriodSeconds");
      char* end = nullptr;
      long long v = std::strtoll(g.c_str(), &end, 10);
      if (g.empty() || *end != '\0') {
        send_error(
            res, http_error(400, "BadRequest", "gracePeriodSeconds: invalid value \"" + g + "\""));
        return false;
      }
      d.grace_period_seconds = v;
    }
    // As kube-apiserver: DeleteOptions come from the body when there is one, and then the
    // query's dryRun is not read (`?dryRun=All` with a body deletes for real there too).
    std::vector<std::string> dry_run = query_values(req, "dryRun");
    if (!req.body.empty()) {
      auto doc = json::parse(req.body);
      if (!doc || !doc->is_object()) {
        send_error(res,
                   http_error(400, "BadRequest", "the DeleteOptions body is not a JSON object"));
        return false;
      }
      if (auto pp = doc->get_string("propagationPolicy"); !pp.empty())
        d.propagation_policy = std::string(pp);
      if (const auto* pre = doc->at("preconditions")) {
        d.precondition_uid = std::string(pre->get_string("uid"));
        d.precondition_rv = std::string(pre->get_string("resourceVersion"));
      }
      if (const auto* g = doc->at("gracePeriodSeconds"); g != nullptr && !g->is_null()) {
        if (!g->is_int()) {
          send_error(res, http_error(400, "BadRequest",
                                     "DeleteOptions.gracePeriodSeconds must be an integer"));
          return false;
        }
        d.grace_period_seconds = g->as_int();
      }
      if (doc->get_bool("orphanDependents") && d.propagation_policy.empty())
        d.propagation_policy = "Orphan";
      dry_run.clear();
      if (const auto* dr = doc->at("dryRun"); dr != nullptr && !dr->is_null()) {
        bool strings =
            dr->is_array() && std::all_of(dr->as_array().begin(), dr->as_array().end(),
                                          [](const json::value& v) { return v.is_string(); });
        if (!strings) {
          send_error(
              res, http_error(400, "BadRequest", "DeleteOptions.dryRun must be a list of strings"));
          return false;
        }
        for (const auto& v : dr->as_array())
          dry_run.push_back(v.as_string());
      }
    }
    if (!d.propagation_policy.empty() && d.propagation_policy != "Orphan" &&
        d.propagation_policy != "Background" && d.propagation_policy != "Foreground") {
      send_error(
          res, http_error(422, "Invalid",
                          "propagationPolicy: Unsupported value: \"" + d.propagation_policy +
                              "\": supported values: \"Background\", \"Foreground\", \"Orphan\""));
      return false;
    }
    auto mode = dry_run_mode(dry_run, "DeleteOptions");
    if (!mode) {
      send_error(res, mode.error());
      return false;
    }
    d.mode = *mode;
    return true;
  }

  void do_delete(const httplib::Request& req, httplib::Response& res, const resource_type& t,
                 const route& r) {
    delete_options d;
    if (!delete_options_from(req, res, d)) return;
    auto removed = st.remove(t, r.ns, r.name, d);
    if (!removed) return send_error(res, removed.error());
    // As kube-apiserver: an object that is gone is answered with a Success Status naming it;
    // one that stays (finalizers; a namespace, which waits for its contents) with the object.
    bool is_namespace = t.res.group.empty() && t.res.plural == "namespaces";
    if (!removed->deleted || is_namespace) return send_json(res, 200, removed->object->text);
    json::object details{{"name", r.name}};
    if (!t.res.group.empty()) details.set("group", t.res.group);
    details.set("kind", t.res.plural);
    details.set("uid", removed->object->uid);
    send_json(res, 200,
              json::dump(json::object{{"kind", "Status"},
                                      {"apiVersion", "v1"},
                                      {"metadata", json::object{}},
                                      {"status", "Success"},
                                      {"details", std::move(details)}}));
  }

  void do_delete_collection(const httplib::Request& req, httplib::Response& res,
                            const resource_type& t, const route& r) {
    delete_options d;
    if (!delete_options_from(req, res, d)) return;
    list_options o;
    o.label_selector = req.get_param_value("labelSelector");
    o.field_selector = req.get_param_value("fieldSelector");
    auto l = st.remove_collection(t, r.ns, o, d);
    if (!l) return send_error(res, l.error());
    std::string out = "{\"kind\":\"" + t.res.kind + "List\",\"apiVersion\":\"" +
                      t.res.api_version() + "\",\"metadata\":{\"resourceVersion\":\"" +
                      l->resource_version + "\"},\"items\":[";
    for (size_t i = 0; i < l->items.size(); ++i) {
      if (i != 0) out += ',';
      out += l->items[i]->text;
    }
    out += "]}";
    send_json(res, 200, out);
  }

  void do_watch(const httplib::Request& req, httplib::Response& res, const resource_type& t,
                const route& r) {
    watch_options o;
    o.resource_version = req.get_param_value("resourceVersion");
    o.label_selector = req.get_param_value("labelSelector");
    o.field_selector = req.get_param_value("fieldSelector");
    o.allow_bookmarks = req.get_param_value("allowWatchBookmarks") == "true";
    if (!r.name.empty()) {
      // /watch/.../NAME: a watch of one object.
      std::string f = "metadata.name=" + r.name;
      o.field_selector = o.field_selector.empty() ? f : o.field_selector + "," + f;
    }
    if (wants_table(req)) {
      bool include = req.get_param_value("includeObject") == "Object";
      o.render = [t, include](const stored_object& so) {
        json::array rows{table_row(t, so, include)};
        return json::dump(
            json::object{{"kind", "Table"},
                         {"apiVersion", "meta.k8s.io/v1"},
                         {"metadata", json::object{{"resourceVersion", std::to_string(so.rv)}}},
                         {"columnDefinitions", column_definitions(t)},
                         {"rows", std::move(rows)}});
      };
    }
    auto w = st.watch(t, r.ns, o);
    if (!w) return send_error(res, w.error());
    std::shared_ptr<watch_stream> stream(std::move(*w));
    auto timeout = opts.max_watch_timeout;
    if (req.has_param("timeoutSeconds")) {
      long long s = std::strtoll(req.get_param_value("timeoutSeconds").c_str(), nullptr, 10);
      if (s > 0) timeout = std::min<std::chrono::seconds>(timeout, std::chrono::seconds(s));
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    // kube-apiserver (v1.20's watch cache) sends a bookmark 2 s before it ends a watch, so a
    // client resumes from the newest resourceVersion; periodic ones come from the store.
    auto bookmark_at = deadline - std::chrono::seconds(2);
    auto bookmark_due = std::make_shared<bool>(o.allow_bookmarks);
    int fd = find_connection_fd(req.local_port, req.remote_port);
    res.status = 200;
    res.set_header("Cache-Control", "no-cache, private");
    // The media type parameter matters: httplib gzips "application/json" for clients that
    // accept gzip (kubectl does), and a gzip stream holds events back until it is flushed.
    res.set_chunked_content_provider(
        "application/json;stream=watch",
        [stream, deadline, bookmark_at, bookmark_due, fd](size_t, httplib::DataSink& sink) {
          auto now = std::chrono::steady_clock::now();
          if (now >= deadline) {
            sink.done();
            return true;
          }
          if (*bookmark_due && now >= bookmark_at && !stream->closed()) {
            *bookmark_due = false;
            std::string line = stream->bookmark();
            if (!sink.write(line.data(), line.size())) return false;
            return true;
          }
          auto wait = std::min<std::chrono::steady_clock::duration>(deadline - now,
                                                                    std::chrono::milliseconds(500));
          if (*bookmark_due && bookmark_at > now)
            wait = std::min<std::chrono::steady_clock::duration>(wait, bookmark_at - now);
          auto lines = stream->next(std::chrono::duration_cast<std::chrono::milliseconds>(wait));
          if (lines.size() == 1) {
            if (!sink.write(lines[0].data(), lines[0].size())) return false;
          } else if (!lines.empty()) {
            // One chunk for a burst of events: one syscall instead of one per event.
            std::string batch;
            size_t total = 0;
            for (const auto& line : lines)
              total += line.size();
            batch.reserve(total);
            for (const auto& line : lines)
              batch += line;
            if (!sink.write(batch.data(), batch.size())) return false;
          }
          if (lines.empty() && stream->closed()) {
            sink.done();
            return true;
          }
          if (lines.empty() && peer_closed(fd)) return false;  // the client left: free the thread
          return true;
        });
  }
};

server::server(store& s, server_options options)
    : impl_(std::make_unique<impl>(s, std::move(options))) {
  auto& http = impl_->http;
  size_t threads = impl_->opts.threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_keep_alive_max_count(100000);
  http.set_tcp_nodelay(true);  // responses go out as header + body writes: no Nagle delay
  http.set_keep_alive_timeout(3);
  http.set_read_timeout(30);
  http.set_write_timeout(30);
  http.set_payload_max_length(64u << 20);
  auto h = [this](const httplib::Request& req, httplib::Response& res) { impl_->handle(req, res); };
  http.Get(".*", h);
  http.Post(".*", h);
  http.Put(".*", h);
  http.Patch(".*", h);
  http.Delete(".*", h);
  http.Options(".*", [](const httplib::Request&, httplib::Response& res) {
    send_error(res, http_error(405, "MethodNotAllowed", "OPTIONS is not supported"));
  });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    if (!impl_->log->should_log(spdlog::level::debug)) return;
    impl_->log->debug("{} {}{}{} -> {}", req.method, req.path, req.params.empty() ? "" : "?",
                      req.params.empty() ? "" : httplib::detail::params_to_query_str(req.params),
                      res.status);
  });
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_error(res, http_error(500, "InternalError", "internal error: " + what));
      });
}

server::~server() {
  stop();
}

expected<int> server::start() {
  auto& i = *impl_;
  if (i.running) return i.port;
  int port = i.opts.port == 0 ? i.http.bind_to_any_port(i.opts.host)
                              : (i.http.bind_to_port(i.opts.host, i.opts.port) ? i.opts.port : -1);
  if (port <= 0)
    return make_error(errc::unavailable, "cannot listen on " + i.opts.host + ":" +
                                             std::to_string(i.opts.port) + " (port in use?)");
  i.port = port;
  i.running = true;
  i.thread = std::thread([&i] { i.http.listen_after_bind(); });
  i.log->info("API server listening on http://{}:{}", i.opts.host, port);
  return port;
}

void server::stop() {
  auto& i = *impl_;
  if (!i.running.exchange(false)) return;
  i.st.close_watches();
  i.http.stop();
  if (i.thread.joinable()) i.thread.join();
}

int server::port() const {
  return impl_->port;
}

}  // namespace tidesync::apiserver
