#!/usr/bin/env bash
# Containers: builds the switchyard image and runs compose.yaml with podman (or Docker, when a Docker
# engine answers). Installs podman and podman-compose when neither engine is there.
#
#   scripts/container.sh image [--debug] [--tag TAG]   build the image (default tag switchyard:latest)
#   scripts/container.sh up [BACKENDS]                 compose up with BACKENDS backends (default 3)
#   scripts/container.sh scale BACKENDS                start or gracefully stop backends to reach BACKENDS
#   scripts/container.sh down                          remove the project's containers, network and volumes
#   scripts/container.sh compose ARGS...               any compose command on this project
#
# The binary is built on the host (swift build --static-swift-stdlib: the Swift runtime is linked in,
# so the image needs no toolchain) into a scratch path of its own, so that it never mixes with the
# dynamically linked objects in .build. --debug builds without optimisation (faster to build; the
# tests use it), the default is a release build.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's podman-compose 1.0.3 starts only one replica for --scale; this release from PyPI scales up
# (not down: `scale` stops the surplus replicas itself). 1.6.0 recreated running containers on a
# scale-down, so the version is pinned.
podman_compose_version=1.5.0
# The compose project; SWITCHYARD_PROJECT runs a second one (the tests do) beside it.
project="${SWITCHYARD_PROJECT:-switchyard}"
[[ "$project" =~ ^[a-z0-9][a-z0-9_-]*$ ]] ||
  { echo "container: SWITCHYARD_PROJECT \"$project\" must be lower-case letters, digits, - and _" >&2; exit 1; }

die() {
  echo "container: $*" >&2
  exit 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    die "needs root to run: $*"
  fi
}

# docker when a Docker engine answers, else podman (installed when missing).
engine() {
  if [ -n "${CONTAINER_ENGINE:-}" ]; then
    echo "$CONTAINER_ENGINE"
  elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo docker
  else
    echo podman
  fi
}

install_podman() {
  local missing=()
  command -v podman >/dev/null 2>&1 || missing+=(podman runc)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  # Containers on a compose network find each other by name only with this CNI plugin.
  [ -x /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname)
  command -v pip3 >/dev/null 2>&1 || command -v pip >/dev/null 2>&1 || missing+=(python3-pip)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "container: installing ${missing[*]} from Debian's packages"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if ! podman_compose --version 2>/dev/null | grep -q "podman-compose version $podman_compose_version"; then
    echo "container: installing podman-compose $podman_compose_version from PyPI into .build-image/venv"
    mkdir -p .build-image
    python3 -m venv .build-image/venv >/dev/null 2>&1 || {
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
      python3 -m venv .build-image/venv
    }
    .build-image/venv/bin/pip install -q "podman-compose==$podman_compose_version"
  fi
}

podman_compose() {
  .build-image/venv/bin/podman-compose "$@"
}

# The base image the Containerfile names (FROM debian:trixie-slim: Debian 13) and its Debian suite,
# read from the Containerfile so that the two never disagree.
base_reference() {
  local from
  from="$(sed -n 's/^FROM[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' Containerfile | head -1)"
  [[ "$from" =~ ^debian:([a-z]+)(-slim)?$ ]] || die "Containerfile: FROM $from is not debian:SUITE-slim"
  echo "docker.io/library/$from ${BASH_REMATCH[1]}"
}

# The base image, pulled when a registry answers, else made from Debian's packages with debootstrap
# (as here): that suite from the host's mirror, whose apt sources then point at that suite on that
# mirror, under the name the registry would give it, so the same Containerfile pulls the real one
# elsewhere.
base_image() {
  local engine="$1" reference image suite
  reference="$(base_reference)"
  read -r image suite <<<"$reference"
  "$engine" image exists "$image" 2>/dev/null && return 0
  [ "$engine" = docker ] && docker image inspect "$image" >/dev/null 2>&1 && return 0
  if "$engine" pull -q "$image" >/dev/null 2>&1; then return 0; fi
  [ -e "/usr/share/debootstrap/scripts/$suite" ] || die "debootstrap does not know $suite (upgrade debootstrap)"
  echo "container: no registry answers; making $image with debootstrap ($suite)"
  local mirror rootfs
  mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  rootfs="$(mktemp -d)"
  as_root debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >/dev/null
  as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  as_root tar -C "$rootfs" -c . | "$engine" import - "$image" >/dev/null
  as_root rm -rf "$rootfs"
}

# The Containerfile's digest, kept as a label on the image: `up` rebuilds an image whose label differs
# (built from an older Containerfile, such as the Debian 12 one) instead of running it.
containerfile_label=org.switchyard.containerfile
containerfile_digest() {
  sha256sum Containerfile | cut -d' ' -f1
}

