"""The compose demo end to end, in real containers, against the W&B test server (online mode).

Starts the project's Docker engine (docker/engine.sh), builds the stand-in base image if missing
and both images, brings up the `demo` profile (remote: sample results over SFTP, re-packing every
few seconds; uploader: `python -m local run`) and checks what lands in W&B:
every sample checkpoint exactly once; a checkpoint added on the remote arrives on a later
cycle; a restarted uploader uploads nothing twice. Then `docker compose down -v` and the
engine is stopped by its PID (only if this test started it).

Run alone: `pytest tests/containers` (about 2-4 minutes; the first base image build adds ~1 min).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from remote.demo.sample import make_sample_results
from tests.containers.dockerenv import (
    DEMO_KEYS,
    IMAGE_TAG,
    TIMER,
    Compose,
    base_env,
    free_port,
    run,
    uploader_heartbeat,
    wait_until,
    write_env_file,
)
from tests.wandb_server.server import DEFAULT_API_KEY

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(1500)]

PROJECT = "wandb-eval-e2e"
POLL_SECONDS = 4
PACK_SECONDS = 3


def get_json(url: str) -> Dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read().decode("utf-8"))


def demo_runs_are_separate(base_url: str) -> bool:
    """Tell whether every run the demo made is in the demo project with a demo- id (never a real run)."""
    runs = get_json(base_url + "/_test/runs")["runs"]
    return bool(runs) and all(
        r["project"] == "wandb-eval-pipeline-demo" and r["run_id"].startswith("demo-") for r in runs
    )


VARIANTS = ("ckpt_step", "epoch")  # every model uploads to its run and its epoch run


def steps_by_model(base_url: str) -> Dict[str, List[int]]:
    """Given the server URL, return each run's logged checkpoint steps (in line order), keyed
    ``<model_dir>#<upload variant>`` (a model's run and its epoch run carry the same model_dir)."""
    found: Dict[str, List[int]] = {}
    for record in get_json(base_url + "/_test/runs")["runs"]:
        config = record["config"]
        run = "{}#{}".format(
            config.get("model_dir", record["run_id"]), config.get("upload_variant", "ckpt_step")
        )
        found[run] = [row["checkpoint_step"] for row in record["history"] if "checkpoint_step" in row]
    return found


def expected_steps(workdir: Path) -> Dict[str, List[int]]:
    """Return the checkpoint steps (with metrics) the remote's sample generator writes, by model."""
    make_sample_results(str(workdir))
    expected: Dict[str, List[int]] = {}
    for model in sorted(p for p in workdir.iterdir() if p.is_dir()):
        steps = [
            int(c.name.split("-", 1)[1])
            for c in model.iterdir()
            if c.name.split("-", 1)[-1].isdigit()
            and any((c / n).exists() for n in ("metrics.json", "metrics.tsv"))
        ]
        expected.update({f"{model.name}#{variant}": sorted(steps) for variant in VARIANTS})
    return expected


def landed_once(base_url: str, expected: Dict[str, List[int]]) -> Optional[Dict[str, List[int]]]:
    """Return the landed steps if every expected step is there; fail at once on any duplicate."""
    found = steps_by_model(base_url)
    for model, steps in found.items():
        assert len(steps) == len(set(steps)), "duplicate checkpoint rows in {}: {}".format(model, steps)
    complete = all(set(steps) <= set(found.get(model, [])) for model, steps in expected.items())
    return found if complete else None


def uploads_seen(base_url: str) -> int:
    """Count the W&B requests that open or write a run (UpsertBucket, file_stream)."""
    requests = get_json(base_url + "/_test/requests")["requests"]
    return sum(
        1 for _method, path, operation in requests if operation == "UpsertBucket" or "file_stream" in path
    )


