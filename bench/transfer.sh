#!/usr/bin/env bash
# Transfer benchmarks of issue 5: `tidesync sync` side by side with `rclone sync` in one run.
#   bash bench/transfer.sh [--runs N] [--cases 1,2,3,4] [--work DIR] [--tidesync PATH] [--keep] [--quick]
# Cases: 1) 10,000 files of 4 KiB (100 dirs x 100 files) local -> empty local directory;
# 2) one 1 GiB file local -> local; 3) 2,000 files of 4 KiB plus one 200 MiB file local ->
# s3rver (a fresh, pre-configured bucket per run); 4) a no-change re-sync of case 1.
# Each run times `rclone sync SRC DST` then `tidesync sync SRC DST` (ABAB...) on identical
# fresh destinations, with /usr/bin/time (wall, user+sys CPU, peak RSS), after one untimed
# warm-up read of the source (nothing is dropped from the page cache) and a `sync`.
# Every run is verified (diff -r, or rclone check --download against s3rver); a failed
# verification or a non-zero exit fails the benchmark. Prints a Markdown table of medians
# and writes every run to WORK/results.tsv (and the table to WORK/table.md).
# Defaults: 5 runs, all cases, WORK=/var/tmp/tidesync-bench, tidesync from TIDESYNC_BIN or
# build/release/tidesync. The generated data (WORK/data) is removed at exit unless --keep;
# results.tsv and table.md stay. --quick shrinks the data (100 files, 16 MiB) to smoke-test
# the harness: its numbers are not a benchmark.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=5
cases="1,2,3,4"
work=/var/tmp/tidesync-bench
tidesync="${TIDESYNC_BIN:-$repo/build/release/tidesync}"
keep=0
quick=0

die() {
  echo "transfer.sh: $*" >&2
  exit 1
}
usage() {
  sed -n '3p' "$0" | sed 's/^# *//' >&2
  exit 2
}

while (($#)); do
  case "$1" in
    --runs) runs="${2:-}"; shift 2 || usage ;;
    --cases) cases="${2:-}"; shift 2 || usage ;;
    --work) work="${2:-}"; shift 2 || usage ;;
    --tidesync) tidesync="${2:-}"; shift 2 || usage ;;
    --keep) keep=1; shift ;;
    --quick) quick=1; shift ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive number, not '$runs'"
[[ "$cases" =~ ^[1-4](,[1-4])*$ ]] || die "--cases must be a list of 1-4, not '$cases'"
[ -n "$work" ] || die "--work must not be empty"
[ -x "$tidesync" ] || die "no tidesync binary at $tidesync (build it, or pass --tidesync / TIDESYNC_BIN)"
tidesync="$(cd "$(dirname "$tidesync")" && pwd)/$(basename "$tidesync")"
"$tidesync" sync --help >/dev/null 2>&1 || die "$tidesync has no 'sync' command"
command -v rclone >/dev/null 2>&1 || die "rclone is not installed (bash scripts/setup.sh)"
if [ ! -x /usr/bin/time ]; then
  echo "transfer.sh: /usr/bin/time is missing; installing Debian's 'time' package (apt-get install -y time)" >&2
  apt-get install -y time >&2 || die "could not install 'time'; install it and re-run"
fi
has_case() { [[ ",$cases," == *",$1,"* ]]; }

# Sizes. A small file is 4 KiB everywhere.
if ((quick)); then
  c1_dirs=10 c1_per_dir=10 c2_mib=16 c3_dirs=2 c3_per_dir=50 c3_big_mib=16
else
  c1_dirs=100 c1_per_dir=100 c2_mib=1024 c3_dirs=20 c3_per_dir=100 c3_big_mib=200
fi

mkdir -p "$work"
work="$(cd "$work" && pwd)"
data="$work/data"
[ -e "$data" ] && die "$data exists (a previous run kept with --keep?); remove it or use another --work"
mkdir -p "$data"
results="$work/results.tsv"
s3dir="$data/s3rver"
s3_started=0

