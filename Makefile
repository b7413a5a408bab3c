.PHONY: up test faults build lint format generate benchmark benchmark-controller bench image compose-up compose-scale compose-down

## Install what is missing (etcd, HAProxy), build, and start the local cluster (switchyard up).
up:
	./scripts/up.sh $(ARGS)

## Install what is missing (etcd, HAProxy, and Debian 13's HAProxy 3.0 and etcd 3.5 in ~/.cache/switchyard), build, and run every test as a version matrix.
test:
	./scripts/test.sh

build:
	swift build

## swift format lint --strict, as CI runs it.
lint:
	swift format lint --strict --recursive Sources Tests Package.swift

format:
	swift format --in-place --recursive Sources Tests Package.swift

## Regenerate the Swift code for etcd's protobuf API.
generate:
	./scripts/generate-protos.sh

## Client benchmark against a local etcd it starts itself.
benchmark:
	./scripts/install-deps.sh
	swift run -c release etcd-benchmark --go-client

## Controller benchmark: write-to-HAProxy latency, bursts, churn under load (starts its own etcd and HAProxy).
benchmark-controller:
	./scripts/install-deps.sh
	swift build -c release --product switchyard
	swift run -c release controller-benchmark

## switchyard bench: convergence, data plane, churn, bursts and scale, runtime vs reload strategy (release
## build; starts its own etcd, controllers, HAProxy and backends; writes bench/results/latest.{md,json}).
## BENCH_ARGS=--quick for the small sizes.
bench:
	./scripts/install-deps.sh
	swift build -c release --product switchyard
	.build/release/switchyard bench $(BENCH_ARGS)

## The fault suite alone (needs root): etcd, LB and backend failures on a network of namespaces, with a table per scenario.
faults:
	./scripts/install-deps.sh
	swift build --build-tests
	swift test --skip-build --filter FaultTests

## Containers (podman, installed when missing, or Docker when its engine runs); see README "Containers".
## The image: a static release build of switchyard on Debian 13, with its HAProxy 3.0 and etcd 3.5.
image:
	./scripts/container.sh image

## compose.yaml up with BACKENDS backends (default 3); builds the image first when it is missing.
compose-up:
	./scripts/container.sh up $(BACKENDS)

## Start or gracefully stop backends to reach BACKENDS.
compose-scale:
	./scripts/container.sh scale $(BACKENDS)

## Remove the compose project's containers, network and volumes.
compose-down:
	./scripts/container.sh down
