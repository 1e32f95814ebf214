#!/usr/bin/env bash
# Fetches KServe's own published InferenceService CRD (config/crd/full/
# serving.kserve.io_inferenceservices.yaml, ~1 MB) from its Go module through the Go
# module proxy, once, into a cache folder outside the repository keyed by the version.
# Prints the CRD file's path on its last line. Used by tests/e2e/test_deploy.py.
#
#   hack/kserve/crd.sh                 # fetch if missing, print the path
#   KSERVE_VERSION=v0.15.2 KUBENAS_KSERVE_CACHE=/some/dir hack/kserve/crd.sh
#
# Needs Go and the Go module proxy; nothing else is downloaded.
set -euo pipefail
version="${KSERVE_VERSION:-v0.15.2}"   # pinned: the version the tests prove against
root="${KUBENAS_KSERVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubenas}"
dest="$root/kserve-$version/serving.kserve.io_inferenceservices.yaml"
if [ -s "$dest" ]; then echo "$dest"; exit 0; fi
command -v go >/dev/null || { echo "crd.sh: Go is not installed" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init kserve-crd >/dev/null 2>&1
dir="$(go mod download -json "github.com/kserve/kserve@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -n "$dir" ] || { echo "crd.sh: go mod download gave no folder for github.com/kserve/kserve@$version" >&2; exit 2; }
mkdir -p "$(dirname "$dest")"
cp "$dir/config/crd/full/serving.kserve.io_inferenceservices.yaml" "$dest.tmp.$$"
chmod 644 "$dest.tmp.$$"
mv "$dest.tmp.$$" "$dest"
echo "$dest"
