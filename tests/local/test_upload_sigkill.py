"""Exactly once across SIGKILL: kill the uploader at several moments, rerun, count rows."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import wandb

from local import plan
from local.errors import EXIT_OK
from local.state import ModelState, load_state, save_state, state_path
from local.upload import upload_pass
from local.wandb_writer import core_pids_of
from tests.fixtures.trees import REPO_ROOT, metrics_for
from tests.local.test_upload_support import PROJECT, assert_exactly_once, generated_tree, options

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
    wandb_server.set_latency(0.05)
    command = [sys.executable, "-m", "local", "upload", "--once", "--results-root", str(results)]
    command += ["--state-dir", str(tmp_path / "state"), "--workers", "3"]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env={**os.environ, **wandb_server.env()}, stderr=subprocess.PIPE
    )
    assert _kill_when(process, lambda: _in_flight_written(tmp_path / "state"))
    deadline = time.monotonic() + 30
    sessions = []
    while time.monotonic() < deadline:
        # Session processes are forked by the forkserver, which exits when the uploader dies.
        sessions = [
            pid for pid in _all_pids() if _cmdline(pid).startswith(sys.executable) and _ppid(pid) == 1
        ]
        cores = [core for pid in sessions for core in core_pids_of(pid)]
        if not sessions and not cores:
            break
        time.sleep(0.2)
    assert not sessions


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
    run.log(plan.history_row(items[0]))  # what a killed uploader got onto the server
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


def _all_pids():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return (
            Path("/proc/{}/cmdline".format(pid)).read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        )
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    try:
        return int(Path("/proc/{}/stat".format(pid)).read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1
