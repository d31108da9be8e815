#!/usr/bin/env bash
# The controller at scale (docs/benchmarks.md, "Controller at scale"): runs bench/controller_scale
# in the variants the doc reports. Each variant starts its own `tidesync simulate` and
# `tidesync controller` per run and stops them by PID.
#
#   scripts/bench-controller.sh [BUILD_DIR] [-- extra controller_scale flags]
#
# BUILD_DIR defaults to build/release (cmake --preset release, with TIDESYNC_BUILD_BENCH=ON);
# it must hold `tidesync` and `bench/controller_scale`. OBJECTS (default 5000) and RUNS
# (default 3) override the size; VARIANTS picks a subset (e.g. VARIANTS="fast shared").
set -euo pipefail

cd "$(dirname "$0")/.."
build=${1:-build/release}
shift || true
[[ "${1:-}" == "--" ]] && shift
extra=("$@")

bench="$build/bench/controller_scale"
if [[ ! -x "$bench" || ! -x "$build/tidesync" ]]; then
  echo "build first: cmake --build $build --target tidesync controller_scale" >&2
  exit 2
fi
objects=${OBJECTS:-5000}
runs=${RUNS:-3}
variants=${VARIANTS:-"unlimited fast shared default"}

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for v in $variants; do
  case $v in
    # No effective client limit: the controller and the API server run as fast as the CPUs let
    # them (the controller's own cost per object).
    unlimited) args=(--qps 100000 --burst 100000 --runs "$runs") ;;
    # 1000 qps, burst 2000: 16 requests per object make this the bound (80,000 requests / 1000/s).
    fast) args=(--qps 1000 --burst 2000 --runs "$runs") ;;
    # The shipped default (50 qps, burst 100): the client limit bounds the throughput.
    default) args=(--runs 1) ;;
    # Groups of 10 share a destination bucket: locks serialise each group.
    shared) args=(--qps 100000 --burst 100000 --shared-destinations 10 --runs "$runs") ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  echo "## variant $v"
  "$bench" --objects "$objects" --crds deploy/crds --tidesync "$build/tidesync" "${args[@]}" \
    "${extra[@]}"
done
