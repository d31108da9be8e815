// The config API over cpp-httplib (see server.hpp).
#include "runtime/configapi/server.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <random>
#include <string_view>
#include <system_error>
#include <utility>

#include "runtime/json/value.hpp"
#include "runtime/log.hpp"
#include "runtime/metrics/http_server.hpp"

namespace tidesync::configapi {
namespace {

namespace fs = std::filesystem;

void send_json(httplib::Response& res, int status, json::value body) {
  res.status = status;
  res.set_content(json::dump(body) + "\n", "application/json");
}

void send_error(httplib::Response& res, int status, std::string_view reason, std::string message) {
  send_json(
      res, status,
      json::value(json::object{{"reason", std::string(reason)}, {"message", std::move(message)}}));
}

// An error from the backend as an HTTP answer.
void send_backend_error(httplib::Response& res, const error& e) {
  switch (e.code) {
    case errc::not_found:
      return send_error(res, 404, "NotFound", e.message);
    case errc::invalid:
    case errc::invalid_argument:
    case errc::config_error:
      return send_error(res, 422, "Invalid", e.message);
    case errc::forbidden:
      return send_error(res, 403, "Forbidden", e.message);
    case errc::parse_error:
      // The store holds something tidesync cannot read (a latest.json another tool wrote): no
      // retry repairs it, and a publish must not overwrite a pointer it cannot compare with.
      return send_error(res, 500, "StoreUnreadable", e.message);
    default:
      return send_error(res, 503, "Unavailable", e.message + "; try again");
  }
}

std::string etag(const std::string& revision) {
  return "\"" + revision + "\"";
}

// The revision in an If-None-Match value ("\"rev\"", "W/\"rev\"" or bare), nullopt when absent.
std::optional<std::string> if_none_match(const httplib::Request& req) {
  if (!req.has_header("If-None-Match")) return std::nullopt;
  std::string v = req.get_header_value("If-None-Match");
  if (v.rfind("W/", 0) == 0) v = v.substr(2);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

std::string random_suffix() {
  static std::atomic<uint64_t> counter{0};
  std::random_device rd;
  return std::to_string(rd()) + "-" + std::to_string(++counter);
}

}  // namespace

std::string bearer_token(std::string_view authorization) {
  constexpr std::string_view scheme = "Bearer ";
  if (authorization.size() <= scheme.size()) return {};
  for (size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(scheme[i])))
      return {};
  auto token = authorization.substr(scheme.size());
  while (!token.empty() && token.front() == ' ')
    token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\r'))
    token.remove_suffix(1);
  return std::string(token);
}

bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

struct server::impl {
  backend* be = nullptr;
  server_options opts;
  metrics::http_server http;
  bool own_scratch = false;
  std::atomic<int> waiting{0};
  std::atomic<bool> stopping{false};
  std::shared_ptr<spdlog::logger> log = log::get("configapi");

  bool authorized(const httplib::Request& req, httplib::Response& res) {
    std::string want = opts.token ? opts.token() : std::string{};
    std::string got = bearer_token(req.get_header_value("Authorization"));
    if (!want.empty() && !got.empty() && same_secret(got, want)) return true;
    res.set_header("WWW-Authenticate", "Bearer realm=\"tidesync-config\"");
    res.set_header("Connection", "close");
    send_error(res, 401, "Unauthorized",
               got.empty() ? "this API needs \"Authorization: Bearer <token>\" (the key token of "
                             "the Secret tidesync-config-api in the controller's namespace)"
                           : "the bearer token is not the current one (Secret "
                             "tidesync-config-api, key token)");
    return false;
  }

  static config_ref ref_of(const httplib::Request& req) {
    return {req.matches[1].str(), req.matches[2].str()};
  }

