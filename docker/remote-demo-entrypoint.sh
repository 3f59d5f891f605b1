#!/bin/sh
# Entry point of the demo remote (compose profile `demo`): a stand-in training machine.
# Runs as the non-root user `eval`: sshd on DEMO_SSH_PORT (key-only, this user only, SFTP), sample
# results in /data/results (written once), and `python -m remote pack` every DEMO_PACK_INTERVAL_SECONDS.
# Mounted secrets: /run/secrets/ssh_host_ed25519_key (host key the uploader pins in known_hosts)
# and /run/secrets/authorized_keys (the uploader's public key).
set -eu
port=${DEMO_SSH_PORT:-2222}
interval=${DEMO_PACK_INTERVAL_SECONDS:-20}
listen=${DEMO_SSH_LISTEN:-127.0.0.1}
conf=$HOME/sshd
mkdir -p "$conf"
# sshd refuses a host key readable by others; the bind-mounted secret keeps the host's mode and owner.
cp /run/secrets/ssh_host_ed25519_key "$conf/host_key"
chmod 600 "$conf/host_key"
cp /run/secrets/authorized_keys "$conf/authorized_keys"
cat >"$conf/sshd_config" <<CONF
Port $port
ListenAddress $listen
HostKey $conf/host_key
PidFile $conf/sshd.pid
AuthorizedKeysFile $conf/authorized_keys
AllowUsers $(id -un)
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
Subsystem sftp internal-sftp
LogLevel INFO
CONF

# Sample results once: a restarted container keeps its volume (and any checkpoints added since).
if [ -z "$(ls -A /data/results)" ]; then
    python -m remote.demo.sample /data/results
fi

/usr/sbin/sshd -D -e -f "$conf/sshd_config" &
sshd_pid=$!
stopping=0
trap 'stopping=1; kill "$sshd_pid" 2>/dev/null || true' TERM INT
echo "remote-demo: sshd on $listen:$port (pid $sshd_pid), packing every ${interval}s"
while [ "$stopping" = 0 ]; do
    if ! kill -0 "$sshd_pid" 2>/dev/null; then
        echo "remote-demo: sshd exited" >&2
        exit 1
    fi
    # Own project and id prefix: the sample models carry real model names, and with a W&B key set
    # default ids would append sample metrics to the users' real runs.
    python -m remote pack --results-root /data/results --outbox /data/outbox --keep 20 \
        --default-project wandb-eval-pipeline-demo --run-id-prefix demo \
        || echo "remote-demo: pack failed (retrying in ${interval}s)" >&2
    sleep "$interval" &
    wait $! || true
done
wait "$sshd_pid" 2>/dev/null || true
echo "remote-demo: stopped"
