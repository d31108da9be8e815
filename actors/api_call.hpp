// The bridge from the Kubernetes client's callbacks (on the HTTP loop thread) back into an
// actor: the callback turns the answer into an `api_reply` message stamped with a token, and
// the actor resumes the continuation it stored under that token (docs/controller.md).
//
// No CAF templates here beyond the handle type: the continuation table lives in api_calls,
// a plain class each resource actor keeps in its state.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>

#include "actors/api_types.hpp"
#include "runtime/k8s/client.hpp"

namespace tidesync::actors {

// A callback for k8s::client that sends `(atom::api, api_reply)` to `target` with `token`.
k8s::client::json_callback reply_to(caf::actor target, uint64_t token);

// The continuations an actor is waiting on, by token. Single-threaded: use it only from the
// owning actor's handlers.
class api_calls {
 public:
  using continuation = std::function<void(const api_reply&)>;

  // A fresh token whose reply will run `k`.
  uint64_t expect(continuation k);
  // Runs and forgets the continuation of `reply.token`; false when none was waiting (late
  // answer after a reset).
  bool resume(const api_reply& reply);
  // Forgets every pending continuation (their answers will be ignored).
  void reset() { pending_.clear(); }
  [[nodiscard]] size_t pending() const { return pending_.size(); }

 private:
  uint64_t next_ = 1;
  std::unordered_map<uint64_t, continuation> pending_;
};

// Sends `call(callback)` and runs `k` with the answer on `self` (an actor whose state has an
// `api_calls calls` member and whose interface takes `(atom::api, api_reply)`).
template <class Self, class Call, class Cont>
void call_api(Self self, Call&& call, Cont&& k) {
  auto token = self->state.calls.expect(std::forward<Cont>(k));
  call(reply_to(caf::actor_cast<caf::actor>(self), token));
}

}  // namespace tidesync::actors