def test_demo_profile_uploads_every_checkpoint_exactly_once(
    images: Path, wandb_http_server: str, tmp_path: Path
) -> None:
    wandb_server = wandb_http_server
    keys, ssh_port = tmp_path / "keys", free_port()
    env = dict(base_env(), DEMO_SSH_PORT=str(ssh_port), WANDB_API_KEY=DEFAULT_API_KEY)
    run(["bash", str(DEMO_KEYS), str(keys)], timeout=60, env=env)
    env_file = tmp_path / "e2e.env"
    write_env_file(
        env_file,
        keys,
        ssh_port,
        COMPOSE_PROJECT_NAME=PROJECT,
        PULL_CONSUMER="e2e-uploader",
        WANDB_MODE="online",
        WANDB_BASE_URL=wandb_server,
        POLL_INTERVAL_SECONDS=POLL_SECONDS,
        DEMO_PACK_INTERVAL_SECONDS=PACK_SECONDS,
    )
    compose = Compose(env_file)
    expected = expected_steps(tmp_path / "sample")

    def diagnose() -> str:
        return "landed: {}\nexpected: {}\n--- compose ps\n{}\n--- logs\n{}".format(
            steps_by_model(wandb_server),
            expected,
            compose("ps", "-a", timeout=30, check=False).stdout,
            compose.logs(tail=80),
        )

    compose("down", "-v", "--timeout", "30", timeout=120)  # leftovers of an aborted earlier run
    try:
        began = time.monotonic()
        compose("up", "-d", "--no-build", "--pull", "never", "--wait", "--wait-timeout", "180", timeout=240)
        TIMER.measure("compose up --wait (both healthy)", began)
        assert compose.health("uploader") == "running/healthy"
        for service in ("uploader", "remote"):
            uid = compose("exec", "-T", service, "id", "-u", timeout=30).stdout.strip()
            assert uid == "10001", "{} runs as uid {}".format(service, uid)

        began = time.monotonic()
        landed = wait_until(
            "every sample checkpoint in W&B", lambda: landed_once(wandb_server, expected), 180, diagnose
        )
        TIMER.measure("all sample checkpoints landed", began)
        assert {m: sorted(s) for m, s in landed.items()} == expected
        assert demo_runs_are_separate(wandb_server), "the demo must never write into real run ids"

        began = time.monotonic()
        added = compose(
            "exec",
            "-T",
            "remote",
            "python",
            "-m",
            "remote.demo.sample",
            "/data/results",
            "--add-checkpoint",
            timeout=60,
        ).stdout.split()
        model, step = added[1], int(added[2].split("-", 1)[1])  # "added <model> checkpoint-<step>"
        for variant in VARIANTS:
            expected[f"{model}#{variant}"] = sorted(expected[f"{model}#{variant}"] + [step])
        wait_until(
            "the added checkpoint {} of {}".format(step, model),
            lambda: landed_once(wandb_server, expected),
            120,
            diagnose,
        )
        TIMER.measure("added checkpoint landed", began)
        landed_at = time.time()
        wait_until(  # the cycle that logged it has finished and saved its state: nothing in flight
            "the uploader idle after the added checkpoint",
            lambda: (
                uploader_heartbeat(compose).get("phase") == "idle"
                and uploader_heartbeat(compose).get("time", 0) > landed_at
            ),
            120,
            diagnose,
        )

        before, uploads_before = steps_by_model(wandb_server), uploads_seen(wandb_server)
        began = time.monotonic()
        compose("restart", "uploader", timeout=120)
        restarted_at = time.time()

        def two_cycles_after_restart() -> bool:
            beat = uploader_heartbeat(compose)
            return (
                beat.get("time", 0) > restarted_at
                and beat.get("cycle", 0) >= 2
                and beat.get("phase") == "idle"
            )

        wait_until("two uploader cycles after the restart", two_cycles_after_restart, 120, diagnose)
        wait_until(
            "uploader healthy after the restart",
            lambda: compose.health("uploader") == "running/healthy",
            60,
            diagnose,
        )
        TIMER.measure("restart + two idle cycles", began)
        assert steps_by_model(wandb_server) == before, "the restarted uploader changed W&B history"
        assert uploads_seen(wandb_server) == uploads_before, (
            "the restarted uploader opened or wrote runs again"
        )

        logs = compose.logs(tail=2000)
        assert DEFAULT_API_KEY not in logs, "the W&B API key appeared in the container logs"
        assert (keys / "id_ed25519").read_text().splitlines()[1] not in logs
    finally:
        began = time.monotonic()
        compose("down", "-v", "--timeout", "30", timeout=120)
        TIMER.measure("compose down -v", began)
        left = run(
            ["docker", "volume", "ls", "-q", "--filter", "label=com.docker.compose.project=" + PROJECT],
            timeout=30,
        ).stdout.split()
        assert not left, "volumes left after down -v: {}".format(left)


def test_remote_image_packs_a_results_tree_as_the_calling_user(images: Path, tmp_path: Path) -> None:
    """The shipped remote image holds only remote/ and packs a mounted tree as any uid (clusters)."""
    image = "wandb-eval-remote:" + IMAGE_TAG
    listing = run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", "ls", image, "/app"], timeout=60
    )
    assert listing.stdout.split() == ["remote"]
    config = json.loads(run(["docker", "image", "inspect", image], timeout=30).stdout)[0]["Config"]
    assert config["Entrypoint"] == ["python", "-m", "remote"] and config["User"] == "10001:10001"
    uploader = json.loads(
        run(["docker", "image", "inspect", "wandb-eval-uploader:" + IMAGE_TAG], timeout=30).stdout
    )
    assert uploader[0]["Config"]["Healthcheck"]["Test"] == ["CMD", "python", "-m", "local", "health"]
    make_sample_results(str(tmp_path / "results"))
    (tmp_path / "outbox").mkdir()
    for path in [tmp_path / "results", tmp_path / "outbox", *(tmp_path / "results").rglob("*")]:
        os.chown(path, 12345, 12345)  # a cluster user's own tree: not root's, not the image's uid
    began = time.monotonic()
    run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "12345:12345",
            "-v",
            "{}:/data/results".format(tmp_path / "results"),
            "-v",
            "{}:/data/outbox".format(tmp_path / "outbox"),
            image,
            "pack",
            "--results-root",
            "/data/results",
            "--outbox",
            "/data/outbox",
        ],
        timeout=120,
    )
    TIMER.measure("remote image: pack the sample tree", began)
    index = json.loads((tmp_path / "outbox" / "index.json").read_text())
    assert index["bundles"] and (tmp_path / "outbox" / index["bundles"][0]["name"]).stat().st_uid == 12345
