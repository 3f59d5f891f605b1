"""Odd metrics files and odd names in the local results tree: a reason each, never a crash or a hang."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

from local.upload.metrics import read_metrics, scan_checkpoints
from tests.fixtures.hostile import undecodable
from tests.fixtures.trees import write_checkpoint

WANDB_CLI = str(Path(sys.executable).with_name("wandb"))
ODD_MODEL = undecodable("Caf")  # a folder named b"Caf\xe9"
CUT_TSV = b"path\tHR@10\tNDCG@10\na/checkpoint-300\t0.5678\t0.12"


def _checkpoint(tmp_path: Path, name: str, raw: bytes) -> Path:
    directory = tmp_path / "m" / "checkpoint-10"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(raw)
    return directory


def test_metrics_json_nested_past_the_recursion_limit_is_a_failure(tmp_path: Path) -> None:
    raw = ('{"a": ' * 5000 + "1" + "}" * 5000).encode()
    result = read_metrics(str(_checkpoint(tmp_path, "metrics.json", raw)))
    assert not result.ok and result.reason == "metrics.json nests too deeply to be metrics"


def test_metrics_json_nested_deeper_than_groups_is_dropped_not_recursed(tmp_path: Path) -> None:
    deep: Dict[str, Any] = {"x": 1}
    for _ in range(20):
        deep = {"g": deep}
    raw = json.dumps({"HR@10": 0.5, "deep": deep}).encode()
    result = read_metrics(str(_checkpoint(tmp_path, "metrics.json", raw)))
    assert result.ok and result.metrics == {"HR@10": 0.5}
    assert result.dropped == ["deep/g/g/g/g/g/g/g"]


def test_metrics_json_integer_too_large_for_a_float_is_dropped(tmp_path: Path) -> None:
    raw = b'{"HR@10": 0.5, "count": ' + b"9" * 400 + b', "neg": -' + b"9" * 400 + b"}"
    result = read_metrics(str(_checkpoint(tmp_path, "metrics.json", raw)))
    assert result.ok and result.metrics == {"HR@10": 0.5} and result.dropped == ["count", "neg"]


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_metrics_file_that_is_not_a_regular_file_is_a_failure_without_blocking(
    tmp_path: Path, kind: str
) -> None:
    directory = tmp_path / "m" / "checkpoint-10"
    directory.mkdir(parents=True)
    path = directory / "metrics.json"
    {
        "fifo": lambda: os.mkfifo(path),
        "directory": path.mkdir,
        "device": lambda: path.symlink_to("/dev/zero"),
    }[kind]()
    result = read_metrics(str(directory))  # a FIFO opened for reading would block here forever
    assert not result.ok and result.reason == "cannot read metrics.json: metrics.json is not a regular file"


def test_scan_ignores_folders_and_files_named_in_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, "m", 10)
    model = tmp_path / "m"
    os.mkdir(os.path.join(str(model), undecodable("checkpoint-2")))
    os.mkdir(os.path.join(str(model), undecodable("", b"\xff") + "checkpoint-3"))
    (model / "checkpoint-10" / undecodable("notes-")).write_bytes(b"x")
    scan = scan_checkpoints(str(model))
    assert sorted(scan) == [10] and scan[10] is not None and scan[10][0] == "metrics.json"
    assert read_metrics(str(model / "checkpoint-10")).ok
