#include "actors/api_call.hpp"

#include <caf/all.hpp>
#include <utility>

#include "actors/type_ids.hpp"

namespace tidesync::actors {

tidesync::error api_reply::to_error() const {
  auto e = make_error(error_code(), message);
  e.http_status = http_status;
  return e;
}

json::value api_reply::object() const {
  if (!ok || body.empty()) return json::value(json::object{});
  auto v = json::parse(body);
  if (!v) return json::value(json::object{});
  return std::move(*v);
}

k8s::client::json_callback reply_to(caf::actor target, uint64_t token) {
  return [target = std::move(target), token](expected<json::value> r) {
    api_reply reply;
    reply.token = token;
    if (r) {
      reply.ok = true;
      reply.body = json::dump(*r);
    } else {
      reply.code = static_cast<int32_t>(r.error().code);
      reply.http_status = r.error().http_status;
      reply.message = r.error().message;
    }
    caf::anon_send(target, atom::api_v, std::move(reply));
  };
}

uint64_t api_calls::expect(continuation k) {
  auto token = next_++;
  pending_.emplace(token, std::move(k));
  return token;
}

bool api_calls::resume(const api_reply& reply) {
  auto it = pending_.find(reply.token);
  if (it == pending_.end()) return false;
  auto k = std::move(it->second);
  pending_.erase(it);
  k(reply);
  return true;
}

}  // namespace tidesync::actors
