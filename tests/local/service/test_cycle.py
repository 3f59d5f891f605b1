"""once / run / health: the uploader service's cycle, loop, heartbeat and shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

import local.service.cycle
import local.transfer.ack
import local.transfer.pull
from local.cli.main import main
from local.cli.service import load_api_key_file
from local.errors import TransientError
from local.service.cycle import CycleOptions, run_cycle
from local.service.heartbeat import HealthRule, check_health
from local.upload.state import load_state, mode_state_dir, state_path
from remote import cli as remote_cli
from remote.contract.manifest import load_manifest
from tests.fixtures.sshd import SshServer
from tests.fixtures.trees import REPO_ROOT, make_results_tree, write_checkpoint
from tests.fixtures.upload import generated_tree, offline_service_args, options


def _uploaded_steps(results: Path, state_dir: Path) -> dict:
    manifest = load_manifest(str(results / ".wandb_eval_manifest.json"))
    return {
        m.model_dir: sorted(
            load_state(
                state_path(mode_state_dir(str(state_dir), "offline"), m.model_dir, m.wandb_run_id),
                m.model_dir,
                m.wandb_run_id,
            ).processed_steps
        )
        for m in manifest.models
    }


@pytest.fixture
def remote_side(tmp_path: Path) -> Path:
    """A remote results tree packed into tmp_path/outbox; returns the results root."""
    root = make_results_tree(tmp_path / "remote-results", ["ModelA-sft-x", "ModelB-sft-y"], [100, 200])
    assert remote_cli.main(["pack", "--results-root", str(root), "--outbox", str(tmp_path / "outbox")]) == 0
    return root


def test_orchestrate_once_pulls_unpacks_acks_and_uploads(
    tmp_path: Path, remote_side: Path, sshd: SshServer
) -> None:
    known_hosts = sshd.write_known_hosts(tmp_path / "known_hosts")
    pull_args = [
        "--host",
        sshd.host,
        "--port",
        str(sshd.port),
        "--user",
        sshd.user,
        "--identity",
        str(sshd.user_key),
        "--known-hosts",
        str(known_hosts),
        "--remote-outbox",
        str(tmp_path / "outbox"),
        "--consumer",
        "laptop",
    ]
    assert main(["once", *offline_service_args(tmp_path), *pull_args]) == 0
    assert _uploaded_steps(tmp_path / "results", tmp_path / "state") == {
        "ModelA-sft-x": [100, 200],
        "ModelB-sft-y": [100, 200],
    }
    assert json.loads((tmp_path / "outbox" / "acks" / "laptop.json").read_text())["applied_seq"] == 1
    write_checkpoint(remote_side, "ModelB-sft-y", 300)
    remote_cli.main(["pack", "--results-root", str(remote_side), "--outbox", str(tmp_path / "outbox")])
    assert main(["once", *offline_service_args(tmp_path), *pull_args]) == 0
    assert _uploaded_steps(tmp_path / "results", tmp_path / "state")["ModelB-sft-y"] == [100, 200, 300]
    assert json.loads((tmp_path / "outbox" / "acks" / "laptop.json").read_text())["applied_seq"] == 2


def test_orchestrate_failed_pull_still_uploads_what_the_inbox_holds(
    tmp_path: Path, remote_side: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "inbox").mkdir()
    for bundle in (tmp_path / "outbox").glob("bundle-*"):
        (tmp_path / "inbox" / bundle.name).write_bytes(bundle.read_bytes())

    def unreachable(*args):
        raise TransientError("cannot reach gpu01:22 after 6 attempts", "check the network")

    def no_ack(*args):
        raise AssertionError("no ack while the remote is unreachable")

    # The cycle imports the SFTP edge only when a host is configured, from these modules.
    monkeypatch.setattr(local.transfer.pull, "pull", unreachable)
    monkeypatch.setattr(local.transfer.ack, "write_ack", no_ack)
    code = main(["once", *offline_service_args(tmp_path), "--host", "gpu01", "--remote-outbox", "/o"])
    assert code == 3  # the pull's transient failure is the cycle's worst outcome
    assert "failed: pull: cannot reach gpu01:22" in capsys.readouterr().out
    assert _uploaded_steps(tmp_path / "results", tmp_path / "state")["ModelA-sft-x"] == [100, 200]


def test_orchestrate_loop_survives_failed_steps_and_records_them_in_the_heartbeat(tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat.json"
    # No manifest anywhere: every upload step fails, yet the loop runs its cycles and ends cleanly.
    code = main(
        [
            "run",
            *offline_service_args(tmp_path),
            "--poll-interval-seconds",
            "0.01",
            "--max-cycles",
            "3",
            "--heartbeat-file",
            str(heartbeat),
        ]
    )
    document = json.loads(heartbeat.read_text())
    assert code == 0 and document["cycle"] == 3 and document["phase"] == "idle"
    assert document["last_exit_code"] == 2 and "manifest not found" in document["last_errors"][0]
    assert document["failed_cycles"] == 3 and document["last_success"] is None


def test_orchestrate_run_stops_on_sigterm_after_the_current_step(tmp_path: Path, remote_side: Path) -> None:
    (tmp_path / "inbox").mkdir()
    for bundle in (tmp_path / "outbox").glob("bundle-*"):
        (tmp_path / "inbox" / bundle.name).write_bytes(bundle.read_bytes())
    heartbeat = tmp_path / "state" / "heartbeat.json"
    command = [sys.executable, "-m", "local", "run", *offline_service_args(tmp_path)]
    command += ["--poll-interval-seconds", "30"]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            heartbeat.exists() and json.loads(heartbeat.read_text())["phase"] == "idle"
        ):
            time.sleep(0.1)
        assert main(["health", "--heartbeat-file", str(heartbeat)]) == 0
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)  # bounded: the 30 s sleep is interrupted
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "received SIGTERM" in err and "loop stopped after 1 cycles" in err
    assert _uploaded_steps(tmp_path / "results", tmp_path / "state")["ModelB-sft-y"] == [100, 200]


def test_orchestrate_second_service_on_one_state_dir_exits_at_once(
    tmp_path: Path, remote_side: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from local.upload.report import UploadOptions
    from local.upload.uploader import uploader_lock

    def must_not_pull(*args):
        raise AssertionError("a second uploader must not pull, unpack or ack")

    monkeypatch.setattr(local.transfer.pull, "pull", must_not_pull)
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "bundle-00000001-full.tar.gz").write_bytes(
        (tmp_path / "outbox" / "bundle-00000001-full.tar.gz").read_bytes()
    )
    with uploader_lock(UploadOptions(state_dir=str(tmp_path / "state"))):
        assert main(["run", *offline_service_args(tmp_path), "--max-cycles", "1"]) == 5
        remote = ["--host", "gpu01", "--remote-outbox", "/o"]
        assert main(["once", *offline_service_args(tmp_path), *remote]) == 5
    assert not (tmp_path / "results").exists()  # nothing was unpacked


def test_orchestrate_health_reports_missing_and_stale_heartbeats(tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat.json"
    rule = HealthRule(max_age=600)
    assert "no heartbeat" in (check_health(str(heartbeat), rule) or "")
    heartbeat.write_text(json.dumps({"time": 1000.0}))
    assert check_health(str(heartbeat), rule, now=1500.0) is None
    assert "stuck or dead" in (check_health(str(heartbeat), rule, now=2000.0) or "")
    assert main(["health", "--heartbeat-file", str(heartbeat)]) == 1


def test_orchestrate_api_key_file_is_read_into_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    key_file = tmp_path / "wandb_api_key"
    key_file.write_text("secret-key-value\n")
    monkeypatch.setenv("WANDB_API_KEY_FILE", str(key_file))
    load_api_key_file()
    assert os.environ["WANDB_API_KEY"] == "secret-key-value"


def test_orchestrate_offline_mode_needs_no_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_API_KEY_FILE", str(tmp_path / "absent"))
    # No manifest yet: the upload step fails (2), but not because of the key.
    assert main(["once", *offline_service_args(tmp_path)]) == 2
    assert "WANDB_API_KEY" not in os.environ


def test_orchestrate_empty_api_key_file_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    (tmp_path / "key").write_text("")
    monkeypatch.setenv("WANDB_API_KEY_FILE", str(tmp_path / "key"))
    online = [a if a != "offline" else "online" for a in offline_service_args(tmp_path)]
    assert main(["once", *online]) == 2
    assert capsys.readouterr().err.startswith("Error: WANDB_API_KEY_FILE")


def test_orchestrate_health_and_status_never_load_the_sdk_or_ssh(tmp_path: Path) -> None:
    # The healthcheck runs every 30 s for the service's life: importing wandb made each 0.6 s, 68 MB.
    heartbeat = tmp_path / "heartbeat.json"
    heartbeat.write_text(json.dumps({"time": time.time()}))
    probe = (
        "import sys; from local.cli.main import main; "
        "codes = [main(['health', '--heartbeat-file', sys.argv[1]]), "
        "main(['status', '--results-root', sys.argv[2]])]; "
        "loaded = [m for m in ('wandb', 'paramiko', 'tenacity', 'local.service.cycle') if m in sys.modules]; "
        "print('LOADED', loaded, codes)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(heartbeat), str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "LOADED [] [0, 0]" in result.stdout, result.stdout + result.stderr


def test_orchestrate_disk_error_in_one_step_is_reported_and_the_cycle_goes_on(
    tmp_path: Path, remote_side: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "inbox").mkdir()
    uploads: List[str] = []

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local.service.cycle, "unpack_inbox", disk_full)
    monkeypatch.setattr(
        local.service.cycle, "upload_pass", lambda *a, **k: uploads.append("pass") or _Clean()
    )
    assert main(["once", *offline_service_args(tmp_path)]) == 1
    assert "failed: unpack: [Errno 28] No space left on device" in capsys.readouterr().out
    assert uploads == ["pass"]  # the upload step still ran


class _Clean:
    def exit_code(self) -> int:
        return 0


def test_orchestrate_unreadable_api_key_file_online_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_API_KEY_FILE", str(tmp_path / "absent"))
    online = [a if a != "offline" else "online" for a in offline_service_args(tmp_path)]
    assert main(["once", *online]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: cannot read WANDB_API_KEY_FILE") and "Hint: mount the W&B key file" in err


def test_orchestrate_once_applies_the_unpack_limits_of_the_environment(
    tmp_path: Path, remote_side: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "inbox").mkdir()
    for bundle in (tmp_path / "outbox").glob("bundle-*"):
        (tmp_path / "inbox" / bundle.name).write_bytes(bundle.read_bytes())
    monkeypatch.setenv("UNPACK_MAX_MEMBERS", "2")  # the bundle has 5: refused before anything is written
    assert main(["once", *offline_service_args(tmp_path)]) == 2
    assert "past the limit of 2 members" in capsys.readouterr().out
    assert not (tmp_path / "results" / "ModelA-sft-x").exists()


def test_orchestrate_a_long_upload_pass_refreshes_the_heartbeat_as_it_makes_progress(
    wandb_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = generated_tree(tmp_path / "results", ["a", "b", "c"], [100])
    upload = options(results, tmp_path / "state", workers=1, worker_slots=1)
    cycle_options = CycleOptions(upload=upload, inbox=None)
    steps: List[str] = []
    # At the default interval, a pass of seconds writes the heartbeat once, before the step.
    assert run_cycle(cycle_options, on_step=steps.append).exit_code() == 0
    assert steps == ["unpack", "upload"]
    write_checkpoint(results, "a", 200)
    write_checkpoint(results, "b", 200)
    write_checkpoint(results, "c", 200)
    steps.clear()
    monkeypatch.setattr(local.service.cycle, "REFRESH_SECONDS", 0.0)
    assert run_cycle(cycle_options, on_step=steps.append).exit_code() == 0
    # Before the step, then after each model planned (3) and each run uploaded (3).
    assert steps == ["unpack"] + ["upload"] * 7
