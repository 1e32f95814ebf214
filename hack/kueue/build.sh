#!/usr/bin/env bash
# Builds Kueue's controller manager (sigs.k8s.io/kueue/cmd/kueue) for the real-API-server
# tier's Kueue test (tests/e2e/test_kueue.py) from the Go module at the version below, once,
# into a cache folder outside the repository keyed by that version and by the hash of this
# script, like hack/helm/build.sh. Kueue's install manifests from the same module zip
# (config/components: the CRDs, webhook configurations and RBAC its release manifests are
# made from) are copied next to the binary, into config/. Prints the folder (holding
# bin/kueue and config/) on its last line (tests/realtier/kueue.py starts Kueue from it).
#
#   hack/kueue/build.sh                # build if missing, print the folder
#   KUBENAS_KUBE_CACHE=/some/dir hack/kueue/build.sh
#
# Needs Go and the Go module proxy (Kueue's own go.mod and go.sum pin its dependencies,
# k8s.io/* v0.35, checked against the Go checksum database; it has no replace directives, so
# `go install module@version` builds it as released); nothing else is downloaded.
set -euo pipefail
version="v0.17.0"
here="$(cd "$(dirname "$0")" && pwd)"
key="$(sha256sum < "$here/build.sh" | cut -c1-12)"
root="${KUBENAS_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubenas}"
dest="$root/kueue-$version-$key"

mkdir -p "$root"
exec 9>"$root/.build-kueue-$version.lock"
flock 9   # one build at a time; a second caller waits and then finds the binary
if [ -x "$dest/bin/kueue" ] && [ -d "$dest/config/crd/bases" ]; then echo "$dest"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: Go is not installed" >&2; exit 2; }
tmp="$dest.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp/bin"
trap 'rm -rf "$tmp"' EXIT
echo "build.sh: building kueue $version into $dest (first time: several minutes)" >&2
start=$SECONDS
# `go install module@version` builds with the module's own go.mod, outside any workspace.
CGO_ENABLED=0 GOBIN="$tmp/bin" GOFLAGS=-buildvcs=false GOWORK=off go install -trimpath \
  -ldflags "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$version" \
  "sigs.k8s.io/kueue/cmd/kueue@$version"
echo "build.sh: kueue built in $((SECONDS - start)) s" >&2
moddir="$(GOFLAGS=-mod=mod GOWORK=off go mod download -json "sigs.k8s.io/kueue@$version" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -d "$moddir/config/components/crd/bases" ] || { echo "build.sh: no config/components in $moddir" >&2; exit 1; }
cp -R "$moddir/config/components" "$tmp/config"
chmod -R u+w "$tmp/config"   # the module cache is read-only
rm -rf "$dest"; mv "$tmp" "$dest"; trap - EXIT
echo "$dest"
