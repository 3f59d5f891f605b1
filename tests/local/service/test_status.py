"""status: per-model upload state readable at a glance, and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.cli.main import main
from local.upload.state import ModelState, save_state, state_path
from remote.contract.names import MANIFEST_NAME
from remote.prepare import ManifestOptions, prepare_manifest
from tests.fixtures.trees import make_results_tree


@pytest.fixture
def uploaded(tmp_path: Path) -> Path:
    """A results tree with a manifest, and state saying two steps of ModelA were uploaded."""
    root = make_results_tree(tmp_path / "results", ["ModelA-sft-x", "ModelB-sft-y"], [100, 200])
    report = prepare_manifest(ManifestOptions(str(root), str(root / MANIFEST_NAME)))
    run_id = report.models[0]["wandb_run_id"]
    state = ModelState(model_dir="ModelA-sft-x", wandb_run_id=run_id, processed_steps=[100, 200])
    state.table_rows = [
        {"checkpoint_step": 100, "revision": 0, "metrics": {"HR@10": 0.2}},
        {"checkpoint_step": 200, "revision": 0, "metrics": {"HR@10": 0.1}},
    ]
    state.failed_steps = {300: {"reason": "metrics.json is empty", "time": "t"}}
    save_state(state_path(str(tmp_path / "state"), "ModelA-sft-x", run_id), state)
    return tmp_path


def test_status_table_shows_counts_best_and_failures(uploaded: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        ["status", "--results-root", str(uploaded / "results"), "--state-dir", str(uploaded / "state")]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 1  # a failed checkpoint is something to look at
    model_a = next(line for line in out if line.startswith("ModelA-sft-x"))
    assert model_a.split()[2:] == ["2", "200", "0.2000", "@100"]
    assert "    failed checkpoint-300: metrics.json is empty" in out
    assert next(line for line in out if line.startswith("ModelB-sft-y")).split()[2:4] == ["0", "-"]


def test_status_shows_the_loops_last_cycle_and_error(uploaded: Path, capsys: pytest.CaptureFixture) -> None:
    from local.service.heartbeat import write_heartbeat

    write_heartbeat(str(uploaded / "state" / "heartbeat.json"), "idle", 7, 3, ["pull: cannot reach gpu01:22"])
    main(["status", "--results-root", str(uploaded / "results"), "--state-dir", str(uploaded / "state")])
    out = capsys.readouterr().out
    assert "last cycle: #7 at " in out and "exit 3; last error: pull: cannot reach gpu01:22" in out


def test_status_json_lists_every_model(uploaded: Path, capsys: pytest.CaptureFixture) -> None:
    main(
        [
            "status",
            "--json",
            "--results-root",
            str(uploaded / "results"),
            "--state-dir",
            str(uploaded / "state"),
        ]
    )
    document = json.loads(capsys.readouterr().out)
    by_dir = {m["model_dir"]: m for m in document["models"]}
    assert by_dir["ModelA-sft-x"]["uploaded"] == 2 and by_dir["ModelA-sft-x"]["best_step"] == 100
    assert by_dir["ModelB-sft-y"]["uploaded"] == 0


def test_status_without_manifest_reports_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["status", "--results-root", str(tmp_path)]) == 1
    assert "manifest not found" in capsys.readouterr().out


def test_status_corrupt_state_file_is_reported_for_that_model_only(
    uploaded: Path, capsys: pytest.CaptureFixture
) -> None:
    state_file = next((uploaded / "state").glob("ModelA-sft-x-*.json"))
    state_file.write_text("{half-written")
    code = main(
        ["status", "--results-root", str(uploaded / "results"), "--state-dir", str(uploaded / "state")]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    error_line = out[out.index(next(line for line in out if line.startswith("ModelA-sft-x"))) + 1]
    assert error_line.startswith("    error: ")
    assert next(line for line in out if line.startswith("ModelB-sft-y")).split()[2] == "0"
