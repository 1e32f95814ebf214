#!/usr/bin/env bash
# Builds the helm binary that the chart tests (tests/e2e/test_helm.py) use, from the
# helm.sh/helm/v3 Go module at the version below, once, into a cache folder outside the
# repository keyed by that version and by the hash of this script, like hack/kube/build.sh.
# Prints the path of the binary on its last line.
#
#   hack/helm/build.sh                 # build if missing, print the binary's path
#   KUBENAS_KUBE_CACHE=/some/dir hack/helm/build.sh
#
# Needs Go and the Go module proxy (helm's own go.mod and go.sum pin its dependencies,
# checked against the Go checksum database); nothing else is downloaded.
set -euo pipefail
version="v3.22.0"
k8s_major=1 k8s_minor=37   # helm v3.22.0 builds with k8s.io/client-go v0.37
here="$(cd "$(dirname "$0")" && pwd)"
key="$(sha256sum < "$here/build.sh" | cut -c1-12)"
root="${KUBENAS_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubenas}"
dest="$root/helm-$version-$key"

mkdir -p "$root"
exec 9>"$root/.build-helm-$version.lock"
flock 9   # one build at a time; a second caller waits and then finds the binary
if [ -x "$dest/bin/helm" ]; then echo "$dest/bin/helm"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: Go is not installed" >&2; exit 2; }
tmp="$dest.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp/bin"
trap 'rm -rf "$tmp"' EXIT
echo "build.sh: building helm $version into $dest (first time: a few minutes)" >&2
start=$SECONDS
# The Kubernetes version `helm template` assumes (.Capabilities.KubeVersion, a chart's
# kubeVersion check) is that of helm's client-go, as helm's own Makefile sets it.
k8s_flags=""
for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  k8s_flags+=" -X $p.k8sVersionMajor=$k8s_major -X $p.k8sVersionMinor=$k8s_minor"
done
# `go install module@version` builds with the module's own go.mod, outside any workspace.
CGO_ENABLED=0 GOBIN="$tmp/bin" GOFLAGS=-buildvcs=false GOWORK=off go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version -X helm.sh/helm/v3/internal/version.gitTreeState=clean $k8s_flags" \
  "helm.sh/helm/v3/cmd/helm@$version"
echo "build.sh: helm built in $((SECONDS - start)) s" >&2
rm -rf "$dest"; mv "$tmp" "$dest"; trap - EXIT
echo "$dest/bin/helm"
