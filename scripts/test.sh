#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test (unit tests and
# integration tests against real etcd members started on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
swift build --build-tests
# Integration tests start real etcd clusters and measure TTLs; one test at a time keeps their
# timing honest on a small machine.
swift test --skip-build --no-parallel "$@"
