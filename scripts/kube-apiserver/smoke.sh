#!/usr/bin/env bash
# Smoke test of the real kube-apiserver with the real kubectl: start.sh in a
# temp dir, then a CRD + custom object through apply, get, patch of the status
# subresource (spec ignored there), patch of the main resource (status ignored
# there), explain, delete; 403 for the restricted token; /version; 410 Gone
# for a list at a compacted resourceVersion; stop.sh. Prints start-up time and
# peak RSS. Needs the binary built (build.sh). Exits non-zero on any failure.
#
# Usage: smoke.sh [KEEP_DIR]   (with KEEP_DIR, the server's files stay there)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
keep=false
if [[ $# -ge 1 ]]; then
  dir=$1
  keep=true
  rm -rf "$dir"
  mkdir -p "$dir"
else
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tidesync-kas-smoke.XXXXXX")
fi
cleanup() {
  [[ -e $dir/server/pids ]] && "$here/stop.sh" "$dir/server"
  $keep || rm -rf "$dir"
}
trap cleanup EXIT

failures=0
check() { # name expected actual
  if [[ $2 == "$3" ]]; then
    echo "ok   $1"
  else
    echo "FAIL $1: expected '$2', got '$3'"
    failures=$((failures + 1))
  fi
}

# Compaction every 2 s so the 410 check does not wait long.
started=$(date +%s%N)
KAS_ETCD_COMPACTION_INTERVAL=${KAS_ETCD_COMPACTION_INTERVAL:-2s} "$here/start.sh" "$dir/server"
ready_ms=$((($(date +%s%N) - started) / 1000000))

srv=$dir/server
k() { kubectl --kubeconfig "$srv/kubeconfig" "$@"; }
# shellcheck source=/dev/null
. "$srv/env"

check "/version gitVersion" v1.20.2 \
  "$(curl -fsS --cacert "$KAS_CA_FILE" "$KAS_URL/version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["gitVersion"])')"

cat >"$dir/crd.yaml" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.tidesync.io
spec:
  group: smoke.tidesync.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: Desired state of the widget.
            properties:
              size: {type: integer, description: How big the widget is.}
          status:
            type: object
            properties:
              phase: {type: string}
EOF
cat >"$dir/cr.yaml" <<'EOF'
apiVersion: smoke.tidesync.io/v1
kind: Widget
metadata: {name: w1, namespace: default}
spec: {size: 3}
EOF
k apply -f "$dir/crd.yaml" >/dev/null
k wait --for=condition=Established crd/widgets.smoke.tidesync.io --timeout=30s >/dev/null
k apply -f "$dir/cr.yaml" >/dev/null
jp='{.spec.size} {.status.phase} {.metadata.generation}'
check "create" "3  1" "$(k get widget w1 -o jsonpath="$jp")"
k patch widget w1 --subresource=status --type=merge \
  -p '{"status":{"phase":"Ready"},"spec":{"size":99}}' >/dev/null
check "patch --subresource=status (spec ignored)" "3 Ready 1" "$(k get widget w1 -o jsonpath="$jp")"
k patch widget w1 --type=merge -p '{"spec":{"size":4},"status":{"phase":"Gone"}}' >/dev/null
check "patch main resource (status ignored, generation++)" "4 Ready 2" \
  "$(k get widget w1 -o jsonpath="$jp")"
# The CRD's schema reaches /openapi/v2 a few seconds after Established (the
# apiserver's OpenAPI controller publishes it asynchronously): poll.
explained=no
deadline=$((SECONDS + 30))
explain_started=$SECONDS
while ((SECONDS < deadline)); do
  if k explain widget.spec.size 2>&1 | grep -q 'How big the widget is'; then
    explained=yes
    break
  fi
  sleep 0.5 # poll interval
done
check "explain (after $((SECONDS - explain_started)) s)" yes "$explained"
rv_old=$(k get widget w1 -o jsonpath='{.metadata.resourceVersion}')
k delete widget w1 >/dev/null
check "deleted" "NotFound" "$(k get widget w1 2>&1 | grep -o NotFound || true)"

check "restricted token: kubectl get widgets" "Forbidden" \
  "$(kubectl --kubeconfig "$srv/kubeconfig-restricted" get widgets 2>&1 | grep -o Forbidden | head -n1 || true)"
check "restricted token: HTTP status" 403 \
  "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$KAS_CA_FILE" \
    -H "@"<(printf 'Authorization: Bearer %s\n' "$(<"$KAS_RESTRICTED_TOKEN_FILE")") \
    "$KAS_URL/apis/smoke.tidesync.io/v1/namespaces/default/widgets")"

# After two compaction intervals etcd has compacted past rv_old: an exact
# list at it must be 410 Gone (resourceVersionMatch=Exact reads etcd).
code=0
deadline=$((SECONDS + 30))
while ((SECONDS < deadline)); do
  k create configmap "tick-$SECONDS-$RANDOM" >/dev/null 2>&1 || true # writes move the revision on
  code=$(curl -s -o "$dir/410.json" -w '%{http_code}' --cacert "$KAS_CA_FILE" \
    -H "@"<(printf 'Authorization: Bearer %s\n' "$(<"$KAS_ADMIN_TOKEN_FILE")") \
    "$KAS_URL/api/v1/namespaces/default/configmaps?resourceVersion=$rv_old&resourceVersionMatch=Exact")
  [[ $code == 410 ]] && break
  sleep 0.5 # poll interval
done
check "list at a compacted resourceVersion" 410 "$code"

rss_kb=0
while read -r pid; do
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
  rss_kb=$((rss_kb + hwm))
done <"$srv/pids"
echo "ready after ${ready_ms} ms; peak RSS etcd + kube-apiserver: $((rss_kb / 1024)) MiB"

((failures == 0)) || { echo "smoke: $failures check(s) failed"; exit 1; }
echo "smoke: all checks passed"
