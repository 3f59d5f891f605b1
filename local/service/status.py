"""What has been uploaded, per model: read from the manifest and the uploader's state files.

Reading status never calls W&B and never takes the uploader's lock, so it is safe to run
beside the running service.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from local.upload.plan import summary
from local.upload.state import StateError, load_state, mode_state_dir, state_path
from remote.contract.manifest import ManifestError, load_manifest
from remote.contract.names import PULL_STATE_NAME

# The summary key status shows as "best": the one the W&B run's summary carries, computed by the
# same code (local.upload.plan.summary), so status and the W&B dashboard never disagree.
BEST_KEY = "hr@10"


@dataclass
class ModelStatus:
    """The upload status of one model."""

    model_dir: str
    run_id: str
    project: str
    uploaded: int = 0
    last_step: Optional[int] = None
    best_value: Optional[float] = None
    best_step: Optional[int] = None
    failed: Dict[str, str] = field(default_factory=dict)
    last_update: Optional[str] = None
    error: Optional[str] = None


def _best(rows: List[Dict[str, Any]]) -> tuple:
    values = summary(rows)
    return values.get("best_" + BEST_KEY), values.get("best_step_for_" + BEST_KEY)


def model_status(state_dir: str, model_dir: str, run_id: str, project: str) -> ModelStatus:
    """Given the state dir and a model's identity, return its status (errors are reported, not raised)."""
    status = ModelStatus(model_dir, run_id, project)
    try:
        state = load_state(state_path(state_dir, model_dir, run_id), model_dir, run_id)
    except StateError as exc:
        status.error = str(exc)
        return status
    status.uploaded = len(state.processed_steps)
    status.last_step = max(state.processed_steps) if state.processed_steps else None
    status.best_value, status.best_step = _best(state.table_rows)
    status.failed = {str(step): str(info.get("reason", info)) for step, info in state.failed_steps.items()}
    status.last_update = state.last_update_time
    return status


def collect(manifest_path: str, state_dir: str, mode: str = "online") -> List[ModelStatus]:
    """Given the manifest, state dir and W&B mode, return every model's status (manifest order)."""
    state_dir = mode_state_dir(state_dir, mode)
    try:
        manifest = load_manifest(manifest_path)
    except ManifestError as exc:
        return [ModelStatus("(manifest)", "", "", error=str(exc))]
    return [model_status(state_dir, m.model_dir, m.wandb_run_id, m.wandb_project) for m in manifest.models]


def last_pull(inbox: str) -> Optional[Dict[str, Any]]:
    """Given the inbox, return the newest bundle the puller verified there, if any."""
    try:
        with open(os.path.join(inbox, PULL_STATE_NAME), "r", encoding="utf-8") as handle:
            bundles = json.load(handle).get("bundles", {})
        newest = max(bundles.values(), key=lambda entry: int(entry["seq"]))
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    return dict(newest) if isinstance(newest, dict) else None


def render(statuses: List[ModelStatus]) -> str:
    """Given statuses, return a table readable at a glance (one line per model, failures below)."""
    lines = [
        "{:<58} {:<26} {:>8} {:>9} {:>16}".format("model", "run id", "uploaded", "last step", "best HR@10")
    ]
    for s in statuses:
        best = "-" if s.best_value is None else f"{s.best_value:.4f} @{s.best_step}"
        last = "-" if s.last_step is None else str(s.last_step)
        lines.append(f"{s.model_dir[:58]:<58} {s.run_id[:26]:<26} {s.uploaded:>8} {last:>9} {best:>16}")
        for step, reason in sorted(s.failed.items(), key=lambda item: int(item[0])):
            lines.append(f"    failed checkpoint-{step}: {reason}")
        if s.error:
            lines.append(f"    error: {s.error}")
    return "\n".join(lines)


def to_json(statuses: List[ModelStatus], pull: Optional[Dict[str, Any]]) -> str:
    """Given statuses and the last pull record, return the ``status --json`` document."""
    return json.dumps({"models": [asdict(s) for s in statuses], "last_pull": pull}, indent=2, sort_keys=True)
