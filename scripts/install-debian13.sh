#!/usr/bin/env bash
# Makes Debian 13 (trixie)'s HAProxy and etcd available beside the system's Debian 12 ones, for the
# second run of the test matrix and for `switchyard bench --haproxy`. Nothing is installed into the
# system: apt fetches trixie's packages with a private configuration (its own sources list, state,
# cache and an empty dpkg status) into a private root, and `patchelf` points HAProxy at that root's
# loader and libraries (Debian 12's glibc is too old for it). etcd and etcdctl are Go binaries that
# run unchanged.
#
# Prints the directory that holds `haproxy`, `etcd` and `etcdctl`; does nothing but print it when
# they are already there. Needs root (or passwordless sudo) the first time, for apt and patchelf.
set -euo pipefail

haproxy_series=3.0
etcd_series=3.5
cache="${SWITCHYARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard}"
dir="$cache/debian13"
bin="$dir/bin"

ready() {
  [ -x "$bin/haproxy" ] && [ -x "$bin/etcd" ] && [ -x "$bin/etcdctl" ] \
    && "$bin/haproxy" -v 2>/dev/null | grep -q "version $haproxy_series\." \
    && "$bin/etcd" --version 2>/dev/null | grep -q "etcd Version: $etcd_series\."
}
if ready; then
  echo "$bin"
  exit 0
fi

. "$(dirname "$0")/lib/root.sh"
if ! root_command; then
  echo "install-debian13: fetching Debian 13's HAProxy and etcd needs root the first time (apt, patchelf)" >&2
  exit 1
fi
if ! command -v patchelf >/dev/null 2>&1; then
  echo "install-debian13: installing patchelf from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq >&2
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends patchelf >/dev/null
fi

# The mirror the machine already uses (deb822 or one-line sources), and trixie's archive key.
mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
if [ -z "$mirror" ]; then
  mirror="$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
    /etc/apt/sources.list 2>/dev/null || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || { echo "install-debian13: $keyring is missing (package debian-archive-keyring)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/state/lists/partial" "$work/cache/archives/partial" "$work/debs"
touch "$work/status"
echo "deb [signed-by=$keyring] $mirror trixie main" >"$work/sources.list"
# apt-get download drops privileges to _apt: it must be able to write the download directory.
chmod 0755 "$work"
chown -R _apt "$work/debs" "$work/cache" "$work/state/lists/partial" 2>/dev/null || chmod -R 0777 "$work/debs"
apt_private=(
  -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State=$work/state"
  -o "Dir::Cache=$work/cache" -o "Dir::State::status=$work/status" -o APT::Get::List-Cleanup=0
)

echo "install-debian13: fetching HAProxy $haproxy_series and etcd $etcd_series from Debian 13 ($mirror)" >&2
"${sudo[@]}" apt-get "${apt_private[@]}" -qq update >&2
# HAProxy's run-time libraries (packaging glue such as adduser is not needed to run it).
packages=(
  haproxy etcd-server etcd-client libc6 libcrypt1 libjemalloc2 liblua5.4-0 libopentracing-c-wrapper0t64
  libopentracing1 libpcre2-8-0 libssl3t64 libstdc++6 libgcc-s1 libzstd1 zlib1g
)
(cd "$work/debs" && "${sudo[@]}" apt-get "${apt_private[@]}" -qq download "${packages[@]}" >&2)

rm -rf "$dir.new"
mkdir -p "$dir.new/root" "$dir.new/bin"
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$dir.new/root"
done
# The paths patchelf writes are absolute: the tree is built where it stays.
rm -rf "$dir"
mv "$dir.new" "$dir"
root="$dir/root"
loader="$(ls "$root"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root"/lib64/ld-linux-x86-64.so.2 2>/dev/null | head -1 || true)"
[ -n "$loader" ] || { echo "install-debian13: no ld-linux in Debian 13's libc6" >&2; exit 1; }
libs="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
install -m 0755 "$root/usr/sbin/haproxy" "$bin/haproxy"
patchelf --set-interpreter "$loader" --set-rpath "$libs" --force-rpath "$bin/haproxy"
for tool in etcd etcdctl; do
  ln -sf "$root/usr/bin/$tool" "$bin/$tool"
done

if ! ready; then
  echo "install-debian13: $bin does not hold HAProxy $haproxy_series and etcd $etcd_series:" >&2
  "$bin/haproxy" -v >&2 || true
  "$bin/etcd" --version >&2 || true
  exit 1
fi
echo "$bin"
