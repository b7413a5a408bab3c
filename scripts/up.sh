#!/usr/bin/env bash
# One command for a fresh machine: install what is missing (etcd, HAProxy, from the distribution's
# packages), build, and start the local cluster with `switchyard up` (arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
swift build --product switchyard
exec .build/debug/switchyard up "$@"
