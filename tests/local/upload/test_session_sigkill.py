"""Exactly once across SIGKILL: kill the uploader at several moments, rerun, count rows."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import wandb

from local.upload import plan
from local.upload.state import ModelState, load_state, save_state, state_path
from local.upload.uploader import upload_pass
from remote.contract.exit_codes import EXIT_OK
from tests.fixtures.trees import REPO_ROOT, metrics_for
from tests.fixtures.upload import PROJECT, assert_exactly_once, generated_tree, options

MODELS = ["m1", "m2", "m3"]
STEPS = list(range(100, 1300, 100))


def _in_flight_written(state_dir: Path) -> bool:
    for name in glob.glob(str(state_dir / "*.json")):
        try:
            if json.loads(Path(name).read_text()).get("in_flight"):
                return True
        except ValueError:
            continue
    return False


def _rows_landed(server, count: int) -> bool:
    return any(len(run.history) >= count for run in server.runs())


def _one_finished(server) -> bool:
    return any(run.state == "finished" for run in server.runs())


def _kill_when(process: subprocess.Popen, ready, limit: float = 60.0) -> bool:
    """Poll until ready() (bounded), then SIGKILL the uploader; return whether it was still running."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None and not ready():
        time.sleep(0.01)
    alive = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return alive


@pytest.mark.parametrize("moment", ["in_flight_written", "some_rows_landed", "one_run_finished"])
def test_upload_sigkill_then_rerun_logs_every_checkpoint_once(wandb_server, tmp_path, moment):
    results = generated_tree(tmp_path / "results", MODELS, STEPS)
    state_dir = tmp_path / "state"
    # Slow requests keep rows in flight long enough to kill the uploader in the middle.
    wandb_server.set_latency(0.05)
    command = [sys.executable, "-m", "local", "upload", "--once", "--results-root", str(results)]
    command += [
        "--state-dir",
        str(state_dir),
        "--workers",
        "3",
        "--init-timeout",
        "20",
        "--finish-timeout",
        "60",
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, **wandb_server.env()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    ready = {
        "in_flight_written": lambda: _in_flight_written(state_dir),
        "some_rows_landed": lambda: _rows_landed(wandb_server, 2),
        "one_run_finished": lambda: _one_finished(wandb_server),
    }[moment]
    assert _kill_when(process, ready), "the uploader ended before the kill point"
    wandb_server.set_latency(0)
    before = {run.run_id: len(run.history) for run in wandb_server.runs()}
    report = upload_pass(options(results, state_dir))
    assert report.exit_code() == EXIT_OK, [o.error for o in report.models]
    for outcome in report.models:
        # Rows that had landed are recovered from the server's count, never logged again.
        assert before.get(outcome.run_id, 0) == 0 or not outcome.uploaded_steps
    for model in MODELS:
        assert_exactly_once(wandb_server, "eval-" + model, STEPS)
        state = load_state(state_path(str(state_dir), model, "eval-" + model), model, "eval-" + model)
        assert state.processed_steps == STEPS and state.in_flight is None
    # A later pass has nothing left to do.
    wandb_server.reset_requests()
    assert upload_pass(options(results, state_dir)).exit_code() == EXIT_OK
    assert wandb_server.request_count() == 0


def test_upload_sigkill_leaves_no_session_or_wandb_core_behind(wandb_server, tmp_path):
    results = generated_tree(tmp_path / "results", MODELS, STEPS)
    # Slow enough that a surviving session would still be running when we look.
    wandb_server.set_latency(0.3)
    marker = "UPLOAD_TEST_MARK={}".format(uuid.uuid4().hex)
    env = {**os.environ, **wandb_server.env(), "UPLOAD_TEST_MARK": marker.split("=", 1)[1]}
    command = [sys.executable, "-m", "local", "upload", "--once", "--results-root", str(results)]
    command += ["--state-dir", str(tmp_path / "state"), "--workers", "3"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE)
    assert _kill_when(process, lambda: _in_flight_written(tmp_path / "state"))
    # Every process the uploader started (forkserver, sessions, their wandb-core) carries the marker.
    deadline = time.monotonic() + 4
    while _marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _marked(marker) == []
    # Nothing wrote state after the kill: the in-flight records wait for the next pass.
    assert _in_flight_written(tmp_path / "state")


def _marked(marker: str):
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path("/proc/{}/environ".format(name)).read_bytes().split(b"\0")
            state = Path("/proc/{}/stat".format(name)).read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in environ and state != "Z":
            found.append(int(name))
    return found


def test_upload_recovery_relogs_only_rows_the_server_lacks(wandb_server, tmp_path):
    """An in-flight record of 3 rows, of which the server holds the first: log only the other 2."""
    results = generated_tree(tmp_path / "results", ["a"], [100, 200, 300])
    state_dir = tmp_path / "state"
    items = [
        plan.Item(s, 0, plan.metrics_digest(metrics_for(s)), ("metrics.json", 1, 1), metrics_for(s))
        for s in STEPS[:3]
    ]
    run = wandb.init(
        id="eval-a",
        project=PROJECT,
        resume="allow",
        settings=wandb.Settings(init_timeout=30, finish_timeout=60),
    )
    run.log(plan.history_row(items[0], "a"))  # what a killed uploader got onto the server
    run.finish()
    path = state_path(str(state_dir), "a", "eval-a")
    save_state(
        path,
        ModelState(
            "a", "eval-a", in_flight={"start_step": 0, "pid": 0, "items": [i.to_json() for i in items]}
        ),
    )
    report = upload_pass(options(results, state_dir))
    assert report.exit_code() == EXIT_OK
    assert report.models[0].recovered_steps == [100] and report.models[0].uploaded_steps == [200, 300]
    assert_exactly_once(wandb_server, "eval-a", [100, 200, 300])
    assert load_state(path, "a", "eval-a").processed_steps == [100, 200, 300]
