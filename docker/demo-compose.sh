#!/usr/bin/env bash
# The compose demo on one machine: a stand-in training machine (`remote`, profile demo) serves sample
# results over SFTP and re-packs them every few seconds; the `uploader` service pulls, unpacks and
# uploads them. W&B offline unless WANDB_API_KEY is set in the shell (then online).
# Ends by showing what was uploaded, per model, and exits 0 only when the uploader's first cycle
# succeeded (1 otherwise, with the cycle's errors). Needs a Docker engine (make engine-start) and
# the python:3.11-slim image (pulled, or make base-image where no registry is reachable): both are
# checked first.
#   docker/demo-compose.sh          (then: docker compose --env-file docker/demo.env logs -f)
# Environment: DEMO_SSH_PORT (2222), DEMO_KEYS_DIR (.demo/compose: the demo's keys; `make demo`
# works in .demo/walkthrough and never touches them), WANDB_API_KEY, and any variable of
# docker/demo.env (the shell's value wins).
set -euo pipefail
cd "$(dirname "$0")/.."
docker/check-docker.sh --base-image

keys=${DEMO_KEYS_DIR:-.demo/compose}
export DEMO_SSH_PORT=${DEMO_SSH_PORT:-2222} PULL_PORT=${DEMO_SSH_PORT:-2222}
# The key files as docker/demo.env names them, but under $keys (shell variables win over it).
export PULL_IDENTITY=$keys/id_ed25519 PULL_KNOWN_HOSTS=$keys/known_hosts WANDB_API_KEY_FILE=$keys/wandb_api_key \
    DEMO_HOST_KEY_FILE=$keys/ssh_host_ed25519_key DEMO_AUTHORIZED_KEYS_FILE=$keys/authorized_keys
if [ -n "${WANDB_API_KEY:-}" ]; then export WANDB_MODE=${WANDB_MODE:-online}; fi
compose=(docker compose --env-file docker/demo.env -f compose.yaml)
build_overlay=()
# Hosts whose HTTPS goes through an intercepting proxy: lend pip the system CA bundle for the build only.
[ -s "${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" ] && build_overlay=(-f docker/compose.build-ca.yaml)

docker/demo-keys.sh "$keys"
"${compose[@]}" "${build_overlay[@]}" build
# Recreated every time: a remote still running with older keys would present a host key that the
# regenerated known_hosts does not pin, and every cycle would fail on a "changed" host key.
started=$(date +%s)
"${compose[@]}" up -d --no-build --force-recreate
echo "demo: waiting for the uploader's first cycle (at most 180 s)"
began=$SECONDS
# The state volume outlives the container: only a heartbeat of the loop started now counts.
until "${compose[@]}" exec -T uploader python -c '
import json, sys
beat = json.load(open("/data/state/heartbeat.json"))
sys.exit(0 if beat.get("started", 0) >= float(sys.argv[1]) - 1 and beat.get("last_cycle", 0) >= 1 else 1)' \
    "$started" 2>/dev/null; do
    if (( SECONDS - began > 180 )); then
        "${compose[@]}" logs --tail 50 >&2
        echo "demo: no finished cycle within 180 s (logs above)" >&2
        exit 1
    fi
    sleep 2
done
# The first cycle's exit code, then its errors, one per line.
outcome=$("${compose[@]}" exec -T uploader python -c '
import json
beat = json.load(open("/data/state/heartbeat.json"))
print(beat["last_exit_code"])
print("\n".join(beat.get("last_errors") or []))')
code=$(head -n 1 <<<"$outcome")
"${compose[@]}" exec -T uploader python -m local status || true
if [ "$code" != 0 ]; then
    echo >&2
    echo "demo: FAILED: the uploader's first cycle exited $code:" >&2
    tail -n +2 <<<"$outcome" | sed 's/^/  /' >&2
    echo "demo: its log: ${compose[*]} logs uploader; remove the demo: make demo-compose-down" >&2
    exit 1
fi
cat <<TEXT

demo: running, first cycle succeeded. Watch:  docker compose --env-file docker/demo.env logs -f
      what was uploaded, again:             docker compose --env-file docker/demo.env exec uploader python -m local status
      add a checkpoint remotely:            docker compose --env-file docker/demo.env exec remote python -m remote.demo.sample /data/results --add-checkpoint
      stop and remove everything:           make demo-compose-down
TEXT
