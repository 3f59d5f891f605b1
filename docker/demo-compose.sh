#!/usr/bin/env bash
# The compose demo on one machine: a stand-in training machine (`remote`, profile demo) serves sample
# results over SFTP and re-packs them every few seconds; the `uploader` service pulls, unpacks and
# uploads them. W&B offline unless WANDB_API_KEY is set in the shell (then online).
# Ends by showing what was uploaded, per model. Needs a Docker engine (docker/engine.sh start) and
# the python:3.11-slim image (pulled, or docker/base-image.sh where no registry is reachable).
#   docker/demo-compose.sh          (then: docker compose --env-file docker/demo.env logs -f)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEMO_SSH_PORT=${DEMO_SSH_PORT:-2222} PULL_PORT=${DEMO_SSH_PORT:-2222}
if [ -n "${WANDB_API_KEY:-}" ]; then export WANDB_MODE=${WANDB_MODE:-online}; fi
compose=(docker compose --env-file docker/demo.env -f compose.yaml)
build_overlay=()
# Hosts whose HTTPS goes through an intercepting proxy: lend pip the system CA bundle for the build only.
[ -s "${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" ] && build_overlay=(-f docker/compose.build-ca.yaml)

docker/demo-keys.sh .demo/compose
"${compose[@]}" "${build_overlay[@]}" build
"${compose[@]}" up -d --no-build --wait --wait-timeout 180
echo "demo: waiting for the uploader's first cycle (at most 180 s)"
began=$SECONDS
until "${compose[@]}" exec -T uploader python -c '
import json, sys
beat = json.load(open("/data/state/heartbeat.json"))
sys.exit(0 if beat["cycle"] >= 1 and beat["phase"] == "idle" else 1)' 2>/dev/null; do
    if (( SECONDS - began > 180 )); then
        "${compose[@]}" logs --tail 50 >&2
        echo "demo: no finished cycle within 180 s (logs above)" >&2
        exit 1
    fi
    sleep 2
done
"${compose[@]}" exec -T uploader python -m local status
cat <<TEXT

demo: running. Watch:            docker compose --env-file docker/demo.env logs -f
      add a checkpoint remotely:  docker compose --env-file docker/demo.env exec remote python -m remote.demo.sample /data/results --add-checkpoint
      stop and remove everything: docker compose --env-file docker/demo.env down -v
TEXT
