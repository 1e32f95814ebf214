#!/usr/bin/env bash
# Builds the helm binary that the chart tests (tests/e2e/test_helm.py) use, from the
# helm.sh/helm/v3 Go module at the version below, once, into a cache folder outside the
# repository keyed by that version and by the hash of this script and hack/lib.sh, like
# hack/kube/build.sh. Prints the path of the binary on its last line.
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
. "$here/../lib.sh"
dest="$cache_root/helm-$version-$(hash12 "$here/build.sh" "$here/../lib.sh")"

cache_lock "build-helm-$version"
if [ -x "$dest/bin/helm" ]; then echo "$dest/bin/helm"; exit 0; fi

require_go build.sh
stage_begin "$dest"
echo "build.sh: building helm $version into $dest (first time: a few minutes)" >&2
start=$SECONDS
# The Kubernetes version `helm template` assumes (.Capabilities.KubeVersion, a chart's
# kubeVersion check) is that of helm's client-go, as helm's own Makefile sets it.
k8s_flags=""
for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  k8s_flags+=" -X $p.k8sVersionMajor=$k8s_major -X $p.k8sVersionMinor=$k8s_minor"
done
go_install_module "$tmp/bin" \
  "-s -w -X helm.sh/helm/v3/internal/version.version=$version -X helm.sh/helm/v3/internal/version.gitTreeState=clean $k8s_flags" \
  "helm.sh/helm/v3/cmd/helm@$version"
echo "build.sh: helm built in $((SECONDS - start)) s" >&2
stage_commit "$dest"
echo "$dest/bin/helm"
