#!/usr/bin/env bash
# A loopback-only OpenSSH server (openssh-server, installed by scripts/setup.sh) for the SFTP tests.
#   bash scripts/sshd.sh start DIR [USER_PUBKEY]   # prints the port it listens on (last line)
#   bash scripts/sshd.sh stop DIR
#   bash scripts/sshd.sh check                      # exit 0 when sshd and ssh-keygen are there
# start: runs /usr/sbin/sshd -D as the current user on 127.0.0.1 and a free port, with a host key
# generated in DIR, `Subsystem sftp internal-sftp`, public-key authentication only
# (AuthorizedKeysFile DIR/authorized_keys), its pid in DIR/sshd.pid, the port in DIR/port and its
# log in DIR/sshd.log; returns once the port accepts connections. Without USER_PUBKEY it makes a
# client key DIR/id_ed25519 and authorizes DIR/id_ed25519.pub. Ed25519, not RSA: libssh2 1.10
# signs RSA only with ssh-rsa (SHA-1), which OpenSSH 8.8+ refuses; it reads OpenSSH-format
# Ed25519 keys, and so does rclone.
# stop: SIGTERM to the pid in DIR/sshd.pid (SIGKILL after 5 s), then removes the pid file.
set -euo pipefail

sshd_bin="${TIDESYNC_SSHD:-/usr/sbin/sshd}"
start_timeout="${TIDESYNC_SSHD_START_TIMEOUT:-10}"

die() {
  echo "sshd.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '3,5p' "$0" | sed 's/^# *//' >&2
  exit 2
}

check() {
  local missing=()
  [ -x "$sshd_bin" ] || missing+=("$sshd_bin (apt-get install openssh-server)")
  command -v ssh-keygen >/dev/null 2>&1 || missing+=("ssh-keygen (apt-get install openssh-client)")
  command -v python3 >/dev/null 2>&1 || missing+=("python3")
  if ((${#missing[@]})); then
    echo "sshd.sh: missing ${missing[*]}; run: bash scripts/setup.sh" >&2
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

# Our sshd, not another process that got the pid of one long gone.
is_sshd() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q "sshd"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  local dir="$1" pubkey="${2:-}"
  check
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local old
  old="$(cat "$dir/sshd.pid" 2>/dev/null || true)"
  if pid_alive "$old" && is_sshd "$old"; then
    die "already running (pid $old, $dir/sshd.pid); stop it first: bash scripts/sshd.sh stop $dir"
  fi
  rm -f "$dir/sshd.pid" "$dir/port"
  # The privilege separation directory sshd insists on when it runs as root.
  if [ "$(id -u)" = 0 ]; then mkdir -p /run/sshd && chmod 755 /run/sshd; fi

  [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C tidesync-test-host -f "$dir/host_ed25519"
  if [ -z "$pubkey" ]; then
    [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C tidesync-test -f "$dir/id_ed25519"
    pubkey="$dir/id_ed25519.pub"
  fi
  [ -f "$pubkey" ] || die "no public key at $pubkey"
  cp "$pubkey" "$dir/authorized_keys"
  chmod 600 "$dir/authorized_keys" "$dir/host_ed25519"

  local pid port
  for _ in 1 2 3 4 5; do
    port="$(free_port)"
    cat >"$dir/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
UseDNS no
Subsystem sftp internal-sftp
CONF
    # -D: stays in the foreground (its pid is ours); -e -E: the log goes to a file.
    "$sshd_bin" -D -e -f "$dir/sshd_config" -E "$dir/sshd.log" </dev/null >/dev/null 2>&1 &
    pid=$!
    local deadline=$((SECONDS + start_timeout)) up=0
    while pid_alive "$pid"; do
      if port_open "$port"; then
        up=1
        break
      fi
      ((SECONDS < deadline)) || break
      sleep 0.05 # poll interval
    done
    if ((up)); then
      echo "$pid" >"$dir/sshd.pid"
      echo "$port" >"$dir/port"
      echo "$port"
      return 0
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # Another process took the port between the probe and the bind: try another one.
    grep -q "Address already in use" "$dir/sshd.log" 2>/dev/null || break
  done
  die "sshd did not start on 127.0.0.1; its log ($dir/sshd.log):
$(tail -n 20 "$dir/sshd.log" 2>/dev/null)"
}

stop() {
  local dir="$1" pid
  [ -f "$dir/sshd.pid" ] || return 0
  pid="$(cat "$dir/sshd.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || die "$dir/sshd.pid does not hold a pid"
  if pid_alive "$pid" && is_sshd "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 5))
    while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.05; done
    if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/sshd.pid" "$dir/port"
}

case "${1:-}" in
  start)
    (($# >= 2 && $# <= 3)) || usage
    start "${@:2}"
    ;;
  stop)
    (($# == 2)) || usage
    stop "$2"
    ;;
  check) check ;;
  -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) usage ;;
esac
