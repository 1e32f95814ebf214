#!/bin/sh
# Pin every package the images pip-install, with hashes (pip install --require-hashes).
# Run after changing the dependencies in pyproject.toml (tests/operator/test_deploy.py
# checks that the .in files match it) and commit the .txt files:
#   sh deploy/docker/lock.sh
# Needs uv (pip install uv). Python 3.11 on x86_64 Linux, as the images.
set -eu
cd "$(dirname "$0")"
for image in operator trainer; do
  uv pip compile "$image.in" --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --generate-hashes --no-header --quiet -o "$image.txt"
done
