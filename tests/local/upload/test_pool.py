"""The pool of long-lived upload workers: reused across sessions, retired when they must be.

Real worker processes, the real SDK and its wandb-core, against the W&B test server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local.upload import pool
from local.upload.uploader import upload_pass
from remote.contract.exit_codes import EXIT_OK, EXIT_PERMANENT, EXIT_TRANSIENT
from tests.fixtures.upload import assert_exactly_once, generated_tree, options

MODELS = ["a", "b", "c", "d"]
STEPS = [100, 200]


def _gone(pid: int) -> bool:
    """Given a pid, tell whether that process has exited (and was reaped)."""
    return not Path(f"/proc/{pid}").exists()


def test_pool_worker_is_reused_across_sessions(wandb_server, tmp_path) -> None:
    results = generated_tree(tmp_path / "results", MODELS, STEPS)
    # One worker, one session at a time: the four runs are opened one after another in it.
    report = upload_pass(options(results, tmp_path / "state", workers=1, worker_slots=1))
    assert report.exit_code() == EXIT_OK
    workers = {tuple(outcome.worker_pids) for outcome in report.models}
    assert len(workers) == 1 and len(next(iter(workers))) == 1  # one process, one attempt each
    for model in MODELS:
        assert_exactly_once(wandb_server, "eval-" + model, STEPS)
    assert _gone(next(iter(workers))[0])  # the pass ended it


def test_pool_worker_runs_several_sessions_at_once(wandb_server, tmp_path) -> None:
    results = generated_tree(tmp_path / "results", MODELS, STEPS)
    wandb_server.set_latency(0.05)  # long enough sessions for the four to overlap
    report = upload_pass(options(results, tmp_path / "state", workers=1, worker_slots=4))
    assert report.exit_code() == EXIT_OK
    assert len({outcome.worker_pids[0] for outcome in report.models}) == 1
    for model in MODELS:
        assert_exactly_once(wandb_server, "eval-" + model, STEPS)


def test_pool_worker_retires_after_its_bounded_number_of_sessions(wandb_server, tmp_path) -> None:
    results = generated_tree(tmp_path / "results", MODELS + ["e"], STEPS)
    report = upload_pass(options(results, tmp_path / "state", workers=1, worker_slots=1, worker_sessions=2))
    assert report.exit_code() == EXIT_OK
    by_worker: dict = {}
    for outcome in report.models:
        by_worker.setdefault(outcome.worker_pids[0], []).append(outcome.model_dir)
    assert sorted(len(models) for models in by_worker.values()) == [1, 2, 2]
    assert all(_gone(pid) for pid in by_worker)


def test_pool_worker_is_retired_after_a_failed_init_and_never_reused(wandb_server, tmp_path) -> None:
    results = generated_tree(tmp_path / "results", ["a", "b"], STEPS)
    # W&B refuses run a's resume query: its wandb.init fails (permanent) in the first worker.
    wandb_server.inject(403, count=100, operation="RunResumeStatus", body_match="eval-a")
    report = upload_pass(options(results, tmp_path / "state", workers=1, worker_slots=1))
    assert report.exit_code() == EXIT_PERMANENT
    failed, done = (next(o for o in report.models if o.model_dir == name) for name in ("a", "b"))
    assert failed.error_kind == "permanent" and done.error is None
    # b ran after a (one slot), in a new worker: the one whose init failed started nothing more.
    assert failed.worker_pids != done.worker_pids and _gone(failed.worker_pids[0])
    assert_exactly_once(wandb_server, "eval-b", STEPS)


def test_pool_transient_init_failure_is_retried_in_another_worker(wandb_server, tmp_path) -> None:
    results = generated_tree(tmp_path / "results", ["a", "b"], STEPS)
    # UpsertBucket of run a fails until wandb.init times out: "run ID is in use" in that
    # worker's wandb-core from then on, so the retry must run in another process.
    wandb_server.inject(500, count=1000, match="UpsertBucket", body_match="eval-a")
    report = upload_pass(
        options(results, tmp_path / "state", workers=1, worker_slots=1, init_timeout=3, retry_attempts=2)
    )
    assert report.exit_code() == EXIT_TRANSIENT
    failed, done = (next(o for o in report.models if o.model_dir == name) for name in ("a", "b"))
    assert failed.error_kind == "transient" and len(failed.worker_pids) == 2
    pids = failed.worker_pids + done.worker_pids
    assert len(set(pids)) == 3, pids  # each failed attempt retired its worker
    assert_exactly_once(wandb_server, "eval-b", STEPS)
    wandb_server.clear_faults()
    assert upload_pass(options(results, tmp_path / "state")).exit_code() == EXIT_OK
    assert_exactly_once(wandb_server, "eval-a", STEPS)


def test_pool_session_past_its_deadline_gets_its_worker_killed_and_the_next_pass_recovers(
    wandb_server, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = generated_tree(tmp_path / "results", ["a"], STEPS)
    # Every request now takes 0.4 s, so a session needs several seconds; the deadline is 2 s.
    wandb_server.set_latency(0.4)
    real_deadline = pool.deadline
    monkeypatch.setattr(pool, "deadline", lambda _options: 2.0)
    report = upload_pass(options(results, tmp_path / "state", workers=1, worker_slots=1))
    assert report.exit_code() == EXIT_TRANSIENT
    (outcome,) = report.models
    assert outcome.error_kind == "transient"
    assert "was killed (a session exceeded 2 s)" in (outcome.error or "")
    # Both attempts ran, each in its own worker, and each worker is gone.
    assert len(set(outcome.worker_pids)) == 2 and all(_gone(pid) for pid in outcome.worker_pids)
    assert outcome.uploaded_steps == []
    # With time enough, the next pass settles whatever the killed sessions left: each row once.
    wandb_server.set_latency(0)
    monkeypatch.setattr(pool, "deadline", real_deadline)
    assert upload_pass(options(results, tmp_path / "state")).exit_code() == EXIT_OK
    assert_exactly_once(wandb_server, "eval-a", STEPS)


def test_pool_workers_leave_no_process_behind(wandb_server, tmp_path) -> None:
    results = generated_tree(tmp_path / "results", MODELS, STEPS)
    report = upload_pass(options(results, tmp_path / "state", workers=2, worker_slots=2))
    assert report.exit_code() == EXIT_OK
    pids = {pid for outcome in report.models for pid in outcome.worker_pids}
    assert pids and all(_gone(pid) for pid in pids)
    assert os.getpid() not in pids  # sessions never run in the uploader process itself
