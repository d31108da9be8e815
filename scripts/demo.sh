#!/usr/bin/env bash
# The demo: a real BucketSyncPolicy syncs one s3rver bucket to another, run by `tidesync
# simulate` (embedded API server + controller + simulated kubelet running rclone).
#   bash scripts/demo.sh [--once] [--data-dir DIR] [--s3-port N]
# 1. starts s3rver on 127.0.0.1:4568 (data in DIR/s3rver) and uploads deploy/examples/demo-data/
#    to its bucket demo-source with rclone;
# 2. starts `tidesync simulate --data-dir DIR deploy/crds deploy/examples` (log: DIR/simulate.log),
#    which applies deploy/examples/demo-policy.yaml: the policy demo-backup, whose
#    tidesync.io/sync-now annotation runs one sync at once;
# 3. waits until that BucketSync is Finished and the DataSync demo-images (datasync.yaml: two
#    files of demo-source into two volumes) Succeeded, shows the objects and bucket demo-backup;
#    then publishes demo-data as the SharedConfig demo-config (sharedconfig.yaml) through the
#    controller's config API and runs `tidesync agent config init` into DIR/shared; then
#    uploads demo-data to demo-site/site and creates the pod docs/examples/demo-site-pod.yaml:
#    the webhook adds the agents of the PodFilesystemSync demo-site (demo-site.yaml), the pod's
#    volume is restored, and a file written into it reaches the bucket on the next sync;
# 4. --once: checks that demo-backup holds every file of demo-data, the DataSync's volumes
#    the two files, DIR/shared/live and the pod's volume the whole folder, with identical
#    content, and the pod's new file is in the bucket (exit 0 only then), and stops; otherwise
#    keeps running for kubectl until Ctrl-C.
# Each run starts a fresh simulation (the previous DIR/state.json is moved to
# DIR/state.json.previous) and fresh buckets.
# Options (or environment):
#   --data-dir DIR (TIDESYNC_DEMO_DIR)   default .tidesync-sim
#   --s3-port N    (TIDESYNC_DEMO_S3_PORT) default 4568; 0 picks a free port (the manifests'
#                  endpoint 127.0.0.1:4568 is rewritten to it in a copy under DIR/manifests)
#   TIDESYNC_BIN          the tidesync binary (default build/release/tidesync)
#   TIDESYNC_DEMO_TIMEOUT seconds to wait for the sync (default 120)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

once=0
data_dir="${TIDESYNC_DEMO_DIR:-.tidesync-sim}"
s3_port="${TIDESYNC_DEMO_S3_PORT:-4568}"
bin="${TIDESYNC_BIN:-build/release/tidesync}"
timeout="${TIDESYNC_DEMO_TIMEOUT:-120}"
policy=demo-backup
namespace=default

while (($#)); do
  case "$1" in
    --once) once=1 ;;
    --data-dir) data_dir="${2:?--data-dir needs a directory}"; shift ;;
    --data-dir=*) data_dir="${1#*=}" ;;
    --s3-port) s3_port="${2:?--s3-port needs a port}"; shift ;;
    --s3-port=*) s3_port="${1#*=}" ;;
    -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument $1 (see bash scripts/demo.sh --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "demo: $*"; }
fail() {
  echo "demo: error: $*" >&2
  echo "demo: logs: simulate $data_dir/simulate.log, s3rver $data_dir/s3rver/s3rver.log, pods $data_dir/logs/" >&2
  exit 1
}

# --- what the demo needs ------------------------------------------------------------------
[[ "$s3_port" =~ ^[0-9]+$ ]] || { echo "demo: --s3-port needs a number" >&2; exit 2; }
[[ "$timeout" =~ ^[0-9]+$ ]] || { echo "demo: TIDESYNC_DEMO_TIMEOUT needs a number" >&2; exit 2; }
[ -x "$bin" ] || { echo "demo: $bin is not built; run: bash scripts/setup.sh release (or set TIDESYNC_BIN)" >&2; exit 1; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
for tool in kubectl rclone; do
  command -v "$tool" >/dev/null 2>&1 || { echo "demo: $tool is not installed; run: bash scripts/setup.sh" >&2; exit 1; }
done
bash scripts/s3rver.sh check || exit 1
# rclone 1.60 fails when AWS_CA_BUNDLE is set by the environment.
unset AWS_CA_BUNDLE

mkdir -p "$data_dir"
data_dir="$(cd "$data_dir" && pwd)"
sim_pid_file="$data_dir/simulate.pid"
sim_log="$data_dir/simulate.log"
s3_dir="$data_dir/s3rver"
sim_pid=""
s3_started=0

# A zombie (exited, not yet reaped) counts as gone.
alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]
}

