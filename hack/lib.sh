# Sourced (not run) by the scripts under hack/ that put a tool into the cache folder
# outside the repository: hack/kube/build.sh, hack/helm/build.sh, hack/kueue/build.sh,
# hack/prometheus/install.sh. Each keeps its tool in "$cache_root/<tool>-<version>-<key>",
# builds or fetches it at most once (a lock serialises concurrent callers) into a staging
# folder that replaces the cached one only when complete, and prints where it is.

# Where every tool's cache folder lives: $KUBENAS_KUBE_CACHE, else ~/.cache/kubenas.
cache_root="${KUBENAS_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubenas}"

# hash12 FILE...: the first 12 hex digits of the SHA-256 of the files, one after the other
# (the cache key: a changed recipe builds into a new folder).
hash12() { cat "$@" | sha256sum | cut -c1-12; }

# cache_lock NAME: holds "$cache_root/.NAME.lock" (on descriptor 9) until the script ends,
# so one caller builds while a second waits and then finds the result.
cache_lock() {
  mkdir -p "$cache_root"
  exec 9>"$cache_root/.$1.lock"
  flock 9
}

# require_go SCRIPT [VERSION]: exits 2 naming SCRIPT when Go is not installed.
require_go() {
  command -v go >/dev/null || { echo "$1: Go is not installed${2:+ (need $2+)}" >&2; exit 2; }
}

# stage_begin DEST: sets $tmp to a fresh "DEST.tmp.<pid>" holding an empty bin/, removed
# if the script fails before stage_commit.
stage_begin() {
  tmp="$1.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp/bin"
  trap 'rm -rf "$tmp"' EXIT
}

# stage_commit DEST: the complete staging folder becomes DEST.
stage_commit() {
  rm -rf "$1"; mv "$tmp" "$1"; trap - EXIT
}

# go_install_module BIN_DIR LDFLAGS MODULE/PATH@VERSION: `go install module@version` builds
# with the module's own go.mod (its go.sum checked against the Go checksum database),
# outside any workspace, into BIN_DIR.
go_install_module() {
  CGO_ENABLED=0 GOBIN="$1" GOFLAGS=-buildvcs=false GOWORK=off go install -trimpath -ldflags "$2" "$3"
}

# module_dir MODULE@VERSION: the module's folder in the Go module cache (downloaded if missing).
module_dir() {
  GOFLAGS=-mod=mod GOWORK=off go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}
