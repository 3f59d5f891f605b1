"""W&B is the truth: a lost, corrupt or foreign state never duplicates a checkpoint in a run.

Against the real SDK and the W&B test server (which serves the public API's history reads).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

from local.upload.uploader import upload_pass
from remote.contract.exit_codes import EXIT_OK, EXIT_TRANSIENT
from tests.fixtures.original_tool import original_state_file, replay_original_upload
from tests.fixtures.trees import REPO_ROOT, SAMPLE_OVERRIDES, metrics_for, write_checkpoint
from tests.fixtures.upload import assert_exactly_once, generated_tree, history_steps, options

BOTH = ("ckpt_step", "epoch")
GAMES = "Games-grec-sft-qwen4B-4-256-dsz0"
INDUSTRIAL = "Industrial_and_Scientific-sft-dsz0-4gpu-eq8"
# The runs the original tool made for these two models with the overrides template.
ORIGINAL_RUNS = {
    "eval-b7617f0919dff467a6e8": GAMES,
    "eval-b7617f0919dff467a6e8-epoch": GAMES,
    "eval-industrial-sft": INDUSTRIAL,
    "eval-industrial-sft-epoch": INDUSTRIAL,
}


def _steps(results: Path, model_dir: str) -> List[int]:
    return sorted(int(p.name.split("-")[1]) for p in (results / model_dir).glob("checkpoint-*"))


def test_reconcile_switching_from_the_original_tool_keeps_every_checkpoint_once(
    wandb_server, sample_results, tmp_path
) -> None:
    state_dir = tmp_path / "state" / "wandb_eval_uploader"  # the original's default folder, shared
    manifest = sample_results / ".wandb_eval_manifest.json"
    replay_original_upload(
        sample_results, manifest, state_dir, overrides_path=SAMPLE_OVERRIDES, model_filter=[GAMES, INDUSTRIAL]
    )
    paths = [original_state_file(state_dir, model_dir, run_id) for run_id, model_dir in ORIGINAL_RUNS.items()]
    originals = {path: path.read_bytes() for path in paths}  # its state files: one per (model, run)
    for model_dir in (GAMES, INDUSTRIAL):
        write_checkpoint(sample_results, model_dir, 9000, metrics_for(9000))  # new since the switch
    opts = options(sample_results, state_dir, variants=BOTH, model_filters=[GAMES, INDUSTRIAL])
    opts.overrides_path, opts.overrides_required = str(SAMPLE_OVERRIDES), True

    dry = upload_pass(
        options(
            sample_results,
            state_dir,
            variants=BOTH,
            model_filters=[GAMES, INDUSTRIAL],
            disable_wandb=True,
            overrides_path=str(SAMPLE_OVERRIDES),
            overrides_required=True,
        )
    )
    assert {o.run_id: o.would_upload for o in dry.models} == {run_id: [9000] for run_id in ORIGINAL_RUNS}

    report = upload_pass(opts)
    assert report.exit_code() == EXIT_OK
    for outcome in report.models:
        model_dir = ORIGINAL_RUNS[outcome.run_id]
        assert (
            outcome.uploaded_steps == [9000]
            and outcome.adopted_steps == _steps(sample_results, model_dir)[:-1]
        )
        assert_exactly_once(wandb_server, outcome.run_id, _steps(sample_results, model_dir))
    assert {path: path.read_bytes() for path in paths} == originals  # untouched: the user can go back
    again = upload_pass(opts)  # the converted, reconciled state is ours now: an ordinary idle pass
    assert again.exit_code() == EXIT_OK and all(not o.wandb_called for o in again.models)


def test_reconcile_state_folder_deleted_between_passes_duplicates_nothing(wandb_server, tmp_path) -> None:
    results = generated_tree(tmp_path / "results", ["a", "b"], [100, 200])
    state_dir = tmp_path / "state"
    assert upload_pass(options(results, state_dir)).exit_code() == EXIT_OK
    for path in state_dir.glob("*.json"):
        path.unlink()  # docker compose down -v, a new laptop, a wiped state/
    write_checkpoint(results, "a", 300)
    command = [sys.executable, "-m", "local", "upload", "--once", "--results-root", str(results)]
    command += ["--state-dir", str(state_dir), "--variants", "ckpt_step", "--init-timeout", "15"]
    env = {**os.environ, **wandb_server.env()}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_OK, done.stderr
    assert_exactly_once(wandb_server, "eval-a", [100, 200, 300])
    assert_exactly_once(wandb_server, "eval-b", [100, 200])
    assert (
        "a (eval-a): uploaded 1 checkpoint(s) [300]; already in W&B 2 checkpoint(s) [100, 200]" in done.stdout
    )
    assert "b (eval-b): already in W&B 2 checkpoint(s) [100, 200]" in done.stdout
    lines = [line for line in done.stderr.splitlines() if "reconciled with W&B" in line]
    assert len(lines) == 2 and all("state new" in line for line in lines), done.stderr  # one line per model


def test_reconcile_corrupt_state_file_is_set_aside_and_read_from_w_and_b(wandb_server, tmp_path) -> None:
    results = generated_tree(tmp_path / "results", ["a", "b"], [100, 200])
    state_dir = tmp_path / "state"
    assert upload_pass(options(results, state_dir)).exit_code() == EXIT_OK
    (corrupt,) = state_dir.glob("a-*.json")
    corrupt.write_text('{"version": 1, "processed_steps": [1')  # half-written by a disk that filled up
    write_checkpoint(results, "a", 300)
    write_checkpoint(results, "b", 300)
    wandb_server.reset_requests()
    report = upload_pass(options(results, state_dir))
    assert report.exit_code() == EXIT_OK
    assert_exactly_once(wandb_server, "eval-a", [100, 200, 300])
    assert_exactly_once(wandb_server, "eval-b", [100, 200, 300])
    assert len(list(state_dir.glob("a-*.json.unreadable-*"))) == 1  # kept as evidence
    reads = [path for _, path, operation in wandb_server.requests if operation == "RunParquetHistory"]
    assert len(reads) == 1  # only the model whose state was lost is read; b's pass is an ordinary one


def test_reconcile_run_holding_rows_the_state_does_not_know_is_read_first(wandb_server, tmp_path) -> None:
    results = generated_tree(tmp_path / "results", ["a"], [100, 200])
    state_dir = tmp_path / "state"
    assert upload_pass(options(results, state_dir)).exit_code() == EXIT_OK
    # Another writer (an old copy of the original tool on another machine) logged a checkpoint.
    import wandb

    run = wandb.init(
        id="eval-a", project="upload-tests", resume="allow", settings=wandb.Settings(init_timeout=30)
    )
    run.log({"checkpoint_step": 300, **{f"eval/{k}": v for k, v in metrics_for(300).items()}})
    run.finish()
    write_checkpoint(results, "a", 300)
    write_checkpoint(results, "a", 400)
    report = upload_pass(options(results, state_dir))
    assert report.exit_code() == EXIT_OK
    assert report.models[0].adopted_steps == [300] and report.models[0].uploaded_steps == [400]
    assert_exactly_once(wandb_server, "eval-a", [100, 200, 300, 400])


def test_reconcile_read_errors_are_retried_and_an_unreadable_run_is_never_guessed(
    wandb_server, tmp_path
) -> None:
    results = generated_tree(tmp_path / "results", ["a", "b"], [100, 200])
    state_dir = tmp_path / "state"
    assert upload_pass(options(results, state_dir)).exit_code() == EXIT_OK
    for path in state_dir.glob("*.json"):
        path.unlink()
    write_checkpoint(results, "a", 300)
    write_checkpoint(results, "b", 300)
    # Every read of b's history fails; a's reads fail three times (a 5xx, a 429 with Retry-After, a
    # dropped connection), then work.
    wandb_server.inject(500, count=1000, operation="Run", body_match="eval-b")
    wandb_server.inject(503, count=1, operation="RunParquetHistory", body_match="eval-a")
    wandb_server.inject(429, count=1, operation="HistoryPage", retry_after=1, body_match="eval-a")
    wandb_server.drop_connections(count=1, operation="Run", body_match="eval-a")
    report = upload_pass(options(results, state_dir, init_timeout=5, retry_attempts=3))
    assert report.exit_code() == EXIT_TRANSIENT
    outcomes = {o.run_id: o for o in report.models}
    assert outcomes["eval-a"].uploaded_steps == [300] and outcomes["eval-a"].error is None
    assert outcomes["eval-b"].uploaded_steps == [] and outcomes["eval-b"].error_kind == "transient"
    assert_exactly_once(wandb_server, "eval-a", [100, 200, 300])
    assert history_steps(wandb_server, "eval-b") == [100, 200]  # nothing logged while it was unreadable
    wandb_server.clear_faults()
    assert upload_pass(options(results, state_dir)).exit_code() == EXIT_OK
    assert_exactly_once(wandb_server, "eval-b", [100, 200, 300])


def test_reconcile_a_stale_history_page_is_not_taken_for_the_truth(wandb_server, tmp_path) -> None:
    results = generated_tree(tmp_path / "results", ["a"], [100, 200])
    state_dir = tmp_path / "state"
    assert upload_pass(options(results, state_dir)).exit_code() == EXIT_OK
    for path in state_dir.glob("*.json"):
        path.unlink()
    wandb_server.set_history_lag("eval-a", 1, project="upload-tests")  # the read misses row 200
    report = upload_pass(options(results, state_dir, retry_attempts=2))
    assert report.exit_code() == EXIT_TRANSIENT and "not readable yet" in (report.models[0].error or "")
    assert_exactly_once(wandb_server, "eval-a", [100, 200])
    wandb_server.set_history_lag("eval-a", 0, project="upload-tests")
    assert upload_pass(options(results, state_dir)).exit_code() == EXIT_OK
    assert_exactly_once(wandb_server, "eval-a", [100, 200])


def test_reconcile_corrected_metrics_found_in_w_and_b_follow_the_revision_rule(
    wandb_server, tmp_path
) -> None:
    results = generated_tree(tmp_path / "results", ["a"], [100, 200])
    state_dir = tmp_path / "state"
    assert upload_pass(options(results, state_dir)).exit_code() == EXIT_OK
    for path in state_dir.glob("*.json"):
        path.unlink()
    corrected: Dict[str, float] = dict(metrics_for(200), **{"HR@10": 0.99})
    write_checkpoint(results, "a", 200, corrected)  # re-evaluated while the state was gone
    report = upload_pass(options(results, state_dir))
    assert report.models[0].adopted_steps == [100] and report.models[0].revised_steps == [200]
    rows = wandb_server.run("eval-a").history
    assert [(r["checkpoint_step"], r.get("eval/revision")) for r in rows] == [
        (100, None),
        (200, None),
        (200, 1),
    ]
    assert rows[-1]["eval/HR@10"] == 0.99


def test_reconcile_a_history_page_that_keeps_failing_is_bounded_in_time(wandb_server, tmp_path) -> None:
    # wandb-core retries a failing history page for about 16 minutes; the read gives up far sooner.
    results = generated_tree(tmp_path / "results", ["a"], [100])
    state_dir = tmp_path / "state"
    assert upload_pass(options(results, state_dir)).exit_code() == EXIT_OK
    for path in state_dir.glob("*.json"):
        path.unlink()
    wandb_server.inject(500, count=100_000, operation="HistoryPage")
    report = upload_pass(options(results, state_dir, init_timeout=3, retry_attempts=1))
    assert report.exit_code() == EXIT_TRANSIENT and "took over 12 s" in (report.models[0].error or "")
    assert_exactly_once(wandb_server, "eval-a", [100])