  void get_latest(const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    auto ref = ref_of(req);
    auto known = if_none_match(req);
    std::chrono::milliseconds wait{0};
    if (req.has_param("wait")) {
      const auto& text = req.get_param_value("wait");
      if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != text.npos)
        return send_error(res, 400, "BadRequest",
                          "wait must be whole seconds, e.g. ?wait=30 (at most " +
                              std::to_string(opts.max_wait.count()) + ")");
      wait = std::min<std::chrono::milliseconds>(std::chrono::seconds(std::stoll(text)),
                                                 opts.max_wait);
    }
    bool counted = false;
    if (known && wait.count() > 0) {
      if (++waiting > opts.max_waiting || stopping)
        wait = std::chrono::milliseconds(0);  // answer at once: publishes must find a worker
      counted = true;
    }
    auto l = be->latest(ref, known, wait);
    if (counted) --waiting;
    if (!l) return send_backend_error(res, l.error());
    if (!*l)
      return send_error(res, 404, "NotPublished",
                        "nothing is published yet for SharedConfig " + ref.ns + "/" + ref.name +
                            "; publish with `tidesync config publish`");
    res.set_header("ETag", etag((*l)->revision));
    res.set_header("Cache-Control", "no-cache");
    if (known && *known == (*l)->revision) {
      res.status = 304;
      return;
    }
    res.status = 200;
    res.set_content(archive::render_latest(**l), "application/json");
  }

  void put_latest(const httplib::Request& req, httplib::Response& res,
                  const httplib::ContentReader& reader) {
    if (!authorized(req, res)) return;
    auto ref = ref_of(req);
    std::string expected = req.get_param_value("expectedRevision");
    if (!expected.empty() && !archive::valid_revision(expected))
      return send_error(res, 400, "BadRequest",
                        "expectedRevision \"" + expected +
                            "\" is not a revision; pass the revision you last read (empty when "
                            "nothing is published yet)");
    auto max = be->max_bundle_bytes(ref);
    if (!max) return send_backend_error(res, max.error());
    auto too_big = [&] {
      res.set_header("Connection", "close");
      send_error(res, 413, "TooLarge",
                 "the bundle is larger than " + std::to_string(*max) +
                     " bytes, the SharedConfig's spec.maxBundleBytes: make it smaller or raise "
                     "the limit");
    };
    if (req.has_header("Content-Length")) {
      auto len = std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10);
      if (len > *max) return too_big();
    }
    // Spool to a file, never past the limit.
    auto name = "upload-" + random_suffix();
    fs::path file = opts.scratch_dir / (name + ".tar.zst");
    fs::path check = opts.scratch_dir / (name + ".check");
    struct cleanup {
      fs::path a, b;
      ~cleanup() {
        std::error_code ec;
        fs::remove(a, ec);
        fs::remove_all(b, ec);
      }
    } gone{file, check};
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
      return send_error(res, 503, "Unavailable",
                        "cannot spool the upload: " + std::string(std::strerror(errno)));
    uint64_t got = 0;
    bool over = false, write_failed = false;
    bool ok = reader([&](const char* data, size_t n) {
      got += n;
      if (got > *max) {
        over = true;
        return false;
      }
      while (n > 0) {
        auto w = ::write(fd, data, n);
        if (w < 0) {
          if (errno == EINTR) continue;
          write_failed = true;
          return false;
        }
        data += w;
        n -= static_cast<size_t>(w);
      }
      return true;
    });
    ::close(fd);
    if (over) return too_big();
    if (write_failed) return send_error(res, 503, "Unavailable", "cannot spool the upload");
    if (!ok) return send_error(res, 400, "BadRequest", "the upload was cut off");
    if (got == 0)
      return send_error(res, 400, "BadRequest",
                        "the body is empty: send the bundle (a tar.zst, as `tidesync config "
                        "publish` packs it)");
    // An agent must be able to extract it: check with the same rules, then throw it away.
    archive::unpack_limits limits;
    limits.max_entries = opts.max_entries;
    limits.max_bytes = opts.max_unpacked_bytes;
    limits.fsync = false;
    auto checked = archive::unpack_bundle(file, check, limits);
    if (!checked)
      return send_error(
          res, 400, "InvalidBundle",
          "the body is not a bundle the agents can extract: " + checked.error().message);
    std::error_code ec;
    fs::remove_all(check, ec);
    auto out = be->publish(ref, expected, file, checked->sha256);
    if (!out) return send_backend_error(res, out.error());
    if (out->conflict) {
      json::value cur =
          out->latest.revision.empty() ? json::value() : json::value(out->latest.revision);
      return send_json(
          res, 409,
          json::value(json::object{
              {"reason", "Conflict"},
              {"message", "expectedRevision \"" + expected + "\" is not the current revision" +
                              (out->latest.revision.empty()
                                   ? std::string(" (nothing is published yet: send it empty)")
                                   : " \"" + out->latest.revision + "\"") +
                              ": read the latest, merge, and publish against it"},
              {"currentRevision", std::move(cur)}}));
    }
    log->info("published SharedConfig {}/{} revision {} ({} bytes, {})", ref.ns, ref.name,
              out->latest.revision, got, out->latest.checksum);
    res.set_header("ETag", etag(out->latest.revision));
    res.status = 201;
    res.set_content(archive::render_latest(out->latest), "application/json");
  }
};

