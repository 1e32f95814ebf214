#!/usr/bin/env bash
# Puts prometheus and promtool for the monitoring tests (tests/observability/test_rules.py,
# tests/e2e/test_prometheus.py) into a cache folder outside the repository keyed by the
# Debian package's version and by the hash of this script and hack/lib.sh, once. Prints
# the folder holding bin/prometheus and bin/promtool on its last line.
#
#   hack/prometheus/install.sh                 # fetch if missing, print the folder
#   KUBENAS_KUBE_CACHE=/some/dir hack/prometheus/install.sh
#   KUBENAS_PROMETHEUS_BIN=/opt/prometheus hack/prometheus/install.sh   # use your own 2.x
#
# Source: Debian 12's `prometheus` package (bookworm, with its security updates), fetched
# by apt (`apt-get download`: verified against the archive's signed index) and unpacked
# here with dpkg-deb, not installed: no service is started, no system user is created
# and nothing outside the cache folder changes (so it needs root only for `apt-get
# update` when the package lists are empty, as on a fresh CI machine). Not built from
# the github.com/prometheus/prometheus Go module: that pulls every service discovery's
# cloud SDK (hundreds of modules, 10+ minutes on 2 cores) for the same PromQL engine.
set -euo pipefail
version="2.42.0+ds-5+deb12u1"
here="$(cd "$(dirname "$0")" && pwd)"

if [ -n "${KUBENAS_PROMETHEUS_BIN:-}" ]; then
  dir="${KUBENAS_PROMETHEUS_BIN%/}"; dir="${dir%/bin}"
  for b in prometheus promtool; do
    [ -x "$dir/bin/$b" ] || { echo "install.sh: KUBENAS_PROMETHEUS_BIN: no $dir/bin/$b" >&2; exit 2; }
  done
  echo "$dir"; exit 0
fi

. "$here/../lib.sh"
dest="$cache_root/prometheus-${version%%+*}-$(hash12 "$here/install.sh" "$here/../lib.sh")"
cache_lock install-prometheus
if [ -x "$dest/bin/prometheus" ] && [ -x "$dest/bin/promtool" ]; then echo "$dest"; exit 0; fi

command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
  echo "install.sh: needs apt-get and dpkg-deb (Debian 12). Elsewhere install Prometheus 2.x and set" \
       "KUBENAS_PROMETHEUS_BIN to the folder holding bin/prometheus and bin/promtool" >&2; exit 2; }
if ! apt-cache show "prometheus=$version" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >&2
  fi
  apt-cache show "prometheus=$version" >/dev/null 2>&1 || {
    echo "install.sh: apt knows no prometheus=$version (Debian 12 bookworm and bookworm-updates or" \
         "-security); run apt-get update as root, or set KUBENAS_PROMETHEUS_BIN" >&2; exit 2; }
fi
stage_begin "$dest"
deb="$(mktemp -d)"
trap 'rm -rf "$tmp" "$deb"' EXIT
echo "install.sh: fetching prometheus $version into $dest" >&2
# apt-get download writes into the current folder; as root it drops to the _apt user,
# which must be able to reach and write it (not so under /root).
chmod 0777 "$deb"
(cd "$deb" && apt-get download -qq "prometheus=$version" >&2)
dpkg-deb -x "$deb"/prometheus_*.deb "$tmp/root"
# the package's executables, in whichever bin folder its layout keeps them: an ELF file
# named so (the package also ships /etc/init.d/prometheus, a shell script of that name)
for tool in prometheus promtool; do
  found=""
  while IFS= read -r candidate; do
    if [ "$(head -c4 "$candidate" | od -An -c | tr -d ' ')" = '177ELF' ]; then found="$candidate"; break; fi
  done < <(find "$tmp/root" -type f -path "*/bin/$tool" -perm -u+x | sort)
  [ -n "$found" ] || { echo "install.sh: no $tool executable in the prometheus package" >&2; exit 2; }
  cp "$found" "$tmp/bin/"
done
rm -rf "$tmp/root" "$deb"
"$tmp/bin/prometheus" --version >&2
"$tmp/bin/promtool" --version >&2
stage_commit "$dest"
echo "$dest"
