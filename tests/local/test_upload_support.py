"""Helpers shared by the upload tests (no tests here): options, generated trees, history checks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from local.upload_report import UploadOptions
from local.wandb_writer import WriterOptions
from remote.manifest import load_manifest
from tests.fixtures.trees import make_results_tree

PROJECT = "upload-tests"


def options(results: Path, state_dir: Path, **overrides: Any) -> UploadOptions:
    """Return pass options for tests: short SDK timeouts, no waits between retry attempts."""
    writer = WriterOptions(
        init_timeout=overrides.pop("init_timeout", 15.0),
        finish_timeout=overrides.pop("finish_timeout", 30.0),
        retry_attempts=overrides.pop("retry_attempts", 2),
        retry_wait_max=0,
        mode=overrides.pop("mode", "online"),
    )
    overrides.setdefault("orphan_wait_seconds", 20.0)
    return UploadOptions(results_root=str(results), state_dir=str(state_dir), writer=writer, **overrides)


def model_entry(model_dir: str, run_id: Optional[str] = None, **extra: Any) -> Dict[str, Any]:
    """Return one manifest model entry of the original tool's shape."""
    entry = {
        "model_dir": model_dir,
        "dataset": "Games",
        "cb_setting": "none",
        "eval_split": "test",
        "seed": 42,
        "num_beams": 50,
        "sid_levels": -1,
        "num_train_epochs": None,
        "wandb_group": None,
        "wandb_project": PROJECT,
        "wandb_entity": None,
        "wandb_run_id": run_id or "eval-{}".format(model_dir),
        "wandb_run_name": "{}-eval".format(model_dir),
    }
    entry.update(extra)
    return entry


def write_manifest(results: Path, entries: List[Dict[str, Any]]) -> Path:
    """Write a version-1 manifest into the results root and return its path."""
    path = results / ".wandb_eval_manifest.json"
    document = {
        "version": 1,
        "generated_at": "2026-01-01T00:00:00+00:00",
        "results_root": "",
        "models": entries,
    }
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def generated_tree(results: Path, models: Iterable[str], steps: Iterable[int]) -> Path:
    """Create models x steps checkpoints plus their manifest; return the results root."""
    names = list(models)
    make_results_tree(results, names, steps)
    write_manifest(results, [model_entry(name) for name in names])
    return results


def history_steps(server: Any, run_id: str) -> List[int]:
    """Return the checkpoint_step of every history row the server holds for a run, in order."""
    record = server.run(run_id)
    return [] if record is None else [row["checkpoint_step"] for row in record.history]


def assert_exactly_once(server: Any, run_id: str, expected: Iterable[int]) -> None:
    """Assert the run's history holds each expected step exactly once and nothing else."""
    steps = history_steps(server, run_id)
    duplicates = [step for step, count in Counter(steps).items() if count > 1]
    assert not duplicates, "duplicated steps {} in run {}: {}".format(duplicates, run_id, steps)
    assert sorted(steps) == sorted(expected), "run {}: {}".format(run_id, steps)


def sample_runs(results: Path) -> Dict[str, List[int]]:
    """Given the sample tree, map each manifest run id to its checkpoint steps."""
    manifest = load_manifest(str(results / ".wandb_eval_manifest.json"))
    runs = {}
    for entry in manifest.models:
        folder = results / entry.model_dir
        runs[entry.wandb_run_id] = sorted(int(p.name.split("-")[1]) for p in folder.glob("checkpoint-*"))
    return runs
