#!/usr/bin/env bash
# The whole test suite, as a version matrix: installs what is missing, builds, then
#   run 1 — Debian 12's HAProxy 2.6 and etcd 3.4: every test (unit tests, and integration tests
#           against real etcd members and HAProxy started on free loopback ports);
#   run 2 — Debian 13's HAProxy 3.0 and etcd 3.5 (scripts/install-debian13.sh fetches them into
#           ~/.cache/switchyard/ without touching the system): the suites that talk to HAProxy or
#           etcd — HAProxyKit, the etcd client, the controller, and the fault suite (as root).
# The container test runs once, in run 1: its image is Debian 13's (HAProxy 3.0, etcd 3.5); so does the
# dashboard's test in headless Chromium, which tests the page, not HAProxy or etcd.
# Each run prints the versions that answered.
#
# Arguments go to `swift test` (for example `--filter WatchIntegrationTests`); with arguments, run 2
# is skipped unless SWITCHYARD_MATRIX=1.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
debian13="$(./scripts/install-debian13.sh)"
swift build --build-tests

haproxy_version() { "$1" -v | sed -n 's/^HAProxy version \([^ ]*\).*/\1/p'; }
etcd_version() { "$1" --version | sed -n 's/^etcd Version: //p'; }
started=$SECONDS

# Integration tests start real etcd clusters and measure TTLs; one test at a time keeps their
# timing honest on a small machine.
echo "== run 1: HAProxy $(haproxy_version "$(command -v haproxy)"), etcd $(etcd_version "$(command -v etcd)") (Debian 12): every suite =="
swift test --skip-build --no-parallel "$@"
echo "== run 1 took $((SECONDS - started)) s =="

if [ $# -eq 0 ] || [ "${SWITCHYARD_MATRIX:-0}" = 1 ]; then
  started=$SECONDS
  echo "== run 2: HAProxy $(haproxy_version "$debian13/haproxy"), etcd $(etcd_version "$debian13/etcd") (Debian 13): HAProxyKit, etcd client, controller, faults =="
  # The test support starts etcd from SWITCHYARD_ETCD_DIR; PATH covers HAProxy, etcdctl and the
  # local cluster's etcd.
  SWITCHYARD_ETCD_DIR="$debian13" PATH="$debian13:$PATH" \
    swift test --skip-build --no-parallel \
    --filter 'HAProxyKitTests|EtcdClientTests|SwitchyardControllerTests|FaultTests' \
    --skip 'DashboardBrowserTests' "$@"
  echo "== run 2 took $((SECONDS - started)) s =="
fi
