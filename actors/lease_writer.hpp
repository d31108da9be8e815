// The lease_sink that writes the lock Leases to the API server through a k8s::client, and the
// start-up listing of those Leases. Rules: docs/locks.md, "Writing the Leases".
//
// No CAF here: the lock manager calls the sink on its own thread and the writer only starts
// asynchronous requests (the client's callbacks run on the HTTP loop thread), so nothing
// blocks the actor. Writes for one Lease name are serialised and coalesced: at most one request
// per name is in flight, and when it ends the writer moves on to the latest wanted state for
// that name (granted then released while the create is in flight ends with no Lease).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "actors/lease.hpp"
#include "actors/lock_manager.hpp"
#include "runtime/backoff.hpp"
#include "runtime/error.hpp"
#include "runtime/k8s/client.hpp"

namespace tidesync::actors {

struct lease_writer_options {
  // Backoff between retries of a transient failure (unavailable, timeout, 429, 5xx).
  backoff_options retry{std::chrono::milliseconds(200), std::chrono::milliseconds(10'000)};
  // A write that keeps failing is abandoned this long after its first failure (with a warning
  // naming the Lease). Held locks are written again at the next renewal anyway; a released
  // Lease left behind is reclaimed after the TTL by whoever starts next.
  std::chrono::milliseconds give_up_after{std::chrono::minutes(1)};
  // Conflicts (someone else wrote the Lease) handled in a row before they count as a failure
  // and wait out a backoff.
  int max_conflicts = 5;
};

// A lease_sink that writes through a k8s::client. Writes for one Lease name are serialised
// (never two in flight for one name; the latest wanted state wins: if granted then released
// arrive while the create is in flight, the Lease ends deleted). Create: AlreadyExists → read
// and update. Update: uses resourceVersion; Conflict/NotFound → re-read and retry (create if
// missing). Delete: NotFound is success. Transient failures are retried with backoff, never
// beyond `give_up_after` (a warning names the Lease). Updates keep labels, annotations and
// spec fields that others added. Logs name Leases and holders, never whole objects.
class lease_writer : public lease_sink {
 public:
  // `alive` answers lease_sink::alive (the controller passes a lookup in its BucketSync
  // informer cache). The client must outlive the writer's in-flight requests (it does when
  // the HTTP loop is stopped before the client is destroyed).
  lease_writer(k8s::client& client, std::function<bool(std::string_view holder)> alive,
               lease_writer_options options = {});
  // Cancels pending retries; safe while requests are in flight (their answers are ignored).
  ~lease_writer() override;
  lease_writer(const lease_writer&) = delete;
  lease_writer& operator=(const lease_writer&) = delete;

  bool alive(std::string_view holder) override;
  void granted(const std::vector<lease_record>& leases) override;
  void renewed(const std::vector<lease_record>& leases) override;
  void released(const std::vector<lease_record>& leases) override;

  // Blocks until every pending write has finished (or been abandoned) or `timeout` passed
  // (graceful shutdown; tests). Returns true when idle. Never call on the loop thread (it
  // returns false at once there).
  bool flush(std::chrono::milliseconds timeout);

  // Counters for tests and metrics. creates/updates/deletes: successful requests;
  // conflicts: AlreadyExists on create, Conflict or NotFound on update (each costs a re-read);
  // failures: requests that failed otherwise; pending: Lease names with a write queued, in
  // flight or waiting for a retry.
  struct stats {
    uint64_t creates = 0, updates = 0, deletes = 0, conflicts = 0, failures = 0;
    size_t pending = 0;
  };
  stats get_stats() const;

  struct state;  // shared with the request callbacks (they hold a weak_ptr)

 private:
  std::function<bool(std::string_view)> alive_;
  std::shared_ptr<state> state_;
};

// Lists the lock Leases (label tidesync.io/lock=true) in `ns` at start-up, parsed with
// parse_lease; Leases that fail to parse are skipped with a warning (they are not ours to
// delete). Blocking (call before spawning the lock manager, never on the loop thread).
expected<std::vector<lease_record>> list_lock_leases(k8s::client& client, const std::string& ns);

}  // namespace tidesync::actors
