#!/usr/bin/env bash
# Installs what tidesync needs on Debian 12 (idempotent, quiet when already done), then
# configures and builds the given CMake presets (default: release).
#   bash scripts/setup.sh [dev|release|asan ...]
# Also installs Node.js + npm (when `node`/`npm` are missing) and s3rver@3.7.1, the local S3
# server of the demo and the tests, into ${XDG_CACHE_HOME:-~/.cache}/tidesync/npm (outside the
# repo; scripts/s3rver.sh runs it from there).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ cmake ninja-build pkg-config git ca-certificates
  libcaf-dev libcurl4-openssl-dev libsimdjson-dev libyaml-cpp-dev libzstd-dev libarchive-dev
  prometheus-cpp-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev
  libssl-dev libcpp-httplib-dev libsodium-dev libgit2-dev rclone openssl clang-format
  openssh-client openssh-server python3)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Any Node.js with npm will do (Debian's nodejs + npm, or a NodeSource nodejs that bundles npm:
# installing Debian's npm next to that one would conflict).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

s3rver_version=3.7.1
npm_dir="${XDG_CACHE_HOME:-$HOME/.cache}/tidesync/npm"
s3rver_pkg="$npm_dir/node_modules/s3rver/package.json"
if ! grep -q "\"version\": \"$s3rver_version\"" "$s3rver_pkg" 2>/dev/null; then
  echo "setup: installing s3rver@$s3rver_version into $npm_dir"
  mkdir -p "$npm_dir"
  npm install --prefix "$npm_dir" --save-exact --no-audit --no-fund --no-update-notifier \
    --loglevel=error "s3rver@$s3rver_version" >/dev/null
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
