#!/usr/bin/env bash
# Starts a real etcd + kube-apiserver on 127.0.0.1 with everything under DIR:
#   DIR/pki/                  CA, serving cert (127.0.0.1, localhost), SA key pair
#   DIR/tokens.csv            static tokens: admin (system:masters), restricted
#   DIR/admin.token           the admin's bearer token (mode 600)
#   DIR/restricted.token      a user with no RBAC bindings (403 on resources)
#   DIR/etcd-data/            etcd's data (kept across restarts of the same DIR)
#   DIR/logs/{etcd,kube-apiserver}.log, DIR/logs/start.log (phase timings)
#   DIR/kubeconfig            admin kubeconfig (token, CA data, https://127.0.0.1:PORT)
#   DIR/kubeconfig-restricted the restricted user's kubeconfig
#   DIR/env                   KAS_URL, KAS_PORT, ETCD_URL, KAS_CA_FILE, token file paths
#   DIR/pids                  one PID per line (for stop.sh)
# and waits (polling, with a deadline) for /readyz. Stop it with stop.sh DIR.
#
# Usage: start.sh DIR
# Environment:
#   KUBE_APISERVER_BIN              binary to run (default: build.sh --cached)
#   KAS_ETCD_COMPACTION_INTERVAL    --etcd-compaction-interval (default 30s; makes
#                                   410 Gone reachable in tests)
#   KAS_START_TIMEOUT               seconds to wait for readiness (default 120)
#   KAS_EXTRA_ARGS                  extra kube-apiserver flags (word-split)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
  echo "start.sh: error: $*" >&2
  exit 1
}

