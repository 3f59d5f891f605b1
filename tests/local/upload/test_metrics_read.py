"""Reading one checkpoint's metrics: JSON, the TSV fallback, and every kind of bad file."""

from __future__ import annotations

import json
import math
from pathlib import Path

from local.upload.metrics import read_metrics, scan_checkpoints
from remote.contract.tree import checkpoint_step
from tests.fixtures.trees import write_checkpoint


def _checkpoint(tmp_path: Path, name: str, text: str) -> Path:
    directory = tmp_path / "m" / "checkpoint-10"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")
    return directory


def test_metrics_json_gives_every_finite_number(tmp_path: Path) -> None:
    directory = write_checkpoint(tmp_path, "m", 10, {"HR@10": 0.5, "NDCG@10": 0.25, "count": 3})
    result = read_metrics(str(directory))
    assert result.ok and result.source == "metrics.json"
    assert result.metrics == {"HR@10": 0.5, "NDCG@10": 0.25, "count": 3}


def test_metrics_tsv_is_the_fallback_and_drops_the_path_column(tmp_path: Path) -> None:
    text = "path\tHR@10\tNDCG@10\nm/checkpoint-10\t0.0598\t0.0326\n"
    result = read_metrics(str(_checkpoint(tmp_path, "metrics.tsv", text)))
    assert result.ok and result.source == "metrics.tsv"
    assert result.metrics == {"HR@10": 0.0598, "NDCG@10": 0.0326}
    assert result.dropped == ["path"]


def test_metrics_half_written_json_is_a_failure_with_reason(tmp_path: Path) -> None:
    result = read_metrics(str(_checkpoint(tmp_path, "metrics.json", '{"HR@10": 0.5, "NDC')))
    assert not result.ok and "not valid JSON" in str(result.reason)


def test_metrics_empty_file_is_a_failure(tmp_path: Path) -> None:
    result = read_metrics(str(_checkpoint(tmp_path, "metrics.json", "")))
    assert not result.ok and "empty" in str(result.reason)


def test_metrics_strings_only_is_a_failure(tmp_path: Path) -> None:
    result = read_metrics(str(_checkpoint(tmp_path, "metrics.json", json.dumps({"HR@10": "n/a"}))))
    assert not result.ok and "no finite numeric metric" in str(result.reason)


def test_metrics_nan_only_is_a_failure(tmp_path: Path) -> None:
    result = read_metrics(str(_checkpoint(tmp_path, "metrics.json", '{"HR@10": NaN, "NDCG@10": NaN}')))
    assert not result.ok and "no finite numeric metric" in str(result.reason)


def test_metrics_single_nan_is_dropped_next_to_good_values(tmp_path: Path) -> None:
    result = read_metrics(str(_checkpoint(tmp_path, "metrics.json", '{"HR@10": 0.5, "NDCG@10": NaN}')))
    assert result.ok and result.metrics == {"HR@10": 0.5} and result.dropped == ["NDCG@10"]
    assert not any(math.isnan(v) for v in result.metrics.values())


def test_metrics_non_object_json_is_a_failure(tmp_path: Path) -> None:
    result = read_metrics(str(_checkpoint(tmp_path, "metrics.json", "[0.5, 0.25]")))
    assert not result.ok and "not an object" in str(result.reason)


def test_metrics_tsv_without_value_line_is_a_failure(tmp_path: Path) -> None:
    result = read_metrics(str(_checkpoint(tmp_path, "metrics.tsv", "path\tHR@10\n")))
    assert not result.ok and "half-written" in str(result.reason)


def test_metrics_nested_json_is_flattened_with_slashes(tmp_path: Path) -> None:
    directory = write_checkpoint(tmp_path, "m", 10, {"test": {"HR@10": 0.5}})
    assert read_metrics(str(directory)).metrics == {"test/HR@10": 0.5}


def test_scan_ignores_non_numeric_checkpoints_and_files(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, "m", 10)
    write_checkpoint(tmp_path, "m", 20)
    (tmp_path / "m" / "checkpoint-best").mkdir()
    (tmp_path / "m" / "checkpoint-30").write_text("a file, not a folder")
    (tmp_path / "m" / "checkpoint-40").mkdir()  # eval not done yet: no metrics file
    scan = scan_checkpoints(str(tmp_path / "m"))
    assert sorted(scan) == [10, 20, 40]
    assert scan[40] is None and scan[10] is not None and scan[10][0] == "metrics.json"


def test_scan_of_missing_model_dir_is_empty(tmp_path: Path) -> None:
    assert scan_checkpoints(str(tmp_path / "absent")) == {}


def test_checkpoint_step_accepts_only_digits() -> None:
    assert checkpoint_step("checkpoint-384") == 384
    assert checkpoint_step("checkpoint-best") is None
    assert checkpoint_step("checkpoint-1e3") is None
    # One folder, one step: no leading zeros (checkpoint-007 would be read back as checkpoint-7),
    # no other digits than ASCII, nothing after the digits (not even a newline).
    assert [checkpoint_step(n) for n in ("checkpoint-007", "checkpoint-\u0663", "checkpoint-5\n")] == [
        None
    ] * 3
    assert checkpoint_step("checkpoint-0") == 0
