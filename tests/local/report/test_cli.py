"""The report command's bad input: one line ``Error:`` naming it plus a ``Hint:``, exit 2; its
environment variables; and what it does without matplotlib."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from remote.contract.exit_codes import EXIT_OK, EXIT_USAGE
from tests.local.report.conftest import read_csv

SFT = "Instruments-grec-sft-qwen4B-4-64-dsz0"


def error_lines(err: str) -> list:
    return [line for line in err.splitlines() if line.startswith(("Error:", "Hint:"))]


def test_report_baseline_naming_a_model_that_does_not_exist(sample_results: Path, run_report) -> None:
    ran = run_report(sample_results, "--baseline", "Instruments-grec-sft-typo:810")
    assert ran.code == EXIT_USAGE
    error, hint = error_lines(ran.err)
    typo = "Instruments-grec-sft-typo"
    assert error == f"Error: --baseline {typo}:810: no model {typo!r} in the manifest"
    assert hint.startswith("Hint: give MODEL_DIR:CHECKPOINT of a model of the manifest (") and SFT in hint
    assert not (ran.output_dir / "best_summary.csv").exists()


def test_report_baseline_naming_a_checkpoint_that_does_not_exist(sample_results: Path, run_report) -> None:
    ran = run_report(sample_results, "--baseline", f"{SFT}:checkpoint-999")
    assert ran.code == EXIT_USAGE
    assert error_lines(ran.err) == [
        f"Error: --baseline {SFT}:checkpoint-999: {SFT} has no usable checkpoint-999 (no such checkpoint)",
        "Hint: pick one of its checkpoints with metrics: 675, 810",
    ]


def test_report_baseline_on_a_broken_checkpoint_says_why(sample_results: Path, run_report) -> None:
    (sample_results / SFT / "checkpoint-810" / "metrics.json").write_text("[]")
    ran = run_report(sample_results, "--baseline", f"{SFT}:810")
    assert ran.code == EXIT_USAGE
    assert error_lines(ran.err)[0] == (
        f"Error: --baseline {SFT}:810: {SFT} has no usable checkpoint-810 "
        "(metrics.json holds a JSON list, not an object)"
    )


@pytest.mark.parametrize("value", ["no-colon", f"{SFT}:best", ":810"])
def test_report_baseline_that_is_not_model_colon_checkpoint(sample_results: Path, run_report, value) -> None:
    ran = run_report(sample_results, "--baseline", value)
    assert ran.code == EXIT_USAGE
    assert error_lines(ran.err)[0] == f"Error: --baseline {value!r} is not MODEL_DIR:CHECKPOINT"


def test_report_models_matching_nothing_and_a_missing_manifest(
    tmp_path: Path, sample_results, run_report
) -> None:
    ran = run_report(sample_results, "--models", "Beauty")
    assert ran.code == EXIT_USAGE
    assert error_lines(ran.err)[0] == "Error: no model matches --models Beauty"
    (tmp_path / "empty").mkdir()
    ran = run_report(tmp_path / "empty")
    assert ran.code == EXIT_USAGE
    assert error_lines(ran.err)[0].startswith("Error: manifest not found:")


def test_report_models_select_as_the_model_filter_does(sample_results: Path, run_report) -> None:
    # A glob ...
    ran = run_report(sample_results, "--models", "Instruments-grec-*", "--metrics", "HR@10")
    assert ran.code == EXIT_OK, ran.err
    chosen = [r["model_dir"] for r in read_csv(ran.output_dir / "best_summary.csv")]
    assert chosen == ["Instruments-grec-grpo-rule-only-fixedhint-taskfix-b16-hintce-3-sft495", SFT]
    # ... and text keep every model containing it (local.upload.selection.select_models).
    ran = run_report(sample_results, "--models", "Games", "--models", "eq8", "--metrics", "HR@10")
    chosen = [r["model_dir"] for r in read_csv(ran.output_dir / "best_summary.csv")]
    assert [name.split("-")[0] for name in chosen] == ["Games", "Games", "Industrial_and_Scientific"]


def test_report_reads_its_environment_variables(
    sample_results: Path, run_report, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORT_RANK_BY", "HR@50")
    monkeypatch.setenv("REPORT_PEAKS", "NDCG@1")
    monkeypatch.setenv("REPORT_MODELS", SFT)
    monkeypatch.setenv("REPORT_BASELINE", f"{SFT}:810")
    monkeypatch.setenv("REPORT_METRICS", "HR@50")
    monkeypatch.setenv("REPORT_GROUP_BY", "none")
    ran = run_report(sample_results)
    assert ran.code == EXIT_OK, ran.err
    rows = read_csv(ran.output_dir / "best_summary.csv")
    assert [(r["row"], r["step"]) for r in rows] == [("baseline", "810"), ("best", "675")]
    assert "peak/NDCG@1" in rows[0] and "peak/HR@50" not in rows[0]
    assert sorted(p.name for p in (ran.output_dir / "charts").iterdir()) == [
        "all-models__HR-50.png",
        "best_NDCG-10_vs_HR-50.png",
    ]
    monkeypatch.setenv("REPORT_GROUP_BY", "model")
    ran = run_report(sample_results)
    assert ran.code == EXIT_USAGE and "REPORT_GROUP_BY='model'" in ran.err


def test_report_without_matplotlib_writes_tables_and_says_how_to_get_charts(
    sample_results: Path, run_report, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    ran = run_report(sample_results)
    assert ran.code == EXIT_USAGE
    error, hint = error_lines(ran.err)
    assert error.startswith("Error: matplotlib is not installed: no charts drawn (CSVs and ")
    assert hint == "Hint: pip install '.[report]'"
    assert len(read_csv(ran.output_dir / "best_summary.csv")) == 6
    assert not (ran.output_dir / "charts").exists()
    assert "No charts: matplotlib is not installed" in (ran.output_dir / "index.html").read_text()