# Whether IMAGE exists and was built from this Containerfile.
image_current() {
  local built
  built="$("$(engine)" image inspect --format "{{index .Config.Labels \"$containerfile_label\"}}" "$1" 2>/dev/null)" ||
    return 1
  [ "$built" = "$(containerfile_digest)" ]
}

build_image() {
  local configuration=release tag=switchyard:latest
  while [ $# -gt 0 ]; do
    case "$1" in
      --debug) configuration=debug ;;
      --tag) tag="${2:?--tag needs a value}"; shift ;;
      *) die "image: unknown argument $1" ;;
    esac
    shift
  done
  local engine
  engine="$(engine)"
  [ "$engine" = podman ] && install_podman
  ./scripts/install-deps.sh
  base_image "$engine"

  echo "container: building switchyard ($configuration, Swift runtime linked in)"
  swift build -c "$configuration" --static-swift-stdlib --product switchyard --scratch-path .build-static
  local binary=".build-static/$configuration/switchyard"
  if ldd "$binary" 2>/dev/null | grep -q 'libswift\|libFoundation\|libdispatch'; then
    die "$binary still links the Swift runtime dynamically: $(ldd "$binary" | grep -o 'lib[A-Za-z_]*swift[A-Za-z_]*\.so' | sort -u | tr '\n' ' ')"
  fi
  rm -rf .build-image/context
  mkdir -p .build-image/context
  cp "$binary" .build-image/context/switchyard
  # Debug information is most of the binary's size; the symbols stay, for readable backtraces.
  if command -v strip >/dev/null 2>&1; then strip --strip-debug .build-image/context/switchyard; fi
  echo "container: building image $tag with $engine"
  local args=(build --file Containerfile --tag "$tag" --label "$containerfile_label=$(containerfile_digest)")
  # podman: use the local base image, never a registry; keep RUN steps within this host's limits.
  [ "$engine" = podman ] && args+=(--pull=never --ulimit nofile=16384:16384)
  "$engine" "${args[@]}" .build-image/context
}

compose() {
  local engine
  engine="$(engine)"
  if [ "$engine" = docker ]; then
    docker compose --file compose.yaml --project-name "$project" "$@"
  else
    install_podman
    without_systemd_noise podman_compose --file compose.yaml --project-name "$project" "$@"
  fi
}

# Runs a command, dropping podman's complaint, once per container, that without systemd it cannot set
# or remove health-check timers (the checks still run with `podman healthcheck run`). Standard error
# goes through a file, not a pipe: conmon inherits the descriptor and would hold a pipe open.
without_systemd_noise() {
  local errors status=0
  errors="$(mktemp)"
  "$@" 2>"$errors" || status=$?
  grep -v 'unable to get systemd connection' "$errors" >&2 || true
  rm -f "$errors"
  return "$status"
}

podman_quiet() {
  without_systemd_noise podman "$@"
}

# The running backend replicas of the project, by container name, in replica order.
backend_replicas() {
  "$(engine)" ps --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=backend" --format '{{.Names}}' | sort -V
}

scale() {
  local backends="$1"
  if [ "$(engine)" = docker ]; then
    compose up -d --no-recreate --scale "backend=$backends"
    return
  fi
  local replicas=()
  mapfile -t replicas < <(backend_replicas)
  if [ "${#replicas[@]}" -le "$backends" ]; then
    compose up -d --scale "backend=$backends"
    return
  fi
  # podman-compose does not stop surplus replicas: stop the newest ones, each with its grace period
  # (SIGTERM: the backend drains, deregisters and exits), then remove them.
  local surplus=("${replicas[@]:$backends}")
  echo "container: stopping ${surplus[*]}"
  podman_quiet stop --time 15 "${surplus[@]}" >/dev/null
  podman_quiet rm "${surplus[@]}" >/dev/null
}

# compose down. With podman, by labels: podman-compose's own down removes only the replicas its file
# names, and stops the etcd containers while LB nodes and backends still depend on them.
down() {
  if [ "$(engine)" = docker ]; then
    compose down --volumes --timeout 15
    return
  fi
  local label="label=com.docker.compose.project=$project" parts=() members=()
  # Backends first (they deregister), then the LB nodes, then etcd.
  mapfile -t parts < <(podman ps -a --filter "$label" --format '{{.Names}}' | grep -v "^${project}_etcd" || true)
  mapfile -t members < <(podman ps -a --filter "$label" --format '{{.Names}}' | grep "^${project}_etcd" || true)
  [ ${#parts[@]} -eq 0 ] || podman_quiet stop --time 15 "${parts[@]}" >/dev/null
  [ ${#members[@]} -eq 0 ] || podman_quiet stop --time 15 "${members[@]}" >/dev/null
  [ ${#parts[@]} -eq 0 ] || podman_quiet rm -f "${parts[@]}" >/dev/null
  [ ${#members[@]} -eq 0 ] || podman_quiet rm -f --depend "${members[@]}" >/dev/null
  if podman pod exists "pod_$project" 2>/dev/null; then podman pod rm -f "pod_$project" >/dev/null; fi
  if podman network exists "${project}_default" 2>/dev/null; then podman network rm -f "${project}_default" >/dev/null; fi
  local volumes=()
  mapfile -t volumes < <(podman volume ls --filter "$label" --format '{{.Name}}')
  [ ${#volumes[@]} -eq 0 ] || podman volume rm -f "${volumes[@]}" >/dev/null
  echo "container: project $project is down (containers, network and volumes removed)"
}

whole_number() {
  [[ "$1" =~ ^[0-9]+$ ]] || die "$2: the number of backends must be a whole number, not \"$1\""
}

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
  image) build_image "$@" ;;
  up)
    whole_number "${1:-3}" up
    image="${SWITCHYARD_IMAGE:-switchyard:latest}"
    if ! "$(engine)" image inspect "$image" >/dev/null 2>&1; then
      build_image --tag "$image"
    elif ! image_current "$image"; then
      echo "container: $image was built from another Containerfile; rebuilding it"
      build_image --tag "$image"
    fi
    compose up -d --scale "backend=${1:-3}"
    ;;
  scale)
    [ $# -eq 1 ] || die "scale: give the number of backends, as in: scale 5"
    whole_number "$1" scale
    scale "$1"
    ;;
  down) down ;;
  compose) compose "$@" ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
