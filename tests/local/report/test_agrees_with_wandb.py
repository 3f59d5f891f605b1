"""The W&B run summary and the report name the same best checkpoint with the same values: an offline
upload of the sample tree, read back from its run files, against the report's best_summary.csv."""

from __future__ import annotations

import json
from pathlib import Path

from local.upload.uploader import upload_pass
from remote.contract.exit_codes import EXIT_OK
from tests.fixtures.upload import offline_records, options
from tests.local.report.conftest import read_csv


def test_report_best_summary_equals_the_uploaded_run_summary(
    sample_results: Path, run_report, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    opts = options(sample_results, tmp_path / "state", mode="offline")
    opts.writer.wandb_dir = str(tmp_path / "wandb-dir")
    assert upload_pass(opts).exit_code() == EXIT_OK
    ran = run_report(sample_results, "--metrics", "HR@10")
    assert ran.code == EXIT_OK, ran.err
    report = {row["model_dir"]: row for row in read_csv(ran.output_dir / "best_summary.csv")}
    manifest = json.loads((sample_results / ".wandb_eval_manifest.json").read_text())
    run_ids = {model["wandb_run_id"]: model["model_dir"] for model in manifest["models"]}
    run_files = sorted((tmp_path / "wandb-dir" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == len(run_ids) == 6
    for run_file in run_files:
        model_dir = run_ids[run_file.stem[len("run-") :]]
        summary: dict = {}
        for record in offline_records(run_file):
            if record.get("type") == "summary":
                summary.update(record["summary"]["update"])
        best = {key[len("best/") :]: value for key, value in summary.items() if key.startswith("best/")}
        row = report[model_dir]
        assert best.pop("step") == int(row["step"]), model_dir
        assert best == {name: float(row[name]) for name in best}, model_dir
        assert len(best) == 12, model_dir  # every metric of the best checkpoint
        assert "best_hr@10" in summary and "best_step_for_ndcg@10" in summary  # the original's keys stay
