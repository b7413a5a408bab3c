#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test (unit tests and
# integration tests against real etcd members and HAProxy started on free loopback ports), then
# runs the etcd client's and the controller's suites a second time against etcd 3.5.
#
# Arguments go to `swift test` (for example `--filter WatchIntegrationTests`); with arguments, the
# second etcd version is skipped unless SWITCHYARD_BOTH_ETCD=1.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
etcd35="$(./scripts/install-etcd35.sh)"
swift build --build-tests

# Integration tests start real etcd clusters and measure TTLs; one test at a time keeps their
# timing honest on a small machine.
echo "== tests against etcd $(etcd --version | sed -n 's/^etcd Version: //p') (Debian) =="
swift test --skip-build --no-parallel "$@"

if [ $# -eq 0 ] || [ "${SWITCHYARD_BOTH_ETCD:-0}" = 1 ]; then
  echo "== etcd client and controller tests against etcd $("$etcd35/etcd" --version | sed -n 's/^etcd Version: //p') =="
  # The test support starts etcd from SWITCHYARD_ETCD_DIR; PATH covers the local cluster's etcd.
  SWITCHYARD_ETCD_DIR="$etcd35" PATH="$etcd35:$PATH" \
    swift test --skip-build --no-parallel --filter 'EtcdClientTests|SwitchyardControllerTests' "$@"
fi
