#!/usr/bin/env bash
# Generate the throwaway keys of the compose demo into DIR (default .demo/compose):
#   ssh_host_ed25519_key   host key of the demo remote's sshd (pinned below)
#   id_ed25519             the uploader's SSH key; authorized_keys holds its public half
#   known_hosts            pins the demo remote as [127.0.0.1]:DEMO_SSH_PORT
#   wandb_api_key          WANDB_API_KEY if set, else a placeholder (the demo then runs W&B offline)
# Existing keys are kept. The containers run as uid 10001: as root the files are given to that uid
# (mode 0600); otherwise they are made world-readable, acceptable only for these loopback demo keys.
#   docker/demo-keys.sh [DIR]      (env DEMO_SSH_PORT, default 2222)
set -euo pipefail
dir=${1:-.demo/compose}
port=${DEMO_SSH_PORT:-2222}
mkdir -p "$dir"
command -v ssh-keygen >/dev/null || { echo "demo-keys: ssh-keygen missing (apt-get install openssh-client)" >&2; exit 1; }
[ -s "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C demo-remote-host -f "$dir/ssh_host_ed25519_key"
[ -s "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C demo-uploader -f "$dir/id_ed25519"
cut -d' ' -f1,2 "$dir/id_ed25519.pub" >"$dir/authorized_keys"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" >"$dir/known_hosts"
if [ -n "${WANDB_API_KEY:-}" ]; then
    (umask 077; printf '%s\n' "$WANDB_API_KEY" >"$dir/wandb_api_key")
else
    # Never sent anywhere: with WANDB_MODE=offline the SDK only writes local run files.
    (umask 077; printf 'offline-%040d\n' 0 >"$dir/wandb_api_key")
fi
if [ "$(id -u)" = 0 ]; then
    chown 10001:10001 "$dir/ssh_host_ed25519_key" "$dir/id_ed25519" "$dir/wandb_api_key"
    chmod 600 "$dir/ssh_host_ed25519_key" "$dir/id_ed25519" "$dir/wandb_api_key"
else
    chmod 644 "$dir/ssh_host_ed25519_key" "$dir/id_ed25519" "$dir/wandb_api_key"
fi
chmod 644 "$dir/authorized_keys" "$dir/known_hosts"
echo "demo-keys: keys for the compose demo in $dir (sshd on 127.0.0.1:$port)"
