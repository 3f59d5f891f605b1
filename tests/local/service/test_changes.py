"""The service plans from what unpack wrote; an idle cycle costs nothing; a full scan catches the rest.

Real bundles (the remote's pack), real unpack, the real SDK against the W&B test server.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest

from local.service.changes import Changes
from local.service.cycle import CycleOptions, run_cycle
from local.upload.report import ModelOutcome, PassReport
from remote import cli as remote_cli
from remote.contract.manifest import load_manifest
from tests.fixtures.trees import REPO_ROOT, make_results_tree, write_checkpoint
from tests.fixtures.upload import history_steps, options


def _pack(remote: Path, outbox: Path, inbox: Path) -> None:
    """Pack what is new on the 'training machine' and deliver the bundles to the inbox (no SFTP)."""
    assert remote_cli.main(["pack", "--results-root", str(remote), "--outbox", str(outbox)]) == 0
    inbox.mkdir(exist_ok=True)
    for bundle in outbox.glob("bundle-*.tar.gz"):
        if not (inbox / bundle.name).exists():
            shutil.copy(bundle, inbox / bundle.name)


def _history(server, results: Path) -> Dict[str, List[int]]:
    manifest = load_manifest(str(results / ".wandb_eval_manifest.json"))
    return {m.model_dir: history_steps(server, m.wandb_run_id) for m in manifest.models}


def test_changes_event_path_uploads_what_unpack_wrote_and_a_full_scan_finds_the_rest(
    wandb_server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote, outbox, inbox = tmp_path / "remote", tmp_path / "outbox", tmp_path / "inbox"
    results = tmp_path / "results"
    make_results_tree(remote, ["ModelA-sft-x", "ModelB-sft-y"], [100])
    _pack(remote, outbox, inbox)
    cycle = CycleOptions(upload=options(results, tmp_path / "state"), inbox=str(inbox), full_scan_every=3)
    changes = Changes(cycle.full_scan_every)
    assert run_cycle(cycle, changes=changes).exit_code() == 0  # the loop's first cycle: a full scan
    assert _history(wandb_server, results) == {"ModelA-sft-x": [100], "ModelB-sft-y": [100]}

    write_checkpoint(remote, "ModelA-sft-x", 200)
    _pack(remote, outbox, inbox)
    write_checkpoint(results, "ModelB-sft-y", 200)  # changed by other means than unpack
    wandb_server.reset_requests()
    assert run_cycle(cycle, changes=changes).exit_code() == 0
    # Only the model unpack wrote was planned: B's new checkpoint waits for the full scan.
    assert _history(wandb_server, results) == {"ModelA-sft-x": [100, 200], "ModelB-sft-y": [100]}
    streamed = {path.split("/")[-2] for _, path, _ in wandb_server.requests if path.endswith("/file_stream")}
    run_a = load_manifest(str(results / ".wandb_eval_manifest.json")).models[0].wandb_run_id
    assert streamed == {run_a}  # B's run was not even opened (these options upload ckpt_step only)

    wandb_server.reset_requests()
    caplog.set_level(logging.DEBUG, logger="local.service.cycle")
    assert run_cycle(cycle, changes=changes).exit_code() == 0
    assert "no upload pass this cycle" in caplog.text and wandb_server.request_count() == 0

    caplog.clear()
    caplog.set_level(logging.WARNING, logger="local.service.changes")
    assert run_cycle(cycle, changes=changes).exit_code() == 0  # the third cycle since the full scan
    assert _history(wandb_server, results) == {"ModelA-sft-x": [100, 200], "ModelB-sft-y": [100, 200]}
    warnings = [r.getMessage() for r in caplog.records if r.name == "local.service.changes"]
    assert len(warnings) == 1 and "ModelB-sft-y" in warnings[0] and "ModelA" not in warnings[0]


def test_changes_idle_cycle_loads_no_sdk_and_calls_no_one(wandb_server, tmp_path: Path) -> None:
    remote, outbox, inbox = tmp_path / "remote", tmp_path / "outbox", tmp_path / "inbox"
    make_results_tree(remote, ["ModelA-sft-x", "ModelB-sft-y"], [100, 200])
    _pack(remote, outbox, inbox)
    args = ["--results-root", str(tmp_path / "results"), "--state-dir", str(tmp_path / "state")]
    args += ["--inbox", str(inbox), "--init-timeout", "15", "--finish-timeout", "30"]
    env = {**wandb_server.env(), "PATH": "/usr/bin:/bin"}
    first = subprocess.run(
        [sys.executable, "-m", "local", "once", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    assert len(wandb_server.runs()) == 4  # two models, each with its epoch run
    wandb_server.reset_requests()
    # An idle `once` (a full scan, nothing new) and an idle service loop (a full scan, then cycles
    # with nothing unpacked): in one process, which must end without the SDK, the SSH stack or
    # the upload pool ever loaded.
    probe = (
        "import sys; from local.cli.main import main; a = sys.argv[1:]; "
        "loop = ['--max-cycles', '3', '--poll-interval-seconds', '0.01']; "
        "codes = [main(['once', *a]), main(['run', *a, *loop])]; "
        "loaded = [m for m in ('wandb', 'paramiko', 'tenacity', 'local.upload.pool', "
        "'multiprocessing.forkserver') if m in sys.modules]; print('LOADED', loaded, codes)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "LOADED [] [0, 0]" in done.stdout, done.stdout + done.stderr
    assert wandb_server.request_count() == 0


# The rules of Changes alone: which cycles must scan everything, which models a pass plans.


def _entry(name: str) -> Any:
    return SimpleNamespace(model_dir=name)


def _after_first_full_scan(tmp_path: Path) -> Changes:
    changes = Changes(full_every=60, overrides_path=str(tmp_path / "overrides.json"))
    wants = changes.focus(full=True)
    for name in ("a", "b"):
        wants(_entry(name), ["run-" + name])
    changes.passed(PassReport(models=[]), full=True)
    return changes


def test_changes_after_a_full_scan_with_nothing_new_the_cycle_is_idle(tmp_path: Path) -> None:
    changes = _after_first_full_scan(tmp_path)
    assert not changes.full_scan_due() and changes.idle()


def test_changes_a_failed_unpack_makes_the_next_pass_a_full_scan(tmp_path: Path) -> None:
    changes = _after_first_full_scan(tmp_path)
    changes.unpack_failed()  # what it wrote before failing is unknown
    assert changes.full_scan_due() and not changes.idle()


def test_changes_a_new_or_changed_overrides_file_makes_the_next_pass_a_full_scan(tmp_path: Path) -> None:
    changes = _after_first_full_scan(tmp_path)
    (tmp_path / "overrides.json").write_text('{"a": {"wandb_run_id": "new-a"}}', encoding="utf-8")
    assert changes.full_scan_due()


def test_changes_a_full_scan_comes_every_n_cycles(tmp_path: Path) -> None:
    changes = Changes(full_every=3)
    changes.passed(PassReport(models=[]), full=True)
    due = []
    for _ in range(6):
        due.append(changes.full_scan_due())
        if due[-1]:
            changes.passed(PassReport(models=[]), full=True)
        else:
            changes.skipped()
    assert due == [False, False, True, False, False, True]


def test_changes_plans_what_unpack_wrote_what_failed_and_runs_that_changed(tmp_path: Path) -> None:
    changes = _after_first_full_scan(tmp_path)
    changes.unpacked(["a/checkpoint-300/metrics.json", ".wandb_eval_manifest.json"])
    assert not changes.idle()
    wants = changes.focus(full=False)
    assert wants(_entry("a"), ["run-a"]) and not wants(_entry("b"), ["run-b"])
    failed = ModelOutcome("a", "run-a", error="W&B 503", error_kind="transient")
    changes.passed(PassReport(models=[failed]), full=False)
    # a failed: retried next cycle with nothing unpacked; b's run id changed in the manifest.
    assert not changes.idle()
    wants = changes.focus(full=False)
    assert wants(_entry("a"), ["run-a"]) and wants(_entry("b"), ["run-b2"])
    changes.passed(PassReport(models=[]), full=False)
    assert changes.idle()
