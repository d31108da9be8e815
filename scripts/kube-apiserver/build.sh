#!/usr/bin/env bash
# Builds a real kube-apiserver from Debian 12's `kubernetes` source package
# (upstream v1.20.2 with its complete vendor/ tree) and caches the binary at
#   ${XDG_CACHE_HOME:-$HOME/.cache}/tidesync/kube-apiserver/<source-version>/kube-apiserver
# so a machine builds it once. Prints the binary's path on success.
#
# Usage: build.sh            build if needed, print the path
#        build.sh --cached   print the path if already built, else exit 1
#                            (no installs, no build: for test suites that skip)
#
# Environment:
#   TIDESYNC_KAS_GOCACHE  keep Go's build cache here (default: a temp dir that
#                         is removed, so a rebuild is a clean build)
#   TIDESYNC_KAS_KEEP=1   keep the temp work dir (for debugging a failed build)
#
# Nothing is written to the repository: the source is unpacked and built in a
# temp dir that is removed on exit.
set -euo pipefail

readonly SRC_PKG=kubernetes
readonly GO_BIN_DIR=/usr/lib/go-1.19/bin
readonly DEB_SRC_FILE=/etc/apt/sources.list.d/tidesync-deb-src.sources
# Needed to build (golang, the two Go libraries that replace broken vendored
# copies, dpkg-dev for dpkg-source) and to run (etcd, openssl for start.sh).
readonly PACKAGES=(golang-1.19-go golang-github-modern-go-reflect2-dev
  golang-github-json-iterator-go-dev dpkg-dev etcd-server openssl)

die() {
  echo "build.sh: error: $*" >&2
  exit 1
}
note() { echo "build.sh: $*" >&2; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo -n "$@" || die "needs root for: $* (sudo -n failed)"
  else
    die "needs root for: $*"
  fi
}

cached_only=false
case "${1:-}" in
  --cached) cached_only=true ;;
  "") ;;
  -h | --help)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/tidesync/kube-apiserver"

# The newest source package version apt knows, which `apt-get source` fetches,
# e.g. 1.20.5+really1.20.2-1.1+deb12u1 (empty when no deb-src line knows it).
# apt-cache is used because it answers in 0.1 s where `apt-get source
# --print-uris` takes over a second, and start.sh asks on every start.
source_version() {
  local v best=""
  while read -r v; do
    if [[ -z $best ]] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
  done < <(apt-cache showsrc --only-source "$SRC_PKG" 2>/dev/null | sed -n 's/^Version: //p')
  echo "$best"
}

if $cached_only; then
  version=$(source_version)
  [[ -n $version ]] || { note "no deb-src entry for $SRC_PKG: not built"; exit 1; }
  bin="$cache_root/$version/kube-apiserver"
  [[ -x $bin ]] || { note "not built yet: $bin (run scripts/kube-apiserver/build.sh)"; exit 1; }
  echo "$bin"
  exit 0
fi

# --- apt: packages and the deb-src line, each only when missing ------------
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$p")
done

version=$(source_version)
if [[ -z $version ]]; then
  # Mirror the deb lines of debian.sources (bookworm + security) as deb-src.
  # shellcheck source=/dev/null
  [[ -r /etc/os-release ]] && . /etc/os-release
  [[ ${VERSION_CODENAME:-} == bookworm ]] ||
    die "expected Debian 12 (bookworm), found '${PRETTY_NAME:-unknown}'"
  note "adding deb-src entries in $DEB_SRC_FILE"
  as_root tee "$DEB_SRC_FILE" >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  as_root apt-get update -qq >/dev/null || die "apt-get update failed"
  version=$(source_version)
  [[ -n $version ]] || die "apt knows no source package '$SRC_PKG' even after adding $DEB_SRC_FILE"
fi

