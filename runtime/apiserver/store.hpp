// The embedded API server's object store: Kubernetes object semantics without HTTP.
//
// Everything kube-apiserver promises a controller lives here, so it is unit-tested directly:
// one global monotonic resourceVersion, uid, generation (bumped when anything outside
// metadata/status changes), creationTimestamp, generateName, name validation, optimistic
// concurrency (409 on a stale resourceVersion), the /status subresource, merge and JSON patch,
// finalizers with deletionTimestamp, ownerReference garbage collection, paged lists, watch
// from a resourceVersion with a bounded event history (410 Expired when older), bookmarks,
// and CRDs that register new resource types. One mutex guards all of it: the server is a
// test and demo tool, and simple locking keeps the semantics obviously right.
//
// Objects are kept as a json::value plus their serialised text (made once per write), so a
// list or a watch event costs a string copy, not a serialisation.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/json/value.hpp"
#include "runtime/k8s/resource.hpp"
#include "runtime/k8s/selector.hpp"

namespace tidesync::apiserver {

struct printer_column {
  std::string name;
  std::string type;  // "string", "integer", "date", ...
  std::string json_path;
  std::string description;
  int64_t priority = 0;
};

// A served resource type (one group/version/plural).
struct resource_type {
  k8s::resource res;
  std::string singular;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  bool status_subresource = false;
  std::vector<printer_column> columns;  // a CRD's additionalPrinterColumns
  std::string crd_name;                 // non-empty for custom resources
  // A custom resource version's openAPIV3Schema (null when the CRD gives none): objects are
  // pruned and validated against it (schema.hpp). Shared: resource types are copied often.
  std::shared_ptr<const json::value> schema;
};

// One stored object. Immutable once published: writers make a new one.
struct stored_object {
  json::value obj;
  std::string text;  // json::dump(obj)
  uint64_t rv = 0;
  std::string uid;
  std::map<std::string, std::string> labels;
};
using object_ptr = std::shared_ptr<const stored_object>;

struct list_options {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;  // 0: everything
  std::string continue_token;
};

struct list_result {
  std::vector<object_ptr> items;
  std::string resource_version;
  std::string continue_token;  // empty on the last page
  int64_t remaining = 0;       // items after this page (when continue_token is set)
};

// Whether a write is stored, or only run and answered (the `dryRun=All` query parameter): a dry
// run makes every check and fills in every field a real write would, and answers with the
// object as it would be stored, but stores nothing: no resourceVersion, no watch event, no
// garbage collection, no namespace cleanup, no CRD (un)registration. A dry-run create answers
// without metadata.resourceVersion (as kube-apiserver, which sets it only on a real write); a
// dry-run update, patch or delete answers with the current one.
enum class write_mode { commit, dry_run };

struct delete_options {
  std::string propagation_policy;  // "", "Orphan", "Background", "Foreground"
  std::string precondition_uid;
  std::string precondition_rv;
  // DeleteOptions.gracePeriodSeconds. Unset: the object's own (a Pod's
  // spec.terminationGracePeriodSeconds, default 30). Only Pods use it (register_node).
  std::optional<int64_t> grace_period_seconds;
  write_mode mode = write_mode::commit;  // DeleteOptions.dryRun
};

// Result of a delete: the object as it is now, and whether it is gone or stays (finalizers,
// a Pod's graceful deletion).
struct delete_result {
  object_ptr object;
  bool deleted = false;
};

struct watch_options {
  std::string resource_version;  // "" or "0": start with ADDED for every current object
  std::string label_selector;
  std::string field_selector;
  bool allow_bookmarks = false;
  // Renders an object for the wire (default: its stored JSON). The server uses this to send
  // Table rows to `kubectl get -w`.
  std::function<std::string(const stored_object&)> render;
};

class store;

// One open watch. `next` blocks until events are ready, the bookmark interval passes, the
// deadline passes, or the watch is closed; it returns newline-terminated JSON lines ready to
// send. An empty return with `closed()` true means the stream is over.
class watch_stream {
 public:
  ~watch_stream();
  std::vector<std::string> next(std::chrono::milliseconds max_wait);
  [[nodiscard]] bool closed() const;
  void close();
  // A BOOKMARK event line at the newest resourceVersion this stream has delivered.
  std::string bookmark();