stop_simulate() {
  [ -n "$sim_pid" ] || return 0
  if alive "$sim_pid"; then
    kill -TERM "$sim_pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while alive "$sim_pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if alive "$sim_pid"; then
      say "simulate did not stop within 15 s; killing it"
      kill -KILL "$sim_pid" 2>/dev/null || true
    fi
  fi
  wait "$sim_pid" 2>/dev/null || true
  sim_pid=""
  rm -f "$sim_pid_file"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_simulate
  ((s3_started)) && bash scripts/s3rver.sh stop "$s3_dir"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo; say "stopping"; exit 130' INT TERM

# A demo already running on this data dir would share its ports and files.
if [ -f "$sim_pid_file" ]; then
  old="$(cat "$sim_pid_file")"
  if alive "$old" && tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -q simulate; then
    echo "demo: a demo is already running on $data_dir (simulate pid $old); stop it first (Ctrl-C, or kill $old)" >&2
    trap - EXIT
    exit 1
  fi
  rm -f "$sim_pid_file"
fi
bash scripts/s3rver.sh stop "$s3_dir" # one a killed demo left behind

# --- s3rver and the source bucket --------------------------------------------------------
if [ -f "$data_dir/state.json" ]; then
  mv -f "$data_dir/state.json" "$data_dir/state.json.previous"
  say "fresh simulation: the previous state is in $data_dir/state.json.previous"
fi
rm -rf "$s3_dir/buckets"
say "starting s3rver (buckets in $s3_dir/buckets)"
s3_started=1
wanted_port="$s3_port"
s3_port="$(bash scripts/s3rver.sh start "$s3_dir" "$wanted_port")" ||
  fail "s3rver did not start on 127.0.0.1:$wanted_port (see above; is the port taken? --s3-port N picks another, 0 a free one)"
endpoint="http://127.0.0.1:$s3_port"
say "s3rver is listening on $endpoint"

# rclone configured from the environment only: the remote "demo" is the s3rver.
export RCLONE_CONFIG_DEMO_TYPE=s3 RCLONE_CONFIG_DEMO_PROVIDER=Other RCLONE_CONFIG_DEMO_ENV_AUTH=false \
  RCLONE_CONFIG_DEMO_ACCESS_KEY_ID=S3RVER RCLONE_CONFIG_DEMO_SECRET_ACCESS_KEY=S3RVER \
  RCLONE_CONFIG_DEMO_ENDPOINT="$endpoint" RCLONE_CONFIG_DEMO_REGION=us-east-1 \
  RCLONE_CONFIG_DEMO_FORCE_PATH_STYLE=true RCLONE_CONFIG_DEMO_NO_CHECK_BUCKET=true
rclone_() { rclone --config /dev/null --contimeout 5s --timeout 30s "$@"; }

say "uploading deploy/examples/demo-data/ to s3://demo-source"
rclone_ copy deploy/examples/demo-data demo:demo-source ||
  fail "rclone could not upload deploy/examples/demo-data to demo:demo-source at $endpoint"
rclone_ lsl demo:demo-source | sed 's/^/    /'

# --- tidesync simulate --------------------------------------------------------------------
manifests="$repo/deploy/examples"
if [ "$s3_port" != 4568 ]; then
  # The examples name the endpoint 127.0.0.1:4568: a copy names this s3rver's port instead.
  manifests="$data_dir/manifests"
  rm -rf "$manifests"
  mkdir -p "$manifests"
  for f in deploy/examples/*.yaml deploy/examples/*.yml deploy/examples/*.json; do
    [ -f "$f" ] || continue
    sed "s#127\.0\.0\.1:4568#127.0.0.1:$s3_port#g" "$f" >"$manifests/$(basename "$f")"
  done
fi
say "starting $bin simulate --data-dir $data_dir deploy/crds $manifests (log: $sim_log)"
"$bin" simulate --data-dir "$data_dir" --controller-rbac "$repo/deploy/base/rbac.yaml" \
  "$repo/deploy/crds" "$manifests" >"$sim_log" 2>&1 </dev/null &
sim_pid=$!
echo "$sim_pid" >"$sim_pid_file"

deadline=$((SECONDS + 30))
ready_line=""
until ready_line="$(grep -m1 '^tidesync simulate: API server on ' "$sim_log")"; do
  alive "$sim_pid" || { tail -n 20 "$sim_log" >&2; fail "tidesync simulate exited at start"; }
  ((SECONDS < deadline)) || fail "tidesync simulate did not report its address within 30 s"
  sleep 0.1 # poll interval
done
kubeconfig="${ready_line##*kubeconfig at }"
say "${ready_line#tidesync simulate: }"
k() { kubectl --kubeconfig "$kubeconfig" --cache-dir "$data_dir/kube-cache" "$@"; }

# --- wait for the policy's manual run -----------------------------------------------------
say "waiting for BucketSyncPolicy $policy to run its sync (at most ${timeout}s)"
deadline=$((SECONDS + timeout))
last=""
run=""
jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.status.phase}{"\t"}{.status.conditions[?(@.type=="WaitingForLock")].status}{"\t"}{.status.conditions[?(@.type=="WaitingForLock")].message}{"\t"}{.status.error}{"\n"}{end}'
while :; do
  alive "$sim_pid" || { tail -n 20 "$sim_log" >&2; fail "tidesync simulate exited"; }
  line="$(k get bucketsyncs -n "$namespace" -l "tidesync.io/policy=$policy,tidesync.io/trigger=manual" \
    -o jsonpath="$jsonpath" 2>/dev/null | head -n1 || true)"
  if [ -n "$line" ]; then
    IFS=$'\t' read -r run phase waiting waiting_msg error <<<"$line"
    state="${phase:-Pending}"
    [ "$waiting" = True ] && state="$state (waiting for a lock: $waiting_msg)"
    if [ "$run:$state" != "$last" ]; then
      say "  BucketSync $run: $state"
      last="$run:$state"
    fi
    if [ "$phase" = Finished ]; then
      [ -z "$error" ] || fail "BucketSync $run finished with an error: $error"
      break
    fi
  fi
  ((SECONDS < deadline)) || fail "BucketSync ${run:-of policy $policy} is not Finished after ${timeout}s (last: ${last:-no BucketSync created})"
  sleep 0.25 # poll interval
done

# --- wait for the DataSync (deploy/examples/datasync.yaml) ----------------------------------
datasync=demo-images
say "waiting for DataSync $datasync to download its images (at most ${timeout}s)"
last=""
while :; do
  alive "$sim_pid" || { tail -n 20 "$sim_log" >&2; fail "tidesync simulate exited"; }
  line="$(k get datasync "$datasync" -n "$namespace" \
    -o jsonpath='{.status.phase}{"\t"}{.status.message}' 2>/dev/null || true)"
  IFS=$'\t' read -r phase message <<<"$line"
  if [ -n "$phase" ] && [ "$phase: $message" != "$last" ]; then
    say "  DataSync $datasync: $phase: $message"
    last="$phase: $message"
  fi
  [ "$phase" = Succeeded ] && break
  [ "$phase" = Failed ] && fail "DataSync $datasync failed: $message"
  ((SECONDS < deadline)) || fail "DataSync $datasync is not Succeeded after ${timeout}s (last: ${last:-no status})"
  sleep 0.25 # poll interval
done

# --- the SharedConfig (deploy/examples/sharedconfig.yaml) ---------------------------------
# Publish deploy/examples/demo-data through the controller's config API, then run the agent as
# a pod's init container would: .tidesync-sim/shared/live becomes that revision.
sharedconfig=demo-config
config_api="$(cat "$data_dir/config-api" 2>/dev/null || true)"
[ -n "$config_api" ] || fail "the controller did not write its config API address to $data_dir/config-api"
token_file="$data_dir/config-api-token"
(umask 077 && k get secret tidesync-config-api -n tidesync-system -o jsonpath='{.data.token}' |
  base64 -d >"$token_file") || fail "cannot read the config API token (Secret tidesync-system/tidesync-config-api)"
say "tidesync config publish deploy/examples/demo-data --config $namespace/$sharedconfig (config API $config_api)"
publish() {
  "$bin" config publish deploy/examples/demo-data --api "$config_api" \
    --config "$namespace/$sharedconfig" --expected-revision "$1" --token-file "$token_file"
}
publish_rc=0
published="$(publish "")" || publish_rc=$?
if ((publish_rc == 4)); then # a revision from an earlier run: publish against it
  publish_rc=0
  published="$(publish "$published")" || publish_rc=$?
fi
((publish_rc == 0)) || fail "tidesync config publish failed (exit code $publish_rc)"
say "  latest.json: $published"
shared_root="$data_dir/shared"
say "tidesync agent config init --root $shared_root (from the config API and bucket demo-config)"
agent_rc=0
REMOTE_TYPE=s3 REMOTE_PROVIDER=Other REMOTE_ENDPOINT="$endpoint" REMOTE_REGION=us-east-1 \
  REMOTE_FORCE_PATH_STYLE=true REMOTE_ACCESS_KEY_ID=S3RVER REMOTE_SECRET_ACCESS_KEY=S3RVER \
  "$bin" agent config init --root "$shared_root" --api "$config_api" \
  --config "$namespace/$sharedconfig" --token-file "$token_file" \
  --store s3://demo-config/shared-config/demo >"$data_dir/agent-config.log" 2>&1 || agent_rc=$?
sed 's/^/    /' "$data_dir/agent-config.log"
((agent_rc == 0)) || fail "tidesync agent config init failed (exit code $agent_rc)"
say "  $shared_root/live -> $(readlink "$shared_root/live")"

# --- the PodFilesystemSync (deploy/examples/demo-site.yaml) --------------------------------
# The site is in the bucket; the pod restores it before its app starts, and what the app writes
# goes back on the next sync. The pod is made only once the webhook is registered.
site_pod=demo-site-0
site_volume="$data_dir/volumes/$namespace/demo-site-www"
rm -rf "$site_volume"
say "uploading deploy/examples/demo-data/ to s3://demo-site/site (the site the pod restores)"
rclone_ copy deploy/examples/demo-data demo:demo-site/site ||
  fail "rclone could not upload deploy/examples/demo-data to demo:demo-site/site at $endpoint"
deadline=$((SECONDS + timeout))
until k get mutatingwebhookconfiguration tidesync-pod-injection >/dev/null 2>&1; do
  ((SECONDS < deadline)) || fail "the controller did not register its admission webhook within ${timeout}s"
  sleep 0.25 # poll interval
done
say "kubectl apply -f docs/examples/demo-site-pod.yaml (labelled tidesync.io/volume-syncing=true)"
k apply -f docs/examples/demo-site-pod.yaml >/dev/null || fail "cannot create the pod $site_pod"
say "  the webhook added: $(k get pod "$site_pod" -n "$namespace" -o jsonpath='{.spec.initContainers[*].name}')"
last=""
until [ "$(k get pod "$site_pod" -n "$namespace" -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ]; do
  ((SECONDS < deadline)) || fail "pod $site_pod is not Running after ${timeout}s (its logs: $data_dir/logs/$namespace/$site_pod/)"
  sleep 0.25 # poll interval
done
say "  pod $site_pod is Running; its volume was restored:"
(cd "$site_volume" && find . -type f | sort | sed 's/^/    /')
echo "written by the app of $site_pod" >"$site_volume/hello-from-the-pod.txt"
say "  the app wrote hello-from-the-pod.txt; waiting for the sidecar's next sync (every 10 s)"
until rclone_ lsf demo:demo-site/site 2>/dev/null | grep -qx hello-from-the-pod.txt; do
  ((SECONDS < deadline)) || fail "hello-from-the-pod.txt did not reach demo:demo-site/site within ${timeout}s (sidecar log: $data_dir/logs/$namespace/$site_pod/volume-syncing-sidecar.log)"
  sleep 0.25 # poll interval
done
say "  hello-from-the-pod.txt is in s3://demo-site/site"

# --- the result ---------------------------------------------------------------------------
echo
say "kubectl get bucketsyncpolicies,bucketsyncs,datasyncs,sharedconfigs,podfilesystemsyncs,persistentvolumeclaims,jobs"
k get bucketsyncpolicies,bucketsyncs,datasyncs,sharedconfigs,podfilesystemsyncs,persistentvolumeclaims,jobs -n "$namespace" || true
job="$(k get bucketsync "$run" -n "$namespace" -o jsonpath='{.status.job}' 2>/dev/null || true)"
if [ -n "$job" ]; then
  for log in "$data_dir/logs/$namespace/$job"-*.log; do
    [ -f "$log" ] || continue
    echo
    say "the rclone Job's log ($log):"
    sed 's/^/    /' "$log"
  done
fi
echo
say "rclone lsl demo:demo-backup (the destination bucket)"
rclone_ lsl demo:demo-backup | sed 's/^/    /' || fail "rclone could not list demo:demo-backup at $endpoint"

if ((once)); then
  echo
  say "rclone check deploy/examples/demo-data demo:demo-backup"
  check_rc=0
  check_out="$(rclone_ check deploy/examples/demo-data demo:demo-backup 2>&1)" || check_rc=$?
  sed 's/^/    /' <<<"$check_out"
  ((check_rc == 0)) || fail "demo-backup does not hold the same files as deploy/examples/demo-data (rclone check exit code $check_rc)"
  say "OK: every file of deploy/examples/demo-data is in demo-backup with identical content"
  for vm in settings:settings.json readme:README.txt; do
    got="$data_dir/volumes/$namespace/$datasync-${vm%%:*}/${vm#*:}"
    cmp -s "deploy/examples/demo-data/${vm#*:}" "$got" ||
      fail "the DataSync's volume does not hold deploy/examples/demo-data/${vm#*:} ($got)"
  done
  say "OK: DataSync $datasync put both images into its volumes with identical content"
  diff -r deploy/examples/demo-data "$shared_root/live/" >/dev/null ||
    fail "$shared_root/live does not hold the files of deploy/examples/demo-data"
  say "OK: SharedConfig $sharedconfig is live in $shared_root/live with identical content"
  diff -r -x hello-from-the-pod.txt deploy/examples/demo-data "$site_volume/" >/dev/null ||
    fail "the volume of pod $site_pod ($site_volume) does not hold the files of deploy/examples/demo-data"
  [ "$(rclone_ cat demo:demo-site/site/hello-from-the-pod.txt)" = "written by the app of $site_pod" ] ||
    fail "demo:demo-site/site/hello-from-the-pod.txt does not hold what the pod wrote"
  say "OK: PodFilesystemSync demo-site restored the site into pod $site_pod and synced its new file back"
  exit 0
fi

cat <<EOF

demo: the simulation keeps running. In another terminal:

  export KUBECONFIG=$kubeconfig
  kubectl get bucketsyncpolicies,bucketsyncs
  kubectl annotate bucketsyncpolicy $policy tidesync.io/sync-now=again --overwrite   # one more run now
  kubectl get bucketsyncs -w                                  # Initialize → Sync → Finalize → Finished
  kubectl get datasyncs; kubectl describe datasync $datasync   # per-VM digests, conditions, Events
  ls $data_dir/volumes/$namespace/$datasync-*/                 # the downloaded images
  kubectl describe bucketsyncpolicy $policy                   # conditions; next scheduled run (every 5 min)
  ls $data_dir/logs/$namespace/                                # each rclone pod's log
  kubectl get sharedconfigs; ls -l $shared_root/live/          # the shared config and its live tree
  kubectl get podfilesystemsync demo-site -o yaml              # the pod's last sync (status.pods)
  echo hi >$site_volume/new.txt                                # play the app: synced within 10 s
  kubectl delete pod $site_pod                                 # one last sync, then the pod goes
  $bin config publish DIR --api $config_api --config $namespace/$sharedconfig \\
    --token-file $token_file --expected-revision "\$(kubectl get sharedconfig $sharedconfig -o jsonpath='{.status.revision}')"

  # the buckets (s3rver at $endpoint, access key and secret S3RVER):
  export RCLONE_CONFIG_DEMO_TYPE=s3 RCLONE_CONFIG_DEMO_PROVIDER=Other RCLONE_CONFIG_DEMO_ENDPOINT=$endpoint \\
    RCLONE_CONFIG_DEMO_ACCESS_KEY_ID=S3RVER RCLONE_CONFIG_DEMO_SECRET_ACCESS_KEY=S3RVER
  rclone lsl demo:demo-backup

Stop with Ctrl-C (simulate log: $sim_log).
EOF
# Until Ctrl-C (the INT trap exits and the EXIT trap stops simulate and s3rver), or until
# simulate stops on its own.
set +e
wait "$sim_pid"
rc=$?
set -e
sim_pid=""
rm -f "$sim_pid_file"
fail "tidesync simulate stopped (exit code $rc)"