if ((${#missing[@]})); then
  note "installing ${missing[*]}"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/tmp/tidesync-kas-apt.$$.log 2>&1; then
    # A stale package list is the usual cause: refresh once and retry.
    as_root apt-get update -qq >/dev/null 2>&1 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${missing[@]}" >/tmp/tidesync-kas-apt.$$.log 2>&1 ||
      { tail -n 20 /tmp/tidesync-kas-apt.$$.log >&2; die "apt-get install ${missing[*]} failed"; }
  fi
  rm -f /tmp/tidesync-kas-apt.$$.log
fi

out_dir="$cache_root/$version"
bin="$out_dir/kube-apiserver"
if [[ -x $bin ]]; then
  echo "$bin"
  exit 0
fi

# "1.20.5+really1.20.2-1.1+deb12u1" -> upstream "1.20.2"; plain "1.2.3-1" -> "1.2.3".
upstream=${version#*really}
upstream=${upstream%%-*}
[[ $upstream =~ ^([0-9]+)\.([0-9]+)\.[0-9]+$ ]] ||
  die "cannot derive the upstream version from '$version'"
git_major=${BASH_REMATCH[1]}
git_minor=${BASH_REMATCH[2]}

[[ -x $GO_BIN_DIR/go ]] || die "$GO_BIN_DIR/go missing (golang-1.19-go)"
for d in github.com/modern-go/reflect2 github.com/json-iterator/go; do
  [[ -d /usr/share/gocode/src/$d ]] || die "/usr/share/gocode/src/$d missing"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/tidesync-kas.XXXXXX")
if [[ ${TIDESYNC_KAS_KEEP:-0} == 1 ]]; then
  trap 'note "work dir kept: $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi
log="$work/build.log"
fail() {
  [[ -f $log ]] && tail -n 40 "$log" >&2
  die "$*"
}

started=$(date +%s)
note "building kube-apiserver v$upstream from $SRC_PKG $version (about 5-10 min on 2 cores)"

# --- source: fetch and unpack (dpkg-source applies Debian's patches) -------
mkdir -p "$work/dl"
# apt downloads as the unprivileged _apt user when it can write the dir.
if [[ $(id -u) -eq 0 ]] && id _apt >/dev/null 2>&1; then chown _apt "$work/dl"; fi
(cd "$work/dl" && apt-get source -qq "$SRC_PKG=$version") >"$log" 2>&1 ||
  fail "apt-get source $SRC_PKG=$version failed"
src=$(find "$work/dl" -mindepth 1 -maxdepth 1 -type d -name "$SRC_PKG-*" | head -n1)
[[ -n $src && -d $src/vendor && -d $src/cmd/kube-apiserver ]] ||
  fail "unexpected source layout in $work/dl"

# GOPATH mode: module mode with -mod=vendor does not build this tree.
export GOPATH="$work/gopath"
mkdir -p "$GOPATH/src/k8s.io"
mv "$src" "$GOPATH/src/k8s.io/kubernetes"
rm -rf "$work/dl"
k8s="$GOPATH/src/k8s.io/kubernetes"
export PATH="$GO_BIN_DIR:$PATH" GO111MODULE=off GOPROXY=off GOFLAGS="" GOENV=off \
  CGO_ENABLED=0 GOCACHE="${TIDESYNC_KAS_GOCACHE:-$work/gocache}"

# --- fix 1: reflect2 1.0.1 faults in runtime.mapiterinit on Go >= 1.18 ------
# Replace it, and json-iterator (which must match it), with Debian's packages.
for d in github.com/modern-go/reflect2 github.com/json-iterator/go; do
  rm -rf "${k8s:?}/vendor/$d"
  mkdir -p "$k8s/vendor/$d"
  cp -rL "/usr/share/gocode/src/$d/." "$k8s/vendor/$d/"
done

cd "$k8s"

# --- fix 2: pkg/generated/openapi/zz_generated.openapi.go is not shipped ----
# Generate it as upstream's Makefile.generated_files does: every directory
# (staging/src/* named as vendor/*, the rest of vendor/ excluded) with a Go
# file that carries a `// +k8s:` tag and a `+k8s:openapi-gen=` tag, less
# code-generator and sample-apiserver.
note "generating pkg/generated/openapi/zz_generated.openapi.go"
nice -n 10 go build -o "$work/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen \
  >>"$log" 2>&1 || fail "building openapi-gen failed"
openapi_dirs=$(
  find -H . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune \
    -o -type f -name '*.go' -print0 |
    { xargs -0 grep -l '^// *+k8s:' || true; } |
    { xargs grep -l '+k8s:openapi-gen=' || true; } |
    sed -e 's|^\./staging/src|vendor|' -e 's|^\./||' -e 's|/[^/]*$||' |
    grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' |
    LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -
)
[[ -n $openapi_dirs ]] || fail "found no +k8s:openapi-gen packages"
nice -n 10 "$work/openapi-gen" \
  --input-dirs "$openapi_dirs" \
  --output-package k8s.io/kubernetes/pkg/generated/openapi \
  --output-file-base zz_generated.openapi \
  --go-header-file vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
  --report-filename "$work/openapi-violations.report" \
  --output-base "$GOPATH/src" >>"$log" 2>&1 || fail "openapi-gen failed"
[[ -s pkg/generated/openapi/zz_generated.openapi.go ]] ||
  fail "openapi-gen wrote no pkg/generated/openapi/zz_generated.openapi.go"

# --- build ------------------------------------------------------------------
note "compiling cmd/kube-apiserver"
# Both version packages, as upstream's hack/lib/version.sh does: --version
# and the kube-apiserver read component-base's, but /version is served by the
# kube-aggregator, which reads client-go's.
ldflags="-s -w"
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for vpkg in k8s.io/kubernetes/vendor/k8s.io/component-base/version \
  k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  ldflags+=" -X $vpkg.gitVersion=v$upstream -X $vpkg.gitMajor=$git_major"
  ldflags+=" -X $vpkg.gitMinor=$git_minor -X $vpkg.gitTreeState=dirty"
  ldflags+=" -X $vpkg.buildDate=$build_date"
done
nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$work/kube-apiserver" \
  ./cmd/kube-apiserver >>"$log" 2>&1 || fail "go build ./cmd/kube-apiserver failed"

got=$("$work/kube-apiserver" --version 2>&1) || fail "built binary does not run: $got"
[[ $got == "Kubernetes v$upstream" ]] || fail "built binary reports '$got', expected 'Kubernetes v$upstream'"

# Install atomically so a concurrent or interrupted run never sees half a file.
mkdir -p "$out_dir"
cp "$work/kube-apiserver" "$out_dir/.kube-apiserver.$$"
chmod 755 "$out_dir/.kube-apiserver.$$"
mv -f "$out_dir/.kube-apiserver.$$" "$bin"
note "built in $(($(date +%s) - started)) s"
echo "$bin"
