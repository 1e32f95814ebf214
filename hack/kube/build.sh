#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kube-controller-manager for the real-API-server test
# tier (tests/realtier) from the Go modules pinned in this folder's go.mod, once, into a
# cache folder outside the repository keyed by the Kubernetes version and by the hash of
# go.mod, go.sum and the wrappers. Prints that folder (holding bin/) on its last line.
#
#   hack/kube/build.sh                 # build if missing, print the folder
#   KUBENAS_KUBE_CACHE=/some/dir hack/kube/build.sh
#
# Needs Go (go.mod's version) and the Go module proxy; nothing else is downloaded.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../lib.sh"
cd "$here"

version="$(awk '($1 == "k8s.io/kubernetes" && $2 ~ /^v/) {print $2} ($1 == "require" && $2 == "k8s.io/kubernetes") {print $3}' go.mod | head -1)"
[ -n "$version" ] || { echo "build.sh: no k8s.io/kubernetes version in go.mod" >&2; exit 2; }
key="$(cat go.mod go.sum cmd/*/main.go | sha256sum | cut -c1-12)"
dest="$cache_root/kube-$version-$key"
components=(etcd kube-apiserver kube-controller-manager)

have_all() { for c in "${components[@]}"; do [ -x "$dest/bin/$c" ] || return 1; done; }

cache_lock "build-$version"
if have_all; then echo "$dest"; exit 0; fi

require_go build.sh "$(awk '$1=="go"{print $2}' go.mod)"
major="${version#v}"; minor="${major#*.}"; major="${major%%.*}"; minor="${minor%%.*}"
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=$major -X $p.gitMinor=$minor"
  ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
stage_begin "$dest"
echo "build.sh: building ${components[*]} $version into $dest (first time: 10-25 min on 2 cores)" >&2
for c in "${components[@]}"; do
  start=$SECONDS
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/bin/$c" "./cmd/$c"
  echo "build.sh: $c built in $((SECONDS - start)) s" >&2
done
stage_commit "$dest"
echo "$dest"
