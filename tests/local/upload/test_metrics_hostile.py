"""Odd metrics files and odd names in the local results tree: a reason each, never a crash or a hang.

Ends with a whole offline pass: a model named with bytes that are not UTF-8 (as the original
tool's manifest escapes them) is refused with one line, a checkpoint whose TSV is cut is failed
and retried, and every other checkpoint lands; the next pass uploads the completed file's values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from local.upload.metrics import read_metrics, scan_checkpoints
from local.upload.uploader import upload_pass
from remote.contract.exit_codes import EXIT_FAILED
from tests.fixtures.hostile import undecodable
from tests.fixtures.trees import make_results_tree, write_checkpoint
from tests.fixtures.upload import model_entry, options, write_manifest

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


def _history(wandb_dir: Path, run_id: str) -> List[Dict[str, Any]]:
    rows: List[Dict[str, Any]] = []
    for run_file in sorted(wandb_dir.glob(f"wandb/offline-run-*/run-{run_id}.wandb")):
        done = subprocess.run(
            [WANDB_CLI, "leet", "inspect", "--json", str(run_file)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        rows += [r["history"]["item"] for r in records if r.get("type") == "history"]
    return rows


def test_upload_pass_refuses_a_model_not_named_in_utf8_and_waits_for_a_cut_tsv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    results = make_results_tree(tmp_path / "results", ["a", ODD_MODEL], [100, 200])
    write_manifest(results, [model_entry("a"), model_entry(ODD_MODEL, run_id="eval-odd")])
    assert b'"Caf\\udce9"' in (results / ".wandb_eval_manifest.json").read_bytes()  # as the original wrote it
    os.mkdir(os.path.join(str(results / "a"), undecodable("checkpoint-9")))
    cut = results / "a" / "checkpoint-300" / "metrics.tsv"
    cut.parent.mkdir()
    cut.write_bytes(CUT_TSV)
    opts = options(results, tmp_path / "state", mode="offline")
    opts.writer.wandb_dir = str(tmp_path / "wandb-dir")

    report = upload_pass(opts)
    first = {m.model_dir: m for m in report.models}
    assert first["a"].uploaded_steps == [100, 200]
    assert first["a"].failed_steps == {
        300: "metrics.tsv does not end with a newline (still being written, or cut short)"
    }
    assert sorted(first) == ["a"] and report.exit_code() == EXIT_FAILED
    assert report.problems == [
        "model 'Caf\\xe9': model_dir is not valid UTF-8 text; rename the folder on the training machine "
        "(or set the field in the overrides file) and regenerate the manifest"
    ]
    assert [row["checkpoint_step"] for row in _history(tmp_path / "wandb-dir", "eval-a")] == [100, 200]

    cut.write_bytes(CUT_TSV + b"34\n")  # the eval finishes writing: 0.1234
    report = upload_pass(opts)
    assert report.exit_code() == EXIT_FAILED  # the unnamable model is still refused, every pass
    assert {m.model_dir: m for m in report.models}["a"].uploaded_steps == [300]
    rows = _history(tmp_path / "wandb-dir", "eval-a")
    assert [row["checkpoint_step"] for row in rows] == [100, 200, 300]
    assert rows[-1]["eval/HR@10"] == 0.5678 and rows[-1]["eval/NDCG@10"] == 0.1234
    assert _history(tmp_path / "wandb-dir", "eval-odd") == []
