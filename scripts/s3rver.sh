#!/usr/bin/env bash
# A local S3 server (s3rver@3.7.1, installed by scripts/setup.sh) for the demo and the tests.
#   bash scripts/s3rver.sh start DIR PORT [BUCKET ...]   # prints the port it listens on
#   bash scripts/s3rver.sh stop DIR
#   bash scripts/s3rver.sh check                         # exit 0 when node and s3rver are there
# start: listens on 127.0.0.1 only (PORT 0 picks a free port), keeps the buckets in DIR/buckets,
# its pid in DIR/s3rver.pid, the port in DIR/port and its log in DIR/s3rver.log; returns once
# it answers S3 requests and lists every configured bucket. Without BUCKETs it configures the
# buckets of deploy/examples: demo-source, demo-backup, demo-config, demo-site, imports, photos,
# photos-backup.
# Credentials are s3rver's fixed ones: access key and secret S3RVER.
# stop: SIGTERM to the pid in DIR/s3rver.pid (SIGKILL after 5 s), then removes the pid file.
# TIDESYNC_S3RVER_JS overrides where s3rver's bin/s3rver.js is.
set -euo pipefail

npm_dir="${XDG_CACHE_HOME:-$HOME/.cache}/tidesync/npm"
s3rver_js="${TIDESYNC_S3RVER_JS:-$npm_dir/node_modules/s3rver/bin/s3rver.js}"
default_buckets=(demo-source demo-backup demo-config demo-site imports photos photos-backup)
start_timeout="${TIDESYNC_S3RVER_START_TIMEOUT:-20}"

die() {
  echo "s3rver.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '3,5p' "$0" | sed 's/^# *//' >&2
  exit 2
}

# Prints what is missing, if anything; exit 0 when s3rver can run.
check() {
  local missing=()
  command -v node >/dev/null 2>&1 || missing+=("node (apt-get install nodejs)")
  [ -f "$s3rver_js" ] || missing+=("s3rver@3.7.1 at $s3rver_js")
  if ((${#missing[@]})); then
    echo "s3rver.sh: missing ${missing[*]}; run: bash scripts/setup.sh" >&2
    return 3
  fi
}

# A zombie (exited, not yet reaped by its parent) counts as gone.
pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)"
  [ "$state" != Z ]
}

# Our s3rver, not another process that got the pid of one long gone.
is_s3rver() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q "s3rver"; }

start() {
  local dir="$1" port="$2"
  shift 2
  local buckets=("$@")
  ((${#buckets[@]})) || buckets=("${default_buckets[@]}")
  if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port > 65535)); then
    die "PORT must be a number 0-65535, not '$port'"
  fi
  check
  command -v rclone >/dev/null 2>&1 || die "rclone is not installed; run: bash scripts/setup.sh"
  mkdir -p "$dir/buckets"
  dir="$(cd "$dir" && pwd)"
  local old
  old="$(cat "$dir/s3rver.pid" 2>/dev/null || true)"
  if pid_alive "$old" && is_s3rver "$old"; then
    die "already running (pid $old, $dir/s3rver.pid); stop it first: bash scripts/s3rver.sh stop $dir"
  fi
  rm -f "$dir/s3rver.pid" "$dir/port"
  local args=(--openssl-legacy-provider "$s3rver_js" -d "$dir/buckets" -a 127.0.0.1 -p "$port")
  # Without a configured bucket, paged ListObjectsV2 answers 500 on Node 20 (TOOLCHAIN.md).
  for b in "${buckets[@]}"; do args+=(--configure-bucket "$b"); done
  node "${args[@]}" >"$dir/s3rver.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/s3rver.pid"

  # Ready when it printed its address (the real port when PORT is 0) and lists our buckets.
  local deadline=$((SECONDS + start_timeout)) bound="" listed=""
  while :; do
    pid_alive "$pid" || {
      rm -f "$dir/s3rver.pid"
      die "s3rver exited at start; its log ($dir/s3rver.log):
$(tail -n 20 "$dir/s3rver.log")"
    }
    if [ -z "$bound" ]; then
      bound="$(sed -n 's/^S3rver listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$dir/s3rver.log")"
    fi
    if [ -n "$bound" ]; then
      listed="$(env -u AWS_CA_BUNDLE \
        RCLONE_CONFIG_S3RVERCHECK_TYPE=s3 RCLONE_CONFIG_S3RVERCHECK_PROVIDER=Other \
        RCLONE_CONFIG_S3RVERCHECK_ENV_AUTH=false RCLONE_CONFIG_S3RVERCHECK_ACCESS_KEY_ID=S3RVER \
        RCLONE_CONFIG_S3RVERCHECK_SECRET_ACCESS_KEY=S3RVER \
        RCLONE_CONFIG_S3RVERCHECK_ENDPOINT="http://127.0.0.1:$bound" \
        RCLONE_CONFIG_S3RVERCHECK_REGION=us-east-1 RCLONE_CONFIG_S3RVERCHECK_FORCE_PATH_STYLE=true \
        rclone lsf --config /dev/null --low-level-retries 1 --retries 1 --contimeout 2s \
        --timeout 5s S3RVERCHECK: 2>/dev/null || true)"
      local all=1
      for b in "${buckets[@]}"; do grep -qx "$b/" <<<"$listed" || all=0; done
      ((all)) && break
    fi
    if ((SECONDS >= deadline)); then
      kill "$pid" 2>/dev/null || true
      rm -f "$dir/s3rver.pid"
      die "s3rver did not answer within ${start_timeout}s on 127.0.0.1:${bound:-$port}; its log ($dir/s3rver.log):
$(tail -n 20 "$dir/s3rver.log")"
    fi
    sleep 0.1 # poll interval
  done
  echo "$bound" >"$dir/port"
  echo "$bound"
}

stop() {
  local dir="$1" pid
  [ -f "$dir/s3rver.pid" ] || return 0
  pid="$(cat "$dir/s3rver.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || die "$dir/s3rver.pid does not hold a pid"
  if pid_alive "$pid" && is_s3rver "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 5))
    while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.05; done
    if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    # Reaped by its parent (the shell that started it), or already gone: wait only for ours.
    wait "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/s3rver.pid" "$dir/port"
}

case "${1:-}" in
  start)
    (($# >= 3)) || usage
    start "${@:2}"
    ;;
  stop)
    (($# == 2)) || usage
    stop "$2"
    ;;
  check) check ;;
  -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) usage ;;
esac