 private:
  friend class store;
  store* store_ = nullptr;
  std::string type_id_;
  std::string ns_;
  k8s::label_selector labels_;
  struct field_requirement {
    std::string path;  // "metadata.name", "status.phase", ...
    std::string value;
    bool negate = false;
  };
  std::vector<field_requirement> fields_;
  bool expired_ = false;  // a 410 was queued: close after delivering it
  std::function<std::string(const stored_object&)> render_;
  [[nodiscard]] const std::string& text_of(const stored_object& o, std::string& scratch) const;
  bool matches(const stored_object& o) const;
  std::string bookmark_locked() const;  // expects store_->mu_ held
  std::string kind_, api_version_;
  bool bookmarks_ = false;
  uint64_t cursor_ = 0;               // last resourceVersion delivered
  std::vector<std::string> pending_;  // initial events / the 410 error
  std::chrono::steady_clock::time_point next_bookmark_;
  bool closed_ = false;
  uint64_t generation_ = 0;  // store's close generation at creation
};

struct store_options {
  size_t history = 10000;  // watch events kept for resuming from an old resourceVersion
  std::chrono::milliseconds bookmark_interval{std::chrono::seconds(5)};
};

class store {
 public:
  explicit store(store_options options = {});
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  // --- types -------------------------------------------------------------------------------
  // Looks a served type up by group, version and plural (or kind, case-insensitively).
  std::optional<resource_type> find_type(std::string_view group, std::string_view version,
                                         std::string_view plural) const;
  // Every served type, in a stable order.
  std::vector<resource_type> types() const;

  // --- objects (namespace "" for cluster-scoped types) ----------------------------------------
  expected<object_ptr> get(const resource_type& t, std::string_view ns,
                           std::string_view name) const;
  expected<list_result> list(const resource_type& t, std::string_view ns,
                             const list_options& o) const;
  expected<object_ptr> create(const resource_type& t, std::string_view ns, json::value obj,
                              write_mode mode = write_mode::commit);
  // Replaces the object. `status_only` is the /status subresource: only status changes.
  expected<object_ptr> update(const resource_type& t, std::string_view ns, std::string_view name,
                              json::value obj, bool status_only = false,
                              write_mode mode = write_mode::commit);
  enum class patch_type { merge, json, strategic };
  expected<object_ptr> patch(const resource_type& t, std::string_view ns, std::string_view name,
                             patch_type type, const json::value& patch, bool status_only = false,
                             write_mode mode = write_mode::commit);
  expected<delete_result> remove(const resource_type& t, std::string_view ns, std::string_view name,
                                 const delete_options& o = {});
  // Deletes every object matching the list options; returns those that were matched (with
  // `d.mode` dry_run: checks each delete and deletes nothing).
  expected<list_result> remove_collection(const resource_type& t, std::string_view ns,
                                          const list_options& o, const delete_options& d = {});

  // --- nodes -------------------------------------------------------------------------------
  // Graceful Pod deletion, as kube-apiserver does it, for Pods bound to a node a kubelet has
  // registered here: deleting such a Pod that has not terminated (phase not Succeeded/Failed)
  // does not remove it; it gets metadata.deletionTimestamp (now + the grace period) and
  // deletionGracePeriodSeconds (DeleteOptions.gracePeriodSeconds, else
  // spec.terminationGracePeriodSeconds, default 30). The kubelet stops its containers and
  // deletes it again with grace period 0, which removes it. A later delete may only shorten the
  // period (0: at once). Pods with no node, on a node nobody registered (`simulate
  // --no-kubelet`), terminated Pods and a grace period of 0 are deleted at once. The registry
  // is in memory only (not saved): a kubelet registers when it starts.
  void register_node(const std::string& name);
  void unregister_node(const std::string& name);

  // --- watch -------------------------------------------------------------------------------
  expected<std::unique_ptr<watch_stream>> watch(const resource_type& t, std::string_view ns,
                                                const watch_options& o);

