"""The W&B test server across process boundaries: standalone mode (`python -m`) and SDK subprocesses."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from .test_server_units import post_graphql

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "standalone_" + "k" * 40


class Remote:
    """Given the URL of a standalone server, talk to its /_test/ endpoints."""

    def __init__(self, url):
        self.url = url

    def call(self, path, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        with urllib.request.urlopen(
            urllib.request.Request(self.url + path, data=data), timeout=10
        ) as response:
            return json.load(response)


@pytest.fixture
def standalone():
    """Given nothing, run `python -m tests.wandb_server --port 0` and yield a Remote for it."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.wandb_server",
            "--port",
            "0",
            "--api-key",
            KEY,
            "--log-level",
            "WARNING",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield Remote(url)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=20)


def test_standalone_test_endpoints_drive_faults_and_report_runs(standalone):
    assert standalone.call("/_test/health")["ok"] is True
    standalone.call("/_test/faults", {"inject": {"status": 503, "count": 1, "match": "Viewer"}})
    assert post_graphql(standalone, "Viewer", key=KEY)[0] == 503
    assert post_graphql(standalone, "Viewer", key=KEY)[0] == 200

    state = standalone.call("/_test/faults", {"down": True})
    assert state["down"] is True
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        post_graphql(standalone, "Viewer", key=KEY)
    assert standalone.call("/_test/health")["ok"] is True  # test endpoints stay reachable
    standalone.call("/_test/faults", {"down": False, "latency": 0.01})
    assert post_graphql(standalone, "Viewer", key=KEY)[0] == 200

    requests = standalone.call("/_test/requests")["requests"]
    assert [op for _, _, op in requests] == ["Viewer"] * 4
    assert standalone.call("/_test/runs") == {"runs": []}
    assert standalone.call("/_test/faults", {"clear": True, "reset_requests": True})["pending"] == []


SDK_SCRIPT = textwrap.dedent(
    """
    import wandb
    run = wandb.init(project="sub", id="sub-run", resume="allow", config={"c": 1},
                     settings=wandb.Settings(init_timeout=60, finish_timeout=60))
    run.log({"x": 1})
    run.finish()
    """
)


def test_standalone_env_points_sdk_subprocess_at_server(wandb_server):
    env = dict(os.environ, **wandb_server.env())
    result = subprocess.run(
        [sys.executable, "-c", SDK_SCRIPT],
        env=env,
        cwd=wandb_server.wandb_root,
        timeout=180,
        capture_output=True,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    record = wandb_server.run("sub-run", project="sub")
    assert record.config == {"c": 1} and [row["x"] for row in record.history] == [1]
    assert "WANDB_API_KEY" in env and env["WANDB_MODE"] == "online"


KILLED_SCRIPT = textwrap.dedent(
    """
    import time, wandb
    run = wandb.init(project="sub", id="killed", resume="allow", settings=wandb.Settings(init_timeout=60))
    for index in range(5):
        run.log({"x": index})
    print("LOGGED", flush=True)
    time.sleep(300)
    """
)


def child_pids(pid):
    """Given a pid, return the pids of its direct children (Linux /proc)."""
    children = []
    for task in os.listdir("/proc/{}/task".format(pid)):
        with open("/proc/{}/task/{}/children".format(pid, task)) as handle:
            children += [int(child) for child in handle.read().split()]
    return children


def test_standalone_sigkill_of_sdk_process_ends_its_core_rows_a_prefix(wandb_server):
    env = dict(os.environ, **wandb_server.env())
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_SCRIPT],
        env=env,
        cwd=wandb_server.wandb_root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "LOGGED"
        cores = child_pids(process.pid)  # wandb-core, which watches its parent's pid
        process.kill()
        process.wait(timeout=20)
        deadline = time.monotonic() + 60
        while any(os.path.exists("/proc/{}".format(pid)) for pid in cores) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(os.path.exists("/proc/{}".format(pid)) for pid in cores), (
            "orphaned wandb-core lives on"
        )
    finally:
        if process.poll() is None:
            process.kill()
    # Whatever was streamed before the kill is a prefix of what was logged (measured: nothing, as
    # history is batched); the rest is lost for good, and nothing is ever duplicated.
    rows = [row["x"] for row in wandb_server.run("killed", project="sub").history]
    assert rows == list(range(len(rows)))
