#!/bin/sh
# Copy the CRDs (single source of truth: crds/) into the kustomize base.
set -eu
cd "$(dirname "$0")/.."
cp crds/kubenas.io_nasexperiments.yaml crds/kubenas.io_nastrials.yaml deploy/crds/