server::server(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

server::~server() {
  stop();
}

expected<std::unique_ptr<server>> server::start(backend& b, server_options options) {
  auto addr = metrics::parse_listen_address(options.address);
  if (!addr) return addr.error();
  if (!addr->enabled)
    return make_error(errc::invalid_argument, "the config API needs an address (HOST:PORT)");
  auto i = std::make_unique<impl>();
  i->be = &b;
  i->opts = std::move(options);
  std::error_code ec;
  if (i->opts.scratch_dir.empty()) {
    i->opts.scratch_dir = fs::temp_directory_path(ec) / ("tidesync-configapi-" + random_suffix());
    i->own_scratch = true;
  }
  fs::create_directories(i->opts.scratch_dir, ec);
  if (ec)
    return make_error(errc::io_error, "cannot create the config API's scratch folder " +
                                          i->opts.scratch_dir.string() + ": " + ec.message());
  auto& http = i->http.http;
  int threads = std::max(4, i->opts.threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_keep_alive_max_count(100);
  http.set_keep_alive_timeout(5);
  http.set_read_timeout(60);
  http.set_write_timeout(60);
  http.set_payload_max_length(std::numeric_limits<size_t>::max());  // the handlers cap bodies
  auto* self = i.get();
  const std::string path =
      R"(/v1/configs/([a-z0-9][-a-z0-9.]{0,252})/([a-z0-9][-a-z0-9.]{0,252})/latest)";
  http.Get(path, [self](const httplib::Request& req, httplib::Response& res) {
    self->get_latest(req, res);
  });
  http.Put(path,
           [self](const httplib::Request& req, httplib::Response& res,
                  const httplib::ContentReader& reader) { self->put_latest(req, res, reader); });
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404 && res.body.empty())
      send_error(res, 404, "NotFound",
                 "no such route: the API serves /v1/configs/{namespace}/{name}/latest");
  });
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, const std::exception_ptr& ep) {
        std::string what = "unknown error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_error(res, 500, "InternalError", "internal error: " + what);
      });
  auto port = i->http.start(*addr, i->opts.address);
  if (!port) return port.error();
  i->log->info("serving the config API on {}", metrics::host_port(addr->host, *port));
  return std::unique_ptr<server>(new server(std::move(i)));
}

uint16_t server::port() const {
  return impl_->http.port();
}

void server::stop() {
  if (!impl_) return;
  impl_->stopping = true;
  impl_->be->cancel_waits();
  impl_->http.stop();
  if (impl_->own_scratch) {
    std::error_code ec;
    fs::remove_all(impl_->opts.scratch_dir, ec);
    impl_->own_scratch = false;
  }
}

}  // namespace tidesync::configapi
