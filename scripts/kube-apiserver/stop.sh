#!/usr/bin/env bash
# Stops what start.sh DIR started: TERM to each PID in DIR/pids (in reverse
# order: kube-apiserver before etcd), waits up to KAS_STOP_TIMEOUT seconds
# (default 15) for each, then KILL. Removes DIR/pids. Leaves DIR's files.
#
# Usage: stop.sh DIR
set -euo pipefail

die() {
  echo "stop.sh: error: $*" >&2
  exit 1
}
[[ $# -eq 1 && -n $1 ]] || die "usage: stop.sh DIR"
pidfile=$1/pids
if [[ ! -e $pidfile ]]; then
  echo "stop.sh: nothing to stop ($pidfile missing)" >&2
  exit 0
fi

timeout_s=${KAS_STOP_TIMEOUT:-15}
mapfile -t pids < <(grep -E '^[0-9]+$' "$pidfile" || true)

# A recycled PID must not be killed: only signal processes whose command is
# one we start.
ours() {
  local comm
  comm=$(cat "/proc/$1/comm" 2>/dev/null) || return 1
  [[ $comm == etcd || $comm == kube-apiserver ]]
}

for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
  pid=${pids[i]}
  ours "$pid" || continue
  kill -TERM "$pid" 2>/dev/null || continue
  deadline=$((SECONDS + timeout_s))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.1 # poll interval
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "stop.sh: $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) ignored TERM for ${timeout_s}s: KILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
done
rm -f "$pidfile"