  // --- test hooks --------------------------------------------------------------------------
  // Drops the event history: a watch from any older resourceVersion now gets 410 Expired.
  void compact();
  // Ends every open watch stream (as a server restart or a dropped connection would).
  void close_watches();

  // Watch streams currently open (tests use it to see that a dropped client frees its watch).
  size_t open_watch_count() const;

  // --- persistence -------------------------------------------------------------------------
  expected<void> save(const std::string& path) const;
  expected<void> load(const std::string& path);
  // True when something changed since the last save().
  bool dirty() const;
  uint64_t current_resource_version() const;

 private:
  friend class watch_stream;
  struct event {
    uint64_t rv;
    std::string type_id;  // group/plural
    std::string ns;
    std::string kind;  // "ADDED", "MODIFIED", "DELETED"
    object_ptr object;
    object_ptr previous;  // for MODIFIED: the object before
  };
  struct type_entry {
    std::map<std::string, resource_type> versions;  // served versions of this group/plural
    std::map<std::string, object_ptr> objects;      // "ns/name" → object (sorted: paging)
    [[nodiscard]] const resource_type& any() const { return versions.begin()->second; }
  };

  // All private helpers expect mu_ held.
  type_entry* entry_for(const resource_type& t);
  const type_entry* entry_for(const resource_type& t) const;
  void register_builtin_types();
  void register_type(resource_type t);
  void unregister_crd_types(const std::string& crd_name);
  expected<object_ptr> create_locked(type_entry& e, std::string_view ns, json::value obj,
                                     write_mode mode);
  expected<object_ptr> update_locked(type_entry& e, std::string_view ns, std::string_view name,
                                     json::value obj, bool status_only, write_mode mode);
  expected<delete_result> remove_locked(type_entry& e, std::string_view ns, std::string_view name,
                                        const delete_options& o);
  object_ptr publish(type_entry& e, const std::string& key, json::value obj, const char* kind,
                     object_ptr previous);
  void erase_object(type_entry& e, const std::string& key, object_ptr old);
  void collect_garbage(const std::string& owner_uid);
  // A Pod's graceful deletion (register_node): the result when the Pod stays, nullopt when
  // the delete goes on as for any object (at once, or waiting on finalizers).
  std::optional<delete_result> delete_pod_gracefully(type_entry& e, const std::string& key,
                                                     const object_ptr& cur,
                                                     const delete_options& o);
  void on_crd_changed(const stored_object& crd, bool deleted);
  void track_owner_refs(const json::value& obj, int delta);
  expected<void> check_namespace(const type_entry& e, std::string_view ns) const;
  // Custom resources: prunes `obj` and validates it against its version's schema (422).
  expected<void> check_custom_resource(const type_entry& e, std::string_view name,
                                       json::value& obj) const;
  void finish_namespace_if_empty(const std::string& ns);

  store_options options_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::map<std::string, type_entry> types_;                // type_id → entry
  std::unordered_map<std::string, int> owner_ref_counts_;  // owner uid → references
  std::unordered_map<std::string, std::pair<std::string, std::string>>
      uids_;  // uid → (type_id, key)
  std::deque<event> history_;
  uint64_t rv_ = 0;
  uint64_t compacted_rv_ = 0;  // a watch may resume from any resourceVersion >= this
  uint64_t close_generation_ = 0;
  mutable bool dirty_ = false;
  size_t open_watches_ = 0;
  std::map<std::string, int> nodes_;  // registered node name → kubelets that registered it
};

// "group/plural" for core types "core/plural": the key objects are stored under. Versions of
// one group/plural share their objects, as in Kubernetes.
std::string type_id(const k8s::resource& r);

// Builds the Status object Kubernetes returns for an error, with `details` when the error
// names its subject or carries field causes.
json::value status_for(const error& e);
// Status.details {name, group, kind[, causes]} from the error's subject and causes (every
// field omitted when empty, as metav1.StatusDetails); null when the error has neither.
json::value status_details(const error& e);
// The HTTP reason word for an errc ("NotFound", "Conflict", ...).
std::string_view reason_for(const error& e);

}  // namespace tidesync::apiserver
