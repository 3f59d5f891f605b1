"""Container tests: the `containers` marker and the fixtures they share (one engine, one image
build and a W&B test server per test); run them alone with `pytest tests/containers`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.containers.dockerenv import (
    BASE_IMAGE_SCRIPT,
    CA_BUNDLE,
    ENGINE,
    IMAGE_TAG,
    ROOT,
    TIMER,
    Compose,
    engine_answers,
    engine_pid,
    require_docker_tools,
    run,
)
from tests.fixtures.processes import stop_process
from tests.wandb_server.server import DEFAULT_API_KEY


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "containers: needs Docker (engine started by docker/engine.sh) and the images it builds"
    )


@pytest.fixture(scope="session")
def engine() -> Iterator[None]:
    """A Docker engine: the one already answering, or one docker/engine.sh starts (and stops by PID)."""
    require_docker_tools()
    started = not engine_answers()
    began = time.monotonic()
    run(["bash", str(ENGINE), "start"], timeout=120)
    TIMER.measure("engine start" if started else "engine (already running)", began)
    yield
    print("\ncontainer test timings:\n" + TIMER.report())
    if started:
        pid = engine_pid()
        run(["bash", str(ENGINE), "stop"], timeout=90)
        assert pid is None or not Path("/proc/{}".format(pid)).exists(), "dockerd {} still alive".format(pid)


@pytest.fixture(scope="session")
def images(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the stand-in base image if missing, then both images (tag e2e); return a dummy env file."""
    began = time.monotonic()
    run(["bash", str(BASE_IMAGE_SCRIPT)], timeout=900)
    TIMER.measure("base image (built if missing)", began)
    env_file = tmp_path_factory.mktemp("build") / "build.env"
    env_file.write_text("IMAGE_TAG={}\nCOMPOSE_PROFILES=demo,build-only\n".format(IMAGE_TAG))
    extra = [ROOT / "docker" / "compose.build-ca.yaml"] if CA_BUNDLE.exists() else []
    began = time.monotonic()
    Compose(env_file, extra)("build", timeout=1200)
    TIMER.measure("images build (uploader, remote, remote-demo)", began)
    return env_file


@pytest.fixture
def wandb_http_server(tmp_path: Path) -> Iterator[str]:
    """The W&B test server as its own process on 127.0.0.1 (the containers use the host network)."""
    with open(tmp_path / "wandb_server.log", "w+") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.wandb_server",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--api-key",
                DEFAULT_API_KEY,
                "--log-level",
                "WARNING",
            ],
            cwd=str(ROOT),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            if not url.startswith("http"):
                log.seek(0)
                pytest.fail("W&B test server did not start: {!r}\n{}".format(url, log.read()))
            yield url
        finally:
            stop_process(process)
