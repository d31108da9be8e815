// Mutating admission webhooks in the embedded API server, as kube-apiserver calls them
// (docs/podfilesystemsync.md, "The embedded API server"): on CREATE, every webhook of every
// MutatingWebhookConfiguration (in name order) whose rules, objectSelector and
// namespaceSelector match gets an AdmissionReview v1 over HTTPS, trusting only its caBundle;
// an allowed answer's JSONPatch is applied, a denial fails the create with the webhook's
// message, and a call that fails follows the failurePolicy (Fail, the default, or Ignore).
// Only `url` client configs can be reached here (a `service` has no cluster network to route
// it): a service config counts as a failed call. Not done: reinvocation, UPDATE/DELETE/CONNECT
// operations, validating webhooks, matchConditions.
//
// A dry-run create (`dryRun=All`) calls a matching webhook only when its sideEffects is None or
// NoneOnDryRun, with request.dryRun true; any other value (or none) fails the create with 400
// `admission webhook "NAME" does not support dry run`, whatever the failurePolicy, as
// kube-apiserver does. Webhooks that do not match the request are not consulted.
#pragma once

#include <string_view>

#include "runtime/apiserver/store.hpp"
#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::apiserver {

// `obj` as the webhooks leave it, or the error to answer the create with (http_status set:
// 403/400 for a denial, 500 for a failed call under failurePolicy Fail, 400 for a webhook that
// cannot take a dry run).
expected<json::value> admit_create(const store& st, const resource_type& t, std::string_view ns,
                                   json::value obj, write_mode mode = write_mode::commit);

}  // namespace tidesync::apiserver
