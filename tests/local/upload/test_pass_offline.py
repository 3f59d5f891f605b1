"""Offline mode: the rows an offline upload wrote, read back with ``wandb leet inspect --json``."""

from __future__ import annotations

from local.upload.uploader import upload_pass
from remote.contract.exit_codes import EXIT_OK
from tests.fixtures.upload import generated_tree, offline_records, options


def test_upload_offline_mode_writes_rows_leet_can_read(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    results = generated_tree(tmp_path / "results", ["a", "b"], [300, 100, 200])
    (results / "a" / "checkpoint-best").mkdir()
    opts = options(results, tmp_path / "state", mode="offline")
    opts.writer.wandb_dir = str(tmp_path / "wandb-dir")
    assert upload_pass(opts).exit_code() == EXIT_OK
    run_files = sorted((tmp_path / "wandb-dir" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert [f.name for f in run_files] == ["run-eval-a.wandb", "run-eval-b.wandb"]
    records = offline_records(run_files[0])
    history = [r["history"]["item"] for r in records if r.get("type") == "history"]
    assert [row["checkpoint_step"] for row in history] == [100, 200, 300]
    assert all("eval/HR@10" in row and "step" not in row for row in history)
    assert any(
        key.startswith("eval/checkpoint_table") for key in history[-1]
    )  # the table rides on the last row
    assert not any(key.startswith("eval/checkpoint_table") for row in history[:-1] for key in row)
    metrics = [r["metric"] for r in records if r.get("type") == "metric"]
    assert any(m.get("glob_name") == "eval/*" and m.get("step_metric") == "checkpoint_step" for m in metrics)
    run = next(r["run"] for r in records if r.get("type") == "run")
    assert (
        run["run_id"] == "eval-a"
        and run["job_type"] == "eval"
        and run["config"]["update"]["model_dir"] == "a"
    )
    summaries = [r["summary"]["update"] for r in records if r.get("type") == "summary"]
    assert any(s.get("best_step_for_hr@10") == 300 and s.get("last_step") == 300 for s in summaries)
    # No system stats, machine info or code capture in an uploader's run.
    assert not [r for r in records if r.get("type") == "stats"]
    files = [f["path"] for r in records if r.get("type") == "files" for f in r["files"]["files"]]
    assert "requirements.txt" not in files and "wandb-metadata.json" not in files
