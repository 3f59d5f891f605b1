"""What the report reads: the uploader's stable epoch rule, the declared training length, and the
checkpoints it must leave out (a missing or broken metrics file) without losing the others."""

from __future__ import annotations

import json
from pathlib import Path

from remote.contract.exit_codes import EXIT_FAILED, EXIT_OK
from tests.fixtures.trees import write_checkpoint
from tests.fixtures.upload import model_entry, write_manifest
from tests.local.report.conftest import read_csv


def epoch_tree(results: Path) -> Path:
    """Three models, each with another stable epoch source, and one with none."""
    for step in (100, 200, 400):
        write_checkpoint(results, "declared", step)  # manifest: num_train_epochs 2, max_steps 400
        folder = write_checkpoint(results, "trainer", step)
        (folder / "trainer_state.json").write_text(json.dumps({"epoch": step / 1000, "global_step": step}))
        write_checkpoint(results, "unknown", step)
    write_checkpoint(results, "in-metrics", 50, {"HR@10": 0.1, "NDCG@10": 0.05, "epoch": 0.25})
    write_manifest(
        results,
        [
            model_entry("declared", num_train_epochs=2, max_steps=400),
            model_entry("trainer"),
            model_entry("unknown"),
            model_entry("in-metrics"),
        ],
    )
    return results


def test_report_epochs_follow_the_uploaders_stable_rule(tmp_path: Path, run_report) -> None:
    ran = run_report(epoch_tree(tmp_path / "results"))
    assert ran.code == EXIT_OK, ran.err
    rows = {(r["model_dir"], int(r["step"])): r for r in read_csv(ran.output_dir / "checkpoint_metrics.csv")}
    assert [rows[("declared", s)]["epoch_progress"] for s in (100, 200, 400)] == ["0.5", "1.0", "2.0"]
    assert {rows[("declared", s)]["max_step"] for s in (100, 200, 400)} == {"400"}
    assert [rows[("trainer", s)]["epoch_progress"] for s in (100, 200, 400)] == ["0.1", "0.2", "0.4"]
    assert rows[("in-metrics", 50)]["epoch_progress"] == "0.25"
    # No stable source: left empty, never step / largest step (which moves as checkpoints arrive).
    assert {
        (rows[("unknown", s)]["epoch_progress"], rows[("unknown", s)]["max_step"]) for s in (100, 400)
    } == {("", "")}
    best = {r["model_dir"]: r for r in read_csv(ran.output_dir / "best_summary.csv")}
    assert (best["declared"]["step"], best["declared"]["epoch_progress"]) == ("400", "2.0")
    assert best["declared"]["peak/HR@50/epoch"] == "2.0"


def test_report_leaves_out_a_broken_or_missing_metrics_file_and_names_it(
    sample_results: Path, run_report
) -> None:
    model = "Games-grec-sft-qwen4B-4-256-dsz0"
    (sample_results / model / "checkpoint-512" / "metrics.json").write_text('{"HR@10": 0.07, "NDCG@1')
    for name in ("metrics.json", "metrics.tsv"):
        (sample_results / model / "checkpoint-640" / name).unlink()
    ran = run_report(sample_results, "--metrics", "HR@10")
    assert ran.code == EXIT_FAILED  # some item failed; the others went on
    left_out = [line for line in ran.out.splitlines() if line.startswith("left out:")]
    assert len(left_out) == 1  # a missing file is no error: the eval may still be running
    assert left_out[0].startswith(f"left out: {model} checkpoint-512: metrics.json is not valid JSON")
    steps = {
        int(r["step"]) for r in read_csv(ran.output_dir / "checkpoint_metrics.csv") if r["model_dir"] == model
    }
    assert steps == {128, 256, 384, 768, 896, 1024}
    assert len(read_csv(ran.output_dir / "checkpoint_metrics.csv")) == 33
    page = (ran.output_dir / "index.html").read_text()
    assert f"{model} checkpoint-512: metrics.json is not valid JSON" in page
    assert f"{model} checkpoint-640: no metrics.json or metrics.tsv yet" in page


def test_report_with_only_a_missing_metrics_file_is_not_an_error(sample_results: Path, run_report) -> None:
    folder = sample_results / "Games-grec-sft-qwen4B-4-256-dsz0" / "checkpoint-2048"
    folder.mkdir()  # a checkpoint whose eval has not finished: no metrics file yet
    ran = run_report(sample_results, "--metrics", "HR@10")
    assert ran.code == EXIT_OK, ran.err
    assert (
        "checkpoint-2048: no metrics.json or metrics.tsv yet" in (ran.output_dir / "index.html").read_text()
    )
