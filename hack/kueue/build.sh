#!/usr/bin/env bash
# Builds Kueue's controller manager (sigs.k8s.io/kueue/cmd/kueue) for the real-API-server
# tier's Kueue test (tests/e2e/test_kueue.py) from the Go module at the version below, once,
# into a cache folder outside the repository keyed by that version and by the hash of this
# script and hack/lib.sh, like hack/helm/build.sh. Kueue's install manifests from the same
# module zip (config/components: the CRDs, webhook configurations and RBAC its release
# manifests are made from) are copied next to the binary, into config/. Prints the folder
# (holding bin/kueue and config/) on its last line (tests/realtier/kueue.py starts Kueue
# from it).
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
. "$here/../lib.sh"
dest="$cache_root/kueue-$version-$(hash12 "$here/build.sh" "$here/../lib.sh")"

cache_lock "build-kueue-$version"
if [ -x "$dest/bin/kueue" ] && [ -d "$dest/config/crd/bases" ]; then echo "$dest"; exit 0; fi

require_go build.sh
stage_begin "$dest"
echo "build.sh: building kueue $version into $dest (first time: several minutes)" >&2
start=$SECONDS
go_install_module "$tmp/bin" "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$version" \
  "sigs.k8s.io/kueue/cmd/kueue@$version"
echo "build.sh: kueue built in $((SECONDS - start)) s" >&2
moddir="$(module_dir "sigs.k8s.io/kueue@$version")"
[ -d "$moddir/config/components/crd/bases" ] || { echo "build.sh: no config/components in $moddir" >&2; exit 1; }
cp -R "$moddir/config/components" "$tmp/config"
chmod -R u+w "$tmp/config"   # the module cache is read-only
stage_commit "$dest"
echo "$dest"
