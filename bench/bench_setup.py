"""Trees and code for the upload bench: a tree whose runs are all uploaded, an older commit's code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from local.upload import plan  # noqa: E402
from local.upload.metrics import scan_checkpoints  # noqa: E402
from local.upload.state import ModelState, save_state, state_path  # noqa: E402
from local.upload.targets import run_targets  # noqa: E402
from remote.contract.manifest import load_manifest  # noqa: E402
from tests.fixtures.trees import metrics_for  # noqa: E402
from tests.fixtures.upload import generated_tree  # noqa: E402


def extract_commit(repo: Path, commit: str, target: Path) -> Path:
    """Given a commit, write its tree to ``target`` (``git archive``) and return it."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", commit], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def processed_tree(scratch: Path, models: int, checkpoints: int) -> Tuple[Path, Path]:
    """Write a tree and the states a finished upload of both runs per model leaves (no upload).

    Returns (results root, state dir).
    """
    names = [f"model-{i:04d}" for i in range(models)]
    results = generated_tree(scratch / "results", names, range(100, 100 * (checkpoints + 1), 100))
    state_dir = scratch / "state"
    for entry in load_manifest(str(results / ".wandb_eval_manifest.json")).models:
        scan = scan_checkpoints(str(results / entry.model_dir))
        items = []
        for index, (step, sig) in enumerate(sorted(scan.items()), start=1):
            assert sig is not None
            metrics = metrics_for(step)
            items.append(plan.Item(step, 0, plan.metrics_digest(metrics), tuple(sig), metrics, index=index))
        for target in run_targets(entry):
            state = ModelState(entry.model_dir, target.run_id, run_next_step=len(items))
            plan.mark_processed(state, items)
            plan.note_seen(state, scan)
            save_state(state_path(str(state_dir), entry.model_dir, target.run_id), state)
    return results, state_dir
