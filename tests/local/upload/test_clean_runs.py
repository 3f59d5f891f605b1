"""An idle pass skips the states of runs unchanged since they were clean, and nothing else."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List

import pytest

import local.upload.planner
from local.upload import parallel_scan
from local.upload.clean_runs import CACHE_NAME
from local.upload.uploader import upload_pass
from remote.contract.exit_codes import EXIT_FAILED, EXIT_OK
from tests.fixtures.trees import write_checkpoint
from tests.fixtures.upload import assert_exactly_once, generated_tree, history_steps, options

BOTH = ("ckpt_step", "epoch")


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """Record the run id of every state the planner loads."""
    loaded: List[str] = []
    real = local.upload.planner.open_state

    def spy(path, state_dir, model_dir, run_id, dry_run):
        loaded.append(run_id)
        return real(path, state_dir, model_dir, run_id, dry_run)

    monkeypatch.setattr(local.upload.planner, "open_state", spy)
    return loaded


def test_clean_runs_idle_pass_loads_no_state_until_something_changes(
    wandb_server, tmp_path: Path, opened: List[str]
) -> None:
    results = generated_tree(tmp_path / "results", ["a", "b"], [100, 200])
    state_dir = tmp_path / "state"
    assert upload_pass(options(results, state_dir, variants=BOTH)).exit_code() == EXIT_OK
    assert upload_pass(options(results, state_dir, variants=BOTH)).exit_code() == EXIT_OK  # learns
    opened.clear()
    wandb_server.reset_requests()
    report = upload_pass(options(results, state_dir, variants=BOTH))
    assert report.exit_code() == EXIT_OK and len(report.models) == 4
    assert opened == [] and wandb_server.request_count() == 0

    # A corrected metrics file (same name, new content and mtime): only model a is planned again.
    write_checkpoint(results, "a", 200, {"HR@10": 0.9, "NDCG@10": 0.8})
    os.utime(results / "a" / "checkpoint-200" / "metrics.json", ns=(1, 1))
    report = upload_pass(options(results, state_dir, variants=BOTH))
    assert sorted(opened) == ["eval-a", "eval-a-epoch"]
    assert all(o.revised_steps == [200] for o in report.models if o.model_dir == "a")
    assert history_steps(wandb_server, "eval-a") == [100, 200, 200]

    # A new checkpoint folder without metrics yet, then a lost state: both are planned again.
    (results / "b" / "checkpoint-300").mkdir()
    opened.clear()
    upload_pass(options(results, state_dir, variants=BOTH))
    assert sorted(opened) == ["eval-a", "eval-a-epoch", "eval-b", "eval-b-epoch"]  # a: just uploaded
    for path in state_dir.glob("b-*.json"):
        path.unlink()
    write_checkpoint(results, "b", 300)
    opened.clear()
    report = upload_pass(options(results, state_dir, variants=BOTH))
    assert report.exit_code() == EXIT_OK and sorted(opened) == ["eval-b", "eval-b-epoch"]
    assert_exactly_once(wandb_server, "eval-b", [100, 200, 300])  # the lost state was reconciled
    assert_exactly_once(wandb_server, "eval-b-epoch", [100, 200, 300])


def test_clean_runs_failed_checkpoints_are_retried_every_pass(wandb_server, tmp_path: Path, opened) -> None:
    results = generated_tree(tmp_path / "results", ["a"], [100])
    (results / "a" / "checkpoint-200").mkdir()
    (results / "a" / "checkpoint-200" / "metrics.json").write_text('{"HR@10": ')  # being written
    state_dir = tmp_path / "state"
    for _ in range(3):
        opened.clear()
        report = upload_pass(options(results, state_dir))
        assert report.exit_code() == EXIT_FAILED and opened == ["eval-a"]
        assert list(report.models[0].failed_steps) == [200]


def test_clean_runs_a_dry_run_uses_the_cache_but_never_writes_it(
    wandb_server, tmp_path: Path, opened
) -> None:
    results = generated_tree(tmp_path / "results", ["a"], [100])
    state_dir = tmp_path / "state"
    upload_pass(options(results, state_dir))
    upload_pass(options(results, state_dir))
    cache = (state_dir / CACHE_NAME).read_bytes()
    write_checkpoint(results, "a", 200)
    opened.clear()
    report = upload_pass(options(results, state_dir, disable_wandb=True))
    assert report.models[0].would_upload == [200] and opened == ["eval-a"]
    assert (state_dir / CACHE_NAME).read_bytes() == cache


def test_clean_runs_unreadable_cache_is_ignored(wandb_server, tmp_path: Path, opened) -> None:
    results = generated_tree(tmp_path / "results", ["a"], [100])
    state_dir = tmp_path / "state"
    upload_pass(options(results, state_dir))
    upload_pass(options(results, state_dir))
    (state_dir / CACHE_NAME).write_text('{"version": 1, "runs": {')  # cut short
    opened.clear()
    assert upload_pass(options(results, state_dir)).exit_code() == EXIT_OK and opened == ["eval-a"]
    assert json.loads((state_dir / CACHE_NAME).read_text())["runs"]  # rewritten


def test_clean_runs_keys_scanned_in_other_processes_skip_and_notice_like_planning(
    wandb_server, tmp_path: Path, opened: List[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["a", "b", "c", "d"]
    results = generated_tree(tmp_path / "results", names, [100, 200])
    state_dir = tmp_path / "state"
    assert upload_pass(options(results, state_dir)).exit_code() == EXIT_OK
    assert upload_pass(options(results, state_dir)).exit_code() == EXIT_OK  # learns
    forks: List[int] = []
    real_start = parallel_scan._start_child

    def start_child(model_paths, share):
        forks.append(len(share))
        return real_start(model_paths, share)

    # The pass's fork guard sees the test server's thread: the split is forced here.
    monkeypatch.setattr(parallel_scan, "processes_for", lambda count: 2)
    monkeypatch.setattr(parallel_scan, "_start_child", start_child)
    opened.clear()
    assert upload_pass(options(results, state_dir)).exit_code() == EXIT_OK
    assert opened == [] and forks == [2]  # b and d were scanned by the child

    write_checkpoint(results, "d", 200, {"HR@10": 0.9, "NDCG@10": 0.8})  # in the child's share
    os.utime(results / "d" / "checkpoint-200" / "metrics.json", ns=(1, 1))
    report = upload_pass(options(results, state_dir))
    assert opened == ["eval-d"] and [o.revised_steps for o in report.models] == [[], [], [], [200]]
    assert history_steps(wandb_server, "eval-d") == [100, 200, 200]
