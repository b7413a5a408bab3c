#!/usr/bin/env bash
# Installs what Switchyard runs and tests against, from Debian's packages: etcd (server and
# etcdctl), HAProxy, the small tools the tests use, and headless Chromium with its chromedriver
# (the dashboard's browser tests). Does nothing when all are present.
# Needs root (or passwordless sudo); never asks anything interactively.
set -euo pipefail

declare -A need=(
  [etcd]=etcd-server
  [etcdctl]=etcd-client
  [haproxy]=haproxy
  [openssl]=openssl
  [socat]=socat
  [curl]=curl
  [ip]=iproute2
  [setpriv]=util-linux
  [chromium]=chromium
  [chromedriver]=chromium-driver
  [pebble]=pebble
  [dnsmasq]=dnsmasq-base
)
missing=()
for tool in "${!need[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("${need[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]} from Debian's packages"
. "$(dirname "$0")/lib/root.sh"
if ! root_command; then
  echo "install-deps: missing ${missing[*]}; run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
