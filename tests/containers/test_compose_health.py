"""The uploader tells the truth in real containers: unhealthy when its cycles fail (after the
configured number of failed cycles, or at once on a permanent failure such as a wrong known_hosts),
with the reason where Docker keeps it and in `status`; healthy again after the fix. The compose
demo script exits non-zero when the demo's cycle failed. Docker-side failures name their fix.

W&B offline mode throughout: these tests are about the service, not about what lands in W&B
(test_compose_e2e.py checks that, online, against the W&B test server).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.containers.dockerenv import (
    DEMO_KEYS,
    IMAGE_TAG,
    ROOT,
    TIMER,
    Compose,
    base_env,
    free_port,
    run,
    uploader_heartbeat,
    wait_until,
    write_env_file,
)

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(900)]

PROJECT = "wandb-eval-health"


def docker_health_output(compose: Compose) -> str:
    """Return the output of the newest healthcheck Docker ran (what `docker inspect` shows)."""
    container = compose.container_id("uploader")
    state = json.loads(
        run(["docker", "inspect", "--format", "{{json .State.Health}}", container], timeout=30).stdout
    )
    return state["Log"][-1]["Output"] if state and state.get("Log") else ""


def write_known_hosts(path: Path, port: int, public_key_file: Path) -> None:
    """Pin ``public_key_file`` for [127.0.0.1]:port, rewriting the file in place (the mount sees it)."""
    with open(path, "w", encoding="ascii") as handle:
        handle.write("[127.0.0.1]:{} {}\n".format(port, " ".join(public_key_file.read_text().split()[:2])))


def test_uploader_turns_unhealthy_when_its_cycles_fail_and_healthy_after_the_fix(
    images: Path, tmp_path: Path
) -> None:
    keys, port = tmp_path / "keys", free_port()
    run(["bash", str(DEMO_KEYS), str(keys)], timeout=60, env=dict(base_env(), DEMO_SSH_PORT=str(port)))
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other_host")], timeout=30)
    env_file = tmp_path / "health.env"
    settings = dict(COMPOSE_PROJECT_NAME=PROJECT, WANDB_MODE="offline", POLL_INTERVAL_SECONDS=3)
    settings.update(HEALTH_MAX_FAILED_CYCLES=2, HEALTHCHECK_START_PERIOD="1s")
    # Phase 1: a remote outbox that does not exist: every cycle fails (exit 2), not permanently.
    write_env_file(env_file, keys, port, PULL_REMOTE_OUTBOX="/data/no-such-outbox", **settings)
    compose = Compose(env_file)

    def diagnose() -> str:
        return "heartbeat: {}\n--- ps\n{}\n--- logs\n{}".format(
            uploader_heartbeat(compose),
            compose("ps", "-a", timeout=30, check=False).stdout,
            compose.logs(tail=60),
        )

    def health_command() -> subprocess.CompletedProcess:
        return compose("exec", "-T", "uploader", "python", "-m", "local", "health", timeout=60, check=False)

    compose("down", "-v", "--timeout", "30", timeout=120)
    try:
        compose("up", "-d", "--no-build", "--pull", "never", timeout=240)
        wait_until(
            "the first failed cycle",
            lambda: uploader_heartbeat(compose).get("last_cycle") == 1,
            120,
            diagnose,
        )
        assert uploader_heartbeat(compose)["last_exit_code"] == 2
        assert health_command().returncode == 0  # one failed cycle of the two allowed
        wait_until(
            "the second failed cycle",
            lambda: uploader_heartbeat(compose).get("last_cycle", 0) >= 2,
            60,
            diagnose,
        )
        verdict = health_command()
        assert verdict.returncode == 1 and verdict.stdout.startswith(
            "unhealthy: 2 cycles in a row failed (limit 2)"
        )
        wait_until(
            "Docker: unhealthy", lambda: compose.health("uploader") == "running/unhealthy", 60, diagnose
        )
        assert "no-such-outbox" in docker_health_output(compose)
        assert "(unhealthy)" in compose("ps", "uploader", timeout=30).stdout

        # Phase 2: the right outbox, but a host key the remote does not have: unhealthy at once.
        write_known_hosts(keys / "known_hosts", port, tmp_path / "other_host.pub")
        write_env_file(env_file, keys, port, **settings)
        compose("up", "-d", "--no-build", "--pull", "never", "uploader", timeout=240)
        wait_until(
            "a cycle of the new container",
            lambda: uploader_heartbeat(compose).get("last_cycle") == 1,
            120,
            diagnose,
        )
        beat = uploader_heartbeat(compose)
        assert beat["last_exit_code"] == 4 and "host key" in " ".join(beat["last_errors"]), beat
        verdict = health_command()
        assert verdict.returncode == 1
        assert verdict.stdout.startswith("unhealthy: the last cycle failed permanently (exit 4")
        wait_until("Docker: unhealthy", lambda: "permanently" in docker_health_output(compose), 60, diagnose)
        status = compose("exec", "-T", "uploader", "python", "-m", "local", "status", timeout=60, check=False)
        assert (
            status.returncode == 1
            and "service: UNHEALTHY: the last cycle failed permanently" in status.stdout
        )

        # The fix: pin the remote's real host key, in the same file (as an admin would).
        write_known_hosts(keys / "known_hosts", port, keys / "ssh_host_ed25519_key.pub")
        wait_until(
            "Docker: healthy again", lambda: compose.health("uploader") == "running/healthy", 120, diagnose
        )
        beat = uploader_heartbeat(compose)
        assert (beat["last_exit_code"], beat["failed_cycles"]) == (0, 0), beat
    finally:
        compose("down", "-v", "--timeout", "30", timeout=120)


def test_demo_compose_script_exits_non_zero_when_its_cycle_failed(images: Path, tmp_path: Path) -> None:
    project = "wandb-eval-demo-script"
    env = dict(
        base_env(),
        COMPOSE_PROJECT_NAME=project,
        IMAGE_TAG=IMAGE_TAG,
        DEMO_SSH_PORT=str(free_port()),
        DEMO_KEYS_DIR=str(tmp_path / "keys"),
        PULL_REMOTE_OUTBOX="/data/no-such-outbox",
    )
    script = ["bash", str(ROOT / "docker" / "demo-compose.sh")]
    down = [
        "docker",
        "compose",
        "--project-directory",
        str(ROOT),
        "-p",
        project,
        "down",
        "-v",
        "--timeout",
        "30",
    ]
    try:
        failed = run(script, timeout=600, env=env, check=False)
        assert failed.returncode == 1, failed.stdout[-3000:]
        assert "demo: FAILED: the uploader's first cycle exited 2:" in failed.stdout
        assert "no-such-outbox" in failed.stdout
        del env["PULL_REMOTE_OUTBOX"]
        began = time.monotonic()
        fixed = run(script, timeout=600, env=env, check=False)
        TIMER.measure("demo-compose.sh, a passing run", began)
        assert fixed.returncode == 0, fixed.stdout[-3000:]
        assert "demo: running, first cycle succeeded" in fixed.stdout
        assert "service: healthy" in fixed.stdout
    finally:
        run(down, timeout=120, env=env, check=False)


def test_docker_check_names_make_base_image_when_the_base_image_cannot_be_had(engine: None) -> None:
    check = ["bash", str(ROOT / "docker" / "check-docker.sh")]
    assert run(check + ["--base-image"], timeout=60).returncode == 0
    # No such image here and (here) no registry: the hint is the target that builds it locally.
    missing = dict(base_env(), BASE_IMAGE="wandb-eval-no-such-base:{}".format(os.getpid()))
    no_base = run(check + ["--base-image"], timeout=120, env=missing, check=False)
    assert no_base.returncode == 1 and "Hint: no image registry reachable? make base-image" in no_base.stdout
