"""The best summary on the real sample tree, checked against a calculation written here from the
raw metrics.json files: the ranking and its ties, the peaks, the baseline differences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from remote.contract.exit_codes import EXIT_OK
from tests.local.report.conftest import read_csv

RANK = ("NDCG@10", "HR@10", "NDCG@50", "HR@50")
BASELINE = ("Instruments-grec-sft-qwen4B-4-64-dsz0", 810)


def raw_checkpoints(results: Path, model_dir: str) -> Dict[int, Dict[str, float]]:
    """Read every checkpoint's metrics.json of a model with plain json (not the report's reader)."""
    found = {}
    for path in (results / model_dir).glob("checkpoint-*/metrics.json"):
        found[int(path.parent.name.split("-")[1])] = json.loads(path.read_text())
    return found


def expected_best(checkpoints: Dict[int, Dict[str, float]]) -> int:
    """The researchers' rule, written independently: sort descending by each metric, then the step up."""
    ordered = sorted(checkpoints.items(), key=lambda kv: tuple(-kv[1][m] for m in RANK) + (kv[0],))
    return ordered[0][0]


def expected_peak(checkpoints: Dict[int, Dict[str, float]], metric: str) -> Tuple[float, int]:
    top = max(values[metric] for values in checkpoints.values())
    return top, min(step for step, values in checkpoints.items() if values[metric] == top)


def tie(results: Path, model_dir: str, step: int, values: Dict[str, float]) -> None:
    path = results / model_dir / f"checkpoint-{step}" / "metrics.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), **values)))


@pytest.fixture
def tied_samples(sample_results: Path) -> Path:
    """The sample tree with ties made where the rule must break them (metrics.json is read first)."""
    grpo = "Instruments-grec-grpo-rule-only-fixedhint-taskfix-b16-hintce-3-sft495"
    # NDCG@10 ties with the best (1665); HR@10 is higher at 3326, so 3326 must win.
    tie(sample_results, grpo, 3326, {"NDCG@10": 0.0945})
    # A full tie of all four ranking metrics with the best (768): the lower step (768) stays.
    sft = "Games-grec-sft-qwen4B-4-256-dsz0"
    best = json.loads((sample_results / sft / "checkpoint-768" / "metrics.json").read_text())
    tie(sample_results, sft, 896, {m: best[m] for m in RANK})
    # A tie of the peak HR@50 (at 550) at an earlier step: the earlier step is the peak's.
    tie(sample_results, "Instruments-mimionerec-sft-qwen4B-4-256-dsz0-backup", 100, {"HR@50": 0.2331})
    return sample_results


def test_report_best_summary_matches_an_independent_calculation(tied_samples: Path, run_report) -> None:
    baseline = f"{BASELINE[0]}:checkpoint-{BASELINE[1]}"
    ran = run_report(tied_samples, "--baseline", baseline, "--peaks", "HR@50,NDCG@50", "--metrics", "HR@10")
    assert ran.code == EXIT_OK, ran.err
    rows = read_csv(ran.output_dir / "best_summary.csv")
    best_rows = {row["model_dir"]: row for row in rows if row["row"] == "best"}
    manifest = json.loads((tied_samples / ".wandb_eval_manifest.json").read_text())
    assert list(best_rows) == [model["model_dir"] for model in manifest["models"]]
    picked: List[int] = []
    for model_dir, row in best_rows.items():
        checkpoints = raw_checkpoints(tied_samples, model_dir)
        step = expected_best(checkpoints)
        picked.append(step)
        assert (row["step"], row["checkpoint"]) == (str(step), f"checkpoint-{step}"), model_dir
        assert {m: float(row[m]) for m in checkpoints[step]} == checkpoints[step], model_dir
        for metric in ("HR@50", "NDCG@50"):
            value, at = expected_peak(checkpoints, metric)
            found = (float(row[f"peak/{metric}"]), row[f"peak/{metric}/checkpoint"])
            assert found == (value, f"checkpoint-{at}"), (model_dir, metric)
    assert 3326 in picked and 768 in picked  # the ties above were broken as the rule says
    backup = best_rows["Instruments-mimionerec-sft-qwen4B-4-256-dsz0-backup"]
    assert backup["peak/HR@50/checkpoint"] == "checkpoint-100"


def test_report_baseline_row_and_differences_within_its_dataset(sample_results: Path, run_report) -> None:
    ran = run_report(sample_results, "--baseline", f"{BASELINE[0]}:{BASELINE[1]}", "--metrics", "HR@10")
    assert ran.code == EXIT_OK, ran.err
    rows = read_csv(ran.output_dir / "best_summary.csv")
    reference = raw_checkpoints(sample_results, BASELINE[0])[BASELINE[1]]
    assert rows[0]["row"] == "baseline" and rows[0]["model_dir"] == BASELINE[0]
    assert {m: float(rows[0][m]) for m in reference} == reference
    label = f"{BASELINE[0]}:checkpoint-{BASELINE[1]}"
    compared = 0
    for row in rows[1:]:
        diffs = {m: row[f"diff/{label}/{m}"] for m in reference}
        if row["dataset"] != "Instruments_grec":
            assert set(diffs.values()) == {""}, row["model_dir"]  # another dataset: no comparison
            continue
        compared += 1
        best = raw_checkpoints(sample_results, row["model_dir"])[int(row["step"])]
        for metric, text in diffs.items():
            assert float(text) == pytest.approx(best[metric] - reference[metric], abs=1e-9), metric
    assert compared == 2
    grpo = next(r for r in rows if r["model_dir"].startswith("Instruments-grec-grpo"))
    assert float(grpo[f"diff/{label}/NDCG@10"]) == pytest.approx(0.0945 - 0.0614)


def test_report_checkpoint_table_has_one_row_per_checkpoint(sample_results: Path, run_report) -> None:
    ran = run_report(sample_results, "--metrics", "HR@10")  # one chart per dataset: charts are tested apart
    assert ran.code == EXIT_OK, ran.err
    rows = read_csv(ran.output_dir / "checkpoint_metrics.csv")
    files = sample_results.glob("*/checkpoint-*/metrics.json")
    on_disk = sorted((p.parent.parent.name, int(p.parent.name.split("-")[1])) for p in files)
    assert len(on_disk) == 35
    assert sorted((row["model_dir"], int(row["step"])) for row in rows) == on_disk
    first = rows[0]
    raw = raw_checkpoints(sample_results, first["model_dir"])[int(first["step"])]
    assert {m: float(first[m]) for m in raw} == raw
    assert (first["max_step"], first["epoch_progress"]) == ("", "")  # the sample declares no training length