[[ $# -eq 1 && -n $1 ]] || die "usage: start.sh DIR"
mkdir -p "$1"
dir=$(cd "$1" && pwd)

for tool in etcd openssl curl python3 setsid; do
  command -v "$tool" >/dev/null ||
    die "'$tool' not found (scripts/kube-apiserver/build.sh installs etcd-server and openssl)"
done

bin=${KUBE_APISERVER_BIN:-}
if [[ -z $bin ]]; then
  bin=$("$here/build.sh" --cached) ||
    die "kube-apiserver is not built: run scripts/kube-apiserver/build.sh first"
fi
[[ -x $bin ]] || die "not executable: $bin"

# Refuse to start twice on one DIR.
if [[ -s $dir/pids ]]; then
  while read -r pid; do
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
      die "$dir/pids lists running process $pid: run stop.sh $dir first"
  done <"$dir/pids"
fi
rm -f "$dir/pids"

umask 077
mkdir -p "$dir/pki" "$dir/logs" "$dir/etcd-data"
t0=$(date +%s%N)
# Phase timings go to DIR/logs/start.log (start-up time is worth watching).
phase() { echo "$(date -u +%FT%T.%3NZ) +$((($(date +%s%N) - t0) / 1000000)) ms $*" >>"$dir/logs/start.log"; }
phase "start (binary $bin)"

# --- credentials (made once per DIR, reused on restart) ---------------------
pki=$dir/pki
if [[ ! -s $pki/serving.crt || ! -s $pki/sa.pub ]]; then
  {
    # P-256 keys: generated in milliseconds where RSA takes seconds on a busy box.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -keyout "$pki/ca.key" -out "$pki/ca.crt" -subj "/CN=tidesync-test-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$pki/serving.key" \
      -out "$pki/serving.csr" -subj "/CN=kube-apiserver"
    printf '%s\n' \
      "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
      "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth" >"$pki/serving.ext"
    openssl x509 -req -days 3650 -in "$pki/serving.csr" -CA "$pki/ca.crt" \
      -CAkey "$pki/ca.key" -CAcreateserial -extfile "$pki/serving.ext" \
      -out "$pki/serving.crt"
    # Service-account tokens are then signed with ES256.
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$pki/sa.key"
    openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
  } >"$dir/logs/openssl.log" 2>&1 || {
    tail -n 20 "$dir/logs/openssl.log" >&2
    die "openssl failed"
  }
  phase "certificates and keys made"
fi
if [[ ! -s $dir/tokens.csv ]]; then
  openssl rand -hex 32 >"$dir/admin.token"
  openssl rand -hex 32 >"$dir/restricted.token"
  # token,user,uid,"group1,group2"
  printf '%s,admin,uid-admin,"system:masters"\n%s,restricted,uid-restricted\n' \
    "$(<"$dir/admin.token")" "$(<"$dir/restricted.token")" >"$dir/tokens.csv"
fi

# --- ports: three distinct free ports on 127.0.0.1 ---------------------------
# The system python: version-manager shims (pyenv) take a second to start.
py=/usr/bin/python3
[[ -x $py ]] || py=python3
read -r etcd_port peer_port kas_port < <("$py" - <<'EOF'
import socket
socks = []
for _ in range(3):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
EOF
)
[[ -n $kas_port ]] || die "could not pick free ports"

pids=()
fail() {
  echo "start.sh: error: $*" >&2
  local f lines
  for f in etcd:8 kube-apiserver:25; do
    lines=${f#*:}
    f=${f%:*}
    if [[ -s $dir/logs/$f.log ]]; then
      echo "---- last lines of $dir/logs/$f.log ----" >&2
      tail -n "$lines" "$dir/logs/$f.log" >&2
    fi
  done
  rm -f "$dir/.auth-header"
  "$here/stop.sh" "$dir" || true
  exit 1
}

timeout_s=${KAS_START_TIMEOUT:-120}
deadline=$((SECONDS + timeout_s))

# Polls CMD until it succeeds; fails if PID dies or the deadline passes.
wait_for() {
  local what=$1 pid=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail "$what exited during start-up"
    ((SECONDS < deadline)) || fail "$what not ready after ${timeout_s}s"
    sleep 0.1 # poll interval, not a synchronisation
  done
}

# --- etcd ---------------------------------------------------------------------
etcd_url=http://127.0.0.1:$etcd_port
peer_url=http://127.0.0.1:$peer_port
# A single member elects itself after one election timeout (default 1 s): a
# short one makes etcd ready sooner and costs nothing without peers.
# setsid: own session, so a terminal's ^C or a caller's process group kill
# does not reach them behind stop.sh's back.
setsid etcd --name tidesync --data-dir "$dir/etcd-data" \
  --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
  --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
  --initial-cluster "tidesync=$peer_url" --initial-cluster-state new \
  --logger zap --log-outputs stderr \
  --heartbeat-interval 10 --election-timeout 100 \
  </dev/null >"$dir/logs/etcd.log" 2>&1 &
pids+=($!)
echo "$!" >>"$dir/pids"
wait_for etcd "${pids[0]}" curl -fsS --max-time 2 "$etcd_url/health"
phase "etcd ready at $etcd_url"

# --- kube-apiserver -------------------------------------------------------------
kas_url=https://127.0.0.1:$kas_port
# shellcheck disable=SC2206 # word-splitting of extra args is intended
extra=(${KAS_EXTRA_ARGS:-})
setsid "$bin" \
  --advertise-address=127.0.0.1 \
  --bind-address=127.0.0.1 \
  --secure-port="$kas_port" \
  --insecure-port=0 \
  --cert-dir="$pki" \
  --tls-cert-file="$pki/serving.crt" \
  --tls-private-key-file="$pki/serving.key" \
  --client-ca-file="$pki/ca.crt" \
  --etcd-servers="$etcd_url" \
  --etcd-compaction-interval="${KAS_ETCD_COMPACTION_INTERVAL:-30s}" \
  --token-auth-file="$dir/tokens.csv" \
  --authorization-mode=RBAC \
  --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-cluster-ip-range=10.96.0.0/12 \
  --disable-admission-plugins=ServiceAccount \
  --endpoint-reconciler-type=none \
  --allow-privileged=true \
  --profiling=false \
  "${extra[@]}" \
  </dev/null >"$dir/logs/kube-apiserver.log" 2>&1 &
pids+=($!)
echo "$!" >>"$dir/pids"

# The admin token goes in a header file, not on a command line (ps shows those).
printf 'Authorization: Bearer %s\n' "$(<"$dir/admin.token")" >"$dir/.auth-header"
wait_for kube-apiserver "${pids[1]}" \
  curl -fsS --max-time 2 --cacert "$pki/ca.crt" -H "@$dir/.auth-header" "$kas_url/readyz"
rm -f "$dir/.auth-header"
phase "kube-apiserver ready at $kas_url"

# --- kubeconfigs and env --------------------------------------------------------
ca_data=$(base64 -w0 <"$pki/ca.crt")
write_kubeconfig() { # file user token
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tidesync-real
  cluster:
    server: $kas_url
    certificate-authority-data: $ca_data
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@tidesync-real
  context:
    cluster: tidesync-real
    user: $2
current-context: $2@tidesync-real
EOF
}
write_kubeconfig "$dir/kubeconfig" admin "$(<"$dir/admin.token")"
write_kubeconfig "$dir/kubeconfig-restricted" restricted "$(<"$dir/restricted.token")"
cat >"$dir/env" <<EOF
KAS_URL=$kas_url
KAS_PORT=$kas_port
ETCD_URL=$etcd_url
KAS_CA_FILE=$pki/ca.crt
KAS_ADMIN_TOKEN_FILE=$dir/admin.token
KAS_RESTRICTED_TOKEN_FILE=$dir/restricted.token
KAS_BIN=$bin
EOF

echo "kube-apiserver ready: $kas_url kubeconfig $dir/kubeconfig"
