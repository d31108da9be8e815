// The config API client (see client.hpp).
#include "runtime/configapi/client.hpp"

#include <cstdlib>
#include <fstream>
#include <future>
#include <utility>

#include "runtime/json/value.hpp"

namespace tidesync::configapi {
namespace {

constexpr const char* k_token_hint =
    "the key token of Secret tidesync-config-api in the controller's namespace";

std::string trimmed(std::string s) {
  while (!s.empty() &&
         (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t'))
    s.pop_back();
  size_t start = 0;
  while (start < s.size() && (s[start] == ' ' || s[start] == '\t'))
    ++start;
  return s.substr(start);
}

std::string unquoted(std::string v) {
  if (v.rfind("W/", 0) == 0) v = v.substr(2);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

}  // namespace

expected<std::string> read_token(const std::string& token_file) {
  std::string token;
  if (!token_file.empty()) {
    std::ifstream f(token_file);
    if (!f)
      return make_error(errc::config_error,
                        "cannot read the token file " + token_file + " (" + k_token_hint + ")");
    std::getline(f, token);
    token = trimmed(std::move(token));
    if (token.empty())
      return make_error(errc::config_error,
                        "the token file " + token_file + " is empty (want " + k_token_hint + ")");
    return token;
  }
  if (const char* t = std::getenv(k_token_env)) token = trimmed(t);
  if (token.empty())
    return make_error(errc::config_error, std::string("no token: pass --token-file or set ") +
                                              k_token_env + " (" + k_token_hint + ")");
  return token;
}

std::optional<config_ref> parse_config_ref(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size() ||
      text.find('/', slash + 1) != std::string_view::npos)
    return std::nullopt;
  return config_ref{std::string(text.substr(0, slash)), std::string(text.substr(slash + 1))};
}

std::string answer::message() const {
  auto v = json::parse(body);
  if (v && v->is_object() && !v->get_string("message").empty())
    return std::string(v->get_string("message"));
  return trimmed(body);
}

std::string answer::reason() const {
  auto v = json::parse(body);
  if (v && v->is_object()) return std::string(v->get_string("reason"));
  return {};
}

error answer_error(const answer& a, const std::string& where) {
  error e;
  e.code = errc_from_http_status(static_cast<int>(a.status));
  e.http_status = static_cast<int>(a.status);
  e.reason = a.reason();
  std::string text = std::to_string(a.status);
  if (!e.reason.empty()) text += " " + e.reason;
  text += " from " + where + ": " + a.message();
  if (a.status == 401 || a.status == 403)
    text += std::string(" (check --token-file or ") + k_token_env + ": it must hold " +
            k_token_hint + ")";
  e.message = std::move(text);
  return e;
}

client::client(http::loop& loop, client_options options) : loop_(loop), opts_(std::move(options)) {
  std::string api = opts_.api;
  while (!api.empty() && api.back() == '/')
    api.pop_back();
  opts_.api = api;
  url_ = api + "/v1/configs/" + opts_.config.ns + "/" + opts_.config.name + "/latest";
}

std::string client::where() const {
  return "the config API " + opts_.api + " (SharedConfig " + opts_.config.ns + "/" +
         opts_.config.name + ")";
}

void client::cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  if (in_flight_) loop_.cancel(*in_flight_);
}

expected<answer> client::call(http::request r) {
  auto token = read_token(opts_.token_file);
  if (!token) return token.error();
  r.headers.emplace_back("Authorization", "Bearer " + *token);
  std::promise<expected<answer>> done;
  auto result = done.get_future();
  r.on_done = [&done](expected<http::response> res) {
    if (!res) {
      done.set_value(res.error());
      return;
    }
    answer a;
    a.status = res->status;
    a.body = std::move(res->body);
    if (const std::string* tag = res->header("etag")) a.etag = unquoted(*tag);
    done.set_value(std::move(a));
  };
  {
    std::lock_guard lock(mu_);
    if (cancelled_) return make_error(errc::cancelled, "cancelled");
    in_flight_ = loop_.submit(std::move(r));
  }
  auto a = result.get();
  {
    std::lock_guard lock(mu_);
    in_flight_.reset();
  }
  if (!a && a.error().code != errc::cancelled) {
    error e = a.error();
    e.message = where() + ": " + e.message;
    return e;
  }
  return a;
}

expected<latest_result> client::get_latest(const std::optional<std::string>& known,
                                           std::chrono::seconds wait) {
  http::request r;
  r.method = "GET";
  r.url = url_;
  if (known) {
    r.headers.emplace_back("If-None-Match", "\"" + *known + "\"");
    if (wait.count() > 0) r.url += "?wait=" + std::to_string(wait.count());
  }
  // The server holds a long-poll for `wait`; give it room to answer after that.
  r.timeout = std::chrono::seconds(30) + (known ? wait : std::chrono::seconds(0));
  auto a = call(std::move(r));
  if (!a) return a.error();
  latest_result out;
  if (a->status == 304) {
    out.state = latest_state::unchanged;
    return out;
  }
  if (a->status == 404 && a->reason() == "NotPublished") {
    out.state = latest_state::not_published;
    return out;
  }
  if (a->status != 200) return answer_error(*a, where());
  auto l = archive::parse_latest(a->body);
  if (!l)
    return make_error(errc::parse_error, where() + " answered a latest.json that does not parse: " +
                                             l.error().message);
  out.state = latest_state::changed;
  out.latest = std::move(*l);
  out.body = std::move(a->body);
  return out;
}

expected<answer> client::put_latest(const std::string& expected_revision, std::string body) {
  http::request r;
  r.method = "PUT";
  r.url = url_ + "?expectedRevision=" + expected_revision;
  r.headers.emplace_back("Content-Type", "application/zstd");
  r.body = std::move(body);
  r.timeout = std::chrono::minutes(10);
  return call(std::move(r));
}

}  // namespace tidesync::configapi