cleanup() {
  local rc=$?
  if ((s3_started)); then bash "$repo/scripts/s3rver.sh" stop "$s3dir" || true; fi
  if ((keep)); then
    echo "transfer.sh: kept $data" >&2
  else
    rm -rf "$data"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# rclone reads only our environment: an empty config file, no CA bundle override.
unset AWS_CA_BUNDLE
export RCLONE_CONFIG="$data/rclone.conf"
: >"$RCLONE_CONFIG"

# ---- data -------------------------------------------------------------------------------
# DIR with D subdirectories of N files of 4 KiB each (random content, one split per dir).
make_small_tree() {
  local dir="$1" d="$2" n="$3" i
  for ((i = 0; i < d; i++)); do
    local sub
    sub="$dir/$(printf 'd%03d' "$i")"
    mkdir -p "$sub"
    head -c $((n * 4096)) /dev/urandom | split -b 4096 -a 3 -d - "$sub/f"
  done
}

# Untimed warm-up: read every source byte once so both tools start on a warm page cache.
warm() { find "$1" -type f -print0 | xargs -0 cat >/dev/null; }

# ---- measurement ------------------------------------------------------------------------
printf 'case\ttool\trun\twall_s\tuser_s\tsys_s\tcpu_s\tpeak_rss_kib\tfiles\tbytes\tserver_cpu_s\tload1\n' >"$results"

s3rver_pid=""
# CPU seconds (user+sys) s3rver has used so far; empty without a server.
server_cpu() {
  [ -n "$s3rver_pid" ] || return 0
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' "/proc/$s3rver_pid/stat"
}

# measure CASE TOOL RUN FILES BYTES -- CMD...: times CMD, appends one row to results.tsv.
measure() {
  local c="$1" tool="$2" run="$3" files="$4" bytes="$5"
  shift 6
  local tfile="$data/time.out" log="$data/$tool-c$c-r$run.log"
  sync # flush the previous run's dirty pages so they are not charged to this one
  local s0 s1 t0 t1 load rc=0
  load="$(cut -d' ' -f1 /proc/loadavg)" # other work on the machine, for reading the noise
  s0="$(server_cpu)"
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%e %U %S %M' -o "$tfile" "$@" >"$log" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  s1="$(server_cpu)"
  if ((rc != 0)); then
    tail -n 20 "$log" >&2
    die "case $c run $run: $tool exited with $rc: $*"
  fi
  local u s m
  read -r _ u s m <"$tfile"
  awk -v c="$c" -v tool="$tool" -v run="$run" -v t0="$t0" -v t1="$t1" -v u="$u" -v s="$s" \
    -v m="$m" -v f="$files" -v b="$bytes" -v s0="$s0" -v s1="$s1" -v load="$load" 'BEGIN {
      srv = (s0 == "" ? "" : sprintf("%.2f", s1 - s0))
      printf "%s\t%s\t%s\t%.3f\t%.2f\t%.2f\t%.2f\t%s\t%s\t%s\t%s\t%s\n", c, tool, run, t1 - t0, u, s, u + s, m, f, b, srv, load
    }' >>"$results"
  tail -n 1 "$results" | awk -F'\t' '{ printf "  case %s %-8s run %s: %6.3f s wall, %5.2f s CPU, %6.1f MiB peak RSS\n", $1, $2, $3, $4, $7, $8 / 1024 }' >&2
}

# The command line of TOOL (rclone with default flags) for SRC DST, directly under
# /usr/bin/time (no wrapper shell, so the peak RSS is the tool's own).
tool_cmd() { # TOOL SRC DST
  case "$1" in
    rclone) echo rclone ;;
    tidesync) echo "$tidesync" ;;
  esac
}

verify_local() { # CASE TOOL RUN SRC DST
  diff -r "$4" "$5" >"$data/diff.out" 2>&1 ||
    die "case $1 run $3: $2's destination differs from the source: $(head -n 5 "$data/diff.out")"
}

count_files() { find "$1" -type f | wc -l; }
count_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }

# Cases 1 and 2: local -> empty local destination.
local_case() { # CASE SRC
  local c="$1" src="$2" files bytes r tool dst
  files="$(count_files "$src")" bytes="$(count_bytes "$src")"
  warm "$src"
  for ((r = 1; r <= runs; r++)); do
    for tool in rclone tidesync; do
      dst="$data/dst-c$c-$tool"
      rm -rf "$dst"
      measure "$c" "$tool" "$r" "$files" "$bytes" -- "$(tool_cmd "$tool")" sync "$src" "$dst"
      verify_local "$c" "$tool" "$r" "$src" "$dst"
      rm -rf "$dst"
    done
  done
}

# Case 4: the destination already equals the source (cp -a keeps ns mtimes, identical for
# both tools); nothing may be written: no file's ctime may move.
resync_case() { # SRC
  local src="$1" files bytes r tool dst
  files="$(count_files "$src")" bytes="$(count_bytes "$src")"
  for tool in rclone tidesync; do
    rm -rf "$data/dst-c4-$tool"
    cp -a "$src" "$data/dst-c4-$tool"
  done
  warm "$src"
  warm "$data/dst-c4-rclone"
  warm "$data/dst-c4-tidesync"
  for ((r = 1; r <= runs; r++)); do
    for tool in rclone tidesync; do
      dst="$data/dst-c4-$tool"
      touch "$data/marker"
      measure 4 "$tool" "$r" "$files" "$bytes" -- "$(tool_cmd "$tool")" sync "$src" "$dst"
      verify_local 4 "$tool" "$r" "$src" "$dst"
      local touched
      touched="$(find "$dst" -type f -cnewer "$data/marker" | head -n 3)"
      [ -z "$touched" ] || die "case 4 run $r: $tool rewrote files of an in-sync destination: $touched"
    done
  done
}

