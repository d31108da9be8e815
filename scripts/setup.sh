#!/usr/bin/env bash
# Installs what tidesync needs on Debian 12 (idempotent, quiet when already done), then
# configures and builds the given CMake presets (default: release).
#   bash scripts/setup.sh [dev|release|asan ...]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ cmake ninja-build pkg-config git ca-certificates
  libcaf-dev libcurl4-openssl-dev libsimdjson-dev libyaml-cpp-dev libzstd-dev libarchive-dev
  prometheus-cpp-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev
  libssl-dev libcpp-httplib-dev rclone openssl clang-format)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v kubectl >/dev/null 2>&1; then
  echo "setup: warning: kubectl is not installed; the kubectl integration tests will be skipped" >&2
fi

presets=("$@")
((${#presets[@]})) || presets=(release)
jobs="${TIDESYNC_BUILD_JOBS:-$(nproc)}"
for preset in "${presets[@]}"; do
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
done
