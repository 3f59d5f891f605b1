"""The uploader against the W&B-protocol test server, driven through the real wandb SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from local.upload.state import load_state, state_path
from local.upload.targets import target_for
from local.upload.uploader import upload_pass
from remote.contract.exit_codes import EXIT_BUSY, EXIT_FAILED, EXIT_OK, EXIT_PERMANENT, EXIT_TRANSIENT
from remote.contract.files import exclusive_lock
from remote.contract.manifest import load_manifest
from tests.fixtures.trees import REPO_ROOT, write_checkpoint
from tests.fixtures.upload import (
    assert_exactly_once,
    generated_tree,
    history_steps,
    model_entry,
    options,
    sample_runs,
    write_manifest,
)


def test_upload_first_pass_sends_sample_tree(wandb_server, sample_results, tmp_path):
    report = upload_pass(options(sample_results, tmp_path / "state"))
    assert report.exit_code() == EXIT_OK
    runs = sample_runs(sample_results)
    assert sum(len(steps) for steps in runs.values()) == 35 and len(wandb_server.runs()) == 6
    manifest = load_manifest(str(sample_results / ".wandb_eval_manifest.json"))
    for entry in manifest.models:
        record = wandb_server.run(entry.wandb_run_id)
        assert_exactly_once(wandb_server, entry.wandb_run_id, runs[entry.wandb_run_id])
        assert record.name == entry.wandb_run_name and record.job_type == "eval"
        assert record.config == target_for(entry, "ckpt_step").config()
        assert all("eval/HR@10" in row and "eval/NDCG@10" in row for row in record.history)
        assert len(record.tables) == 1
        best = max(record.history, key=lambda row: row["eval/HR@10"])
        assert record.summary["best_hr@10"] == best["eval/HR@10"]
        assert record.summary["best_step_for_hr@10"] == best["checkpoint_step"]
        assert record.summary["last_step"] == max(runs[entry.wandb_run_id])
        state = load_state(state_path(str(tmp_path / "state"), entry.model_dir, entry.wandb_run_id), "", "")
        assert state.processed_steps == runs[entry.wandb_run_id] and state.in_flight is None


def test_upload_second_pass_makes_no_request(wandb_server, sample_results, tmp_path):
    assert upload_pass(options(sample_results, tmp_path / "state")).exit_code() == EXIT_OK
    wandb_server.reset_requests()
    report = upload_pass(options(sample_results, tmp_path / "state"))
    assert report.exit_code() == EXIT_OK
    assert wandb_server.request_count() == 0
    assert not any(outcome.wandb_called for outcome in report.models)


def test_upload_incremental_pass_appends_to_resumed_run(wandb_server, tmp_path):
    results = generated_tree(tmp_path / "results", ["a", "b"], [100, 200])
    assert upload_pass(options(results, tmp_path / "state")).exit_code() == EXIT_OK
    write_checkpoint(results, "a", 300)
    wandb_server.reset_requests()
    report = upload_pass(options(results, tmp_path / "state"))
    assert report.exit_code() == EXIT_OK
    assert_exactly_once(wandb_server, "eval-a", [100, 200, 300])
    assert_exactly_once(wandb_server, "eval-b", [100, 200])
    assert [row["_step"] for row in wandb_server.run("eval-a").history] == [0, 1, 2]
    assert len(wandb_server.run("eval-a").tables) == 2  # one table per pass, not per checkpoint
    assert "eval-b" not in " ".join(" ".join(r) for r in wandb_server.requests)


def test_upload_late_older_checkpoint_lands_in_history(wandb_server, tmp_path):
    results = generated_tree(tmp_path / "results", ["a"], [500, 600])
    upload_pass(options(results, tmp_path / "state"))
    write_checkpoint(results, "a", 50)
    assert upload_pass(options(results, tmp_path / "state")).models[0].uploaded_steps == [50]
    assert history_steps(wandb_server, "eval-a") == [500, 600, 50]
    summary = wandb_server.run("eval-a").summary
    assert summary["last_step"] == 600 and summary["checkpoint_step"] == 600


def test_upload_changed_metrics_append_a_revision_row(wandb_server, tmp_path):
    results = generated_tree(tmp_path / "results", ["a"], [100, 200])
    upload_pass(options(results, tmp_path / "state"))
    write_checkpoint(results, "a", 200, {"HR@10": 0.9, "NDCG@10": 0.8})
    metrics_file = results / "a" / "checkpoint-200" / "metrics.json"
    os.utime(metrics_file, ns=(1, 1))  # a different mtime even on coarse clocks
    report = upload_pass(options(results, tmp_path / "state"))
    assert report.models[0].revised_steps == [200] and report.exit_code() == EXIT_OK
    record = wandb_server.run("eval-a")
    assert history_steps(wandb_server, "eval-a") == [100, 200, 200]
    assert record.history[-1]["eval/revision"] == 1 and record.history[-1]["eval/HR@10"] == 0.9
    assert record.summary["best_hr@10"] == 0.9 and record.summary["best_step_for_hr@10"] == 200
    wandb_server.reset_requests()
    os.utime(metrics_file, ns=(2, 2))  # touched, same numbers: nothing to upload
    assert upload_pass(options(results, tmp_path / "state")).models[0].revised_steps == []
    assert wandb_server.request_count() == 0


def test_upload_bad_metrics_are_failed_steps_and_retried(wandb_server, tmp_path):
    results = generated_tree(tmp_path / "results", ["a", "b"], [100])
    bad = {200: '{"HR@10": 0.5, "ND', 300: "", 400: '{"HR@10": "n/a"}', 500: '{"HR@10": NaN}'}
    for step, text in bad.items():
        (results / "a" / "checkpoint-{}".format(step)).mkdir()
        (results / "a" / "checkpoint-{}".format(step) / "metrics.json").write_text(text)
    tsv_only = results / "a" / "checkpoint-600"
    tsv_only.mkdir()
    (tsv_only / "metrics.tsv").write_text("path\tHR@10\tNDCG@10\na/checkpoint-600\t0.5\t0.25\n")
    write_checkpoint(results, "a", 700).rename(results / "a" / "checkpoint-best")
    report = upload_pass(options(results, tmp_path / "state"))
    assert report.exit_code() == EXIT_FAILED
    outcome = next(o for o in report.models if o.model_dir == "a")
    assert sorted(outcome.failed_steps) == [200, 300, 400, 500]
    assert "not valid JSON" in outcome.failed_steps[200] and "empty" in outcome.failed_steps[300]
    assert_exactly_once(wandb_server, "eval-a", [100, 600])
    assert_exactly_once(wandb_server, "eval-b", [100])
    state = load_state(state_path(str(tmp_path / "state"), "a", "eval-a"), "a", "eval-a")
    assert sorted(state.failed_steps) == [200, 300, 400, 500] and state.failed_steps[300]["reason"]
    write_checkpoint(results, "a", 200)  # the eval finished writing
    report = upload_pass(options(results, tmp_path / "state"))
    assert report.models[0].uploaded_steps == [200]
    assert_exactly_once(wandb_server, "eval-a", [100, 200, 600])
    state = load_state(state_path(str(tmp_path / "state"), "a", "eval-a"), "a", "eval-a")
    assert sorted(state.failed_steps) == [300, 400, 500]


def test_upload_model_filter_limits_models(wandb_server, tmp_path):
    results = generated_tree(tmp_path / "results", ["games-1", "games-2", "books-1"], [100])
    report = upload_pass(options(results, tmp_path / "state", model_filters=["games-1,books*"]))
    assert sorted(o.model_dir for o in report.models) == ["books-1", "games-1"]
    assert sorted(r.run_id for r in wandb_server.runs()) == ["eval-books-1", "eval-games-1"]


def test_upload_disable_wandb_then_real_upload_uploads_everything(wandb_server, sample_results, tmp_path):
    state_dir = tmp_path / "state"
    report = upload_pass(options(sample_results, state_dir, disable_wandb=True))
    assert sum(len(o.would_upload) for o in report.models) == 35
    # A dry run may read what W&B holds (no state here to vouch for it), but never writes.
    assert wandb_server.request_count("UpsertBucket") == wandb_server.request_count("file_stream") == 0
    assert not state_dir.exists()
    report = upload_pass(options(sample_results, state_dir))
    assert sum(len(o.uploaded_steps) for o in report.models) == 35


def test_upload_offline_try_out_never_makes_online_upload_skip_anything(
    wandb_server, sample_results, tmp_path
):
    state_dir = tmp_path / "state"
    report = upload_pass(options(sample_results, state_dir, mode="offline"))
    assert sum(len(o.uploaded_steps) for o in report.models) == 35
    assert wandb_server.request_count() == 0
    report = upload_pass(options(sample_results, state_dir))
    assert sum(len(o.uploaded_steps) for o in report.models) == 35
    assert sum(len(r.history) for r in wandb_server.runs()) == 35


def test_upload_duplicate_run_id_is_refused(wandb_server, tmp_path):
    results = generated_tree(tmp_path / "results", ["a", "b"], [100])
    write_manifest(results, [model_entry("a", "eval-same"), model_entry("b", "eval-same")])
    report = upload_pass(options(results, tmp_path / "state"))
    assert report.exit_code() == EXIT_FAILED
    refused = next(o for o in report.models if o.model_dir == "b")
    assert refused.error_kind == "refused" and "also used by model a" in refused.error
    assert_exactly_once(wandb_server, "eval-same", [100])


def test_upload_accepts_original_manifest_extra_fields(wandb_server, tmp_path):
    results = generated_tree(tmp_path / "results", ["a"], [100])
    extra = {"num_train_epochs": 10, "wandb_group": "epoch", "variants": {"epoch": {"wandb_group": "epoch"}}}
    write_manifest(results, [model_entry("a", **extra)])
    assert upload_pass(options(results, tmp_path / "state")).exit_code() == EXIT_OK
    assert wandb_server.run("eval-a").group == "epoch"


def test_upload_server_down_marks_nothing_then_next_pass_uploads_all(wandb_server, tmp_path):
    results = generated_tree(tmp_path / "results", ["a", "b"], [100, 200])
    wandb_server.set_down(True)
    report = upload_pass(options(results, tmp_path / "state", init_timeout=3, retry_attempts=1))
    assert report.exit_code() == EXIT_TRANSIENT
    assert all(o.error_kind == "transient" and not o.uploaded_steps for o in report.models)
    for name in ("a", "b"):
        assert (
            load_state(state_path(str(tmp_path / "state"), name, "eval-" + name), "", "").processed_steps
            == []
        )
    wandb_server.set_down(False)
    assert upload_pass(options(results, tmp_path / "state")).exit_code() == EXIT_OK
    assert_exactly_once(wandb_server, "eval-a", [100, 200])
    assert_exactly_once(wandb_server, "eval-b", [100, 200])


def test_upload_5xx_429_and_dropped_connections_are_retried(wandb_server, tmp_path):
    results = generated_tree(tmp_path / "results", ["a"], [100, 200, 300])
    wandb_server.inject(500, count=2, match="UpsertBucket")
    wandb_server.inject(429, count=1, match="file_stream")
    wandb_server.inject(503, count=1, match="RunResumeStatus")
    wandb_server.drop_connections(count=1, match="file_stream")
    report = upload_pass(options(results, tmp_path / "state", retry_attempts=3))
    assert report.exit_code() == EXIT_OK, report.models[0].error
    assert wandb_server.faults.pending() == []  # every injected fault was hit
    assert_exactly_once(wandb_server, "eval-a", [100, 200, 300])


def test_upload_deleted_run_stops_that_model_only(wandb_server, tmp_path):
    results = generated_tree(tmp_path / "results", ["a", "b"], [100])
    upload_pass(options(results, tmp_path / "state"))
    wandb_server.delete_run(None, "upload-tests", "eval-a")
    write_checkpoint(results, "a", 200)
    write_checkpoint(results, "b", 200)
    report = upload_pass(options(results, tmp_path / "state", init_timeout=4))
    assert report.exit_code() == EXIT_PERMANENT
    failed = next(o for o in report.models if o.model_dir == "a")
    assert failed.error_kind == "permanent"
    assert "eval-a" in failed.error and "deleted" in failed.error and "wandb_run_id" in failed.error
    assert_exactly_once(wandb_server, "eval-b", [100, 200])
    state = load_state(state_path(str(tmp_path / "state"), "a", "eval-a"), "a", "eval-a")
    assert state.processed_steps == [100] and state.blocked
    # Later passes skip the deleted run at once (no 409 wait) and keep saying what to do.
    wandb_server.reset_requests()
    report = upload_pass(options(results, tmp_path / "state"))
    assert report.exit_code() == EXIT_PERMANENT and "wandb_run_id" in report.models[0].error
    assert wandb_server.request_count() == 0


def test_upload_second_uploader_exits_at_once_with_code_5(tmp_path):
    results = generated_tree(tmp_path / "results", ["a"], [100])
    state_dir = tmp_path / "state"
    command = [sys.executable, "-m", "local", "upload", "--once", "--results-root", str(results)]
    # A key exists (credentials are checked first, and this test is not about them); no call is made.
    env = {**os.environ, "WANDB_API_KEY": "k" * 40}
    with exclusive_lock(str(state_dir / ".upload.lock"), "uploader"):
        done = subprocess.run(
            command + ["--state-dir", str(state_dir)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == EXIT_BUSY
    assert "another uploader" in done.stderr and str(os.getpid()) in done.stderr


def test_upload_cli_once_reports_and_exits_zero(wandb_server, tmp_path):
    results = generated_tree(tmp_path / "results", ["a"], [100, 200])
    command = [sys.executable, "-m", "local", "upload", "--once", "--results-root", str(results)]
    command += ["--state-dir", str(tmp_path / "state"), "--init-timeout", "15", "--finish-timeout", "30"]
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, **wandb_server.env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert "a (eval-a): uploaded 2 checkpoint(s) [100, 200]" in done.stdout
    assert_exactly_once(wandb_server, "eval-a", [100, 200])
    # The command uploads to the model's run and to its epoch run (the original's default variants).
    assert "a (eval-a-epoch): uploaded 2 checkpoint(s) [100, 200]" in done.stdout
    assert_exactly_once(wandb_server, "eval-a-epoch", [100, 200])
    state_files = list((tmp_path / "state").glob("a-*.json"))
    assert len(state_files) == 2
    assert all(json.loads(path.read_text())["processed_steps"] == [100, 200] for path in state_files)


def test_upload_poll_loop_picks_up_new_checkpoints(wandb_server, tmp_path):
    results = generated_tree(tmp_path / "results", ["a"], [100])
    command = [sys.executable, "-m", "local", "upload", "--results-root", str(results)]
    command += ["--state-dir", str(tmp_path / "state"), "--poll-interval-seconds", "0.2"]
    env = {**os.environ, **wandb_server.env()}
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        assert _wait_for(lambda: history_steps(wandb_server, "eval-a") == [100])
        write_checkpoint(results, "a", 200)
        assert _wait_for(lambda: history_steps(wandb_server, "eval-a") == [100, 200])
        assert process.poll() is None  # still polling
        second = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == EXIT_BUSY and "another uploader" in second.stderr
    finally:
        process.kill()
        process.wait(timeout=30)


def _wait_for(condition, limit: float = 60.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_upload_finish_timeout_keeps_rows_in_flight_then_recovers(wandb_server, tmp_path):
    results = generated_tree(tmp_path / "results", ["a"], [100, 200, 300])
    wandb_server.inject(500, count=1000, match="file_stream")  # rows never confirmed this pass
    report = upload_pass(options(results, tmp_path / "state", finish_timeout=3, retry_attempts=1))
    assert report.exit_code() == EXIT_TRANSIENT and report.models[0].uploaded_steps == []
    state = load_state(state_path(str(tmp_path / "state"), "a", "eval-a"), "a", "eval-a")
    assert state.processed_steps == [] and [i["step"] for i in state.in_flight["items"]] == [100, 200, 300]
    wandb_server.clear_faults()
    report = upload_pass(options(results, tmp_path / "state"))
    assert report.exit_code() == EXIT_OK
    assert_exactly_once(wandb_server, "eval-a", [100, 200, 300])
    state = load_state(state_path(str(tmp_path / "state"), "a", "eval-a"), "a", "eval-a")
    assert state.processed_steps == [100, 200, 300] and state.in_flight is None


def test_upload_bad_api_key_is_permanent_with_the_fix(wandb_server, tmp_path, monkeypatch):
    results = generated_tree(tmp_path / "results", ["a"], [100])
    monkeypatch.setenv("WANDB_API_KEY", "wrongkey_" + "0" * 40)
    report = upload_pass(options(results, tmp_path / "state", init_timeout=5))
    assert report.exit_code() == EXIT_PERMANENT
    assert "eval-a" in report.models[0].error and "WANDB_API_KEY" in report.models[0].error
    assert load_state(state_path(str(tmp_path / "state"), "a", "eval-a"), "a", "eval-a").processed_steps == []