# Case 3: local -> s3rver, a bucket of its own per tool and run (configured at start, so
# paged listings work on Node 20, see docs/transfer-s3.md).
s3_case() { # SRC
  local src="$1" files bytes r tool buckets=() port
  files="$(count_files "$src")" bytes="$(count_bytes "$src")"
  for ((r = 1; r <= runs; r++)); do buckets+=("rclone-$r" "tidesync-$r"); done
  port="$(bash "$repo/scripts/s3rver.sh" start "$s3dir" 0 "${buckets[@]}" | tail -n 1)"
  s3_started=1
  s3rver_pid="$(cat "$s3dir/s3rver.pid")"
  export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other \
    RCLONE_CONFIG_BENCH_ENDPOINT="http://127.0.0.1:$port" RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=S3RVER \
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=S3RVER RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true
  warm "$src"
  for ((r = 1; r <= runs; r++)); do
    for tool in rclone tidesync; do
      measure 3 "$tool" "$r" "$files" "$bytes" -- "$(tool_cmd "$tool")" sync "$src" "BENCH:$tool-$r"
      # --download compares bytes: s3rver's multipart ETags look like MD5s but are not.
      rclone check --download "$src" "BENCH:$tool-$r" >"$data/check.out" 2>&1 ||
        die "case 3 run $r: rclone check of $tool's bucket failed: $(tail -n 5 "$data/check.out")"
    done
  done
  bash "$repo/scripts/s3rver.sh" stop "$s3dir"
  s3_started=0
  s3rver_pid=""
}

echo "transfer.sh: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), kernel $(uname -r)" >&2
echo "transfer.sh: $(rclone version | head -n 1) vs $tidesync (tree $(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)); $runs run(s), cases $cases; work $work" >&2

if has_case 1 || has_case 4; then
  echo "transfer.sh: making $((c1_dirs * c1_per_dir)) files of 4 KiB" >&2
  make_small_tree "$data/src-c1" "$c1_dirs" "$c1_per_dir"
fi
if has_case 1; then echo "case 1: small files, local -> local" >&2; local_case 1 "$data/src-c1"; fi
if has_case 2; then
  echo "transfer.sh: making one file of $c2_mib MiB" >&2
  mkdir -p "$data/src-c2"
  head -c $((c2_mib << 20)) /dev/urandom >"$data/src-c2/big.bin"
  echo "case 2: one large file, local -> local" >&2
  local_case 2 "$data/src-c2"
  rm -rf "$data/src-c2"
fi
if has_case 3; then
  echo "transfer.sh: making $((c3_dirs * c3_per_dir)) files of 4 KiB and one of $c3_big_mib MiB" >&2
  make_small_tree "$data/src-c3" "$c3_dirs" "$c3_per_dir"
  head -c $((c3_big_mib << 20)) /dev/urandom >"$data/src-c3/big.bin"
  echo "case 3: small files plus one large, local -> s3rver" >&2
  s3_case "$data/src-c3"
fi
if has_case 4; then echo "case 4: no-change re-sync of case 1" >&2; resync_case "$data/src-c1"; fi

# ---- report -----------------------------------------------------------------------------
# Medians per case and tool; ratios are tidesync / rclone (below 1: tidesync is faster or
# leaner). Throughput from the median wall time: files/s for 1 and 4, MiB/s for 2 and 3.
awk -F'\t' -v runs="$runs" '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  NR > 1 {
    k = $1 SUBSEP $2
    wall[k] = wall[k] " " $4; cpu[k] = cpu[k] " " $7; rss[k] = rss[k] " " $8
    files[$1] = $9; bytes[$1] = $10; seen[$1] = 1
  }
  END {
    name[1] = sprintf("1: %d × 4 KiB, local→local", files[1])
    name[2] = sprintf("2: one %d MiB file, local→local", bytes[2] / 1048576)
    name[3] = sprintf("3: %d × 4 KiB + %d MiB, local→s3rver", files[3] - 1, (bytes[3] - (files[3] - 1) * 4096) / 1048576)
    name[4] = sprintf("4: no-change re-sync, %d files", files[4])
    print "| case | tool | wall s | CPU s | peak RSS MiB | throughput | tidesync/rclone wall · CPU · RSS |"
    print "|---|---|---:|---:|---:|---:|---|"
    for (c = 1; c <= 4; c++) {
      if (!seen[c]) continue
      for (t = 0; t < 2; t++) {
        tool = t ? "tidesync" : "rclone"; k = c SUBSEP tool
        w[t] = median(wall[k]); u[t] = median(cpu[k]); m[t] = median(rss[k]) / 1024
        tp = (c == 1 || c == 4) ? sprintf("%.0f files/s", files[c] / w[t]) : sprintf("%.1f MiB/s", bytes[c] / 1048576 / w[t])
        ratio = t ? sprintf("%.2f · %.2f · %.2f", w[1] / w[0], (u[0] > 0 ? u[1] / u[0] : 0), m[1] / m[0]) : ""
        printf "| %s | %s | %.3f | %.2f | %.1f | %s | %s |\n", (t ? "" : name[c]), tool, w[t], u[t], m[t], tp, ratio
      }
    }
    printf "\nMedians of %d run(s) per tool; ratios below 1 favour tidesync.\n", runs
  }' "$results" | tee "$work/table.md"
echo "transfer.sh: raw numbers in $results" >&2
